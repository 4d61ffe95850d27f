"""Tests for the seeded demo data generator (insight_agent.data.demo)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insight_agent.data.demo import (
    ASPECTS,
    SEGMENTS,
    DemoConfig,
    DemoFrames,
    generate_frames,
    write_demo,
)

SMALL = DemoConfig(n_customers=2000, seed=7)
TABLES = ("customers", "orders", "reviews", "campaigns", "truth_customers", "truth_reviews")
COLUMNS = {
    "customers": [
        "customer_id",
        "name",
        "email",
        "phone",
        "signup_date",
        "age",
        "gender",
        "region",
        "country",
        "channel",
        "income",
    ],
    "orders": [
        "order_id",
        "customer_id",
        "order_date",
        "product",
        "category",
        "quantity",
        "unit_price",
    ],
    "reviews": ["review_id", "customer_id", "date", "product", "category", "rating", "text"],
    "campaigns": ["customer_id", "campaign", "sent_date", "responded"],
    "truth_customers": ["customer_id", "segment", "churned", "churn_date"],
    "truth_reviews": ["review_id", "aspect", "sentiment"],
}
DATE_COLUMNS = {
    "customers": ["signup_date"],
    "orders": ["order_date"],
    "reviews": ["date"],
    "campaigns": ["sent_date"],
    "truth_customers": ["churn_date"],
}
PLANTED_PAIRS = [("Apparel", "Footwear"), ("Home", "Kitchen"), ("Accessories", "Beauty")]


@pytest.fixture(scope="module")
def frames() -> DemoFrames:
    return generate_frames(SMALL)


@pytest.fixture(scope="module")
def end() -> pd.Timestamp:
    return pd.Timestamp(SMALL.end_date)


@pytest.fixture(scope="module")
def truth(frames: DemoFrames) -> pd.DataFrame:
    return frames.truth_customers.set_index("customer_id")


@pytest.fixture(scope="module")
def headers(frames: DemoFrames) -> pd.DataFrame:
    """One row per order with its amount, sorted by customer and date."""
    o = frames.orders.assign(amount=frames.orders["quantity"] * frames.orders["unit_price"])
    g = o.groupby("order_id").agg(
        customer_id=("customer_id", "first"),
        order_date=("order_date", "first"),
        amount=("amount", "sum"),
    )
    return g.sort_values(["customer_id", "order_date"]).reset_index()


@pytest.fixture(scope="module")
def customer_stats(headers: pd.DataFrame, truth: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    c = headers.groupby("customer_id").agg(
        first=("order_date", "min"),
        last=("order_date", "max"),
        n_orders=("order_id", "size"),
        spend=("amount", "sum"),
    )
    c["recency"] = (end - c["last"]).dt.days
    c["mean_gap"] = (c["last"] - c["first"]).dt.days / (c["n_orders"] - 1).where(c.n_orders > 1)
    return c.join(truth)


@pytest.fixture(scope="module")
def reviews(frames: DemoFrames, truth: pd.DataFrame) -> pd.DataFrame:
    r = frames.reviews.merge(frames.truth_reviews, on="review_id", validate="one_to_one")
    r["segment"] = truth["segment"].reindex(r["customer_id"]).to_numpy()
    return r


# ------------------------------------------------------------------------------------------
# Config and determinism
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_customers": 0},
        {"n_customers": -5},
        {"n_customers": 2.5},
        {"n_customers": True},
        {"n_reviews": -1},
        {"seed": -1},
        {"seed": "42"},
        {"days": 30},
        {"end_date": "2026-09-30"},
        {"end_date": dt.datetime(2026, 9, 30, 12, 0)},
    ],
)
def test_invalid_config_raises(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DemoConfig(**kwargs)


def test_generate_frames_rejects_non_config() -> None:
    with pytest.raises(ValueError):
        generate_frames({"n_customers": 10})  # type: ignore[arg-type]


def test_default_review_count() -> None:
    assert DemoConfig().review_count == 4000
    assert DemoConfig(n_customers=10).review_count == 8
    assert DemoConfig(n_customers=10, n_reviews=0).review_count == 0


def test_same_config_gives_identical_frames(frames: DemoFrames) -> None:
    again = generate_frames(DemoConfig(n_customers=2000, seed=7))
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(frames, name), getattr(again, name))


def test_same_config_gives_identical_csv_bytes(frames: DemoFrames, tmp_path: Path) -> None:
    first = write_demo(frames, tmp_path / "a")
    second = write_demo(generate_frames(SMALL), tmp_path / "b")
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_different_seed_gives_different_data(frames: DemoFrames) -> None:
    other = generate_frames(DemoConfig(n_customers=2000, seed=8))
    assert not frames.orders.equals(other.orders)
    assert not frames.customers["name"].equals(other.customers["name"])
    assert not frames.reviews["text"].equals(other.reviews["text"])


# ------------------------------------------------------------------------------------------
# Shape, columns, ids and value domains
# ------------------------------------------------------------------------------------------
def test_exact_columns(frames: DemoFrames) -> None:
    for name, columns in COLUMNS.items():
        assert list(getattr(frames, name).columns) == columns, name


def test_default_sizes() -> None:
    f = generate_frames()
    assert len(f.customers) == len(f.truth_customers) == 5000
    assert 50_000 <= len(f.orders) <= 70_000
    lines_per_order = len(f.orders) / f.orders["order_id"].nunique()
    assert 1.4 <= lines_per_order <= 1.8
    assert len(f.reviews) == len(f.truth_reviews) == 4000
    assert 5_000 <= len(f.campaigns) <= 20_000
    assert f.campaigns["campaign"].nunique() == 6
    assert 0.08 <= f.campaigns["responded"].mean() <= 0.20


def test_dates_inside_window(frames: DemoFrames) -> None:
    start, end = pd.Timestamp(SMALL.start_date), pd.Timestamp(SMALL.end_date)
    assert (end - start).days == SMALL.days - 1
    for name, columns in DATE_COLUMNS.items():
        for column in columns:
            values = getattr(frames, name)[column].dropna()
            assert len(values) > 0, (name, column)
            assert values.min() >= start and values.max() <= end, (name, column)
            assert (values == values.dt.normalize()).all(), (name, column)


def test_ids_unique_and_formatted(frames: DemoFrames) -> None:
    c, o, r = frames.customers, frames.orders, frames.reviews
    assert c["customer_id"].is_unique and c["customer_id"].str.fullmatch(r"C\d{6}").all()
    assert c["email"].is_unique
    assert r["review_id"].is_unique and r["review_id"].str.fullmatch(r"R\d{6}").all()
    assert o["order_id"].str.fullmatch(r"O\d{7}").all()
    assert frames.truth_customers["customer_id"].equals(c["customer_id"])
    assert frames.truth_reviews["review_id"].equals(r["review_id"])
    # An order belongs to one customer on one date and never repeats a product.
    per_order = o.groupby("order_id").agg(
        customers=("customer_id", "nunique"), dates=("order_date", "nunique")
    )
    assert (per_order["customers"] == 1).all() and (per_order["dates"] == 1).all()
    assert not o.duplicated(["order_id", "product"]).any()
    assert set(o["customer_id"]) <= set(c["customer_id"])
    assert set(frames.campaigns["customer_id"]) <= set(c["customer_id"])
    assert not frames.campaigns.duplicated(["customer_id", "campaign"]).any()


def test_value_domains(frames: DemoFrames) -> None:
    c, o, r = frames.customers, frames.orders, frames.reviews
    assert c["age"].between(18, 80).all()
    assert set(c["gender"]) <= {"F", "M", "X"}
    assert c["gender"].isin(["F", "M"]).mean() > 0.9
    assert c["country"].value_counts(normalize=True).iloc[0] > 0.6
    assert set(c["channel"]) == {
        "Organic Search",
        "Paid Social",
        "Email",
        "Referral",
        "Marketplace",
    }
    assert (c["income"] % 100 == 0).all() and (c["income"] > 0).all()
    assert c["email"].str.fullmatch(r"[a-z.]+\d*@example\.(com|org|net)").all()
    assert c["name"].str.fullmatch(r"[A-Z][a-z']+ [A-Z][A-Za-z']+").all()
    assert c["phone"].str.fullmatch(r"\+\d{2,3} (7700 900\d{3}|555 0\d{3})").all()
    assert (o["quantity"] >= 1).all()
    assert (o["unit_price"] > 0).all()
    assert np.allclose(o["unit_price"], o["unit_price"].round(2))
    assert o["category"].nunique() == 8
    assert r["rating"].between(1, 5).all()
    assert set(frames.campaigns["responded"]) <= {0, 1}
    t = frames.truth_customers
    assert set(t["segment"]) == set(SEGMENTS)
    assert t["churned"].dtype == bool
    assert (t["churn_date"].notna() == t["churned"]).all()
    assert set(frames.truth_reviews["aspect"]) == set(ASPECTS)
    assert set(frames.truth_reviews["sentiment"]) == {"positive", "negative", "mixed"}


def test_segment_shares(truth: pd.DataFrame) -> None:
    shares = truth["segment"].value_counts(normalize=True)
    expected = dict(zip(SEGMENTS, (0.15, 0.25, 0.20, 0.20, 0.20), strict=True))
    for segment, share in expected.items():
        assert shares[segment] == pytest.approx(share, abs=0.01)


@pytest.mark.parametrize(
    "config",
    [
        DemoConfig(n_customers=1, seed=3),
        DemoConfig(n_customers=7, n_reviews=0),
        DemoConfig(n_customers=50, days=365, end_date=dt.date(2025, 3, 1)),
    ],
)
def test_small_and_unusual_configs(config: DemoConfig) -> None:
    f = generate_frames(config)
    assert len(f.customers) == config.n_customers
    assert len(f.reviews) == len(f.truth_reviews) == config.review_count
    assert set(f.orders["customer_id"]) == set(f.customers["customer_id"])
    start, end = pd.Timestamp(config.start_date), pd.Timestamp(config.end_date)
    assert f.customers["signup_date"].min() >= start
    assert f.orders["order_date"].max() <= end
    for name in TABLES:
        assert list(getattr(f, name).columns) == COLUMNS[name]


# ------------------------------------------------------------------------------------------
# Planted customer structure
# ------------------------------------------------------------------------------------------
def test_every_customer_orders_soon_after_signup(
    frames: DemoFrames, customer_stats: pd.DataFrame
) -> None:
    signup = frames.customers.set_index("customer_id")["signup_date"]
    assert customer_stats.index.sort_values().equals(signup.index.sort_values())
    delay = (customer_stats["first"] - signup.reindex(customer_stats.index)).dt.days
    assert delay.between(0, 3).all()


def test_nothing_bought_from_churn_date_on(customer_stats: pd.DataFrame) -> None:
    churned = customer_stats[customer_stats["churned"]]
    assert (churned["last"] < churned["churn_date"]).all()


def test_churners_in_every_established_segment(truth: pd.DataFrame, end: pd.Timestamp) -> None:
    rate = truth.groupby("segment")["churned"].mean()
    assert rate["lapsing"] > 0.9
    assert rate["new_customer"] == 0
    for segment in ("loyal_high_spender", "bargain_hunter", "occasional"):
        assert 0.01 < rate[segment] < 0.35, segment
    assert rate["loyal_high_spender"] < rate["occasional"]
    churned = truth[truth["churned"] & (truth["segment"] != "lapsing")]
    assert (churned["churn_date"] > end - pd.Timedelta(days=90)).sum() >= 10


def test_gaps_grow_before_churn(headers: pd.DataFrame, truth: pd.DataFrame) -> None:
    gaps = headers.assign(gap=headers.groupby("customer_id")["order_date"].diff().dt.days)

    def last_vs_typical(g: pd.Series) -> float:
        values = g.dropna().to_numpy()
        if len(values) < 3:
            return np.nan
        return values[-1] / max(np.median(values[:-1]), 1.0)

    ratio = gaps.groupby("customer_id")["gap"].apply(last_vs_typical).dropna()
    churned = truth["churned"].reindex(ratio.index)
    assert churned.sum() > 100
    assert ratio[churned].median() > 1.4 * ratio[~churned].median()
    assert ratio[churned].median() > 1.4


def test_segments_differ(frames: DemoFrames, customer_stats: pd.DataFrame) -> None:
    c = customer_stats
    seg = c.groupby("segment")
    avg_price = (
        frames.orders.merge(frames.truth_customers[["customer_id", "segment"]], on="customer_id")
        .groupby("segment")["unit_price"]
        .mean()
    )
    others = [s for s in SEGMENTS if s != "loyal_high_spender"]
    assert (avg_price["loyal_high_spender"] > 1.25 * avg_price[others]).all()
    assert avg_price["bargain_hunter"] == avg_price.min()
    spend = seg["spend"].median()
    assert (spend["loyal_high_spender"] > 2 * spend[others]).all()
    # New customers: recent signups with one to three orders.
    signup = frames.customers.set_index("customer_id")["signup_date"]
    new = c["segment"] == "new_customer"
    assert (signup[new[new].index] >= pd.Timestamp(SMALL.end_date) - pd.Timedelta(days=119)).all()
    assert c.loc[new, "n_orders"].between(1, 3).all()
    established = signup[new[~new].index]
    assert (established <= pd.Timestamp(SMALL.end_date) - pd.Timedelta(days=200)).all()
    # Lapsing customers went quiet months ago; loyal ones buy the most often.
    assert (c.loc[c["segment"] == "lapsing", "recency"] > 120).mean() > 0.95
    gap = seg["mean_gap"].median()
    assert gap["loyal_high_spender"] < 35
    assert 90 < gap["occasional"] < 200
    assert gap["loyal_high_spender"] < gap["bargain_hunter"] < gap["occasional"]
    assert seg["n_orders"].median().idxmax() == "loyal_high_spender"


def test_copurchase_lift(frames: DemoFrames) -> None:
    baskets = pd.crosstab(frames.orders["order_id"], frames.orders["category"]).clip(upper=1)
    support = baskets.mean()
    for a, b in PLANTED_PAIRS:
        lift = (baskets[a] & baskets[b]).mean() / (support[a] * support[b])
        assert lift > 1.5, (a, b, lift)
    # A pair that is not planted stays unremarkable.
    lift = (baskets["Electronics"] & baskets["Home"]).mean() / (
        support["Electronics"] * support["Home"]
    )
    assert lift < 1.2


def test_kmeans_recovers_segments(customer_stats: pd.DataFrame, end: pd.Timestamp) -> None:
    pytest.importorskip("sklearn")
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    c = customer_stats.copy()
    c["tenure"] = (end - c["first"]).dt.days
    c["aov"] = c["spend"] / c["n_orders"]
    c["mean_gap"] = c["mean_gap"].fillna(c["tenure"])
    features = np.log1p(c[["recency", "n_orders", "spend", "aov", "tenure", "mean_gap"]])
    labels = KMeans(5, n_init=10, random_state=0).fit_predict(
        StandardScaler().fit_transform(features)
    )
    assert adjusted_rand_score(c["segment"], labels) >= 0.6


def test_recent_inactivity_is_predictable(frames: DemoFrames, end: pd.Timestamp) -> None:
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold, cross_val_predict

    cutoff = end - pd.Timedelta(days=90)
    o = frames.orders.assign(amount=frames.orders["quantity"] * frames.orders["unit_price"])
    before = o[o["order_date"] <= cutoff]
    g = before.groupby("order_id").agg(
        customer_id=("customer_id", "first"), d=("order_date", "first"), amt=("amount", "sum")
    )
    f = g.groupby("customer_id").agg(
        last=("d", "max"), first=("d", "min"), n=("d", "size"), spend=("amt", "sum")
    )
    recent = g[g["d"] > cutoff - pd.Timedelta(days=90)].groupby("customer_id")["amt"].sum()
    x = pd.DataFrame(
        {
            "recency": (cutoff - f["last"]).dt.days,
            "n": f["n"],
            "spend": f["spend"],
            "tenure": (cutoff - f["first"]).dt.days,
            "recent": recent.reindex(f.index).fillna(0),
        }
    )
    y = (~f.index.isin(o.loc[o["order_date"] > cutoff, "customer_id"])).astype(int)
    proba = cross_val_predict(
        LogisticRegression(max_iter=1000),
        np.log1p(x).to_numpy(),
        y,
        cv=KFold(5, shuffle=True, random_state=0),
        method="predict_proba",
    )[:, 1]
    assert roc_auc_score(y, proba) >= 0.75


# ------------------------------------------------------------------------------------------
# Campaigns
# ------------------------------------------------------------------------------------------
def test_campaign_targets_and_responses(frames: DemoFrames, truth: pd.DataFrame) -> None:
    camp = frames.campaigns.merge(
        frames.customers[["customer_id", "signup_date"]], on="customer_id"
    )
    assert (camp["signup_date"] <= camp["sent_date"]).all()
    assert (camp.groupby("campaign")["sent_date"].nunique() == 1).all()
    camp["segment"] = truth["segment"].reindex(camp["customer_id"]).to_numpy()
    rate = camp.pivot_table(index="segment", columns="campaign", values="responded")
    sales = ["Spring Sale", "Summer Clearance", "Black Friday"]
    assert (rate.loc["bargain_hunter", sales] > rate.loc["loyal_high_spender", sales]).all()
    assert (
        rate.loc["loyal_high_spender", "Loyalty Rewards"]
        > 2 * rate.loc["bargain_hunter", "Loyalty Rewards"]
    )
    assert camp.groupby("segment")["responded"].mean().idxmin() == "lapsing"


# ------------------------------------------------------------------------------------------
# Reviews
# ------------------------------------------------------------------------------------------
def test_anonymous_share(frames: DemoFrames) -> None:
    assert 0.10 <= frames.reviews["customer_id"].isna().mean() <= 0.20


def test_reviews_follow_an_order(frames: DemoFrames) -> None:
    named = frames.reviews.dropna(subset=["customer_id"])
    lines = frames.orders[["customer_id", "product", "order_date"]]
    joined = named.merge(lines, on=["customer_id", "product"])
    delay = (joined["date"] - joined["order_date"]).dt.days
    ok = joined.assign(ok=delay.between(0, 14)).groupby("review_id")["ok"].any()
    assert ok.reindex(named["review_id"], fill_value=False).all()
    assert frames.reviews["date"].is_monotonic_increasing


def test_rating_agrees_with_sentiment(reviews: pd.DataFrame) -> None:
    allowed = {"positive": {4, 5}, "mixed": {3}, "negative": {1, 2}}
    for sentiment, ratings in allowed.items():
        assert set(reviews.loc[reviews["sentiment"] == sentiment, "rating"]) <= ratings


def test_sentiment_depends_on_segment(reviews: pd.DataFrame) -> None:
    bad_service = reviews["aspect"].isin(["shipping", "support"]) & (
        reviews["sentiment"] == "negative"
    )
    share = bad_service.groupby(reviews["segment"]).mean()
    assert share["lapsing"] > 0.4
    assert share["lapsing"] > 4 * share["loyal_high_spender"]
    good_quality = (reviews["aspect"] == "quality") & (reviews["sentiment"] == "positive")
    assert good_quality.groupby(reviews["segment"]).mean().idxmax() == "loyal_high_spender"
    top = reviews.groupby("segment")["aspect"].agg(lambda s: s.mode()[0])
    assert top["bargain_hunter"] == "price"
    assert top["lapsing"] == "shipping"
    assert top["loyal_high_spender"] == "quality"
    new = reviews.loc[reviews["segment"] == "new_customer", "aspect"]
    assert new.isin(["sizing", "packaging"]).mean() > 0.5


def test_texts_are_varied(frames: DemoFrames) -> None:
    texts = frames.reviews["text"]
    assert texts.nunique() / len(texts) > 0.9
    assert texts.str.len().between(20, 400).all()
    assert not texts.str.contains(r"[{}]|@|\d{5}", regex=True).any()


def test_late_delivery_complaints(reviews: pd.DataFrame) -> None:
    late = reviews.loc[
        (reviews["aspect"] == "shipping") & (reviews["sentiment"] == "negative"), "text"
    ]
    assert late.str.contains(r"\blate\b|delay", case=False, regex=True).mean() > 0.3
    positive = reviews.loc[reviews["sentiment"] == "positive", "text"]
    assert not positive.str.contains(r"\blate\b|delay", case=False, regex=True).any()


def test_aspects_are_lexically_distinct(reviews: pd.DataFrame) -> None:
    keywords = {
        "shipping": r"deliver|parcel|courier|shipping|dispatch",
        "price": r"price|value|deal|discount|bargain",
        "sizing": r"size|fit|dimension|measure",
        "support": r"customer service|support|refund|agent|chat",
        "packaging": r"packag|box|wrap|packed",
    }
    for aspect, pattern in keywords.items():
        hit = reviews["text"].str.contains(pattern, case=False, regex=True)
        own = reviews["aspect"] == aspect
        assert hit[own].mean() > 0.9, aspect
        assert hit[~own].mean() < 0.1, aspect


# ------------------------------------------------------------------------------------------
# Writing CSV files
# ------------------------------------------------------------------------------------------
def test_write_demo(frames: DemoFrames, tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    paths = write_demo(frames, data_dir)
    assert set(paths) == set(TABLES)
    for name in ("customers", "orders", "reviews", "campaigns"):
        assert paths[name] == data_dir / f"{name}.csv"
    assert paths["truth_customers"] == data_dir / "truth" / "customers_truth.csv"
    assert paths["truth_reviews"] == data_dir / "truth" / "reviews_truth.csv"
    assert sorted(p.name for p in data_dir.glob("*.csv")) == [
        "campaigns.csv",
        "customers.csv",
        "orders.csv",
        "reviews.csv",
    ]
    for name, path in paths.items():
        text = path.read_text(encoding="utf-8")
        assert text.splitlines()[0] == ",".join(COLUMNS[name])
        back = pd.read_csv(path, keep_default_na=False, dtype=str)
        assert len(back) == len(getattr(frames, name))
        for column in DATE_COLUMNS.get(name, []):
            assert back[column].str.fullmatch(r"(\d{4}-\d{2}-\d{2})?").all()
    orders = pd.read_csv(paths["orders"], dtype=str)
    assert orders["unit_price"].str.fullmatch(r"\d+\.\d{2}").all()
    reviews = pd.read_csv(paths["reviews"], dtype={"customer_id": str})
    assert reviews["customer_id"].isna().mean() == pytest.approx(
        frames.reviews["customer_id"].isna().mean()
    )
    truth = pd.read_csv(paths["truth_customers"], keep_default_na=False, dtype=str)
    assert ((truth["churn_date"] == "") == (truth["churned"] == "False")).all()
