"""The validated Parquet cache: a workspace's tables after validation, one Parquet file each.

Keyed by the data fingerprint (file bytes + the settings that change how they load, see
:func:`insight_agent.data.load.fingerprint`): ``.insight/tables/<fingerprint[:16]>/``. It is
written once, by ``insight validate`` or ``insight build`` (or by the first command that needs
it), atomically (a temporary folder renamed into place), and read by every later command
instead of re-parsing the exports. Changing a file or a loading setting changes the
fingerprint, so a stale cache is never read; the two newest caches are kept.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from insight_agent.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

    from insight_agent.data.load import Dataset

CACHE_DIR = "tables"
KEEP = 2
# 2: timestamps stored as microseconds (Spark cannot read Parquet's nanosecond timestamps)
# 3: the validation report is kept, so unchanged data is not validated again
CACHE_VERSION = 3
# A cached orders table larger than this stays in the cache when the dataset is read back
# (Dataset.streamed), as a large file loaded in chunks does.
INLINE_ORDER_ROWS = 2_000_000
TABLE_NAMES = ("customers", "orders", "returns", "reviews", "campaigns")
#: DuckDB's memory limit for the engine's queries and the cache's merges; beyond it DuckDB
#: spills to :func:`spill_dir`. Without one, merging a 2M-customer build's 27M order lines
#: (order kept) took the load's peak from 0.9 to 3.6 GB (1.5 GB with 1 GB).
DEFAULT_MEMORY_LIMIT = "2GB"


def spill_dir(ws: Workspace) -> Path:
    """Where DuckDB (and a local Spark) put scratch files for ``ws``: ``.insight/engine-tmp``."""
    return ws.artifacts / "engine-tmp"


@dataclass(frozen=True)
class TableCache:
    """One fingerprint's cached tables."""

    folder: Path
    fingerprint: str
    meta: dict[str, Any]

    def path(self, table: str) -> Path | None:
        """The Parquet file of ``table``, or None when the workspace has no such table."""
        path = self.folder / f"{table}.parquet"
        return path if table in self.meta.get("tables", {}) and path.is_file() else None

    @property
    def tables(self) -> dict[str, int]:
        """Table name -> rows, for the tables the workspace has."""
        return dict(self.meta.get("tables", {}))

    @property
    def data_up_to(self) -> str | None:
        """The last order date (ISO), or the last review / send date without orders."""
        return self.meta.get("data_up_to")

    def read(self, table: str) -> pd.DataFrame | None:
        """One cached table as pandas (None when absent), text as pandas' "string" dtype, as
        validation makes it (a table merged from chunks carries no pandas metadata)."""
        import pandas as pd

        path = self.path(table)
        if path is None:
            return None
        return text_as_string(pd.read_parquet(path))


def text_as_string(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text columns as pandas' "string" dtype (NA for missing), as
    validation makes them: Parquet without pandas metadata and Arrow results come back as
    pandas 3's default ``str`` (NaN for missing) or as objects. In place; returned."""
    import pandas as pd

    for col in frame.columns:
        dtype = frame[col].dtype
        if pd.api.types.is_string_dtype(dtype) and not (
            isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA
        ):
            frame[col] = frame[col].astype("string")
    return frame


def _root(ws: Workspace) -> Path:
    return ws.artifacts / CACHE_DIR


def _folder(ws: Workspace, fingerprint: str) -> Path:
    return _root(ws) / fingerprint[:16]


def cached(ws: Workspace, fingerprint: str | None = None) -> TableCache | None:
    """The cache for the workspace's current data, or None when it has not been written."""
    from insight_agent.data.load import fingerprint as data_fingerprint

    fp = fingerprint or data_fingerprint(ws.settings)
    folder = _folder(ws, fp)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("fingerprint") != fp or meta.get("version") != CACHE_VERSION:
        return None
    if not _same_today(ws, meta):
        return None
    return TableCache(folder, fp, meta)


def _today(ws: Workspace) -> dt.date:
    """The date validation measures "in the future" against (``[data] today`` or the clock)."""
    return ws.settings.data.today or dt.date.today()


def _same_today(ws: Workspace, meta: dict[str, Any]) -> bool:
    """Whether the cached tables and report still hold today: validation clears or drops
    dates after "today", so a cache written on another day is stale when it did so (a date
    that was in the future may not be any more), or when today moved back. A cache that
    found no future dates stays valid as the days pass."""
    was = meta.get("today")
    now = _today(ws).isoformat()
    if was is None or was == now:
        return True
    future = any(p.get("code") == "future_date" for p in meta.get("report", {}).get("problems", []))
    return now > was and not future


def _for_parquet(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns Parquet can store as they are: mixed-type text columns become strings."""
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(lambda v: None if v is None or v is pd.NA else str(v))
            out[col] = out[col].astype("string")
    return out


def _end_date(frames: dict[str, pd.DataFrame]) -> str | None:
    for table, col in (("orders", "order_date"), ("campaigns", "sent_date"), ("reviews", "date")):
        frame = frames.get(table)
        if frame is not None and col in frame and frame[col].notna().any():
            return str(frame[col].max().date())
    return None


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    # microsecond timestamps: every engine reads them (Spark refuses nanoseconds); dates from
    # exports carry no sub-microsecond part to lose
    _for_parquet(frame).to_parquet(
        path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True
    )


class CacheWriter:
    """Writes one fingerprint's cache folder, in a temporary folder renamed into place.

    Also the sink a large orders file is validated into
    (:class:`insight_agent.data.load.TableSink`): each chunk's rows become one Parquet part,
    merged into the table's file by DuckDB (out of core, in order) when the cache is written.
    """

    def __init__(self, ws: Workspace, fingerprint: str) -> None:
        self.ws = ws
        self.fingerprint = fingerprint
        self.final = _folder(ws, fingerprint)
        self.tmp = self.final.with_name(f".{self.final.name}.{os.getpid()}.tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self._parts: dict[str, int] = {}
        self._as_text: dict[str, tuple[str, ...]] = {}
        self._copied: set[str] = set()  # tables the engine wrote whole (load_plain)

    def _part_folder(self, table: str) -> Path:
        return self.tmp / "_parts" / table

    def part(self, table: str, frame: pd.DataFrame, *, as_text: tuple[str, ...] = ()) -> None:
        """Append one chunk of ``table``'s validated rows; ``as_text`` columns are typed when
        the parts are merged (see :meth:`_merge`)."""
        self._as_text[table] = as_text
        folder = self._part_folder(table)
        folder.mkdir(parents=True, exist_ok=True)
        n = self._parts.get(table, 0)
        self._parts[table] = n + 1
        _write_frame(frame, folder / f"{n:06d}.parquet")

    def discard(self, table: str) -> None:
        """Forget the parts of ``table``."""
        shutil.rmtree(self._part_folder(table), ignore_errors=True)
        self._parts.pop(table, None)

    def load_plain(self, spec: Any, known: Any) -> tuple[Any, pd.DataFrame] | None:
        """A plain orders file checked and written as the orders and returns tables by the
        engine (:func:`insight_agent.engine.plainload.load_plain`); (its result, an empty
        frame with the orders' columns) or None."""
        import pyarrow.parquet as pq

        from insight_agent.engine.plainload import load_plain

        paths = {t: self.tmp / f"{t}.parquet" for t in ("orders", "returns")}
        found = load_plain(spec, self._connect, known, paths["orders"], paths["returns"])
        if found is None:
            for path in paths.values():
                path.unlink(missing_ok=True)
            return None
        self._copied.update(paths.keys())
        head = text_as_string(pq.read_schema(paths["orders"]).empty_table().to_pandas())
        return found, head

    def _connect(self) -> Any:
        """A DuckDB connection with the engine's memory limit and spill folder."""
        import duckdb

        scratch = spill_dir(self.ws)
        scratch.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(
            config={"memory_limit": DEFAULT_MEMORY_LIMIT, "temp_directory": str(scratch)}
        )

    def _query(self, sql: str, params: list[Any] | None = None) -> Any:
        con = self._connect()
        try:
            con.execute("SET preserve_insertion_order = true")
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def _glob(self, tables: list[str]) -> list[str]:
        """The Parquet files holding ``tables``' rows so far: the engine's copy of a table
        (:meth:`load_plain`), else its parts."""
        out = []
        for t in tables:
            if t in self._copied:
                out.append(str(self.tmp / f"{t}.parquet"))
            elif t in self._parts:
                out.append(str(self._part_folder(t) / "*.parquet"))
        return out

    def distinct(self, tables: list[str], column: str) -> pd.Series:
        """The sorted distinct non-missing values of ``column`` in ``tables``' parts."""
        import pandas as pd

        globs = self._glob(tables)
        if not globs:
            return pd.Series([], dtype="string")
        rows = self._query(
            f'SELECT DISTINCT "{column}" FROM read_parquet(?, union_by_name = true) '
            f'WHERE "{column}" IS NOT NULL ORDER BY 1',
            [globs],
        )
        return pd.Series([r[0] for r in rows], dtype="string")

    def _merge(self, table: str) -> Path:
        """One Parquet file from ``table``'s parts, in the order they were written.

        Columns read as text get the type pandas infers for a whole file: whole numbers with
        no blank -> BIGINT; numbers (blanks allowed, or nothing but blanks) -> DOUBLE; else
        the text as read. A column whose type still differs between chunks gets their common
        type. Orders and returns come from one file, so their columns are typed over both, as
        a whole-file read types them before the returns are set apart (typed alone, a file
        without returns gave its returns table DOUBLE where the orders had BIGINT)."""
        path = self.tmp / f"{table}.parquet"
        target = str(path).replace("'", "''")
        source = "read_parquet(?, union_by_name = true)"
        globs = self._glob([table])
        pair = ("orders", "returns")
        typed_over = self._glob(list(pair)) if table in pair else globs
        casts = {}
        for col in self._as_text.get(table, ()):
            name = sql_name(col)
            present, numbers, whole, rows = self._query(
                f"SELECT count({name}), count(TRY_CAST({name} AS DOUBLE)), "
                f"count(*) FILTER (WHERE regexp_full_match({name}, '\\s*[+-]?[0-9]+\\s*')), "
                f"count(*) FROM {source}",
                [typed_over],
            )[0]
            if present == numbers:
                kind = "BIGINT" if whole == present == rows and rows else "DOUBLE"
                casts[col] = f"CAST({name} AS {kind}) AS {name}"
        select = f"* REPLACE ({', '.join(casts.values())})" if casts else "*"
        self._query(f"COPY (SELECT {select} FROM {source}) TO '{target}' (FORMAT parquet)", [globs])
        return path

    def write(self, data: Dataset) -> TableCache:
        """Write ``data``'s tables (its streamed ones from their parts) and publish them."""
        import pyarrow.parquet as pq

        found = cached(self.ws, self.fingerprint)
        if found is not None:
            self.close()
            return found
        frames: dict[str, pd.DataFrame] = {
            "customers": data.customers,
            "orders": data.orders,
            "returns": data.returns,
        }
        if data.reviews is not None:
            frames["reviews"] = data.reviews
        if data.campaigns is not None:
            frames["campaigns"] = data.campaigns
        # Customers derived from orders are not a table the user gave us; still cached (ids).
        try:
            counts: dict[str, int] = {}
            columns: dict[str, list[str]] = {}
            for name, frame in frames.items():
                if name in data.streamed and (name in self._parts or name in self._copied):
                    path = self.tmp / f"{name}.parquet"
                    schema = pq.read_schema(path if name in self._copied else self._merge(name))
                    counts[name] = data.streamed[name]
                    columns[name] = [str(c) for c in schema.names]
                else:
                    _write_frame(frame, self.tmp / f"{name}.parquet")
                    counts[name] = len(frame)
                    columns[name] = list(map(str, frame.columns))
            shutil.rmtree(self.tmp / "_parts", ignore_errors=True)
            meta = {
                "version": CACHE_VERSION,
                "fingerprint": data.fingerprint,
                "today": _today(self.ws).isoformat(),
                "tables": counts,
                "columns": columns,
                "sources": data.sources,
                "derived_customers": bool(
                    data.report.tables.get("customers") and data.report.tables["customers"].derived
                ),
                "data_up_to": self._end_date(frames, data.streamed),
                "report": data.report.to_dict(),
                "streamed": data.streamed,
            }
            (self.tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), "utf-8")
            if cached(self.ws, self.fingerprint) is not None:  # another process finished first
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                shutil.rmtree(self.final, ignore_errors=True)  # a half-written folder
                os.replace(self.tmp, self.final)
        except BaseException:
            self.close()
            raise
        _prune(self.ws, keep=self.final)
        return TableCache(self.final, self.fingerprint, meta)

    def _end_date(self, frames: dict[str, pd.DataFrame], streamed: dict[str, int]) -> str | None:
        if streamed.get("orders"):
            path = str(self.tmp / "orders.parquet")
            last = self._query("SELECT max(order_date) FROM read_parquet(?)", [path])[0][0]
            if last is not None:
                return str(last.date())
        return _end_date(frames)

    def close(self) -> None:
        """Remove the temporary folder (after :meth:`write` published it, nothing is left)."""
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_cache(ws: Workspace, data: Dataset, writer: CacheWriter | None = None) -> TableCache:
    """Write the validated tables of ``data`` (idempotent: an existing cache is reused).
    ``writer`` holds the tables ``data`` streamed into it while loading."""
    return (writer or CacheWriter(ws, data.fingerprint)).write(data)


def read_dataset(cache: TableCache) -> Dataset:
    """The validated dataset as the cache holds it, with the report validation wrote: what a
    load of the same files and settings gives, without reading them again. Orders beyond
    :data:`INLINE_ORDER_ROWS` stay in the cache (``Dataset.streamed``), as when they were
    loaded in chunks."""
    import pyarrow.parquet as pq

    from insight_agent.data.load import Dataset
    from insight_agent.data.report import report_from_dict

    streamed: dict[str, int] = {}
    frames: dict[str, Any] = {}
    big = cache.tables.get("orders", 0) > INLINE_ORDER_ROWS or bool(cache.meta.get("streamed"))
    for name in ("orders", "returns"):
        path = cache.path(name)
        if path is None:
            raise FileNotFoundError(f"{cache.folder}: {name}.parquet is missing")
        if big:  # both stay in the cache, as after a chunked load
            streamed[name] = cache.tables.get(name, 0)
            frames[name] = pq.read_schema(path).empty_table().to_pandas()
        else:
            frames[name] = cache.read(name)
    return Dataset(
        customers=cache.read("customers"),
        orders=frames["orders"],
        returns=frames["returns"],
        reviews=cache.read("reviews"),
        campaigns=cache.read("campaigns"),
        report=report_from_dict(cache.meta["report"]),
        fingerprint=cache.fingerprint,
        sources=dict(cache.meta.get("sources", {})),
        streamed=streamed,
    )


def sql_name(name: str) -> str:
    """A column name as a quoted DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def load_and_cache(ws: Workspace) -> tuple[Dataset, TableCache]:
    """Validate the workspace's data and write its cache; or, when the cache of the same
    files and settings exists, read the dataset and report back from it. A large orders file
    is validated in chunks straight into the cache (``Dataset.streamed``); its frame is empty.

    Raises :class:`insight_agent.data.report.ValidationFailed` when the data cannot load.
    """
    from insight_agent.data.load import fingerprint, load_dataset

    fp = fingerprint(ws.settings)
    found = cached(ws, fp)
    if found is not None and "report" in found.meta:
        return read_dataset(found), found
    writer = CacheWriter(ws, fp)
    try:
        data = load_dataset(ws.settings, display=ws.display, sink=writer)
        return data, writer.write(data)
    finally:
        writer.close()


def _prune(ws: Workspace, keep: Path) -> None:
    """Keep the newest caches (and ``keep``); leftovers of crashed writers are removed too."""
    root = _root(ws)
    folders = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in [p for p in folders if p != keep][KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def ensure_cache(ws: Workspace) -> TableCache:
    """The cache for the workspace's data, validating and writing it first when needed.

    Raises :class:`insight_agent.data.report.ValidationFailed` when the data cannot load.
    """
    found = cached(ws)
    if found is not None:
        return found
    return load_and_cache(ws)[1]


def validate_and_cache(ws: Workspace, *, max_drop_share: float | None = None) -> Any:
    """`insight validate`: the validation report, and (when the data loads under the
    workspace's own settings) the Parquet cache written, so the next command reads Parquet.

    A one-off ``max_drop_share`` validates only: data loaded under another ceiling is not the
    workspace's data and is not cached.
    """
    from insight_agent.data.load import validate
    from insight_agent.data.report import ValidationFailed

    if max_drop_share is not None:
        return validate(ws.settings, max_drop_share=max_drop_share, display=ws.display)
    try:
        data, _ = load_and_cache(ws)
    except ValidationFailed as exc:
        return exc.report
    return data.report


__all__ = [
    "CacheWriter",
    "TableCache",
    "cached",
    "ensure_cache",
    "load_and_cache",
    "validate_and_cache",
    "write_cache",
]
