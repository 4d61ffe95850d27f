"""Review questions a command or an agent tool asks: parse user filters, search, shape facts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from insight_agent.errors import ConfigError
from insight_agent.names import match_value
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


def _indexed(ws: Workspace, column: str, value: str | None) -> str | None:
    """A review ``column`` value (category, product) as the index stores it, matched in any
    case and number (:func:`insight_agent.names.match_value`); ConfigError listing the indexed
    values when none matches (a filter on a value no review has finds nothing, silently: the
    model passed "delivery" for "late delivery")."""
    if not value:
        return None
    from insight_agent.vectorstore.store import indexed_values

    known = indexed_values(ws.artifacts, column, ws.settings.vectorstore.chroma_url)
    if known is None:  # cannot tell (a Chroma server): filter on the text as given
        return value
    if not known:
        raise ConfigError(
            f"the reviews have no {column} values to filter on",
            hint=f"leave {column} out, or map a {column} column under [data.reviews]",
        )
    found = match_value(value, known)
    if found is None:
        shown = known if len(known) <= 30 else [*known[:30], f"... ({len(known)} in all)"]
        raise ConfigError(
            f"no review {column} '{value}'",
            hint=f"{column} values: " + ", ".join(shown) + f"; or leave {column} out",
        )
    return found


def _category(ws: Workspace, category: str | None) -> str | None:
    """A review category as the index stores it (see :func:`_indexed`)."""
    return _indexed(ws, "category", category)


def review_filters(
    ws: Workspace,
    *,
    segment: str | None = None,
    min_rating: float | None = None,
    max_rating: float | None = None,
    sentiment: str | None = None,
    since: str | None = None,
    until: str | None = None,
    product: str | None = None,
    category: str | None = None,
    contains: str | None = None,
) -> ReviewFilters:
    """Filters as a user or the agent gave them, checked and matched to the index's values
    (segment by id or name, product and category in any case, dates as YYYY-MM-DD)."""
    if sentiment and sentiment not in SENTIMENTS:
        raise ConfigError(f"unknown sentiment '{sentiment}'", hint=f"use {', '.join(SENTIMENTS)}")
    return ReviewFilters(
        segment=_segment_name(ws, segment),
        min_rating=min_rating,
        max_rating=max_rating,
        sentiment=sentiment,
        since=_date(since, "--since"),
        until=_date(until, "--until"),
        product=_indexed(ws, "product", product),
        category=_category(ws, category),
        contains=contains,
    )


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
    filters = review_filters(
        ws,
        segment=segment,
        min_rating=min_rating,
        max_rating=max_rating,
        sentiment=sentiment,
        since=since,
        until=until,
        product=product,
        category=category,
        contains=contains,
    )
    local = local_units(ws)
    if local is not None:  # embedded store: the unit table answers without Chroma
        return _search_result(query, filters, _unit_hits(ws, None, local, query, k, filters))
    index = nonempty_index(ws)
    units = index.unit_table()
    if units is not None:
        hits = _unit_hits(ws, index, units, query, k, filters)
    else:  # an index built before opinion units: whole-review search
        hits = search_reviews(index, query, k=k, filters=filters, diverse=diverse)
    return _search_result(query, filters, hits, units is not None)


def _search_result(
    query: str, filters: ReviewFilters, hits: list[dict[str, Any]], units: bool = True
) -> dict[str, Any]:
    return {
        "query": query,
        "filters": {k: str(v) for k, v in vars(filters).items() if v},
        "count": len(hits),
        "hits": hits,
        "searched": "opinion units" if units else "whole reviews",
    }


def local_units(ws: Workspace) -> Any:
    """The embedded store's opinion-unit table when it can answer a search or count on its
    own (it holds its documents' text and metadata); None with a Chroma server, before the
    first build, or for a table written by an older version (those go through Chroma)."""
    if ws.settings.vectorstore.chroma_url:
        return None
    from insight_agent.vectorstore.unitstore import UnitTable, unit_dir

    table = UnitTable.load(unit_dir(ws.artifacts))
    if table is None or not table.has_documents or table.n_reviews == 0:
        return None
    return table


def _embed_query(ws: Workspace, index: Any, query: str) -> Any:
    """The query's vector: through the index's embedding function, or (no index) the same
    offline model directly, started from the workspace's optimized copy of it."""
    import numpy as np

    if index is not None:
        return np.asarray(index.embedding_function([query])[0], dtype=np.float32)
    from insight_agent.vectorstore.embedder import model_cache_dir, shared_embedder

    return shared_embedder(cache_dir=model_cache_dir(ws.artifacts)).embed([query])[0]


def query_positive(ws: Workspace, query: str) -> float | None:
    """The query's own P(positive) by the workspace's sentiment model (else the lexicon); from
    the model's exported arrays when there are some, so a search does not import scikit-learn."""
    from insight_agent.vectorstore.textmodel import FILE, load_text_model
    from insight_agent.vectorstore.textscore import load_term_scorer

    directory = ws.artifacts / "reviews"
    scorer = load_term_scorer(directory)
    if scorer is not None:
        return float(scorer.predict_positive([query])[0])
    model = load_text_model(directory) if (directory / FILE).exists() else None
    if model is not None:
        return float(model.predict_positive([query])[0])
    try:
        from insight_agent.vectorstore.sentiment import lexicon_score

        return (lexicon_score(query) + 1.0) / 2.0
    except ImportError:
        return None


def _unit_hits(
    ws: Workspace, index: Any, units: Any, query: str, k: int, filters: ReviewFilters
) -> list[dict[str, Any]]:
    """Hits ranked by their best opinion unit (negation, antonyms and polarity aware), in the
    shape whole-review search returns, plus the unit, its span and its sentiment. ``index``
    None: the texts and metadata come from the unit table (no Chroma)."""
    from insight_agent.vectorstore.opinions import search_units
    from insight_agent.vectorstore.search import hit_metadata

    vector = _embed_query(ws, index, query)
    found = search_units(
        units, vector, query, k=k, filters=filters, query_positive=query_positive(ws, query)
    )
    if not found:
        return []
    doc_ids = [str(units.reviews.ids[h["doc"]]) for h in found]
    if index is None:
        by_id = dict(zip(doc_ids, units.documents([h["doc"] for h in found]), strict=True))
    else:
        got = index.collection.get(ids=doc_ids, include=["documents", "metadatas"])
        rows = zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        by_id = {i: (d, m) for i, d, m in rows}
    hits = []
    for hit, doc_id in zip(found, doc_ids, strict=True):
        text, meta = by_id.get(doc_id, ("", {}))
        meta = dict(meta or {})
        hits.append(
            {
                "review_id": meta.pop("review_id", hit["review_id"]),
                "text": text,
                "unit": hit["unit"],
                "span": hit["span"],
                "unit_sentiment": hit["unit_sentiment"],
                "similarity": hit["similarity"],
                "match": hit["match"],
                **hit_metadata(meta),
            }
        )
    return hits


COUNT_BY = ("category", "product", "segment", "rating", "month", "sentiment")


def review_count(
    ws: Workspace,
    query: str,
    *,
    by: str | None = None,
    threshold: float | None = None,
    tone: str | None = None,
    segment: str | None = None,
    min_rating: float | None = None,
    max_rating: float | None = None,
    sentiment: str | None = None,
    since: str | None = None,
    until: str | None = None,
    product: str | None = None,
    category: str | None = None,
    contains: str | None = None,
    phrase: bool = False,
) -> dict[str, Any]:
    """How many reviews say ``query`` (exact scan over opinion units; see
    :mod:`insight_agent.vectorstore.opinions`), as a share, optionally per group.

    A query that only names an aspect ("returns", "complaints about the fabric") counts the
    reviews talking about that aspect, by the themes' rule
    (:func:`~insight_agent.vectorstore.aspects.count_aspect`), so the count agrees with the
    theme; ``phrase`` forces matching the words as a phrase instead.

    JSON-ready except ``matches`` (a DataFrame of matching review rows, for export)."""

    import pandas as pd

    from insight_agent.vectorstore.aspects import aspect_list, count_aspect, query_aspect
    from insight_agent.vectorstore.opinions import count_matches

    if by and by not in COUNT_BY:
        raise ConfigError(f"cannot count by '{by}'", hint=f"use one of {', '.join(COUNT_BY)}")
    if tone and tone not in ("negative", "neutral", "positive"):
        raise ConfigError(f"unknown tone '{tone}'", hint="use negative, neutral or positive")
    if threshold is not None and not 0.0 < threshold < 1.5:
        raise ConfigError(f"--threshold must be between 0 and 1.5, got {threshold}")
    if not query or not query.strip():
        raise ConfigError('say what to count, e.g. insight reviews count "runs small"')
    filters = review_filters(
        ws,
        segment=segment,
        min_rating=min_rating,
        max_rating=max_rating,
        sentiment=sentiment,
        since=since,
        until=until,
        product=product,
        category=category,
        contains=contains,
    )
    index, units = None, local_units(ws)
    if units is None:
        index = nonempty_index(ws)
        units = index.unit_table()
    if units is None:
        raise ConfigError(
            "the review index has no opinion units yet (built by an older version, or a "
            "teammate's server collection changed since)",
            hint=f"run `insight build -w {ws.root}` to add them (only units are embedded)",
        )
    aspects = aspect_list(ws.settings.review_aspects)
    aspect = None if (phrase or threshold is not None) else query_aspect(query, aspects)
    if aspect:
        result = count_aspect(units, query, aspect, aspects, filters=filters, by=by, tone=tone)
    else:
        vector = _embed_query(ws, index, query)
        result = count_matches(
            units, vector, query, filters=filters, by=by, threshold=threshold, tone=tone
        )
        result["matched_as"] = "phrase"
    matches = result["matches"]
    docs = matches["doc"].to_numpy()
    texts = units.column("text")
    result["matches"] = pd.DataFrame(
        {
            "review_id": units.review_ids[docs],
            "doc_id": units.reviews.ids[docs],
            "matching_unit": [str(texts[u]) for u in matches["unit"].to_numpy()],
            "score": matches["score"].round(4).to_numpy(),
        }
    )
    if units.has_documents:  # the row of each review in the file it was loaded from
        records = units.documents(docs.tolist())
        rows = [int(meta.get("source_row", -1)) for _, meta in records]
        if any(r >= 0 for r in rows):
            result["matches"].insert(1, "source_row", rows)
    result["filters"] = {k: str(v) for k, v in vars(filters).items() if v}
    result["examples"] = result["matches"].head(3).to_dict(orient="records")
    return result


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
    category: str | None = None,
    k: int | None = None,
    by: str | None = None,
    whole_reviews: bool = False,
) -> dict[str, Any]:
    """Themes of the workspace's reviews (all, or one segment / rating band / sentiment).

    With opinion units in the index (and neither ``k`` nor ``whole_reviews``): aspect themes
    over sentences (:mod:`insight_agent.vectorstore.aspects`), each with review and sentence
    shares, sentence sentiment, rating and quotes; ``by`` adds the theme × group table with
    Holm-adjusted tests. Otherwise whole reviews are clustered
    (:mod:`insight_agent.vectorstore.themes`). JSON-ready: ``reviews`` (count in scope),
    ``largest_theme``, ``most_negative_theme`` and ``themes`` (id, label, keywords, size,
    share, avg_rating, share_negative, quotes with review ids), largest first.
    """
    filters = review_filters(
        ws,
        segment=segment,
        min_rating=min_rating,
        max_rating=max_rating,
        sentiment=sentiment,
        category=category,
    )
    index = nonempty_index(ws)
    units = None if (k is not None or whole_reviews) else index.unit_table()
    if units is None:
        if by:
            raise ConfigError(
                "a theme table by group needs opinion units (no -k, no --whole-reviews)",
                hint=f"run `insight build -w {ws.root}` if the index predates them",
            )
        from insight_agent.vectorstore.themes import find_themes

        return find_themes(index, filters, k=k).to_dict()
    from insight_agent.vectorstore.aspects import aspect_list, find_aspect_themes, theme_table

    if by and by not in COUNT_BY:
        raise ConfigError(f"cannot group by '{by}'", hint=f"use one of {', '.join(COUNT_BY)}")
    themes = find_aspect_themes(units, filters, aspects=aspect_list(ws.settings.review_aspects))
    result = themes.to_dict()
    if by:
        cells = theme_table(units, themes, by)
        result["by"] = by
        result["table"] = cells
        result["notable"] = sorted(
            (c for c in cells if c["significant"] and c["share"] > (c["share_elsewhere"] or 0)),
            key=lambda c: c["p_holm"],
        )[:10]
    return result


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
