"""Market-basket inputs as engine queries: the order lines reduced to bit masks of the items
each basket and each customer holds, and spend per segment and category.

:func:`basket_counts` gives what
:func:`insight_agent.analytics.basket.association_rules`
and :func:`~insight_agent.analytics.basket.next_best_from_counts` need: a few thousand distinct
basket masks with their counts and one mask per customer, instead of every line in pandas (at
10M customers, ~100M rows). Baskets and items are those of
:mod:`insight_agent.analytics.basket`: one basket per (customer, order_id), or per (customer,
day) for lines without an order id; an item is the stripped, non-blank ``level`` value. The
tests hold the rules, offers and segment tables equal to the ones computed from the lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from insight_agent.analytics.basket import MAX_MASK_ITEMS, BasketCounts, Level

if TYPE_CHECKING:
    from insight_agent.engine.features import FeatureEngine


def _bits(lines: Any, keys: dict[str, Any], bit_or: bool) -> Any:
    """Per group of ``keys``, the OR of the lines' ``_bit`` as ``_mask``: several lines of an
    item set its bit once. DuckDB has ``bit_or``; on Spark (whose Ibis backend lacks it) the
    distinct bits are summed, the same number in one more pass (``bit_or`` False)."""
    if bit_or:
        return lines.group_by(**keys).aggregate(_mask=lines._bit.bit_or())
    per_item = lines.select(**keys, _bit=lines._bit).distinct()
    return per_item.group_by(list(keys)).aggregate(_mask=per_item._bit.sum())


def basket_counts(engine: FeatureEngine, level: Level = "category") -> BasketCounts | None:
    """The orders' baskets and customers as item masks; None when the orders have no
    ``level`` column, no item, or more than :data:`MAX_MASK_ITEMS` items (the analysis then
    reads the lines)."""
    import ibis
    import pyarrow as pa

    from insight_agent.engine.features import memtable, to_frame

    lines = engine.con.table("orders")
    if level not in lines.columns:
        return None
    raw = lines.select(_v=lines[level]).filter(lambda t: t._v.notnull()).distinct()
    values = [v for v in raw.to_pyarrow().column("_v").to_pylist() if v is not None]
    labels = [str(v).strip() for v in values]
    items = sorted({label for label in labels if label})
    if not items or len(items) > MAX_MASK_ITEMS:
        return None
    bit = {item: 1 << j for j, item in enumerate(items)}
    known = [(v, bit[label]) for v, label in zip(values, labels, strict=True) if label]
    mapping = memtable(
        {
            "_v": pa.array([str(v) for v, _ in known], pa.string()),
            "_bit": pa.array([b for _, b in known], pa.int64()),
        }
    )
    joined = lines.inner_join(mapping, lines[level] == mapping._v)
    day = joined.order_date.truncate("D")
    keys: dict[str, Any] = {"customer_id": joined.customer_id}
    if "order_id" in lines.columns:
        keys["order_id"] = joined.order_id
        # the day only matters for lines without an order id
        keys["_day"] = ibis.cases((joined.order_id.isnull(), day), else_=ibis.null("timestamp"))
    else:
        keys["_day"] = day
    bit_or = engine.con.name == "duckdb"
    masks = _bits(joined, keys, bit_or)
    hist = masks.group_by("_mask").aggregate(_n=lambda t: t.count()).order_by("_mask").to_pyarrow()
    profiles = to_frame(
        _bits(joined, {"customer_id": joined.customer_id}, bit_or).to_pyarrow(), "customer_id"
    )
    return BasketCounts(
        level=level,
        items=np.array(items, dtype=object),
        masks=hist.column("_mask").to_numpy().astype(np.uint64),
        baskets=hist.column("_n").to_numpy().astype(np.int64),
        customers=profiles.index,
        profiles=profiles["_mask"].to_numpy().astype(np.uint64),
    )


def segment_spend(
    engine: FeatureEngine, segments: pd.Series, *, net: bool = False
) -> pd.DataFrame | None:
    """:func:`insight_agent.analytics.basket.segment_spend` from the engine's lines: spend
    (negative amounts as 0) per segment and category; None without a category column.

    ``net`` sums the amounts as they are (refunds subtract), as the segment profiles' top
    categories do (:func:`insight_agent.analytics.segmentation.segment_customers`); without
    it negative amounts count as 0, as the basket's per-segment table does. Above
    :data:`~insight_agent.engine.features.SHARD_CUSTOMERS` customers the lines are joined to
    their segment a range of customer ids at a time (as the feature table is), then the
    ranges' sums added up."""
    import ibis
    import pyarrow as pa

    from insight_agent.engine.features import _keeper, memtable

    lines = engine.con.table("orders")
    if "category" not in lines.columns:
        return None
    seg = segments.dropna()
    seg = seg[~seg.index.duplicated()]
    codes, labels = pd.factorize(seg, sort=False)
    who = memtable({"customer_id": seg.index, "_seg": pa.array(codes.astype(np.int32), pa.int32())})
    found = lines.filter(lines.category.notnull())
    parts = []
    for lo, hi in engine._id_ranges():
        keep = _keeper(None, lo, hi)
        joined = keep(found).inner_join(keep(who), "customer_id")
        amount = joined.amount if net else ibis.greatest(joined.amount, 0.0)
        by = joined.group_by(["_seg", "category"]).aggregate(amount=amount.sum()).to_pyarrow()
        parts.append(by.to_pandas())
    by = pd.concat(parts, ignore_index=True)
    if len(parts) > 1:
        by = by.groupby(["_seg", "category"], as_index=False, sort=False)["amount"].sum()
    by = by.sort_values(["_seg", "category"], kind="stable", ignore_index=True)
    return pd.DataFrame(
        {
            "segment": np.asarray(labels, dtype=object)[by["_seg"].to_numpy()],
            "item": pd.array(by["category"].to_numpy(dtype=object), dtype=pd.StringDtype()),
            "amount": by["amount"].to_numpy().astype(np.float64),
        }
    )


__all__ = ["basket_counts", "segment_spend"]
