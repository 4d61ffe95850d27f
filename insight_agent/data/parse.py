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


def parse_dates(series: pd.Series, *, dayfirst: bool = False) -> tuple[pd.Series, np.ndarray]:
    """Timestamps (tz-naive) from dates, datetimes or text in any common format.

    ISO 8601 is tried first (fast); the remaining values are tried with the format guessed from
    the first of them, and only what is still unread goes through the slow mixed-format parser.
    Returns (values, bad) where ``bad`` marks present values that are not dates.
    """
    has = present(series)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.astype("datetime64[ns]"), np.zeros(len(series), dtype=bool)
    if pd.api.types.is_numeric_dtype(series.dtype):
        # Bare numbers are not dates (an Excel serial or a Unix time would be a guess).
        return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]"), has
    text = series.astype("string").str.strip()
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
