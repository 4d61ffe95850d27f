"""Read one export file (CSV, Excel, Parquet) into a DataFrame, or fail with a clear DataError.

Readers do no validation beyond "can this file be read at all"; they keep values as they are in
the file (ids as text) so the validator can quote the offending value back to the user.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from insight_agent.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
COMPRESSED = {".gz", ".bz2", ".zip", ".xz"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
SUPPORTED = "CSV (.csv, .tsv, optionally compressed), Excel (.xlsx) or Parquet (.parquet)"
_FALLBACK_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")  # latin-1 decodes any byte string
_SNIFF_BYTES = 64 * 1024


@dataclass
class RawTable:
    """A file's content as read, plus facts the validator reports."""

    frame: pd.DataFrame
    file: str  # name shown to the user
    encoding: str | None = None
    delimiter: str | None = None
    bad_lines: list[int] = field(default_factory=list)  # CSV lines skipped: wrong field count
    row_numbers: list[int] | None = None  # source row of each record when not index + 2


def file_format(path: Path) -> str:
    """'csv', 'excel' or 'parquet' from the file name; DataError for anything else."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in CSV_SUFFIXES:
        return "csv"
    if last in EXCEL_SUFFIXES:
        return "excel"
    if last in PARQUET_SUFFIXES:
        return "parquet"
    hint = "save it as .xlsx or CSV" if last == ".xls" else f"use {SUPPORTED}"
    raise DataError(f"unsupported file type '{last or path.name}'", file=str(path), hint=hint)


def read_header(
    path: Path,
    display: str,
    *,
    sheet: str | int | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> list[str]:
    """Column names of a file without reading its rows (cheap even for huge files)."""
    fmt = _check_file(path, display)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"not a readable Parquet file ({_reason(exc)})", file=display) from exc
    if fmt == "excel":
        return [str(c) for c in _read_excel(path, display, sheet, nrows=0).columns]
    import pandas as pd

    try:
        frame, _, _ = _read_csv_any_encoding(path, display, delimiter, encoding, nrows=0, dtype=str)
    except pd.errors.ParserError as exc:
        raise DataError(f"cannot read the header row ({_reason(exc)})", file=display) from exc
    return [str(c) for c in frame.columns]


def read_table(
    path: Path,
    display: str,
    *,
    text_columns: list[str] | None = None,
    sheet: str | int | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> RawTable:
    """Read a whole file. ``text_columns`` (source names) are kept as text, e.g. ids.

    Raises :class:`DataError` (file named) when the file is missing, empty, of an unsupported
    type, or cannot be parsed.
    """
    fmt = _check_file(path, display)
    text_columns = text_columns or []
    if fmt == "parquet":
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise DataError(f"not a readable Parquet file ({_reason(exc)})", file=display) from exc
        raw = RawTable(frame, display)
    elif fmt == "excel":
        raw = RawTable(
            _read_excel(path, display, sheet, dtypes=dict.fromkeys(text_columns, str)), display
        )
    else:
        raw = _read_csv(path, display, delimiter, encoding, text_columns)
    raw.frame.columns = [str(c) for c in raw.frame.columns]
    if len(raw.frame) == 0 or len(raw.frame.columns) == 0:
        raise DataError(
            "the file has no data rows",
            file=display,
            hint="export the table again, with a header row and at least one row",
        )
    return raw


def _check_file(path: Path, display: str) -> str:
    fmt = file_format(path)
    if not path.exists():
        raise DataError(
            "file not found", file=display, hint="check the path in insight.toml ([data] section)"
        )
    if path.is_dir():
        raise DataError("is a folder, not a file", file=display)
    if path.stat().st_size == 0:
        raise DataError(
            "the file is empty",
            file=display,
            hint="export the table again, with a header row and at least one row",
        )
    return fmt


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _read_excel(
    path: Path,
    display: str,
    sheet: str | int | None,
    *,
    nrows: int | None = None,
    dtypes: dict[str, type] | None = None,
) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_excel(
            path,
            sheet_name=0 if sheet is None else sheet,
            nrows=nrows,
            dtype=dtypes or None,
            engine="openpyxl",
        )
    except ValueError as exc:
        if "Worksheet" in str(exc) or "sheet" in str(exc).lower():
            raise DataError(
                f"no sheet {sheet!r} in the workbook",
                file=display,
                hint="set data.<table>.sheet in insight.toml",
            ) from exc
        raise DataError(f"cannot read the Excel file ({_reason(exc)})", file=display) from exc
    except Exception as exc:  # zipfile/openpyxl raise many types for corrupt workbooks
        raise DataError(f"not a readable Excel .xlsx file ({_reason(exc)})", file=display) from exc


def sniff_delimiter(sample: str) -> str:
    """Guess the delimiter of a CSV sample among , ; tab and |; comma when unsure."""
    first = sample.splitlines()[0] if sample else ""
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        guess = dialect.delimiter
    except csv.Error:
        guess = ""
    if guess and guess in first:
        return guess
    # The sniffer can fail on quoted or ragged samples; fall back to the header's counts.
    counts = {d: first.count(d) for d in ",;\t|"}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _read_csv_any_encoding(
    path: Path, display: str, delimiter: str | None, encoding: str | None, **kwargs
) -> tuple[pd.DataFrame, str, str]:
    """pandas.read_csv trying the user's encoding, else UTF-8 (with BOM), cp1252, Latin-1."""
    import pandas as pd

    encodings = (encoding,) if encoding else _guess_encodings(path)
    last_exc: Exception | None = None
    for enc in encodings:
        try:
            sample = _decode_sample(_head(path, display, _SNIFF_BYTES), enc)
            delim = delimiter or sniff_delimiter(sample)
            frame = pd.read_csv(
                path, sep=delim, encoding=enc, skip_blank_lines=False, low_memory=False, **kwargs
            )
            return frame, enc, delim
        except UnicodeDecodeError as exc:
            last_exc = exc
            continue
        except LookupError as exc:
            raise DataError(
                f"unknown encoding '{enc}'",
                file=display,
                hint="fix data.<table>.encoding in insight.toml",
            ) from exc
        except pd.errors.EmptyDataError as exc:
            raise DataError("the file has no header row", file=display) from exc
        except pd.errors.ParserError:
            raise  # ragged rows: the caller decides
        except (ValueError, OverflowError, TypeError, OSError, MemoryError) as exc:
            raise DataError(f"cannot parse the CSV file ({_reason(exc)})", file=display) from exc
    raise DataError(
        f"cannot decode the file as {'/'.join(encodings)} ({_reason(last_exc)})",
        file=display,
        hint="save it as UTF-8 CSV",
    ) from last_exc


def _open_binary(path: Path) -> IO[bytes]:
    """Open a (possibly compressed) file for reading its decompressed bytes."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        import gzip

        return gzip.open(path, "rb")
    if suffix == ".bz2":
        import bz2

        return bz2.open(path, "rb")
    if suffix == ".xz":
        import lzma

        return lzma.open(path, "rb")
    if suffix == ".zip":
        import zipfile

        archive = zipfile.ZipFile(path)
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if len(names) != 1:
            raise DataError(
                f"the zip archive holds {len(names)} files; expected exactly one", file=str(path)
            )
        return archive.open(names[0])
    return open(path, "rb")


def _head(path: Path, display: str, size: int) -> bytes:
    try:
        with _open_binary(path) as fh:
            return fh.read(size)
    except DataError:
        raise
    except Exception as exc:  # corrupt archive
        raise DataError(f"cannot read the file ({_reason(exc)})", file=display) from exc


def _guess_encodings(path: Path) -> tuple[str, ...]:
    """Encodings to try, in order: UTF-16 when the file starts with its byte-order mark
    (Excel's "Unicode text" export), else UTF-8 (BOM or not), cp1252, Latin-1."""
    head = _head(path, str(path), 2)
    if head in (b"\xff\xfe", b"\xfe\xff"):
        return ("utf-16", *_FALLBACK_ENCODINGS)
    return _FALLBACK_ENCODINGS


def _decode_sample(head: bytes, enc: str) -> str:
    # The sample may end in the middle of a multi-byte character: ignore only a ragged tail.
    try:
        return head.decode(enc)
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4 and len(head) == _SNIFF_BYTES:
            return head[: exc.start].decode(enc)
        raise


def _read_csv(
    path: Path, display: str, delimiter: str | None, encoding: str | None, text_columns: list[str]
) -> RawTable:
    import pandas as pd

    dtype = dict.fromkeys(text_columns, str)
    try:
        frame, enc, delim = _read_csv_any_encoding(
            path, display, delimiter, encoding, dtype=dtype or None
        )
        return RawTable(frame, display, enc, delim)
    except pd.errors.ParserError:
        pass  # ragged rows: find them and read the rest (below)
    except DataError:
        raise
    except Exception as exc:  # csv module and C parser errors of every kind
        raise DataError(f"cannot parse the CSV file ({_reason(exc)})", file=display) from exc
    return _read_ragged_csv(path, display, delimiter, encoding)


def _unique_names(header: list[str]) -> list[str]:
    """Column names made unique the way pandas does it: a, a.1, a.2, ..."""
    seen: dict[str, int] = {}
    out = []
    for name in header:
        count = seen.get(name, 0)
        out.append(name if count == 0 else f"{name}.{count}")
        seen[name] = count + 1
    return out


def _read_ragged_csv(
    path: Path, display: str, delimiter: str | None, encoding: str | None
) -> RawTable:
    """Read a CSV whose rows have the wrong number of fields: skip and report those rows.

    The csv module reads every record with the line it starts on; the good records become the
    frame directly (as text; the validator parses numbers and dates), so row numbers and rows
    always line up — a round trip through pandas re-parsed quoted line breaks differently.
    """
    import pandas as pd

    encodings = (encoding,) if encoding else _guess_encodings(path)
    for enc in encodings:
        try:
            text = _head(path, display, -1).decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - latin-1 decodes anything
        raise DataError("cannot decode the file", file=display)
    delim = delimiter or sniff_delimiter(text[:_SNIFF_BYTES])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    header: list[str] | None = None
    records: list[list[str]] = []
    bad_lines: list[int] = []
    row_numbers: list[int] = []
    start = 1
    try:
        for record in reader:
            if header is None:
                header = record
            elif record and len(record) != len(header):
                bad_lines.append(start)
            elif record:
                records.append(record)
                row_numbers.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(
            f"cannot parse the CSV file ({_reason(exc)})", file=display, row=start
        ) from exc
    if not header:
        raise DataError("the file has no header row", file=display)
    frame = pd.DataFrame(records, columns=_unique_names(header), dtype="string")
    frame = frame.mask(frame.eq("").fillna(False))  # empty cells are missing, as in read_csv
    return RawTable(frame, display, enc, delim, bad_lines, row_numbers)
