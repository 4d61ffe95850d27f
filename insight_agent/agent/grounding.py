"""Grounding: every number in an answer must match a number in this turn's tool outputs.

The agent words its answer freely, but the figures in it are checked against the facts the tools
returned (and the user's own question). :func:`check_grounding` lists the figures it could match
and the ones it could not; :func:`annotate` appends the unmatched ones to the answer so a
marketer never mistakes a made-up number for a measured one.

What counts as a figure (:func:`extract_figures`)
    Numbers as a reader sees them: ``1,380``, ``1380``, ``41%``, ``41.2 %``, ``41 percent``,
    ``3.2pp``, ``$1,234.56``, ``€12.5k``, ``£1.2 million``, ``1.4M``, ``-3.2``, ``0.91``,
    ``2.5x``. English number formatting only (``,`` groups thousands, ``.`` is the decimal point).

    Not figures:

    * digits inside identifiers and names: customer ids ``C000042``, segment/theme/review ids
      ``S2`` ``T3`` ``R001234``, ``#2``, placeholders ``<CUSTOMER_1>``, model names ``gpt-4o``,
      ``Qwen2.5``, hyphenated words ``top-3``, digits glued to letters (``5km``, ``3rd``);
    * dates and times: ISO dates ``2026-11-24`` (with or without a time), ``2026-11``, slashed
      forms ``24/11/2026`` (and any ``a/b`` such as ``24/7``), ``10:30``, and a number written
      next to a month name (``24 Nov``, ``November 24th, 2026``, ``Nov 2026``); version strings
      like ``1.2.3``;
    * list markers: ``1.`` or ``2)`` at the start of a line (after optional ``#``/``-``/``*``);
    * a rating's scale: the ``5`` of "rated 2 out of 5" or "4.2 out of 5 stars" (not of "2
      out of 5 customers", a count to check);
    * numbers in words (``two segments``, ``third``).

    Years: a bare integer from 1900 to 2100 (no thousands separator, sign, decimals, currency
    or unit) is *year-like*. It is verified when a source holds that number; otherwise it is
    reported under ``ignored`` rather than ``unverified``, because "Black Friday 2025" should not
    be flagged while "2,025 customers" (with a separator) still is.

Matching (:func:`check_grounding`)
    A figure showing ``d`` decimals (after its k/M/bn scale) is verified by a source number
    ``x`` when ``|x / scale - shown| <= 0.5 * 10**-d`` (plus a 1e-9 relative slack for float
    noise), i.e. when ``x`` rounds to the figure at its shown precision, half-up or half-even.
    So ``1.4k`` matches 1380 and 1423, ``$1.2M`` matches 1234567, ``41%`` matches 0.4123 and 41.2,
    but ``13,800`` does not match 1380 and ``0.62`` does not match 0.26.

    * Percent figures also match fractions (``41%`` <-> 0.41) and percent-valued sources; a
      percent found inside a source *string* (``"41%"``) also matches the fraction ``0.41`` in
      the answer. Plain figures never match ``x * 100`` (``41`` does not match 0.41).
    * A figure with no explicit sign matches a source of either sign ("fell by 3.2%" for -3.2);
      an explicit ``-``/``+`` must agree with the source's sign.
    * Currency symbols and multiplier marks are presentation: ``$57`` and ``2.5x`` match 57 and
      2.5.
    * Sources are walked recursively (dict values and keys, lists, JSON strings, LangChain
      messages' ``content``); numbers inside strings are read with :func:`extract_figures`. The
      length of every list in a source also counts ("3 themes" when a tool returned 3).
    * Numbers in the user's question count as grounded ("top 3").
    * Small figures are matched more easily by chance (many sources hold a 3); the check is
      about catching invented or mistyped magnitudes, not proving every digit.

Quotes
    Text the answer puts in double quotes (straight or curly) and that runs to at least four
    words is a quote: it must appear in a tool output (or the question) word for word, ignoring
    case, spacing, quote styles and a trailing ellipsis. A quote no tool returned is listed in
    ``unverified_quotes`` — small models "complete" a list of review quotes with invented
    ones. Shorter quoted text (a segment or theme name) is not checked.

Derived figures
    A difference, sum or ratio of two source numbers (``41.2% - 33.7% = 7.5%``) is *not*
    verified: the tool that computes it should return it. When the sources are small (at most
    40 distinct numbers) and the figure shows at least two significant digits, an unverified
    figure that equals such a combination is marked ``derived?`` with the formula, as a hint for
    the reader; it stays unverified and ``ok`` stays false.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

FigureKind = Literal["plain", "percent", "currency", "multiplier"]

_SCALES: dict[str, int] = {
    "k": 1_000,
    "thousand": 1_000,
    "m": 1_000_000,
    "mn": 1_000_000,
    "mm": 1_000_000,
    "million": 1_000_000,
    "b": 1_000_000_000,
    "bn": 1_000_000_000,
    "billion": 1_000_000_000,
}
_SCALE_NAMES = {1_000: "k", 1_000_000: "m", 1_000_000_000: "bn"}

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)

# Spans that are never figures; removed before numbers are looked for.
_NOT_FIGURES = re.compile(
    rf"""
    \b\d{{4}}-\d{{1,2}}(?:-\d{{1,2}})?                       # ISO date / year-month
      (?:[T\s]\d{{1,2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?(?:Z|[+-]\d{{2}}:?\d{{2}})?)?\b
    | \b\d+(?:/\d+)+\b                                       # 24/11/2026, 24/7
    | \b\d{{1,2}}:\d{{2}}(?::\d{{2}})?\b                     # 10:30
    | \b\d+(?:\.\d+){{2,}}\b                                 # 1.2.3
    | \b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{4}}\b)?   # Nov 24, 2026
    | \b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}}\b)?  # 24 Nov 2026
    | \b{_MONTH}\s+\d{{4}}\b                                 # Nov 2026
    | ^[ \t]*(?:\#{{1,6}}[ \t]+)?(?:[-*+][ \t]+)?\d{{1,3}}[.)](?=\s)  # list markers
    | (?<=\d)\s+out\s+of\s+(?:5|10)\b(?:\s+stars?\b)?(?!\s+[a-z])  # a rating's scale
    """,
    re.VERBOSE | re.MULTILINE,
)

_NUMBER = re.compile(
    r"""
    (?P<sign>[-+−])?
    (?P<cur>[$€£¥₹]|\b(?:USD|EUR|GBP)\s?)?
    (?P<sign2>[-+−])?
    (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
    (?P<unit>
        \s?%
      | \s?(?:percent|per\ cent|percentage\ points?|pp)\b
      | [x×](?![\w])
      | \s?(?:thousand|million|billion)\b
      | (?:k|K|m|M|mn|mm|bn|B)(?![\w])
      | \s(?:bn|mn)\b
    )?
    (?P<cur_after>\s?(?:USD|EUR|GBP)\b)?
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Figure:
    """One number as written in text.

    ``value`` is what it means (``"1.4k"`` -> 1400.0, ``"41%"`` -> 41.0; percents keep their
    percent value), ``decimals`` the digits shown after the decimal point and ``scale`` the
    multiplier of a k/m/bn suffix (1 when none).
    """

    raw: str
    span: tuple[int, int]
    value: float
    kind: FigureKind = "plain"
    decimals: int = 0
    scale: int = 1
    signed: bool = False  # written with an explicit + or - sign
    year_like: bool = False

    @property
    def suffix(self) -> str:
        """The scale suffix as a short name (``""``, ``"k"``, ``"m"`` or ``"bn"``)."""
        return _SCALE_NAMES.get(self.scale, "")

    @property
    def shown(self) -> Decimal:
        """The number as shown, before the scale: ``"€12.5k"`` -> 12.5."""
        return _to_decimal(self.value) / self.scale


@dataclass(frozen=True)
class Verified:
    """A figure of the answer and the source number that matched it."""

    figure: Figure
    source_value: float
    source: Literal["tools", "question"] = "tools"


@dataclass
class GroundingResult:
    """Which figures of an answer the sources support.

    ``unverified`` lists raw figure strings (each once, in answer order); ``derived`` maps some
    of them to a formula over two source numbers that reproduces them (a hint, not a
    verification); ``ignored`` lists year-like numbers no source holds.
    """

    verified: list[Verified] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    derived: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    unverified_quotes: list[str] = field(default_factory=list)
    # Figures whose digits match a fact but whose words say something else ("a typical
    # customer is worth 1,372,244" when 1,372,244 is a segment total).
    meaning: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every figure and quote in the answer is supported, meaning included."""
        return not self.unverified and not self.unverified_quotes and not self.meaning

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (for logs, traces and `--json` output)."""
        return {
            "ok": self.ok,
            "verified": [
                {
                    "figure": v.figure.raw,
                    "value": v.figure.value,
                    "kind": v.figure.kind,
                    "source_value": v.source_value,
                    "source": v.source,
                }
                for v in self.verified
            ],
            "unverified": list(self.unverified),
            "derived": dict(self.derived),
            "ignored": list(self.ignored),
            "unverified_quotes": list(self.unverified_quotes),
            "meaning": list(self.meaning),
        }


def _to_decimal(x: float | int | str) -> Decimal:
    # repr gives the shortest string that round-trips, so 0.1 becomes Decimal("0.1").
    return Decimal(x if isinstance(x, str) else repr(x))


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """Replace the given spans with spaces (keeps all other offsets unchanged)."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _glued(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is part of a word, identifier, date or longer number."""
    before = text[start - 1] if start > 0 else ""
    before2 = text[start - 2] if start > 1 else ""
    after = text[end] if end < len(text) else ""
    after2 = text[end + 1] if end + 1 < len(text) else ""
    if before and (before.isalnum() or before in "_#.<@"):
        return True
    # gpt-4, top-3, C-42 (a hyphen right after a letter); 10-20 is a range and stays a figure.
    if before in "-−" and before2 and (before2.isalpha() or before2 == "_"):
        return True
    if before in "/:" and before2.isdigit():
        return True
    if after and (after.isalnum() or after in "_>@"):
        return True
    return after in "/:." and after2.isdigit()


def extract_figures(text: str) -> list[Figure]:
    """Every figure in ``text``, in order (see the module docstring for what counts)."""
    if not text:
        return []
    masked = _blank(text, (m.span() for m in _NOT_FIGURES.finditer(text)))
    figures: list[Figure] = []
    for m in _NUMBER.finditer(masked):
        start, end = m.span()
        sign = m.group("sign") or m.group("sign2")
        # A sign right after a letter or digit is a hyphen or a range dash ("gpt-4", "10-20").
        if m.group("sign") and start > 0 and masked[start - 1].isalnum():
            start += 1
            sign = m.group("sign2")
        if _glued(masked, start, end):
            continue
        digits = m.group("num").replace(",", "")
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        unit = (m.group("unit") or "").strip().lower()
        kind: FigureKind = "plain"
        scale = 1
        if unit in ("%", "percent", "per cent", "pp") or unit.startswith("percentage"):
            kind = "percent"
        elif unit in ("x", "×"):
            kind = "multiplier"
        elif unit:
            scale = _SCALES[unit]
        if m.group("cur") or m.group("cur_after"):
            kind = "currency" if kind == "plain" else kind
        try:
            value = Decimal(digits) * scale
        except InvalidOperation:  # pragma: no cover - the regex only admits valid numbers
            continue
        if sign in ("-", "−"):
            value = -value
        year_like = (
            kind == "plain"
            and scale == 1
            and not sign
            and "," not in m.group("num")
            and "." not in digits
            and len(digits) == 4
            and 1900 <= int(digits) <= 2100
        )
        figures.append(
            Figure(
                raw=text[start:end].strip(),
                span=(start, end),
                value=float(value),
                kind=kind,
                decimals=decimals,
                scale=scale,
                signed=bool(sign),
                year_like=year_like,
            )
        )
    _widen_ranges(text, figures)
    return figures


_RANGE_GAP = re.compile(r"\s*(?:-|–|—|to)\s*$")


def _widen_ranges(text: str, figures: list[Figure]) -> None:
    """In "10-20%" or "$5 to $8k" the first number takes the unit of the second."""
    for i in range(len(figures) - 1, 0, -1):
        left, right = figures[i - 1], figures[i]
        gap = text[left.span[1] : right.span[0]]
        if (
            left.kind == "plain"
            and left.scale == 1
            and right.kind in ("percent", "multiplier")
            and _RANGE_GAP.fullmatch(gap)
        ):
            figures[i - 1] = Figure(
                raw=left.raw,
                span=left.span,
                value=left.value,
                kind=right.kind,
                decimals=left.decimals,
                scale=1,
                signed=left.signed,
            )
        elif (
            left.kind == "plain"
            and left.scale == 1
            and right.scale > 1
            and _RANGE_GAP.fullmatch(gap)
        ):
            figures[i - 1] = Figure(
                raw=left.raw,
                span=left.span,
                value=left.value * right.scale,
                kind=left.kind,
                decimals=left.decimals,
                scale=right.scale,
                signed=left.signed,
            )


# --- sources ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """A number found in a source; ``percent`` when it was written as a percent in a string;
    ``kind`` what the fact it came from is (:func:`fact_kind`), when its key says."""

    value: float
    percent: bool = False
    kind: str | None = None
    key: str | None = None


# What a fact is, from its key: the meaning check compares this with the words around a
# figure. Order matters: "share_of_clv" is a share, not a total CLV.
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("share_customers", re.compile(r"share.*(?:customer|high_risk|reviews?$)|^share_high")),
    ("share_revenue", re.compile(r"share.*(?:revenue|spend|sales)")),
    ("share_clv", re.compile(r"share.*clv|clv.*share")),
    ("base_rate", re.compile(r"^base_rate$")),
    ("probability", re.compile(r"probabilit|^p_[a-z]|_probability")),
    (
        "per_unit",
        re.compile(
            r"^(?:mean|median|avg|average|typical)|_(?:mean|median)$|per_"
            r"customer|average_order_value|^aov$"
        ),
    ),
    ("total", re.compile(r"^total|_total$|^sum$|^revenue$|^returned_value$")),
)


def fact_kind(key: str | None, measures: Mapping[str, str] | None = None) -> str | None:
    """The kind of figure a fact key holds: ``total``, ``per_unit`` (a mean or median),
    ``share_customers`` / ``share_revenue`` / ``share_clv``, ``probability``, ``base_rate``;
    None when the key does not say. ``measures`` maps metrics-layer measure names to their
    aggregation (a metrics result states it)."""
    if not key:
        return None
    k = key.lower()
    if measures and k.split("_previous")[0] in measures:
        agg = measures[k.split("_previous")[0]]
        return {"total": "total", "mean": "per_unit", "median": "per_unit"}.get(agg)
    for kind, pattern in _KINDS:
        if pattern.search(k):
            return kind
    return None


# A number that is part of a snake_case key: "clv_12m", "top_20pct_capture", "orders_90d".
_KEY_NUMBER = re.compile(r"(?:^|_)(\d+(?:\.\d+)?)(pct|[dmyw])?(?=_|$)")


# A snake_case key written in text (a compact view's key lines and table headers).
_KEY_IN_TEXT = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def _key_numbers(key: str) -> list[_Source]:
    """Numbers a fact's key states ("clv_12m": a 12-month horizon; "top_20pct_capture": 20%);
    an answer saying "over the next 12 months" quotes the key, not a made-up figure."""
    return [
        _Source(float(number), percent=unit == "pct") for number, unit in _KEY_NUMBER.findall(key)
    ]


def _walk(
    obj: Any,
    out: list[_Source],
    depth: int = 0,
    key: str | None = None,
    measures: Mapping[str, str] | None = None,
) -> None:
    if depth > 50:  # pathological nesting; nothing useful that deep
        return
    if obj is None or isinstance(obj, bool):
        return
    if isinstance(obj, int | float):
        if math.isfinite(obj):
            out.append(_Source(float(obj), kind=fact_kind(key, measures), key=key))
        return
    if isinstance(obj, bytes | bytearray):
        obj = obj.decode("utf-8", "replace")
    if isinstance(obj, str):
        stripped = obj.strip()
        if stripped[:1] in ("{", "["):
            try:
                _walk(json.loads(stripped), out, depth + 1, key, measures)
                return
            except ValueError:
                pass
        for fig in extract_figures(obj):
            out.append(_Source(fig.value, percent=fig.kind == "percent"))
        for key in _KEY_IN_TEXT.findall(obj):  # a compact view's "clv_12m: mean=656.61"
            out.extend(_key_numbers(key))
        return
    if isinstance(obj, Mapping):
        # a metrics result says each measure's aggregation: its rows are read with it
        listed = obj.get("measures")
        if isinstance(listed, list) and all(isinstance(m, Mapping) for m in listed):
            measures = {
                str(m.get("name")): str(m.get("aggregation")) for m in listed if m.get("name")
            }
        for name, value in obj.items():
            if isinstance(name, str):
                _walk(name, out, depth + 1)
                out.extend(_key_numbers(name))
            _walk(value, out, depth + 1, name if isinstance(name, str) else key, measures)
        return
    if isinstance(obj, list | tuple | set | frozenset):
        out.append(_Source(float(len(obj))))
        for item in obj:
            _walk(item, out, depth + 1, key, measures)
        return
    content = getattr(obj, "content", None)  # LangChain ToolMessage and friends
    if content is not None:
        _walk(content, out, depth + 1)
        artifact = getattr(obj, "artifact", None)
        if artifact is not None:
            _walk(artifact, out, depth + 1)
        return
    dump = getattr(obj, "model_dump", None)  # pydantic models
    if callable(dump):
        _walk(dump(), out, depth + 1)
        return
    _walk(str(obj), out, depth + 1)


def collect_numbers(sources: Iterable[Any]) -> list[float]:
    """Every number in ``sources`` (as :func:`check_grounding` sees them), for debugging."""
    found: list[_Source] = []
    for source in sources:
        _walk(source, found)
    return [s.value for s in found]


# --- matching -----------------------------------------------------------------------------


def _candidates(figure: Figure, source: _Source) -> Iterator[float]:
    """The values ``source`` may stand for when compared with ``figure``."""
    yield source.value
    if figure.kind == "percent" and not source.percent:
        yield source.value * 100  # fraction in the data, percent in the answer
    if source.percent and figure.kind != "percent":
        yield source.value / 100  # "41%" in a source string, 0.41 in the answer


def _close(figure: Figure, candidate: float) -> bool:
    """True when ``candidate`` rounds to the figure at the precision it is shown with."""
    if not math.isfinite(candidate):
        return False
    shown = figure.value / figure.scale
    if figure.signed:
        if candidate and (candidate < 0) != (shown < 0):
            return False
    else:
        candidate, shown = abs(candidate), abs(shown)
    half_unit = 0.5 * 10.0**-figure.decimals
    # The slack absorbs float noise at exact halves (0.125 shown as 0.13 or 0.12).
    slack = 1e-9 * max(1.0, abs(shown))
    return abs(candidate / figure.scale - shown) <= half_unit + slack


def _matches(figure: Figure, sources: Iterable[_Source]) -> float | None:
    found = _all_matches(figure, sources)
    return found[0].value if found else None


def _all_matches(figure: Figure, sources: Iterable[_Source]) -> list[_Source]:
    return [
        source
        for source in sources
        if any(_close(figure, candidate) for candidate in _candidates(figure, source))
    ]


# --- meaning: the words around a verified figure must fit the fact it matched -----------------

_SAYS_PER_UNIT = re.compile(
    r"\b(?:typical|average|avg|mean|median|on average|per customer|each customer|"
    r"an? (?:single |individual )?customer)\b[^.;:!?]{0,50}$"
)
_SAYS_TOTAL = re.compile(r"\b(?:total|in total|combined|altogether|all together|overall|sum)\b"
                         r"[^.;:!?]{0,30}$")  # fmt: skip
_SAYS_PER_UNIT_AFTER = re.compile(r"^\s*(?:per|a|each|for each|for the average) "
                                  r"(?:customer|buyer|shopper|person|head)\b")  # fmt: skip
_SAYS_TOTAL_AFTER = re.compile(r"^\s*(?:in total|in all|combined|altogether)\b")
_SHARE_OF = re.compile(
    r"^\s*(?:%|percent|per cent)?\s*(?:of|of all|of the|of our|of its|of their)\s+"
    r"(?:(?:the|our|its|their|total|all)\s+)?"
    r"(?P<what>customers?|the customer base|customer base|shoppers|buyers|people|clients|"
    r"revenue|sales|spend|turnover|income|clv|lifetime value|customer value|future value|"
    r"expected value|value)"
)
_SAYS_HIGH = re.compile(r"\b(?:high|higher|elevated|very likely|most likely|at risk|risky|"
                        r"alarming|worrying|significant)\b")  # fmt: skip
_BASE_WORDS = {
    "customers": "share_customers",
    "customer": "share_customers",
    "the customer base": "share_customers",
    "customer base": "share_customers",
    "shoppers": "share_customers",
    "buyers": "share_customers",
    "people": "share_customers",
    "clients": "share_customers",
    "revenue": "share_revenue",
    "sales": "share_revenue",
    "spend": "share_revenue",
    "turnover": "share_revenue",
    "income": "share_revenue",
}
_KIND_WORDS = {
    "total": "a total",
    "per_unit": "an average (mean or median)",
    "share_customers": "a share of customers",
    "share_revenue": "a share of revenue",
    "share_clv": "a share of CLV",
    "probability": "a probability",
    "base_rate": "a base rate",
}


def _window(answer: str, figure: Figure) -> tuple[str, str]:
    """Lower-case text before (same sentence, up to 80 chars) and after (40 chars) a figure."""
    start, end = figure.span
    before = answer[max(0, start - 80) : start].lower()
    before = re.split(r"[.!?;\n]\s", before)[-1]
    after = answer[end : end + 40].lower()
    after = re.split(r"[.!?;\n]", after)[0]
    return before, after


def _claims(answer: str, figure: Figure) -> set[str]:
    """What the words around ``figure`` say it is (a subset of fact kinds, and "high")."""
    before, after = _window(answer, figure)
    said: set[str] = set()
    m = _SHARE_OF.match(after)
    if m and (figure.kind == "percent" or figure.value <= 1):
        what = m["what"]
        said.add(_BASE_WORDS.get(what, "share_clv"))
    elif _SAYS_PER_UNIT.search(before) or _SAYS_PER_UNIT_AFTER.match(after):
        said.add("per_unit")
    elif _SAYS_TOTAL.search(before) or _SAYS_TOTAL_AFTER.match(after):
        said.add("total")
    near = before[-40:] + " " + after[:25]
    if _SAYS_HIGH.search(near):
        said.add("high")
    return said


def _meaning_problem(
    figure: Figure, claims: set[str], matched: list[_Source], sources: list[_Source]
) -> str | None:
    """Why the figure's words contradict every fact it matched (None when one agrees, or
    when the facts do not say what they are)."""
    kinds = {s.kind for s in matched}
    if None in kinds:
        return None  # a fact that does not say what it is: cannot contradict
    for claim in claims - {"high"}:
        if claim in kinds:
            return None
        clash = {
            "per_unit": {"total", "share_customers", "share_revenue", "share_clv"},
            "total": {"per_unit", "share_customers", "share_revenue", "share_clv"},
            "share_customers": {"share_revenue", "share_clv", "total", "per_unit"},
            "share_revenue": {"share_customers", "share_clv"},
            "share_clv": {"share_customers", "share_revenue"},
        }[claim]
        if kinds <= clash:
            what = " or ".join(sorted(_KIND_WORDS[k] for k in kinds))
            said = {
                "per_unit": "a typical or average value",
                "total": "a total",
                "share_customers": "a share of customers",
                "share_revenue": "a share of revenue",
                "share_clv": "a share of CLV",
            }[claim]
            return f"{figure.raw} is {what}, not {said}"
    if "high" in claims and kinds <= {"probability", "base_rate"} and "probability" in kinds:
        bases = [s.value for s in sources if s.kind == "base_rate"]
        value = matched[0].value
        if bases and value < min(bases):
            return f"{figure.raw} is below the base rate ({_fmt(min(bases))}), not high"
    return None


_MAX_DERIVED_SOURCES = 40


def _significant_digits(figure: Figure) -> int:
    digits = format(abs(figure.shown), "f").replace(".", "").lstrip("0")
    return len(digits)


def _derived(figure: Figure, sources: list[_Source]) -> str | None:
    """A formula over two source numbers that gives ``figure``, when cheap and meaningful."""
    values = sorted({s.value for s in sources})
    if len(values) > _MAX_DERIVED_SOURCES or _significant_digits(figure) < 2:
        return None
    for a in values:
        for b in values:
            if a == b:
                continue
            options: list[tuple[float, str]] = []
            if a > b:  # differences and sums once per pair, larger number first
                if figure.signed and figure.value < 0:
                    options.append((b - a, f"{_fmt(b)} - {_fmt(a)}"))
                else:
                    options.append((a - b, f"{_fmt(a)} - {_fmt(b)}"))
                options.append((a + b, f"{_fmt(a)} + {_fmt(b)}"))
            if b:
                options.append((a / b, f"{_fmt(a)} / {_fmt(b)}"))
                if figure.kind == "percent":
                    options.append(((a - b) / b * 100, f"({_fmt(a)} - {_fmt(b)}) / {_fmt(b)}"))
            for value, formula in options:
                probe = _Source(value)
                if any(_close(figure, c) for c in _candidates(figure, probe)):
                    return formula
    return None


def _fmt(x: float) -> str:
    return f"{x:g}"


_QUOTED = re.compile(r'"([^"\n]{8,}?)"|“([^”\n]{8,}?)”')
_QUOTE_MIN_WORDS = 4


def _norm_text(text: str) -> str:
    text = text.casefold().replace("’", "'").replace("‘", "'")
    text = text.replace('\\"', '"')
    text = re.sub(r"(…|\.\.\.)", " ", text)
    return " ".join(re.sub(r"[^\w'%.,!?-]+", " ", text).split()).strip(" .,!?")


def extract_quotes(answer: str) -> list[str]:
    """Text in double quotes of at least four words, in answer order, each once."""
    found: list[str] = []
    for match in _QUOTED.finditer(answer):
        quote = (match.group(1) or match.group(2) or "").strip()
        if len(quote.split()) >= _QUOTE_MIN_WORDS and quote not in found:
            found.append(quote)
    return found


def _strings(obj: Any, out: list[str], depth: int = 0) -> None:
    if depth > 50 or obj is None:
        return
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, Mapping):
        for value in obj.values():
            _strings(value, out, depth + 1)
    elif isinstance(obj, list | tuple):
        for item in obj:
            _strings(item, out, depth + 1)
    elif getattr(obj, "content", None) is not None:
        _strings(obj.content, out, depth + 1)


def check_quotes(answer: str, sources: Iterable[Any], *, question: str = "") -> list[str]:
    """The quotes in ``answer`` that no source (nor the question) holds word for word."""
    quotes = extract_quotes(answer)
    if not quotes:
        return []
    texts: list[str] = [question]
    for source in sources:
        _strings(source, texts)
    haystack = "\n".join(_norm_text(t) for t in texts)
    return [q for q in quotes if _norm_text(q) not in haystack]


def check_grounding(answer: str, sources: Iterable[Any], *, question: str = "") -> GroundingResult:
    """Check every figure in ``answer`` against the numbers in ``sources`` and ``question``.

    ``sources`` are this turn's tool outputs: dicts, lists, JSON strings, plain text or
    LangChain messages. See the module docstring for the matching rules.
    """
    sources = list(sources)  # walked twice: numbers, then quotes
    tool_numbers: list[_Source] = []
    for source in sources:
        _walk(source, tool_numbers)
    question_numbers = [
        _Source(f.value, percent=f.kind == "percent") for f in extract_figures(question)
    ]
    result = GroundingResult()
    seen_unverified: set[str] = set()
    for figure in extract_figures(answer):
        found = _all_matches(figure, tool_numbers)
        matched = found[0].value if found else None
        origin: Literal["tools", "question"] = "tools"
        if matched is None:
            matched = _matches(figure, question_numbers)
            origin = "question"
        if matched is not None:
            result.verified.append(Verified(figure, matched, origin))
            if found:
                problem = _meaning_problem(figure, _claims(answer, figure), found, tool_numbers)
                if problem and problem not in result.meaning:
                    result.meaning.append(problem)
        elif figure.year_like:
            if figure.raw not in result.ignored:
                result.ignored.append(figure.raw)
        elif figure.raw not in seen_unverified:
            seen_unverified.add(figure.raw)
            result.unverified.append(figure.raw)
            formula = _derived(figure, tool_numbers)
            if formula:
                result.derived[figure.raw] = formula
    result.unverified_quotes = check_quotes(answer, sources, question=question)
    return result


def annotate(answer: str, result: GroundingResult) -> str:
    """``answer`` plus a line ``unverified: 13,800, 7.5%`` when some figure is unsupported,
    and one ``unverified quote (no review says this): "..."`` line per invented quote.

    Figures that look derived get the formula in brackets: ``7.5% (derived? 41.2 - 33.7)``.
    The answer is returned unchanged when everything is verified.
    """
    if result.ok:
        return answer
    lines = []
    if result.unverified:
        items = [
            f"{raw} (derived? {result.derived[raw]})" if raw in result.derived else raw
            for raw in result.unverified
        ]
        lines.append(f"unverified: {', '.join(items)}")
    for quote in result.unverified_quotes:
        short = quote if len(quote) <= 70 else quote[:69].rstrip() + "…"
        lines.append(f'unverified quote (no review says this): "{short}"')
    for problem in result.meaning:
        lines.append(f"unverified meaning: {problem}")
    return answer.rstrip() + "\n\n" + "\n".join(lines)
