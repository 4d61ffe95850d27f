"""`insight build` end to end on the demo workspace, and the commands that read its output."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from insight_agent.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def built(built_demo: Path) -> Path:
    """The shared built demo workspace (see conftest.built_demo)."""
    return built_demo


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def test_build_writes_a_versioned_build_with_manifest(built):
    current = (built / ".insight" / "current").read_text().strip()
    folder = built / ".insight" / "builds" / current
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["build_id"] == current
    assert manifest["versions"]["scikit-learn"]
    assert len(manifest["data"]["fingerprint"]) == 64
    stages = {s["name"]: s for s in manifest["stages"]}
    for name in (
        "load",
        "features",
        "segments",
        "propensity:churn",
        "propensity:purchase",
        "propensity:response",
        "reviews",
        "clv",
        "basket",
        "write",
    ):
        assert stages[name]["status"] == "ok", stages[name]
        assert stages[name]["seconds"] >= 0 and stages[name]["peak_rss_mb"] > 0
    for name in (
        "customers.parquet",
        "customers.sqlite",
        "segments.json",
        "clv.json",
        "basket.json",
        "models/churn.json",
        "models/churn.joblib",
    ):
        assert (folder / name).is_file(), name
    assert not list((built / ".insight" / "builds").glob(".*.tmp"))
    # every file has a reader (docs/analytics.md "What a build writes"): no extras
    written = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    from insight_agent.analytics.build import _file_name

    models = {f"models/{_file_name(t)}.{x}" for t in manifest["models"] for x in ("json", "joblib")}
    tables = {"customers.parquet", "customers.sqlite", "manifest.json"}
    assert written == tables | {"segments.json", "clv.json", "basket.json"} | models


def test_customer_table_joins_every_model(built):
    folder = built / ".insight" / "builds" / (built / ".insight" / "current").read_text().strip()
    table = pd.read_parquet(folder / "customers.parquet")
    assert len(table) == 5000 and table.index.is_unique
    assert (table["clv_12m"] > 0).mean() > 0.9  # CLV joined, not silently empty
    by_segment = table.groupby("segment_name")["clv_12m"].mean()
    assert by_segment["High-value loyal"] > 3 * by_segment.filter(like="Lapsing").max()
    churn = table.groupby("segment_name")["p_churn"].mean()
    assert churn.filter(like="Lapsing").min() > churn["High-value loyal"] + 0.3
    # everyone gets a next-best category except customers who already buy every category
    assert table["next_best_category"].notna().mean() > 0.9
    assert table["p_purchase"].between(0, 1).all()
    # the SQLite copy holds each reason list as json.dumps would write it
    from insight_agent.analytics.artifacts import lookup_customer

    for cid in table.index[:: len(table) // 7]:
        row = lookup_customer(folder, cid)
        assert row is not None
        assert row["churn_reasons"] == list(table.at[cid, "churn_reasons"])


@pytest.mark.parametrize("with_dates", [False, True])
def test_customer_lookup_gives_each_row_with_its_values(tmp_path, with_dates) -> None:
    """A point lookup gives the row as the table holds it, with the types SQLite columns
    gave before the rows were stored as JSON: missing values (NaN, NA, None) as None,
    float32 as the double it is, yes/no as 1/0, lists as lists, dates as text."""
    from insight_agent.analytics.artifacts import BuildWriter, lookup_customer

    table = pd.DataFrame(
        {
            "name": pd.array(["x", pd.NA, 'q "uoted" \\ é\n'], dtype="string"),
            "segment": pd.array(["S1", None, "[not json]"], dtype="str"),
            "p": [0.1 + 0.2, np.nan, 1e300],
            "whole": [3.0, -0.0, float("inf")],
            "p32": np.array([0.1, np.nan, 3.5], dtype=np.float32),
            "n": np.array([1, -2, 2**40], dtype=np.int64),
            "k": pd.array([1, None, 3], dtype="Int64"),
            "flag": [True, False, True],
            "reasons": [["a", 'b "c"'], [], None],
        },
        index=pd.Index(["c1", "c2", "c3"], name="customer_id", dtype="str"),
    )
    if with_dates:
        table["seen"] = pd.to_datetime(["2026-01-02 00:00:00", None, "2026-03-04 05:06:07"])

    class Writer:
        def path(self, name: str):
            return tmp_path / name

    BuildWriter.write_customers(Writer(), table)
    got = {cid: lookup_customer(tmp_path, cid) for cid in table.index}
    assert lookup_customer(tmp_path, "nobody") is None
    assert list(got["c1"]) == ["customer_id", *table.columns]
    assert got["c1"] | {"seen": None} == {
        "customer_id": "c1",
        "name": "x",
        "segment": "S1",
        "p": 0.1 + 0.2,
        "whole": 3.0,
        "p32": float(np.float32(0.1)),
        "n": 1,
        "k": 1,
        "flag": 1,
        "reasons": ["a", 'b "c"'],
        "seen": None,
    }
    assert got["c2"] | {"seen": None} == {
        "customer_id": "c2",
        **dict.fromkeys(["name", "segment", "p", "p32", "k", "seen"]),
        "whole": -0.0,
        "n": -2,
        "flag": 0,
        "reasons": [],
    }
    assert math.copysign(1.0, got["c2"]["whole"]) == -1.0
    assert got["c3"]["name"] == 'q "uoted" \\ é\n' and got["c3"]["segment"] == "[not json]"
    assert got["c3"]["p"] == 1e300 and got["c3"]["whole"] == float("inf")
    assert got["c3"]["n"] == 2**40 and got["c3"]["reasons"] is None
    assert type(got["c1"]["whole"]) is float and type(got["c1"]["n"]) is int
    if with_dates:
        assert [got[c]["seen"] for c in table.index] == [
            "2026-01-02 00:00:00",
            None,
            "2026-03-04 05:06:07",
        ]


@pytest.mark.parametrize("with_dates", [False, True])
def test_customer_table_written_in_slices_equals_one_write(tmp_path, monkeypatch, with_dates):
    """Slice by slice (two rows at a time here), the Parquet file reads back as
    ``to_parquet`` of the whole table, and the SQLite copy gives every row (a list column
    that is empty in its first slices typed by a later one)."""
    import sqlite3

    from insight_agent.analytics import artifacts

    table = pd.DataFrame(
        {
            "segment": pd.array(["S1", None, "S2", "S1", "S3"], dtype="str"),
            "p": [0.25, np.nan, 1e300, 0.0, 1.0],
            "n": np.array([1, -2, 2**40, 0, 5], dtype=np.int64),
            "reasons": [[], [], [], ['é "q"', "b"], ["a"]],
            "notes": np.array([None, None, None, None, "x"], dtype=object),
        },
        index=pd.Index(["c1", "c2", "c3", "c4", "c5"], name="customer_id", dtype="str"),
    )
    if with_dates:
        table["seen"] = pd.to_datetime(["2026-01-02", None, "2026-03-04", None, "2026-05-06"])
    table.to_parquet(tmp_path / "whole.parquet")
    monkeypatch.setattr(artifacts, "WRITE_ROWS", 2)

    class Writer:
        def path(self, name: str):
            return tmp_path / name

    artifacts.BuildWriter.write_customers(Writer(), table)
    got = pd.read_parquet(tmp_path / "customers.parquet")
    want = pd.read_parquet(tmp_path / "whole.parquet")
    assert got.index.equals(want.index) and list(got.columns) == list(want.columns)
    assert (got.dtypes == want.dtypes).all()
    for col in want.columns:
        if want[col].dtype != object:
            pd.testing.assert_series_equal(got[col], want[col])
            continue
        assert [list(v) if isinstance(v, np.ndarray) else v for v in got[col]] == [
            list(v) if isinstance(v, np.ndarray) else v for v in want[col]
        ], col
    with sqlite3.connect(tmp_path / "customers.sqlite") as con:
        index = con.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    con.close()
    rows = [artifacts.lookup_customer(tmp_path, c) for c in table.index]
    assert [(r["customer_id"], r["segment"], r["reasons"], r["notes"]) for r in rows] == [
        ("c1", "S1", [], None),
        ("c2", None, [], None),
        ("c3", "S2", [], None),
        ("c4", "S1", ['é "q"', "b"], None),
        ("c5", "S3", ["a"], "x"),
    ]
    assert index == [("idx_customer",)]


def test_segments_command(built):
    result = invoke("segments", "-w", str(built), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert 3 <= summary["k"] <= 8
    shares = [s["share_revenue"] for s in summary["segments"]]
    assert shares == sorted(shares, reverse=True)
    assert summary["top_revenue_segment"] == summary["segments"][0]["name"]
    assert all(s["rules"] for s in summary["segments"])
    text = invoke("segments", "-w", str(built))
    assert text.exit_code == 0 and "High-value loyal" in text.output


def test_model_card_command(built):
    result = invoke("model-card", "churn", "-w", str(built), "--json")
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["metrics"]["roc_auc"] >= 0.75
    assert card["reliability"] in {"strong", "useful"}
    assert "ROC-AUC" in card["headline"]
    text = invoke("model-card", "churn", "-w", str(built))
    assert "Lift by decile" in text.output and "drivers" in text.output
    footwear = invoke("model-card", "footwear", "-w", str(built), "--json")
    assert footwear.exit_code == 0, footwear.output
    missing = invoke("model-card", "nonsense", "-w", str(built))
    assert missing.exit_code == 2 and "available:" in missing.output


def test_a_model_that_ranks_well_but_lifts_little_says_so(built):
    """ROC-AUC alone called a grocer's purchase model "strong" while 94% of households buy
    every quarter: its top tenth was 1.1x as likely as anyone. The card and the answer say so."""
    from insight_agent.analytics.queries import targeting_note
    from insight_agent.tools.builtin import _a_model

    note = targeting_note({"top_decile_lift": 1.06, "base_rate": 0.94})
    assert note and "1.1x" in note and "94.0%" in note and "random" in note
    assert targeting_note({"top_decile_lift": 3.2, "base_rate": 0.2}) is None
    assert targeting_note({"top_decile_lift": 1.2}) is None  # no base rate: nothing to say
    facts = {
        "target": "purchase",
        "reliability": "strong at ranking, but of little use for targeting",
        "targeting": note,
        "roc_auc": 0.81,
        "top_10pct_capture": 0.106,
        "top_decile_lift": 1.1,
        "base_rate": 0.94,
        "top_drivers": ["orders (higher raises)"],
    }
    assert "little use for targeting" in _a_model(facts) and note in _a_model(facts)
    # the demo's churn model lifts well: no caveat
    card = json.loads(invoke("model-card", "churn", "-w", str(built), "--json").stdout)
    assert "targeting" not in card and card["metrics"]["top_decile_lift"] >= 1.5


def test_the_model_answer_says_how_it_was_tested(built):
    """ "how was the purchase model validated, any leakage?" got the card's summary only: the
    answer now says the test window and why no outcome leaks into the features."""
    from insight_agent.agent.router import render
    from insight_agent.data.bootstrap import open_workspace
    from insight_agent.tools.registry import ToolContext, call_tool

    result = call_tool(ToolContext(open_workspace(built)), "model_quality", {"target": "purchase"})
    assert result.ok, result
    window = result.facts["evaluated_on"]
    assert result.facts["how_tested"].startswith("Out of time: trained on 3 earlier windows")
    assert f"from {window[0]} to {window[1]}" in result.facts["how_tested"]
    assert "no outcome leaks" in result.facts["how_tested"]
    answer = render("model_quality", result.facts)
    assert f"Tested out of time on {window[0]} to {window[1]}" in answer


def test_the_value_answer_gives_both_ends_per_customer(built):
    from insight_agent.agent.router import render
    from insight_agent.data.bootstrap import open_workspace
    from insight_agent.tools.registry import ToolContext, call_tool

    facts = call_tool(ToolContext(open_workspace(built)), "clv_summary", {}).facts
    each = sorted(facts["segments"], key=lambda s: s["mean_clv"])
    answer = render("clv_summary", facts)
    high, low = answer.splitlines()[1:3]
    assert high.startswith(f"- Highest per customer: {each[-1]['segment']}, ")
    assert low.startswith(f"- Lowest per customer: {each[0]['segment']}, ")


def test_score_command(built):
    result = invoke("score", "--customer", "C000001", "-w", str(built), "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["customer_id"] == "C000001"
    assert 0 <= row["p_churn"] <= 1 and 1 <= row["churn_decile"] <= 10
    assert isinstance(row["churn_reasons"], list)
    assert row["segment_name"] and row["clv_12m"] >= 0
    text = invoke("score", "-c", "C000001", "-w", str(built))
    assert "12-month CLV" in text.output
    unknown = invoke("score", "-c", "nobody", "-w", str(built))
    assert unknown.exit_code == 1 and "not in the current build" in unknown.output


def test_audience_command(built, tmp_path):
    out = tmp_path / "churn.csv"
    result = invoke(
        "audience", "--target", "churn", "--top", "50", "-o", str(out), "-w", str(built), "--json"
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert len(frame) == 50
    assert frame["probability"].is_monotonic_decreasing
    assert {"customer_id", "segment_name", "reasons", "clv_12m"} <= set(frame.columns)
    seg = invoke(
        "audience",
        "-t",
        "churn",
        "-o",
        str(tmp_path / "s.csv"),
        "--segment",
        "High-value loyal",
        "-w",
        str(built),
    )
    assert seg.exit_code == 0, seg.output
    assert set(pd.read_csv(tmp_path / "s.csv")["segment_name"]) == {"High-value loyal"}


def test_commands_before_any_build_say_what_to_do(demo_workspace, tmp_path):
    root = tmp_path / "fresh"
    shutil.copytree(demo_workspace, root, ignore=shutil.ignore_patterns(".insight"))
    result = invoke("segments", "-w", str(root))
    assert result.exit_code == 2
    assert "no models yet" in result.output and "insight build" in result.output


def test_stages_the_data_cannot_support_are_skipped_with_the_reason(tmp_path):
    from tests.conftest import FIXTURES, write_workspace

    ws = write_workspace(
        tmp_path / "small",
        {"customers": FIXTURES / "good/customers.csv", "orders": FIXTURES / "good/orders.csv"},
    )
    result = invoke("build", "-w", str(ws), "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    skipped = {s["name"]: s["message"] for s in manifest["stages"] if s["status"] == "skipped"}
    assert "segmentation needs at least" in skipped["segments"]
    assert "days of order history" in skipped["propensity:churn"]
    assert "repeat buyers" in skipped["clv"]
    assert "basket" in skipped


def test_models_from_other_library_versions_load_with_a_clear_warning(built, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(built, root)
    folder = root / ".insight" / "builds" / (root / ".insight" / "current").read_text().strip()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["versions"]["scikit-learn"] = "0.0.1"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = invoke("segments", "-w", str(root))
    assert result.exit_code == 0
    assert "warning: models were built with different library versions" in result.stderr
    assert "scikit-learn 0.0.1 at build time" in result.stderr
    assert "UserWarning" not in result.stderr


def _search(built: Path, *args: str) -> list[dict]:
    result = invoke("reviews", "search", *args, "-w", str(built), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["hits"]


def test_review_search_finds_the_planted_complaints(built):
    truth = pd.read_csv(built / "data" / "truth" / "reviews_truth.csv").set_index("review_id")
    hits = _search(built, "late delivery", "-k", "5")
    assert len(hits) == 5
    aspects = [truth.loc[h["review_id"], "aspect"] for h in hits]
    assert aspects.count("shipping") >= 4, aspects
    assert all(h["text"] and h["review_id"].startswith("R") for h in hits)
    lapsing = _search(built, "late delivery", "--segment", "Lapsing customers", "-k", "5")
    assert lapsing and all(h["segment"] == "Lapsing customers" for h in lapsing)
    assert [truth.loc[h["review_id"], "aspect"] for h in lapsing].count("shipping") >= 4


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (("--max-rating", "2"), lambda h: h["rating"] <= 2),
        (("--min-rating", "4"), lambda h: h["rating"] >= 4),
        (("--sentiment", "positive"), lambda h: h["sentiment"] == "positive"),
        (("--since", "2026-01-01"), lambda h: h["date"] >= "2026-01-01"),
        (("--until", "2025-01-31"), lambda h: h["date"] <= "2025-01-31"),
        (("--category", "Footwear"), lambda h: h["category"] == "Footwear"),
        (("--contains", "courier"), lambda h: "courier" in h["text"]),
        (("--segment", "S1"), lambda h: h["segment"] == "High-value loyal"),
    ],
)
def test_each_review_filter_is_respected(built, args, check):
    hits = _search(built, "quality of the product", "-k", "8", *args)
    assert hits, args
    assert all(check(h) for h in hits), (args, hits)


def test_rebuilding_embeds_nothing_new(built):
    result = invoke("build", "-w", str(built), "--json")
    assert result.exit_code == 0, result.output
    reviews = json.loads(result.stdout)["reviews"]
    assert reviews["added"] == 0 and reviews["removed"] == 0
    assert reviews["unchanged"] + reviews["metadata_updated"] == reviews["total"] == 4000


def test_representative_quotes_reflect_each_segment(built):
    truth = pd.read_csv(built / "data" / "truth" / "reviews_truth.csv").set_index("review_id")
    for segment, aspect in (("Lapsing customers", "shipping"), ("High-value loyal", "quality")):
        result = invoke(
            "reviews", "quotes", "--segment", segment, "-k", "3", "-w", str(built), "--json"
        )
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        assert payload["segment"] == segment and payload["reviews"] > 100
        aspects = [truth.loc[q["review_id"], "aspect"] for q in payload["quotes"]]
        assert len(aspects) == 3 and aspects.count(aspect) >= 2, (segment, aspects)
        assert all(q["segment"] == segment for q in payload["quotes"])


def test_engine_build_equals_the_pandas_reference(built: Path, tmp_path: Path) -> None:
    """Every order-based stage reads the engine (features, labels' outcomes, category spend,
    CLV inputs); the same build from the pandas reference gives the same customer table."""
    from insight_agent.analytics.build import BuildOptions, run_build
    from insight_agent.workspace import Workspace, locate

    root = tmp_path / "ws"
    shutil.copytree(built, root, ignore=shutil.ignore_patterns("builds", "current", "chroma"))
    stages = ("segments", "propensity", "clv", "basket")
    run_build(Workspace.open(locate(root)), BuildOptions(engine="pandas", stages=stages))
    folder = root / ".insight" / "builds" / (root / ".insight" / "current").read_text().strip()
    ref = pd.read_parquet(folder / "customers.parquet")
    current = (built / ".insight" / "current").read_text().strip()
    got = pd.read_parquet(built / ".insight" / "builds" / current / "customers.parquet")
    assert set(ref.columns) <= set(got.columns)
    assert_same_customers(got, ref)
    # the basket rules, from the engine's item masks, and the per-segment table
    baskets = [
        json.loads((f / "basket.json").read_text())
        for f in (folder, built / ".insight" / "builds" / current)
    ]
    assert baskets[0]["by_segment"] and baskets[0] == baskets[1]


def test_engine_build_equals_the_pandas_reference_on_real_orders(tmp_path: Path) -> None:
    """The same on data no one generated: the public CDNOW transactions (whitespace file, no
    header, compact dates, no customers file, no categories or campaigns). The engine build
    trains its models two at a time, the reference one at a time."""
    from insight_agent.analytics.build import BuildOptions, run_build
    from insight_agent.workspace import Workspace, locate

    cdnow = Path(__file__).parent / "fixtures" / "cdnow" / "CDNOW_sample.txt"
    tables = {}
    for engine in ("duckdb", "pandas"):
        root = tmp_path / engine
        root.mkdir()
        (root / "insight.toml").write_text(
            "[workspace]\nname = 'cdnow'\n[data]\ntoday = 1998-07-01\n[data.orders]\n"
            f"path = '{cdnow}'\nheader = false\n"
            "names = ['customer_id', '', 'order_date', 'quantity', 'amount']\n"
        )
        stages = ("segments", "propensity", "clv")
        workers = 2 if engine == "duckdb" else 1
        options = BuildOptions(engine=engine, stages=stages, workers=workers)
        run_build(Workspace.open(locate(root)), options)
        folder = root / ".insight" / "builds" / (root / ".insight" / "current").read_text().strip()
        tables[engine] = pd.read_parquet(folder / "customers.parquet")
    assert len(tables["pandas"]) == 2357
    assert {"p_churn", "churn_reasons", "clv_12m", "segment"} <= set(tables["pandas"].columns)
    assert list(tables["duckdb"].columns) == list(tables["pandas"].columns)
    assert_same_customers(tables["duckdb"], tables["pandas"])


# CLV comes from an optimiser whose last digits vary from run to run (thread pools, summation
# order); these columns are rounded, so a value may land one rounding step apart.
ROUNDING_STEP = {"clv_12m": 0.01, "expected_purchases_12m": 0.01, "p_alive": 0.001}


def assert_same_customers(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    """Same customers; every column of ``ref`` equal (floats within 1e-6, CLV columns within
    one rounding step)."""
    assert got.index.equals(ref.index)
    for col in ref.columns:
        a, b = got[col], ref[col]
        if pd.api.types.is_float_dtype(b):
            atol = ROUNDING_STEP.get(col, 0.0) * 1.01
            same = np.isclose(
                a.to_numpy(float), b.to_numpy(float), rtol=1e-6, atol=atol, equal_nan=True
            )
            assert same.all(), (col, a[~same].head(), b[~same].head())
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), col


def test_an_interrupted_build_resumes_after_its_last_finished_step(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped during CLV, the build leaves its finished steps; the next build of the same
    data and options restores them and writes the customer table a build in one go writes."""
    import insight_agent.analytics.build as build_module
    from insight_agent.analytics.build import BuildOptions, run_build
    from insight_agent.workspace import Workspace, locate

    root = tmp_path / "ws"
    shutil.copytree(built, root, ignore=shutil.ignore_patterns("builds", "current", "chroma"))
    ws = Workspace.open(locate(root))
    options = BuildOptions(stages=("segments", "propensity", "clv", "basket"))

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    heard: list[tuple[str, str]] = []
    with monkeypatch.context() as patch:
        patch.setattr(build_module, "_clv_commit", stopped)
        with pytest.raises(KeyboardInterrupt):
            run_build(ws, options, lambda stage, msg: heard.append((stage, msg)))
    assert "resume after the last one" in heard[-1][1]
    builds = root / ".insight" / "builds"
    (left,) = [p for p in builds.iterdir() if p.name.startswith(".")]
    assert not (root / ".insight" / "current").exists()  # nothing half-built is published

    heard.clear()
    manifest = run_build(ws, BuildOptions(stages=options.stages, threads=2))  # same results
    assert manifest["build_id"] == left.name.strip(".").removesuffix(".tmp")
    resumed = [s["name"] for s in manifest["stages"] if s["resumed"]]
    assert resumed[0] == "segments" and "propensity:churn" in resumed
    assert "clv" not in resumed and "basket" not in resumed
    assert not any(p.name.startswith(".") for p in builds.iterdir())  # no leftover
    folder = builds / manifest["build_id"]
    assert not (folder / "checkpoint").exists()
    assert (folder / "models" / "churn.joblib").is_file()
    got = pd.read_parquet(folder / "customers.parquet")
    current = (built / ".insight" / "current").read_text().strip()
    ref = pd.read_parquet(built / ".insight" / "builds" / current / "customers.parquet")
    assert list(got.columns) == list(ref.columns)
    assert (got.dtypes == ref.dtypes).all()
    assert_same_customers(got, ref)


def test_models_trained_in_parallel_equal_one_at_a_time_and_resume_midway(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Propensity models train three at a time in threads; stopped while one of them trains,
    the build keeps the models committed before it, and the next build (one at a time)
    trains the rest: the customer table and model cards equal a build in one go."""
    import insight_agent.analytics.propensity as propensity
    from insight_agent.analytics.build import BuildOptions, run_build
    from insight_agent.workspace import Workspace, locate

    current = (built / ".insight" / "current").read_text().strip()
    reference = built / ".insight" / "builds" / current
    ref_manifest = json.loads((reference / "manifest.json").read_text())
    categories = [
        s["name"].removeprefix("propensity:")
        for s in ref_manifest["stages"]
        if s["name"].startswith("propensity:category:") and s["status"] == "ok"
    ]
    assert len(categories) >= 2
    root = tmp_path / "ws"
    shutil.copytree(built, root, ignore=shutil.ignore_patterns("builds", "current", "chroma"))
    ws = Workspace.open(locate(root))
    options = BuildOptions(stages=("segments", "propensity", "clv", "basket"), workers=3)
    train = propensity.train_propensity
    threads: set[str] = set()

    def second_category_stops(target, *args, **kwargs):
        import threading

        threads.add(threading.current_thread().name)
        if target.name == categories[1]:
            raise KeyboardInterrupt
        return train(target, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(propensity, "train_propensity", second_category_stops)
        with pytest.raises(KeyboardInterrupt):
            run_build(ws, options)
    assert len(threads) == 3 and all(t.startswith("propensity") for t in threads)

    manifest = run_build(ws, BuildOptions(stages=options.stages, workers=1))
    resumed = {s["name"] for s in manifest["stages"] if s["resumed"]}
    assert {"segments", "propensity:churn", f"propensity:{categories[0]}"} <= resumed
    assert f"propensity:{categories[1]}" not in resumed
    folder = root / ".insight" / "builds" / manifest["build_id"]
    got = pd.read_parquet(folder / "customers.parquet")
    ref = pd.read_parquet(reference / "customers.parquet")
    assert list(got.columns) == list(ref.columns)
    assert_same_customers(got, ref)
    for card in (reference / "models").glob("*.json"):
        mine = json.loads((folder / "models" / card.name).read_text())
        theirs = json.loads(card.read_text())
        assert mine["metrics"] == theirs["metrics"], card.name
        assert mine["drivers"] == theirs["drivers"], card.name


def test_clv_and_basket_computed_beside_the_models_equal_one_at_a_time(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two workers, CLV and the basket rules are computed in a thread of their own while
    the models train; the customer table, clv.json and basket.json equal the reference."""
    import threading

    import insight_agent.analytics.build as build
    from insight_agent.workspace import Workspace, locate

    current = (built / ".insight" / "current").read_text().strip()
    reference = built / ".insight" / "builds" / current
    root = tmp_path / "ws"
    shutil.copytree(built, root, ignore=shutil.ignore_patterns("builds", "current", "chroma"))
    threads: dict[str, str] = {}
    for name in ("_clv_compute", "_basket_compute"):
        compute = getattr(build, name)

        def where(*args, _name=name, _compute=compute):
            threads[_name] = threading.current_thread().name
            return _compute(*args)

        monkeypatch.setattr(build, name, where)
    options = build.BuildOptions(stages=("segments", "propensity", "clv", "basket"), workers=2)
    manifest = build.run_build(Workspace.open(locate(root)), options)
    assert all(t.startswith("side") for t in threads.values()) and len(threads) == 2
    names = [s["name"] for s in manifest["stages"]]
    assert names.index("clv") > max(i for i, n in enumerate(names) if n.startswith("propensity"))
    assert names.index("basket") == names.index("clv") + 1
    folder = root / ".insight" / "builds" / manifest["build_id"]
    got = pd.read_parquet(folder / "customers.parquet")
    ref = pd.read_parquet(reference / "customers.parquet")
    assert list(got.columns) == list(ref.columns)
    assert_same_customers(got, ref)
    assert json.loads((folder / "basket.json").read_text()) == json.loads(
        (reference / "basket.json").read_text()
    )
    # the engine sums in parallel, so CLV inputs can differ in their last bit from run to run,
    # and the BG/NBD fit's flat directions (a, b) amplify that: equal within 1e-6
    assert_close(
        json.loads((folder / "clv.json").read_text()),
        json.loads((reference / "clv.json").read_text()),
    )


def assert_close(got: object, ref: object, where: str = "") -> None:
    """Nested JSON equal, numbers within a relative 1e-6 (and one step of 2-decimal rounding)."""
    if isinstance(ref, dict):
        assert isinstance(got, dict) and got.keys() == ref.keys(), where
        for key in ref:
            assert_close(got[key], ref[key], f"{where}.{key}")
    elif isinstance(ref, list):
        assert isinstance(got, list) and len(got) == len(ref), where
        for i, (a, b) in enumerate(zip(got, ref, strict=True)):
            assert_close(a, b, f"{where}[{i}]")
    elif isinstance(ref, float) and not isinstance(ref, bool):
        assert got == pytest.approx(ref, rel=1e-6, abs=0.0101), where
    else:
        assert got == ref, where
