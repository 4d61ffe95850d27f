"""The built-in tools: thin wrappers over analytics and review queries returning facts.

Descriptions are written for the model: what the tool answers and when to use it. Facts are
compact: sorted, rounded as they should be quoted, with the headline as an explicit key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from insight_agent.formatting import amount, pct
from insight_agent.tools.registry import (
    DATA_NOTE,
    Facts,
    ToolContext,
    ToolSpec,
    register,
    review_text,
)

TOP_CUSTOMERS_CAP = 100  # rows a tool lists; an export has no such cap
SEGMENT_HELP = "segment id (e.g. S2) or name (e.g. 'Lapsing customers'); part of a name is fine"
TARGET_HELP = (
    "what to predict: 'churn' (no purchase in the next 90 days), 'purchase' (buys in the next "
    "90 days), 'response' (responds to a campaign), or a product category name"
)


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoArgs(_Args):
    """No arguments."""


class SegmentArgs(_Args):
    segment: str = Field(description=SEGMENT_HELP)


class CompareArgs(_Args):
    segment_a: str = Field(description="first segment: " + SEGMENT_HELP)
    segment_b: str = Field(description="second segment: " + SEGMENT_HELP)


class TargetArgs(_Args):
    target: str = Field("churn", description=TARGET_HELP)


class TopCustomersArgs(_Args):
    target: str = Field("churn", description=TARGET_HELP)
    segment: str | None = Field(None, description="only this segment: " + SEGMENT_HELP)
    n: int = Field(10, ge=1, description="how many customers to list (up to 100 are listed)")


class CustomerArgs(_Args):
    customer_id: str = Field(description="the customer's id exactly as the user wrote it")


class BasketArgs(_Args):
    category: str | None = Field(None, description="only rules starting from this category")
    segment: str | None = Field(
        None, description="also list next-best categories for this segment: " + SEGMENT_HELP
    )


class ReviewSearchArgs(_Args):
    query: str = Field(description="what the reviews should be about, e.g. 'late delivery'")
    segment: str | None = Field(None, description="only reviews by this segment: " + SEGMENT_HELP)
    sentiment: Literal["positive", "neutral", "negative"] | None = Field(
        None, description="only reviews with this sentiment"
    )
    min_rating: float | None = Field(None, ge=0, le=5, description="lowest star rating")
    max_rating: float | None = Field(None, ge=0, le=5, description="highest star rating")
    since: dt.date | None = Field(None, description="reviews on or after this date (YYYY-MM-DD)")
    until: dt.date | None = Field(None, description="reviews on or before this date (YYYY-MM-DD)")
    category: str | None = Field(None, description="only reviews of this product category")
    k: int = Field(5, ge=1, le=10, description="how many quotes (1-10)")


class ThemeArgs(_Args):
    segment: str | None = Field(None, description="only this segment's reviews: " + SEGMENT_HELP)
    sentiment: Literal["positive", "neutral", "negative"] | None = Field(
        None, description="only reviews with this sentiment"
    )
    category: str | None = Field(None, description="only reviews of this product category")


class ExportArgs(_Args):
    target: str = Field("churn", description=TARGET_HELP)
    segment: str | None = Field(None, description="only this segment: " + SEGMENT_HELP)
    top: int = Field(500, ge=1, le=100_000, description="how many customers, highest first")
    min_probability: float = Field(0.0, ge=0, le=1, description="lowest probability to include")


# --- implementations ------------------------------------------------------------------------


def _dataset_overview(ctx: ToolContext, _: NoArgs) -> Facts:
    from insight_agent.analytics.queries import dataset_overview

    return dataset_overview(ctx.ws)


def _list_segments(ctx: ToolContext, _: NoArgs) -> Facts:
    from insight_agent.analytics.queries import segments_summary

    summary = segments_summary(ctx.ws)
    return {
        "segments_count": len(summary["segments"]),
        "largest_segment": summary["largest_segment"],
        "top_revenue_segment": summary["top_revenue_segment"],
        "segments": [
            {
                "id": s["id"],
                "name": s["name"],
                "customers": s["customers"],
                "share_customers": s["share_customers"],
                "share_revenue": s["share_revenue"],
                "median_days_since_last_order": s["median_recency_days"],
                "median_orders": s["median_orders"],
                "median_total_spend": s["median_total_spend"],
                "rule": s["rules"][0]["rule"] if s["rules"] else None,
            }
            for s in summary["segments"]
        ],
        "sorted_by": "share_revenue",
        "data_up_to": summary["cutoff"],
    }


def _segment_profile(ctx: ToolContext, args: SegmentArgs) -> Facts:
    from insight_agent.analytics.queries import segment_profile

    return segment_profile(ctx.ws, args.segment)


def _compare_segments(ctx: ToolContext, args: CompareArgs) -> Facts:
    from insight_agent.analytics.queries import compare_segments

    return compare_segments(ctx.ws, args.segment_a, args.segment_b)


def _churn_by_segment(ctx: ToolContext, _: NoArgs) -> Facts:
    from insight_agent.analytics.queries import churn_by_segment

    return churn_by_segment(ctx.ws)


def _reasons(value: Any) -> list[str]:
    if value is None:
        return []
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [str(v) for v in value][:2]


def _top_customers(ctx: ToolContext, args: TopCustomersArgs) -> Facts:
    from insight_agent.analytics.queries import audience, resolve_segment

    segment = resolve_segment(ctx.ws, args.segment)[1] if args.segment else None
    shown = min(args.n, TOP_CUSTOMERS_CAP)
    frame = audience(ctx.ws, args.target, top=shown, segment=segment)
    rows = []
    for cid, row in frame.iterrows():
        entry = {
            "customer_id": str(cid),
            "segment": row.get("segment_name"),
            "probability": round(float(row["probability"]), 3),
            "reasons": _reasons(row.get("reasons")),
        }
        if "clv_12m" in row:
            entry["clv_12m"] = round(float(row["clv_12m"]), 2)
        rows.append(entry)
    out: Facts = {
        "target": args.target,
        "segment": segment,
        "customers_listed": len(rows),
        "sorted_by": "probability (highest first)",
        "customers": rows,
        "note": "to save a full list as CSV use export_audience",
    }
    left_out = _left_out(frame)
    if left_out:  # "most likely to buy" among those who have not: owners are not prospects
        out["left_out"] = left_out
    if args.n > TOP_CUSTOMERS_CAP:
        out["note"] = (
            f"showing {len(rows)} of the {args.n} asked; `insight audience -t {args.target} "
            f"--top {args.n} -o FILE.csv` exports all"
        )
        out["customers_asked"] = args.n
    return out


def _customer_profile(ctx: ToolContext, args: CustomerArgs) -> Facts:
    from insight_agent.analytics.queries import (
        customer_attributes,
        customer_categories,
        customer_score,
        skipped_models,
    )

    row = customer_score(ctx.ws, args.customer_id.strip())
    out: Facts = {"customer_id": row["customer_id"], "segment": row.get("segment_name")}
    for key in ("recency_days", "frequency", "monetary_total", "avg_order_value", "tenure_days"):
        if row.get(key) is not None:
            out[key] = round(float(row[key]), 2)
    out["rfm"] = row.get("rfm")
    for target in ("churn", "purchase", "response"):
        if row.get(f"p_{target}") is not None:
            out[f"{target}_probability"] = round(float(row[f"p_{target}"]), 3)
            out[f"{target}_decile"] = row.get(f"{target}_decile")
            out[f"{target}_reasons"] = _reasons(row.get(f"{target}_reasons"))
    for key in ("clv_12m", "p_alive", "clv_note", "next_best_category", "next_best_reason"):
        if row.get(key) is not None:
            out[key] = row[key]
    bought = customer_categories(ctx.ws, row["customer_id"])
    if bought is not None:  # "what does 1019 usually buy?"
        out.update(bought)
    # a score this build could not give ("is 1019 likely to churn?" where churn had too few
    # positives): said, with why, rather than answered with the figures there are
    missing = {
        target: why
        for target, why in skipped_models(ctx.ws).items()
        if target in ("churn", "purchase", "response") and f"{target}_probability" not in out
    }
    if missing:
        out["scores_not_built"] = missing
    # the customers table's own labels (a churn column, a campaign's yes/no)
    for key in sorted(row):
        if key.startswith("p_label_") and row[key] is not None:
            label = key.removeprefix("p_label_")
            if f"{label}_probability" in out:  # the order-based model of the same name
                continue
            out[f"{label}_probability"] = round(float(row[key]), 3)
            out[f"{label}_decile"] = row.get(f"label_{label}_decile")
            out[f"{label}_reasons"] = _reasons(row.get(f"label_{label}_reasons"))
    attributes = customer_attributes(ctx.ws, row["customer_id"])
    if attributes:  # "what age group is 2451 in?", "has 254 already got the policy?"
        from insight_agent.engine.metrics import norm

        labels = {norm(k.removeprefix("p_label_")) for k in row if k.startswith("p_label_")}
        known = {c: v for c, v in attributes.items() if norm(c) in labels}
        if known:  # the outcome itself, beside its probability
            out["known_outcome"] = known
        out["attributes"] = attributes
    return out


def _model_quality(ctx: ToolContext, args: TargetArgs) -> Facts:
    from insight_agent.analytics.queries import model_card

    card = model_card(ctx.ws, args.target)
    m = card["metrics"]
    capture = m.get("capture_by_decile", [])
    return {
        "target": card["target"],
        "meaning": card["meaning"],
        "roc_auc": round(m["roc_auc"], 2),
        "reliability": card["reliability"],
        **({"targeting": card["targeting"]} if card.get("targeting") else {}),
        "pr_auc": round(m["pr_auc"], 2),
        "base_rate": round(m["base_rate"], 3),
        "top_decile_lift": round(m["top_decile_lift"], 1),
        "top_10pct_capture": capture[0] if capture else None,
        "top_20pct_capture": capture[1] if len(capture) > 1 else None,
        "evaluated_on": m.get("eval_window"),
        "how_tested": how_tested(card),
        "model_family": card["family"],
        "top_drivers": [f"{d['label']} ({d['direction']})" for d in card.get("drivers", [])[:5]],
        "headline": card["headline"],
    }


def how_tested(card: dict[str, Any]) -> str:
    """How the card's figures were measured, in a marketer's words: the out-of-time design
    of an order-history model (which is why no outcome leaks into its features), or the
    cross-validation and leakage guard of a customers table's label model."""
    m, params = card["metrics"], card.get("params") or {}
    window = m.get("eval_window")
    if "cv_folds" in m or not isinstance(window, list):
        excluded = card.get("excluded") or [x["column"] for x in card.get("leakage", [])]
        guard = (
            f"; the leakage guard left out {', '.join(excluded)} (each alone gave the answer away)"
            if excluded
            else "; no column was flagged by the leakage guard"
        )
        return (
            f"{m.get('cv_folds', 5)}-fold cross-validation on the customers table's own rows: "
            f"every customer scored by a model that did not see their label{guard}"
        )
    h = card.get("horizon_days", 90)
    cuts = params.get("train_cutoffs") or []
    trained = (
        f"trained on {len(cuts)} earlier windows (features from orders before "
        f"{', '.join(cuts)}; outcomes in the {h} days after each)"
        if cuts
        else "trained on earlier windows"
    )
    return (
        f"Out of time: {trained}, then tested on what customers did from {window[0]} to "
        f"{window[1]}, a window no training row saw. Features only use orders before each "
        "cutoff, so no outcome leaks into them; probabilities are calibrated on a fifth of "
        f"the training rows kept apart, and the model in use is refit {h} days later on the "
        "same recipe"
    )


def _clv_summary(ctx: ToolContext, _: NoArgs) -> Facts:
    from insight_agent.analytics.queries import clv_summary

    return clv_summary(ctx.ws)


def _basket_rules(ctx: ToolContext, args: BasketArgs) -> Facts:
    from insight_agent.analytics.queries import basket_summary

    return basket_summary(ctx.ws, category=args.category, segment=args.segment)


def _quote(hit: dict[str, Any]) -> Facts:
    """One quote for the agent: the sentence that matched (opinion-unit search) or the review,
    verbatim, with its review id and metadata."""
    keep = ("review_id", "rating", "date", "segment", "category", "sentiment")
    out = {k: hit.get(k) for k in keep if hit.get(k) is not None}
    out["text"] = review_text(hit.get("unit") or hit.get("text", ""))
    return out


def _search_reviews(ctx: ToolContext, args: ReviewSearchArgs) -> Facts:
    from insight_agent.vectorstore.queries import review_search

    result = review_search(
        ctx.ws,
        args.query,
        k=args.k,
        segment=args.segment,
        min_rating=args.min_rating,
        max_rating=args.max_rating,
        sentiment=args.sentiment,
        since=args.since.isoformat() if args.since else None,
        until=args.until.isoformat() if args.until else None,
        category=args.category,
    )
    return {
        "query": args.query,
        "filters": result["filters"],
        "quotes_found": result["count"],
        "quotes": [_quote(h) for h in result["hits"]],
        "note": DATA_NOTE,
    }


def _theme_rows(themes: list[dict[str, Any]]) -> list[Facts]:
    rows = []
    for t in themes:
        row = {k: v for k, v in t.items() if k != "quotes"}
        row["quotes"] = [_quote(q) for q in t.get("quotes", [])[:2]]
        rows.append(row)
    return rows


def _review_themes(ctx: ToolContext, args: ThemeArgs) -> Facts:
    from insight_agent.vectorstore.queries import review_themes

    result = review_themes(
        ctx.ws, segment=args.segment, sentiment=args.sentiment, category=args.category
    )
    out = {k: v for k, v in result.items() if k != "themes"}
    out["themes"] = _theme_rows(result.get("themes", []))
    out["note"] = DATA_NOTE
    return out


def _compare_review_themes(ctx: ToolContext, args: CompareArgs) -> Facts:
    from insight_agent.vectorstore.queries import compare_segment_themes

    return compare_segment_themes(ctx.ws, args.segment_a, args.segment_b)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "all"


def _left_out(frame: Any) -> str | None:
    """ "348 customers who already have Purchase = Yes": whom an audience of the customers
    table's own label leaves out (analytics.queries.audience)."""
    already = frame.attrs.get("already_positive")
    if not already or not already.get("customers"):
        return None
    return f"{already['customers']:,} customers who already have {already['label']}"


def _export_audience(ctx: ToolContext, args: ExportArgs) -> Facts:
    from insight_agent.analytics.queries import audience, resolve_segment, write_audience

    segment = resolve_segment(ctx.ws, args.segment)[1] if args.segment else None
    frame = audience(
        ctx.ws,
        args.target,
        top=args.top,
        segment=segment,
        min_probability=args.min_probability,
    )
    # The model never chooses the path: a name derived from the arguments, inside exports/.
    stamp = dt.date.today().isoformat()
    name = f"{_slug(args.target)}-{_slug(segment or 'all')}-top{len(frame)}-{stamp}.csv"
    path = ctx.ws.root / "exports" / name
    question = (
        f"Export {len(frame)} customers (target {args.target}"
        f"{', segment ' + segment if segment else ''}) to {path}?"
    )
    if len(frame) == 0:
        return {"exported": False, "reason": "no customers match", "customers": 0}
    if not ctx.confirm(question):
        return {
            "exported": False,
            "reason": "the user did not confirm the export",
            "customers": len(frame),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_audience(frame, path)
    out: Facts = {"exported": True, "customers": len(frame), "path": str(path)}
    left_out = _left_out(frame)
    if left_out:
        out["left_out"] = left_out
    return out


# --- headlines: the answer in one sentence, with figures exactly as in the facts -------------


def _h_overview(f: Facts) -> str:
    rows = f.get("rows", {})
    line = (
        f"{rows.get('customers', f['customers_scored']):,} customers, "
        f"{rows.get('orders', 0):,} order lines and {rows.get('reviews', 0):,} reviews"
    )
    if f.get("data_up_to"):
        line += f"; data up to {f['data_up_to']}"
    line += f"; {f['segments']} segments" if f.get("segments") else "; no segments"
    labels = [name.split(":", 1)[1] for name in f.get("models", {}) if name.startswith("label:")]
    if labels:
        line += f"; a model of {', '.join(labels)}"
    return line + "."


def _h_segments(f: Facts) -> str:
    largest = next(s for s in f["segments"] if s["name"] == f["largest_segment"])
    top = next(s for s in f["segments"] if s["name"] == f["top_revenue_segment"])
    return (
        f"{f['segments_count']} segments. Largest: {largest['name']} with "
        f"{largest['customers']:,} customers. Most revenue: {top['name']} with "
        f"{pct(top['share_revenue'])} of revenue."
    )


def _h_profile(f: Facts) -> str:
    return (
        f"{f['name']}: {f['customers']:,} customers ({pct(f['share_customers'])} of customers) "
        f"bringing {pct(f['share_revenue'])} of revenue."
    )


def _h_compare(f: Facts) -> str | None:
    if not f.get("metrics"):
        return None
    m = f["metrics"][0]
    return (
        f"Biggest difference: {m['metric']}, {f['segment_a']} {m[f['segment_a']]} vs "
        f"{f['segment_b']} {m[f['segment_b']]}."
    )


def _h_churn(f: Facts) -> str:
    top = f["segments"][0]
    return (
        f"{top['segment']} has the highest churn risk: mean churn probability "
        f"{top['mean_churn_probability']}; {top['high_risk_customers']:,} of its "
        f"{top['customers']:,} customers are at high risk."
    )


def _h_top(f: Facts) -> str | None:
    if not f["customers"]:
        return None
    c = f["customers"][0]
    listed = f"Top {f['customers_listed']}"
    if f.get("customers_asked"):  # over the cap: the answer must not pass 100 off as 200
        listed += f" (of the {f['customers_asked']} asked)"
    who = f"{c['customer_id']} ({c['segment']})" if c.get("segment") else str(c["customer_id"])
    line = f"{listed} customers by {f['target']} probability; the highest is {who} at "
    line += str(c["probability"])
    if f.get("left_out"):
        line += f" ({f['left_out']} are left out)"
    return line + "."


def _bought(f: Facts) -> list[dict[str, Any]]:
    """The customer's largest categories by spend (or products, where the orders have no
    category), each with a ``name``."""
    rows = f.get("top_categories") or f.get("top_products") or []
    return [{**r, "name": r.get("category", r.get("product"))} for r in rows]


def _h_customer(f: Facts) -> str:
    top = (_bought(f) or [None])[0]
    buys = ""
    if top is not None:  # what they buy most: the profile's first question after "who"
        buys = f"buys mostly {top['name']}"
        if top.get("share_of_spend"):
            buys += f" ({pct(top['share_of_spend'])} of spend)"
    if f.get("segment"):
        line = f"{f['customer_id']} is in {f['segment']}" + (f" and {buys}" if buys else "")
        if "churn_probability" in f:
            line += f"; churn probability {f['churn_probability']}"
    else:
        line = f"Customer {f['customer_id']}"
        said = [buys] if buys else []
        said += [f"{c} = {v}" for c, v in (f.get("known_outcome") or {}).items()]
        scores = [k for k in f if k.endswith("_probability")]
        if "churn_probability" in f:
            said.append(f"churn probability {f['churn_probability']}")
        elif scores:  # a customers table's label model: its score is the profile's figure
            said.append(f"{scores[0].removesuffix('_probability')} probability {f[scores[0]]}")
        if said:
            line += ": " + "; ".join(said)
    if "churn" in (f.get("scores_not_built") or {}):  # not a churn answer by omission
        line += "; this build has no churn score"
    if top is None and f.get("what_they_buy"):  # no product or category: said, not skipped
        line += "; what they buy is " + f["what_they_buy"].replace(": ", " (", 1) + ")"
    return line + "."


def _customer_line(f: Facts) -> str:
    """ "C42 is in Loyal regulars." / "Customer 6543:" where the build has no segments."""
    if f.get("segment"):
        return f"{f['customer_id']} is in {f['segment']}."
    return f"Customer {f['customer_id']}:"


def _h_clv(f: Facts) -> str | None:
    if not f["segments"]:
        return None
    top = f["segments"][0]
    return (
        f"{top['segment']} is worth the most: {top['total_clv']:,} of {f['total_clv']:,} "
        f"expected over the next 12 months ({pct(top['share_of_clv'])})."
    )


def _h_basket(f: Facts) -> str | None:
    parts = []
    if f.get("rules"):
        r = f["rules"][0]
        parts.append(
            f"Strongest rule: {r['rule']} (confidence {pct(r['confidence'])}, lift {r['lift']})."
        )
    elif f.get("note"):
        parts.append(f"{f['note'][0].upper()}{f['note'][1:]}.")
    if f.get("next_best_categories"):
        best = f["next_best_categories"][0]
        parts.append(
            f"Next best for {f['segment']}: {best['category']} ({pct(best['share'])} of them)."
        )
    return " ".join(parts) or None


def _h_reviews(f: Facts) -> str:
    return f"{f['quotes_found']} matching reviews for '{f['query']}' (quotes with review ids)."


def _h_themes(f: Facts) -> str | None:
    if not f.get("themes"):
        return None
    big, neg = f["largest_theme"], f["most_negative_theme"]
    scope = dict(f.get("filters") or {})
    sentiment, segment = scope.pop("sentiment", None), scope.pop("segment", None)
    which = f"{sentiment} reviews" if sentiment else "reviews"
    if segment:
        which += f" by {segment}"
    if scope:  # other filters, as they were applied
        which += " (" + ", ".join(f"{k}={v}" for k, v in scope.items()) + ")"
    return (
        f"{f['reviews']:,} {which} in {f['k']} themes. Largest: '{big['label']}' "
        f"({pct(big['share'])} of reviews mention it). Most negative: '{neg['label']}' "
        f"({pct(neg['share_negative'])} "
        + ("of its sentences negative)." if f.get("units") else "negative).")
    )


def _h_theme_compare(f: Facts) -> str | None:
    d = f.get("largest_difference")
    if not d:
        return None
    verdict = "significant" if d.get("significant") else "not significant"
    return (
        f"Largest difference: '{d['label']}', {pct(d['share_a'])} of {f['segment_a']} reviews "
        f"vs {pct(d['share_b'])} of {f['segment_b']} reviews ({verdict})."
    )


# --- template answers: the no-LLM provider's answer from the facts alone -------------------


def _a_overview(f: Facts) -> str:
    line = _h_overview(f)
    if f.get("not_built"):
        reasons = sorted(set(f["not_built"].values()))
        line += f" Not built: {', '.join(f['not_built'])} ({'; '.join(reasons)})."
    return line


def _a_segments(f: Facts) -> str:
    lines = [
        f"{f['segments_count']} segments; {f['top_revenue_segment']} brings the most "
        f"revenue and {f['largest_segment']} is the largest."
    ]
    lines += [
        f"- {s['name']} ({s['id']}): {s['customers']:,} customers, "
        f"{pct(s['share_revenue'])} of revenue"
        for s in f["segments"]
    ]
    return "\n".join(lines)


def _a_profile(f: Facts) -> str:
    b = f.get("behaviour", {})
    line = (
        f"{f['name']}: {f['customers']:,} customers ({pct(f['share_customers'])}), "
        f"{pct(f['share_revenue'])} of revenue."
    )
    if "recency_days" in b:
        line += f" Median {b['recency_days']['median']} days since the last order"
        if "frequency" in b:
            line += f", {b['frequency']['median']} orders"
        line += "."
    if f.get("propensity", {}).get("mean_churn_probability") is not None:
        line += f" Mean churn probability {f['propensity']['mean_churn_probability']}."
    if f.get("top_categories"):
        line += " Top categories: " + ", ".join(c[0] for c in f["top_categories"]) + "."
    return line


def _a_compare(f: Facts) -> str:
    lines = [f"Biggest difference: {f['biggest_difference']}."]
    for row in f["metrics"][:4]:
        lines.append(
            f"- {row['metric']}: {f['segment_a']} {row[f['segment_a']]} vs "
            f"{f['segment_b']} {row[f['segment_b']]}"
        )
    return "\n".join(lines)


def _a_churn(f: Facts) -> str:
    top = f["segments"][0]
    lines = [
        f"{f['highest_churn_segment']} has the highest churn risk: mean churn probability "
        f"{top['mean_churn_probability']} and {top['high_risk_customers']:,} of "
        f"{top['customers']:,} customers at high risk ({pct(top['share_high_risk'])})."
    ]
    lines += [f"- {s['segment']}: {s['mean_churn_probability']}" for s in f["segments"][1:4]]
    lines.append(f"Model reliability: {f['model_reliability']} (ROC-AUC {f['model_roc_auc']}).")
    if f.get("model_targeting"):
        lines.append(f"Note: {f['model_targeting']}.")
    return "\n".join(lines)


def _a_top(f: Facts) -> str:
    lines = [f"Top {f['customers_listed']} customers by {f['target']} probability:"]
    lines += [
        f"- {c['customer_id']}"
        + (f" ({c['segment']})" if c.get("segment") else "")
        + f": {c['probability']}"
        + (f" — {c['reasons'][0]}" if c["reasons"] else "")
        for c in f["customers"]
    ]
    if f.get("customers_asked"):
        lines.append(f"Note: {f['note']}.")
    return "\n".join(lines)


def _a_customer(f: Facts) -> str:
    line = _customer_line(f)
    if "frequency" in f and "monetary_total" in f:  # what a lookup is first asked for
        orders = int(f["frequency"])
        spent = amount(f["monetary_total"])
        line += f" {orders:,} order{'s' if orders != 1 else ''}, {spent} spent."
    if "churn_probability" in f:
        line += f" Churn probability {f['churn_probability']}"
        if f.get("churn_reasons"):
            line += f" ({f['churn_reasons'][0]})"
        line += "."
    for target, why in (f.get("scores_not_built") or {}).items():
        line += f" No {target} score: {why}."
    if "clv_12m" in f:
        line += f" Expected value over the next year: {amount(f['clv_12m'])}."
    if _bought(f):  # "what do they usually buy?"
        line += " Buys mostly: " + ", ".join(
            c["name"]
            + (f" ({pct(c['share_of_spend'])} of spend)" if c.get("share_of_spend") else "")
            for c in _bought(f)
        )
        line += "."
    elif f.get("what_they_buy"):
        line += f" What they buy: {f['what_they_buy']}."
    if f.get("next_best_category"):  # "what should they buy next?" asks for this one
        line += f" Next best category: {f['next_best_category']}"
        if f.get("next_best_reason"):
            line += f" ({f['next_best_reason']})"
        line += "."
    for column, value in (f.get("known_outcome") or {}).items():  # "already got it?"
        line += f" {column} = {value} (as the customers table has it)."
    for key in f:  # the other scores, and label models ("y probability 0.31")
        label = key.removesuffix("_probability")
        if key.endswith("_probability") and label != "churn":
            line += f" {label} probability {f[key]}"
            if f.get(f"{label}_decile"):
                line += f" (decile {f[f'{label}_decile']})"
            if f.get(f"{label}_reasons"):
                line += f": {f[f'{label}_reasons'][0]}"
            line += "."
    # the customer's own descriptive columns ("age group 30-40 years"); without orders the
    # numbers are the customer's record too ("Balance 95,925; Bonus_miles 7,337")
    numbers = f.get("rfm") is None and not _bought(f)
    own = {c: v for c, v in (f.get("attributes") or {}).items()
           if c not in (f.get("known_outcome") or {}) and not isinstance(v, bool)}  # fmt: skip
    said = [f"{c} {v}" for c, v in own.items() if isinstance(v, str)]
    if numbers:  # the values first, then the yes/no columns that are yes
        said += [
            f"{c} {f'{v:,}' if isinstance(v, int) else f'{v:,.2f}'}"
            for c, v in own.items()
            if isinstance(v, int | float) and v not in (0, 1)
        ]
        said += [f"{c} 1" for c, v in own.items() if isinstance(v, int | float) and v == 1]
    if said:
        line += " " + "; ".join(said[:12]) + "."
    if line.endswith(":"):
        line += " no segment, scores or orders in the current build."
    return line


def _a_model(f: Facts) -> str:
    return (
        f"The {f['target']} model is {f['reliability']}: ROC-AUC {f['roc_auc']}; the top "
        f"10% of scores hold {pct(f['top_10pct_capture'])} of positives (lift "
        f"{f['top_decile_lift']}x; base rate {pct(f['base_rate'])}). Top drivers: "
        f"{', '.join(f['top_drivers'][:3])}."
        + (f" Note: {f['targeting']}." if f.get("targeting") else "")
        + _tested_brief(f)
    )


def _tested_brief(f: Facts) -> str:
    """One short sentence of :func:`how_tested` for the templated answer."""
    window = f.get("evaluated_on")
    if isinstance(window, list) and len(window) == 2:
        return (
            f" Tested out of time on {window[0]} to {window[1]}, a window no training row saw "
            "(features use only earlier orders)."
        )
    return " Tested by cross-validation on the customers table's own rows." if window else ""


def _a_clv(f: Facts) -> str:
    top = f["segments"][0]
    text = (
        f"Expected customer value over the next year is {amount(f['total_clv'])} in total; "
        f"{f['highest_value_segment']} is worth most ({amount(top['total_clv'])}, "
        f"{pct(top['share_of_clv'])} of the total)."
    )
    # per customer, the highest and lowest segments: "high vs low CLV segments" in two lines
    each = [s for s in f["segments"] if s.get("mean_clv") is not None]
    if len(each) >= 2:
        high = max(each, key=lambda s: s["mean_clv"])
        low = min(each, key=lambda s: s["mean_clv"])
        for word, s in (("Highest", high), ("Lowest", low)):
            alive = s.get("mean_p_alive")
            text += (
                f"\n- {word} per customer: {s['segment']}, {amount(s['mean_clv'])} each over "
                f"{s['customers']:,} customers"
                + (f" (mean P(alive) {alive})" if alive is not None else "")
            )
    return text


def _a_basket(f: Facts) -> str:
    lines = []
    if f.get("rules"):
        r = f["rules"][0]
        lines.append(
            f"Strongest rule: {r['rule']} (confidence {pct(r['confidence'])}, lift {r['lift']})."
        )
    if f.get("next_best_categories"):
        lines.append(
            f"Next best for {f['segment']}: "
            + ", ".join(c["category"] for c in f["next_best_categories"])
            + "."
        )
    if f.get("note"):  # why there is no rule, or how the question was read
        lines.append(f"Note: {f['note']}.")
    return "\n".join(lines) or "No basket rules for that."


def _a_reviews(f: Facts) -> str:
    if not f["quotes"]:
        return "No reviews match that."
    lines = [f"{f['quotes_found']} matching reviews, for example:"]
    lines += [f'- "{q["text"]}" [{q["review_id"]}]' for q in f["quotes"]]
    return "\n".join(lines)


def _a_themes(f: Facts) -> str:
    themes = f.get("themes", [])
    if not themes:
        return "No review themes found."
    lines = [f"Main themes in {f.get('reviews', 'the')} reviews:"]
    lines += [f"- {t['label']}: {pct(t['share'])}" for t in themes[:5]]
    return "\n".join(lines)


def _a_theme_compare(f: Facts) -> str:
    top = f.get("largest_difference") or {}
    if not top:
        return "No theme differs between the two segments."
    return (
        f"The largest difference is {top.get('label')}: {pct(top['share_a'])} vs "
        f"{pct(top['share_b'])} (p = {top.get('p_value')})."
    )


def _a_export(f: Facts) -> str:
    if f.get("exported"):
        return f"Saved {f['customers']:,} customers to {f['path']}."
    return f"Nothing exported: {f['reason']}."


def _targets(ctx: ToolContext) -> list[str]:
    """The prediction targets the current build has models for (churn, purchase, response,
    a category's name, a label column's name)."""
    from insight_agent.analytics.artifacts import current_build

    models = current_build(ctx.ws) / "models"
    names = []
    for path in sorted(models.glob("*.json")):
        names.append(path.stem.split("__", 1)[-1])
    return names


def _with_targets(base: type[BaseModel]) -> Any:
    """``base`` with ``target`` limited to this workspace's targets (a model cannot ask for a
    'revenue' model that does not exist)."""
    from pydantic import create_model

    def make(ctx: ToolContext) -> type[BaseModel]:
        targets = _targets(ctx)
        if not targets:
            return base
        field = base.model_fields["target"]
        default = field.default if field.default in targets else targets[0]
        kind = Literal[tuple(targets)]  # type: ignore[valid-type]
        return create_model(
            base.__name__,
            __base__=base,
            target=(kind, Field(default, description=field.description)),  # type: ignore[valid-type]
        )

    return make


# --- registration ---------------------------------------------------------------------------

for _spec in (
    ToolSpec(
        "dataset_overview",
        "Overview of the data and models: how many customers, orders and reviews, the date the "
        "data runs to, total spend, the number of segments and each model's ROC-AUC. Use for "
        "'what data do we have' or as a first step when unsure.",
        NoArgs,
        _dataset_overview,
        ("overview", "data", "dataset", "how many customers", "orders", "summary", "what do we"),
        headline=_h_overview,
        answer=_a_overview,
        # the headline states the row counts, the cutoff date and the number of segments
        brief=(
            "total_spend",
            "models",
        ),
        summary=(
            "Counts of customers, orders and reviews, the data's end date, total spend and each "
            "model's ROC-AUC. Use for 'what data do we have', 'how many customers'."
        ),
    ),
    ToolSpec(
        "list_segments",
        "All customer segments with size, share of customers and revenue, median recency, "
        "orders and spend, and the rule that describes each. Use for 'what segments do we "
        "have', 'which segment is biggest / brings most revenue'.",
        NoArgs,
        _list_segments,
        ("segments", "segment sizes", "groups", "biggest segment", "revenue share", "clusters"),
        headline=_h_segments,
        answer=_a_segments,
        # every segment's name matters more than its medians ("what segments do we have?")
        brief=(
            "segments.name",
            "segments.customers",
            "segments.share_revenue",
        ),
        summary=(
            "All segments with size and revenue share. Use for 'what segments do we have', 'which"
            " segment is biggest / brings most revenue'."
        ),
        needs=("segments",),
    ),
    ToolSpec(
        "segment_profile",
        "Everything about ONE segment: size, value, behaviour vs the average customer, who they "
        "are (age, gender, region, channel), top categories, churn/purchase probabilities, CLV "
        "and next-best categories. Use for 'tell me about <segment>' or 'who are <segment>'.",
        SegmentArgs,
        _segment_profile,
        ("profile", "tell me about", "who are", "describe", "persona"),
        headline=_h_profile,
        answer=_a_profile,
        brief=(
            "name",
            "customers",
            "share_customers",
            "share_revenue",
            "top_categories",
            "who.median_age",
            "who.gender_mix",
            "propensity.mean_churn_probability",
            "clv_12m.mean",
        ),
        summary=(
            "One segment in depth: who they are, value, top categories, churn, CLV. Use for 'tell"
            " me about / who are / describe <segment>'."
        ),
        needs_segment=True,
        needs=("segments",),
    ),
    ToolSpec(
        "compare_segments",
        "Two segments side by side (spend, recency, orders, churn and purchase probability, "
        "CLV), biggest difference first. Use for 'how do X and Y differ', 'X vs Y'.",
        CompareArgs,
        _compare_segments,
        ("compare", "versus", "vs", "differ", "difference between"),
        headline=_h_compare,
        answer=_a_compare,
        brief=(
            "segment_a",
            "segment_b",
            "biggest_difference",
            "metrics",
            "top_categories",
        ),
        summary=(
            "Two segments side by side, biggest difference first. Use for 'X vs Y', 'how do X and"
            " Y differ'."
        ),
        needs_segment=True,
        needs=("segments",),
    ),
    ToolSpec(
        "churn_risk_by_segment",
        "Churn risk per segment, riskiest first: mean churn probability, customers at high "
        "risk, CLV at risk, and the model's reliability. Use for 'which segment is most likely "
        "to churn', 'churn risk', 'who are we losing'.",
        NoArgs,
        _churn_by_segment,
        ("churn", "at risk", "losing", "lapse", "attrition", "leave", "retention risk"),
        headline=_h_churn,
        answer=_a_churn,
        brief=(
            "lowest_churn_segment",
            "high_risk_customers_total",
            "model_reliability",
            "segments.segment",
            "segments.customers",
            "segments.mean_churn_probability",
            "segments.high_risk_customers",
        ),
        summary=(
            "Churn risk per segment, riskiest first, with customers at high risk. Use for 'which "
            "segment is most likely to churn', 'churn risk', 'who are we losing'."
        ),
        needs=("segments", "churn"),
    ),
    ToolSpec(
        "top_customers",
        "Preview the customers most likely to churn / purchase / respond (or buy a category), "
        "optionally within one segment, with probability and reasons. Use for 'who is most "
        "likely to ...', 'top customers for ...', 'audience for a campaign'.",
        TopCustomersArgs,
        _top_customers,
        ("top customers", "most likely", "audience", "target list", "who should we", "preview"),
        headline=_h_top,
        answer=_a_top,
        brief=(
            "target",
            "segment",
            "left_out",
            "customers.customer_id",
            "customers.segment",
            "customers.probability",
            "customers.clv_12m",
        ),
        summary=(
            "The customers most likely to churn, purchase or respond (target: 'churn', "
            "'purchase', 'response' or a product category), optionally in one segment. Use for "
            "'who is most likely to ...', 'audience for a campaign'."
        ),
        count_args=("n",),
        needs=("models",),
    ),
    ToolSpec(
        "customer_profile",
        "One customer's segment, recency/frequency/spend, the categories they buy most, "
        "churn/purchase/response probability with reasons, CLV and next-best category. Use "
        "when a customer id is mentioned.",
        CustomerArgs,
        _customer_profile,
        ("customer", "this customer", "score for", "profile of customer"),
        headline=_h_customer,
        answer=_a_customer,
        brief=(
            "customer_id",
            "segment",
            "recency_days",
            "frequency",
            "monetary_total",
            "churn_probability",
            "churn_reasons",
            "purchase_probability",
            "response_probability",
            "clv_12m",
            "next_best_category",
            "next_best_reason",
            "top_categories",
            "top_products",
            "what_they_buy",
            "scores_not_built",
        ),
        summary=(
            "One customer's segment and scores with reasons. Use when a customer id is mentioned."
        ),
        by_cue_only=True,
    ),
    ToolSpec(
        "model_quality",
        "How reliable a prediction model is: ROC-AUC, lift and capture of the top 10%, base "
        "rate, top drivers. Use for 'how accurate', 'can we trust', 'what drives churn'.",
        TargetArgs,
        _model_quality,
        ("accurate", "accuracy", "reliable", "trust", "auc", "lift", "drivers", "model"),
        answer=_a_model,
        brief=(
            "target",
            "meaning",
            "roc_auc",
            "reliability",
            "targeting",
            "top_decile_lift",
            "base_rate",
            "top_drivers",
        ),
        summary=(
            "How reliable the target's model is: ROC-AUC, lift, top drivers. Use for 'how "
            "accurate', 'can we trust', 'what drives churn'."
        ),
        needs=("models",),
    ),
    ToolSpec(
        "clv_summary",
        "Expected customer lifetime value over the next 12 months, in total and by segment "
        "(largest first). Use for 'customer value', 'CLV', 'which segment is worth most'.",
        NoArgs,
        _clv_summary,
        ("clv", "lifetime value", "worth", "value", "future revenue"),
        headline=_h_clv,
        answer=_a_clv,
        brief=(
            "total_clv",
            "mean_clv",
            "segments.segment",
            "segments.customers",
            "segments.total_clv",
            "segments.share_of_clv",
            "segments.mean_clv",
        ),
        summary=(
            "Expected customer lifetime value over the next 12 months, total and by segment. Use "
            "for 'CLV', 'customer value', 'which segment is worth most'."
        ),
        needs=("clv",),
    ),
    ToolSpec(
        "basket_rules",
        "Market-basket rules (which categories are bought together, with confidence and lift) "
        "and, for a segment, the next-best categories to recommend. Use for cross-sell, "
        "'bought together', 'what to recommend'.",
        BasketArgs,
        _basket_rules,
        ("bought together", "cross-sell", "cross sell", "basket", "recommend", "next best"),
        headline=_h_basket,
        answer=_a_basket,
        brief=(
            "segment",
            "next_best_categories",
            "rules.rule",
            "rules.confidence",
            "rules.lift",
        ),
        summary=(
            "Categories bought together (confidence, lift); with a segment, its next-best "
            "categories. Use for cross-sell, 'what to recommend'."
        ),
        filter_args=("category",),
        needs=("basket",),
    ),
    ToolSpec(
        "search_reviews",
        "Search customer reviews by meaning, with optional filters (segment, sentiment, rating, "
        "dates, category). Returns verbatim quotes with review ids. Use for 'what do customers "
        "say about ...', 'complaints about ...', 'quotes on ...'.",
        ReviewSearchArgs,
        _search_reviews,
        ("reviews", "say about", "complain", "complaints", "quotes", "feedback", "mention"),
        shows_quotes=True,
        summarises_quotes=True,
        headline=_h_reviews,
        answer=_a_reviews,
        brief=(
            "query",
            "quotes_found",
            "note",
            "quotes.review_id",
            "quotes.rating",
            "quotes.segment",
            "quotes.sentiment",
            "quotes.text",
        ),
        summary=(
            "Review quotes about the query, optionally filtered (dates YYYY-MM-DD). Use for 'what"
            " do customers say about ...', 'complaints about ...'."
        ),
        filter_args=("sentiment", "min_rating", "max_rating", "since", "until", "category"),
        count_args=("k",),
        needs=("reviews",),
    ),
    ToolSpec(
        "review_themes",
        "What customer reviews talk about (all, one segment's or one sentiment's): aspect "
        "themes over sentences (sizing, fabric, quality, price, delivery...) with the share of "
        "reviews mentioning each, share of negative sentences, average rating and example "
        "quotes. Use for 'what are the main themes', 'what do <segment> complain about most', "
        "'pain points'.",
        ThemeArgs,
        _review_themes,
        ("themes", "topics", "pain points", "main issues", "common complaints", "voice"),
        headline=_h_themes,
        answer=_a_themes,
        brief=(
            "reviews",
            "themes.label",
            "themes.share",
            "themes.avg_rating",
            "themes.share_negative",
        ),
        summary=(
            "The main themes in reviews with their shares. Use for 'main themes', 'what do "
            "<segment> complain about most', 'pain points'."
        ),
        filter_args=("sentiment", "category"),
        needs=("reviews",),
    ),
    ToolSpec(
        "compare_review_themes",
        "Compare review theme shares between two segments with a significance test. Use for "
        "'do X complain about different things than Y'.",
        CompareArgs,
        _compare_review_themes,
        ("themes differ", "compare reviews", "complain differently"),
        headline=_h_theme_compare,
        answer=_a_theme_compare,
        brief=(
            "segment_a",
            "segment_b",
            "themes.label",
            "themes.share_a",
            "themes.share_b",
            "themes.significant",
        ),
        summary=(
            "Review themes of two segments compared. Use for 'do X complain about different "
            "things than Y'."
        ),
        needs_segment=True,
        by_cue_only=True,
        needs=("reviews", "segments"),
    ),
    ToolSpec(
        "export_audience",
        "Save a customer list (highest probability first) as CSV in the workspace's exports "
        "folder. Writes a file, so ONLY use it when the user explicitly asks to export or save "
        "a list; the user is asked to confirm.",
        ExportArgs,
        _export_audience,
        ("export", "save list", "download", "csv"),
        writes=True,
        answer=_a_export,
        summary=("Save a customer list as CSV. ONLY when the user asks to export or save a list."),
        needs=("models",),
    ),
):
    if "target" in _spec.args.model_fields:
        _spec = dataclasses.replace(_spec, args_for=_with_targets(_spec.args))
    register(_spec)
