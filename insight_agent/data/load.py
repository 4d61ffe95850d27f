"""Load and validate a workspace's tables into clean, canonical DataFrames.

``load_dataset`` is the one entry point the rest of Insight uses; ``validate`` runs the same
checks and returns the report without raising. The rules are documented in docs/data.md:

* a required value that is missing or unreadable drops the row; an optional one is cleared;
* every problem is recorded with file, row numbers (header = row 1) and the file's column name;
* a table fails when more than ``max_drop_share`` of its rows would be dropped;
* negative order amounts are returns: kept apart from orders, not dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from insight_agent.config import TABLES, Settings, TableSource
from insight_agent.data import parse
from insight_agent.data.ids import IdSet, isin
from insight_agent.data.readers import Layout, RawTable, looks_like_data
from insight_agent.data.report import MAX_ROWS_KEPT, Problem, TableReport, ValidationFailed
from insight_agent.data.report import ValidationReport as ValidationReport
from insight_agent.data.schema import SCHEMA, ColumnMatch, Table, match_columns, normalise
from insight_agent.data.sources import TableReader, open_table
from insight_agent.errors import DataError

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
#: Column of the loaded reviews holding each review's row number in its source file.
SOURCE_ROW = "source_row"
#: An orders file larger than this is validated STREAM_ROWS records at a time, each chunk's
#: rows going straight to the Parquet cache (:class:`TableSink`), so loading holds one chunk
#: and not the file: at 13M order lines the whole file took 3.8 GB.
STREAM_BYTES = 128 * 1024 * 1024
STREAM_ROWS = 1_000_000
#: An orders file larger than this is first offered to the engine
#: (:mod:`insight_agent.engine.plainload`): DuckDB proves that no row would be dropped or
#: changed and copies the file into the cache; otherwise the chunks above. At 1M customers
#: (13M lines) the whole load took 33 s instead of 60 s.
ENGINE_BYTES = 32 * 1024 * 1024


class TableSink(Protocol):
    """Where a table validated in chunks goes (the Parquet cache's writer)."""

    def part(self, table: str, frame: pd.DataFrame, *, as_text: tuple[str, ...] = ()) -> None:
        """Append the validated rows of one chunk to ``table``. ``as_text`` columns were read
        as text: the table gets the type a whole-file read infers for them (numbers when
        every value is one)."""
        ...

    def discard(self, table: str) -> None:
        """Forget what was written to ``table`` (it is read whole instead)."""
        ...

    def load_plain(self, spec: Any, known: Any) -> tuple[Any, pd.DataFrame] | None:
        """Optional: check and copy a plain orders file in the engine
        (:func:`insight_agent.engine.plainload.load_plain`); (its result, an empty frame
        with the tables' columns) or None when the pandas validator must read it."""
        ...

    def distinct(self, tables: list[str], column: str) -> pd.Series:
        """The sorted distinct non-missing values of ``column`` over ``tables``' rows."""
        ...


@dataclass
class Dataset:
    """The validated tables. ``customers`` and ``orders`` always exist (maybe empty)."""

    customers: pd.DataFrame
    orders: pd.DataFrame
    returns: pd.DataFrame
    reviews: pd.DataFrame | None
    campaigns: pd.DataFrame | None
    report: ValidationReport
    fingerprint: str
    sources: dict[str, str] = field(default_factory=dict)  # table -> file shown to the user
    # tables validated in chunks straight into the cache: rows written (their frames here
    # are empty, with the columns; read them from the cache)
    streamed: dict[str, int] = field(default_factory=dict)

    def rows(self, table: str) -> int:
        """Rows of a validated table (0 when the workspace has none), streamed or not."""
        if table in self.streamed:
            return self.streamed[table]
        frame = getattr(self, table)
        return 0 if frame is None else len(frame)


class _Checker:
    """Row bookkeeping for one table: drops, cleared values and the problems behind them."""

    def __init__(
        self,
        table: Table,
        raw: RawTable,
        mapping: dict[str, str],
        report: ValidationReport,
        table_report: TableReport,
    ) -> None:
        self.table = table
        self.file = raw.file
        self.report = report
        self.tr = table_report
        self.source = mapping  # canonical -> column name in the file
        frame = raw.frame
        n = len(frame)
        if raw.row_numbers is not None:
            self.rows = np.asarray(raw.row_numbers, dtype=np.int64)
        else:  # the first record is row 2 after a header row, row 1 without one
            self.rows = np.arange(raw.first_row, n + raw.first_row, dtype=np.int64)
        self.raw = frame
        self.drop = np.zeros(n, dtype=bool)
        blank = frame.isna().all(axis=1).to_numpy()
        if blank.any():
            self.drop |= blank
            self.tr.blank_rows += int(blank.sum())
        self.blank = blank

    def flag(
        self,
        mask: np.ndarray,
        code: str,
        canon: str | None,
        message: str,
        *,
        action: str,
        drop: bool,
        severity: str = "warning",
        values: pd.Series | None = None,
    ) -> None:
        """Record ``mask`` rows under one problem; drop them when ``drop``."""
        mask = mask & ~self.blank
        count = int(mask.sum())
        if count == 0:
            return
        if drop:
            # Every problem is reported, but a dropped row counts once, under its first reason.
            new = mask & ~self.drop
            if new.any():
                self.tr.dropped[code] = self.tr.dropped.get(code, 0) + int(new.sum())
            self.drop |= mask
        src = self.source.get(canon, canon) if canon else None
        self.report.add(
            Problem(
                table=self.table.name,
                file=self.file,
                code=code,
                message=message,
                severity=severity,  # type: ignore[arg-type]
                column=src,
                rows=self.rows[mask][:MAX_ROWS_KEPT].tolist(),
                count=count,
                action=action,
                example=parse.example(values, mask) if values is not None else None,
            )
        )


def _raw(checker: _Checker, canon: str) -> pd.Series:
    return checker.raw[checker.source[canon]]


def _required_or_optional(
    checker: _Checker, canon: str, bad: np.ndarray, what: str, raw: pd.Series, required: bool
) -> None:
    code = f"unparseable_{what.split()[0]}"
    if required:
        checker.flag(
            bad,
            code,
            canon,
            f"not a valid {what}",
            action="row dropped",
            drop=True,
            values=raw,
        )
    else:
        checker.flag(
            bad,
            code,
            canon,
            f"not a valid {what}",
            action="value cleared",
            drop=False,
            values=raw,
        )


def _convert_columns(
    checker: _Checker,
    settings: Settings,
    also_required: frozenset[str] = frozenset(),
    not_required: frozenset[str] = frozenset(),
) -> dict[str, pd.Series]:
    """Parse every mapped column by kind; flag missing required values and unreadable ones.

    ``also_required`` makes optional columns required for this file (e.g. quantity and
    unit_price when orders have no amount column); ``not_required`` the reverse (review text
    when a title can stand in for it; the caller checks).
    """
    out: dict[str, pd.Series] = {}
    source = settings.data.tables.get(checker.table.name)
    date_format = source.date_format if source is not None else None
    for col in checker.table.columns:
        if col.name not in checker.source:
            continue
        required = (col.required or col.name in also_required) and col.name not in not_required
        raw = _raw(checker, col.name)
        if col.kind == "id":
            values = parse.parse_ids(raw)
        elif col.kind == "text":
            values = parse.parse_text(raw)
        elif col.kind == "date":
            values, bad = parse.parse_dates(
                raw, dayfirst=settings.data.dayfirst, date_format=date_format
            )
            what = f"date in the format {date_format}" if date_format else "date"
            _required_or_optional(checker, col.name, bad, what, raw, required)
        elif col.kind in ("number", "integer"):
            values, bad = parse.parse_numbers(raw)
            _required_or_optional(checker, col.name, bad, "number", raw, required)
        else:
            values, bad = parse.parse_flags(raw)
            checker.flag(
                bad,
                "unparseable_flag",
                col.name,
                "not a yes/no value (use 1/0, yes/no)",
                action="row dropped",
                drop=True,
                values=raw,
            )
        if required:
            missing = values.isna().to_numpy() & ~parse.present(raw)
            checker.flag(
                missing,
                "missing_value",
                col.name,
                f"missing {col.name}",
                action="row dropped",
                drop=True,
            )
        out[col.name] = values
    return out


def _future(values: pd.Series, today: dt.date) -> np.ndarray:
    limit = pd.Timestamp(today) + pd.Timedelta(days=1)
    return (values >= limit).fillna(False).to_numpy(dtype=bool)


def _finish(checker: _Checker, cols: dict[str, pd.Series], extras: list[str]) -> pd.DataFrame:
    """Assemble kept rows: canonical columns in contract order, then the file's extra columns."""
    keep = ~checker.drop
    data = {
        name: cols[name][keep].reset_index(drop=True)
        for name in checker.table.names
        if name in cols
    }
    for name in cols:  # made while cleaning, e.g. text_raw: the text as written
        if name not in data:
            data[name] = cols[name][keep].reset_index(drop=True)
    for extra in extras:
        if extra not in data:
            data[extra] = checker.raw[extra][keep].reset_index(drop=True)
    frame = pd.DataFrame(data)
    checker.tr.rows_kept += len(frame)
    return frame


def _check_drop_share(report: ValidationReport, tr: TableReport, share: float) -> None:
    read = tr.rows_read - tr.blank_rows
    if read and tr.rows_dropped / read > share:
        report.add(
            Problem(
                table=tr.table,
                file=tr.file,
                code="too_many_dropped",
                severity="error",
                message=(
                    f"{tr.rows_dropped:,} of {read:,} rows ({tr.rows_dropped / read:.1%}) would "
                    f"be dropped, more than the {share:.0%} allowed"
                ),
                action="fix the rows listed, or raise data.max_drop_share in insight.toml",
            )
        )


def _clean_customers(
    checker: _Checker, settings: Settings, today: dt.date, extras: list[str]
) -> pd.DataFrame:
    cols = _convert_columns(checker, settings)
    ids = cols["customer_id"]
    dup = ids.duplicated(keep="first").to_numpy() & ids.notna().to_numpy()
    checker.flag(
        dup,
        "duplicate_id",
        "customer_id",
        "duplicate customer_id",
        action="later rows dropped, first kept",
        drop=True,
        values=ids,
    )
    if "signup_date" in cols:
        future = _future(cols["signup_date"], today)
        checker.flag(
            future,
            "future_date",
            "signup_date",
            f"date after today ({today})",
            action="value cleared",
            drop=False,
            values=_raw(checker, "signup_date"),
        )
        cols["signup_date"] = cols["signup_date"].mask(future)
    for name, low, high in (("age", 0, 120), ("income", 0, settings.data.max_amount)):
        if name in cols:
            v = cols[name]
            out_of_range = ((v < low) | (v > high)).fillna(False).to_numpy(dtype=bool)
            checker.flag(
                out_of_range,
                "out_of_range",
                name,
                f"{name} outside {low}–{high:,.0f}",
                action="value cleared",
                drop=False,
                values=_raw(checker, name),
            )
            cols[name] = v.mask(out_of_range)
    return _finish(checker, cols, extras)


def _clean_orders(
    checker: _Checker,
    settings: Settings,
    today: dt.date,
    extras: list[str],
    known_customers: IdSet | None,
) -> pd.DataFrame:
    has_amount = "amount" in checker.source
    needed = frozenset({"amount"} if has_amount else {"quantity", "unit_price"})
    cols = _convert_columns(checker, settings, needed)
    amount = cols["amount"] if has_amount else cols["quantity"] * cols["unit_price"]
    huge = (amount.abs() > settings.data.max_amount).fillna(False).to_numpy(dtype=bool)
    checker.flag(
        huge,
        "out_of_range",
        "amount" if "amount" in cols else "unit_price",
        f"amount above {settings.data.max_amount:,.0f} (data.max_amount)",
        action="row dropped",
        drop=True,
        values=amount,
    )
    cols["amount"] = amount
    future = _future(cols["order_date"], today)
    checker.flag(
        future,
        "future_date",
        "order_date",
        f"order date after today ({today})",
        action="row dropped",
        drop=True,
        values=_raw(checker, "order_date"),
    )
    if known_customers is not None:
        ids = cols["customer_id"]
        unknown = ids.notna().to_numpy() & ~isin(ids, known_customers)
        checker.flag(
            unknown,
            "unknown_customer",
            "customer_id",
            "customer_id not in the customers table",
            action="row dropped",
            drop=True,
            values=ids,
        )
    frame = _finish(checker, cols, extras)
    return frame


def _clean_reviews(
    checker: _Checker,
    settings: Settings,
    today: dt.date,
    extras: list[str],
    known_customers: IdSet | None,
) -> pd.DataFrame:
    has_title = "title" in checker.source
    cols = _convert_columns(
        checker, settings, not_required=frozenset({"text"} if has_title else ())
    )
    as_read = cols["text"]
    for name in ("text", "title"):
        if name not in cols:
            continue
        unhtml, changed = parse.clean_html(cols[name])
        keep_as = _free_name(f"{name}_raw", checker.raw.columns)
        checker.flag(
            changed,
            "html",
            name,
            "HTML tags or entities (&amp;, <br>) in the text",
            action=f"removed; the text as written is kept in column {keep_as}",
            drop=False,
            severity="info",
        )
        if changed.any():
            cols[keep_as] = cols[name].where(changed)
            cols[name] = parse.parse_text(unhtml)
    text = cols["text"]
    if has_title:
        # "Title. Text": the title is part of what the review says (and kept on its own too).
        title = cols["title"]
        stop = title.str.contains(r"[.!?…:]$", regex=True).fillna(False).to_numpy(dtype=bool)
        lead = title.where(stop, title + ".")
        text = (lead + " " + text).fillna(text).fillna(title)
        checker.flag(
            text.isna().to_numpy(),
            "missing_value",
            "text",
            "missing text (and no title)",
            action="row dropped",
            drop=True,
        )
    else:
        emptied = (text.isna() & as_read.notna()).to_numpy(dtype=bool)
        checker.flag(
            emptied,
            "missing_value",
            "text",
            "text empty once HTML is removed",
            action="row dropped",
            drop=True,
            values=as_read,
        )
    cleaned = text.str.replace(_CONTROL, " ", regex=True)
    changed = (cleaned != text).fillna(False).to_numpy(dtype=bool)
    checker.flag(
        changed,
        "control_characters",
        "text",
        "control characters in the text",
        action="replaced by spaces",
        drop=False,
        severity="info",
    )
    cap = settings.data.max_review_chars
    too_long = (cleaned.str.len() > cap).fillna(False).to_numpy(dtype=bool)
    checker.flag(
        too_long,
        "text_truncated",
        "text",
        f"text longer than {cap:,} characters",
        action=f"truncated to {cap:,} characters (data.max_review_chars)",
        drop=False,
        severity="info",
    )
    cols["text"] = cleaned.where(~too_long, cleaned.str.slice(0, cap))
    if "rating" in cols:
        r = cols["rating"]
        bad = ((r < 0) | (r > 5)).fillna(False).to_numpy(dtype=bool)
        checker.flag(
            bad,
            "out_of_range",
            "rating",
            "rating outside 0–5",
            action="value cleared",
            drop=False,
            values=_raw(checker, "rating"),
        )
        cols["rating"] = r.mask(bad)
    if "date" in cols:
        future = _future(cols["date"], today)
        checker.flag(
            future,
            "future_date",
            "date",
            f"date after today ({today})",
            action="value cleared",
            drop=False,
            values=_raw(checker, "date"),
        )
        cols["date"] = cols["date"].mask(future)
    if "customer_id" in cols and known_customers is not None:
        ids = cols["customer_id"]
        unknown = ids.notna().to_numpy() & ~isin(ids, known_customers)
        checker.flag(
            unknown,
            "unknown_customer",
            "customer_id",
            "customer_id not in the customers table",
            action="kept, not linked to a customer",
            drop=False,
            values=ids,
        )
        cols["customer_id"] = ids.mask(unknown)
    if "review_id" in cols:
        ids = cols["review_id"]
        dup = ids.duplicated(keep="first").to_numpy() & ids.notna().to_numpy()
        checker.flag(
            dup,
            "duplicate_id",
            "review_id",
            "duplicate review_id",
            action="later rows dropped, first kept",
            drop=True,
            values=ids,
        )
    frame = _finish(checker, cols, extras)
    frame["review_id"] = _review_ids(frame)
    # The row in the file (as validation messages count rows), so an export of matching
    # reviews can be traced back to the export the user loaded.
    frame[SOURCE_ROW] = checker.rows[~checker.drop]
    return frame[["review_id", *[c for c in frame.columns if c != "review_id"]]]


def _free_name(name: str, taken: Any) -> str:
    """``name``, or ``name_1``, ``name_2`` ... when the file already has a column called that."""
    out, i = name, 0
    while out in taken:
        i += 1
        out = f"{name}_{i}"
    return out


def _review_ids(frame: pd.DataFrame) -> pd.Series:
    """Keep given ids; give the others a stable id from a hash of their content."""
    given = frame["review_id"] if "review_id" in frame else pd.Series(None, index=frame.index)
    need = given.isna().to_numpy()
    if not need.any():
        return given
    parts = [
        frame[c].astype("string").fillna("") for c in ("text", "customer_id", "date") if c in frame
    ]
    key = parts[0].str.cat(parts[1:], sep="\x1f") if len(parts) > 1 else parts[0]
    hashes = pd.Series(
        [hashlib.sha1(k.encode("utf-8")).hexdigest()[:12] for k in key[need]],
        index=frame.index[need],
    )
    # Identical anonymous reviews still need distinct ids: number repeats in file order.
    seq = hashes.groupby(hashes).cumcount()
    made = "r" + hashes + seq.map(lambda i: f"-{i + 1}" if i else "")
    out = given.astype("string")
    out[need] = made
    return out


def _clean_campaigns(
    checker: _Checker,
    settings: Settings,
    today: dt.date,
    extras: list[str],
    known_customers: IdSet | None,
) -> pd.DataFrame:
    cols = _convert_columns(checker, settings)
    future = _future(cols["sent_date"], today)
    checker.flag(
        future,
        "future_date",
        "sent_date",
        f"send date after today ({today})",
        action="row dropped",
        drop=True,
        values=_raw(checker, "sent_date"),
    )
    if known_customers is not None:
        ids = cols["customer_id"]
        unknown = ids.notna().to_numpy() & ~isin(ids, known_customers)
        checker.flag(
            unknown,
            "unknown_customer",
            "customer_id",
            "customer_id not in the customers table",
            action="row dropped",
            drop=True,
            values=ids,
        )
    frame = _finish(checker, cols, extras)
    frame["responded"] = frame["responded"].astype(bool)
    return frame


# Free-text columns: only an empty cell is missing there ("NA", "None", "null" are words).
_FREE_TEXT = {"reviews": ("text", "title")}


@dataclass
class _Opened:
    """A table whose layout and columns are known, not read yet."""

    table: Table
    reader: TableReader
    layout: Layout
    match: ColumnMatch
    text_columns: list[str]  # file columns read as text (ids, free text)
    free_text: list[str]  # file columns where only an empty cell is missing
    report: TableReport


def _open(name: str, source: TableSource, report: ValidationReport, display: str) -> _Opened | None:
    """Inspect one file and map its columns; record fatal problems and return None on failure."""
    table = SCHEMA[name]
    tr = TableReport(table=name, file=display)
    report.tables[name] = tr
    reader = open_table(source, name, display)
    try:
        layout = reader.inspect()
        header = layout.columns
        match = match_columns(table, header, source.columns)
        for canon, src in source.columns.items():
            if canon not in table.names:
                raise DataError(
                    f"insight.toml maps unknown column '{canon}' for {name}",
                    file=display,
                    hint=f"{name} columns are: {', '.join(table.names)}",
                )
            if src not in header:
                raise DataError(
                    f"column '{src}' (mapped to {canon} in insight.toml) is not in the file",
                    file=display,
                    hint=f"read as: {layout.describe()}. {_what_to_set(name, layout, [canon])}",
                )
        missing = list(match.missing)
        if (
            name == "orders"
            and "amount" not in match.mapping
            and any(c not in match.mapping for c in ("quantity", "unit_price"))
        ):
            missing.append("amount (or quantity and unit_price)")
        if missing:
            raise DataError(
                f"missing required column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
                file=display,
                hint=f"read as: {layout.describe()}. {_what_to_set(name, layout, missing, match)}",
            )
    except DataError as exc:
        report.add_error(name, exc)
        return None
    id_sources = [
        match.mapping[c.name]
        for c in table.columns
        if c.kind in ("id", "text") and c.name in match.mapping
    ]
    free_text = [match.mapping[c] for c in _FREE_TEXT.get(name, ()) if c in match.mapping]
    tr.columns = dict(match.mapping)
    return _Opened(table, reader, layout, match, id_sources, free_text, tr)


def _notes(
    opened: _Opened, source: TableSource, report: ValidationReport, bad_lines: list[int]
) -> None:
    """What reading a table found besides its rows: ambiguous columns, skipped lines, the
    encoding, a missing header row."""
    name, tr, layout = opened.table.name, opened.report, opened.layout
    display = tr.file
    for canon, candidates in opened.match.ambiguous.items():
        report.add(
            Problem(
                table=name,
                file=display,
                code="ambiguous_column",
                severity="info",
                column=canon,
                message=f"several columns could be {canon}: {', '.join(candidates)}",
                action=f"used '{candidates[0]}'; set data.{name}.columns.{canon} to choose",
            )
        )
    if bad_lines:
        tr.rows_read += len(bad_lines)
        tr.dropped["wrong_field_count"] = len(bad_lines)
        report.add(
            Problem(
                table=name,
                file=display,
                code="wrong_field_count",
                rows=bad_lines[:MAX_ROWS_KEPT],
                count=len(bad_lines),
                message="wrong number of fields (unquoted delimiter?)",
                action="row dropped",
            )
        )
    if tr.encoding and tr.encoding not in ("utf-8-sig", "utf-8") and not source.encoding:
        report.add(
            Problem(
                table=name,
                file=display,
                code="encoding",
                severity="info",
                message=layout.encoding_note or f"not UTF-8; read as {tr.encoding}",
                action=f'set data.{name}.encoding = "..." if characters look wrong',
            )
        )
    if layout.header_detected:
        report.add(
            Problem(
                table=name,
                file=display,
                code="no_header",
                severity="info",
                message=f"no header row: the first row ({layout.first_row!r}) looks like data",
                action=(
                    "read as data"
                    + ("" if layout.names_given else f"; columns named {_span(layout.columns)}")
                    + f"; set data.{name}.header = true if it is a header"
                ),
            )
        )


def _read_whole(
    opened: _Opened, source: TableSource, report: ValidationReport
) -> tuple[_Checker, list[str]] | None:
    name, tr = opened.table.name, opened.report
    try:
        raw = opened.reader.read(
            text_columns=opened.text_columns, keep_na_text=opened.free_text, layout=opened.layout
        )
    except DataError as exc:
        report.add_error(name, exc)
        return None
    tr.rows_read = len(raw.frame)
    tr.extra_columns = [c for c in opened.match.extras if c in raw.frame.columns]
    tr.encoding, tr.delimiter = raw.encoding, raw.delimiter
    checker = _Checker(opened.table, raw, opened.match.mapping, report, tr)
    _notes(opened, source, report, raw.bad_lines)
    return checker, tr.extra_columns


def _stream(
    opened: _Opened,
    source: TableSource,
    settings: Settings,
    report: ValidationReport,
    today: dt.date,
    known: IdSet | None,
    sink: TableSink,
) -> tuple[pd.DataFrame, int] | None:
    """Validate the orders file in chunks of :data:`STREAM_ROWS` records, each chunk's kept
    rows (and returns) written to ``sink``. The checks and messages are those of a whole-file
    load; a problem seen in several chunks is reported once, with its total count and the
    first rows. Returns (an empty frame with the table's columns, the number of returns), or
    None when the file cannot be read in chunks (ragged rows, a decoding error, no rows): the
    caller then reads it whole, which reports why.
    """
    name, tr = opened.table.name, opened.report
    # The file's own extra columns are read as text: each chunk would infer its own type
    # (a column of numbers with one blank becomes floats in that chunk only); the cache
    # writer types them over all the rows, as a whole-file read does.
    extras = tuple(c for c in opened.match.extras if c not in opened.text_columns)
    chunks = opened.reader.read_chunks(
        layout=opened.layout,
        rows=STREAM_ROWS,
        text_columns=[*opened.text_columns, *extras],
        keep_na_text=opened.free_text,
    )
    if chunks is None:
        return None
    found = ValidationReport(max_drop_share=report.max_drop_share)
    head: pd.DataFrame | None = None
    returns = 0
    chunk_iter = iter(chunks)
    while True:
        try:
            raw = next(chunk_iter)
        except StopIteration:
            break
        except Exception:  # the whole-file read names the file, row and cause
            sink.discard(name)
            sink.discard("returns")
            report.tables[name] = TableReport(table=name, file=tr.file, columns=tr.columns)
            opened.report = report.tables[name]
            return None
        if head is None:
            tr.extra_columns = [c for c in opened.match.extras if c in raw.frame.columns]
            tr.encoding, tr.delimiter = raw.encoding, raw.delimiter
        tr.rows_read += len(raw.frame)
        tr.chunks += 1
        checker = _Checker(opened.table, raw, opened.match.mapping, found, tr)
        frame = _clean_orders(checker, settings, today, tr.extra_columns, known)
        is_return = (frame["amount"] < 0).to_numpy()
        returns += int(is_return.sum())
        sink.part("returns", frame[is_return].reset_index(drop=True), as_text=extras)
        frame = frame[~is_return].reset_index(drop=True)
        sink.part(name, frame, as_text=extras)
        if head is None:
            head = frame.iloc[:0]
    if head is None:  # no rows: the whole-file read says so
        sink.discard(name)
        sink.discard("returns")
        return None
    _notes(opened, source, report, [])
    for problem in _merged(found.problems):
        report.add(problem)
    return head, returns


def _plain(
    opened: _Opened,
    source: TableSource,
    settings: Settings,
    report: ValidationReport,
    today: dt.date,
    known: IdSet | None,
    sink: TableSink,
) -> tuple[pd.DataFrame, int] | None:
    """The orders file checked and copied by the engine when it is plain (see
    :mod:`insight_agent.engine.plainload`): the same tables and report as :func:`_stream`
    gives, or None (the sink cannot, the layout is not one DuckDB reads as pandas does, or a
    row needs the pandas validator)."""
    from pathlib import Path

    from insight_agent.engine.plainload import PlainSpec, eligible

    load = getattr(sink, "load_plain", None)
    path = getattr(getattr(opened.reader, "source", None), "path", None)
    layout, table, mapping = opened.layout, opened.table, opened.match.mapping
    if (
        load is None
        or path is None
        or layout.format != "csv"
        or not layout.header
        or layout.names_given
        or source.date_format
    ):
        return None
    needed = {"amount"} if "amount" in mapping else {"quantity", "unit_price"}
    spec = PlainSpec(
        path=Path(path),
        delimiter=layout.delimiter or "",
        encoding=layout.encoding or "utf-8",
        columns=[str(c) for c in layout.columns],
        mapped={
            c.name: (mapping[c.name], c.kind, c.required or c.name in needed)
            for c in table.columns
            if c.name in mapping
        },
        order=[n for n in table.names if n in mapping or n == "amount"],
        extras=[c for c in opened.match.extras if c in layout.columns],
        today=today,
        max_amount=float(settings.data.max_amount),
    )
    if eligible(spec) is not None:
        return None
    found = load(spec, known.arrow() if known is not None else None)
    if found is None:
        return None
    result, head = found
    tr = opened.report
    tr.rows_read = tr.rows_kept = result.rows
    tr.extra_columns = list(spec.extras)
    tr.encoding, tr.delimiter = layout.encoding, layout.delimiter
    tr.engine = "duckdb"
    _notes(opened, source, report, [])
    return head, result.returns


def _merged(problems: list[Problem]) -> list[Problem]:
    """Problems of several chunks, one per kind: counts summed, the first rows and example
    kept."""
    out: dict[tuple[Any, ...], Problem] = {}
    for p in problems:
        key = (p.table, p.file, p.code, p.column, p.message, p.severity, p.action)
        if key not in out:
            out[key] = Problem(**{**p.__dict__, "rows": list(p.rows)})
            continue
        kept = out[key]
        kept.count += p.count
        kept.rows = (kept.rows + p.rows)[:MAX_ROWS_KEPT]
        kept.example = kept.example if kept.example is not None else p.example
    return list(out.values())


def _returns_note(report: ValidationReport, count: int) -> None:
    tr = report.tables["orders"]
    tr.returns = count
    report.add(
        Problem(
            table="orders",
            file=tr.file,
            code="returns",
            severity="info",
            column=tr.columns.get("amount") or tr.columns.get("quantity"),
            count=count,
            message="negative amounts (returns or cancellations)",
            action="kept apart as returns, not counted as purchases",
        )
    )


def _span(columns: list[str]) -> str:
    return ", ".join(columns) if len(columns) <= 4 else f"{columns[0]} … {columns[-1]}"


#: Header names that look like a row's identifier (for the missing-customer_id hint).
_ID_LIKE = re.compile(r"(?i)(\bid\b|_id\b|id#|\bno\b|number|\bnum\b|\bkey\b|sequence|\bseq\b)")


def _what_to_set(
    name: str, layout: Layout, missing: list[str], match: ColumnMatch | None = None
) -> str:
    """What to put in insight.toml when required columns are missing, from what was read."""
    first = missing[0].split()[0]
    section = f"[data.{name}]"
    tips: list[str] = []
    if match is not None:  # a column that is there but already taken by another mapping
        used = {src: canon for canon, src in match.mapping.items()}
        for col in layout.columns:
            if normalise(col) in {normalise(m.split()[0]) for m in missing} and col in used:
                tips.append(f"'{col}' is already used as {used[col]}")
    if layout.format == "csv" and len(layout.columns) == 1 and layout.first_row:
        row = layout.first_row
        if len(row.split()) > 1:
            tips.append(
                f"the rows are one column: if runs of spaces separate the fields, set {section} "
                f'delimiter = "whitespace"; if fixed positions do, delimiter = "fixed" (or '
                "widths = [...])"
            )
        else:
            others = [d for d in ",;\t|:" if d in row and d != layout.delimiter]
            if others:
                tips.append(f"the rows are one column: set {section} delimiter = {others[0]!r}")
    if not layout.header:
        wanted = ", ".join(f'"{m.split()[0]}"' for m in missing)
        tips.append(
            f"the file has no header row: name its columns by position in {section} with "
            f"header = false and names = [...] in the file's order, {wanted} among them "
            f'("" for a column you do not need), or map the column_N names under '
            f'[data.{name}.columns], e.g. {first} = "column_1"'
        )
    else:
        data_like = [c for c in layout.columns if looks_like_data([c])]
        if data_like and not layout.names_given:
            tips.append(
                f"the header row holds values like {data_like[0]!r}: if the file has no header "
                f"row, set {section} header = false and names = [...] by position"
            )
        example = "Your Column"
        if first == "customer_id":  # name the column most likely to be it
            idish = [c for c in layout.columns if _ID_LIKE.search(str(c))]
            if idish:
                example = idish[0]
                if len(idish) > 1:
                    tips.append(f"columns that look like ids: {', '.join(map(repr, idish[:5]))}")
        tips.append(f'map yours under [data.{name}.columns], e.g. {first} = "{example}"')
    return "; ".join(tips)


def _empty_orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype="string"),
            "order_date": pd.Series(dtype="datetime64[ns]"),
            "amount": pd.Series(dtype=float),
        }
    )


def run_checks(
    settings: Settings,
    *,
    max_drop_share: float | None = None,
    display: Any = None,
    sink: TableSink | None = None,
) -> tuple[dict[str, pd.DataFrame], ValidationReport]:
    """Validate every configured table; return the clean frames and the report (never raises
    for data problems: they are in the report).

    With a ``sink``, an orders file over :data:`STREAM_BYTES` is validated in chunks written
    to it; its frame (and the returns') is then empty, with the columns."""
    share = settings.data.max_drop_share if max_drop_share is None else max_drop_share
    report = ValidationReport(max_drop_share=share)
    today = settings.data.today or dt.date.today()
    show = display or (lambda p: str(p))
    frames: dict[str, pd.DataFrame] = {}
    sources = settings.data.tables
    if not sources:
        report.add(
            Problem(
                table="-",
                file=str(settings.config_path),
                code="no_data",
                severity="error",
                message="no data files configured",
                action='add [data.orders] path = "..." (and customers, reviews, campaigns)',
            )
        )
        return frames, report

    known: IdSet | None = None
    cleaners = {
        "customers": _clean_customers,
        "orders": _clean_orders,
        "reviews": _clean_reviews,
        "campaigns": _clean_campaigns,
    }
    streamed_returns: int | None = None
    for name in TABLES:  # customers first: the others are checked against its ids
        if name not in sources:
            continue
        opened = _open(name, sources[name], report, show(sources[name].path))
        if opened is None:
            continue
        size = opened.reader.size() if sink is not None and name == "orders" else 0
        if (
            size > ENGINE_BYTES
            and (done := _plain(opened, sources[name], settings, report, today, known, sink))
        ) or (
            size > STREAM_BYTES
            and (done := _stream(opened, sources[name], settings, report, today, known, sink))
        ):
            frames[name], streamed_returns = done
            frames["returns"] = done[0]
            _check_drop_share(report, opened.report, share)
            continue
        read = _read_whole(opened, sources[name], report)
        if read is None:
            continue
        checker, extras = read
        if name == "customers":
            frame = cleaners[name](checker, settings, today, extras)
        else:
            frame = cleaners[name](checker, settings, today, extras, known)
        _check_drop_share(report, checker.tr, share)
        frames[name] = frame
        if name == "customers":
            known = IdSet(frame["customer_id"])
    if streamed_returns is not None:
        if streamed_returns:
            _returns_note(report, streamed_returns)
    elif "orders" in frames:
        orders = frames["orders"]
        is_return = (orders["amount"] < 0).to_numpy()
        if is_return.any():
            _returns_note(report, int(is_return.sum()))
        frames["returns"] = orders[is_return].reset_index(drop=True)
        frames["orders"] = orders[~is_return].reset_index(drop=True)
    return frames, report


def validate(
    settings: Settings, *, max_drop_share: float | None = None, display: Any = None
) -> ValidationReport:
    """Run every check and return the report (fatal problems included, nothing raised)."""
    return run_checks(settings, max_drop_share=max_drop_share, display=display)[1]


def load_dataset(
    settings: Settings,
    *,
    max_drop_share: float | None = None,
    display: Any = None,
    sink: TableSink | None = None,
) -> Dataset:
    """Load the workspace's tables, validated; raise :class:`ValidationFailed` on fatal problems.

    Customers are derived from orders when there is no customers file. With a ``sink``, a
    large orders file goes to it in chunks (see :func:`run_checks`; ``Dataset.streamed``).
    """
    frames, report = run_checks(settings, max_drop_share=max_drop_share, display=display, sink=sink)
    if report.fatal:
        raise ValidationFailed(report)
    streamed: dict[str, int] = {}
    if sink is not None and "orders" in frames:
        tr = report.tables["orders"]
        if tr.chunks or tr.engine:  # validated in chunks or by the engine: rows in the sink
            streamed = {"orders": tr.rows_kept - tr.returns, "returns": tr.returns}
    if "orders" not in frames:
        frames["orders"] = _empty_orders()
        frames["returns"] = _empty_orders()
    if "customers" not in frames:
        if streamed and sink is not None:
            ids = sink.distinct(["orders", "returns"], "customer_id")
        else:
            both = pd.concat([frames["orders"]["customer_id"], frames["returns"]["customer_id"]])
            ids = pd.Series(sorted(both.dropna().unique()), dtype="string")
        frames["customers"] = pd.DataFrame({"customer_id": ids.astype("string")})
        report.tables["customers"] = TableReport(
            table="customers",
            file="(derived from orders)",
            rows_read=len(ids),
            rows_kept=len(ids),
            derived=True,
        )
    show = display or (lambda p: str(p))
    return Dataset(
        customers=frames["customers"],
        orders=frames["orders"],
        returns=frames["returns"],
        reviews=frames.get("reviews"),
        campaigns=frames.get("campaigns"),
        report=report,
        fingerprint=fingerprint(settings),
        sources={k: show(v.path) for k, v in settings.data.tables.items()},
        streamed=streamed,
    )


def fingerprint(settings: Settings) -> str:
    """sha256 over the data files' bytes and the settings that change how they load."""
    digest = hashlib.sha256()
    ds = settings.data
    digest.update(
        repr((ds.max_drop_share, ds.dayfirst, ds.max_amount, ds.max_review_chars)).encode()
    )
    for name in sorted(ds.tables):
        src = ds.tables[name]
        digest.update(
            f"{name}|{sorted(src.columns.items())}|{src.sheet}|{src.delimiter}|"
            f"{src.encoding}".encode()
        )
        layout = (src.header, src.names, src.widths, src.date_format)
        if any(v is not None for v in layout):  # older workspaces keep their fingerprint
            digest.update(repr(layout).encode())
        open_table(src, name).digest(digest)
    return digest.hexdigest()
