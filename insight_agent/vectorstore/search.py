"""Semantic review search with metadata filters, keyword must-contain and MMR diversity.

Every hit carries the review id, the verbatim text and its metadata, so a quote can always be
traced back to a review. Review text is returned as data, never interpreted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

SENTIMENTS = ("positive", "neutral", "negative", "unrated")


@dataclass
class ReviewFilters:
    """Metadata filters; None means "any"."""

    segment: str | None = None
    min_rating: float | None = None
    max_rating: float | None = None
    sentiment: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    product: str | None = None
    category: str | None = None
    contains: str | None = None  # keyword the text must contain (case-sensitive, as Chroma)

    def where(self) -> dict[str, Any] | None:
        """The Chroma ``where`` clause for these filters."""
        clauses: list[dict[str, Any]] = []
        for key in ("segment", "sentiment", "product", "category"):
            value = getattr(self, key)
            if value:
                clauses.append({key: value})
        if self.min_rating is not None:
            clauses.append({"rating": {"$gte": float(self.min_rating)}})
        if self.max_rating is not None:
            clauses.append({"rating": {"$lte": float(self.max_rating)}})
            if self.min_rating is None:  # unrated reviews are stored as -1
                clauses.append({"rating": {"$gte": 0.0}})
        if self.since is not None:
            clauses.append({"date": {"$gte": _date_int(self.since)}})
        if self.until is not None:
            clauses.append({"date": {"$lte": _date_int(self.until)}})
            clauses.append({"date": {"$gt": 0}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def where_document(self) -> dict[str, Any] | None:
        """The Chroma ``where_document`` clause (keyword must-contain)."""
        return {"$contains": self.contains} if self.contains else None


def _date_int(day: dt.date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def mmr(query: np.ndarray, candidates: np.ndarray, k: int, lambda_: float = 0.6) -> list[int]:
    """Maximal marginal relevance: pick ``k`` candidates relevant to ``query`` but unlike each
    other. Vectors are L2-normalised, so dot products are cosine similarities."""
    if len(candidates) == 0:
        return []
    relevance = candidates @ query
    chosen = [int(np.argmax(relevance))]
    similarity = candidates @ candidates[chosen[0]]
    max_sim = similarity.copy()
    while len(chosen) < min(k, len(candidates)):
        score = lambda_ * relevance - (1 - lambda_) * max_sim
        score[chosen] = -np.inf
        nxt = int(np.argmax(score))
        chosen.append(nxt)
        max_sim = np.maximum(max_sim, candidates @ candidates[nxt])
    return chosen


def search_reviews(
    index: Any,
    query: str,
    *,
    k: int = 5,
    filters: ReviewFilters | None = None,
    diverse: bool = True,
    fetch_k: int = 40,
) -> list[dict[str, Any]]:
    """Reviews most similar to ``query`` that pass ``filters``; MMR-diversified by default.

    Each hit: review_id, text (verbatim), similarity (cosine, 3 decimals) and the metadata.
    """
    filters = filters or ReviewFilters()
    collection = index.collection
    n = max(k, fetch_k if diverse else k)
    result = collection.query(
        query_texts=[query],
        n_results=n,
        where=filters.where(),
        where_document=filters.where_document(),
        include=["documents", "metadatas", "distances", "embeddings"],
    )
    ids = result["ids"][0]
    if not ids:
        return []
    docs, metas = result["documents"][0], result["metadatas"][0]
    distances = np.asarray(result["distances"][0], dtype=float)
    if diverse and len(ids) > k:
        vectors = np.asarray(result["embeddings"][0], dtype=np.float32)
        query_vec = np.asarray(index.embedding_function([query])[0], dtype=np.float32)
        order = mmr(query_vec, vectors, k)
    else:
        order = list(range(min(k, len(ids))))
    hits = []
    for i in order:
        meta = dict(metas[i] or {})
        hits.append(
            {
                "review_id": meta.pop("review_id", ids[i]),
                "text": docs[i],
                "similarity": round(1.0 - float(distances[i]), 3),
                "rating": None if meta.get("rating", -1) < 0 else meta["rating"],
                "date": _date_text(meta.get("date", 0)),
                **{
                    key: meta.get(key) or None
                    for key in ("customer_id", "segment", "product", "category", "sentiment")
                },
            }
        )
    return hits


def _date_text(value: Any) -> str | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    if number <= 0:
        return None
    return f"{number // 10000:04d}-{number // 100 % 100:02d}-{number % 100:02d}"


def representative_quotes(
    index: Any, *, k: int = 3, filters: ReviewFilters | None = None, limit: int = 20_000
) -> dict[str, Any]:
    """Reviews that best stand for a group (a segment, a rating band...): the ones nearest the
    group's centroid, kept diverse with MMR. Returns the group size and the quotes."""
    filters = filters or ReviewFilters()
    got = index.collection.get(
        where=filters.where(),
        where_document=filters.where_document(),
        include=["embeddings", "documents", "metadatas"],
        limit=limit,
    )
    ids = got["ids"]
    if not ids:
        return {"reviews": 0, "quotes": []}
    vectors = np.asarray(got["embeddings"], dtype=np.float32)
    centroid = vectors.mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    order = mmr(centroid, vectors, k, lambda_=0.8)
    quotes = []
    for i in order:
        meta = dict(got["metadatas"][i] or {})
        quotes.append(
            {
                "review_id": meta.get("review_id", ids[i]),
                "text": got["documents"][i],
                "closeness": round(float(vectors[i] @ centroid), 3),
                "rating": None if meta.get("rating", -1) < 0 else meta["rating"],
                "segment": meta.get("segment") or None,
            }
        )
    return {"reviews": len(ids), "quotes": quotes}
