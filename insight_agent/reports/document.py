"""A small, typed document model that reports and personas are built from.

The report runner and the persona writer assemble a :class:`Document` out of blocks; the
renderers in :mod:`insight_agent.reports.render` turn it into Markdown or one self-contained HTML
file. Blocks carry data, not markup:

- :class:`Heading`, :class:`Paragraph` and :class:`Callout` text is written by us or by the
  model and may use a tiny Markdown subset (``**bold**``, ``*italic*``, `` `code` `` and bullet
  lines starting with ``"- "``); everything else in it is shown literally.
- :class:`Quote` text is a customer's review: untrusted data, always shown verbatim and escaped,
  never interpreted as Markdown or HTML.
- :class:`Table` and :class:`KeyFigures` values are strings or numbers formatted by the caller;
  the renderer only adds thousands separators to integers.

Constructors validate their input (``ValueError`` with a message saying what is wrong), so a
malformed block fails where it is built rather than deep inside a renderer.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Literal

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CALLOUT_KINDS = ("note", "warning")

# A cell that reads as a number once formatted: "13,800", "-4.5", "12%", "£1,234.50", "2.3x",
# "+3 pp", "1.2k". Columns made only of such cells are right-aligned.
_NUMERIC_TEXT = re.compile(r"^[+\-−]?[£$€¥]?[+\-−]?\d[\d,  ]*(\.\d+)?\s?(%|x|×|pp|k|K|m|M|bn)?$")


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading at an HTML/Markdown level: 2 is a section (``<h2>``, ``##``), 3 a subsection.

    The document title is rendered as the level-1 heading; use 1 only for a page that holds
    several documents' worth of content (e.g. one persona per page).
    """

    text: str
    level: int = 2

    def __post_init__(self) -> None:
        _require_text(self.text, "Heading.text")
        if isinstance(self.level, bool) or not isinstance(self.level, int):
            raise ValueError(f"Heading.level must be an int from 1 to 6, got {self.level!r}")
        if not 1 <= self.level <= 6:
            raise ValueError(f"Heading.level must be an int from 1 to 6, got {self.level!r}")


@dataclass(frozen=True, slots=True)
class Paragraph:
    """Prose. Blank lines separate paragraphs; lines starting with ``"- "`` are bullets."""

    text: str

    def __post_init__(self) -> None:
        _require_str(self.text, "Paragraph.text")


@dataclass(frozen=True, slots=True)
class Table:
    """A table of caller-formatted values (``None`` shows as an em dash).

    ``align`` is optional, one of ``"left"``, ``"right"`` or ``"center"`` per column; by default a
    column whose every non-empty value is a number (or reads as one) is right-aligned.
    """

    columns: list[str]
    rows: list[list[Any]]
    caption: str | None = None
    align: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("Table.columns must name at least one column")
        for name in self.columns:
            _require_str(name, "Table.columns item")
        width = len(self.columns)
        for i, row in enumerate(self.rows):
            if len(row) != width:
                raise ValueError(
                    f"Table row {i + 1} has {len(row)} values but there are {width} columns"
                )
        _optional_str(self.caption, "Table.caption")
        if self.align is not None:
            if len(self.align) != width:
                raise ValueError(f"Table.align has {len(self.align)} entries, expected {width}")
            bad = [a for a in self.align if a not in ("left", "right", "center")]
            if bad:
                raise ValueError(f"Table.align entries must be left/right/center, got {bad[0]!r}")

    def alignments(self) -> list[str]:
        """The alignment of each column: the explicit ``align`` or the automatic choice."""
        if self.align is not None:
            return list(self.align)
        result = []
        for c in range(len(self.columns)):
            values = [row[c] for row in self.rows if not _is_empty(row[c])]
            numeric = bool(values) and all(is_numeric(v) for v in values)
            result.append("right" if numeric else "left")
        return result


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart rendered to PNG bytes (see :mod:`insight_agent.reports.charts`)."""

    png: bytes
    alt: str
    caption: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.png, bytes | bytearray) or not self.png.startswith(PNG_SIGNATURE):
            raise ValueError("Chart.png must be the bytes of a PNG image")
        _require_text(self.alt, "Chart.alt (a short description for screen readers)")
        _optional_str(self.caption, "Chart.caption")

    def size(self) -> tuple[int, int]:
        """Width and height in pixels, read from the PNG header."""
        if len(self.png) < 24:
            return (0, 0)
        return (
            int.from_bytes(self.png[16:20], "big"),
            int.from_bytes(self.png[20:24], "big"),
        )


@dataclass(frozen=True, slots=True)
class Quote:
    """A customer review quote: shown verbatim (escaped), with its review id and optional meta
    such as ``"★★☆☆☆ · Lapsing big spenders · 2025-03-02"``."""

    text: str
    review_id: str
    meta: str | None = None

    def __post_init__(self) -> None:
        _require_str(self.text, "Quote.text")
        _require_text(str(self.review_id), "Quote.review_id")
        _optional_str(self.meta, "Quote.meta")


@dataclass(frozen=True, slots=True)
class Callout:
    """A highlighted remark: ``"note"`` or ``"warning"`` (e.g. ``"unverified: 13,800"``)."""

    text: str
    kind: Literal["note", "warning"] = "note"

    def __post_init__(self) -> None:
        _require_text(self.text, "Callout.text")
        if self.kind not in CALLOUT_KINDS:
            raise ValueError(f"Callout.kind must be 'note' or 'warning', got {self.kind!r}")


@dataclass(frozen=True, slots=True)
class KeyFigures:
    """A row of headline numbers: ``[("Customers", 12000), ("Revenue share", "38%")]``."""

    items: list[tuple[str, Any]]

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("KeyFigures.items must hold at least one (label, value) pair")
        for item in self.items:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise ValueError(f"KeyFigures.items entries must be (label, value), got {item!r}")
            _require_text(item[0], "KeyFigures label")


Block = Heading | Paragraph | Table | Chart | Quote | Callout | KeyFigures
BLOCK_TYPES = (Heading, Paragraph, Table, Chart, Quote, Callout, KeyFigures)


@dataclass(frozen=True, slots=True)
class Document:
    """A report or persona: a title, an optional subtitle, blocks in order, an optional footer.

    Nothing time-dependent is added by the renderers: put a generation date in ``subtitle`` or
    ``footer`` when one is wanted, and the same document always renders to the same bytes.
    """

    title: str
    subtitle: str | None = None
    blocks: list[Block] = field(default_factory=list)
    footer: str | None = None

    def __post_init__(self) -> None:
        _require_text(self.title, "Document.title")
        _optional_str(self.subtitle, "Document.subtitle")
        _optional_str(self.footer, "Document.footer")
        for i, block in enumerate(self.blocks):
            if not isinstance(block, BLOCK_TYPES):
                raise ValueError(
                    f"Document block {i + 1} is a {type(block).__name__}, expected one of "
                    + ", ".join(t.__name__ for t in BLOCK_TYPES)
                )


def format_value(value: Any) -> str:
    """Text for a table cell or key figure: ints get thousands separators, the rest ``str()``.

    Floats are left as given (the caller rounds them as they should be quoted); ``None`` is an
    em dash.
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    return str(value)


def is_numeric(value: Any) -> bool:
    """True for numbers and for text that reads as one ("13,800", "12%", "£1.2k", "2.3x")."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):
        return True
    return isinstance(value, str) and bool(_NUMERIC_TEXT.match(value.strip()))


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "—", "-"))


def _require_str(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")


def _require_text(value: Any, what: str) -> None:
    _require_str(value, what)
    if not value.strip():
        raise ValueError(f"{what} must not be empty")


def _optional_str(value: Any, what: str) -> None:
    if value is not None:
        _require_str(value, what)
