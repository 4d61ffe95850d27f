"""Table sources: the one interface every reader of an input table goes through.

A table in insight.toml (``[data.orders] path = ...`` plus layout settings) becomes a
:class:`TableReader`: ``inspect()`` says how the table will be read (format, columns),
``read()`` returns the raw rows (:class:`~insight_agent.data.readers.RawTable`, nothing parsed
yet), and ``digest()`` feeds its identity into the workspace's data fingerprint (which keys
the validated Parquet cache). Loading, validation, the agent's PII list and ``insight score
--file`` all open tables through :func:`open_table`, so a new kind of source — a DuckDB or
warehouse table, a Spark path — is one new class here, not path and suffix checks spread over
``data/``.

Today there is one kind: :class:`FileTable` (CSV and other delimited or fixed-width text,
Excel, Parquet; compressed or not), whose format is told by the file name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from insight_agent.config import TableSource
from insight_agent.data.readers import (
    FIXED,
    Layout,
    RawTable,
    inspect_file,
    read_table,
    read_text_chunks,
)

__all__ = ["FileTable", "TableReader", "open_table"]


class TableReader(Protocol):
    """One input table, wherever it lives."""

    display: str  # how messages name it (a file name, a table name)

    def inspect(self) -> Layout:
        """How the table will be read: format, column names (cheap: reads the start only)."""
        ...

    def read(
        self,
        *,
        text_columns: list[str] | None = None,
        keep_na_text: list[str] | None = None,
        layout: Layout | None = None,
    ) -> RawTable:
        """Every row, as text where asked (ids), "NA" kept as text in free-text columns."""
        ...

    def digest(self, hasher: Any) -> None:
        """Feed the table's content identity (bytes, or a version) into ``hasher``."""
        ...

    def size(self) -> int:
        """Bytes to read (0 when unknown): large tables are loaded in chunks."""
        ...

    def read_chunks(
        self,
        *,
        layout: Layout,
        rows: int,
        text_columns: list[str] | None = None,
        keep_na_text: list[str] | None = None,
    ) -> Iterator[RawTable] | None:
        """The rows ``rows`` at a time, as :meth:`read` reads them; None when this table is
        only read whole."""
        ...


# compressed text: its size on disk says little about its rows; read whole, as before
COMPRESSED = {".gz", ".bz2", ".zip", ".xz", ".zst"}


@dataclass
class FileTable:
    """A table in a file (see :mod:`insight_agent.data.readers` for formats and layouts)."""

    source: TableSource
    table: str | None = None  # the [data.<table>] section, named in hints
    display: str = ""

    def __post_init__(self) -> None:
        if not self.display:
            self.display = Path(self.source.path).name

    def _options(self) -> dict[str, Any]:
        s = self.source
        return {
            "sheet": s.sheet,
            "delimiter": s.delimiter,
            "encoding": s.encoding,
            "header": s.header,
            "names": s.names,
            "widths": s.widths,
            "table": self.table,
        }

    def inspect(self) -> Layout:
        """How the file will be read (see :func:`insight_agent.data.readers.inspect_file`)."""
        return inspect_file(Path(self.source.path), self.display, **self._options())

    def read(
        self,
        *,
        text_columns: list[str] | None = None,
        keep_na_text: list[str] | None = None,
        layout: Layout | None = None,
    ) -> RawTable:
        """The whole file (see :func:`insight_agent.data.readers.read_table`)."""
        return read_table(
            Path(self.source.path),
            self.display,
            text_columns=text_columns,
            keep_na_text=keep_na_text,
            layout=layout,
            **self._options(),
        )

    def size(self) -> int:
        """The file's size in bytes (0 when it is missing)."""
        path = Path(self.source.path)
        return path.stat().st_size if path.is_file() else 0

    def read_chunks(
        self,
        *,
        layout: Layout,
        rows: int,
        text_columns: list[str] | None = None,
        keep_na_text: list[str] | None = None,
    ) -> Iterator[RawTable] | None:
        """Delimited text in chunks (:func:`insight_agent.data.readers.read_text_chunks`);
        None for Excel, Parquet, fixed-width and compressed files."""
        path = Path(self.source.path)
        if layout.format != "csv" or layout.delimiter == FIXED or path.suffix in COMPRESSED:
            return None
        return read_text_chunks(
            path,
            self.display,
            layout,
            text_columns=text_columns,
            keep_na_text=keep_na_text,
            rows=rows,
        )

    def digest(self, hasher: Any) -> None:
        """The file's bytes (nothing when the file is missing: loading reports that)."""
        path = Path(self.source.path)
        if path.is_file():
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    hasher.update(chunk)


def open_table(
    source: TableSource | Path | str, table: str | None = None, display: str | None = None
) -> TableReader:
    """The reader for one table source (a :class:`TableSource` or a bare file path)."""
    if not isinstance(source, TableSource):
        source = TableSource(path=Path(source))
    return FileTable(source, table, display or "")
