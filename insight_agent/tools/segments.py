"""Segment-level tools built from the other tools: ``segment_persona`` (the facts a persona is
written from) and ``segment_playbook`` (what to offer a segment and how), each as one unit.

Both compose other tools' facts through :func:`call_tool` and state where each fact came from,
so a persona request or "what should we offer them?" gets a true answer instead of a
neighbouring figure. ``insight persona`` and report persona sections use
:func:`collect_facts` too.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from insight_agent.formatting import pct
from insight_agent.tools.registry import (
    DATA_NOTE,
    Facts,
    ToolContext,
    ToolSpec,
    call_tool,
    register,
    review_text,
)

SEGMENT_HELP = "segment id (e.g. S2) or name (e.g. 'Lapsing customers'); part of a name is fine"

_LABELS = {
    "recency_days": "days since the last order",
    "frequency": "orders",
    "monetary_total": "total spend",
    "avg_order_value": "order value",
    "mean_gap_days": "days between orders",
    "tenure_days": "days as a customer",
}


def collect_facts(ctx: ToolContext, segment: str) -> dict[str, Any]:
    """Everything a persona may say about ``segment``, gathered through the tools."""
    profile = _facts(ctx, "segment_profile", {"segment": segment})
    name = profile["name"]
    facts: dict[str, Any] = {"segment": name, "profile": profile}
    churn = call_tool(ctx, "churn_risk_by_segment", {})
    if churn.facts:
        order = [s["segment"] for s in churn.facts["segments"]]
        facts["churn_rank"] = {
            "rank_by_churn_risk": order.index(name) + 1 if name in order else None,
            "segments": len(order),
        }
    basket = call_tool(ctx, "basket_rules", {"segment": name})
    if basket.facts and basket.facts.get("next_best_categories"):
        facts["next_best_categories"] = basket.facts["next_best_categories"][:3]
    themes = call_tool(ctx, "review_themes", {"segment": name})
    if themes.facts:
        facts["review_themes"] = [
            {
                "label": t["label"],
                "share": t["share"],
                "share_negative": t.get("share_negative"),
                "avg_rating": t.get("avg_rating"),
            }
            for t in themes.facts.get("themes", [])[:6]
        ]
        facts["reviews"] = themes.facts.get("reviews")
    facts["quotes"] = _quotes(ctx, name)
    facts["differs_from_others"] = _differences(profile)
    return facts


def _facts(ctx: ToolContext, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = call_tool(ctx, tool, args)
    if result.facts is None:
        from insight_agent.errors import InsightError

        raise InsightError(str(result.error))
    return result.facts


def _quotes(ctx: ToolContext, segment: str, k: int = 4) -> list[dict[str, Any]]:
    """Representative quotes (nearest the segment's review centroid, diverse), verbatim."""
    try:
        from insight_agent.vectorstore.queries import segment_quotes

        found = segment_quotes(ctx.ws, segment, k=k)
    except Exception:  # no review index: a persona without quotes, said plainly
        return []
    return [
        {"review_id": q["review_id"], "text": review_text(q["text"]), "rating": q.get("rating")}
        for q in found.get("quotes", [])
    ]


def _differences(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """The behaviours where this segment is furthest from the average customer."""
    import math

    rows = []
    for key, values in profile.get("behaviour", {}).items():
        ratio = values.get("vs_average")
        if ratio and ratio > 0:
            rows.append(
                {
                    "metric": _LABELS.get(key, key),
                    "median": values.get("median"),
                    "vs_average": ratio,
                    "direction": "higher" if ratio > 1 else "lower",
                }
            )
    rows.sort(key=lambda r: -abs(math.log(r["vs_average"])))
    return rows[:3]


class SegmentOnly(BaseModel):
    """One segment."""

    model_config = ConfigDict(extra="forbid")
    segment: str = Field(description=SEGMENT_HELP)


def _persona(ctx: ToolContext, args: SegmentOnly) -> Facts:
    facts = collect_facts(ctx, args.segment)
    profile = facts.pop("profile")
    out: Facts = {
        "segment": facts["segment"],
        "customers": profile["customers"],
        "share_customers": profile["share_customers"],
        "share_revenue": profile["share_revenue"],
        "who": profile.get("who", {}),
        "top_categories": profile.get("top_categories", [])[:3],
        "behaviour_vs_average": facts.get("differs_from_others", []),
        "propensity": profile.get("propensity", {}),
        "clv_12m": profile.get("clv_12m"),
        "next_best_categories": facts.get("next_best_categories", []),
        "review_themes": facts.get("review_themes", []),
        "quotes": facts.get("quotes", []),
        "sources": "segment_profile, churn_risk_by_segment, basket_rules, review_themes, "
        "representative review quotes",
        "note": DATA_NOTE,
    }
    if facts.get("churn_rank"):
        out["churn_rank"] = facts["churn_rank"]
    return out


def _h_persona(f: Facts) -> str:
    line = (
        f"{f['segment']}: {f['customers']:,} customers ({pct(f['share_customers'])} of "
        f"customers, {pct(f['share_revenue'])} of revenue)"
    )
    cats = [c[0] if isinstance(c, list | tuple) else str(c) for c in f.get("top_categories", [])]
    if cats:
        line += f"; buy mostly {', '.join(cats)}"
    return line + "."


def _a_persona(f: Facts) -> str:
    lines = [_h_persona(f)]
    who = f.get("who") or {}
    if who.get("median_age") is not None:
        lines.append(f"- Who: median age {who['median_age']:g}")
    for d in f.get("behaviour_vs_average", [])[:3]:
        lines.append(f"- {d['metric']}: median {d['median']:g}, {d['vs_average']:g}x the average")
    p = f.get("propensity") or {}
    if p.get("mean_churn_probability") is not None:
        lines.append(f"- Mean churn probability {p['mean_churn_probability']}")
    themes = [t for t in f.get("review_themes", []) if t.get("share_negative")]
    if themes:
        worst = max(themes, key=lambda t: t["share_negative"])
        lines.append(f"- Pain point: '{worst['label']}' ({pct(worst['share_negative'])} negative)")
    for q in f.get("quotes", [])[:2]:
        lines.append(f'- "{q["text"]}" [{q["review_id"]}]')
    return "\n".join(lines)


def _playbook(ctx: ToolContext, args: SegmentOnly) -> Facts:
    """What to offer and how, each fact with the tool it came from."""
    profile = call_tool(ctx, "segment_profile", {"segment": args.segment})
    if profile.facts is None:
        from insight_agent.errors import InsightError

        raise InsightError(str(profile.error))
    p = profile.facts
    name = p["name"]
    out: Facts = {"segment": name, "customers": p["customers"]}
    plays: list[Facts] = []
    basket = call_tool(ctx, "basket_rules", {"segment": name})
    best = (basket.facts or {}).get("next_best_categories") or []
    if best:
        out["offer_categories"] = [
            {"category": b["category"], "share": b.get("share")} for b in best[:3]
        ]
        plays.append(
            {
                "what": f"offer {best[0]['category']}",
                "why": "their most likely next category (basket rules)",
                "source": "basket_rules",
            }
        )
    themes = call_tool(ctx, "review_themes", {"segment": name, "sentiment": "negative"})
    pains = (themes.facts or {}).get("themes") or []
    if pains:
        out["pain_points"] = [
            {"theme": t["label"], "share_of_negative_reviews": t.get("share")} for t in pains[:3]
        ]
        plays.append(
            {
                "what": f"address '{pains[0]['label']}' in the message",
                "why": "the largest theme in their negative reviews",
                "source": "review_themes",
            }
        )
    try:
        from insight_agent.analytics.queries import query_metrics

        by_campaign = query_metrics(
            ctx.ws, ["response_rate", "campaign_sends"], by=["campaign"],
            where=[f"segment={name}"],
        )  # fmt: skip
        rows = [r for r in by_campaign["rows"] if (r.get("campaign_sends") or 0) >= 30]
        if rows:
            top = rows[0]
            out["best_campaign"] = {
                "campaign": top["campaign"],
                "response_rate": top["response_rate"],
                "sends": top["campaign_sends"],
            }
            plays.append(
                {
                    "what": f"use a '{top['campaign']}'-style campaign",
                    "why": "their highest response rate among campaigns with 30+ sends",
                    "source": "query_metrics",
                }
            )
    except Exception:  # no campaigns table: the playbook says less, not something else
        pass
    who = p.get("who") or {}
    if who.get("channel_mix"):
        out["main_channel"] = who["channel_mix"][0]
    propensity = p.get("propensity") or {}
    for key in ("mean_response_probability", "mean_churn_probability", "share_high_churn_risk"):
        if propensity.get(key) is not None:
            out[key] = propensity[key]
    churn = call_tool(ctx, "churn_risk_by_segment", {})
    for row in (churn.facts or {}).get("segments", []):
        if row["segment"] == name and row.get("clv_at_risk") is not None:
            out["clv_at_risk"] = row["clv_at_risk"]
            out["high_risk_customers"] = row["high_risk_customers"]
    if propensity.get("mean_churn_probability", 0) >= 0.5:
        plays.insert(
            0,
            {
                "what": "win-back first: most of them are likely to stop buying",
                "why": f"mean churn probability {propensity['mean_churn_probability']}",
                "source": "segment_profile",
            },
        )
    out["plays"] = plays
    out["sources"] = "segment_profile, basket_rules, review_themes, query_metrics, "
    out["sources"] += "churn_risk_by_segment"
    return out


def _h_playbook(f: Facts) -> str:
    parts = [f"For {f['segment']}:"]
    if f.get("offer_categories"):
        parts.append(f"offer {f['offer_categories'][0]['category']}")
    if f.get("pain_points"):
        parts.append(f"address '{f['pain_points'][0]['theme']}'")
    if f.get("best_campaign"):
        c = f["best_campaign"]
        parts.append(f"best response to {c['campaign']} ({pct(c['response_rate'])})")
    return (parts[0] + " " + "; ".join(parts[1:]) + ".") if len(parts) > 1 else parts[0]


def _a_playbook(f: Facts) -> str:
    lines = [_h_playbook(f)]
    for play in f.get("plays", []):
        lines.append(f"- {play['what']} — {play['why']} ({play['source']})")
    if f.get("clv_at_risk") is not None:
        lines.append(
            f"- CLV at risk: {f['clv_at_risk']:,} from {f.get('high_risk_customers', 0):,} "
            "high-risk customers"
        )
    return "\n".join(lines)


register(
    ToolSpec(
        "segment_persona",
        "A persona of ONE segment: who they are, what they buy, how they differ from the "
        "average customer, churn and value, pain points from review themes and representative "
        "quotes with ids. Use for 'write a persona for <segment>', 'persona of <segment>'.",
        SegmentOnly,
        _persona,
        ("persona", "write a persona", "character", "profile card"),
        headline=_h_persona,
        brief=(
            "segment",
            "customers",
            "share_customers",
            "who",
            "top_categories",
            "review_themes",
            "quotes",
        ),
        shows_quotes=True,
        summary="A persona of one segment (who, what they buy, pain points, quotes). Use for "
        "'persona for <segment>'.",
        answer=_a_persona,
        needs_segment=True,
        by_cue_only=True,
        needs=("segments",),
    )
)
register(
    ToolSpec(
        "segment_playbook",
        "What to offer ONE segment and how: next-best categories, pain points to address "
        "(negative review themes), the campaign they respond to best, main channel, response "
        "and churn probability, CLV at risk — each with its source. Use for 'what should we "
        "offer <segment>', 'how do we win back <segment>', 'plan for <segment>'.",
        SegmentOnly,
        _playbook,
        ("offer", "win back", "win-back", "playbook", "what should we", "plan for", "retain"),
        headline=_h_playbook,
        brief=(
            "segment",
            "plays",
            "offer_categories",
            "pain_points",
            "best_campaign",
            "clv_at_risk",
        ),
        summary="What to offer one segment and how (categories, pain points, best campaign). "
        "Use for 'what should we offer <segment>', 'win back <segment>'.",
        answer=_a_playbook,
        needs_segment=True,
        by_cue_only=True,
        needs=("segments",),
    )
)
