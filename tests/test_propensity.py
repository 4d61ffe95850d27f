"""Propensity models: out-of-time quality on the demo data, explanations, clear refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insight_agent.analytics.features import scoring_cutoff
from insight_agent.analytics.propensity import (
    PROB_CEIL,
    PROB_FLOOR,
    Target,
    dataset_features,
    feature_cache,
    permutation_auc_drop,
    reason_text,
    score_customers,
    train_propensity,
)
from insight_agent.errors import InsufficientData


def _setup(data):
    fn = dataset_features(data)
    return fn, scoring_cutoff(data.orders)


@pytest.fixture(scope="module")
def churn(demo_data):
    data, _ = demo_data
    fn, end = _setup(data)
    model = train_propensity(
        Target("churn", "churn"), data.orders, fn, end, campaigns=data.campaigns
    )
    return model, fn, end


def test_churn_model_beats_the_bar_on_the_held_out_window(churn):
    model, _, end = churn
    m = model.metrics
    assert m["roc_auc"] >= 0.75, m
    assert m["eval_window"][1] == str((end - pd.Timedelta(days=1)).date())
    assert m["lift_by_decile"][0] > 1.5
    assert m["capture_by_decile"][-1] == pytest.approx(1.0)
    lo, hi = m["roc_auc_ci95"]
    assert 0 < m["roc_auc_se"] < 0.05 and lo < m["roc_auc"] < hi and "cv_folds" not in m
    assert set(model.comparison) == {"logistic_regression", "hist_gradient_boosting"}
    assert model.family in model.comparison
    assert 0 < m["precision"] <= 1 and 0 < m["recall"] <= 1


def test_scores_are_calibrated_and_explained(churn, demo_data):
    model, fn, end = churn
    X = fn(end).X
    scored = score_customers(model, X)
    assert scored["probability"].between(PROB_FLOOR, PROB_CEIL).all()  # never exactly 0 or 1
    assert set(scored["decile"]) == set(range(1, 11))
    top = scored[scored["decile"] == 1]
    assert top["probability"].min() >= scored["probability"].median()
    # most of the riskiest customers come with a reason, and reasons quote the typical value
    with_reason = top["reasons"].map(len) > 0
    assert with_reason.mean() > 0.8
    assert all("(typical" in r for rs in top["reasons"] for r in rs)
    # calibration: mean predicted churn on the held-out window is close to the observed rate
    assert abs(model.metrics["brier"]) < 0.25
    assert model.drivers and model.drivers[0]["importance"] > 0


def test_planted_churners_score_higher(churn, demo_data):
    model, fn, end = churn
    _, truth = demo_data
    scored = score_customers(model, fn(end).X, n_reasons=0)
    churned = truth["churned"].reindex(scored.index).fillna(False).astype(bool)
    assert (
        scored.loc[churned, "probability"].mean() > scored.loc[~churned, "probability"].mean() + 0.2
    )


def _tiny_orders(n_customers: int, days: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2025-01-01")
    for c in range(n_customers):
        for _ in range(rng.integers(1, 4)):
            rows.append(
                (
                    f"c{c}",
                    start + pd.Timedelta(days=int(rng.integers(0, days))),
                    float(rng.uniform(5, 50)),
                )
            )
    return pd.DataFrame(rows, columns=["customer_id", "order_date", "amount"])


def _tiny_features(orders: pd.DataFrame):
    customers = pd.DataFrame({"customer_id": sorted(orders["customer_id"].unique())})
    return feature_cache(customers, orders)


def test_refuses_short_history():
    orders = _tiny_orders(200, days=150)
    fn = _tiny_features(orders)
    end = orders["order_date"].max() + pd.Timedelta(days=1)
    with pytest.raises(InsufficientData) as info:
        train_propensity(Target("churn", "churn"), orders, fn, end)
    assert "days of order history" in info.value.message


def test_refuses_too_few_positives():
    orders = _tiny_orders(40, days=700)
    fn = _tiny_features(orders)
    end = orders["order_date"].max() + pd.Timedelta(days=1)
    with pytest.raises(InsufficientData) as info:
        train_propensity(Target("purchase", "purchase"), orders, fn, end)
    message = info.value.message
    assert "positive" in message and "negative" in message and "at least 50" in message


def test_response_needs_campaigns(demo_data):
    data, _ = demo_data
    fn, end = _setup(data)
    with pytest.raises(InsufficientData) as info:
        train_propensity(Target("response", "response"), data.orders, fn, end, campaigns=None)
    assert "campaigns table" in info.value.message


def test_reason_text():
    assert reason_text("recency_days", 210, 35) == "last order 210 days ago (typical 35)"
    assert reason_text("share_footwear", 0.5, 0.1) == "50% of spend on footwear (typical 10%)"
    assert reason_text("channel=Email", 1.0, 0.0) == "channel is Email"
    assert reason_text("orders_90d", 1, 3) == "1 order in the last 90 days (typical 3)"


def test_reasons_explain_the_call_in_the_cards_direction(churn):
    model, fn, end = churn
    X = fn(end).X
    scored = score_customers(model, X)
    low = scored[scored["probability"] < model.metrics["threshold"]]
    # customers predicted to stay get reasons too: why they stay
    assert (low["reasons"].map(len) > 0).mean() > 0.5
    raises = {d["label"] for d in model.drivers if d["direction"] == "higher raises"}
    if "days since last order" in raises:
        for cid, reasons in low["reasons"].items():
            for r in reasons:
                if r.startswith("last order "):  # a recent order is a reason to stay
                    assert X.loc[cid, "recency_days"] < model.medians["recency_days"], r
    one = X.index[X["frequency"] == 1]
    assert not any("every" in r or "gap" in r for rs in scored.loc[one, "reasons"] for r in rs)


def test_scoring_in_batches_gives_the_same_table(churn, demo_data):
    """Rows are scored a batch at a time (memory); deciles still rank all of them."""
    model, fn, end = churn
    X = fn(end).X
    whole = score_customers(model, X, batch=len(X))
    pd.testing.assert_frame_equal(score_customers(model, X, batch=777), whole)


def test_customers_with_the_same_reasons_share_one_list(churn):
    """Equal reason lists are one object (memory at millions of customers), across batches;
    the values are those each row would get on its own."""
    model, fn, end = churn
    X = fn(end).X
    scored = score_customers(model, X, batch=97)
    reasons = list(scored["reasons"])
    by_value: dict[tuple[str, ...], int] = {}
    for row in reasons:
        assert by_value.setdefault(tuple(row), id(row)) == id(row)
    assert len(by_value) < len(reasons)
    alone = [score_customers(model, X.iloc[[i]])["reasons"].iloc[0] for i in range(0, len(X), 37)]
    assert alone == reasons[::37]


@pytest.mark.parametrize("family", ["boosting", "logistic"])
def test_permutation_drop_equals_scikit_learns_permutation_importance(family):
    """The drivers' importances are scikit-learn's permutation importance (ROC-AUC, 2 repeats,
    seed 0), computed faster: same shuffles, AUC by ranks, unused columns skipped."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.inspection import permutation_importance
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    X = rng.normal(size=(1500, 9))
    X[:, 4] = np.round(X[:, 4])  # ties in the scores
    y = (X[:, 0] + 0.5 * X[:, 1] + X[:, 4] + rng.normal(size=1500) > 0).astype(int)
    model = (
        HistGradientBoostingClassifier(max_iter=15, max_leaf_nodes=4, random_state=0)
        if family == "boosting"
        else LogisticRegression()
    ).fit(X, y)
    ref = permutation_importance(
        model, X, y, scoring="roc_auc", n_repeats=2, random_state=0
    ).importances_mean
    drop, score = permutation_auc_drop(model, X, y)
    assert np.allclose(drop, ref, atol=1e-12, rtol=0)
    assert ref.max() > 0.1 and (family == "logistic" or (ref == 0).any())  # unused columns
    # the scores rank rows as the probabilities do (a monotone map of them)
    by_score = model.predict_proba(X)[:, 1][np.argsort(score, kind="stable")]
    assert (np.diff(by_score) >= -1e-12).all()


def test_the_auc_interval_is_delongs():
    """The card's interval comes from DeLong's variance: pinned against its definition, the
    variance of each positive's and each negative's share of won pairs (ties half)."""
    from sklearn.metrics import roc_auc_score

    from insight_agent.analytics.propensity import auc_standard_error

    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.3
    score = np.round(y * 0.8 + rng.normal(size=300), 1)  # rounded: ties on purpose
    auc, se = auc_standard_error(y, score)
    x, z = score[y], score[~y]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    expected = np.sqrt(v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(z))
    assert auc == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert se == pytest.approx(expected, rel=1e-12)


def test_what_ifs_rerun_only_the_trees_that_split_on_the_column(churn, monkeypatch):
    """Reasons from re-running only the trees that split on a driver equal those from whole
    predictions, bit for bit (the log-odds are summed in scikit-learn's order)."""
    from insight_agent.analytics import propensity

    model, fn, end = churn
    assert model.family == "hist_gradient_boosting"
    X = fn(end).X
    trees = propensity.TreeSum.of(model)
    assert trees is not None
    A = model.matrix(X)
    assert np.array_equal(trees.total(trees.each(trees.binned(A))), model.log_odds(A))
    assert any(len(ks) < len(trees.trees) for ks in trees.splitting_on.values())
    fast = score_customers(model, X, batch=700)
    monkeypatch.setattr(propensity.TreeSum, "of", classmethod(lambda cls, m: None))
    whole = score_customers(model, X, batch=700)
    pd.testing.assert_frame_equal(fast, whole)
