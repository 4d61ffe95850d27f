"""Opinion units: a review split into the sentences and clauses that each say one thing.

"Love the colour but it runs small" speaks to colour and to sizing, with opposite sentiment; a
review-level theme, sentiment or search hit has to pick one. Units let themes, sentiment and
search work on what was actually said about each aspect.

Splitting (deterministic, no model):

1. Sentences end at ``.``, ``!`` or ``?`` (runs of them, with closing quotes or brackets) followed
   by white space, and at line breaks. Decimal points ("5.5") and initials ("U.S.") do not end a
   sentence because a space must follow.
2. A sentence longer than ``CLAUSE_SPLIT_WORDS`` words is split before a contrast ("but",
   "however", "although", "though", "except", "yet") and at semicolons, so the two halves of
   "great colour but the zipper broke" become two units.
3. A fragment of fewer than ``MIN_WORDS`` words ("Love it!", "Ok.") joins the unit before it (or
   after it, at the start of a review), so every unit carries enough words to be embedded and
   scored; a unit longer than ``MAX_WORDS`` words is cut at word boundaries.

Every unit keeps its character span in the review text, so a quote can highlight the unit inside
the full review, and the units of a review cover its words in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["CLAUSE_SPLIT_WORDS", "MAX_WORDS", "MIN_WORDS", "Unit", "split_units", "units_frame"]

#: A fragment shorter than this joins a neighbour.
MIN_WORDS = 3
#: Sentences longer than this are split at contrasts and semicolons.
CLAUSE_SPLIT_WORDS = 5
#: Units longer than this are cut (the embedder truncates long inputs anyway).
MAX_WORDS = 60

_SENTENCE_END = re.compile(r"(?:[.!?]+[\"')\]]*\s+|\s*[\r\n]+\s*)")
_CLAUSE_BREAK = re.compile(
    r"(?:;\s*|,?\s+(?=(?:but|however|although|though|except|yet|whereas)\b))", re.IGNORECASE
)
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Unit:
    """One opinion unit: its position in the review (``unit_no`` from 0) and character span."""

    unit_no: int
    start: int
    end: int
    text: str


def _spans(text: str, pattern: re.Pattern[str], start: int, end: int) -> Iterator[tuple[int, int]]:
    """Pieces of ``text[start:end]`` between matches of ``pattern`` (stripped, non-empty)."""
    pos = start
    for match in pattern.finditer(text, start, end):
        cut = match.start() + len(match.group().rstrip())  # keep a full stop, drop the space
        yield from _trimmed(text, pos, cut)
        pos = match.end()
    yield from _trimmed(text, pos, end)


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start] in " \t\r\n,;":
        start += 1
    while end > start and text[end - 1] in " \t\r\n,;":
        end -= 1
    if end > start:
        yield start, end


def _words(text: str, start: int, end: int) -> int:
    return len(_WORD.findall(text, start, end))


def _cut_long(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    words = list(_WORD.finditer(text, start, end))
    if len(words) <= MAX_WORDS:
        yield start, end
        return
    for i in range(0, len(words), MAX_WORDS):
        chunk = words[i : i + MAX_WORDS]
        yield chunk[0].start(), chunk[-1].end()


def split_units(text: str) -> list[Unit]:
    """The opinion units of one review, in order (empty for blank text)."""
    if not isinstance(text, str) or not text.strip():
        return []
    pieces: list[tuple[int, int]] = []
    for s_start, s_end in _spans(text, _SENTENCE_END, 0, len(text)):
        if _words(text, s_start, s_end) > CLAUSE_SPLIT_WORDS:
            pieces.extend(_spans(text, _CLAUSE_BREAK, s_start, s_end))
        else:
            pieces.append((s_start, s_end))
    merged: list[list[int]] = []
    for start, end in pieces:
        if merged and _words(text, start, end) < MIN_WORDS:
            merged[-1][1] = end  # a short fragment joins the unit before it
        elif merged and _words(text, *merged[-1]) < MIN_WORDS:
            merged[-1][1] = end  # ... and a short first fragment joins the one after it
        else:
            merged.append([start, end])
    out: list[Unit] = []
    for start, end in merged:
        for a, b in _cut_long(text, start, end):
            out.append(Unit(len(out), a, b, text[a:b]))
    return out


def units_frame(review_ids: Iterable[str], texts: Iterable[str]) -> dict[str, list]:
    """Units of many reviews as columns: position (row of the review), unit_no, start, end, text."""
    cols: dict[str, list] = {"row": [], "unit_no": [], "start": [], "end": [], "text": []}
    for row, (_, text) in enumerate(zip(review_ids, texts, strict=True)):
        for unit in split_units(text):
            cols["row"].append(row)
            cols["unit_no"].append(unit.unit_no)
            cols["start"].append(unit.start)
            cols["end"].append(unit.end)
            cols["text"].append(unit.text)
    return cols


def excerpt(text: str, start: int, end: int, width: int = 320) -> tuple[str, str, str]:
    """``text`` cut to about ``width`` characters around the unit at ``start:end``: returns
    (before, unit, after), with "…" where words were left out, cut at word boundaries. A text
    within ``width`` comes back whole; the unit itself is never cut."""
    if len(text) <= width:
        return text[:start], text[start:end], text[end:]
    room = max(width - (end - start), 0)
    left_room = min(start, room // 2)
    right_room = room - left_room
    a = max(0, start - left_room)
    b = min(len(text), end + right_room)
    if b - end < right_room:  # the unit ends the text: give the rest to the left
        a = max(0, start - (room - (b - end)))
    if a > 0:
        space = text.find(" ", a, start)
        a = space + 1 if space != -1 else start
    if b < len(text):
        space = text.rfind(" ", end, b)
        b = space if space != -1 else end
    before = ("… " if a > 0 else "") + text[a:start]
    after = text[end:b] + (" …" if b < len(text) else "")
    return before, text[start:end], after
