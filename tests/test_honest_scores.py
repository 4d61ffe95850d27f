"""Honest scores on a real transaction history: the CDNOW sample (2,357 customers, 1997-98).

Before: churn probabilities of exactly 1.0 and purchase probabilities of exactly 0.0 for half
the customers (2.7% of the "0.0" bought in the held-out window), P(alive) 1.0 beside churn
1.0 without a word, "orders every 535 days" for one-order customers, reasons against the
model card's direction, long-lapsed segments called "Steady high spenders", and customers
with only $0 orders silently without CLV.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from insight_agent.analytics.clv import (
    NO_ORDERS_NOTE,
    ONE_TIME_NOTE,
    ZERO_VALUE_NOTE,
    customer_values,
    fit_clv,
)
from insight_agent.analytics.features import scoring_cutoff
from insight_agent.analytics.propensity import (
    PROB_CEIL,
    PROB_FLOOR,
    CalibratedModel,
    PropensityModel,
    Target,
    feature_cache,
    reason_text,
    score_customers,
)
from insight_agent.analytics.segmentation import (
    LAPSED_CYCLES,
    _names_and_stages,
    segment_customers,
)
from insight_agent.cli import app
from tests.test_clv_check import _cdnow_workspace

GAP_WORDS = ("every", "gap", "usual")


def _orders(ws: Path) -> pd.DataFrame:
    raw = pd.read_csv(ws.parent / "orders.csv", dtype={"customer_id": str})
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"],
            "order_date": pd.to_datetime(raw["order_date"]),
            "amount": raw["amount"].astype(float),
        }
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`insight build` on the CDNOW sample (k = 3, what the silhouette picks, to save time)."""
    ws = _cdnow_workspace(tmp_path_factory.mktemp("cdnow"))
    result = CliRunner().invoke(app, ["build", "-w", str(ws), "--json", "--k", "3"])
    assert result.exit_code == 0, result.output
    folder = ws / ".insight" / "builds" / (ws / ".insight" / "current").read_text().strip()
    orders = _orders(ws)
    people = pd.DataFrame({"customer_id": sorted(orders["customer_id"].unique())})
    X = feature_cache(people, orders)(scoring_cutoff(orders)).X
    return {
        "manifest": json.loads(result.stdout),
        "folder": folder,
        "customers": pd.read_parquet(folder / "customers.parquet"),
        "orders": orders,
        "X": X,
    }


def _model(built: dict, target: str) -> PropensityModel:
    return joblib.load(built["folder"] / "models" / f"{target}.joblib")


# --- 1. probabilities ---------------------------------------------------------------------------


def test_no_probability_is_exactly_zero_or_one(built):
    c = built["customers"]
    for column in ("p_churn", "p_purchase"):
        p = c[column]
        assert p.notna().all()
        assert ((p > 0) & (p < 1)).all(), column
        assert p.between(PROB_FLOOR, PROB_CEIL).all()
    # plain isotonic said 0.0 for 1,218 long-lapsed one-time buyers; in the held-out window
    # 2.7% of such customers bought: the smoothed floor says about that
    assert 0.005 < c["p_purchase"].min() < 0.1
    repeat = c["clv_note"] != ONE_TIME_NOTE
    assert c.loc[repeat & c["p_alive"].notna(), "p_alive"].between(0.001, 0.999).all()


def test_calibration_never_states_certainty():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 1))
    y = (x[:, 0] + rng.normal(scale=0.3, size=3000) > 0).astype(int)  # nearly separable
    base = LogisticRegression().fit(x[:2000], y[:2000])
    for rows in (slice(2000, 3000), slice(2000, 2300)):  # isotonic; sigmoid (< 200 a class)
        model = CalibratedModel.fit(base, x[rows], y[rows])
        far = np.array([[-50.0], [-5.0], [0.0], [5.0], [50.0]])  # beyond the calibration range
        p = model.predict_proba(far)[:, 1]
        assert ((p >= PROB_FLOOR) & (p <= PROB_CEIL)).all(), (model.method, p)
        assert (np.diff(p) >= 0).all()
    assert CalibratedModel.fit(base, x[2000:], y[2000:]).method == "isotonic"
    assert CalibratedModel.fit(base, x[2000:2300], y[2000:2300]).method == "sigmoid"
    # isotonic ends are smoothed, not clipped: the bottom step is no more certain than
    # (positives + 1/2) / (rows + 1) of its calibration rows allows
    iso = CalibratedModel.fit(base, x[2000:], y[2000:])
    assert iso.predict_proba(np.array([[-50.0]]))[0, 1] > 1 / 1002


# --- 3. reasons ---------------------------------------------------------------------------------


def _reason_feature(model: PropensityModel, text: str, values: pd.Series) -> str | None:
    """The driver a reason text was written from (None for the one-order sentence)."""
    for d in model.drivers:
        f = d["feature"]
        if f in values and reason_text(f, values[f], model.medians.get(f, 0.0)) == text:
            return f
    return None


@pytest.mark.parametrize("target", ["churn", "purchase"])
def test_reasons_agree_with_the_model_card_and_the_prediction(built, target):
    model = _model(built, target)
    X = built["X"]
    scored = score_customers(model, X)
    np.testing.assert_allclose(
        scored["probability"].round(4), built["customers"][f"p_{target}"].loc[X.index]
    )
    direction = {d["feature"]: 1.0 if d["direction"] == "higher raises" else -1.0
                 for d in model.drivers}  # fmt: skip
    threshold = model.metrics["threshold"]
    score = model.log_odds(X)
    checked = 0
    for i, (cid, row) in enumerate(scored.iterrows()):
        toward = 1.0 if row["probability"] >= threshold else -1.0
        values = X.loc[cid]
        for text in row["reasons"]:
            feature = _reason_feature(model, text, values)
            if feature is None:
                assert text.startswith(("one order so far", "no order yet")), text
                continue
            side = np.sign(values[feature] - model.medians[feature])
            # the card's direction, and this customer's predicted side
            assert side * direction[feature] * toward > 0, (cid, text, row["probability"])
            what_if = X.loc[[cid]].copy()
            what_if[feature] = model.medians[feature]
            push = score[i] - model.log_odds(what_if)[0]
            assert push * toward > 0, (cid, text)
            checked += 1
    assert checked > 500


def test_spend_is_never_a_churn_reason_when_the_card_says_spend_lowers_churn():
    """A model whose own local effect of spend is positive (collinear with orders) while the
    card, across customers, says spend lowers churn: no "spent" reason."""

    class Linear:
        def decision_function(self, A):
            return A @ np.array([-1.0, 0.002])  # orders lower churn, spend (given orders) raises

    X = pd.DataFrame({"frequency": [1.0, 2.0, 3.0], "monetary_total": [6553.0, 100.0, 56.0]})
    X.index = ["big", "mid", "small"]

    def model(direction: str) -> PropensityModel:
        rng_x = np.random.default_rng(0).normal(size=(400, 2)) * [1, 300] + [3, 100]
        y = (Linear().decision_function(rng_x) > -3).astype(int)
        return PropensityModel(
            target=Target("churn", "churn"),
            horizon_days=90,
            family="logistic_regression",
            estimator=CalibratedModel.fit(Linear(), rng_x, y),
            features=["frequency", "monetary_total"],
            metrics={"threshold": 0.5},
            comparison={},
            drivers=[
                {"feature": "monetary_total", "direction": direction},
                {"feature": "frequency", "direction": "higher lowers"},
            ],
            medians={"frequency": 3.0, "monetary_total": 56.0},
            cutoff=pd.Timestamp("2024-01-01"),
        )

    honest = score_customers(model("higher lowers"), X)
    assert not any("spent" in r for rs in honest["reasons"] for r in rs)
    # the same push is a reason when the card agrees with it
    agreeing = score_customers(model("higher raises"), X)
    assert any("6,553 spent" in r for r in agreeing.loc["big", "reasons"])


def test_one_order_customers_get_no_interpurchase_reasons(built):
    c = built["customers"].assign(days=built["X"]["recency_days"])
    one = c[c["frequency"] == 1]
    assert len(one) > 1000
    sentences = 0
    for _, row in one.iterrows():
        for column in ("churn_reasons", "purchase_reasons"):
            for text in row[column]:
                assert not any(w in text for w in GAP_WORDS), text
                if text.startswith("one order so far"):
                    days = int(re.search(r"so far, ([\d,]+) days ago", text)[1].replace(",", ""))
                    assert days == round(row["days"])
                    sentences += 1
    assert sentences > 1000


# --- 4. segment names ---------------------------------------------------------------------------


def test_lapsed_segments_are_not_called_steady_or_loyal(built):
    seg = segment_customers(built["X"], k=3)
    names = set(seg.names.values())
    assert names == {"High-value loyal", "Lapsed big spenders", "Lapsed one-time buyers"}
    assert names == set(built["manifest"]["segments"]["names"].values())
    for _, row in seg.profiles.iterrows():
        name = row["name"].lower()
        if row["median_recency_days"] > LAPSED_CYCLES * row["median_cycle_days"]:
            assert not any(w in name for w in ("steady", "loyal", "regular")), name
            assert row["lifecycle"] in ("lapsed", "lapsing", "one-time")
        if row["median_frequency"] <= 1:
            assert "one-time" in name and row["lifecycle"] == "one-time"
    loyal = seg.profiles[seg.profiles["name"] == "High-value loyal"].iloc[0]
    assert loyal["lifecycle"] == "active" and loyal["median_recency_days"] < 60


def test_names_follow_the_lifecycle():
    def row(recency, orders, spend, cycle, tenure=500.0, aov=50.0, n=100):
        return {
            "customers": n,
            "median_recency_days": recency,
            "median_frequency": orders,
            "median_monetary_total": spend,
            "median_avg_order_value": aov,
            "median_tenure_days": tenure,
            "median_cycle_days": cycle,
        }

    profiles = pd.DataFrame.from_dict(
        {
            "S1": row(300, 6, 2000, 60),  # big spenders, five cycles overdue
            "S2": row(20, 12, 3000, 30),  # loyal and on cycle
            "S3": row(40, 1, 40, np.nan),  # one order, recently
            "S4": row(600, 1, 30, np.nan),  # one order, long ago
            "S5": row(40, 4, 200, 45),  # regular
        },
        orient="index",
    )
    names, stages = _names_and_stages(profiles, cycle_days=45.0)
    assert names == {
        "S1": "Lapsed big spenders",
        "S2": "High-value loyal",
        "S3": "One-time buyers",
        "S4": "Lapsed one-time buyers",
        "S5": "Regular customers",
    }
    assert stages == {
        "S1": "lapsed",
        "S2": "active",
        "S3": "one-time",
        "S4": "one-time",
        "S5": "active",
    }


# --- 2 and 5. CLV -------------------------------------------------------------------------------


def test_customers_without_clv_are_counted_and_explained(built):
    orders = built["orders"]
    zero = set(orders.groupby("customer_id")["amount"].max().loc[lambda s: s <= 0].index)
    assert len(zero) == 8  # the CDNOW sample's customers whose every order is $0
    result = fit_clv(orders)
    assert set(result.without_value) == zero
    assert result.diagnostics["n_customers_without_value"] == 8
    index = pd.Index([*sorted(orders["customer_id"].unique()), "never-bought"])
    values, report = customer_values(result, index)
    assert (values.loc[sorted(zero), "note"] == ZERO_VALUE_NOTE).all()
    assert values.loc[sorted(zero), "clv"].isna().all()
    assert values.loc["never-bought", "note"] == NO_ORDERS_NOTE
    assert report["customers_without_clv"] == {"only_zero_value_orders": 8, "no_orders": 1}
    assert report["notes"][0] == "8 customers have only zero-value orders: no CLV"
    # every customer without a CLV says why
    assert values.loc[values["clv"].isna(), "note"].notna().all()
    # the build counts them in the CLV stage and in clv.json
    stage = next(s for s in built["manifest"]["stages"] if s["name"] == "clv")
    assert stage["message"] == "8 customers have only zero-value orders: no CLV"
    assert stage["details"]["customers_without_clv"]["only_zero_value_orders"] == 8
    clv_json = json.loads((built["folder"] / "clv.json").read_text())
    assert clv_json["customers_without_clv"]["only_zero_value_orders"] == 8
    c = built["customers"]
    assert (c.loc[c["clv_12m"].isna(), "clv_note"] == ZERO_VALUE_NOTE).sum() == 8


def test_one_time_buyers_p_alive_is_explained(built):
    c = built["customers"]
    one_time = c["clv_note"] == ONE_TIME_NOTE
    assert one_time.sum() == fit_clv(built["orders"]).diagnostics["n_one_time_buyers"]
    # BG/NBD's P(alive) is 1 for them by construction: stated, and said why
    assert (c.loc[one_time, "p_alive"] == 1.0).all()
    assert "by construction" in ONE_TIME_NOTE
    # ... while the CLV says little value is left in the long-lapsed ones
    lapsed = one_time & (c["recency_days"] > 365)
    assert c.loc[lapsed, "clv_12m"].median() < c.loc[~one_time, "clv_12m"].median()
