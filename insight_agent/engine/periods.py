"""Periods a marketer names, resolved against the data's cutoff date (never the wall clock).

"Last 12 months" on data that ends 2026-10-31 is 2025-11-01 to 2026-10-31, whatever today is;
answers state the resolved dates. Rules:

* ``last N days|weeks|months|quarters|years`` — a rolling window that ends on the cutoff;
* ``last week|month|quarter|year`` (also "previous …") — the latest *complete* calendar unit:
  the cutoff's own unit when the cutoff is its last day, else the one before;
* ``this week|month|quarter|year``, ``mtd``, ``qtd``, ``ytd`` — from the unit's start to the cutoff;
* ``2025``, ``2025-Q3`` / ``Q3 2025``, ``2025-03`` / ``March 2025`` / ``mar '25`` (``feb 97``:
  a two-digit year from 32 on needs no apostrophe), ``2025-03-05``;
* ``since DATE`` / ``from DATE`` (to the cutoff), ``until DATE`` / ``before DATE`` (from the start
  of the data), ``DATE to DATE`` / ``DATE..DATE`` / ``between DATE and DATE``;
* ``all`` / ``all time`` / nothing — the whole history.

:func:`comparison` gives the previous period of the same length (a calendar unit's previous
unit) or the same period a year earlier.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass, replace

from insight_agent.errors import ConfigError

# month names and abbreviations ("march", "mar") -> 1..12
MONTHS = {
    name: i
    for i in range(1, 13)
    for name in (calendar.month_name[i].lower(), calendar.month_abbr[i].lower())
}
_UNIT = {
    "day": "day",
    "days": "day",
    "week": "week",
    "weeks": "week",
    "month": "month",
    "months": "month",
    "quarter": "quarter",
    "quarters": "quarter",
    "year": "year",
    "years": "year",
}
_WORDS = {
    "a": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
EXAMPLES = (
    "last 12 months, last 90 days, last month, last quarter, this year, ytd, 2025, 2025-Q3, "
    "2025-H1, "
    "2025-03, March 2025, since 2025-01-01, 2025-01-01 to 2025-03-31, all"
)


@dataclass(frozen=True)
class Period:
    """An inclusive date range with the words it came from.

    ``unit`` is set for calendar periods (a month, a quarter…) so comparisons step by whole
    units; ``months`` is the length in months of month-based windows (else None).
    """

    label: str
    start: dt.date | None  # None: from the start of the data
    end: dt.date  # inclusive
    unit: str | None = None
    months: int | None = None

    @property
    def days(self) -> int | None:
        """Length in days (None when open at the start)."""
        return None if self.start is None else (self.end - self.start).days + 1

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready: label and ISO dates."""
        return {
            "label": self.label,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat(),
        }


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` shifted by whole months, clamped to the month's last day (31 Mar - 1 = 28 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def _unit_start(day: dt.date, unit: str) -> dt.date:
    if unit == "day":
        return day
    if unit == "week":
        return day - dt.timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return dt.date(day.year, 1, 1)


def _unit_end(start: dt.date, unit: str) -> dt.date:
    return _step(start, unit, 1) - dt.timedelta(days=1)


_MONTHS_OF = {"month": 1, "quarter": 3, "half": 6, "year": 12}


def _step(day: dt.date, unit: str, n: int) -> dt.date:
    if unit == "day":
        return day + dt.timedelta(days=n)
    if unit == "week":
        return day + dt.timedelta(weeks=n)
    return add_months(day, n * _MONTHS_OF[unit])


def _calendar(label: str, start: dt.date, unit: str) -> Period:
    months = _MONTHS_OF.get(unit)
    return Period(label, start, _unit_end(start, unit), unit=unit, months=months)


def _half(text: str, cutoff: dt.date) -> Period | None:
    """A half year: "2017-H2", "h1 2017", "first half of 2017", "2nd half"; a half without
    its year is the latest such half starting on or before the cutoff."""
    m = re.fullmatch(
        r"(?:((?:19|20)\d\d)[-\s]?h([12])|h([12])(?:[-\s]?((?:19|20)\d\d))?"
        r"|(first|1st|second|2nd) half(?: of)?(?: ((?:19|20)\d\d))?)",
        text,
    )
    if m is None:
        return None
    half = int(m[2] or m[3] or (1 if m[5] in ("first", "1st") else 2))
    said = m[1] or m[4] or m[6]
    month = 1 if half == 1 else 7
    year = int(said) if said else (cutoff.year if month <= cutoff.month else cutoff.year - 1)
    return _calendar(f"{year}-H{half}", dt.date(year, month, 1), "half")


def _date(text: str, dayfirst: bool = False) -> dt.date | None:
    text = text.strip().strip(",.")
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text) or re.fullmatch(
        r"(\d{4})(\d{2})(\d{2})", text
    )
    try:
        if m:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        m = re.fullmatch(r"(\d{1,2})[/.](\d{1,2})[/.](\d{4})", text)
        if m:
            a, b = int(m[1]), int(m[2])
            day, month = (a, b) if dayfirst else (b, a)
            return dt.date(int(m[3]), month, day)
        m = re.fullmatch(r"(\d{1,2})\s+([a-z]+)\s+(\d{4})", text.lower())
        if m and m[2] in MONTHS:
            return dt.date(int(m[3]), MONTHS[m[2]], int(m[1]))
        m = re.fullmatch(r"([a-z]+)\s+(\d{1,2}),?\s+(\d{4})", text.lower())
        if m and m[1] in MONTHS:
            return dt.date(int(m[3]), MONTHS[m[1]], int(m[2]))
    except ValueError:
        return None
    return None


def _full_year(text: str, cutoff: dt.date) -> int:
    """A year as written: "1998"; "'98" or "98" is the latest such year not after the year
    after the cutoff (1998 for data of 1998, 2021 for "'21" in data of 2026)."""
    digits = text.lstrip("'")
    if len(digits) == 4:
        return int(digits)
    year = (cutoff.year // 100) * 100 + int(digits)
    return year - 100 if year > cutoff.year + 1 else year


def _named(text: str, cutoff: dt.date, dayfirst: bool) -> Period | None:
    """A period given by its name: a year, quarter, month or day (no relative words)."""
    t = text.strip().lower()
    if re.fullmatch(r"(?:19|20)\d\d", t):
        return _calendar(t, dt.date(int(t), 1, 1), "year")
    m = re.fullmatch(r"((?:19|20)\d\d)[-\s]?q([1-4])|q([1-4])[-\s]?((?:19|20)\d\d)", t)
    if m:
        year = int(m[1] or m[4])
        q = int(m[2] or m[3])
        return _calendar(f"{year}-Q{q}", dt.date(year, 3 * q - 2, 1), "quarter")
    half = _half(t, cutoff)
    if half is not None:
        return half
    m = re.fullmatch(r"q([1-4])", t)
    if m:  # "Q3": the latest third quarter starting on or before the cutoff
        q = int(m[1])
        year = cutoff.year if 3 * q - 2 <= cutoff.month else cutoff.year - 1
        return _calendar(f"{year}-Q{q}", dt.date(year, 3 * q - 2, 1), "quarter")
    m = re.fullmatch(r"((?:19|20)\d\d)-(\d{1,2})", t)
    if m and 1 <= int(m[2]) <= 12:
        return _calendar(f"{m[1]}-{int(m[2]):02d}", dt.date(int(m[1]), int(m[2]), 1), "month")
    m = re.fullmatch(r"([a-z]+)\.?,?\s+((?:19|20)\d\d|'\d\d|[3-9]\d)", t)
    if m and m[1] in MONTHS:  # "March 1998", "feb 97", "jun '21"
        start = dt.date(_full_year(m[2], cutoff), MONTHS[m[1]], 1)
        return _calendar(start.strftime("%Y-%m"), start, "month")
    m = re.fullmatch(r"([a-z]+)", t)
    if m and m[1] in MONTHS:  # "March": the latest March on or before the cutoff
        year = cutoff.year if MONTHS[m[1]] <= cutoff.month else cutoff.year - 1
        start = dt.date(year, MONTHS[m[1]], 1)
        return _calendar(start.strftime("%Y-%m"), start, "month")
    day = _date(t, dayfirst)
    if day is not None:
        return Period(day.isoformat(), day, day, unit="day")
    return None


def parse_period(
    text: str | None, cutoff: dt.date, *, first: dt.date | None = None, dayfirst: bool = False
) -> Period:
    """Resolve ``text`` against ``cutoff`` (the data's last date); ConfigError with examples
    when it cannot be read. ``first`` is the data's first date (for open-ended periods)."""
    raw = (text or "").strip()
    t = re.sub(r"\s+", " ", raw.lower()).strip(" .?!")
    t = re.sub(r"^(?:in|during|over|for|of) (?:the )?", "", t)
    t = re.sub(r"^the ", "", t)
    if t in ("", "all", "all time", "all data", "ever", "overall", "total", "lifetime"):
        return Period("all data", first, cutoff)

    m = re.fullmatch(r"(?:last|past|previous|trailing|rolling) (\d+|[a-z]+) ([a-z]+)", t)
    if m and m[2] in _UNIT and (m[1].isdigit() or m[1] in _WORDS):
        n = int(m[1]) if m[1].isdigit() else _WORDS[m[1]]
        unit = _UNIT[m[2]]
        if n < 1:
            raise ConfigError(f"period '{raw}' is empty", hint=f"periods: {EXAMPLES}")
        if unit in ("day", "week"):
            days = n * (7 if unit == "week" else 1)
            start = cutoff - dt.timedelta(days=days - 1)
            return Period(f"last {n} {unit}s" if n > 1 else f"last {unit}", start, cutoff)
        months = n * {"month": 1, "quarter": 3, "year": 12}[unit]
        # from the day after the cutoff, back: data to 30 Sep, last 6 months = 1 Apr - 30 Sep
        start = add_months(cutoff + dt.timedelta(days=1), -months)
        label = f"last {n} {unit}s" if n > 1 else f"last 1 {unit}"
        return Period(label, start, cutoff, months=months)

    m = re.fullmatch(r"(?:last|previous|prior) (week|month|quarter|year)", t)
    if m:
        unit = m[1]
        start = _unit_start(cutoff, unit)
        if _unit_end(start, unit) != cutoff:  # the cutoff's unit is not complete
            start = _step(start, unit, -1)
        return _calendar(f"last {unit}", start, unit)

    m = re.fullmatch(r"(?:this|current) (week|month|quarter|year)(?: to date)?", t)
    to_date = {"wtd": "week", "mtd": "month", "qtd": "quarter", "ytd": "year"}
    if m or t in to_date or re.fullmatch(r"(week|month|quarter|year) to date", t):
        unit = m[1] if m else to_date.get(t) or t.split()[0]
        start = _unit_start(cutoff, unit)
        return Period(f"{unit} to date", start, cutoff, unit=None)

    if t in ("yesterday", "today", "latest day", "last day"):
        return Period(cutoff.isoformat(), cutoff, cutoff, unit="day")

    m = re.fullmatch(r"(?:since|from|after|starting) (.+)", t)
    if m and " to " not in m[1] and " and " not in m[1]:
        named = _named(m[1], cutoff, dayfirst)
        if named is not None and named.start is not None:
            start = named.start if not t.startswith("after") else named.end + dt.timedelta(1)
            return Period(f"since {start.isoformat()}", start, cutoff)

    m = re.fullmatch(r"(?:until|up to|to|before|through) (.+)", t)
    if m:
        named = _named(m[1], cutoff, dayfirst)
        if named is not None and named.start is not None:
            end = named.start - dt.timedelta(1) if t.startswith("before") else named.end
            return Period(f"until {end.isoformat()}", first, min(end, cutoff))

    m = re.fullmatch(r"(?:between |from )?(.+?) ?(?:\.\.| to | and |–|—| - )(.+)", t)
    if m:
        a, b = _named(m[1], cutoff, dayfirst), _named(m[2], cutoff, dayfirst)
        if a is not None and b is not None and a.start is not None:
            if b.end < a.start:
                raise ConfigError(
                    f"period '{raw}' ends before it starts", hint=f"periods: {EXAMPLES}"
                )
            return Period(f"{a.start.isoformat()} to {b.end.isoformat()}", a.start, b.end)

    named = _named(t, cutoff, dayfirst)
    if named is not None:
        return named
    raise ConfigError(f"cannot read the period '{raw}'", hint=f"periods: {EXAMPLES}")


def comparison(period: Period, how: str) -> Period:
    """The period to compare with: ``previous`` (the one just before, same length; a
    calendar unit's previous unit) or ``year`` (the same dates a year earlier)."""
    if period.start is None:
        raise ConfigError(
            "a comparison needs a bounded period (all data has nothing before it)",
            hint="add --period, e.g. --period 'last 12 months' --compare previous",
        )
    if how == "year":
        start, end = add_months(period.start, -12), add_months(period.end, -12)
        return replace(period, label=f"{period.label}, a year earlier", start=start, end=end)
    if how != "previous":
        raise ConfigError(f"unknown comparison '{how}'", hint="use previous or year")
    if period.unit in ("week", "month", "quarter", "half", "year", "day"):
        start = _step(period.start, period.unit, -1)
        return replace(
            period, label=f"previous {period.unit}", start=start, end=_unit_end(start, period.unit)
        )
    if period.months:
        start = add_months(period.start, -period.months)
        return replace(
            period,
            label=f"previous {period.months} months",
            start=start,
            end=period.start - dt.timedelta(1),
        )
    days = period.days or 1
    start = period.start - dt.timedelta(days=days)
    return replace(
        period, label=f"previous {days} days", start=start, end=period.start - dt.timedelta(1)
    )


def shift(period: Period, other: Period) -> tuple[int, int]:
    """(months, days) that move dates of ``other`` onto ``period`` (to line up buckets)."""
    assert period.start is not None and other.start is not None
    if (
        other.start.day == period.start.day
        or period.unit in ("month", "quarter", "year")
        or (period.months)
    ):
        months = (period.start.year - other.start.year) * 12 + (
            period.start.month - other.start.month
        )
        if add_months(other.start, months) == period.start:
            return months, 0
    return 0, (period.start - other.start).days


__all__ = ["EXAMPLES", "Period", "add_months", "comparison", "parse_period", "shift"]
