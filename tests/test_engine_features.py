"""The engine's feature table (Ibis over the Parquet cache, run by DuckDB) equals the pandas
reference in analytics/features.py: same customers, same columns in the same order, every
value within 1e-9 — on the demo data and on a small messy export."""

from __future__ import annotations

import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insight_agent.analytics.features import (
    customer_features,
    order_table,
    scoring_cutoff,
    top_categories,
)
from insight_agent.errors import InsufficientData

ATOL = 1e-9


def _engine(root: Path, data):
    from insight_agent.engine.cache import write_cache
    from insight_agent.engine.features import FeatureEngine
    from insight_agent.workspace import Workspace, locate

    ws = Workspace.open(locate(root))
    return FeatureEngine.from_cache(write_cache(ws, data), threads=1)


def _reference(data, cutoff: pd.Timestamp, categories: list[str] | None):
    return customer_features(
        data.customers,
        data.orders,
        cutoff,
        reviews=data.reviews,
        campaigns=data.campaigns,
        returns=data.returns,
        categories=categories,
    )


def assert_same_features(got, ref) -> None:
    """Same customers (in order), same columns (in order), values within ATOL."""
    assert list(got.X.columns) == list(ref.X.columns)
    assert got.X.index.equals(ref.X.index)
    assert got.X.index.name == ref.X.index.name == "customer_id"
    assert got.categories == ref.categories
    assert (got.X.dtypes == ref.X.dtypes).all()
    a = got.X.to_numpy(dtype=np.float64)
    b = ref.X.to_numpy(dtype=np.float64)
    assert not np.isnan(a).any()
    worst = np.abs(a - b).max(axis=0) if len(a) else np.zeros(a.shape[1])
    off = {c: float(w) for c, w in zip(ref.X.columns, worst, strict=True) if w > ATOL}
    assert not off, off


# --- demo data ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(demo_workspace: Path, demo_data, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("engine-demo") / "ws"
    shutil.copytree(demo_workspace, root)
    data, _ = demo_data
    return data, _engine(root, data)


def test_demo_order_table_cutoff_and_categories_agree(demo) -> None:
    data, engine = demo
    assert engine.scoring_cutoff() == scoring_cutoff(data.orders)
    assert engine.top_categories() == top_categories(data.orders)
    table = engine.order_table().execute()
    assert len(table) == len(order_table(data.orders))
    assert table["amount"].sum() == pytest.approx(data.orders["amount"].sum(), abs=1e-6)


@pytest.mark.parametrize("days_before", [0, 90, 400])
def test_demo_features_equal_pandas(demo, days_before: int) -> None:
    data, engine = demo
    cutoff = scoring_cutoff(data.orders) - pd.Timedelta(days=days_before)
    categories = top_categories(data.orders)
    assert_same_features(
        engine.features(cutoff, categories=categories), _reference(data, cutoff, categories)
    )


def test_demo_features_choose_categories_like_pandas(demo) -> None:
    data, engine = demo
    cutoff = scoring_cutoff(data.orders) - pd.Timedelta(days=200)
    assert_same_features(engine.features(cutoff), _reference(data, cutoff, None))


@pytest.mark.parametrize("days_before", [90, 400])
def test_demo_sample_rows_equal_the_whole_tables(demo, days_before: int) -> None:
    """The training sample's rows (``ids``) equal the whole table's rows for them, exactly:
    demographic levels and medians stay the whole population's. The population query's
    frequency and recency equal the table's."""
    data, engine = demo
    cutoff = scoring_cutoff(data.orders) - pd.Timedelta(days=days_before)
    categories = top_categories(data.orders)
    whole = engine.features(cutoff, categories=categories)
    rng = np.random.default_rng(7)
    ids = whole.X.index[np.sort(rng.choice(len(whole.X), size=len(whole.X) // 5, replace=False))]
    part = engine.features(cutoff, categories=categories, ids=ids)
    assert part.categories == whole.categories
    pd.testing.assert_frame_equal(part.X, whole.X.loc[ids], check_exact=True)
    # every population column the sample leaves out of its aggregates is still there
    assert any("=" in c for c in part.X.columns) and "age" in part.X.columns
    population = engine.population(cutoff)
    pd.testing.assert_frame_equal(
        population, whole.X[["frequency", "recency_days"]], check_exact=True
    )


# --- a small messy export ----------------------------------------------------------------------

CUSTOMERS = """customer_id,signup_date,age,gender,region,channel
A1,2025-01-05,34,F,North,web
A2,2025-02-10,,M,South,web
A3,,51,F,North,store
A4,2025-03-01,28,,East,web
A5,2025-06-20,45,M,,store
A6,2025-12-30,39,F,West,app
A7,2025-01-01,,X,North,web
"""

# no order_id: an order is a customer's lines on one day; A5 buys once, A3 twice the same
# day (one order), A1's lines straddle categories with ties in total spend, some lines have
# no category, a negative line is a return, A7 never buys, A6 signs up after the cutoff.
# Before 2025-06-21 Coats and Hats tie on spend (38.00), F and M tie on customers.
ORDERS = """customer_id,order_date,amount,category
A1,2025-01-10,10.00,Shoes
A1,2025-01-10,5.50,
A1,2025-02-01,20.00,Bags
A1,2025-04-15,7.25,Shoes
A1,2025-05-01,-7.25,Shoes
A2,2025-03-03,12.00,Bags
A2,2025-03-20,8.00,Hats
A2,2025-05-30,0.00,Hats
A3,2025-04-01,30.00,Shoes
A3,2025-04-01,9.99,
A4,2025-03-05,15.00,Hats
A4,2025-05-20,15.00,Hats
A4,2025-05-20,2.00,
A4,2025-06-02,38.00,Coats
A5,2025-06-21,17.00,Coats
A6,2026-01-05,50.00,Shoes
A2,2025-07-01,11.00,Bags
A1,2025-07-02,13.00,Coats
"""

REVIEWS = """review_id,customer_id,rating,date,text
r1,A1,5,2025-02-02,great
r2,A1,1,2025-05-02,broke
r3,A2,,2025-03-21,no stars
r4,A4,2,,fine
r5,,4,2025-04-01,anonymous
r6,A5,3,2025-08-01,late
"""

CAMPAIGNS = """customer_id,campaign,sent_date,responded
A1,spring,2025-03-01,yes
A2,spring,2025-03-01,no
A4,spring,2025-03-01,no
A4,summer,2025-06-01,yes
A5,summer,2025-06-01,no
A6,winter,2026-01-02,yes
"""


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory):
    from insight_agent.config import load_settings
    from insight_agent.data.load import load_dataset
    from tests.conftest import write_workspace

    root = tmp_path_factory.mktemp("engine-messy")
    paths = {}
    for name, text in (
        ("customers", CUSTOMERS),
        ("orders", ORDERS),
        ("reviews", REVIEWS),
        ("campaigns", CAMPAIGNS),
    ):
        paths[name] = root / f"{name}.csv"
        paths[name].write_text(text, encoding="utf-8")
    ws = write_workspace(root / "ws", paths)
    data = load_dataset(load_settings(ws))
    assert "order_id" not in data.orders or data.orders["order_id"].isna().all()
    assert len(data.returns) == 1
    return data, _engine(ws, data)


CUTOFFS = ["2025-07-03", "2025-06-21", "2025-05-01", "2025-03-04", "2025-01-08", "2026-02-01"]


@pytest.mark.parametrize("cutoff", CUTOFFS)
def test_messy_features_equal_pandas(messy, cutoff: str) -> None:
    data, engine = messy
    cut = pd.Timestamp(cutoff)
    for categories in (top_categories(data.orders), None):  # None: chosen at the cutoff
        assert_same_features(
            engine.features(cut, categories=categories), _reference(data, cut, categories)
        )


@pytest.mark.parametrize(
    "categories",
    [
        ["Coats", "Hats"],  # Shoes and Bags spend stay in the denominator ("other")
        ["Shoes", "Gloves"],  # a training category the data lacks: zeros
    ],
)
def test_messy_fixed_categories_equal_pandas(messy, categories: list[str]) -> None:
    data, engine = messy
    cut = pd.Timestamp("2025-06-21")
    assert_same_features(
        engine.features(cut, categories=categories), _reference(data, cut, categories)
    )


def test_messy_case_covers_what_it_claims(messy) -> None:
    _, engine = messy
    got = engine.features(pd.Timestamp("2025-07-03")).X
    assert got.loc["A3", "frequency"] == 1.0  # two lines, one day: one order
    assert got.loc["A5", "frequency"] == 1.0
    assert "A6" not in got.index  # signed up and bought after the cutoff
    assert got.loc["A7", "frequency"] == 0.0  # signed up, never bought: still a customer
    assert got.loc["A1", "returns"] == 1.0
    assert {"share_shoes", "share_bags", "share_hats", "share_coats"} <= set(got.columns)
    assert got.loc["A2", "avg_rating"] == 3.0  # an unrated review: neutral
    tied = engine.features(pd.Timestamp("2025-06-21"))
    assert tied.categories == ["Shoes", "Coats", "Hats", "Bags"]
    assert [c for c in tied.X.columns if c.startswith("gender=")] == [
        "gender=F",  # F and M tie: the level of the lowest customer id first
        "gender=M",
        "gender=X",
    ]


# --- in ranges of customer ids -----------------------------------------------------------------


def test_demo_features_in_id_ranges_equal_one_query(demo, monkeypatch) -> None:
    """Above SHARD_CUSTOMERS the table is computed one range of customer ids at a time: the
    same table exactly (rows already in customer order), and the same sample rows."""
    from insight_agent.engine import features as engine_features

    data, engine = demo
    cutoff = scoring_cutoff(data.orders) - pd.Timedelta(days=90)
    categories = top_categories(data.orders)
    whole = engine.features(cutoff, categories=categories)
    monkeypatch.setattr(engine_features, "SHARD_CUSTOMERS", len(whole.X) // 4)
    ranges = engine._id_ranges()
    assert len(ranges) >= 4 and ranges[0][0] is None and ranges[-1][1] is None
    assert all(a[1] == b[0] for a, b in pairwise(ranges))
    parts = engine.features(cutoff, categories=categories)
    assert parts.categories == whole.categories
    pd.testing.assert_frame_equal(parts.X, whole.X, check_exact=True)
    ids = whole.X.index[::3]
    monkeypatch.setattr(engine_features, "SHARD_CUSTOMERS", len(ids) // 3)
    assert len(engine._id_ranges(ids)) >= 3
    sample = engine.features(cutoff, categories=categories, ids=ids)
    pd.testing.assert_frame_equal(sample.X, whole.X.loc[ids], check_exact=True)


@pytest.mark.parametrize("cutoff", ["2025-07-03", "2025-06-21", "2025-01-08"])
def test_messy_features_in_id_ranges_equal_pandas(messy, monkeypatch, cutoff: str) -> None:
    """Two customers a range (seven customers, four ranges; some ranges hold no buyer, one
    only a customer who never bought): still the pandas table."""
    from insight_agent.engine import features as engine_features

    data, engine = messy
    monkeypatch.setattr(engine_features, "SHARD_CUSTOMERS", 2)
    assert len(engine._id_ranges()) == 4
    cut = pd.Timestamp(cutoff)
    assert_same_features(engine.features(cut), _reference(data, cut, None))


# --- the CLV summary ---------------------------------------------------------------------------


def _same_summary(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    ref = ref.sort_index()  # rfm_summary lists customers by first appearance
    assert got.index.equals(ref.index)
    assert list(got.columns) == list(ref.columns)
    assert (got["frequency"] == ref["frequency"]).all()
    diff = (got.drop(columns="frequency") - ref.drop(columns="frequency")).abs().max()
    assert (diff <= ATOL).all(), diff.to_dict()


@pytest.mark.parametrize("period_days", [1.0, 7.0, 2.5])
@pytest.mark.parametrize("cutoff", [None, "2026-06-15"])
def test_demo_clv_summary_equals_pandas(demo, period_days: float, cutoff: str | None) -> None:
    from insight_agent.analytics.clv import rfm_summary

    data, engine = demo
    cut = None if cutoff is None else pd.Timestamp(cutoff)
    ref = rfm_summary(data.orders, cut, period_days=period_days)
    _same_summary(engine.clv_summary(cut, period_days=period_days), ref)


@pytest.mark.parametrize("period_days", [1.0, 7.0])
def test_messy_clv_summary_equals_pandas(messy, period_days: float) -> None:
    from insight_agent.analytics.clv import rfm_summary

    data, engine = messy
    cut = pd.Timestamp("2025-06-02")  # orders on the cutoff day count
    ref = rfm_summary(data.orders, cut, period_days=period_days)
    _same_summary(engine.clv_summary(cut, period_days=period_days), ref)


@pytest.mark.parametrize("which", ["demo", "messy"])
def test_clv_summary_in_id_ranges_equals_pandas(
    request: pytest.FixtureRequest, monkeypatch, which: str
) -> None:
    """Above SHARD_CUSTOMERS the summary is computed a range of customer ids at a time (the
    messy data: two customers a range, some ranges without a buyer): still pandas'."""
    from insight_agent.analytics.clv import rfm_summary
    from insight_agent.engine import features as engine_features

    data, engine = request.getfixturevalue(which)
    shard = 2 if which == "messy" else data.orders["customer_id"].nunique() // 5
    monkeypatch.setattr(engine_features, "SHARD_CUSTOMERS", shard)
    assert len(engine._id_ranges()) >= 4
    cut = pd.Timestamp("2025-06-02") if which == "messy" else None
    for period_days in (1.0, 7.0):
        ref = rfm_summary(data.orders, cut, period_days=period_days)
        _same_summary(engine.clv_summary(cut, period_days=period_days), ref)


# --- the propensity labels' outcomes -----------------------------------------------------------


def _same_outcomes(data, engine, windows: list[tuple[str, int]]) -> None:
    from insight_agent.analytics.propensity import Outcomes

    ref, got = Outcomes(data.orders, data.campaigns), engine.outcomes()
    assert got.first_order() == ref.first_order()
    assert got.has_campaigns == ref.has_campaigns
    categories = [None, *sorted(data.orders["category"].dropna().unique()), "No such category"]
    for start, days in windows:
        a, b = pd.Timestamp(start), pd.Timestamp(start) + pd.Timedelta(days=days)
        for category in categories:
            assert sorted(got.buyers(a, b, category)) == sorted(ref.buyers(a, b, category))
        if ref.has_campaigns:
            r, g = ref.responses(a, b), got.responses(a, b)
            assert g.index.equals(r.index)
            assert g.tolist() == r.tolist()


def test_demo_outcomes_equal_pandas(demo) -> None:
    data, engine = demo
    end = scoring_cutoff(data.orders)
    windows = [(str((end - pd.Timedelta(days=90 * k)).date()), 90) for k in range(1, 5)]
    _same_outcomes(data, engine, [*windows, ("2000-01-01", 30)])  # and an empty window


def test_messy_outcomes_equal_pandas(messy) -> None:
    data, engine = messy
    # A3's two lines fall on one day; the window bounds cut through the data's dates
    _same_outcomes(data, engine, [("2025-06-02", 30), ("2025-01-01", 200), ("2025-06-21", 1)])


def test_demo_propensity_same_model_from_either_outcomes(demo) -> None:
    """A model trained on the engine's outcomes is the one trained on the frames."""
    from insight_agent.analytics.propensity import SliceCache, Target, train_propensity

    data, engine = demo
    end = scoring_cutoff(data.orders)
    features = SliceCache(lambda c: engine.features(c))
    ref = train_propensity(Target("purchase", "purchase"), data.orders, features, end)
    got = train_propensity(Target("purchase", "purchase"), engine.outcomes(), features, end)
    assert got.metrics == ref.metrics
    assert got.features == ref.features


def test_demo_propensity_trains_on_a_sample_of_a_large_population(demo) -> None:
    """Past cutoffs' features for a sample of the population: the engine computes only the
    sample's rows, the model equals one trained from the whole tables' rows for the same
    sample, and the class counts are still everyone's."""
    from insight_agent.analytics.propensity import SliceCache, Target, _stack, train_propensity

    data, engine = demo
    end = scoring_cutoff(data.orders)
    categories = top_categories(data.orders)
    whole_calls: list[pd.Timestamp] = []

    def whole(c: pd.Timestamp):
        whole_calls.append(c)
        return engine.features(c, categories=categories)

    limit = 600
    sampled = SliceCache(
        whole,
        population_fn=engine.population,
        rows_fn=lambda c, ids: engine.features(c, categories=categories, ids=ids),
        limit=limit,
    )
    reference = SliceCache(lambda c: engine.features(c, categories=categories), limit=limit)
    everyone = SliceCache(lambda c: engine.features(c, categories=categories), limit=10**9)
    target = Target("purchase", "purchase")
    got = train_propensity(target, engine.outcomes(), sampled, end)
    ref = train_propensity(target, engine.outcomes(), reference, end)
    assert whole_calls == []  # no whole table at a past cutoff
    assert got.metrics == ref.metrics and got.features == ref.features
    cut = end - pd.Timedelta(days=180)
    rows = sampled.training(cut)
    assert len(rows) == limit < len(sampled.population(cut))
    pd.testing.assert_frame_equal(rows, everyone(cut).X.loc[rows.index], check_exact=True)
    outcomes = engine.outcomes()
    counts = [
        _stack(target, [cut], cache, 90, outcomes, None, 100, np.random.default_rng(0))
        for cache in (sampled, everyone)
    ]
    assert (counts[0].positives, counts[0].negatives) == (
        counts[1].positives,
        counts[1].negatives,
    )
    assert counts[0].positives + counts[0].negatives == len(everyone(cut).X) > limit


@pytest.mark.parametrize("which", ["demo", "messy"])
def test_population_window_flags_equal_the_buyers(
    request: pytest.FixtureRequest, which: str
) -> None:
    """The population's label flags (an order line, or one in a category, in the window
    after the cutoff) equal looking each customer up in the window's buyers; the other
    columns are the plain population's."""
    from insight_agent.analytics.propensity import Outcomes, window_flag
    from insight_agent.data.ids import isin

    data, engine = request.getfixturevalue(which)
    end = scoring_cutoff(data.orders)
    categories = top_categories(data.orders)[:2] if "category" in data.orders else []
    outcomes = Outcomes(data.orders)
    for cutoff in (end - pd.Timedelta(days=180), end - pd.Timedelta(days=30)):
        pop = engine.population(cutoff, horizon_days=60, categories=categories)
        plain = engine.population(cutoff)
        pd.testing.assert_frame_equal(pop[plain.columns], plain, check_exact=True)
        stop = cutoff + pd.Timedelta(days=60)
        for category in [None, *categories]:
            flags = pop[window_flag(60, category)].to_numpy() > 0
            expected = isin(pop.index, outcomes.buyers(cutoff, stop, category))
            assert np.array_equal(flags, expected), (cutoff, category)
        if which == "demo":  # the messy export's few orders leave these windows empty
            assert 0 < pop[window_flag(60)].sum() < len(pop)


@pytest.mark.parametrize("which", ["demo", "messy"])
def test_category_spend_equals_pandas(request: pytest.FixtureRequest, which: str) -> None:
    from insight_agent.analytics.features import category_spend

    data, engine = request.getfixturevalue(which)
    ref, got = category_spend(data.orders), engine.category_spend()
    assert got.index.equals(ref.index)
    assert np.allclose(got.to_numpy(), ref.to_numpy(), rtol=0, atol=ATOL)


@pytest.mark.parametrize("which", ["demo", "messy"])
@pytest.mark.parametrize("period_days", [1.0, 7.0])
def test_clv_inputs_equal_pandas(
    request: pytest.FixtureRequest, demo_workspace: Path, tmp_path: Path, which: str, period_days
) -> None:
    """What the build's CLV stage fits on: the summary of the positive lines, the customers
    with none, the count of non-positive lines (zero-value lines added to test the last two)."""
    from dataclasses import replace

    from insight_agent.analytics.clv import clv_inputs

    data, _ = request.getfixturevalue(which)
    free = data.orders.iloc[[0, 1]].copy()
    free["amount"] = 0.0  # one customer's only line, and one beside paid lines
    free["customer_id"] = ["ZERO-ONLY", data.orders["customer_id"].iloc[1]]
    orders = pd.concat([data.orders, free], ignore_index=True)
    cut = scoring_cutoff(orders) - pd.Timedelta(days=1)
    ref = clv_inputs(orders, cut, period_days=period_days)
    shutil.copytree(demo_workspace, tmp_path / "ws")  # any workspace: a cache of its own
    engine = _engine(tmp_path / "ws", replace(data, orders=orders, fingerprint=f"free-{which}"))
    try:
        got = engine.clv_inputs(cut, period_days=period_days)
    finally:
        engine.close()
    assert got.cutoff == ref.cutoff
    _same_summary(got.summary, ref.summary)
    assert list(got.without_value) == sorted(ref.without_value) == ["ZERO-ONLY"]
    assert got.nonpositive_lines == ref.nonpositive_lines
    assert ref.nonpositive_lines == 2 + int((data.orders["amount"] <= 0).sum())


@pytest.mark.parametrize("which", ["demo", "messy"])
def test_basket_from_engine_lines_equals_pandas(request: pytest.FixtureRequest, which: str) -> None:
    """Rules, next-best items and segment shares from the engine's reduced lines are the ones
    the full order lines give."""
    from insight_agent.analytics.basket import association_rules, next_best, next_best_by_segment

    data, engine = request.getfixturevalue(which)
    lines = engine.basket_lines()
    assert len(lines) <= len(data.orders)
    try:
        ref = association_rules(data.orders, level="category")
    except InsufficientData:  # the messy export has no basket with two categories
        with pytest.raises(InsufficientData):
            association_rules(lines, level="category")
        return
    got = association_rules(lines, level="category")
    assert got.n_baskets == ref.n_baskets
    pd.testing.assert_frame_equal(got.rules, ref.rules)
    ids = pd.Index(sorted(data.customers["customer_id"].unique()))
    pd.testing.assert_frame_equal(
        next_best(lines, got, customers=ids), next_best(data.orders, ref, customers=ids)
    )
    segments = pd.Series([f"S{i % 3}" for i in range(len(ids))], index=ids)
    pd.testing.assert_frame_equal(
        next_best_by_segment(lines, got, segments),
        next_best_by_segment(data.orders, ref, segments),
    )


@pytest.mark.parametrize("which", ["demo", "messy"])
def test_basket_counts_give_the_lines_rules_and_offers(
    request: pytest.FixtureRequest, which: str
) -> None:
    """Baskets and customers reduced to item masks by the engine give the rules, itemsets,
    next-best offers and segment table the full lines give."""
    from insight_agent.analytics.basket import (
        association_rules,
        next_best,
        next_best_by_segment,
        next_best_from_counts,
    )
    from insight_agent.engine.basket import basket_counts, segment_spend

    data, engine = request.getfixturevalue(which)
    counts = basket_counts(engine)
    assert counts is not None
    assert len(counts.masks) < len(data.orders) and (counts.masks > 0).all()
    try:
        ref = association_rules(data.orders, level="category")
    except InsufficientData as exc:
        with pytest.raises(InsufficientData) as got_exc:
            association_rules(counts)
        assert got_exc.value.message == exc.message
        return
    got = association_rules(counts)
    assert (got.n_baskets, got.n_multi_item_baskets, got.n_rules_total) == (
        ref.n_baskets,
        ref.n_multi_item_baskets,
        ref.n_rules_total,
    )
    pd.testing.assert_frame_equal(got.rules, ref.rules)
    pd.testing.assert_frame_equal(got.itemsets, ref.itemsets)
    ids = pd.Index(sorted(data.customers["customer_id"].unique()))
    best = next_best_from_counts(counts, got, customers=ids)
    pd.testing.assert_frame_equal(best, next_best(data.orders, ref, customers=ids))
    three = next_best_from_counts(counts, got, customers=ids[::7], top_n=3)
    pd.testing.assert_frame_equal(three, next_best(data.orders, ref, customers=ids[::7], top_n=3))
    segments = pd.Series([f"S{i % 3}" for i in range(len(ids))], index=ids)
    pd.testing.assert_frame_equal(
        next_best_by_segment(None, got, segments, best=best, spend=segment_spend(engine, segments)),
        next_best_by_segment(data.orders, ref, segments),
    )


@pytest.mark.parametrize("which", ["demo", "messy"])
@pytest.mark.parametrize("ranges", [False, True])
def test_segment_profiles_from_engine_spend_equal_pandas(
    request: pytest.FixtureRequest, monkeypatch, which: str, ranges: bool
) -> None:
    """The segments' top categories from the engine's per-segment sums (refunds netted; in
    ranges of customer ids too) equal those from each customer's spend per category."""
    from insight_agent.analytics.features import category_spend
    from insight_agent.analytics.segmentation import _profiles
    from insight_agent.engine import features as engine_features
    from insight_agent.engine.basket import segment_spend

    data, engine = request.getfixturevalue(which)
    X = engine.features(scoring_cutoff(data.orders)).X
    if ranges:
        monkeypatch.setattr(engine_features, "SHARD_CUSTOMERS", max(2, len(X) // 4))
        assert len(engine._id_ranges()) >= 3
    labels = pd.Series([f"S{i % 3}" for i in range(len(X))], index=X.index, name="segment")
    per_customer = category_spend(data.orders)
    assert per_customer is not None
    features = ["recency_days", "frequency", "monetary_total"]
    ref = _profiles(X, labels, features, per_customer, None)
    got = _profiles(X, labels, features, segment_spend(engine, labels, net=True), None)
    assert got["top_categories"].tolist() == ref["top_categories"].tolist()
    assert all(len(cats) > 0 for cats in ref["top_categories"])
