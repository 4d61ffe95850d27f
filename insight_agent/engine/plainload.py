"""A large, plain orders file validated by the engine: DuckDB's parallel CSV reader copies it
into the cache's orders and returns tables, proving on the way that every row passes the
loader's checks unchanged.

The loader (:mod:`insight_agent.data.load`) validates an orders file in pandas chunks: parse,
check, write a Parquet part, merge the parts. For the common case, a UTF-8 delimited export
with ISO dates and plain numbers where no row is dropped, that is one DuckDB pass here. The
messages a problem row deserves (file, row, column, example, counts per reason) stay the
pandas validator's: when any row *would* be dropped or any value cleared, or a value is
written in a form only the pandas parsers read as meant (``$1,234.50``, ``05/03/2024``,
``17850.0`` ids, a space around a value, a missing word such as "NA" in a mapped column),
:func:`load_plain` returns None and the loader validates the file as before. So the engine
path changes speed, never results: the same columns, values, types and row order, and the
same report (``tests/test_plain_load.py`` holds both paths to each other).

What "unchanged" means, check by check, as pandas reads the file whole:

* ids and text: no surrounding whitespace (Python's ``str.isspace`` set, which pandas'
  ``str.strip`` uses), no missing word (pandas' default list), no ``17850.0`` id; an empty
  field is missing; a required one missing is a dropped row.
* numbers: ``[+-]digits[.digits][e±digits]``, finite, read as a double (correctly rounded;
  pandas' default parser may differ in the last bit on rare inputs).
* dates: ISO ``YYYY-MM-DD`` with an optional ``hh:mm[:ss[.ffffff]]``, 1900-01-01 to
  2200-01-01, not after today.
* amounts: the amount column, or quantity × unit price, at most ``data.max_amount``. A
  negative amount is a return (the returns table), as in the pandas path.
* customer ids all among the customers file's (checked on the copy).
* row numbers: a line count of the file equals the records DuckDB read plus the header, so
  no blank line was skipped (pandas counts those) and no record spans lines.
* extra columns: as text, pandas' missing words missing, then typed as pandas infers a
  column over the whole file (whole numbers with no blank: BIGINT; numbers, blanks allowed:
  DOUBLE; else text); a column pandas might read otherwise (yes/no words, numbers DuckDB
  reads that are not plain digits, integers beyond 64 bits) sends the file to pandas.

The rows that fail a check are not looked for: the copy stops at the first (DuckDB's
``error()``), so a file with problems costs the engine's partial pass before pandas' full
one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insight_agent.data.readers import NA_TOKENS
from insight_agent.data.sources import COMPRESSED
from insight_agent.engine.cache import sql_name

#: Characters pandas' ``str.strip`` removes (Python's ``str.isspace``); a test checks it.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_NUMBER = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
_DATE = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?)?"
)
_WHOLE_FLOAT_ID = r"[0-9]+\.0+"
_EARLIEST, _LATEST = "1900-01-01", "2200-01-01"
#: Kinds of column this path reads; a mapped column of another kind (yes/no flags): fall back.
KINDS = ("id", "text", "number", "integer", "date")


@dataclass(frozen=True)
class PlainSpec:
    """What to read and how each column is checked."""

    path: Path
    delimiter: str
    encoding: str
    columns: list[str]  # the file's columns, in order, as the header names them
    mapped: dict[str, tuple[str, str, bool]]  # canonical -> (file column, kind, required)
    order: list[str]  # canonical output columns in contract order (amount included)
    extras: list[str]  # file columns kept as they are, after the canonical ones
    today: dt.date
    max_amount: float


@dataclass
class PlainResult:
    """What the engine found: every row passes; how many there are and how many are
    returns."""

    rows: int
    returns: int


def eligible(spec: PlainSpec) -> str | None:
    """Why ``spec`` cannot be read by the engine (None: it can)."""
    if spec.path.suffix.lower() in COMPRESSED:
        return "compressed"
    if spec.encoding.lower().replace("_", "-") not in ("utf-8", "utf-8-sig", "ascii", "utf8"):
        return f"encoding {spec.encoding}"
    # one character: not runs of whitespace, fixed-width columns or an unknown delimiter
    if len(spec.delimiter) != 1 or spec.delimiter in ('"', "\n", "\r"):
        return f"delimiter {spec.delimiter!r}"
    if len(set(spec.columns)) != len(spec.columns):
        return "duplicate column names"
    if any(kind not in KINDS for _, kind, _ in spec.mapped.values()):
        return "a yes/no column"
    return None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: An RE2 class of that whitespace: a value with it around it is left to pandas (stripping
#: it here with DuckDB's ``trim`` and a character list cost ~10× the regular expression).
_WS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE) + "]"


def _matches(expr: str, pattern: str) -> str:
    return f"regexp_full_match({expr}, '{pattern}')"


def _reader(spec: PlainSpec) -> str:
    columns = "{" + ", ".join(f"{_literal(c)}: 'VARCHAR'" for c in spec.columns) + "}"
    return (
        f"read_csv({_literal(str(spec.path))}, delim = {_literal(spec.delimiter)}, "
        f"quote = '\"', escape = '\"', header = true, auto_detect = false, "
        f"columns = {columns}, strict_mode = true, null_padding = false, "
        f"max_line_size = 16777216)"
    )


def _typed(spec: PlainSpec) -> str:
    """SQL of the file's rows: canonical columns typed, extras as text (missing words
    missing), ``amount`` (derived when not in the file) and ``_needs_pandas``, true for a
    row only the pandas validator reads as it should be read.

    In levels, so that each value is matched and parsed once: the raw text (``_r<j>``; in
    extras, pandas' missing words missing); the form of each value (one regular expression
    a value); the typed values (``_v<i>``); the output names and the row's check."""
    words = [w for w in NA_TOKENS if w]  # DuckDB reads an empty field as NULL
    listed = "[" + ", ".join(_literal(w) for w in words) + "]"
    sources = [src for src, _, _ in spec.mapped.values()] + spec.extras
    r = {c: f"_r{j}" for j, c in enumerate(sources)}
    # Extras as pandas reads them: its missing words missing. A mapped column holding one is
    # left to pandas (the checks below), which is rarer than it is costly to map here.
    raw = [
        f"(CASE WHEN list_contains({listed}, {sql_name(c)}) THEN NULL ELSE {sql_name(c)} END) "
        f"AS {r[c]}"
        if c in spec.extras
        else f"{sql_name(c)} AS {r[c]}"
        for c in sources
    ]
    missing_word = "|".join("^" + re.escape(w) + "$" for w in words)
    forms: list[str] = list(r.values())
    values: list[str] = list(r.values())
    checks: list[str] = []
    out: list[str] = []
    for i, (canon, (source, kind, required)) in enumerate(spec.mapped.items()):
        col, form, value = r[source], f"_f{i}", f"_v{i}"
        if kind in ("id", "text"):
            # surrounding whitespace (pandas strips it) or, for ids, "17850.0": pandas' job
            pattern = f"^{_WS}|{_WS}$|{missing_word}"
            pattern += f"|^{_WHOLE_FLOAT_ID}$" if kind == "id" else ""
            forms.append(f"coalesce(regexp_matches({col}, '{pattern}'), false) AS {form}")
            values.append(f"{form}, NULLIF({col}, '') AS {value}")
            checks.append(form)
        else:
            pattern, cast = (_NUMBER, "DOUBLE") if kind != "date" else (_DATE, "TIMESTAMP")
            forms.append(f"coalesce({_matches(col, pattern)}, false) AS {form}")
            values.append(
                f"{form}, (CASE WHEN {form} THEN TRY_CAST({col} AS {cast}) END) AS {value}"
            )
            ok = (
                f"isfinite({value})"
                if kind != "date"
                else f"{value} BETWEEN TIMESTAMP '{_EARLIEST}' AND TIMESTAMP '{_LATEST}'"
            )
            checks.append(f"({col} IS NOT NULL AND NOT ({form} AND coalesce({ok}, false)))")
        if required:
            checks.append(f"({value} IS NULL)")
        out.append(f"{value} AS {sql_name(canon)}")
    out += [f"{r[e]} AS {sql_name(e)}" for e in spec.extras]
    if "amount" not in spec.mapped:
        q, p = (f"_v{list(spec.mapped).index(c)}" for c in ("quantity", "unit_price"))
        out.append(f"{q} * {p} AS amount")
    out.append("(" + " OR ".join(checks or ["false"]) + ") AS _needs_pandas")
    return (
        f"SELECT {', '.join(out)} FROM (SELECT {', '.join(values)} FROM "
        f"(SELECT {', '.join(forms)} FROM (SELECT {', '.join(raw)} FROM {_reader(spec)})))"
    )


def _output(spec: PlainSpec) -> list[str]:
    """The output columns: canonical ones in contract order, then the extras (one named like
    a canonical column is not kept, as in the pandas path)."""
    return list(spec.order) + [e for e in spec.extras if e not in spec.order]


_RETURN = "amount < 0"


_BOOL_WORDS = ("True", "False", "TRUE", "FALSE", "true", "false")


def _stats(spec: PlainSpec) -> str:
    """Per extra column, over every row: present values, plain numbers, plain whole numbers,
    whole numbers that fit 64 bits, values DuckDB casts to a double, yes/no words."""
    out = []
    bools = ", ".join(_literal(w) for w in _BOOL_WORDS)
    for name in _output(spec):
        if name not in spec.order:
            col = sql_name(name)
            out += [
                f"count({col})",
                f"count(*) FILTER (WHERE {_matches(col, _NUMBER)})",
                f"count(*) FILTER (WHERE {_matches(col, '[+-]?[0-9]+')})",
                f"count(*) FILTER (WHERE {_matches(col, '[+-]?[0-9]+')} "
                f"AND TRY_CAST({col} AS BIGINT) IS NOT NULL)",
                f"count(TRY_CAST({col} AS DOUBLE))",
                f"count(*) FILTER (WHERE {col} IN ({bools}))",
            ]
    return f"SELECT {', '.join(out)}, count(*) FROM _staged"


def _extra_type(
    present: int, plain: int, whole: int, fits: int, cast: int, words: int, rows: int
) -> str | None:
    """The type pandas infers for an extra column read from the whole file: BIGINT (whole
    numbers, no blank), DOUBLE (numbers, blanks allowed, or nothing but blanks), VARCHAR
    (anything else); None when pandas might read it otherwise (yes/no words, numbers written
    as DuckDB reads them but not as plain digits, whole numbers beyond 64 bits)."""
    if words or cast != plain or whole != fits:
        return None
    if present == plain:
        return "BIGINT" if whole == present == rows and rows else "DOUBLE"
    return "VARCHAR"


def _view(con: Any, path: Path) -> None:
    con.execute(
        f"CREATE OR REPLACE VIEW _staged AS SELECT * FROM read_parquet({_literal(str(path))})"
    )


def count_lines(path: Path) -> tuple[int, bool]:
    """Newlines in ``path`` and whether its last byte is one (16 MB at a time)."""
    lines, last = 0, b""
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines, last == b"\n"


def load_plain(
    spec: PlainSpec,
    connect: Callable[[], Any],
    known: Any,
    orders_out: Path,
    returns_out: Path,
) -> PlainResult | None:
    """Check and copy ``spec``'s file: the orders to ``orders_out`` and the returns
    (negative amounts) to ``returns_out``, in file order, when every row passes unchanged;
    else None (nothing written) and the caller validates the file in pandas. ``known`` is
    the customers' ids as an Arrow array (None: no customers file), ``connect`` a DuckDB
    connection factory (memory limit, spill folder).

    One pass over the file: its typed rows go to ``orders_out`` as they are read, and the
    first row that needs pandas stops the copy (DuckDB's ``error()``). The unknown-customer
    check, the returns and the extras' types are then read from that Parquet file, which is
    rewritten only when there are returns to take out or extras to type."""
    import duckdb

    if eligible(spec) is not None:
        return None
    staged = orders_out.with_name(orders_out.name + ".staged")
    con = connect()
    try:
        con.execute("SET preserve_insertion_order = true")
        limit = (spec.today + dt.timedelta(days=1)).isoformat()
        stop = (
            f"_needs_pandas OR abs(amount) > {float(spec.max_amount)!r} "
            f"OR order_date >= TIMESTAMP '{limit}'"
        )
        names = ", ".join(sql_name(n) for n in _output(spec))
        con.execute(
            f"COPY (SELECT {names} FROM ({_typed(spec)}) "
            f"WHERE CASE WHEN {stop} THEN error('needs pandas') ELSE true END) "
            f"TO {_literal(str(staged))} (FORMAT parquet)"
        )
        _view(con, staged)
        rows, returns = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {_RETURN}) FROM _staged"
        ).fetchone()
        if known is not None and rows:
            import pyarrow as pa

            con.register("_known_ids", pa.table({"id": known}))
            (unknown,) = con.execute(
                "SELECT count(*) FROM _staged s WHERE s.customer_id IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM _known_ids k WHERE k.id = s.customer_id)"
            ).fetchone()
            if unknown:
                return None
        if not rows:
            return None  # the pandas path reports an empty file
        lines, newline_at_end = count_lines(spec.path)
        if lines + (0 if newline_at_end else 1) != rows + 1:
            return None  # blank lines (pandas counts them) or records over several lines
        extras = [n for n in _output(spec) if n not in spec.order]
        types: dict[str, str] = {}
        if extras:
            found = con.execute(_stats(spec)).fetchone()
            for k, name in enumerate(extras):
                kind = _extra_type(*found[6 * k : 6 * k + 6], found[-1])
                if kind is None:
                    return None
                if kind != "VARCHAR":
                    types[name] = kind
        select = ", ".join(
            f"CAST({sql_name(n)} AS {types[n]}) AS {sql_name(n)}" if n in types else sql_name(n)
            for n in _output(spec)
        )
        if not returns and not types:  # nothing to take out or type: the copy is the table
            staged.replace(orders_out)
            _view(con, orders_out)
        else:
            con.execute(
                f"COPY (SELECT {select} FROM _staged WHERE ({_RETURN}) IS NOT TRUE) "
                f"TO {_literal(str(orders_out))} (FORMAT parquet)"
            )
        empty = "" if returns else " LIMIT 0"
        con.execute(
            f"COPY (SELECT {select} FROM _staged WHERE {_RETURN}{empty}) "
            f"TO {_literal(str(returns_out))} (FORMAT parquet)"
        )
        return PlainResult(rows=int(rows), returns=int(returns))
    except duckdb.Error:
        # A row for pandas (the copy's error()), ragged rows, bytes that are not UTF-8, or
        # the engine out of memory or disk: the pandas validator reads the file and says why.
        return None
    finally:
        con.close()
        staged.unlink(missing_ok=True)
