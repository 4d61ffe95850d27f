"""Search and count over opinion units, aware of wording, negation and polarity.

Dense similarity alone confuses opposites that share a context: "runs small" sits closest to
"runs a little big", and "itchy" close to "not itchy at all". A unit's **match score** for a
query is its cosine similarity adjusted by what the words say:

* ``+LEXICAL_BONUS`` × the share of the query's content words (light stemming: "itch" finds
  "itchy", "itching") that the unit contains outside a negation;
* ``-NEGATED_PENALTY`` when a query word appears only negated ("not itchy", "doesn't itch",
  "without being itchy": a negator up to three words before it); a query that itself negates
  a word ("not itchy") wants the negated use and is penalised by the plain one;
* ``-ANTONYM_PENALTY`` when the unit has an opposite of a query word ("large" for "small") and
  not the word itself.

**Counting** (``count_matches``): a review says the query when at least one of its units
scores at or above the workspace's threshold (:mod:`insight_agent.vectorstore.unitstore`). Only
units whose cosine is within ``LEXICAL_BONUS`` of the threshold can reach it, so the word
checks run on those candidates only; the count is exact (a brute-force scan over every unit
with the same rule gives the same number).

**Search** (``search_units``): the best unit of each review ranks the review. A complaint-shaped
query (the sentiment model, or the lexicon, scores it negative) also ranks negative units first:
``+POLARITY_WEIGHT × (0.5 - P(positive of the unit))``. An explicit sentiment filter still wins,
and leans the same way: with reviews filtered to negative ones, their negative units rank first
(the quote is the complaint), with positive ones their positive units.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ANTONYMS",
    "LEXICAL_BONUS",
    "MatchRule",
    "count_matches",
    "match_scores",
    "search_units",
    "stem",
    "tally",
    "tone_mask",
]

LEXICAL_BONUS = 0.15
NEGATED_PENALTY = 0.3
ANTONYM_PENALTY = 0.35
POLARITY_WEIGHT = 0.2
#: Words that reverse the next few words.
NEGATORS = frozenset(
    [
        "not",
        "no",
        "never",
        "without",
        "nothing",
        "none",
        "nor",
        "hardly",
        "barely",
        "isn't",
        "wasn't",
        "aren't",
        "weren't",
        "doesn't",
        "don't",
        "didn't",
        "won't",
        "wouldn't",
        "can't",
        "cannot",
        "couldn't",
        "shouldn't",
        "isnt",
        "wasnt",
        "doesnt",
        "dont",
        "didnt",
        "cant",
        "wont",
        "zero",
    ]
)
NEGATION_WINDOW = 3
#: Opposites that share a context (size, fit, weight...), both directions.
ANTONYMS: dict[str, tuple[str, ...]] = {}
for _a, _b in (
    ("small", "large"),
    ("small", "big"),
    ("tight", "loose"),
    ("short", "long"),
    ("thin", "thick"),
    ("light", "heavy"),
    ("narrow", "wide"),
    ("cheap", "expensive"),
    ("soft", "rough"),
    ("early", "late"),
    ("fast", "slow"),
):
    ANTONYMS[_a] = (*ANTONYMS.get(_a, ()), _b)
    ANTONYMS[_b] = (*ANTONYMS.get(_b, ()), _a)

_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "they",
        "them",
        "their",
        "he",
        "she",
        "his",
        "her",
        "do",
        "does",
        "did",
        "so",
        "very",
        "too",
        "really",
        "just",
        "about",
        "how",
        "many",
        "much",
        "what",
        "which",
        "who",
        "why",
        "when",
        "where",
        "reviews",
        "review",
        "say",
        "says",
        "said",
        "people",
        "customers",
        "customer",
        "mention",
        "mentions",
        "complain",
        "complaint",
        "complaints",
        "there",
        "any",
        "some",
        "all",
    ]
)
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SUFFIXES = ("ingly", "ings", "ing", "edly", "ed", "ies", "es", "s", "y", "ly")


def stem(word: str) -> str:
    """A light stem: common suffixes off while at least three letters remain."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class MatchRule:
    """The query's content stems and their antonyms' stems."""

    stems: tuple[str, ...]
    antonyms: tuple[tuple[str, tuple[str, ...]], ...]  # (query stem, its opposites' stems)
    flipped: frozenset[str] = frozenset()  # stems the query itself negates ("not itchy")

    @classmethod
    def for_query(cls, query: str) -> MatchRule:
        """The rule for one query (no content words: no lexical adjustment)."""
        tokens = _tokens(query)
        words = [w for w in tokens if w not in _STOP and w not in NEGATORS]
        stems = tuple(dict.fromkeys(stem(w) for w in words))
        pairs = tuple(
            (stem(w), tuple(stem(a) for a in ANTONYMS[w])) for w in words if w in ANTONYMS
        )
        flipped = frozenset(
            stem(w)
            for i, w in enumerate(tokens)
            if w not in NEGATORS
            and any(t in NEGATORS for t in tokens[max(0, i - NEGATION_WINDOW) : i])
        )
        return cls(stems, pairs, flipped)

    def adjust(self, text: str) -> float:
        """The score adjustment for one unit's text (see the module docstring)."""
        if not self.stems:
            return 0.0
        tokens = _tokens(text)
        stems = [stem(t) for t in tokens]
        plain: set[str] = set()
        negated: set[str] = set()
        for i, s in enumerate(stems):
            if s in self.stems or any(s.startswith(q) for q in self.stems if len(q) >= 4):
                key = next(q for q in self.stems if s == q or s.startswith(q))
                window = tokens[max(0, i - NEGATION_WINDOW) : i]
                is_negated = any(w in NEGATORS for w in window)
                if key in self.flipped:  # the query says "not X": a negated X is the match
                    is_negated = not is_negated
                (negated if is_negated else plain).add(key)
        adjustment = LEXICAL_BONUS * len(plain) / len(self.stems)
        if negated and not plain:
            adjustment -= NEGATED_PENALTY
        present = set(stems)
        for word, opposites in self.antonyms:  # "big" but no "small" for "runs small"
            if word not in plain and present.intersection(opposites):
                adjustment -= ANTONYM_PENALTY
                break
        return adjustment

    def adjust_many(self, texts: Any) -> np.ndarray:
        """:meth:`adjust` for many texts. A text holding none of the query's stems or their
        opposites' stems (as substrings, any case) gets 0 without being tokenized: a stem the
        rule can match is a prefix of one of the text's words, so the result is the same, and
        most candidates of a search or count are skipped."""
        items = [str(t) for t in texts]
        out = np.zeros(len(items), dtype=np.float64)
        if not self.stems or not items:
            return out
        needles = {*self.stems, *(a for _, opposites in self.antonyms for a in opposites)}
        pattern = re.compile("|".join(re.escape(n) for n in sorted(needles)))
        for i, text in enumerate(items):
            low = text.lower()
            if pattern.search(low):
                out[i] = self.adjust(text)
        return out


def match_scores(
    table: Any, query_vector: np.ndarray, query: str, unit_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Units that could reach the table's threshold and their match scores.

    Returns ``(rows, scores)``: row numbers into ``table.units`` (within ``unit_mask``) whose
    cosine is at least threshold - LEXICAL_BONUS, and their adjusted scores.
    """
    cosine = table.similarities(query_vector)
    floor = table.threshold - LEXICAL_BONUS
    candidate = cosine >= floor
    if unit_mask is not None:
        candidate &= unit_mask
    rows = np.flatnonzero(candidate)
    rule = MatchRule.for_query(query)
    texts = table.column("text")
    scores = cosine[rows].astype(np.float64)
    scores += rule.adjust_many(texts[rows])
    return rows, scores


BY_CHOICES = ("category", "product", "segment", "rating", "month", "sentiment")


def _group_values(table: Any, by: str) -> np.ndarray:
    """Per review document, its value of ``by`` as text."""
    import pandas as pd

    reviews = table.reviews
    if by in reviews.codes:
        values = np.asarray(reviews.values[by], dtype=object)
        return values[reviews.codes[by]]
    if by == "rating":
        r = pd.Series(np.asarray(reviews.rating, dtype=float))
        return np.where(r.to_numpy() < 0, "", r.map("{:g}".format).to_numpy(dtype=object))
    if by == "month":
        d = pd.Series(np.asarray(reviews.date, dtype=np.int64))
        month = (d // 10000).map("{:04d}".format) + "-" + (d // 100 % 100).map("{:02d}".format)
        return np.where(d.to_numpy() > 0, month.to_numpy(dtype=object), "")
    raise ValueError(f"cannot group by {by!r}; use one of {', '.join(BY_CHOICES)}")


def count_matches(
    table: Any,
    query_vector: np.ndarray,
    query: str,
    *,
    filters: Any = None,
    by: str | None = None,
    threshold: float | None = None,
    tone: str | None = None,
) -> dict[str, Any]:
    """How many reviews (passing ``filters``) say ``query``: total, share and, with ``by``,
    per group (sorted by matching reviews, then share). ``tone`` counts only sentences leaning
    that way: "negative" (complaints) keeps every sentence the model does not call positive
    ("runs small" is neutral to it, yet a complaint), "positive" every sentence it does not
    call negative, "neutral" only neutral ones. Also returns the
    matching reviews (``matches``: doc, best unit row, score), for export."""
    if threshold is not None:
        table = _with_threshold(table, threshold)
    scope_mask = table.unit_mask(filters)
    rows, scores = match_scores(table, query_vector, query, scope_mask & tone_mask(table, tone))
    hit = scores >= table.threshold
    out: dict[str, Any] = {"query": query, "threshold": round(float(table.threshold), 3)}
    return tally(table, filters, scope_mask, rows[hit], scores[hit], by=by, tone=tone, head=out)


def tone_mask(table: Any, tone: str | None) -> np.ndarray:
    """Units that count for ``tone`` (see :func:`count_matches`); all units for None."""
    said = np.asarray(table.column("sentiment"), dtype=object)
    if not tone:
        return np.ones(len(said), dtype=bool)
    opposite = {"negative": "positive", "positive": "negative"}.get(tone)
    return (said != opposite) if opposite else (said == tone)


def tally(
    table: Any,
    filters: Any,
    scope_mask: np.ndarray,
    rows: np.ndarray,
    scores: np.ndarray,
    *,
    by: str | None,
    tone: str | None,
    head: dict[str, Any],
) -> dict[str, Any]:
    """Reviews in scope (``filters``; ``scope_mask`` over units), matching reviews (those with
    a unit among ``rows``), the share and, with ``by``, per group; ``matches`` keeps each
    matching review's best unit (by ``scores``). ``head`` opens the result."""
    import pandas as pd

    in_scope = np.zeros(table.n_reviews, dtype=bool)
    in_scope[table.column("doc")[scope_mask]] = True
    if filters is not None:  # reviews without units (empty text) still count in the base
        in_scope |= table.reviews.mask(filters) & _no_units(table)
    else:
        in_scope[:] = True
    docs_of = table.column("doc")[rows]
    best = pd.DataFrame({"doc": docs_of, "unit": rows, "score": scores})
    best = best.sort_values(["doc", "score"], ascending=[True, False]).drop_duplicates("doc")
    matching = np.zeros(table.n_reviews, dtype=bool)
    matching[best["doc"].to_numpy()] = True
    total = int(in_scope.sum())
    n = int(matching.sum())
    out: dict[str, Any] = {
        **head,
        "tone": tone,
        "reviews_in_scope": total,
        "matching_reviews": n,
        "share": round(n / total, 4) if total else 0.0,
        "matches": best.sort_values("score", ascending=False).reset_index(drop=True),
    }
    if by:
        values = _group_values(table, by)
        frame = pd.DataFrame({"group": values[in_scope], "match": matching[in_scope]})
        frame["group"] = frame["group"].replace("", "(missing)")
        grouped = frame.groupby("group", sort=False)["match"].agg(["size", "sum"])
        grouped = grouped.rename(columns={"size": "reviews", "sum": "matching"})
        grouped["share"] = (grouped["matching"] / grouped["reviews"]).round(4)
        grouped = grouped.sort_values(["matching", "share"], ascending=False)
        out["by"] = by
        out["groups"] = [
            {
                by: str(g),
                "reviews": int(r.reviews),
                "matching": int(r.matching),
                "share": float(r.share),
            }
            for g, r in grouped.iterrows()
        ]
    return out


def _no_units(table: Any) -> np.ndarray:
    has = np.zeros(table.n_reviews, dtype=bool)
    has[table.column("doc")] = True
    return ~has


def _with_threshold(table: Any, threshold: float) -> Any:
    from dataclasses import replace

    return replace(table, threshold=float(threshold))


def search_units(
    table: Any,
    query_vector: np.ndarray,
    query: str,
    *,
    k: int = 5,
    filters: Any = None,
    query_positive: float | None = None,
    candidates: int = 2_000,
) -> list[dict[str, Any]]:
    """The ``k`` reviews whose best unit matches ``query`` best (see the module docstring).

    Each hit: doc (row in the table's review arrays), review_id, the unit (text, span,
    sentiment, P(positive)), cosine similarity and match score. ``query_positive`` is the
    query's own P(positive); below 0.35 the query is a complaint and negative units rank first.
    """
    mask = table.unit_mask(filters)
    cosine = table.similarities(query_vector)
    cosine = np.where(mask, cosine, -np.inf)
    n = min(candidates, int(mask.sum()))
    if n == 0:
        return []
    top = np.argpartition(-cosine, n - 1)[:n]
    rule = MatchRule.for_query(query)
    texts = table.column("text")
    p = table.column("p_positive")
    score = cosine[top] + rule.adjust_many(texts[top])
    # Toward negative units: a complaint-shaped query, or reviews filtered to negative ones
    # (a 1-star review's quote should be its complaint, not its "love the colour"); toward
    # positive units for positive reviews.
    wanted = getattr(filters, "sentiment", None)
    complaint = wanted == "negative" or (
        wanted is None and query_positive is not None and query_positive < 0.35
    )
    lean = 1.0 if complaint else -1.0 if wanted == "positive" else 0.0
    rank = score + lean * POLARITY_WEIGHT * (0.5 - p[top])
    order = np.argsort(-rank, kind="stable")
    docs = table.column("doc")
    starts, ends = table.column("start"), table.column("end")
    sentiments = table.column("sentiment")
    seen: set[int] = set()
    hits = []
    for i in order:
        row = int(top[i])
        doc = int(docs[row])
        if doc in seen:
            continue
        seen.add(doc)
        hits.append(
            {
                "doc": doc,
                "review_id": str(table.review_ids[doc]),
                "unit": str(texts[row]),
                "span": [int(starts[row]), int(ends[row])],
                "unit_sentiment": str(sentiments[row]),
                "unit_p_positive": round(float(p[row]), 3),
                "similarity": round(float(cosine[row]), 3),
                "match": round(float(score[i]), 3),
            }
        )
        if len(hits) >= k:
            break
    return hits


def brute_force_count(
    table: Any, query_vector: np.ndarray, query: str, docs_in_scope: Sequence[int] | None = None
) -> int:
    """Reviews with any unit scoring at or above the threshold, checking every unit one by one
    (the reference :func:`count_matches` must equal; slow, for tests and audits)."""
    rule = MatchRule.for_query(query)
    q = np.asarray(query_vector, dtype=np.float32)
    scope = None if docs_in_scope is None else set(int(d) for d in docs_in_scope)
    found: set[int] = set()
    for row in range(len(table.units)):
        doc = int(table.units["doc"].iat[row])
        if scope is not None and doc not in scope:
            continue
        cosine = float(np.asarray(table.vectors[row], dtype=np.float32) @ q)
        if cosine + rule.adjust(str(table.units["text"].iat[row])) >= table.threshold:
            found.add(doc)
    return len(found)
