"""Read one export file (CSV and other delimited text, fixed-width text, Excel, Parquet) into a
DataFrame, or fail with a clear DataError.

Readers do no validation beyond "can this file be read at all"; they keep values as they are in
the file (ids as text) so the validator can quote the offending value back to the user.

Reading a text file is two steps. :func:`inspect_file` decides how to read it — the encoding
(BOM, UTF-16 without a BOM, UTF-8, else detected with charset-normalizer or refused), the
delimiter (sniffed, runs of whitespace, or fixed-width), whether the first row is a header — and
returns a :class:`Layout` that also says what was decided, for messages. :func:`read_table` then
reads the rows with that layout.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from insight_agent.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

CSV_SUFFIXES = {".csv", ".tsv", ".txt", ".dat", ".prn"}
COMPRESSED = {".gz", ".bz2", ".zip", ".xz"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
SUPPORTED = (
    "CSV or other text (.csv, .tsv, .txt, .dat, optionally compressed), Excel (.xlsx) or "
    "Parquet (.parquet)"
)
WHITESPACE = "whitespace"  # delimiter: runs of spaces and tabs
FIXED = "fixed"  # fixed-width columns
_SNIFF_BYTES = 64 * 1024
_SNIFF_RECORDS = 100
_CHUNK = 1 << 20
_DETECT_SAMPLE = 256 * 1024  # bytes of non-ASCII lines handed to the encoding detector
# pandas' own missing-value tokens; text columns named in ``keep_na_text`` use only "".
NA_TOKENS = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)
_NUMBER = re.compile(r"[+-]?[$£€]?\(?\d[\d,.]*\)?%?")
_DATE = re.compile(
    r"\d{1,4}([-/.])\d{1,2}\1\d{1,4}"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?"
)
_NON_ASCII_LINE = re.compile(rb"[^\r\n]*[\x80-\xff][^\r\n]*")
_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass
class Layout:
    """How a file is read, and what was found out about it (for reports and messages)."""

    format: str  # "csv" (any delimited or fixed-width text), "excel" or "parquet"
    columns: list[str]  # column names as the rest of Insight sees them
    encoding: str | None = None
    encoding_note: str | None = None  # set when the encoding was detected, not given or marked
    delimiter: str | None = None  # "," ";" "\t" "|" ..., WHITESPACE or FIXED
    delimiter_detected: bool = False  # sniffed (not configured)
    header: bool = True  # the first row names the columns
    header_detected: bool = False  # no header row, concluded from the first row's values
    first_row: str | None = None  # the first non-blank row as in the file (shortened)
    first_fields: list[str] = field(default_factory=list)  # that row split into fields
    widths: list[int] | None = None  # fixed-width: characters per column (None: inferred)
    names_given: bool = False  # the column names come from data.<table>.names

    def delimiter_name(self) -> str:
        """The delimiter in words: 'comma', 'runs of whitespace', ..."""
        return describe_delimiter(self.delimiter)

    def describe(self) -> str:
        """One sentence: what was detected when the file was read."""
        parts = []
        if self.format == "csv":
            how = self.delimiter_name() + (" (detected)" if self.delimiter_detected else "")
            parts.append(f"delimiter: {how}")
            enc = self.encoding or "?"
            parts.append(f"encoding: {enc}" + (" (detected)" if self.encoding_note else ""))
        if self.format != "parquet":
            if self.header:
                parts.append("header row: yes")
            elif self.header_detected:
                parts.append("header row: none (the first row looks like data)")
            else:
                parts.append("header row: none (header = false)")
        shown = ", ".join(repr(c) for c in self.columns[:12])
        more = f", … ({len(self.columns)} in all)" if len(self.columns) > 12 else ""
        count = f"{len(self.columns)} column{'s' if len(self.columns) != 1 else ''}"
        parts.append(f"{count}: {shown}{more}")
        if self.first_row is not None:
            parts.append(f"first row: {self.first_row!r}")
        if not self.header and self.first_fields:
            fields = self.first_fields[:12]
            by_position = ", ".join(f"{i}={_shorten(v, 24)!r}" for i, v in enumerate(fields, 1))
            parts.append(f"its fields by position: {by_position}")
        return "; ".join(parts)


@dataclass
class RawTable:
    """A file's content as read, plus facts the validator reports."""

    frame: pd.DataFrame
    file: str  # name shown to the user
    encoding: str | None = None
    delimiter: str | None = None
    bad_lines: list[int] = field(default_factory=list)  # CSV lines skipped: wrong field count
    row_numbers: list[int] | None = None  # source row of each record when not index + first_row
    first_row: int = 2  # row number of the first record: 2 after a header row, else 1
    layout: Layout | None = None


def describe_delimiter(delimiter: str | None) -> str:
    """'comma', 'semicolon', 'tab', 'runs of whitespace', 'fixed-width columns', or the char."""
    names = {
        ",": "comma",
        ";": "semicolon",
        "\t": "tab",
        "|": "pipe",
        WHITESPACE: "runs of whitespace",
        FIXED: "fixed-width columns",
    }
    if delimiter is None:
        return "none"
    return names.get(delimiter, repr(delimiter))


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


def inspect_file(
    path: Path,
    display: str,
    *,
    sheet: str | int | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    header: bool | None = None,
    names: list[str] | None = None,
    widths: list[int] | None = None,
    table: str | None = None,
) -> Layout:
    """Decide how to read a file (encoding, delimiter, header, column names) from its start.

    ``table`` names the [data.<table>] section in hints. Raises :class:`DataError`.
    """
    fmt = _check_file(path, display)
    setting = f"data.{table}" if table else "data.<table>"
    delimiter = normalise_delimiter(delimiter, widths)
    if fmt == "parquet":
        if header is False or names or widths:
            raise DataError(
                "header, names and widths apply to text and Excel files; a Parquet file names "
                "its own columns",
                file=display,
                hint=f"remove them from [{setting}] and map columns under [{setting}.columns]",
            )
        import pyarrow.parquet as pq

        try:
            columns = list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"not a readable Parquet file ({_reason(exc)})", file=display) from exc
        return Layout("parquet", [str(c) for c in columns])
    if fmt == "excel":
        return _inspect_excel(path, display, sheet, header, names, setting)
    return _inspect_text(path, display, delimiter, encoding, header, names, widths, setting)


def read_table(
    path: Path,
    display: str,
    *,
    text_columns: list[str] | None = None,
    keep_na_text: list[str] | None = None,
    sheet: str | int | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    header: bool | None = None,
    names: list[str] | None = None,
    widths: list[int] | None = None,
    table: str | None = None,
    layout: Layout | None = None,
) -> RawTable:
    """Read a whole file. ``text_columns`` (column names) are kept as text, e.g. ids;
    in ``keep_na_text`` only an empty cell is missing ("NA", "None", "null" are text).

    ``layout`` is :func:`inspect_file`'s answer for the same file and settings (inspected here
    when None). Raises :class:`DataError` (file named) when the file is missing, empty, of an
    unsupported type, or cannot be parsed.
    """
    if layout is None:
        layout = inspect_file(
            path,
            display,
            sheet=sheet,
            delimiter=delimiter,
            encoding=encoding,
            header=header,
            names=names,
            widths=widths,
            table=table,
        )
    text_columns = text_columns or []
    keep = [c for c in (keep_na_text or []) if c in layout.columns]
    setting = f"data.{table}" if table else "data.<table>"
    if layout.format == "parquet":
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise DataError(f"not a readable Parquet file ({_reason(exc)})", file=display) from exc
        raw = RawTable(frame, display, layout=layout)
    elif layout.format == "excel":
        frame = _read_excel(
            path,
            display,
            sheet,
            dtypes=dict.fromkeys(text_columns, str),
            header=0 if layout.header else None,
            names=_names_to_pass(layout),
            na=_na_values(layout.columns, keep, by_name=True) if keep else None,
        )
        raw = RawTable(frame, display, first_row=2 if layout.header else 1, layout=layout)
    else:
        raw = _read_text(path, display, layout, text_columns, keep, setting)
    raw.frame.columns = [str(c) for c in raw.frame.columns]
    if len(raw.frame) == 0 or len(raw.frame.columns) == 0:
        raise DataError(
            "the file has no data rows",
            file=display,
            hint="export the table again, with a header row and at least one row",
        )
    return raw


def normalise_delimiter(delimiter: str | None, widths: list[int] | None = None) -> str | None:
    """A configured delimiter as the readers use it: one character, WHITESPACE or FIXED."""
    if widths:
        return FIXED
    if delimiter is None or delimiter == "":
        return None
    words = {
        "whitespace": WHITESPACE,
        "\\s+": WHITESPACE,
        " ": WHITESPACE,
        "space": WHITESPACE,
        "spaces": WHITESPACE,
        "fixed": FIXED,
        "fixed-width": FIXED,
        "tab": "\t",
        "\\t": "\t",
    }
    return words.get(delimiter.lower(), words.get(delimiter, delimiter))


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


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def looks_like_data(fields: list[str]) -> bool:
    """True when every non-empty field is a number or a date: a data row, not column names."""
    values = [f.strip().strip('"') for f in fields if f and f.strip()]
    if not values:
        return False
    return all(_NUMBER.fullmatch(v) or _DATE.fullmatch(v) for v in values)


def _full_names(names: list[str] | None, count: int, display: str, setting: str) -> list[str]:
    """``names`` padded to ``count`` columns; unnamed positions become column_<n> (1-based)."""
    names = list(names or [])
    if len(names) > count:
        raise DataError(
            f"{setting}.names lists {len(names)} columns but the file has {count}",
            file=display,
            hint=f"give at most {count} names, by position",
        )
    names += [""] * (count - len(names))
    out = [n.strip() if n and n.strip() else f"column_{i + 1}" for i, n in enumerate(names)]
    seen: dict[str, int] = {}
    for i, name in enumerate(out):  # a given name may equal a generated one: keep both
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            out[i] = f"{name}.{seen[name] - 1}"
    return out


def _na_values(columns: list[str], keep: list[str], *, by_name: bool = False) -> dict[Any, list]:
    """Per-column missing-value tokens: only "" in ``keep``, pandas' usual ones elsewhere."""
    out: dict[Any, list] = {}
    for i, col in enumerate(columns):
        key = col if by_name else i
        out[key] = [""] if col in keep else list(NA_TOKENS)
    return out


# --- Excel -------------------------------------------------------------------------------------


def _inspect_excel(
    path: Path,
    display: str,
    sheet: str | int | None,
    header: bool | None,
    names: list[str] | None,
    setting: str,
) -> Layout:
    probe = _read_excel(path, display, sheet, nrows=5, header=None)
    if probe.empty:
        return Layout("excel", [], header=header is not False)
    first = ["" if _is_na(v) else str(v) for v in probe.iloc[0].tolist()]
    detected = header is None and looks_like_data(first)
    has_header = header if header is not None else not detected
    count = probe.shape[1]
    if has_header and not names:
        columns = [str(c) for c in _read_excel(path, display, sheet, nrows=0).columns]
    else:
        columns = _full_names(names, count, display, setting)
    return Layout(
        "excel",
        columns,
        header=has_header,
        header_detected=detected,
        first_row=_shorten(" | ".join(first)),
        first_fields=first,
        names_given=bool(names),
    )


def _is_na(value: object) -> bool:
    try:
        return value is None or value != value  # NaN
    except Exception:  # pragma: no cover - exotic cell objects
        return False


def _read_excel(
    path: Path,
    display: str,
    sheet: str | int | None,
    *,
    nrows: int | None = None,
    dtypes: dict[str, type] | None = None,
    header: int | None = 0,
    names: list[str] | None = None,
    na: dict[str, list] | None = None,
) -> pd.DataFrame:
    import pandas as pd

    kwargs: dict[str, Any] = {}
    if na is not None:
        kwargs.update(keep_default_na=False, na_values=na)
    try:
        return pd.read_excel(
            path,
            sheet_name=0 if sheet is None else sheet,
            nrows=nrows,
            dtype=dtypes or None,
            engine="openpyxl",
            header=header,
            names=names,
            **kwargs,
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


# --- encodings ---------------------------------------------------------------------------------


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


def _chunks(path: Path, display: str):
    try:
        with _open_binary(path) as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk
    except DataError:
        raise
    except Exception as exc:  # corrupt archive
        raise DataError(f"cannot read the file ({_reason(exc)})", file=display) from exc


def choose_encoding(
    path: Path, display: str, configured: str | None, setting: str = "data.<table>"
) -> tuple[str, str | None]:
    """The encoding to read a text file with, and a note when it was detected.

    In order: the configured one; a byte-order mark (UTF-8, UTF-16, UTF-32); the NUL-byte
    pattern of UTF-16/UTF-32 without a mark; UTF-8 when every byte is valid UTF-8; else
    charset-normalizer's answer when it is unambiguous. Anything else is a DataError that says
    which setting to add — never a silent Latin-1 read that turns text into garbage.
    """
    if configured:
        try:
            codecs.lookup(configured)
        except LookupError as exc:
            raise DataError(
                f"unknown encoding '{configured}'",
                file=display,
                hint=f'fix {setting}.encoding in insight.toml (e.g. "utf-8", "cp1252", '
                '"shift_jis", "utf-16")',
            ) from exc
        return configured, None
    head = _head(path, display, 4096)
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, None
    wide = _wide_without_bom(head)
    if wide:
        return wide, f"{wide.upper()} without a byte-order mark (NUL-byte pattern)"
    nuls = head.count(0)
    if len(head) >= 16 and nuls > len(head) // 4:
        raise DataError(
            f"{nuls} of the first {len(head)} bytes are NUL: the file is binary, or UTF-16 / "
            "UTF-32 text without a byte-order mark",
            file=display,
            hint=f'if it is text, set {setting}.encoding = "utf-16-le" (or "utf-16-be", '
            '"utf-32"), or save it as UTF-8 CSV',
        )
    bad = _first_non_utf8(path, display)
    if bad is None:
        return "utf-8", None
    row, byte = bad
    sample = _detector_sample(path, display)
    encoding, candidates = guess_encoding(sample)
    where = f"row {row} has byte 0x{byte:02X}"
    if encoding is None:
        maybe = f" (it could be {', '.join(candidates[:4])})" if candidates else ""
        example = candidates[0] if candidates else "cp1252"
        raise DataError(
            f"not UTF-8 ({where}) and its encoding cannot be told with confidence{maybe}",
            file=display,
            hint=f'set {setting}.encoding = "..." in insight.toml (e.g. "{example}"), or save '
            "the file as UTF-8",
        )
    return encoding, f"not UTF-8 ({where}); read as {encoding} (detected)"


def _wide_without_bom(head: bytes) -> str | None:
    """'utf-16-le' / 'utf-16-be' / 'utf-32-le' / 'utf-32-be' from the NUL bytes of mostly
    ASCII text (every other or every fourth byte is NUL), else None."""
    n4 = len(head) // 4 * 4
    if n4 >= 8:
        groups = n4 // 4
        lanes = [head[i:n4:4].count(0) for i in range(4)]
        if min(lanes[1], lanes[2], lanes[3]) == groups and lanes[0] < groups:
            return _decodes(head[:n4], "utf-32-le")
        if min(lanes[0], lanes[1], lanes[2]) == groups and lanes[3] < groups:
            return _decodes(head[:n4], "utf-32-be")
    n = len(head) // 2 * 2
    if n < 8:
        return None
    pairs = n // 2
    even, odd = head[0:n:2].count(0), head[1:n:2].count(0)
    if odd >= 0.3 * pairs and even <= 0.02 * pairs:
        return _decodes(head[:n], "utf-16-le")
    if even >= 0.3 * pairs and odd <= 0.02 * pairs:
        return _decodes(head[:n], "utf-16-be")
    return None


def _decodes(data: bytes, encoding: str) -> str | None:
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.start < len(data) - 4:  # only a character cut at the end of the sample is ok
            return None
    return encoding


def _first_non_utf8(path: Path, display: str) -> tuple[int, int] | None:
    """(row, byte) of the first byte that is not valid UTF-8, or None when the file is UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    for chunk in _chunks(path, display):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            start = max(0, min(exc.start, len(chunk) - 1))
            return lines + chunk[:start].count(b"\n") + 1, chunk[start]
        lines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return lines + 1, 0
    return None


def _detector_sample(path: Path, display: str, limit: int = _DETECT_SAMPLE) -> bytes:
    """What an encoding detector needs to see: the file's start, then every later line that
    holds non-ASCII bytes, wherever it is (up to ``limit`` bytes in all)."""
    found: list[bytes] = []
    size = 0
    carry = b""
    offset = 0
    for chunk in _chunks(path, display):
        data = carry + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if cut == -1 and len(data) < 4 * _CHUNK:
            carry = data
            continue
        body, carry = (data[: cut + 1], data[cut + 1 :]) if cut != -1 else (data, b"")
        if offset == 0:  # the start of the file as it is (whole lines): context
            head = body[:_SNIFF_BYTES]
            if len(body) > _SNIFF_BYTES:
                head = head[: head.rfind(b"\n") + 1] or head
            found.append(head)
            size += len(head)
            body = body[len(head) :]
        offset += len(body)
        for line in _NON_ASCII_LINE.findall(body):
            found.append(line)
            size += len(line) + 1
        if size >= limit:
            break
    else:
        found.append(carry if offset == 0 else b"\n".join(_NON_ASCII_LINE.findall(carry)))
    return b"\n".join(f for f in found if f)[:limit]


# Characters Western text in Windows-1252 is made of (besides ASCII): Latin-1 letters and
# common punctuation. Left out on purpose: ‚ ƒ ˆ ‰ † ‡ ˜ Š š Œ œ Ž ž Ÿ ¢ ¤ ¦ ¬ ¯ — what
# Shift-JIS / GBK lead bytes look like when read as cp1252.
_WESTERN = set(
    "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿ"
    "“”‘’„–—€…•™©®°£¥«»‹›¿¡§·ªº±½¼¾²³µ´¨\u00a0"
)


def _western_plausible(text: str) -> bool:
    """True when ``text`` reads like Western text: its non-ASCII characters are common
    accented letters and punctuation, and the letters sit inside words (next to ASCII
    letters), as é in "café" does — not in runs, as CJK bytes read as cp1252 do."""
    odd = [(i, c) for i, c in enumerate(text) if ord(c) > 127]
    if not odd:
        return True
    if sum(c in _WESTERN for _, c in odd) < 0.9 * len(odd):
        return False
    return _letters_in_words(text)


def _letters_in_words(text: str, share: float = 0.8) -> bool:
    """Whether the non-ASCII letters of ``text`` sit inside words, next to an ASCII letter (or
    alone between ASCII characters), as é in "café" does — not in runs, as CJK or Cyrillic
    bytes read as a Latin code page do."""
    letters = [i for i, c in enumerate(text) if ord(c) > 127 and c.isalpha()]
    if not letters:
        return True

    def in_word(i: int) -> bool:
        near = text[max(i - 1, 0) : i] + text[i + 1 : i + 2]
        return any(ch.isascii() and ch.isalpha() for ch in near) or near.isascii()

    return sum(in_word(i) for i in letters) >= share * len(letters)


_JAPANESE = ("cp932", "shift_jis", "euc_jp", "euc_jis", "iso2022_jp")
_KOREAN = ("cp949", "euc_kr", "johab", "iso2022_kr")
_CHINESE = ("gb18030", "gbk", "gb2312", "big5", "cp950", "hz")


def _share(chars: list[str], test) -> float:
    return sum(1 for c in chars if test(c)) / len(chars) if chars else 0.0


def _encodable(char: str, encoding: str) -> bool:
    """``char`` is one of the two-byte characters of ``encoding`` (Python's euc_kr also spells
    any Hangul syllable as an 8-byte make-up sequence: that one does not count)."""
    try:
        return len(char.encode(encoding)) == 2
    except UnicodeEncodeError:
        return False


def _cjk_plausible(encoding: str, text: str) -> bool:
    """Whether ``text`` (``sample`` decoded as a CJK ``encoding``) reads like that language,
    not like bytes of another one: Japanese has kana (not runs of half-width katakana),
    Korean common Hangul syllables, Chinese common Han characters. Short samples fool
    charset-normalizer here (it rated Shift-JIS read as Korean as clean), so this decides."""
    wide = [c for c in text if ord(c) > 127]
    if encoding.startswith(_JAPANESE):
        kana = _share(wide, lambda c: "\u3040" <= c <= "\u30ff")
        half = _share(wide, lambda c: "\uff61" <= c <= "\uff9f")
        return kana >= 0.15 and half <= 0.1
    if encoding.startswith(_KOREAN):
        hangul = [c for c in wide if "\uac00" <= c <= "\ud7a3"]
        common = _share(hangul, lambda c: _encodable(c, "euc_kr"))
        return len(hangul) >= 0.5 * len(wide) and common >= 0.9
    if encoding.startswith(_CHINESE):
        han = [c for c in wide if "\u4e00" <= c <= "\u9fff"]
        kana = _share(wide, lambda c: "\u3040" <= c <= "\u30ff" or "\uff61" <= c <= "\uff9f")
        # the frequent characters: GB2312 level 1 (lead bytes B0-D7), Big5 A4-C6
        basic, low, high = (
            ("big5", 0xA4, 0xC6)
            if encoding.startswith(("big5", "cp950"))
            else ("gb2312", 0xB0, 0xD7)
        )
        common = _share(han, lambda c: _encodable(c, basic) and low <= c.encode(basic)[0] <= high)
        return len(han) >= 0.5 * len(wide) and kana == 0 and common >= 0.8
    return True


_WORD = re.compile(r"[^\W\d_]+")


def _cased_plausible(text: str, coherence: float) -> bool:
    """A single-byte reading (Cyrillic, Greek, Central European ...) is plausible when its
    words with non-ASCII letters are cased as words are (Москва, МОСКВА, москва — not
    мОСКВА, what KOI8-R bytes read as cp1251 look like); an uncased script (Thai, Hebrew,
    Arabic) only when charset-normalizer recognised the language (coherence >= 0.3)."""
    words = [w for w in _WORD.findall(text) if not w.isascii() and len(w) >= 2]
    if not words:
        return coherence >= 0.3
    letters = [c for w in words for c in w if not c.isascii()]
    if _share(letters, lambda c: c.isupper() or c.islower()) < 0.9:
        return coherence >= 0.3
    if _share(words, lambda w: w[1:].islower() or w.isupper()) < 0.9:
        return False
    if len(words) >= 3 and _share(words, str.isupper) >= 0.8:
        return False  # all in capitals: more likely lower case read with the wrong table
    if _share(letters, lambda c: unicodedata.name(c, "").startswith("LATIN")) >= 0.5:
        # Latin with diacritics (Polish, Czech ...): accented letters sit among ASCII ones
        return _letters_in_words(text, 0.5)
    return True


def guess_encoding(sample: bytes) -> tuple[str | None, list[str]]:
    """The encoding of ``sample`` when the answer is clear, else (None, candidates).

    Windows-1252 (Excel's Western export) is taken when the sample decodes as cp1252 into
    plausible Western text (accented letters inside words). Otherwise charset-normalizer
    proposes; a CJK reading must also look like its language (:func:`_cjk_plausible`), other
    readings must be among the least chaotic (within 0.02). The readings left must agree on
    the text, or one must fit its language clearly better (coherence). Shift-JIS read as
    Korean or as a Western code page gives other text, so such a sample is refused unless one
    reading is clearly right.
    """
    if not sample:
        return None, []
    from charset_normalizer import from_bytes

    try:
        if _western_plausible(sample.decode("cp1252")):
            return "cp1252", ["cp1252"]
    except UnicodeDecodeError:
        pass
    results = [r for r in from_bytes(sample) if r.chaos <= 0.15]
    if b"\x00" not in sample:  # UTF-16/32 text has NULs wherever it has ASCII (a CSV does)
        results = [r for r in results if not r.encoding.startswith(("utf_16", "utf_32"))]
    if not results:
        return None, []
    low = min(r.chaos for r in results)
    kept = []  # (result, text) of the readings that look like their language
    for r in sorted(results, key=lambda r: (r.chaos, -r.coherence)):
        try:
            text = sample.decode(r.encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if r.encoding.startswith(_JAPANESE + _KOREAN + _CHINESE):
            plausible = _cjk_plausible(r.encoding, text)
        elif r.encoding.startswith(("utf_16", "utf_32")):
            plausible = r.chaos <= low + 0.02
        else:
            plausible = _cased_plausible(text, r.coherence)
        if plausible:
            kept.append((r, text))
    if not kept:
        return None, [r.encoding for r in results if r.chaos <= low + 0.02]
    best = min(r.chaos for r, _ in kept)
    kept = [(r, t) for r, t in kept if r.chaos <= best + 0.05]
    candidates = list(dict.fromkeys(r.encoding for r, _ in kept))
    if len({t for _, t in kept}) == 1:
        return kept[0][0].encoding, candidates
    kept.sort(key=lambda rt: -rt[0].coherence)
    first, second = kept[0][0].coherence, kept[1][0].coherence
    if first >= 0.2 and first - second >= 0.1:
        return kept[0][0].encoding, candidates
    return None, candidates


def _decode_sample(head: bytes, enc: str, complete: bool) -> str:
    # The sample may end in the middle of a multi-byte character: ignore only a ragged tail.
    try:
        return head.decode(enc)
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4 and not complete:
            return head[: exc.start].decode(enc)
        raise


# --- delimited and fixed-width text ------------------------------------------------------------


def sniff_delimiter(sample: str) -> str:
    """Guess the delimiter of a text sample: , ; tab or |, else WHITESPACE when every line
    splits into the same number (2+) of fields at runs of spaces; comma when unsure."""
    lines = [line for line in sample.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if not any(d in first for d in ",;\t|"):
        counts = {len(line.split()) for line in lines[:_SNIFF_RECORDS]}
        if len(counts) == 1 and counts.pop() >= 2:
            return WHITESPACE
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


def _records(text: str, delimiter: str, limit: int) -> list[list[str]]:
    """The first ``limit`` non-blank records of ``text`` split by ``delimiter``."""
    out: list[list[str]] = []
    if delimiter == WHITESPACE:
        for line in text.splitlines():
            if line.strip():
                out.append(line.split())
                if len(out) >= limit:
                    break
        return out
    try:
        for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            if record and any(f.strip() for f in record):
                out.append(record)
                if len(out) >= limit:
                    break
    except csv.Error:
        pass  # a broken quote in the sample: what was read so far is enough to look at
    return out


def _inspect_text(
    path: Path,
    display: str,
    delimiter: str | None,
    encoding: str | None,
    header: bool | None,
    names: list[str] | None,
    widths: list[int] | None,
    setting: str,
) -> Layout:
    enc, note = choose_encoding(path, display, encoding, setting)
    head = _head(path, display, _SNIFF_BYTES)
    complete = len(head) < _SNIFF_BYTES
    try:
        sample = _decode_sample(head, enc, complete)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot decode the file as {enc} ({_reason(exc)})",
            file=display,
            hint=f'set {setting}.encoding = "..." to the file\'s encoding, or save it as UTF-8',
        ) from exc
    if sample.startswith("\ufeff"):
        sample = sample[1:]
    if not complete:  # the last line of the sample may be cut short
        sample = sample[: max(sample.rfind("\n"), 0)] or sample
    lines = [line for line in sample.splitlines() if line.strip()]
    if not lines:
        raise DataError("the file has no header row", file=display)
    first_line = _shorten(lines[0].strip())
    sniffed = delimiter is None
    delim = delimiter or sniff_delimiter(sample)
    layout = Layout(
        "csv",
        [],
        encoding=enc,
        encoding_note=note,
        delimiter=delim,
        delimiter_detected=sniffed,
        first_row=first_line,
        widths=list(widths) if widths else None,
        names_given=bool(names),
    )
    if delim == FIXED:
        first = _fwf_probe(path, display, layout, header=None, nrows=1)
        fields = ["" if _is_na(v) else str(v) for v in first.iloc[0].tolist()] if len(first) else []
        count = first.shape[1]
    else:
        records = _records(sample, delim, _SNIFF_RECORDS)
        fields = records[0] if records else []
        count = max((len(r) for r in records), default=0)
    detected = header is None and looks_like_data(fields)
    layout.first_fields = [str(f).strip() for f in fields]
    layout.header = header if header is not None else not detected
    layout.header_detected = detected
    if not layout.header or names:
        layout.columns = _full_names(names, count, display, setting)
    elif delim == FIXED:
        layout.columns = [str(c) for c in _fwf_probe(path, display, layout, header=0).columns]
    else:
        layout.columns = _csv_header(path, display, layout)
    return layout


def _csv_header(path: Path, display: str, layout: Layout) -> list[str]:
    import pandas as pd

    try:
        frame = pd.read_csv(
            path,
            nrows=0,
            dtype=str,
            encoding=layout.encoding,
            **_sep(layout.delimiter),
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read the header row ({_reason(exc)})", file=display) from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot decode the header row as {layout.encoding} ({_reason(exc)})", file=display
        ) from exc
    except (ValueError, OverflowError, TypeError, OSError, MemoryError) as exc:
        raise DataError(f"cannot parse the CSV file ({_reason(exc)})", file=display) from exc
    return [str(c) for c in frame.columns]


def _sep(delimiter: str | None) -> dict[str, Any]:
    if delimiter == WHITESPACE:
        return {"sep": r"\s+"}
    return {"sep": delimiter or ","}


def _colspecs(layout: Layout) -> Any:
    if not layout.widths:
        return "infer"
    specs, start = [], 0
    for width in layout.widths:
        specs.append((start, start + width))
        start += width
    return specs


def _fwf_probe(
    path: Path, display: str, layout: Layout, *, header: int | None, nrows: int = 100
) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_fwf(
            path,
            colspecs=_colspecs(layout),
            encoding=layout.encoding,
            header=header,
            nrows=nrows,
            infer_nrows=100,
            dtype=str,
        )
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot decode the file as {layout.encoding} ({_reason(exc)})", file=display
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError("the file has no rows", file=display) from exc
    except Exception as exc:  # read_fwf's inference fails in several ways on odd files
        raise DataError(
            f"cannot read fixed-width columns ({_reason(exc)})",
            file=display,
            hint="give the column widths: data.<table>.widths = [5, 9, 3, 8]",
        ) from exc


def _text_options(layout: Layout, text_columns: list[str], keep: list[str]) -> dict[str, Any]:
    """pandas' reading options for a text file, whole or in chunks: ``text_columns`` kept as
    text, every line a record (blank ones too, so row numbers hold), "NA" and the like kept
    as text in the ``keep`` columns."""
    dtype = {c: str for c in text_columns if c in layout.columns} or None
    kwargs: dict[str, Any] = {
        "encoding": layout.encoding,
        "skip_blank_lines": False,
        "dtype": dtype,
        "header": 0 if layout.header else None,
        "names": _names_to_pass(layout),
    }
    if keep:
        kwargs.update(keep_default_na=False, na_values=_na_values(layout.columns, keep))
    return kwargs


def _read_text(
    path: Path,
    display: str,
    layout: Layout,
    text_columns: list[str],
    keep: list[str],
    setting: str,
) -> RawTable:
    import pandas as pd

    kwargs = _text_options(layout, text_columns, keep)
    first_row = 2 if layout.header else 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' ParserWarning chatter; problems are counted
            if layout.delimiter == FIXED:
                frame = pd.read_fwf(path, colspecs=_colspecs(layout), infer_nrows=100, **kwargs)
            else:
                frame = pd.read_csv(path, low_memory=False, **_sep(layout.delimiter), **kwargs)
        if isinstance(frame.index, pd.RangeIndex):
            return RawTable(
                frame,
                display,
                layout.encoding,
                layout.delimiter,
                first_row=first_row,
                layout=layout,
            )
        # pandas made the first column an index: the first data row has an extra field.
    except pd.errors.ParserError:
        pass  # ragged rows: find them and read the rest (below)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot decode the file as {layout.encoding} ({_reason(exc)})",
            file=display,
            hint=f'set {setting}.encoding = "..." to the file\'s encoding, or save it as UTF-8',
        ) from exc
    except LookupError as exc:
        raise DataError(
            f"unknown encoding '{layout.encoding}'",
            file=display,
            hint=f"fix {setting}.encoding in insight.toml",
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError("the file has no header row", file=display) from exc
    except Exception as exc:  # csv module and C parser errors of every kind
        raise DataError(f"cannot parse the CSV file ({_reason(exc)})", file=display) from exc
    if layout.delimiter == FIXED:  # pragma: no cover - read_fwf pads short lines, never ragged
        raise DataError("cannot read fixed-width columns", file=display)
    return _read_ragged_csv(path, display, layout, keep, setting)


def read_text_chunks(
    path: Path,
    display: str,
    layout: Layout,
    *,
    text_columns: list[str] | None = None,
    keep_na_text: list[str] | None = None,
    rows: int,
) -> Iterator[RawTable]:
    """A delimited text file ``rows`` records at a time, read as :func:`read_table` reads
    the whole file (same options, row numbers continuing across chunks).

    For large files, so that loading holds one chunk, not the file. pandas infers each
    chunk's column types on its own; the validator parses every column anyway. Any reading
    problem (ragged rows, an undecodable byte, a parser error) is raised as it is; the caller
    reads the whole file instead, which reports it as :func:`read_table` does.
    """
    import pandas as pd

    if layout.format != "csv" or layout.delimiter == FIXED:
        raise ValueError(f"{display}: only delimited text is read in chunks")
    text_columns = text_columns or []
    keep = [c for c in (keep_na_text or []) if c in layout.columns]
    kwargs = _text_options(layout, text_columns, keep)
    first_row = 2 if layout.header else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = pd.read_csv(path, chunksize=rows, **_sep(layout.delimiter), **kwargs)
        with reader:
            for frame in reader:
                if not isinstance(frame.index, pd.RangeIndex):
                    # pandas made the first column an index: a row has an extra field
                    raise pd.errors.ParserError("a row has more fields than the header")
                start = int(frame.index.start)
                frame = frame.reset_index(drop=True)
                frame.columns = [str(c) for c in frame.columns]
                yield RawTable(
                    frame,
                    display,
                    layout.encoding,
                    layout.delimiter,
                    first_row=first_row + start,
                    layout=layout,
                )


def _names_to_pass(layout: Layout) -> list[str] | None:
    """Column names for pandas: ours when there is no header row or names were given; else
    None, so pandas reads the header row itself (as it did when inspecting)."""
    return layout.columns if (not layout.header or layout.names_given) else None


def _read_ragged_csv(
    path: Path, display: str, layout: Layout, keep: list[str], setting: str
) -> RawTable:
    """Read a CSV whose rows have the wrong number of fields: skip and report those rows.

    The csv module reads every record with the line it starts on; the good records become the
    frame directly (as text; the validator parses numbers and dates), so row numbers and rows
    always line up — a round trip through pandas re-parsed quoted line breaks differently.
    A record whose extra fields are all empty (a delimiter at the end of the line) is kept.
    """
    import pandas as pd

    enc = layout.encoding or "utf-8"
    try:
        text = _head(path, display, -1).decode(enc)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot decode the file as {enc} ({_reason(exc)})",
            file=display,
            hint=f'set {setting}.encoding = "..." to the file\'s encoding, or save it as UTF-8',
        ) from exc
    if text.startswith("\ufeff"):
        text = text[1:]
    width = len(layout.columns)
    records: list[list[str]] = []
    bad_lines: list[int] = []
    row_numbers: list[int] = []
    seen_header = not layout.header

    def take(record: list[str], line: int) -> None:
        nonlocal seen_header
        if not seen_header:
            seen_header = True
            return
        if not record:
            return
        if len(record) > width and not any(f.strip() for f in record[width:]):
            record = record[:width]
        if len(record) != width:
            bad_lines.append(line)
        else:
            records.append(record)
            row_numbers.append(line)

    if layout.delimiter == WHITESPACE:
        for number, line in enumerate(text.splitlines(), start=1):
            take(line.split(), number)
    else:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter or ",")
        start = 1
        try:
            for record in reader:
                take(record, start)
                start = reader.line_num + 1
        except csv.Error as exc:
            raise DataError(
                f"cannot parse the CSV file ({_reason(exc)})", file=display, row=start
            ) from exc
    if not seen_header:
        raise DataError("the file has no header row", file=display)
    frame = pd.DataFrame(records, columns=layout.columns, dtype="string")
    for col in frame.columns:  # missing cells as read_csv marks them
        tokens = [""] if col in keep else list(NA_TOKENS)
        frame[col] = frame[col].mask(frame[col].isin(tokens).fillna(False))
    return RawTable(
        frame,
        display,
        enc,
        layout.delimiter,
        bad_lines,
        row_numbers,
        first_row=2 if layout.header else 1,
        layout=layout,
    )
