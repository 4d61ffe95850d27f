"""Review questions a command or an agent tool asks: parse user filters, search, shape facts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from insight_agent.errors import ConfigError
from insight_agent.vectorstore.search import (
    SENTIMENTS,
    ReviewFilters,
    representative_quotes,
    search_reviews,
)
from insight_agent.workspace import Workspace


def _date(value: str | None, option: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{option} must be a date like 2025-03-31, got {value!r}") from exc


def _segment_name(ws: Workspace, segment: str | None) -> str | None:
    """Accept a segment id (S2), name, or unambiguous part of a name; the index stores names."""
    if not segment:
        return None
    from insight_agent.analytics.artifacts import NoBuild
    from insight_agent.analytics.queries import resolve_segment

    try:
        return resolve_segment(ws, segment)[1]
    except NoBuild:  # no build yet: take the text as given
        return segment


def _category(ws: Workspace, category: str | None) -> str | None:
    """A review category as the index stores it (any case); ConfigError listing the indexed
    categories when none matches (a filter on a value no review has finds nothing, silently:
    the model passed "delivery" for "late delivery")."""
    if not category:
        return None
    from insight_agent.vectorstore.store import indexed_values

    known = indexed_values(ws.artifacts, "category", ws.settings.vectorstore.chroma_url)
    if known is None:  # cannot tell (a Chroma server): filter on the text as given
        return category
    by_lower = {value.lower(): value for value in known}
    found = by_lower.get(str(category).strip().lower())
    if found is None:
        raise ConfigError(
            f"no review category '{category}'",
            hint="categories: " + ", ".join(known) + "; or leave category out",
        )
    return found


def review_search(
    ws: Workspace,
    query: str,
    *,
    k: int = 5,
    segment: str | None = None,
    min_rating: float | None = None,
    max_rating: float | None = None,
    sentiment: str | None = None,
    since: str | None = None,
    until: str | None = None,
    product: str | None = None,
    category: str | None = None,
    contains: str | None = None,
    diverse: bool = True,
) -> dict[str, Any]:
    """Search the workspace's review index; JSON-ready hits with review ids and metadata."""
    if sentiment and sentiment not in SENTIMENTS:
        raise ConfigError(f"unknown sentiment '{sentiment}'", hint=f"use {', '.join(SENTIMENTS)}")
    filters = ReviewFilters(
        segment=_segment_name(ws, segment),
        min_rating=min_rating,
        max_rating=max_rating,
        sentiment=sentiment,
        since=_date(since, "--since"),
        until=_date(until, "--until"),
        product=product,
        category=_category(ws, category),
        contains=contains,
    )
    index = nonempty_index(ws)
    hits = search_reviews(index, query, k=k, filters=filters, diverse=diverse)
    return {
        "query": query,
        "filters": {k: str(v) for k, v in vars(filters).items() if v},
        "count": len(hits),
        "hits": hits,
    }


def segment_quotes(
    ws: Workspace, segment: str, *, k: int = 3, sentiment: str | None = None
) -> dict[str, Any]:
    """Representative quotes of one segment (nearest its reviews' centroid, diverse)."""
    from insight_agent.vectorstore.store import open_index

    name = _segment_name(ws, segment)
    index = open_index(ws.artifacts, ws.settings.vectorstore.chroma_url)
    result = representative_quotes(
        index, k=k, filters=ReviewFilters(segment=name, sentiment=sentiment)
    )
    return {"segment": name, **result}


def nonempty_index(ws: Workspace) -> Any:
    """The workspace's review index; ConfigError (with the fix) when nothing is indexed yet."""
    from insight_agent.vectorstore.store import open_index

    index = open_index(ws.artifacts, ws.settings.vectorstore.chroma_url)
    if index.count() == 0:
        raise ConfigError(
            "the review index is empty",
            hint=f"run `insight build -w {ws.root}` (it indexes the reviews)",
        )
    return index


def review_themes(
    ws: Workspace,
    *,
    segment: str | None = None,
    min_rating: float | None = None,
    max_rating: float | None = None,
    sentiment: str | None = None,
    k: int | None = None,
) -> dict[str, Any]:
    """Themes of the workspace's reviews (all, or one segment / rating band / sentiment).

    JSON-ready: ``reviews`` (count in scope), how k was chosen, ``largest_theme``,
    ``most_negative_theme`` and ``themes`` (id, label, keywords, size, share, avg_rating,
    share_negative, quotes with review ids), largest first. See
    :mod:`insight_agent.vectorstore.themes` for the method.
    """
    from insight_agent.vectorstore.themes import find_themes

    if sentiment and sentiment not in SENTIMENTS:
        raise ConfigError(f"unknown sentiment '{sentiment}'", hint=f"use {', '.join(SENTIMENTS)}")
    filters = ReviewFilters(
        segment=_segment_name(ws, segment),
        min_rating=min_rating,
        max_rating=max_rating,
        sentiment=sentiment,
    )
    return find_themes(nonempty_index(ws), filters, k=k).to_dict()


def compare_segment_themes(
    ws: Workspace, segment_a: str, segment_b: str, *, k: int | None = None
) -> dict[str, Any]:
    """Which themes two segments' reviews differ on: per-theme shares, Holm-adjusted
    two-proportion z-tests, an overall chi-square test and the ``largest_difference``."""
    from insight_agent.vectorstore.themes import compare_themes

    name_a, name_b = _segment_name(ws, segment_a), _segment_name(ws, segment_b)
    if not name_a or not name_b:
        raise ConfigError("name two segments to compare", hint="see `insight segments`")
    return compare_themes(nonempty_index(ws), name_a, name_b, k=k)
