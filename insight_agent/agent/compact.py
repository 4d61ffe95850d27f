"""Tool facts as compact text for a small model.

The embedded 1.5B model reads prompt tokens at ~50/s on a 2-core machine, so the size of a
tool result is most of a question's latency. JSON repeats every key on every row; here a list
of records becomes a table whose header names the columns once, scalars become ``key: value``
lines and nested records become dotted keys. The same facts take about a third fewer tokens,
and names are never cut (``cap_json`` shortens every long string; a cut segment name is one
the model can no longer pass back to a tool). Table cells are joined by a bare ``|``: Qwen's
tokenizer reads " 1096" as a space token and four digits, so ``a | b`` padding cost a token
per number (4% of a view).

What must be dropped to fit a budget is chosen against the question: keys and columns whose
names share a word with it (``share_revenue`` for "...the most revenue?") stay with the
tool's own ``brief`` ones.

Numbers are written exactly as the tool rounded them, so grounding can check an answer against
this text. Review texts (``text`` fields) are always JSON-quoted: they stay delimited as data
and a ``|`` or a line break in them cannot break the table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from insight_agent.agent.budget import count_tokens

# Bumped when the rendering changes what the model reads (a report's cached answers were
# given on the old view and are asked again): 2 = cells joined by a bare "|"; 3 = a squeezed
# table keeps its first row.
VIEW_FORMAT = 3
_LONG_TEXT = 60  # strings longer than this (inside lists and records) may be shortened
# Review texts are cut far later: shown a cut quote, a small model "finishes" it from
# imagination (and the grounding check then flags it); fewer whole quotes serve better.
_LONG_QUOTE = 300
_QUOTED_KEYS = frozenset({"text", "quote", "review"})
_SKIP_KEYS = frozenset({"_truncated"})


@dataclass(frozen=True)
class _Limits:
    rows: int | None = None  # rows kept per top-level table
    nested: int | None = None  # records kept per list inside a table row
    text: int | None = None  # characters kept of free text inside lists and records


_FULL = _Limits()


def _empty(value: Any) -> bool:
    # by type, not ``value == []``: a numpy scalar (np.float64 is a float) compared with a
    # list broadcasts to an empty array, whose truth value raises
    return value is None or (isinstance(value, list | tuple | dict | str) and not value)


def _scalar(value: Any, text: int | None = None, quoted: bool = False) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, int | float):
        return str(value)
    out = " ".join(str(value).split())  # one line: tables and key lines stay parseable
    if text is not None:
        limit = max(text, _LONG_QUOTE if quoted else _LONG_TEXT)
        if len(out) > limit:
            out = out[: limit - 1].rstrip() + "…"
    if quoted or "|" in out:
        return json.dumps(out, ensure_ascii=False)
    return out


def _inline(value: Any, limits: _Limits, key: str = "") -> str:
    """A value on one line: lists joined by '; ', records as k=v pairs."""
    if isinstance(value, dict):
        return ", ".join(
            f"{k}={_inline(v, limits, k)}"
            for k, v in value.items()
            if not _empty(v) and k not in _SKIP_KEYS
        )
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, list | tuple) for v in value):  # [["Footwear", 0.18]]
            return "; ".join(" ".join(_scalar(x, limits.text) for x in v) for v in value)
        return "; ".join(_inline(v, limits, key) for v in value)
    return _scalar(value, limits.text, quoted=key in _QUOTED_KEYS)


def is_table(value: Any) -> bool:
    """A non-empty list of records (rendered as a table; printed under an answer)."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _count(shown: int, total: int) -> str:
    hidden = total - shown
    return f"{total} rows" + (f", {hidden} more not shown" if hidden else "")


def _table(name: str, records: list[dict[str, Any]], limits: _Limits, indent: str) -> list[str]:
    """A header of column names, then one ``a|b|c`` line per record. Lists of records
    inside a row (a theme's quotes) follow that row as indented lines."""
    shown = records if limits.rows is None else records[: limits.rows]
    columns: list[str] = []
    nested: list[str] = []
    for record in shown:
        for key, value in record.items():
            if key in _SKIP_KEYS or key in columns or key in nested:
                continue
            (nested if is_table(value) else columns).append(key)
    out = [f"{indent}{name} ({_count(len(shown), len(records))}):"]
    if not shown:
        return out
    out.append(indent + "|".join(columns))
    for record in shown:
        cells = [
            "" if _empty(record.get(c)) else _inline(record.get(c), limits, c) for c in columns
        ]
        out.append(indent + "|".join(cells))
        for key in nested:
            inner = record.get(key) or []
            kept = inner if limits.nested is None else inner[: limits.nested]
            if kept:
                out.append(f"{indent}  {key} ({_count(len(kept), len(inner))}):")
                out.extend(f"{indent}  - {_inline(item, limits)}" for item in kept)
    return out


def _lines(obj: dict[str, Any], prefix: str, limits: _Limits, top: bool) -> list[str]:
    out: list[str] = []
    for key, value in obj.items():
        if _empty(value) or key in _SKIP_KEYS:
            continue
        name = f"{prefix}{key}"
        if is_table(value):
            out.extend(_table(name, value, limits, ""))
        elif isinstance(value, dict) and any(
            isinstance(v, dict) or is_table(v) for v in value.values()
        ):
            out.extend(_lines(value, f"{name}.", limits, top=False))
        elif top and not isinstance(value, dict | list):
            # Top-level facts (the headline first of all) are never shortened.
            out.append(f"{name}: {_scalar(value, None, quoted=key in _QUOTED_KEYS)}")
        else:
            out.append(f"{name}: {_inline(value, limits, key)}")
    return out


def render_facts(facts: Any, limits: _Limits = _FULL) -> str:
    """``facts`` as compact text: the headline sentence on the first line (no label: a small
    model quotes a label along with it), then ``key: value`` lines and one table per list of
    records."""
    if isinstance(facts, dict):
        rest = {k: v for k, v in facts.items() if k != "headline"}
        lines = _lines(rest, "", limits, top=True)
        if not _empty(facts.get("headline")):
            lines.insert(0, _scalar(facts["headline"]))
        return "\n".join(lines)
    if is_table(facts):
        return "\n".join(_table("rows", facts, limits, ""))
    return _inline(facts, limits)


def _longest_table(obj: Any) -> int:
    if isinstance(obj, dict):
        return max((_longest_table(v) for v in obj.values()), default=0)
    if is_table(obj):
        return len(obj)
    return 0


def _digits_aware_tokens(text: str, encoding: str = "cl100k_base") -> int:
    """Tokens as a model whose tokenizer splits numbers into single digits (Qwen, Llama 3
    groups of <= 3 count alike or fewer) would see ``text``: tiktoken for the words, one token
    per digit. cl100k alone undercounts number-heavy facts by ~15% for Qwen2.5."""
    digits = sum(ch.isdigit() for ch in text)
    return count_tokens(_DIGITS.sub("", text), encoding) + digits


_DIGITS = re.compile(r"\d")


def _without(facts: Any, drop_keys: set[str], drop_columns: set[str]) -> Any:
    """``facts`` without some keys (``a`` or a dotted ``a.b`` inside a record) and some
    table columns (``table.column``)."""
    if not isinstance(facts, dict):
        return facts
    out: dict[str, Any] = {}
    for key, value in facts.items():
        if key in drop_keys:
            continue
        if is_table(value) and drop_columns:
            value = [
                {k: v for k, v in row.items() if f"{key}.{k}" not in drop_columns} for row in value
            ]
        elif isinstance(value, dict):
            value = {k: v for k, v in value.items() if f"{key}.{k}" not in drop_keys}
        out[key] = value
    return out


def _droppable(facts: Any, keep: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Keys and table columns ``keep`` does not name, in the order they may be dropped
    (from the end of the result backwards).

    Keys of a record inside the result are named ``record.key``: keeping ``who`` keeps all
    of it, keeping ``who.median_age`` keeps that key and lets the others go. Likewise a
    table named in ``keep`` keeps all its columns (they may not be known in advance, e.g.
    one per compared segment), one with some of its columns named (``segments.name``) loses
    the others, one with neither may go as a whole. The first column names the row and
    review texts are quoted as evidence: while their table is shown, both stay.
    """
    if not keep or not isinstance(facts, dict):
        return [], []
    keys: list[str] = []
    columns: list[str] = []
    for key, value in facts.items():
        if key == "headline" or key in keep:
            continue
        if is_table(value):
            names = list(dict.fromkeys(k for row in value for k in row))
            if any(f"{key}.{n}" in keep for n in names):
                columns.extend(
                    f"{key}.{c}"
                    for c in names[1:]
                    if f"{key}.{c}" not in keep and c not in _QUOTED_KEYS
                )
            else:
                keys.append(key)
        elif isinstance(value, dict) and any(f"{key}.{k}" in keep for k in value):
            keys.extend(f"{key}.{k}" for k in value if f"{key}.{k}" not in keep)
        else:
            keys.append(key)
    return keys, columns


def compact_facts(
    facts: Any,
    max_tokens: int,
    *,
    keep: tuple[str, ...] = (),
    question: str = "",
    digits_split: bool = True,
    encoding: str = "cl100k_base",
) -> str:
    """``facts`` as compact text of at most ``max_tokens`` tokens when it can be done.

    Shrinks step by step until the text fits: lists inside table rows keep 2, then 1 record;
    free text is cut to 160, then 80 characters; top-level facts that ``keep`` does not name
    are dropped (last first), then table columns it does not name (right first); last, table
    rows from the end (tools sort them, most important first), down to one row, which may
    leave the text over budget. A table that lost rows says how many are not shown. The
    headline is always kept whole. Keys and columns named like a word of ``question``
    (:func:`asked_for`) are kept as if ``keep`` named them, so the figure a question asks
    about survives a small budget. ``digits_split`` counts one token per digit, as Qwen's
    tokenizer does.
    """

    def size(text: str) -> int:
        return _digits_aware_tokens(text, encoding) if digits_split else count_tokens(text)

    text = render_facts(facts)
    if size(text) <= max_tokens:
        return text
    short = _Limits(nested=1, text=80)
    for step in (_Limits(nested=2), _Limits(nested=1), _Limits(nested=1, text=160), short):
        text = render_facts(facts, step)
        if size(text) <= max_tokens:
            return text
    keys, columns = _droppable(facts, keep + asked_for(facts, question, keep))
    dropped: set[str] = set()
    for key in reversed(keys):
        dropped.add(key)
        text = render_facts(_without(facts, dropped, set()), short)
        if size(text) <= max_tokens:
            return text
    cut: set[str] = set()
    for column in reversed(columns):
        cut.add(column)
        text = render_facts(_without(facts, dropped, cut), short)
        if size(text) <= max_tokens:
            return text
    smallest = _without(facts, dropped, cut)
    # Down to one row, not none: a compared pair's metrics shown as "9 rows, 9 more not
    # shown" gave the model the keys around the table and nothing of the table itself.
    for rows in range(_longest_table(smallest) - 1, 0, -1):
        text = render_facts(smallest, _Limits(rows=rows, nested=1, text=80))
        if size(text) <= max_tokens:
            return text
    return text


# Question words that name no particular fact: most questions say them, and most results have
# a "customers" or "segment" column, which would then never be dropped.
# fmt: off
_GENERIC_WORDS = frozenset({
    "about", "all", "and", "any", "are", "best", "can", "customer", "customers", "did", "does",
    "each", "for", "from", "get", "give", "have", "how", "into", "its", "list", "many", "more",
    "most", "much", "next", "our", "per", "segment", "segments", "should", "show", "tell", "than",
    "that", "the", "their", "them", "these", "they", "this", "those", "top", "versus", "what",
    "when", "where", "which", "who", "whom", "why", "will", "with", "would",
})
# fmt: on
_WORD = re.compile(r"[a-z][a-z0-9]+")


def _stems(text: str) -> set[str]:
    """Crude stems of the distinctive words in ``text`` ("drives" and "drivers": "drive")."""
    words = _WORD.findall(text.lower().replace("_", " "))
    return {w[:5] for w in words if len(w) >= 3 and w not in _GENERIC_WORDS}


def asked_for(facts: Any, question: str, keep: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Keys (``key``, ``record.key``) and table columns (``table.column``) of ``facts`` whose
    names share a distinctive word with ``question``, named as :func:`_droppable` names them,
    that ``keep`` does not already cover. "...the most revenue?" asks for
    ``segments.share_revenue``; "what drives churn?" for ``top_drivers``.

    A word naming more than two facts is the result's topic, not a pick ("churn" in a churn
    result): keeping all of those would leave no room for table rows.
    """
    wanted = _stems(question)
    if not wanted or not isinstance(facts, dict):
        return ()
    names: list[str] = []
    for key, value in facts.items():
        if key == "headline":
            continue
        if is_table(value):
            columns = list(dict.fromkeys(k for row in value for k in row))
            names.extend(f"{key}.{c}" for c in columns[1:])
        elif isinstance(value, dict):
            names.extend(f"{key}.{k}" for k in value)
            names.append(key)
        else:
            names.append(key)
    hits = {name: _stems(name.rsplit(".", 1)[-1]) & wanted for name in names}
    per_word = {w: sum(w in found for found in hits.values()) for w in wanted}
    picked = [
        name
        for name, found in hits.items()
        if any(per_word[w] <= 2 for w in found)
        and name not in keep
        and name.split(".", 1)[0] not in keep
    ]
    return tuple(picked)


def quotes_for_summary(
    facts: dict[str, Any], shown: int, words: int = 15, *, search: bool = True
) -> dict[str, Any]:
    """A result with review quotes as the model should read it when the user sees the quotes
    anyway.

    The session prints the first ``shown`` quotes verbatim under the answer, so the model
    only has to say what they have in common: it gets those quotes (no more: a table with
    "3 more not shown" invited the 1.5B model to write the missing ones itself), each cut to
    its first ``words`` words. For a review ``search`` the headline says so (query, count and
    filters are in it); any other tool (a persona, a count) keeps its own headline: replaced,
    a persona's size and share went missing from the view, and from the answers.
    """
    quotes = list(facts.get("quotes") or [])[:shown]
    if not quotes:
        return facts
    out = dict(facts)
    if search:
        # the headline says what the query, count and filters lines would repeat
        out = {k: v for k, v in facts.items() if k not in ("query", "quotes_found", "filters")}
        out["headline"] = (
            f"{facts.get('quotes_found', len(quotes))} matching reviews for "
            f"'{facts.get('query', '')}'; the user sees the first {len(quotes)} in full under "
            "your answer."
        )
    out["quotes"] = [
        {**{k: v for k, v in q.items() if k != "sentiment"}, "text": _first_words(q, words)}
        for q in quotes
    ]
    return out


def _first_words(quote: dict[str, Any], words: int) -> str:
    text = str(quote.get("text", ""))
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words]) + " …"
