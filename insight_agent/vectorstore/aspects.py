"""Aspect themes: what reviews talk about (sizing, fabric, price...), over opinion units.

Clustering whole reviews groups them by product type ("mostly dresses"), because what a review
is about shows in every sentence. Here the unit of analysis is the opinion unit (a sentence or
clause, :mod:`insight_agent.vectorstore.units`), so one review can speak to sizing and to fabric,
and a theme is an **aspect** a marketer can act on:

1. **Seed words.** Each aspect (``DEFAULT_ASPECTS``, extended or replaced per name in
   insight.toml ``[reviews.aspects]``) has seed words; a unit containing them (light stemming,
   phrases matched as phrases) belongs to the aspect with the most hits (ties: list order).
2. **Similar wording.** A unit with no seed word joins the aspect whose centroid (the mean vector
   of its seed-matched units) it is closest to, when that cosine is at least ``EXTEND_MIN`` and
   beats the runner-up by ``EXTEND_MARGIN`` ("scratchy" joins material without being a seed).
3. **Other themes.** Remaining units are clustered with k-means (k by silhouette, at most
   ``MAX_OTHER``); each cluster is labelled by its distinctive keywords (c-TF-IDF) with generic
   praise and filler words, and the data's own product-type words (its category, subcategory and
   product names), left out. A cluster below ``MIN_SHARE`` of units is folded into "other".

Per theme: reviews mentioning it (count and share of reviews in scope), units and their share,
the units' sentiment (share negative, mean P(positive)), the average rating of the reviews, the
categories where it is most over-represented, and three quotes (the unit, with its review id;
nearest the theme's centroid and unlike each other). :func:`theme_table` crosses themes with a
grouping (category, segment...) and tests each cell against the rest (two-proportion z-test,
Holm-adjusted). Everything is deterministic: same data, same themes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from insight_agent.errors import InsufficientData
from insight_agent.vectorstore.opinions import stem
from insight_agent.vectorstore.search import mmr

__all__ = [
    "DEFAULT_ASPECTS",
    "AspectThemes",
    "aspect_list",
    "assign_aspects",
    "count_aspect",
    "find_aspect_themes",
    "match_aspects",
    "query_aspect",
    "theme_table",
    "unit_stems",
]

#: Built-in aspects and seed words (retail reviews); insight.toml can add or replace any.
DEFAULT_ASPECTS: dict[str, tuple[str, ...]] = {
    "sizing/fit": (
        "size", "sizes", "sizing", "sized", "fit", "fits", "fitted", "fitting", "small",
        "large", "tight", "loose", "snug", "petite", "length", "tts", "true to size", "runs",
        "ran", "baggy", "boxy", "roomy", "size up", "size down", "xs", "xl", "waist", "inseam",
        "hips", "bust", "shoulders", "too big", "too long", "too short",
    ),
    "material/fabric": (
        "fabric", "material", "cotton", "wool", "linen", "silk", "polyester", "rayon",
        "cashmere", "soft", "softness", "thin", "thick", "itchy", "itch", "scratchy", "stretchy",
        "stretch", "sheer", "see-through", "see through", "lining", "lined", "texture", "knit",
        "breathable", "warm", "heavy", "lightweight", "flimsy", "wrinkle", "wrinkles",
    ),
    "colour": (
        "color", "colour", "colors", "colours", "shade", "hue", "bright", "vibrant", "faded",
        "pink", "blue", "red", "green", "white", "black", "navy", "grey", "gray", "yellow",
        "purple", "orange", "beige", "coral", "print", "pattern",
    ),
    "quality/durability": (
        "quality", "durable", "poorly made", "well made", "cheaply", "seam", "seams",
        "stitching", "hole", "holes", "ripped", "rip", "tore", "torn", "broke", "broken",
        "pilling", "pilled", "pill", "shrink", "shrank", "shrunk", "fell apart", "zipper",
        "button", "buttons", "unravel", "washed", "wash", "washing", "construction", "last",
    ),
    "price/value": (
        "price", "priced", "pricey", "expensive", "value", "worth", "money", "sale", "discount",
        "cost", "overpriced", "bargain", "paid", "full price", "afford", "affordable",
    ),
    "shipping/delivery": (
        "shipping", "shipped", "ship", "delivery", "delivered", "arrived", "arrive", "arrival",
        "package", "courier", "late", "tracking", "mail",
    ),
    "returns/refunds": (
        "return", "returned", "returning", "returns", "refund", "refunded", "exchange",
        "exchanged", "sent back", "send back", "sending back", "sent it back",
    ),
    "customer service": (
        "customer service", "customer support", "service", "staff", "associate",
        "sales associate", "representative", "rude", "manager", "call center",
    ),
    "packaging": ("packaging", "packaged", "packed", "box", "wrapped", "wrapping"),
    "style/look": (
        "style", "stylish", "look", "looks", "looked", "cute", "flattering", "unflattering",
        "design", "beautiful", "gorgeous", "pretty", "elegant", "silhouette", "cut", "chic",
        "classy", "frumpy", "figure",
    ),
}  # fmt: skip

#: Words that say nothing about what was liked or disliked (left out of theme labels).
FILLER = frozenset(
    [
        "love",
        "loved",
        "loves",
        "like",
        "liked",
        "great",
        "good",
        "nice",
        "really",
        "just",
        "wear",
        "wore",
        "wearing",
        "bought",
        "buy",
        "ordered",
        "order",
        "got",
        "get",
        "purchase",
        "purchased",
        "item",
        "piece",
        "one",
        "also",
        "would",
        "could",
        "will",
        "well",
        "much",
        "many",
        "way",
        "little",
        "bit",
        "lot",
        "very",
        "super",
        "so",
        "still",
        "even",
        "definitely",
        "absolutely",
        "totally",
        "perfect",
        "amazing",
        "awesome",
        "fine",
        "ok",
        "okay",
        "it's",
        "im",
        "i'm",
        "i've",
        "didn't",
        "don't",
        "doesn't",
        "can't",
        "retailer",
        "store",
        "online",
        "review",
        "reviews",
        "reviewer",
        "reviewers",
        "think",
        "thought",
        "want",
        "wanted",
        "make",
        "made",
        "made",
        "sure",
        "day",
        "today",
        "time",
        "first",
        "back",
        "going",
        "go",
        "usually",
        "normally",
        "actually",
        "though",
        "however",
        "although",
        "overall",
        "try",
        "tried",
        "trying",
        "recommend",
        "recommended",
        "highly",
        "happy",
        "glad",
        "excited",
        "disappointed",
        "unfortunately",
        "didn",
        "doesn",
        "don",
        "ve",
        "wasn",
        "isn",
        "couldn",
        "wouldn",
        "ll",
        "re",
        # verbs and words of telling, not of what was said ("hopes, say, 10", "big, did, …")
        "did",
        "does",
        "say",
        "says",
        "said",
        "saying",
        "went",
        "came",
        "come",
        "comes",
        "got",
        "getting",
        "thing",
        "things",
        "hope",
        "hopes",
        "hoped",
        "hoping",
        "feel",
        "felt",
        "know",
        "knew",
        "need",
        "needed",
        "probably",
        "maybe",
        "kept",
        "keep",
        "received",
        "arrived",
        "saw",
        "see",
    ]
)
#: Product-type nouns (what was bought, not what was said about it), left out of labels too,
#: with the data's own category and product names.
PRODUCT_TYPES = frozenset(
    [
        "dress",
        "dresses",
        "top",
        "tops",
        "shirt",
        "shirts",
        "blouse",
        "blouses",
        "sweater",
        "sweaters",
        "cardigan",
        "jeans",
        "pants",
        "trousers",
        "skirt",
        "skirts",
        "jacket",
        "jackets",
        "coat",
        "coats",
        "shorts",
        "leggings",
        "tee",
        "tank",
        "tunic",
        "romper",
        "jumpsuit",
        "suit",
        "bra",
        "bralette",
        "shoes",
        "boots",
        "sandals",
        "bag",
        "product",
        "products",
        "item",
        "items",
    ]
)

EXTEND_MIN = 0.55
VECTOR_BLOCK = 65_536
EXTEND_MARGIN = 0.03
MAX_OTHER = 6
MIN_SHARE = 0.02
QUOTES = 3
QUOTE_POOL = 60
SEED = 0
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z]+)?")


def aspect_list(extra: dict[str, list[str]] | None = None) -> dict[str, tuple[str, ...]]:
    """The built-in aspects, with insight.toml's ``[reviews.aspects]`` added or replacing."""
    out = dict(DEFAULT_ASPECTS)
    for name, words in (extra or {}).items():
        out[name] = tuple(w.lower() for w in words)
    return out


def _seed_sets(aspects: dict[str, tuple[str, ...]]) -> list[tuple[set[str], list[str]]]:
    """Per aspect: single-word seeds as stems, and multi-word seeds as phrases."""
    out = []
    for words in aspects.values():
        singles = {stem(w) for w in words if " " not in w}
        phrases = [w for w in words if " " in w]
        out.append((singles, phrases))
    return out


def unit_stems(texts: Any) -> list[str]:
    """Each text's words (lower case, hyphenated and apostrophe words kept whole), stemmed and
    joined by spaces: what seed words are matched against. The unit table stores it per unit
    (``stems``), so aspect matching does not tokenize every unit again."""
    return [" ".join(stem(w) for w in _WORD.findall(str(t).lower())) for t in texts]


def match_aspects(
    texts: list[str], aspects: dict[str, tuple[str, ...]], stems: list[str] | None = None
) -> np.ndarray:
    """Per text: the aspect index with the most seed hits (ties: list order), -1 for none.

    Hits = occurrences of the aspect's single-word seeds among the text's stems (``stems``:
    :func:`unit_stems` of ``texts``, computed when not given) + its multi-word seeds present
    as phrases: one pass over the stems and a sparse product, not a loop over aspects."""
    from scipy import sparse

    seeds = _seed_sets(aspects)
    n = len(texts)
    out = np.full(n, -1, dtype=np.int32)
    if n == 0 or not seeds:
        return out
    if stems is None:
        stems = unit_stems(texts)
    vocab: dict[str, int] = {}
    for singles, _ in seeds:
        for w in sorted(singles):
            vocab.setdefault(w, len(vocab))
    owner = np.zeros((len(vocab), len(seeds)), dtype=np.float64)
    for a, (singles, _) in enumerate(seeds):
        for w in singles:
            owner[vocab[w], a] = 1.0
    rows, cols = [], []
    for i, line in enumerate(stems):
        for w in line.split():
            j = vocab.get(w)
            if j is not None:
                rows.append(i)
                cols.append(j)
    counts = sparse.csr_matrix(
        (np.ones(len(rows)), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
        shape=(n, len(vocab)),
    )
    hits = np.asarray(counts @ owner)
    if any(phrases for _, phrases in seeds):
        low = pd.Series(texts, dtype="string").str.lower()
        for a, (_, phrases) in enumerate(seeds):
            for phrase in phrases:
                hits[:, a] += low.str.contains(phrase, regex=False).to_numpy(dtype=bool)
    best = hits.argmax(axis=1)  # the first of equal counts: list order
    found = hits[np.arange(n), best] > 0
    out[found] = best[found]
    return out


@dataclass
class AspectThemes:
    """Themes over the opinion units in scope (see the module docstring)."""

    themes: list[dict[str, Any]]
    reviews: int
    units: int
    theme_of_unit: np.ndarray  # per unit in scope: internal theme number, -1 for "other"
    unit_rows: np.ndarray  # rows into the unit table
    filters: dict[str, str]
    internal: dict[str, int]  # listed theme id (T1...) -> its number in theme_of_unit

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts, in the shape whole-review themes have, plus unit counts."""
        named = [t for t in self.themes if t["theme"] != "other"]
        pool = named or self.themes
        largest = max(pool, key=lambda t: (t["size"], t["theme"]))
        scored = [t for t in pool if t["units"] >= 20] or pool
        most_negative = max(scored, key=lambda t: (t["share_negative"], t["size"]))
        return {
            "reviews": self.reviews,
            "units": self.units,
            "unit_of_analysis": "opinion units (sentences and clauses)",
            "filters": dict(self.filters),
            "k": len(self.themes),
            "k_chosen_by": "aspect list + clustering of the rest",
            "largest_theme": {
                "theme": largest["theme"],
                "label": largest["label"],
                "share": largest["share"],
            },
            "most_negative_theme": {
                "theme": most_negative["theme"],
                "label": most_negative["label"],
                "share_negative": most_negative["share_negative"],
            },
            "themes": self.themes,
        }


def _keywords(texts: list[str], labels: np.ndarray, k: int, stop: set[str]) -> list[list[str]]:
    """Up to 6 distinctive words per cluster, without numbers ("10" labelled a theme)."""
    from insight_agent.vectorstore.themes import class_tfidf

    found = class_tfidf(texts, labels, k, top_n=10, extra_stop_words=sorted(stop))
    return [[w for w in words if not any(ch.isdigit() for ch in w)][:6] for words in found]


def _product_words(table: Any) -> set[str]:
    """Words of the data's own category and product names (product types, not aspects)."""
    words: set[str] = set()
    for column in ("category", "product"):
        for value in table.reviews.values.get(column, []):
            for w in _WORD.findall(str(value).lower()):
                words.add(w)
                words.add(stem(w))
                words.add(w.rstrip("s"))
    return words


def _quotes(table: Any, rows: np.ndarray, vectors: np.ndarray) -> list[dict[str, Any]]:
    centroid = vectors.mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    closeness = vectors @ centroid
    pool = np.argsort(-closeness, kind="stable")[:QUOTE_POOL]
    picked = mmr(centroid, vectors[pool], QUOTES, lambda_=0.85)
    units = table.units
    segments = table.reviews.values.get("segment", [])
    segment_codes = table.reviews.codes.get("segment")
    out = []
    for j in picked:
        row = int(rows[pool[j]])
        doc = int(units["doc"].iat[row])
        rating = float(table.reviews.rating[doc])
        segment = segments[segment_codes[doc]] if segment_codes is not None else ""
        out.append(
            {
                "review_id": str(table.review_ids[doc]),
                "text": str(units["text"].iat[row]),
                "span": [int(units["start"].iat[row]), int(units["end"].iat[row])],
                "sentiment": str(units["sentiment"].iat[row]),
                "rating": rating if rating >= 0 else None,
                "segment": segment or None,
            }
        )
    return out


def _other_clusters(vectors: np.ndarray, seed: int) -> np.ndarray:
    """k-means over the units no aspect took (k by silhouette, 1..MAX_OTHER)."""
    from insight_agent.vectorstore.themes import _assign, choose_k

    if len(vectors) < 40:
        return np.zeros(len(vectors), dtype=np.int64)
    k, _ = choose_k(vectors, seed=seed, k_max=MAX_OTHER)
    return _assign(vectors, k, seed)


def _blocks(table: Any, rows: np.ndarray) -> Any:
    """The vectors of ``rows`` as float32 unit-norm blocks (start, block): at most
    ``VECTOR_BLOCK`` rows in memory at a time, whatever the number of units."""
    for start in range(0, len(rows), VECTOR_BLOCK):
        block = np.asarray(table.vectors[rows[start : start + VECTOR_BLOCK]], dtype=np.float32)
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        yield start, block


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def assign_aspects(
    table: Any, rows: np.ndarray, aspects: dict[str, tuple[str, ...]]
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Steps 1 and 2 of the module docstring for the units ``rows`` (the scope): per unit the
    aspect's index in ``aspects`` (-1: none), how it was matched ("seed words", "similar
    wording" or ""), and the centroid of each aspect's seed-matched units (aspects with at
    least 10). Themes and aspect counts (:func:`count_aspect`) share it, so "how many reviews
    mention returns" equals the returns theme's size over the same scope. Vectors are read in
    blocks, so a count over 600k units does not hold them all as float32."""
    texts = table.units["text"].to_numpy(dtype=object)[rows].tolist()
    stems = None
    if "stems" in table.units:  # stored by the ingest (older tables: computed here)
        stems = table.units["stems"].to_numpy(dtype=object)[rows].tolist()
    theme = match_aspects(texts, aspects, stems).astype(np.int64)
    how = np.where(theme >= 0, "seed words", "").astype(object)
    n_aspects = len(aspects)
    sizes = np.bincount(theme[theme >= 0], minlength=n_aspects)
    present = [a for a in range(n_aspects) if sizes[a] >= 10]
    centroids: dict[int, np.ndarray] = {}
    rest = theme < 0
    if present:
        sums = np.zeros((n_aspects, table.vectors.shape[1]), dtype=np.float64)
        for start, block in _blocks(table, rows):
            part = theme[start : start + len(block)]
            seeded = np.flatnonzero(part >= 0)
            onehot = np.zeros((n_aspects, len(seeded)), dtype=np.float64)
            onehot[part[seeded], np.arange(len(seeded))] = 1.0
            sums += onehot @ block[seeded]
        centroids = {a: _unit(sums[a] / sizes[a]).astype(np.float32) for a in present}
    if centroids and rest.any():
        stack = np.stack([centroids[a] for a in present])
        labels = np.asarray(present)
        for start, block in _blocks(table, rows):
            part = np.flatnonzero(rest[start : start + len(block)])
            if not len(part):
                continue
            sims = block[part] @ stack.T
            order = np.argsort(-sims, axis=1)
            best = sims[np.arange(len(part)), order[:, 0]]
            second = (
                sims[np.arange(len(part)), order[:, 1]]
                if sims.shape[1] > 1
                else np.zeros(len(part))
            )
            take = (best >= EXTEND_MIN) & (best - second >= EXTEND_MARGIN)
            theme[start + part[take]] = labels[order[take, 0]]
            how[start + part[take]] = "similar wording"
    return theme, how, centroids


#: Words that name an aspect itself, beyond its name's words: a count query made only of
#: these ("returns", "the fabric", "pricing") counts the aspect, not the phrase.
TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "sizing/fit": ("size", "sizes", "sizing", "fit", "fitting"),
    "material/fabric": ("material", "materials", "fabric", "fabrics"),
    "colour": ("colour", "color", "colours", "colors"),
    "quality/durability": ("quality", "durability", "durable"),
    "price/value": ("price", "prices", "pricing", "value", "cost", "costs"),
    "shipping/delivery": ("shipping", "delivery", "deliveries", "shipment"),
    "returns/refunds": ("return", "returns", "returning", "refund", "refunds", "exchange"),
    "customer service": ("customer service", "service", "support", "customer support"),
    "packaging": ("packaging", "package", "packing"),
    "style/look": ("style", "styling", "look", "looks"),
}
#: Words a count query wraps around its topic ("complaints about returning the item").
_QUERY_NOISE = frozenset((
    "a", "an", "the", "of", "about", "with", "on", "for", "to", "our", "their", "its", "it",
    "this", "that", "these", "those", "my", "your", "any", "and", "or", "complaint",
    "complaints", "complain", "complaining", "complained", "problem", "problems", "issue",
    "issues", "mention", "mentions", "mentioning", "mentioned", "talk", "talks", "talking",
    "say", "says", "saying", "said", "comment", "comments", "feedback", "negative",
    "positive", "bad", "poor", "good", "praise", "praising", "review", "reviews", "item",
    "items", "product", "products", "order", "orders",
))  # fmt: skip


def query_aspect(query: str, aspects: dict[str, tuple[str, ...]]) -> str | None:
    """The aspect a count query names as a topic ("returns", "complaints about the fabric",
    "returning the item"), or None for an opinion to match as a phrase ("runs small").

    The query's words, without the wrapping words above, must all be topic words of one
    aspect: its name's words, :data:`TOPIC_WORDS`, compared by stem."""
    low = query.lower()
    words = [stem(w) for w in _WORD.findall(low) if w not in _QUERY_NOISE]
    if not words:
        return None
    found = []
    for name in aspects:
        topic = {stem(w) for w in _WORD.findall(name.lower())}
        rest = words
        for word in TOPIC_WORDS.get(name, ()):
            if " " not in word:
                topic.add(stem(word))
            elif word in low:  # a phrase ("customer service") covers its own words
                rest = [w for w in rest if w not in {stem(x) for x in word.split()}]
        if all(w in topic for w in rest):
            found.append(name)
    return found[0] if len(found) == 1 else None


def count_aspect(
    table: Any,
    query: str,
    aspect: str,
    aspects: dict[str, tuple[str, ...]],
    *,
    filters: Any = None,
    by: str | None = None,
    tone: str | None = None,
) -> dict[str, Any]:
    """How many reviews (passing ``filters``) talk about ``aspect``: the reviews with a unit the
    aspect themes put in it (seed words or similar wording, over the same scope), so the count
    equals that theme's size. Same result shape as
    :func:`~insight_agent.vectorstore.opinions.count_matches`; a matching review's example is
    its unit closest to the aspect's centroid."""
    from insight_agent.vectorstore.opinions import tally, tone_mask

    names = list(aspects)
    scope_mask = table.unit_mask(filters)
    rows = np.flatnonzero(scope_mask)
    theme, how, centroids = assign_aspects(table, rows, aspects)
    index = names.index(aspect)
    keep = (theme == index) & tone_mask(table, tone)[rows]
    centroid = centroids.get(index)
    if centroid is None and keep.any():  # fewer than 10 seed-matched units: their own mean
        centroid = _unit(np.asarray(table.vectors[rows[keep]], dtype=np.float32).mean(axis=0))
    scores = np.zeros(int(keep.sum()), dtype=np.float32)
    if centroid is not None and keep.any():  # ranks each review's examples: closest first
        kept = rows[keep]
        for start, block in _blocks(table, kept):
            scores[start : start + len(block)] = block @ centroid
    head = {
        "query": query,
        "aspect": aspect,
        "matched_as": "aspect",
        "threshold": None,
        "rule": f"reviews with a sentence about {aspect} (its seed words, or wording close to "
        "them), as in the themes",
        "matched_by": _counts(how[keep]),
    }
    return tally(table, filters, scope_mask, rows[keep], scores, by=by, tone=tone, head=head)


def find_aspect_themes(
    table: Any,
    filters: Any = None,
    *,
    aspects: dict[str, tuple[str, ...]] | None = None,
    seed: int = SEED,
) -> AspectThemes:
    """Aspect themes of the units of reviews passing ``filters`` (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    aspects = aspects or dict(DEFAULT_ASPECTS)
    names = list(aspects)
    rows = np.flatnonzero(table.unit_mask(filters))
    if len(rows) == 0:
        raise InsufficientData(
            "no review text in scope: nothing to group into themes",
            hint="loosen the filters (segment, rating, sentiment)",
        )
    units = table.units
    texts = units["text"].to_numpy(dtype=object)[rows].tolist()
    theme, how, _ = assign_aspects(table, rows, aspects)
    vectors = np.asarray(table.vectors[rows], dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    # 3. the rest: clusters labelled by their distinctive words
    stop = set(FILLER) | set(PRODUCT_TYPES) | _product_words(table)
    rest = np.flatnonzero(theme < 0)
    n_aspects = len(names)
    other_labels: list[str] = []
    if len(rest):
        with threadpool_limits(limits=1):
            clusters = _other_clusters(vectors[rest], seed)
        k = int(clusters.max()) + 1 if len(clusters) else 0
        words = _keywords([texts[i] for i in rest], clusters, k, stop) if k else []
        for c in range(k):
            members = rest[clusters == c]
            if len(members) / len(rows) < MIN_SHARE:
                continue  # too small to name: stays "other"
            theme[members] = n_aspects + len(other_labels)
            other_labels.append(", ".join(words[c][:3]) if words[c] else "other")
    labels = [*names, *other_labels]

    docs = units["doc"].to_numpy()[rows]
    n_reviews = len(np.unique(docs))
    p = units["p_positive"].to_numpy(dtype=float)[rows]
    negative = units["sentiment"].to_numpy(dtype=object)[rows] == "negative"
    ratings = np.asarray(table.reviews.rating, dtype=float)
    categories = table.reviews.values.get("category", [])
    cat_codes = table.reviews.codes.get("category")
    all_keywords = _keywords(texts, np.where(theme < 0, len(labels), theme), len(labels) + 1, stop)
    themes = []
    for t, label in enumerate([*labels, "other"]):
        members = np.flatnonzero(theme == t) if t < len(labels) else np.flatnonzero(theme < 0)
        if len(members) == 0:
            continue
        theme_docs = np.unique(docs[members])
        r = ratings[theme_docs]
        r = r[r >= 0]
        row: dict[str, Any] = {
            "theme": "other" if t == len(labels) else f"#{t}",
            "label": label,
            "aspect": label if t < n_aspects else None,
            "keywords": all_keywords[t] if t < len(all_keywords) else [],
            "size": len(theme_docs),
            "share": round(len(theme_docs) / n_reviews, 4),
            "units": len(members),
            "share_units": round(len(members) / len(rows), 4),
            "matched_by": _counts(how[members]),
            "share_negative": round(float(negative[members].mean()), 4),
            "mean_p_positive": round(float(p[members].mean()), 3),
            "avg_rating": round(float(r.mean()), 2) if len(r) else None,
            "rated": len(r),
            "top_categories": _over_represented(theme_docs, docs, cat_codes, categories),
            "quotes": _quotes(table, rows[members], vectors[members]),
        }
        themes.append(row)
    themes.sort(key=lambda x: (x["theme"] == "other", -x["size"], x["label"]))
    internal: dict[str, int] = {}
    for n, row in enumerate(t for t in themes if t["theme"] != "other"):
        internal[f"T{n + 1}"] = int(row["theme"][1:])
        row["theme"] = f"T{n + 1}"
    return AspectThemes(
        themes=themes,
        reviews=n_reviews,
        units=len(rows),
        theme_of_unit=theme,
        unit_rows=rows,
        filters={k: str(v) for k, v in vars(filters).items() if v} if filters else {},
        internal=internal,
    )


def _counts(how: np.ndarray) -> dict[str, int]:
    """How a theme's units were matched: seed words, similar wording, clusters."""
    named = np.where(how == "", "clusters", how)
    values, counts = np.unique(named.astype(str), return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts, strict=True)}


def _over_represented(
    theme_docs: np.ndarray, docs: np.ndarray, codes: Any, values: list[str]
) -> list[dict[str, Any]]:
    """Categories where the theme's reviews are most over-represented (lift >= 1.2, >= 5)."""
    if codes is None or not values:
        return []
    scope = np.unique(docs)
    base = np.bincount(codes[scope], minlength=len(values)) / len(scope)
    mine = np.bincount(codes[theme_docs], minlength=len(values))
    out = []
    for c in np.argsort(-mine, kind="stable"):
        if mine[c] < 5 or not values[c] or base[c] == 0:
            continue
        lift = (mine[c] / len(theme_docs)) / base[c]
        if lift >= 1.2:
            out.append({"category": values[c], "reviews": int(mine[c]), "lift": round(lift, 2)})
    return sorted(out, key=lambda x: -x["lift"])[:3]


def theme_table(table: Any, themes: AspectThemes, by: str) -> list[dict[str, Any]]:
    """Themes × ``by`` (category, product, segment, rating, month, sentiment): per cell the
    reviews in the group, how many mention the theme, the share, the share in all other
    groups, and a Holm-adjusted two-proportion p-value (over every cell tested). Groups with
    fewer than 10 reviews are left out."""
    from insight_agent.vectorstore.opinions import _group_values
    from insight_agent.vectorstore.themes import _two_proportion_p, holm

    values = _group_values(table, by)
    docs = table.units["doc"].to_numpy()[themes.unit_rows]
    scope = np.unique(docs)
    group = pd.Series(values[scope], index=scope).replace("", "(missing)")
    sizes = group.value_counts()
    cells: list[dict[str, Any]] = []
    for row in themes.themes:
        if row["theme"] == "other":
            continue
        mentioned = np.unique(docs[themes.theme_of_unit == themes.internal[row["theme"]]])
        hit = group.loc[mentioned].value_counts()
        for g, n in sizes.items():
            if n < 10:
                continue
            x = int(hit.get(g, 0))
            rest_n, rest_x = len(scope) - int(n), len(mentioned) - x
            cells.append(
                {
                    "theme": row["theme"],
                    "label": row["label"],
                    by: str(g),
                    "reviews": int(n),
                    "mentioning": x,
                    "share": round(x / n, 4),
                    "share_elsewhere": round(rest_x / rest_n, 4) if rest_n else None,
                    "p": _two_proportion_p(x, int(n), rest_x, rest_n) if rest_n else 1.0,
                }
            )
    adjusted = holm([c["p"] for c in cells]) if cells else []
    for c, p_adj in zip(cells, adjusted, strict=True):
        c["p_holm"] = round(float(p_adj), 4)
        c["significant"] = bool(p_adj < 0.05)
        c["p"] = round(float(c["p"]), 6)
    return cells
