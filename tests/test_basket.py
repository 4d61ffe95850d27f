"""Market-basket analysis: exact counts, grouping, thresholds, next-best offers and facts."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from insight_agent.analytics.basket import (
    RulesResult,
    association_rules,
    baskets,
    next_best,
    next_best_by_segment,
    to_facts,
)
from insight_agent.errors import InsufficientData

DAY = pd.Timestamp("2024-03-01")


def make_orders(spec: list[tuple[str, str, list[str | None]]], **extra: object) -> pd.DataFrame:
    """Order lines from (order_id, customer_id, [category per line]); one day, amount 10."""
    rows = [
        {"order_id": o, "customer_id": c, "order_date": DAY, "amount": 10.0, "category": item}
        for o, c, items in spec
        for item in items
    ]
    frame = pd.DataFrame(rows)
    for name, value in extra.items():
        frame[name] = value
    return frame


# Ten baskets counted by hand: A in 6, B in 6, C in 5, D in 1; AB 4, AC 3, BC 3, ABC 2.
# O8's second line has no category: the basket keeps C (and is a single-item basket).
HAND = [
    ("O1", "C1", ["A", "B"]),
    ("O2", "C1", ["A", "B", "C"]),
    ("O3", "C2", ["A"]),
    ("O4", "C2", ["B", "C"]),
    ("O5", "C3", ["A", "C"]),
    ("O6", "C3", ["A", "B", "C", "A"]),
    ("O7", "C4", ["B"]),
    ("O8", "C4", ["C", None]),
    ("O9", "C5", ["A", "B"]),
    ("O10", "C5", ["D"]),
]


def hand_rules(**kw: object) -> RulesResult:
    params: dict[str, object] = {"min_support": 0.1, "min_lift": 0.0, "min_multi_item_baskets": 1}
    params.update(kw)
    return association_rules(make_orders(HAND), **params)  # type: ignore[arg-type]


def rule(result: RulesResult, antecedent: tuple[str, ...], consequent: str) -> pd.Series:
    r = result.rules
    hit = r[(r["antecedent"] == antecedent) & (r["consequent"] == consequent)]
    assert len(hit) == 1, f"{antecedent} -> {consequent} not found once"
    return hit.iloc[0]


def test_hand_counted_supports_confidences_and_lifts_are_exact() -> None:
    res = hand_rules()
    assert res.n_baskets == 10
    assert res.n_multi_item_baskets == 6
    counts = dict(zip(res.itemsets["items"], res.itemsets["count"], strict=True))
    assert counts == {
        ("A",): 6,
        ("B",): 6,
        ("C",): 5,
        ("D",): 1,
        ("A", "B"): 4,
        ("A", "C"): 3,
        ("B", "C"): 3,
        ("A", "B", "C"): 2,
    }
    ab = rule(res, ("A",), "B")
    assert ab["support"] == float(Fraction(4, 10))
    assert ab["confidence"] == float(Fraction(4, 6))
    assert ab["lift"] == float(Fraction(4 * 10, 6 * 6))
    assert ab["count"] == 4
    assert ab["leverage"] == pytest.approx(0.4 - 0.6 * 0.6)
    assert ab["conviction"] == pytest.approx((1 - 0.6) / (1 - 4 / 6))

    ca = rule(res, ("C",), "A")
    assert ca["confidence"] == float(Fraction(3, 5))
    assert ca["lift"] == float(Fraction(3 * 10, 5 * 6))

    abc = rule(res, ("A", "B"), "C")
    assert abc["support"] == float(Fraction(2, 10))
    assert abc["confidence"] == float(Fraction(2, 4))
    assert abc["lift"] == float(Fraction(2 * 10, 4 * 5))
    assert abc["antecedent_support"] == 0.4
    assert rule(res, ("B", "C"), "A")["confidence"] == float(Fraction(2, 3))


def test_rules_sorted_by_lift_then_support_with_name_tie_breaks() -> None:
    r = hand_rules().rules
    keys = list(zip(-r["lift"], -r["support"], r["antecedent"], r["consequent"], strict=True))
    assert keys == sorted(keys)
    # A -> B and B -> A tie on every metric: names decide.
    assert list(r.iloc[0][["antecedent", "consequent"]]) == [("A",), "B"]
    assert list(r.iloc[1][["antecedent", "consequent"]]) == [("B",), "A"]
    assert all(isinstance(a, tuple) and all(isinstance(x, str) for x in a) for a in r["antecedent"])


def test_thresholds_are_respected() -> None:
    # C -> A and C -> B have confidence 3/5: below 0.65, unlike A -> B and B -> A (4/6).
    res = hand_rules(min_support=0.3, min_confidence=0.65, min_lift=1.0)
    r = res.rules
    assert (r["support"] >= 0.3).all() and (r["confidence"] >= 0.65).all()
    assert (r["lift"] >= 1.0).all()
    assert set(zip(r["antecedent"], r["consequent"], strict=True)) == {
        (("A",), "B"),
        (("B",), "A"),
    }
    # Support 0.3 keeps the pairs AC and BC, drops ABC (0.2) and D (0.1).
    assert set(res.itemsets["items"]) == {
        ("A",),
        ("B",),
        ("C",),
        ("A", "B"),
        ("A", "C"),
        ("B", "C"),
    }
    assert res.params["min_support"] == 0.3

    pairs_only = hand_rules(max_len=2)
    assert pairs_only.itemsets["items"].map(len).max() == 2
    assert pairs_only.rules["antecedent"].map(len).max() == 1

    capped = hand_rules(max_rules=3)
    assert len(capped.rules) == 3 and capped.n_rules_total == len(hand_rules().rules)
    assert capped.rules.equals(hand_rules().rules.head(3))


def test_bad_parameters_are_rejected() -> None:
    orders = make_orders(HAND)
    for kw in ({"min_support": 0}, {"min_confidence": 1.5}, {"max_len": 1}, {"max_rules": 0}):
        with pytest.raises(ValueError):
            association_rules(orders, min_multi_item_baskets=1, **kw)  # type: ignore[arg-type]


def test_baskets_group_by_order_id_and_ignore_missing_items() -> None:
    matrix, items, index = baskets(make_orders(HAND))
    assert list(items) == ["A", "B", "C", "D"]
    assert matrix.dtype == bool and matrix.shape == (10, 4)
    dense = pd.DataFrame(matrix.toarray(), index=index.get_level_values("basket"), columns=items)
    assert dense.loc["O6"].tolist() == [True, True, True, False]  # A twice counts once
    assert dense.loc["O8"].tolist() == [False, False, True, False]  # the None line is ignored
    assert index.names == ["customer_id", "basket"]
    assert index[0] == ("C1", "O1")


def test_baskets_fall_back_to_customer_and_day_without_order_id() -> None:
    lines = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C1", "C2", "C2"],
            "order_date": pd.to_datetime(
                [
                    "2024-01-05 09:00",
                    "2024-01-05 17:30",
                    "2024-01-06 08:00",
                    "2024-01-05",
                    "2024-01-05",
                ],
                format="mixed",
            ),
            "amount": 5.0,
            "category": ["Tea", "Cups", "Tea", "Tea", None],
        }
    )
    matrix, items, index = baskets(lines)
    got = {
        key: {items[j] for j in np.flatnonzero(row)}
        for key, row in zip(index, matrix.toarray(), strict=True)
    }
    # Two orders on one day are one basket; C2's basket keeps Tea despite the missing line.
    assert got == {
        ("C1", "2024-01-05"): {"Tea", "Cups"},
        ("C1", "2024-01-06"): {"Tea"},
        ("C2", "2024-01-05"): {"Tea"},
    }
    # With order ids, the same lines are separate baskets; lines without one use the day.
    with_ids = lines.assign(order_id=["A1", "A2", None, None, None])
    matrix, items, index = baskets(with_ids)
    assert set(index) == {("C1", "A1"), ("C1", "A2"), ("C1", "2024-01-06"), ("C2", "2024-01-05")}
    assert matrix.sum() == 4


def test_order_ids_reused_by_different_customers_stay_apart() -> None:
    orders = make_orders([("1", "C1", ["A"]), ("1", "C2", ["B"])])
    matrix, _, index = baskets(orders)
    assert matrix.shape[0] == 2 and matrix.sum(axis=1).tolist() == [1, 1]
    assert list(index) == [("C1", "1"), ("C2", "1")]


def test_product_level() -> None:
    orders = make_orders(HAND)
    orders["product"] = orders["category"].map({"A": "a1", "B": "b1", "C": "c1", "D": "d1"})
    orders.loc[orders["order_id"] == "O1", "product"] = ["a2", "b1"]
    res = association_rules(orders, level="product", min_support=0.1, min_multi_item_baskets=1)
    assert res.level == "product"
    counts = dict(zip(res.itemsets["items"], res.itemsets["count"], strict=True))
    assert counts[("a1", "b1")] == 3 and counts[("a2",)] == 1 and counts[("a2", "b1")] == 1
    _, items, _ = baskets(orders, level="product")
    assert list(items) == ["a1", "a2", "b1", "c1", "d1"]
    with pytest.raises(InsufficientData, match="no 'product' column"):
        association_rules(make_orders(HAND), level="product")


def planted_orders(n_baskets: int = 600, seed: int = 7) -> pd.DataFrame:
    """Random baskets with planted structure.

    Footwear pulls in Apparel (pair); Socks + Footwear pulls in Laces (triple that neither
    pair alone explains).
    """
    rng = np.random.default_rng(seed)
    cats = ["Apparel", "Books", "Footwear", "Home", "Kitchen", "Laces", "Socks", "Toys"]
    background = ["Books", "Home", "Kitchen", "Toys", "Apparel", "Socks", "Footwear"]
    rows = []
    for b in range(n_baskets):
        items = set(rng.choice(background, size=rng.integers(1, 3), replace=False).tolist())
        if "Footwear" in items and rng.random() < 0.7:
            items.add("Apparel")
        if {"Footwear", "Socks"} <= items and rng.random() < 0.9:
            items.add("Laces")
        cust = f"C{rng.integers(0, n_baskets // 3):04d}"
        for item in sorted(items):
            rows.append((f"B{b:04d}", cust, item))
    assert set(cats) >= {r[2] for r in rows}
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "category"])
    frame["order_date"] = DAY
    frame["amount"] = 10.0
    return frame


def test_planted_pair_and_triple_are_found() -> None:
    res = association_rules(planted_orders(), min_support=0.01, min_confidence=0.3)
    laces = rule(res, ("Footwear", "Socks"), "Laces")
    assert laces["confidence"] > 0.8 and laces["lift"] > 5
    assert rule(res, ("Footwear",), "Apparel")["lift"] > 1.3
    assert ("Footwear", "Laces", "Socks") in set(res.itemsets["items"])
    facts = to_facts(res)
    assert facts["strongest_rule"].endswith("→ Laces")


def test_rules_identical_across_runs_and_row_orders() -> None:
    orders = planted_orders()
    first = association_rules(orders, min_support=0.01)
    second = association_rules(orders, min_support=0.01)
    shuffled = association_rules(orders.sample(frac=1.0, random_state=3), min_support=0.01)
    pd.testing.assert_frame_equal(first.rules, second.rules)
    pd.testing.assert_frame_equal(first.rules, shuffled.rules)
    pd.testing.assert_frame_equal(first.itemsets, shuffled.itemsets)


def brute_force(orders: pd.DataFrame, max_len: int) -> tuple[dict[tuple[str, ...], int], int]:
    """Itemset counts over all baskets by plain Python sets."""
    groups: dict[tuple[str, str], set[str]] = {}
    for row in orders.itertuples(index=False):
        if isinstance(row.order_id, str):
            key = (row.customer_id, row.order_id)
        else:
            key = (row.customer_id, str(row.order_date.date()))
        items = groups.setdefault(key, set())
        if isinstance(row.category, str):
            items.add(row.category)
    counts: Counter[tuple[str, ...]] = Counter()
    nonempty = [sorted(s) for s in groups.values() if s]
    for items in nonempty:
        for size in range(1, max_len + 1):
            counts.update(itertools.combinations(items, size))
    return dict(counts), len(nonempty)


def test_sparse_counting_matches_brute_force() -> None:
    rng = np.random.default_rng(42)
    n_lines = 2500
    cats = np.array([f"cat{i}" for i in range(9)], dtype=object)
    p = np.linspace(3, 1, len(cats))
    order_no = rng.integers(0, 400, n_lines)
    orders = pd.DataFrame(
        {
            "order_id": pd.Series([f"O{i}" for i in order_no], dtype=object),
            "customer_id": [f"C{i % 40}" for i in order_no],
            "order_date": DAY + pd.to_timedelta(rng.integers(0, 5, n_lines), unit="D"),
            "amount": 1.0,
            "category": rng.choice(cats, n_lines, p=p / p.sum()),
        }
    )
    orders.loc[rng.random(n_lines) < 0.05, "category"] = None
    orders.loc[rng.random(n_lines) < 0.2, "order_id"] = None  # these fall back to the day
    max_len = 4
    expected, n = brute_force(orders, max_len)
    min_support = 0.02
    res = association_rules(
        orders,
        min_support=min_support,
        min_confidence=0.0,
        min_lift=0.0,
        max_len=max_len,
        max_rules=10**6,
    )
    assert res.n_baskets == n > 300
    frequent = {k: v for k, v in expected.items() if v / n >= min_support}
    assert max(map(len, frequent)) == max_len  # the check reaches every level
    got = dict(zip(res.itemsets["items"], res.itemsets["count"], strict=True))
    assert got == frequent
    assert np.array_equal(res.itemsets["support"], res.itemsets["count"] / n)
    # Every rule from every frequent itemset, with its metrics from the brute-force counts.
    n_rules = 0
    for itemset, count in frequent.items():
        for consequent in itemset if len(itemset) > 1 else ():
            antecedent = tuple(x for x in itemset if x != consequent)
            r = rule(res, antecedent, consequent)
            assert r["count"] == count
            assert r["confidence"] == float(Fraction(count, frequent[antecedent]))
            lift = Fraction(count * n, frequent[antecedent] * frequent[(consequent,)])
            assert r["lift"] == float(lift)
            n_rules += 1
    assert len(res.rules) == n_rules


def test_all_single_item_baskets_raise_with_counts() -> None:
    orders = make_orders([(f"O{i}", f"C{i % 7}", ["A" if i % 2 else "B"]) for i in range(120)])
    with pytest.raises(InsufficientData) as err:
        association_rules(orders)
    assert "only 0 of 120 baskets" in err.value.message
    assert "at least 30" in err.value.message
    assert err.value.hint and "order_id" in err.value.hint

    few = make_orders([(f"O{i}", "C1", ["A", "B"] if i < 12 else ["A"]) for i in range(50)])
    with pytest.raises(InsufficientData, match="only 12 of 50 baskets"):
        association_rules(few)
    assert association_rules(few, min_multi_item_baskets=12).n_multi_item_baskets == 12


def test_next_best_never_recommends_bought_items_and_picks_planted_partner() -> None:
    orders = planted_orders()
    res = association_rules(orders, min_support=0.01, min_confidence=0.2)
    nb = next_best(orders, res, top_n=2)
    bought = orders.groupby("customer_id")["category"].agg(set)
    assert set(nb.index) == set(bought.index)
    assert nb.index.is_monotonic_increasing
    for cust, row in nb.iterrows():
        assert row["item"] not in bought[cust]
    assert not nb.reset_index().duplicated(["customer_id", "item"]).any()

    # Customers with Footwear and Socks but no Laces are offered Laces first.
    target = [c for c, s in bought.items() if {"Footwear", "Socks"} <= s and "Laces" not in s]
    assert target
    first = nb[nb["rank"] == 1]
    assert (first.loc[target, "item"] == "Laces").all()
    reason = first.loc[target[0], "reason"]
    laces = rule(res, ("Footwear", "Socks"), "Laces")
    assert reason == (
        f"bought Footwear and Socks; {laces['confidence']:.0%} of baskets with Footwear and "
        f"Socks also contain Laces (lift {laces['lift']:.1f})"
    )
    assert first.loc[target[0], "basis"] == "rule"
    assert first.loc[target[0], "confidence"] == laces["confidence"]


def test_next_best_score_is_max_confidence_and_reason_wording() -> None:
    res = hand_rules()
    nb = next_best(make_orders(HAND), res)
    # C4 bought B and C: B -> A (4/6) beats C -> A (3/5).
    row = nb.loc["C4"]
    assert row["item"] == "A" and row["confidence"] == float(Fraction(4, 6))
    assert row["reason"] == "bought B; 67% of baskets with B also contain A (lift 1.1)"
    # C1 bought A, B and C; only D is left and no rule leads to it.
    assert nb.loc["C1", "item"] == "D"
    assert nb.loc["C1", "reason"] == "popular with all customers"
    assert nb.loc["C1", "basis"] == "popular" and np.isnan(nb.loc["C1", "confidence"])


def test_next_best_fallbacks_for_unknown_and_complete_customers() -> None:
    orders = make_orders([*HAND, ("O11", "C6", ["A", "B", "C", "D"])])
    res = hand_rules()
    nb = next_best(orders, res, customers=pd.Index(["C6", "NEW", "C2"]))
    assert list(nb.index) == ["C6", "NEW", "C2"]
    # A customer with no orders gets the most popular item: B has 6 distinct buyers, A 5.
    assert nb.loc["NEW", "item"] == "B"
    assert nb.loc["NEW", "reason"] == "popular with all customers"
    assert nb.loc["C6", "item"] is None and nb.loc["C6", "basis"] == "none"
    assert nb.loc["C6", "reason"] == "already bought every category"


def test_next_best_by_segment_shares() -> None:
    orders = make_orders(HAND)
    orders.loc[orders["category"] == "A", "amount"] = 30.0
    res = hand_rules()
    segments = pd.Series({"C1": "loyal", "C2": "new", "C3": "new", "C4": "new", "C5": "loyal"})
    out = next_best_by_segment(orders, res, segments)
    assert list(out.columns) == ["segment", "n_customers", "kind", "rank", "item", "share"]
    assert out["segment"].tolist() == sorted(out["segment"])
    nb = next_best(orders, res, customers=pd.Index(segments.index))
    new = out[(out["segment"] == "new") & (out["kind"] == "next_best")]
    expected = nb.loc[["C2", "C3", "C4"], "item"].value_counts() / 3
    for item, share in zip(new["item"], new["share"], strict=True):
        assert share == round(expected[item], 3)
    assert new["share"].is_monotonic_decreasing and len(new) <= 3
    loyal_cats = out[(out["segment"] == "loyal") & (out["kind"] == "top_category")]
    # Loyal spend (C1, C5): A 3 x 30 = 90, B 3 x 10, C 1 x 10, D 1 x 10 -> 140.
    assert loyal_cats[["item", "share"]].values.tolist() == [
        ["A", round(90 / 140, 3)],
        ["B", round(30 / 140, 3)],
        ["C", round(10 / 140, 3)],
    ]
    assert (out["n_customers"] == out["segment"].map({"loyal": 2, "new": 3})).all()
    # next-best items already scored for every customer (and one more) give the same table,
    # as do text ids held as pandas' Arrow strings
    everyone = next_best(orders, res, customers=pd.Index([*segments.index, "C9"]))
    pd.testing.assert_frame_equal(next_best_by_segment(orders, res, segments, best=everyone), out)
    arrow = orders.astype({"customer_id": "string", "category": "string"})
    segs = segments.set_axis(segments.index.astype("string"))
    pd.testing.assert_frame_equal(next_best_by_segment(arrow, res, segs), out, check_dtype=False)


def test_to_facts_are_rounded_quotable_and_json_ready() -> None:
    res = hand_rules()
    facts = to_facts(res, top=2)
    assert json.loads(json.dumps(facts)) == facts
    assert facts["n_baskets"] == 10 and facts["level"] == "category"
    assert facts["strongest_rule"] == "A → B"
    assert facts["top_rules"][0] == {
        "rule": "A → B",
        "support": 0.4,
        "confidence": 0.667,
        "lift": 1.11,
        "baskets": 4,
    }
    assert [r["rule"] for r in facts["top_rules"]] == ["A → B", "B → A"]
    none = to_facts(hand_rules(min_confidence=1.0))
    assert none["strongest_rule"] is None and "no category rules" in none["note"]


def test_next_best_matches_plain_python_reference() -> None:
    orders = planted_orders(seed=11)
    res = association_rules(orders, min_support=0.005, min_confidence=0.05, min_lift=0.0)
    nb = next_best(orders, res, top_n=3)
    bought = orders.groupby("customer_id")["category"].agg(set)
    buyers = orders.groupby("category")["customer_id"].nunique()
    popular = sorted(buyers.index, key=lambda item: (-buyers[item], item))
    rules = sorted(
        res.rules.itertuples(index=False),
        key=lambda r: (-r.confidence, -r.lift, r.consequent, "\x00".join(r.antecedent)),
    )
    for cust, have in bought.items():
        # Best rule per unbought item in preference order, then popular items, no repeats.
        expected: list[tuple[str, str]] = []
        for r in rules:
            if set(r.antecedent) <= have and r.consequent not in have:
                expected.append((r.consequent, "rule"))
        expected += [(i, "popular") for i in popular if i not in have]
        expected = [e for i, e in enumerate(expected) if e[0] not in {x for x, _ in expected[:i]}]
        got = nb.loc[[cust]]
        assert list(zip(got["item"], got["basis"], strict=True)) == expected[:3], cust
