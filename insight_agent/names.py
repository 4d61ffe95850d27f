"""How a value people say ("dresses", "a dress", "intimate") is matched to a value in the data
("Dresses", "Intimates"): one home for category, product and column-value matching.

Words are compared by a plural-insensitive key (:func:`word_key`), so singular and plural
forms match either way, in any case; a one-word value of three letters or fewer must be said
as the data spells it ("top 10" does not name Tops). A hyphenated word is one word: "tops" is
not said in "tank-tops", nor "married" in "re-married". Segments have their own matcher
(:func:`insight_agent.analytics.queries.resolve_segment`: ids, names and parts of names).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["match_value", "mentioned", "mentions", "value_key", "word_key"]

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
# Words whose final "s" is not a plural ("dress", "status", "analysis", "gas").
_NOT_PLURAL = ("ss", "us", "is", "as")
_ES_PLURAL = ("sses", "xes", "zes", "ches", "shes")


# British spellings people type for values the data may spell the American way (or back),
# and regional names of one thing: both sides of a comparison go through word_key, so
# either matches either.
_SPELLING = {"fibre": "fiber", "colour": "color", "colours": "colors", "centre": "center",
             "centres": "centers", "grey": "gray", "jewellery": "jewelry",
             "aluminium": "aluminum", "favourite": "favorite", "favourites": "favorites",
             "cheque": "check", "cheques": "checks", "catalogue": "catalog",
             # one thing under regional names: gas (US) is petrol (UK) is fuel
             "gas": "fuel", "gasoline": "fuel", "petrol": "fuel"}  # fmt: skip


def word_key(word: str) -> str:
    """``word`` lower case without a plural ending: dresses → dress, tops → top, accessories
    → accessory, boxes → box, shoes → shoe; dress, status and jeans' singular stay put;
    British spellings as American ones (fibre → fiber, colours → color)."""
    w = _SPELLING.get(word.lower(), word.lower())
    if len(w) <= 3 or not w.endswith("s") or w.endswith(_NOT_PLURAL):
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(_ES_PLURAL):
        return w[:-2]
    return w[:-1]


def value_key(text: str) -> str:
    """``text``'s words by :func:`word_key`, space-joined: one key for "Dresses" and "dress"."""
    return " ".join(word_key(w) for w in _WORD.findall(text.lower()))


def _words(text: str) -> list[tuple[str, str, tuple[int, int]]]:
    return [(word_key(m.group()), m.group(), m.span()) for m in _WORD.finditer(text.lower())]


def _same(
    said: tuple[str, str, tuple[int, int]], data: tuple[str, str, tuple[int, int]], alone: bool
) -> bool:
    return said[0] == data[0] and (not alone or len(data[0]) > 3 or said[1] == data[1])


def mentions(text: str, name: str) -> list[tuple[int, int]]:
    """Character spans of ``text`` where ``name`` is said as whole words, in any case and
    number ("a dress" and "DRESSES" for Dresses; "blue-collar workers" for blue-collar). A
    name of alternatives ("BEERS/ALES", "Tops/Blouses") is said by any of them of four
    letters or more ("beer sales")."""
    if "/" in name and not re.search(r"\d/\d", name):
        parts = [p for p in name.split("/") if len(p.strip()) >= 4]
        if len(parts) >= 2:
            return sorted({span for part in parts for span in mentions(text, part)})
    want = _words(name)
    if not want:
        return []
    have = _words(text)
    n = len(want)
    return [
        (have[i][2][0], have[i + n - 1][2][1])
        for i in range(len(have) - n + 1)
        if all(_same(have[i + j], want[j], n == 1) for j in range(n))
    ]


def mentioned(text: str, names: Iterable[str]) -> list[str]:
    """The ``names`` that ``text`` says (see :func:`mentions`), in their given order."""
    return [name for name in names if mentions(text, name)]


def match_value(value: str, known: Iterable[str]) -> str | None:
    """The ``known`` value that ``value`` names: the same text in any case, else the same
    words in any number ("dress" for Dresses); None when there is none or several."""
    wanted = str(value).strip().lower()
    values = [str(v) for v in known]
    for v in values:
        if v.strip().lower() == wanted:
            return v
    if not _WORD.search(wanted):
        return None
    same = [v for v in values if mentions(v.strip(), wanted) == [(0, len(v.strip()))]]
    return same[0] if len(same) == 1 else None
