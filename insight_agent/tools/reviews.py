"""``count_reviews``: how many reviews say something, counted over every sentence, as one unit
(arguments, implementation, headline and the no-LLM answer together).

"How many reviews say it runs small?" and "which category gets the most complaints about the
zipper?" need a count and a share, not three example quotes: this tool scans every opinion unit
(:mod:`insight_agent.vectorstore.opinions`) and answers with the number, the share of reviews in
scope, per-group rows when asked, and two example sentences with their review ids.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from insight_agent.formatting import pct
from insight_agent.tools.registry import DATA_NOTE, Facts, ToolContext, ToolSpec, register
from insight_agent.tools.registry import review_text as _review_text

SEGMENT_HELP = "segment id (e.g. S2) or name (e.g. 'Lapsing customers'); part of a name is fine"


class CountArgs(BaseModel):
    """Arguments of ``count_reviews``."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="what the reviews say, e.g. 'runs small', 'zipper broke'")
    by: Literal["category", "product", "segment", "rating", "month", "sentiment"] | None = Field(
        None, description="break the count down by this (e.g. 'which category ...?' -> category)"
    )
    tone: Literal["negative", "positive"] | None = Field(
        None, description="only sentences leaning this way: 'negative' for complaints"
    )
    segment: str | None = Field(None, description="only reviews by this segment: " + SEGMENT_HELP)
    sentiment: Literal["positive", "neutral", "negative"] | None = Field(
        None, description="only reviews with this sentiment"
    )
    min_rating: float | None = Field(None, ge=0, le=5, description="lowest star rating")
    max_rating: float | None = Field(None, ge=0, le=5, description="highest star rating")
    since: dt.date | None = Field(None, description="reviews on or after this date (YYYY-MM-DD)")
    until: dt.date | None = Field(None, description="reviews on or before this date (YYYY-MM-DD)")
    category: str | None = Field(None, description="only reviews of this product category")


def _count(ctx: ToolContext, args: CountArgs) -> Facts:
    from insight_agent.vectorstore.queries import review_count

    result = review_count(
        ctx.ws,
        args.query,
        by=args.by,
        tone=args.tone,
        segment=args.segment,
        sentiment=args.sentiment,
        min_rating=args.min_rating,
        max_rating=args.max_rating,
        since=args.since.isoformat() if args.since else None,
        until=args.until.isoformat() if args.until else None,
        category=args.category,
    )
    if result.get("aspect"):
        counted = (
            f"every sentence of every review in scope; a review counts when one of its "
            f"sentences is about {result['aspect']} (seed words or similar wording, the rule "
            "the review themes use)"
        )
    else:
        counted = (
            "every sentence of every review in scope; a review counts when one of its "
            f"sentences scores >= {result['threshold']:.3f} (calibrated on this data)"
        )
    facts: dict[str, Any] = {
        "query": args.query,
        "aspect": result.get("aspect"),
        "tone": args.tone,
        "filters": result["filters"],
        "matching_reviews": result["matching_reviews"],
        "reviews_in_scope": result["reviews_in_scope"],
        "share_of_reviews": result["share"],
        "counted": counted,
    }
    if not facts["aspect"]:
        del facts["aspect"]
    if result.get("groups"):
        facts["by"] = result["by"]
        facts["groups"] = result["groups"][:12]
        if len(result["groups"]) > 12:
            facts["groups_not_shown"] = len(result["groups"]) - 12
    facts["quotes"] = [
        {"review_id": e["review_id"], "text": _review_text(e["matching_unit"])}
        for e in result["examples"][:2]
    ]
    facts["note"] = DATA_NOTE
    return facts


def _headline(f: Facts) -> str:
    what = f"talk about {f['aspect']}" if f.get("aspect") else f"say '{f['query']}'"
    line = (
        f"{f['matching_reviews']:,} of {f['reviews_in_scope']:,} reviews "
        f"({pct(f['share_of_reviews'])}) {what}"
    )
    if f.get("tone"):
        line += f" (sentences leaning {f['tone']})"
    groups = f.get("groups") or []
    if groups:
        top = groups[0]
        line += (
            f"; most in {f['by']} {top[f['by']]}: {top['matching']:,} of {top['reviews']:,} "
            f"({pct(top['share'])})"
        )
    return line + "."


def _answer(f: Facts) -> str:
    lines = [_headline(f)]
    for row in (f.get("groups") or [])[1:6]:
        lines.append(
            f"- {row[f['by']]}: {row['matching']:,} of {row['reviews']:,} ({pct(row['share'])})"
        )
    return "\n".join(lines)


register(
    ToolSpec(
        "count_reviews",
        "HOW MANY reviews say something (counted over every sentence, not sampled), as a share "
        "of reviews, optionally broken down by category, product, segment, rating, month or "
        "sentiment, with two example sentences. Use for 'how many reviews mention/say ...', "
        "'what share of reviews complain about ...', 'which category gets the most complaints "
        "about ...'.",
        CountArgs,
        _count,
        ("how many reviews", "share of reviews", "what share", "how often", "most complaints"),
        headline=_headline,
        brief=(
            "query",
            "aspect",
            "matching_reviews",
            "reviews_in_scope",
            "share_of_reviews",
            "groups",
        ),
        shows_quotes=True,
        summary="How many reviews say X (a count and share, by group). Use for 'how many "
        "reviews say ...', 'which category has most complaints about ...'.",
        answer=_answer,
        needs=("reviews",),
    )
)
