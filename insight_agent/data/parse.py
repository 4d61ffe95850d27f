"""Vectorised parsing of raw column values into ids, dates, numbers and flags.

Each parser returns the parsed values and a boolean mask of values that were present but could not
be parsed, so the validator can name the rows. Work is vectorised; slow fallbacks (mixed date
formats, currency strings) only run on the values the fast path could not read.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

_CURRENCY = re.compile(r"[\s$£€¥₹\u00a0]|(?i:usd|eur|gbp)")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d{1,2}$")
_EURO_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+,\d{1,2}$")
_EARLIEST = pd.Timestamp("1900-01-01")
_LATEST = pd.Timestamp("2200-01-01")
_TRUE = {"1", "1.0", "true", "t", "yes", "y", "responded", "converted", "x"}
_FALSE = {"0", "0.0", "false", "f", "no", "n", ""}


def present(series: pd.Series) -> np.ndarray:
    """Mask of values that are not missing and not blank text."""
    mask = series.notna().to_numpy(copy=True)
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        blank = series.astype("string").str.strip().eq("").fillna(False).to_numpy(dtype=bool)
        mask &= ~blank
    return mask


def parse_ids(series: pd.Series) -> pd.Series:
    """Ids as stripped text (pandas "string" dtype, missing = NA); whole floats from
    Excel/Parquet (12346.0) become "12346".

    Arrow-backed strings, not Python objects: at 13M order rows, object ids alone took 3 GB."""
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        finite = np.isfinite(values)
        if np.all(np.mod(values[finite], 1) == 0):
            series = pd.Series(values, index=series.index).astype("Int64")
    out = series.astype("string").str.strip()
    # "17850.0" in every row is an integer id that went through a float somewhere upstream.
    nonblank = out[out.notna() & out.ne("")]
    if len(nonblank) and nonblank.str.fullmatch(r"\d+\.0+").all():
        out = out.str.replace(r"\.0+$", "", regex=True)
    return out.mask(out.eq("").fillna(False))


def parse_text(series: pd.Series) -> pd.Series:
    """Free text as stripped strings ("string" dtype; missing or blank become NA)."""
    out = series.astype("string").str.strip()
    return out.mask(out.eq("").fillna(False))


def parse_numbers(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Floats from numbers or text such as "$1,234.50", "12,50", "(3.00)".

    Returns (values, bad) where ``bad`` marks present values that are not numbers or not finite.
    """
    has = present(series)
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype(float)
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.astype(float)
    else:
        values = pd.to_numeric(series, errors="coerce").astype(float)
        retry = has & values.isna().to_numpy()
        if retry.any():
            values.loc[retry] = [_parse_number_text(v) for v in series[retry].astype(str)]
    arr = values.to_numpy(dtype=float, na_value=np.nan)
    bad = has & ~np.isfinite(arr)
    values = values.where(np.isfinite(arr), np.nan)
    return values, bad


def _parse_number_text(text: str) -> float:
    s = _CURRENCY.sub("", text.strip())
    negative = s.startswith("(") and s.endswith(")")
    s = s.strip("()")
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    elif _EURO_THOUSANDS.match(s):
        s = s.replace(".", "").replace(",", ".")
    elif _DECIMAL_COMMA.match(s):
        s = s.replace(",", ".")
    try:
        value = float(s)
    except ValueError:
        return np.nan
    return -value if negative else value


# Compact dates: every present value 8 digits with a plausible year (1900-2199) makes the
# column yyyymmdd; a value with an impossible month or day (20241345) is then one bad date.
_COMPACT = re.compile(r"^(?:19|20|21)\d{6}$")


def parse_dates(
    series: pd.Series, *, dayfirst: bool = False, date_format: str | None = None
) -> tuple[pd.Series, np.ndarray]:
    """Timestamps (tz-naive) from dates, datetimes or text in any common format.

    ``date_format`` (a table's ``date_format`` setting, e.g. ``%Y%m%d``) is used as given.
    Otherwise compact dates (``19970101``, as text or as whole numbers) are recognised when
    every present value is one; ISO 8601 is tried next (fast); the remaining values are tried
    with the format guessed from the first of them, and only what is still unread goes through
    the slow mixed-format parser. Returns (values, bad) where ``bad`` marks present values
    that are not dates.
    """
    has = present(series)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.astype("datetime64[ns]"), np.zeros(len(series), dtype=bool)
    if pd.api.types.is_bool_dtype(series.dtype):
        return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]"), has
    if pd.api.types.is_numeric_dtype(series.dtype):
        text = _whole_numbers_as_text(series)
        if date_format is None and (
            text is None or not text[has].str.match(_COMPACT).fillna(False).all()
        ):
            # Other bare numbers are not dates (an Excel serial or a Unix time would be a guess).
            return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]"), has
        series = text if text is not None else series.astype("string")
    text = series.astype("string").str.strip()
    if date_format:
        values = _to_datetime(text, format=date_format)
        return values, has & values.isna().to_numpy()
    if has.any() and text[has].str.match(_COMPACT).fillna(False).all():
        values = _to_datetime(text, format="%Y%m%d")
        return values, has & values.isna().to_numpy()
    values = _to_datetime(text, format="ISO8601")
    todo = has & values.isna().to_numpy()
    if todo.any():
        from pandas.tseries.api import guess_datetime_format

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            guessed = guess_datetime_format(str(text[todo].iloc[0]), dayfirst=dayfirst)
        if guessed:
            values.loc[todo] = _to_datetime(text[todo], format=guessed)
            todo = has & values.isna().to_numpy()
    if todo.any():
        values.loc[todo] = _to_datetime(text[todo], format="mixed", dayfirst=dayfirst)
        todo = has & values.isna().to_numpy()
    return values, todo


def _whole_numbers_as_text(series: pd.Series) -> pd.Series | None:
    """Numbers as digits ("19970101", not "19970101.0") when every finite one is whole and
    none is infinite; else None."""
    values = series.to_numpy(dtype=float, na_value=np.nan)
    if np.isinf(values).any():
        return None
    finite = np.isfinite(values)
    if not np.all(np.mod(values[finite], 1) == 0) or np.abs(values[finite]).max(initial=0) > 1e15:
        return None
    out = pd.Series(pd.NA, index=series.index, dtype="string")
    out[finite] = [str(int(v)) for v in values[finite]]
    return out


def _to_datetime(text: pd.Series, **kwargs) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format" chatter; failures are counted
        try:
            out = pd.to_datetime(text, errors="coerce", utc=True, **kwargs)
        except (ValueError, OverflowError, TypeError):
            out = pd.Series([_one_date(v, **kwargs) for v in text], index=text.index)
    out = out.dt.tz_localize(None)
    # pandas may parse far dates at a coarser unit; outside this window they are typos anyway.
    out = out.where((out >= _EARLIEST) & (out <= _LATEST))
    return out.astype("datetime64[ns]")


def _one_date(value: object, **kwargs) -> pd.Timestamp:
    try:
        return pd.to_datetime(value, errors="coerce", utc=True, **kwargs)
    except (ValueError, OverflowError, TypeError):
        return pd.NaT


_HTML_TAG = re.compile(
    r"<!--.*?-->|</?(?:a|abbr|b|big|blockquote|body|br|center|cite|code|del|div|em|font|h[1-6]|"
    r"head|hr|html|i|img|ins|li|mark|ol|p|pre|q|s|small|span|strike|strong|sub|sup|table|tbody|"
    r"td|th|thead|tr|u|ul)\b[^<>]*>",
    re.IGNORECASE | re.DOTALL,
)
_HTML_BREAK = re.compile(
    r"<(?:br|hr)\b[^<>]*>|</?(?:p|div|li|tr|h[1-6]|blockquote)\b[^<>]*>", re.IGNORECASE
)
_HTML_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_SPACES = re.compile(r"[ \t\u00a0]+")
_LINE_BREAKS = re.compile(r" ?\n[ \n]*")


def clean_html(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Text with HTML tags stripped and entities unescaped: ``&amp;`` -> &, ``&#39;`` -> ',
    ``<br/>`` and block tags (p, div, li ...) -> a line break, ``<b>`` -> nothing.

    Only known HTML tag names count as tags, so "size <10 and >8" or "I <3 it" stay as written;
    an entity needs its closing ";" ("AT&T" stays). Returns (cleaned, changed).
    """
    import html

    text = series.astype("string")
    markup = text.str.contains(_HTML_TAG, regex=True) | text.str.contains(_HTML_ENTITY, regex=True)
    changed = markup.fillna(False).to_numpy(dtype=bool)
    if not changed.any():
        return text, changed

    def clean(value: str) -> str:
        value = _HTML_BREAK.sub("\n", value)
        value = _HTML_TAG.sub("", value)
        value = _HTML_ENTITY.sub(lambda m: html.unescape(m.group(0)), value)
        value = _SPACES.sub(" ", value)
        return _LINE_BREAKS.sub("\n", value).strip()

    out = text.copy()
    out[changed] = [clean(v) for v in text[changed]]
    changed &= (out != text).fillna(False).to_numpy(dtype=bool)
    return out, changed


def parse_flags(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Booleans from 1/0, true/false, yes/no (any case). Returns (values, bad)."""
    has = present(series)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean"), np.zeros(len(series), dtype=bool)
    text = series.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=series.index, dtype="boolean")
    is_true = text.isin(_TRUE).fillna(False).to_numpy(dtype=bool)
    is_false = text.isin(_FALSE).fillna(False).to_numpy(dtype=bool)
    out[is_true] = True
    out[is_false & has] = False
    bad = has & ~is_true & ~is_false
    return out, bad


def example(series: pd.Series, mask: np.ndarray, limit: int = 40) -> str | None:
    """The first offending raw value, quoted and shortened, for an error message."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return None
    value = str(series.iloc[idx[0]])
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return repr(value)
