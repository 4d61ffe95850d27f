"""Market-basket analysis: what is bought together, and what to offer each customer next.

Baskets are one order (``order_id``) or, without one, everything a customer bought on one
calendar day. Frequent itemsets are counted level-wise (Apriori) on a sparse baskets x items
matrix: item counts are column sums, pairs come from one sparse product ``X.T @ X`` and larger
itemsets from the frequent itemsets one size down (same prefix, two extensions), counted with one
sparse product per prefix. Rules have one item on the right-hand side.

Everything here is deterministic: items are indexed in name order and every sort has a full
tie-break, so two runs on the same data give the same rules in the same order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse

from insight_agent.data.ids import factorize, positions
from insight_agent.errors import InsufficientData

Level = Literal["category", "product"]

#: Fewer baskets than this with two or more distinct items cannot support co-purchase rules.
MIN_MULTI_ITEM_BASKETS = 30

_POPULAR_REASON = "popular with all customers"
# Dense working arrays in next_best are cut into chunks of about this many cells.
_CHUNK_CELLS = 8_000_000
# Customer profiles are deduplicated through bit masks when items fit in this many 64-bit words.
_MAX_PROFILE_WORDS = 16

RULE_COLUMNS = [
    "antecedent",
    "consequent",
    "support",
    "confidence",
    "lift",
    "leverage",
    "conviction",
    "count",
    "antecedent_support",
    "consequent_support",
]


class Baskets(NamedTuple):
    """A baskets x items incidence matrix with its labels (unpacks as a 3-tuple)."""

    matrix: sparse.csr_array
    """Boolean CSR matrix: ``matrix[b, i]`` is True when basket ``b`` contains item ``i``."""
    items: pd.Index
    """Item labels (column order), sorted by name."""
    index: pd.MultiIndex
    """Basket labels (row order): (customer_id, basket), basket being the order_id or the day."""


@dataclass(frozen=True)
class RulesResult:
    """Association rules and the frequent itemsets they were built from."""

    rules: pd.DataFrame
    """One rule per row, sorted by lift then support (descending), then by names."""
    itemsets: pd.DataFrame
    """Frequent itemsets: ``items`` (tuple of str), ``support``, ``count``."""
    n_baskets: int
    """Baskets with at least one known item (the support denominator)."""
    n_multi_item_baskets: int
    """Baskets with two or more distinct items."""
    level: Level
    params: dict[str, Any] = field(default_factory=dict)
    n_rules_total: int = 0
    """Rules that passed the thresholds before ``max_rules`` was applied."""


@dataclass(frozen=True)
class BasketCounts:
    """Baskets and customers reduced to bit masks of their items (bit j: ``items[j]``), as the
    engine computes them from the order lines (:mod:`insight_agent.engine.basket`): what the
    rules and next-best items need, in memory that does not grow with the lines."""

    level: Level
    items: np.ndarray
    """Item labels (stripped, non-blank), sorted by name: at most :data:`MAX_MASK_ITEMS`."""
    masks: np.ndarray
    """uint64: each distinct set of items a basket holds (baskets without a known item are
    left out, as from the lines)."""
    baskets: np.ndarray
    """int64: how many baskets hold exactly ``masks[i]``."""
    customers: pd.Index
    """Customers with at least one known item."""
    profiles: np.ndarray
    """uint64: the items each of ``customers`` ever bought."""


#: Items a bit mask holds (an int64's bits short of the sign).
MAX_MASK_ITEMS = 62


def _mask_matrix(masks: np.ndarray, k: int) -> sparse.csr_array:
    """Boolean CSR rows of the bit ``masks`` over ``k`` items (bit j: column j)."""
    as_bytes = np.ascontiguousarray(masks, dtype="<u8").view(np.uint8).reshape(-1, 8)
    bits = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :k].astype(bool)
    return sparse.csr_array(bits.reshape(len(masks), k))


# ---------------------------------------------------------------------------------------------
# Baskets


def _check_level(orders: pd.DataFrame, level: str) -> None:
    if level not in ("category", "product"):
        raise ValueError(f"level must be 'category' or 'product', not {level!r}")
    if level not in orders.columns:
        raise InsufficientData(
            f"orders have no '{level}' column, so baskets cannot be analysed by {level}",
            hint=f"add a {level} column to the orders file"
            + (" or use level='category'" if level == "product" else " or use level='product'"),
        )


def _item_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes into sorted distinct labels; -1 for missing or blank values."""
    codes, uniques = factorize(values)
    labels = np.array([str(u).strip() for u in uniques], dtype=object)
    keep = labels != ""
    # Re-factorize the (few) stripped labels so "Tee" and "Tee " are one item, sorted by name.
    final = np.array(sorted(set(labels[keep].tolist())), dtype=object)
    remap = np.full(len(labels) + 1, -1, dtype=np.int64)
    remap[:-1][keep] = np.searchsorted(final, labels[keep])
    return remap[codes], final  # codes == -1 picks remap[-1] == -1


def _basket_keys(orders: pd.DataFrame) -> tuple[np.ndarray, int, tuple[Any, Any, Any]]:
    """Per order line, an int64 key identifying its basket, plus what is needed to label it.

    The key is (customer, order_id) when the line has an order_id, else (customer, day). Grouping
    by customer as well costs nothing when order ids are global, and keeps baskets apart in
    exports that number orders per customer (1, 2, 3... for everyone).
    """
    n = len(orders)
    cust_codes, cust_uniques = factorize(orders["customer_id"])
    # Validated orders always have a customer; should one be missing, it gets a code of its own.
    cust_uniques = np.append(np.asarray(cust_uniques, dtype=object), None)
    cust_codes = np.where(cust_codes >= 0, cust_codes, len(cust_uniques) - 1)
    second = np.full(n, -1, dtype=np.int64)
    order_uniques: Any = np.array([], dtype=object)
    if "order_id" in orders.columns:
        ocodes, order_uniques = factorize(orders["order_id"])
        second[:] = ocodes
    n_orders = len(order_uniques)
    no_order = second < 0
    day_uniques = np.array([], dtype=np.int64)
    if no_order.any():
        days = (
            orders["order_date"]
            .to_numpy(dtype="datetime64[ns]")[no_order]
            .astype("datetime64[D]")
            .view(np.int64)
        )
        dcodes, day_uniques = pd.factorize(days, sort=False)
        second[no_order] = n_orders + dcodes
    width = n_orders + len(day_uniques)
    keys = cust_codes.astype(np.int64) * width + second
    return keys, width, (cust_uniques, order_uniques, day_uniques)


def _build(
    orders: pd.DataFrame, level: str, *, with_index: bool
) -> tuple[sparse.csr_array, np.ndarray, pd.MultiIndex | None]:
    """Boolean baskets x items CSR matrix, item labels and (optionally) basket labels."""
    _check_level(orders, level)
    keys, width, label_parts = _basket_keys(orders)
    item_codes, items = _item_codes(orders[level])
    known = item_codes >= 0
    # Factorizing only the lines with a known item drops baskets that have no item at all.
    basket_codes, basket_keys = pd.factorize(keys[known], sort=False)
    cols = item_codes[known]
    n_b, n_i = len(basket_keys), len(items)
    coo = sparse.coo_array(
        (np.ones(len(cols), dtype=np.int32), (basket_codes.astype(np.int64), cols)),
        shape=(n_b, n_i),
    )
    matrix = coo.tocsr()
    matrix.sum_duplicates()
    matrix.data[:] = 1  # several lines of one item in one basket count once
    matrix = matrix.astype(bool)
    index = None
    if with_index:
        cust_uniques, order_uniques, day_uniques = label_parts
        basket_keys = np.asarray(basket_keys, dtype=np.int64)
        cust = np.asarray(cust_uniques, dtype=object)[basket_keys // width] if n_b else []
        second = basket_keys % width if width else basket_keys
        n_orders = len(order_uniques)
        labels = np.empty(n_b, dtype=object)
        is_order = second < n_orders
        labels[is_order] = np.asarray(order_uniques, dtype=object)[second[is_order]]
        if (~is_order).any():
            days = np.asarray(day_uniques, dtype=np.int64)[second[~is_order] - n_orders]
            labels[~is_order] = np.datetime_as_string(days.astype("datetime64[D]"), unit="D")
        index = pd.MultiIndex.from_arrays(
            [pd.Index(cust, dtype=object), pd.Index(labels, dtype=object)],
            names=["customer_id", "basket"],
        )
    return matrix, items, index


def baskets(orders: pd.DataFrame, level: Level = "category") -> Baskets:
    """Build the baskets x items matrix for ``orders``.

    One basket per order (``order_id``, within a customer) when the column is present, else per
    (customer_id, calendar day of order_date); lines without an order_id fall back to the day.
    Items are the distinct ``level`` values in a basket. Lines with a missing item are ignored
    (the basket keeps its other items); baskets with no known item at all are left out.

    Returns ``Baskets(matrix, items, index)``: a boolean CSR matrix, the item labels (sorted) and
    a (customer_id, basket) MultiIndex whose ``basket`` level is the order_id or the ISO date.
    """
    matrix, items, index = _build(orders, level, with_index=True)
    assert index is not None
    return Baskets(matrix, pd.Index(items, dtype=object, name=level), index)


# ---------------------------------------------------------------------------------------------
# Frequent itemsets and rules


def _min_count(min_support: float, n: int) -> int:
    """Smallest basket count whose support reaches ``min_support`` (robust to float rounding)."""
    return max(1, math.ceil(min_support * n - 1e-9))


def _weighted(x: sparse.csr_array, w: np.ndarray | None) -> sparse.csr_array:
    """``x`` with row i counted ``w[i]`` times (a row of :class:`BasketCounts` stands for
    that many baskets); ``x`` itself without weights."""
    return x if w is None else (sparse.diags_array(w, dtype=np.int64) @ x).tocsr()


def _pairs(
    x: sparse.csr_array, cols: np.ndarray, min_count: int, w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Frequent pairs among ``cols`` of ``x`` (int32 CSR, row i weighing ``w[i]`` baskets):
    (m x 2 global item ids, counts)."""
    sub = x[:, cols] if len(cols) < x.shape[1] else x
    co = (_weighted(sub, w).T @ sub).tocoo()
    keep = (co.row < co.col) & (co.data >= min_count)
    found = np.column_stack([cols[co.row[keep]], cols[co.col[keep]]]).astype(np.int64)
    counts = co.data[keep].astype(np.int64)
    order = np.lexsort([found[:, 1], found[:, 0]])  # _extend groups on sorted prefixes
    return found[order], counts[order]


def _extend(
    x: sparse.csr_array, prev: np.ndarray, min_count: int, w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Frequent itemsets one item larger than the lexsorted frequent itemsets ``prev`` (row i
    of ``x`` weighing ``w[i]`` baskets).

    Apriori join: two frequent sets sharing all but their last item give one candidate. For each
    shared prefix, the baskets containing the whole prefix are selected and every pair of its
    extensions is counted at once with a sparse product. Counting all pairs of extensions (not
    only candidates whose other subsets are frequent) gives the same frequent sets, because a
    set below the threshold is dropped by its count anyway.
    """
    size = prev.shape[1] + 1
    csc = x.tocsc()
    out_sets: list[np.ndarray] = []
    out_counts: list[np.ndarray] = []
    if len(prev) < 2:
        return np.empty((0, size), np.int64), np.empty(0, np.int64)
    prefixes = prev[:, :-1]
    change = np.any(prefixes[1:] != prefixes[:-1], axis=1)
    starts = np.flatnonzero(np.concatenate([[True], change]))
    ends = np.append(starts[1:], len(prev))
    for s, e in zip(starts, ends, strict=True):
        if e - s < 2:
            continue
        prefix = prev[s, :-1]
        ext = prev[s:e, -1]
        rows = None
        for item in prefix:
            col_rows = csc.indices[csc.indptr[item] : csc.indptr[item + 1]]
            rows = col_rows if rows is None else np.intersect1d(rows, col_rows, assume_unique=True)
        assert rows is not None
        if (len(rows) if w is None else int(w[rows].sum())) < min_count:
            continue
        sub = x[rows][:, ext]
        co = (_weighted(sub, None if w is None else w[rows]).T @ sub).tocoo()
        keep = (co.row < co.col) & (co.data >= min_count)
        if not keep.any():
            continue
        k = int(keep.sum())
        sets = np.empty((k, size), dtype=np.int64)
        sets[:, :-2] = prefix
        sets[:, -2] = ext[co.row[keep]]
        sets[:, -1] = ext[co.col[keep]]
        out_sets.append(sets)
        out_counts.append(co.data[keep].astype(np.int64))
    if not out_sets:
        return np.empty((0, size), np.int64), np.empty(0, np.int64)
    sets = np.concatenate(out_sets)
    counts = np.concatenate(out_counts)
    order = np.lexsort(sets.T[::-1])
    return sets[order], counts[order]


def _lookup(table: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Counts of the itemsets ``query`` (rows) in ``table`` (rows); all must be present."""
    if table.shape[1] == 1:
        full = np.zeros(int(table.max()) + 1 if len(table) else 1, dtype=np.int64)
        full[table[:, 0]] = counts
        return full[query[:, 0]]
    index = pd.MultiIndex.from_arrays(list(table.T))
    pos = index.get_indexer(pd.MultiIndex.from_arrays(list(query.T)))
    # Every subset of a frequent itemset is frequent, so a miss is a bug, not a data problem.
    assert (pos >= 0).all(), "antecedent missing from the frequent itemsets"
    return counts[pos]


def _frequent_itemsets(
    x: sparse.csr_array, min_count: int, max_len: int, w: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Level-wise frequent itemsets: element ``L-1`` holds (sets m x L, counts), lexsorted.
    Row i of ``x`` weighs ``w[i]`` baskets (one each without ``w``)."""
    if w is None:
        item_counts = np.asarray(x.sum(axis=0)).ravel().astype(np.int64)
    else:
        item_counts = np.asarray(x.T.astype(np.int64) @ w).ravel()
    frequent = np.flatnonzero(item_counts >= min_count)
    levels = [(frequent.reshape(-1, 1).astype(np.int64), item_counts[frequent])]
    if max_len < 2 or len(frequent) < 2:
        return levels
    multi = np.diff(x.indptr) >= 2  # only multi-item baskets hold pairs
    xi = x[multi].astype(np.int32)
    wi = None if w is None else w[multi]
    levels.append(_pairs(xi, frequent, min_count, wi))
    for size in range(3, max_len + 1):
        prev = levels[-1][0]
        if len(prev) < 2:
            break
        rows = np.diff(xi.indptr) >= size  # a basket with fewer items cannot hold the set
        sets, counts = _extend(xi[rows], prev, min_count, None if wi is None else wi[rows])
        if not len(sets):
            break
        levels.append((sets, counts))
    return levels


def _rules_arrays(levels: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """All candidate rules (antecedent -> one consequent) with their metrics, as arrays."""
    item_counts = np.zeros(int(levels[0][0].max()) + 1 if len(levels[0][0]) else 1, np.int64)
    item_counts[levels[0][0][:, 0]] = levels[0][1]
    max_len = len(levels)
    ante_parts: list[np.ndarray] = []
    cons, count, ante_count = [], [], []
    for size in range(2, max_len + 1):
        sets, counts = levels[size - 1]
        if not len(sets):
            continue
        table, table_counts = levels[size - 2]
        for j in range(size):
            antecedent = np.delete(sets, j, axis=1)
            # Pad to the widest antecedent with -1 so shorter tuples sort first, like tuples do.
            padded = np.full((len(sets), max_len - 1), -1, dtype=np.int64)
            padded[:, : size - 1] = antecedent
            ante_parts.append(padded)
            cons.append(sets[:, j])
            count.append(counts)
            ante_count.append(_lookup(table, table_counts, antecedent))
    if not ante_parts:
        empty = np.empty(0, np.int64)
        return {
            "antecedent": np.empty((0, max(1, max_len - 1)), np.int64),
            "consequent": empty,
            "count": empty,
            "antecedent_count": empty,
            "consequent_count": empty,
        }
    c = np.concatenate(cons)
    return {
        "antecedent": np.concatenate(ante_parts),
        "consequent": c,
        "count": np.concatenate(count),
        "antecedent_count": np.concatenate(ante_count),
        "consequent_count": item_counts[c],
    }


def association_rules(
    orders: pd.DataFrame | BasketCounts,
    *,
    level: Level = "category",
    min_support: float = 0.01,
    min_confidence: float = 0.05,
    min_lift: float = 1.0,
    max_len: int = 3,
    max_rules: int = 500,
    min_multi_item_baskets: int = MIN_MULTI_ITEM_BASKETS,
) -> RulesResult:
    """Frequent itemsets (Apriori) and association rules ``antecedent -> consequent``.

    Support is the share of baskets containing the whole rule; confidence the share of baskets
    with the antecedent that also contain the consequent; lift is confidence over the
    consequent's support; leverage ``support - support(A) * support(C)``; conviction
    ``(1 - support(C)) / (1 - confidence)`` (inf when confidence is 1); count is the number of
    baskets containing the whole rule. Itemsets have at most ``max_len`` items; rules keep those
    with confidence >= ``min_confidence`` and lift >= ``min_lift``, sorted by lift then support
    (descending, ties by names) and capped at ``max_rules``.

    ``orders`` are the order lines, or the baskets the engine reduced to item masks
    (:class:`BasketCounts`, whose level is used): the same itemsets and rules either way.

    Raises InsufficientData when fewer than ``min_multi_item_baskets`` baskets hold two or more
    distinct items (e.g. every order has a single category).
    """
    params = _rule_params(
        min_support, min_confidence, min_lift, max_len, max_rules, min_multi_item_baskets
    )
    if isinstance(orders, BasketCounts):
        x = _mask_matrix(orders.masks, len(orders.items))
        return _rules(x, orders.baskets.astype(np.int64), orders.items, orders.level, params)
    x, items, _ = _build(orders, level, with_index=False)
    return _rules(x, None, items, level, params)


def _rule_params(
    min_support: float,
    min_confidence: float,
    min_lift: float,
    max_len: int,
    max_rules: int,
    min_multi_item_baskets: int,
) -> dict[str, Any]:
    if not 0 < min_support <= 1:
        raise ValueError(f"min_support must be in (0, 1], not {min_support}")
    if not 0 <= min_confidence <= 1:
        raise ValueError(f"min_confidence must be in [0, 1], not {min_confidence}")
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2, not {max_len}")
    if max_rules < 1:
        raise ValueError(f"max_rules must be at least 1, not {max_rules}")
    return {
        "min_support": min_support,
        "min_confidence": min_confidence,
        "min_lift": min_lift,
        "max_len": max_len,
        "max_rules": max_rules,
        "min_multi_item_baskets": min_multi_item_baskets,
    }


def _rules(
    x: sparse.csr_array,
    w: np.ndarray | None,
    items: np.ndarray,
    level: Level,
    params: dict[str, Any],
) -> RulesResult:
    """Itemsets and rules of the baskets ``x`` (row i weighing ``w[i]`` baskets)."""
    min_multi = params["min_multi_item_baskets"]
    sizes = np.diff(x.indptr)
    n = x.shape[0] if w is None else int(w.sum())
    multi = sizes >= 2
    n_multi = int(multi.sum()) if w is None else int(w[multi].sum())
    if n_multi < min_multi:
        raise InsufficientData(
            f"only {n_multi:,} of {n:,} baskets contain two or more different {level} values; "
            f"basket rules need at least {min_multi:,} such baskets",
            hint="group order lines with an order_id column so one order is one basket"
            + (", or try level='product'" if level == "category" else "")
            + "; with one item per basket there is nothing bought together to learn from",
        )
    min_count = _min_count(params["min_support"], n)
    levels = _frequent_itemsets(x, min_count, params["max_len"], w)
    itemsets = _itemsets_frame(levels, items, n)
    arr = _rules_arrays(levels)
    count = arr["count"].astype(np.float64)
    a_count = arr["antecedent_count"].astype(np.float64)
    c_count = arr["consequent_count"].astype(np.float64)
    support = count / n
    confidence = count / a_count
    # One division of exact integer products: correctly rounded, identical run to run.
    lift = (count * n) / (a_count * c_count)
    keep = (confidence >= params["min_confidence"] - 1e-12) & (lift >= params["min_lift"] - 1e-12)
    idx = np.flatnonzero(keep)
    ante = arr["antecedent"][idx]
    # np.lexsort: last key is primary -> lift desc, support desc, antecedent names, consequent.
    keys = [arr["consequent"][idx]]
    keys += [ante[:, j] for j in range(ante.shape[1] - 1, -1, -1)]
    keys += [-count[idx], -lift[idx]]
    order = idx[np.lexsort(keys)] if len(idx) else idx
    n_total = len(order)
    order = order[: params["max_rules"]]
    rules = _rules_frame(arr, order, items, n, support, confidence, lift)
    return RulesResult(
        rules=rules,
        itemsets=itemsets,
        n_baskets=int(n),
        n_multi_item_baskets=n_multi,
        level=level,
        params=params,
        n_rules_total=int(n_total),
    )


def _itemsets_frame(
    levels: list[tuple[np.ndarray, np.ndarray]], items: np.ndarray, n: int
) -> pd.DataFrame:
    """Itemsets as a frame sorted by size, count (descending) and names."""
    rows_items: list[tuple[str, ...]] = []
    counts: list[np.ndarray] = []
    for sets, c in levels:
        order = np.lexsort([*sets.T[::-1], -c]) if len(sets) else np.empty(0, np.int64)
        labels = items[sets[order]] if len(sets) else np.empty((0, sets.shape[1]), object)
        rows_items.extend(tuple(r) for r in labels.tolist())
        counts.append(c[order])
    count = np.concatenate(counts) if counts else np.empty(0, np.int64)
    return pd.DataFrame(
        {
            "items": pd.Series(rows_items, dtype=object),
            "support": count / n if n else count.astype(float),
            "count": count.astype(np.int64),
        }
    )


def _rules_frame(
    arr: dict[str, np.ndarray],
    order: np.ndarray,
    items: np.ndarray,
    n: int,
    support: np.ndarray,
    confidence: np.ndarray,
    lift: np.ndarray,
) -> pd.DataFrame:
    """The kept rules, in ``order``, as a frame of names and metrics."""
    ante = arr["antecedent"][order]
    antecedents = [tuple(items[a[a >= 0]].tolist()) for a in ante]
    a_supp = arr["antecedent_count"][order] / n
    c_supp = arr["consequent_count"][order] / n
    supp = support[order]
    conf = confidence[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        conviction = np.where(conf < 1, (1 - c_supp) / (1 - conf), np.inf)
    frame = pd.DataFrame(
        {
            "antecedent": pd.Series(antecedents, dtype=object),
            "consequent": pd.Series(items[arr["consequent"][order]], dtype=object),
            "support": supp,
            "confidence": conf,
            "lift": lift[order],
            "leverage": supp - a_supp * c_supp,
            "conviction": conviction,
            "count": arr["count"][order].astype(np.int64),
            "antecedent_support": a_supp,
            "consequent_support": c_supp,
        },
        columns=RULE_COLUMNS,
    )
    return frame


# ---------------------------------------------------------------------------------------------
# Next best offer


def _join_names(names: tuple[str, ...] | list[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def rule_reason(
    antecedent: tuple[str, ...], consequent: str, confidence: float, lift: float
) -> str:
    """A rule in plain words: "bought A; 42% of baskets with A also contain B (lift 2.1)"."""
    a = _join_names(antecedent)
    return (
        f"bought {a}; {confidence:.0%} of baskets with {a} also contain {consequent} "
        f"(lift {lift:.1f})"
    )


def _factorize_sorted(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(values, sort=True)``, faster for a million distinct string ids.

    Sorting Python str objects is slow; numpy's StringDType sorts UTF-8 bytes, which is the
    same order as Python's code-point comparison.
    """
    codes, uniques = factorize(values)
    uniques = np.asarray(uniques, dtype=object)
    if pd.api.types.infer_dtype(uniques, skipna=False) == "string":
        order = np.array(uniques, dtype=np.dtypes.StringDType()).argsort(kind="stable")
    else:
        order = pd.Index(uniques).argsort()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return np.append(rank, -1)[codes], uniques[order]  # code -1 (missing) stays -1


def _customer_items(
    orders: pd.DataFrame, level: str, items: np.ndarray
) -> tuple[sparse.csr_array, pd.Index]:
    """Customer x item CSR matrix (bought at least once) over ``items``; customers sorted."""
    cust_codes, customers = _factorize_sorted(orders["customer_id"])
    item_codes, labels = _item_codes(orders[level])
    # Map this frame's item labels onto the given (sorted) item universe.
    item_codes = np.append(np.searchsorted(items, labels), -1)[item_codes]
    known = item_codes >= 0
    coo = sparse.coo_array(
        (
            np.ones(int(known.sum()), dtype=np.int32),
            (cust_codes[known].astype(np.int64), item_codes[known]),
        ),
        shape=(len(customers), len(items)),
    )
    matrix = coo.tocsr()
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix.astype(bool), pd.Index(customers, dtype=object, name="customer_id")


def _dedupe_rows(matrix: sparse.csr_array) -> tuple[np.ndarray, np.ndarray]:
    """Representative row of each distinct row and, per row, its representative's position.

    Many customers bought the same set of categories; scoring each distinct set once is what makes
    next_best cheap for a million customers. Rows are keyed by exact bit masks.
    """
    n, k = matrix.shape
    words = max(1, -(-k // 64))
    if words > _MAX_PROFILE_WORDS or n == 0:
        return np.arange(n), np.arange(n)
    rows = np.repeat(np.arange(n), np.diff(matrix.indptr))
    cols = matrix.indices.astype(np.int64)
    masks = np.zeros((n, words), dtype=np.uint64)
    np.bitwise_or.at(
        masks, (rows, cols >> 6), np.left_shift(np.uint64(1), (cols & 63).astype(np.uint64))
    )
    if words == 1:
        _, first, inverse = np.unique(masks[:, 0], return_index=True, return_inverse=True)
    else:
        view = np.ascontiguousarray(masks).view(np.dtype((np.void, 8 * words))).ravel()
        _, first, inverse = np.unique(view, return_index=True, return_inverse=True)
    return first, inverse.ravel()


def next_best(
    orders: pd.DataFrame,
    rules: RulesResult,
    *,
    customers: pd.Index | None = None,
    top_n: int = 1,
) -> pd.DataFrame:
    """The item(s) each customer has never bought that the rules most recommend.

    Score is the highest confidence among rules whose antecedent the customer has bought entirely
    and whose consequent they have not (ties: higher lift, then names). Slots no rule fills get
    the most popular items (most distinct customers) the customer has not bought, with reason
    "popular with all customers". Customers who have bought every item get one row with no item.

    Returns a frame indexed by customer_id (sorted, or in the order of ``customers``; customers
    unknown to ``orders`` get popular items) with columns ``rank`` (1..top_n), ``item``,
    ``basis`` ("rule", "popular" or "none"), ``confidence``, ``lift`` (NaN unless from a rule)
    and ``reason``.
    """
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1, not {top_n}")
    level = rules.level
    _check_level(orders, level)
    _, order_labels = _item_codes(orders[level])
    items = _offer_items(order_labels, rules)
    k = len(items)
    bought, known_customers = _customer_items(orders, level, items)

    buyers = np.asarray(bought.sum(axis=0)).ravel() if k else np.empty(0)
    if customers is None:
        target = known_customers
        profiles = bought
    else:
        target = pd.Index(customers, name="customer_id")
        pos = positions(target, known_customers)
        # An extra empty row stands in for customers with no orders.
        padded = sparse.vstack([bought, sparse.csr_array((1, k), dtype=bool)], format="csr")
        profiles = padded[np.where(pos >= 0, pos, len(known_customers))]
    first, inverse = _dedupe_rows(profiles)
    return _offers(target, profiles[first], inverse, buyers, items, rules, top_n)


def next_best_from_counts(
    counts: BasketCounts,
    rules: RulesResult,
    *,
    customers: pd.Index | None = None,
    top_n: int = 1,
) -> pd.DataFrame:
    """:func:`next_best` from the customers' item masks the engine computed: the same frame
    as from the order lines they came from."""
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1, not {top_n}")
    items = _offer_items(counts.items, rules)
    k = len(items)
    if k > 64:
        raise ValueError(f"at most 64 items fit a mask, not {k}")
    profiles = np.asarray(counts.profiles, dtype=np.uint64)
    if k != len(counts.items):  # rules name items the counts lack: move the bits
        moved = np.zeros(len(profiles), dtype=np.uint64)
        for j, to in enumerate(np.searchsorted(items, counts.items)):
            moved |= ((profiles >> np.uint64(j)) & np.uint64(1)) << np.uint64(to)
        profiles = moved
    # distinct buyers per item, from the distinct profiles
    kinds, many = np.unique(profiles, return_counts=True)
    buyers = np.array(
        [int(many[((kinds >> np.uint64(j)) & np.uint64(1)).astype(bool)].sum()) for j in range(k)],
        dtype=np.int64,
    )
    if customers is None:
        target = pd.Index(counts.customers, name="customer_id")
        masks = profiles
    else:
        target = pd.Index(customers, name="customer_id")
        pos = positions(target, counts.customers)
        masks = np.where(pos >= 0, profiles[pos], np.uint64(0))  # no known item: no bits
    # the profiles _dedupe_rows would find: one row per distinct mask, in mask order
    _, first, inverse = np.unique(masks, return_index=True, return_inverse=True)
    unique = _mask_matrix(masks[first], k)
    return _offers(target, unique, inverse.ravel(), buyers, items, rules, top_n)


def _offer_items(labels: np.ndarray, rules: RulesResult) -> np.ndarray:
    """The items next-best offers choose from: those bought, and those the rules name."""
    rule_items = set(rules.rules["consequent"].tolist())
    for ante in rules.rules["antecedent"]:
        rule_items.update(ante)
    return np.array(sorted(set(np.asarray(labels).tolist()) | rule_items), dtype=object)


def _offers(
    target: pd.Index,
    unique_profiles: sparse.csr_array,
    inverse: np.ndarray,
    buyers: np.ndarray,
    items: np.ndarray,
    rules: RulesResult,
    top_n: int,
) -> pd.DataFrame:
    """:func:`next_best`'s frame: ``target[i]`` owns ``unique_profiles[inverse[i]]``;
    ``buyers`` counts each item's distinct customers."""
    k = len(items)
    # Popularity: distinct buyers, ties by name (items are in name order already).
    pop_rank = np.empty(k, dtype=np.int64)
    pop_rank[np.lexsort([np.arange(k), -buyers])] = np.arange(k)

    # Rules in preference order: confidence, lift (desc), consequent and antecedent names.
    r = rules.rules
    index_of = {name: i for i, name in enumerate(items.tolist())}
    cons = np.array([index_of[c] for c in r["consequent"]], dtype=np.int64)
    antes = [np.array([index_of[a] for a in ante], dtype=np.int64) for ante in r["antecedent"]]
    conf = r["confidence"].to_numpy(dtype=float)
    lift = r["lift"].to_numpy(dtype=float)
    ante_names = ["\x00".join(a) for a in r["antecedent"]]
    pref = sorted(
        range(len(r)), key=lambda i: (-conf[i], -lift[i], r["consequent"].iat[i], ante_names[i])
    )
    n_rules = len(pref)

    picks, used = _score_profiles(unique_profiles, pref, antes, cons, pop_rank, n_rules, top_n)
    return _next_best_frame(target, inverse, picks, used, pref, items, r, rules.level, n_rules)


def _score_profiles(
    profiles: sparse.csr_array,
    pref: list[int],
    antes: list[np.ndarray],
    cons: np.ndarray,
    pop_rank: np.ndarray,
    n_rules: int,
    top_n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """For each profile row, ``top_n`` picked items and the key that picked them.

    Key < n_rules: position of the winning rule in preference order; n_rules + p: the p-th most
    popular item; -1 item: nothing left to recommend.
    """
    u, k = profiles.shape
    picks = np.full((u, top_n), -1, dtype=np.int64)
    keys = np.full((u, top_n), -1, dtype=np.int64)
    if k == 0:
        return picks, keys
    blocked = np.iinfo(np.int64).max
    chunk = max(1, _CHUNK_CELLS // max(k, 1))
    for start in range(0, u, chunk):
        stop = min(u, start + chunk)
        m = stop - start
        # k x m with one contiguous row per item: the rule loop reads whole item rows.
        owned = np.ascontiguousarray(profiles[start:stop].toarray().T)
        best = np.full((k, m), n_rules, dtype=np.int64)
        for rank, i in enumerate(pref):
            c = cons[i]
            hit = ~owned[c]
            for a in antes[i]:
                hit &= owned[a]
            # Rules come in preference order, so the first hit for an item is its best rule.
            np.minimum(best[c], np.where(hit, rank, n_rules), out=best[c])
        key = np.where(best < n_rules, best, n_rules + pop_rank[:, None])
        key[owned] = blocked
        cols = np.arange(m)
        for t in range(top_n):
            j = np.argmin(key, axis=0)
            v = key[j, cols]
            ok = v != blocked
            picks[start:stop, t] = np.where(ok, j, -1)
            keys[start:stop, t] = np.where(ok, v, -1)
            key[j, cols] = blocked
    return picks, keys


def _next_best_frame(
    target: pd.Index,
    inverse: np.ndarray,
    picks: np.ndarray,
    keys: np.ndarray,
    pref: list[int],
    items: np.ndarray,
    r: pd.DataFrame,
    level: str,
    n_rules: int,
) -> pd.DataFrame:
    """Broadcast per-profile picks to customers and attach the reasons."""
    item_idx = picks[inverse]  # customers x top_n
    key = keys[inverse]
    present = item_idx >= 0
    # Keep every filled slot, and one empty row for a customer with nothing left to offer.
    present[:, 0] = True
    cust_pos, slot = np.nonzero(present)
    it = item_idx[cust_pos, slot]
    kk = key[cust_pos, slot]
    from_rule = (kk >= 0) & (kk < n_rules)
    rule_row = np.full(len(kk), -1, dtype=np.int64)
    pref_arr = np.asarray(pref, dtype=np.int64)
    rule_row[from_rule] = pref_arr[kk[from_rule]]

    conf = r["confidence"].to_numpy(dtype=float)
    lift = r["lift"].to_numpy(dtype=float)
    reasons = np.array(
        [
            rule_reason(a, c, cf, lf)
            for a, c, cf, lf in zip(r["antecedent"], r["consequent"], conf, lift, strict=True)
        ]
        + [_POPULAR_REASON, f"already bought every {level}"],
        dtype=object,
    )
    reason_code = np.where(from_rule, rule_row, np.where(it >= 0, len(r), len(r) + 1))
    basis = np.where(from_rule, "rule", np.where(it >= 0, "popular", "none")).astype(object)
    items_ext = np.append(items, None).astype(object)
    conf_ext = np.append(conf, np.nan)
    lift_ext = np.append(lift, np.nan)
    # Explicit object dtype: inferring pandas' str dtype for a million rows costs seconds.
    frame = pd.DataFrame(
        {
            "rank": (slot + 1).astype(np.int64),
            "item": pd.Series(items_ext[np.where(it >= 0, it, len(items))], dtype=object),
            "basis": pd.Series(basis, dtype=object),
            "confidence": conf_ext[np.where(from_rule, rule_row, len(r))],
            "lift": lift_ext[np.where(from_rule, rule_row, len(r))],
            "reason": pd.Series(reasons[reason_code], dtype=object),
        }
    )
    frame.index = pd.Index(np.asarray(target, dtype=object)[cust_pos], name="customer_id")
    return frame


def next_best_by_segment(
    orders: pd.DataFrame,
    rules: RulesResult,
    segments: pd.Series,
    *,
    top: int = 3,
    best: pd.DataFrame | None = None,
    spend: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per segment, the most common next-best items and the top categories by spend.

    ``segments`` maps customer_id (index) to a segment label; customers without a label are
    ignored. ``best`` is :func:`next_best` (top 1) already computed for these customers, or
    more: a customer's next best item does not depend on who else is scored. ``spend`` is
    :func:`segment_spend` already computed (by the engine); with both, ``orders`` may be None.

    Returns a long frame with columns ``segment``, ``n_customers``, ``kind`` ("next_best" or
    "top_category"), ``rank``, ``item`` and ``share``: for next_best the share of the segment's
    customers whose next best item it is, for top_category the category's share of the
    segment's spend on orders with a known category. Segments in label order, then kind, then
    share (descending) and name; shares rounded to 3 decimals.
    """
    seg = segments.dropna()
    columns = ["segment", "n_customers", "kind", "rank", "item", "share"]
    if seg.empty:
        return pd.DataFrame(columns=columns)
    at = None if best is None else positions(seg.index, best.index)
    if at is None or (at < 0).any():
        if orders is None:
            raise ValueError("without orders, best must hold every segmented customer")
        nb = next_best(orders, rules, customers=pd.Index(seg.index), top_n=1)
    else:
        nb = best.iloc[at]
    nb_seg = seg.to_numpy()  # next_best keeps the order of ``customers``, one row each
    sizes = seg.value_counts(sort=False)

    parts: list[pd.DataFrame] = []
    picked = pd.DataFrame({"segment": nb_seg, "item": nb["item"].to_numpy()}).dropna()
    counts = picked.groupby(["segment", "item"], sort=False).size().rename("n").reset_index()
    counts["share"] = counts["n"] / counts["segment"].map(sizes).to_numpy()
    counts["kind"] = "next_best"
    parts.append(counts[["segment", "kind", "item", "share"]])

    if spend is None and orders is not None and "category" in orders.columns:
        spend = segment_spend(orders, seg)
    if spend is not None:
        by = spend[["segment", "item", "amount"]].copy()
        total = by.groupby("segment", sort=False)["amount"].transform("sum")
        by["share"] = np.where(total > 0, by["amount"] / total.where(total > 0, 1), 0.0)
        by["kind"] = "top_category"
        parts.append(by[["segment", "kind", "item", "share"]])

    out = pd.concat(parts, ignore_index=True)
    out["share"] = out["share"].astype(float)
    out = out.sort_values(
        ["segment", "kind", "share", "item"], ascending=[True, True, False, True], kind="stable"
    )
    out["rank"] = out.groupby(["segment", "kind"], sort=False).cumcount() + 1
    out = out[out["rank"] <= top].copy()
    out["share"] = out["share"].round(3)
    out["n_customers"] = out["segment"].map(sizes).astype(np.int64)
    return out[columns].reset_index(drop=True)


def segment_spend(orders: pd.DataFrame, segments: pd.Series) -> pd.DataFrame:
    """Spend per segment and category (negative amounts as 0; lines of customers without a
    segment, or without a category, left out): columns ``segment``, ``item``, ``amount``."""
    seg_map = segments.dropna()
    seg_map = seg_map[~seg_map.index.duplicated()]
    # lines grouped by their customer's segment code (a million-customer export has ~12M
    # lines: labels per line cost seconds), then the codes turned back into labels
    codes, labels = pd.factorize(seg_map, sort=False)
    pos = positions(orders["customer_id"], seg_map.index)
    lines = pd.DataFrame(
        {
            "segment": np.append(codes, -1)[pos],  # position -1: no segment
            "item": orders["category"],
            "amount": orders["amount"].clip(lower=0),
        }
    )
    lines = lines[lines["segment"].to_numpy() >= 0].dropna(subset=["item"])
    by = lines.groupby(["segment", "item"], sort=False)["amount"].sum().reset_index()
    by["segment"] = np.asarray(labels, dtype=object)[by["segment"].to_numpy()]
    return by


# ---------------------------------------------------------------------------------------------
# Facts for the agent


def rule_text(antecedent: tuple[str, ...], consequent: str) -> str:
    """A rule as a short quotable string: "Footwear + Socks → Apparel"."""
    return f"{' + '.join(antecedent)} → {consequent}"


def to_facts(result: RulesResult, top: int = 10) -> dict[str, Any]:
    """Compact JSON-ready facts about the rules: the strongest rule, the top rules, the counts.

    ``strongest_rule`` is the headline ("Footwear → Apparel", the first of ``top_rules``, whose
    entry carries its numbers). Rules keep their order (lift, then support); support and
    confidence are rounded to 3 decimals, lift to 2, so the numbers can be quoted as they are.
    """
    rows = []
    for rule in result.rules.head(top).itertuples(index=False):
        rows.append(
            {
                "rule": rule_text(rule.antecedent, rule.consequent),
                "support": round(float(rule.support), 3),
                "confidence": round(float(rule.confidence), 3),
                "lift": round(float(rule.lift), 2),
                "baskets": int(rule.count),
            }
        )
    facts: dict[str, Any] = {
        "level": result.level,
        "n_baskets": int(result.n_baskets),
        "n_multi_item_baskets": int(result.n_multi_item_baskets),
        "n_rules": int(result.n_rules_total),
        "strongest_rule": rows[0]["rule"] if rows else None,
        "top_rules": rows,
        "min_support": result.params.get("min_support"),
        "min_confidence": result.params.get("min_confidence"),
    }
    if not rows:
        facts["note"] = (
            f"no {result.level} rules passed min_support={result.params.get('min_support')} "
            f"and min_confidence={result.params.get('min_confidence')}"
        )
    return facts
