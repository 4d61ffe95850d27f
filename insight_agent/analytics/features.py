"""Customer features at a cutoff date: one function for training (cutoff in the past) and for
scoring (cutoff = now), so a model never sees data from after its cutoff.

Everything is computed from events strictly before the cutoff (``< cutoff``); a customer who had
not yet appeared by then is left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Shared with the engine's implementation (engine/features.py), which must match this one.
from insight_agent.engine.features import MAX_CATEGORIES, MAX_LEVELS, WINDOWS, FeatureFrame
from insight_agent.engine.features import slug as _slug

# Behavioural columns that segmentation clusters on (all computed below).
SEGMENT_FEATURES = (
    "recency_days",
    "frequency",
    "monetary_total",
    "avg_order_value",
    "tenure_days",
    "spend_90d",
    "mean_gap_days",
)


def order_table(orders: pd.DataFrame) -> pd.DataFrame:
    """One row per order: customer_id, order_key, order_date, amount (lines summed).

    Orders are identified by order_id when the export has one, else by customer and day.
    """
    if "order_id" in orders and orders["order_id"].notna().any():
        key = orders["order_id"].fillna(orders["order_date"].dt.strftime("day:%Y-%m-%d"))
    else:
        key = orders["order_date"].dt.normalize()
    grouped = (
        pd.DataFrame(
            {
                "customer_id": orders["customer_id"].to_numpy(),
                "order_key": key.to_numpy(),
                "order_date": orders["order_date"].to_numpy(),
                "amount": orders["amount"].to_numpy(),
            }
        )
        .groupby(["customer_id", "order_key"], sort=False, observed=True)
        .agg(order_date=("order_date", "min"), amount=("amount", "sum"))
        .reset_index()
    )
    return grouped.sort_values(["customer_id", "order_date"], kind="stable").reset_index(drop=True)


def scoring_cutoff(orders: pd.DataFrame) -> pd.Timestamp:
    """T for scoring: the day after the last order (so the last day's orders count)."""
    return orders["order_date"].max().normalize() + pd.Timedelta(days=1)


def top_categories(orders: pd.DataFrame, limit: int = MAX_CATEGORIES) -> list[str]:
    """Categories by total spend, largest first (at most ``limit``)."""
    if "category" not in orders or orders["category"].isna().all():
        return []
    spend = orders.groupby("category")["amount"].sum().sort_values(ascending=False)
    return [str(c) for c in spend.index[:limit]]


def category_spend(orders: pd.DataFrame) -> pd.Series | None:
    """Spend per customer and category: a Series indexed by (customer_id, category), sorted,
    with only the pairs that have categorised order lines; None without categories.

    Long, not customer x category: a category column holding product names would otherwise
    make a column per product for every customer."""
    if "category" not in orders or orders["category"].isna().all():
        return None
    lines = orders.dropna(subset=["category"])
    spend = lines.groupby(["customer_id", "category"], sort=True)["amount"].sum()
    return spend.astype("float64").rename("spend")


def _days(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds() / 86400.0


def customer_features(
    customers: pd.DataFrame,
    orders: pd.DataFrame,
    cutoff: pd.Timestamp,
    *,
    reviews: pd.DataFrame | None = None,
    campaigns: pd.DataFrame | None = None,
    returns: pd.DataFrame | None = None,
    categories: list[str] | None = None,
    demographics: bool = True,
    orders_table: pd.DataFrame | None = None,
) -> FeatureFrame:
    """Features of every customer known before ``cutoff`` (see module docstring).

    ``categories`` fixes the category-share columns (pass the training frame's list when
    scoring, so columns line up); ``orders_table`` may pass a precomputed :func:`order_table`.
    """
    cutoff = pd.Timestamp(cutoff)
    table = order_table(orders) if orders_table is None else orders_table
    past = table[table["order_date"] < cutoff]
    g = past.groupby("customer_id", sort=True)
    first = g["order_date"].min()
    last = g["order_date"].max()
    feats = pd.DataFrame(
        {
            "frequency": g.size().astype(float),
            "monetary_total": g["amount"].sum(),
            "recency_days": _days(cutoff - last),
            "first_order_days": _days(cutoff - first),
        }
    )
    feats["avg_order_value"] = feats["monetary_total"] / feats["frequency"]

    # Tenure counts from signup when known, else from the first order.
    signup = None
    if "signup_date" in customers:
        signup = customers.set_index("customer_id")["signup_date"]
        signup = signup[signup < cutoff]
    index = feats.index
    if signup is not None:
        index = index.union(signup.index)
    feats = feats.reindex(index)
    start = feats["first_order_days"]
    if signup is not None:
        start = pd.concat([start, _days(cutoff - signup).reindex(index)], axis=1).max(axis=1)
    feats["tenure_days"] = start
    feats["frequency"] = feats["frequency"].fillna(0.0)
    feats["monetary_total"] = feats["monetary_total"].fillna(0.0)
    feats["avg_order_value"] = feats["avg_order_value"].fillna(0.0)
    # Never bought: recency is the whole tenure (as if last seen at signup).
    feats["recency_days"] = feats["recency_days"].fillna(feats["tenure_days"])
    feats = feats.drop(columns="first_order_days")

    for w in WINDOWS:
        recent = past[past["order_date"] >= cutoff - pd.Timedelta(days=w)]
        rg = recent.groupby("customer_id")
        feats[f"orders_{w}d"] = rg.size().reindex(feats.index, fill_value=0).astype(float)
        feats[f"spend_{w}d"] = rg["amount"].sum().reindex(feats.index, fill_value=0.0)
    prev = past[
        (past["order_date"] >= cutoff - pd.Timedelta(days=180))
        & (past["order_date"] < cutoff - pd.Timedelta(days=90))
    ]
    spend_prev = prev.groupby("customer_id")["amount"].sum().reindex(feats.index, fill_value=0.0)
    # In [-1, 1]: +1 all recent spend, -1 spend stopped, 0 steady or none.
    feats["spend_trend"] = (feats["spend_90d"] - spend_prev) / (
        feats["spend_90d"] + spend_prev
    ).replace(0.0, np.nan)
    feats["spend_trend"] = feats["spend_trend"].fillna(0.0)

    _gap_features(past, feats)
    cats = _category_features(orders, cutoff, feats, categories)
    if returns is not None and len(returns):
        r = returns[returns["order_date"] < cutoff]
        rg = r.groupby("customer_id")
        feats["returns"] = rg.size().reindex(feats.index, fill_value=0).astype(float)
        returned = (-rg["amount"].sum()).reindex(feats.index, fill_value=0.0)
        feats["return_share"] = (
            (returned / feats["monetary_total"].replace(0.0, np.nan)).fillna(0.0).clip(0, 1)
        )
    if reviews is not None and "customer_id" in reviews and len(reviews):
        _review_features(reviews, cutoff, feats)
    if campaigns is not None and len(campaigns):
        c = campaigns[campaigns["sent_date"] < cutoff]
        cg = c.groupby("customer_id")
        feats["campaigns_sent"] = cg.size().reindex(feats.index, fill_value=0).astype(float)
        feats["campaign_response_rate"] = (
            cg["responded"].mean().reindex(feats.index).astype(float).fillna(0.0)
        )
    if demographics:
        _demographic_features(customers, feats)
    feats.index.name = "customer_id"
    # float32: a build keeps features at five cutoffs; at 1M customers float64 doubled that.
    return FeatureFrame(feats.astype(np.float32), cutoff, cats)


def _gap_features(past: pd.DataFrame, feats: pd.DataFrame) -> None:
    """Inter-purchase gaps: mean, last, and how overdue the next order is."""
    gaps = _days(past["order_date"].diff())
    same = past["customer_id"].eq(past["customer_id"].shift())
    gaps = gaps.where(same.to_numpy())
    frame = pd.DataFrame({"customer_id": past["customer_id"].to_numpy(), "gap": gaps.to_numpy()})
    frame = frame.dropna()
    gg = frame.groupby("customer_id")["gap"]
    mean_gap = gg.mean().reindex(feats.index)
    last_gap = gg.last().reindex(feats.index)
    feats["mean_gap_days"] = mean_gap.fillna(feats["tenure_days"])
    feats["last_gap_days"] = last_gap.fillna(feats["tenure_days"])
    # > 1: later than usual for this customer (the churn signal a marketer would read).
    feats["overdue_ratio"] = (feats["recency_days"] / feats["mean_gap_days"].clip(lower=1.0)).clip(
        upper=50.0
    )
    feats["gap_trend"] = (feats["last_gap_days"] / feats["mean_gap_days"].clip(lower=1.0)).clip(
        upper=50.0
    )


def _category_features(
    orders: pd.DataFrame, cutoff: pd.Timestamp, feats: pd.DataFrame, categories: list[str] | None
) -> list[str]:
    if "category" not in orders:
        return []
    past = orders[(orders["order_date"] < cutoff) & orders["category"].notna()]
    if categories is None:
        categories = top_categories(past)
    if not categories:
        return []
    spend = past.pivot_table(
        index="customer_id", columns="category", values="amount", aggfunc="sum", fill_value=0.0
    )
    total = spend.sum(axis=1).replace(0.0, np.nan)
    for cat in categories:
        share = spend[cat] / total if cat in spend else pd.Series(0.0, index=spend.index)
        feats[f"share_{_slug(cat)}"] = share.reindex(feats.index).fillna(0.0)
    return categories


def _review_features(reviews: pd.DataFrame, cutoff: pd.Timestamp, feats: pd.DataFrame) -> None:
    r = reviews[reviews["customer_id"].notna()]
    if "date" in r:
        r = r[r["date"].isna() | (r["date"] < cutoff)]
    rg = r.groupby("customer_id")
    feats["review_count"] = rg.size().reindex(feats.index, fill_value=0).astype(float)
    if "rating" in r:
        feats["avg_rating"] = rg["rating"].mean().reindex(feats.index)
        feats["negative_review_share"] = (
            r.assign(neg=r["rating"] <= 2)
            .groupby("customer_id")["neg"]
            .mean()
            .reindex(feats.index)
            .astype(float)
            .fillna(0.0)
        )
        # No reviews: neutral rating, and a flag so the model can tell.
        feats["avg_rating"] = feats["avg_rating"].fillna(3.0)


def _demographic_features(customers: pd.DataFrame, feats: pd.DataFrame) -> None:
    attrs = customers.set_index("customer_id").reindex(feats.index)
    for col in ("age", "income"):
        if col in attrs and attrs[col].notna().any():
            values = attrs[col].astype(float)
            feats[f"{col}_missing"] = values.isna().astype(float)
            feats[col] = values.fillna(values.median())
    for col in ("gender", "region", "channel", "country"):
        if col not in attrs or attrs[col].isna().all():
            continue
        values = attrs[col].astype("string")
        levels = values.value_counts().index[:MAX_LEVELS]
        if len(levels) < 2 and len(attrs) > 1:  # constant in training; one scored row is not
            continue
        for level in levels:
            feats[f"{col}={level}"] = values.eq(level).fillna(False).astype(float)
