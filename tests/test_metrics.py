"""The metrics layer: every figure equals a pandas computation of the same definition on the
demo data; periods resolve against the data's cutoff; bad requests get clear errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from insight_agent.engine.periods import comparison, parse_period
from insight_agent.errors import ConfigError

CUTOFF = dt.date(2026, 9, 30)


# --- periods (no data needed) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("last 12 months", "2025-10-01", "2026-09-30"),
        ("last 6 months", "2026-04-01", "2026-09-30"),
        ("past 90 days", "2026-07-03", "2026-09-30"),
        ("last month", "2026-09-01", "2026-09-30"),
        ("last quarter", "2026-07-01", "2026-09-30"),
        ("last year", "2025-01-01", "2025-12-31"),
        ("this year", "2026-01-01", "2026-09-30"),
        ("ytd", "2026-01-01", "2026-09-30"),
        ("2025-Q3", "2025-07-01", "2025-09-30"),
        ("Q1 2026", "2026-01-01", "2026-03-31"),
        ("2025", "2025-01-01", "2025-12-31"),
        ("March 2026", "2026-03-01", "2026-03-31"),
        ("2026-02", "2026-02-01", "2026-02-28"),
        ("since 2026-01-01", "2026-01-01", "2026-09-30"),
        ("2026-01-01 to 2026-03-31", "2026-01-01", "2026-03-31"),
        ("in the last 3 months", "2026-07-01", "2026-09-30"),
        ("Q3", "2026-07-01", "2026-09-30"),  # the latest Q3 starting by the cutoff
        ("q4", "2025-10-01", "2025-12-31"),
        ("feb 97", "1997-02-01", "1997-02-28"),  # a two-digit year from 32 needs no apostrophe
        ("jun '25", "2025-06-01", "2025-06-30"),
        ("since march 2026", "2026-03-01", "2026-09-30"),
        # half years ("compare MEAT sales first half vs second half of 2017" read 2017 whole)
        ("first half of 2025", "2025-01-01", "2025-06-30"),
        ("2nd half 2025", "2025-07-01", "2025-12-31"),
        ("h1 2026", "2026-01-01", "2026-06-30"),
        ("2025-H2", "2025-07-01", "2025-12-31"),
        ("second half", "2026-07-01", "2026-12-31"),  # the latest H2 starting by the cutoff
    ],
)
def test_periods_resolve_against_the_cutoff(text: str, start: str, end: str) -> None:
    p = parse_period(text, CUTOFF)
    assert (p.start.isoformat(), p.end.isoformat()) == (start, end)


def test_last_month_is_the_latest_complete_month() -> None:
    p = parse_period("last month", dt.date(2026, 9, 15))
    assert (p.start, p.end) == (dt.date(2026, 8, 1), dt.date(2026, 8, 31))


def test_comparison_periods() -> None:
    q = parse_period("2026-Q2", CUTOFF)
    prev = comparison(q, "previous")
    assert (prev.start, prev.end) == (dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    rolling = parse_period("last 90 days", CUTOFF)
    prev = comparison(rolling, "previous")
    assert prev.end == rolling.start - dt.timedelta(days=1) and prev.days == 90
    year = comparison(parse_period("last 12 months", CUTOFF), "year")
    assert (year.start, year.end) == (dt.date(2024, 10, 1), dt.date(2025, 9, 30))
    with pytest.raises(ConfigError, match="bounded period"):
        comparison(parse_period(None, CUTOFF), "previous")
    half = comparison(parse_period("second half of 2025", CUTOFF), "previous")
    assert (half.start, half.end) == (dt.date(2025, 1, 1), dt.date(2025, 6, 30))


def test_unreadable_period_lists_examples() -> None:
    with pytest.raises(ConfigError) as err:
        parse_period("the other week-ish", CUTOFF)
    assert "last 12 months" in (err.value.hint or "")


# --- figures equal pandas on the built demo workspace -----------------------------------------


@pytest.fixture(scope="module")
def ws(built_demo: Path):
    from insight_agent.data.bootstrap import open_workspace

    return open_workspace(built_demo)


@pytest.fixture(scope="module")
def frames(ws):
    from insight_agent.analytics.artifacts import current_build
    from insight_agent.engine.cache import ensure_cache

    cache = ensure_cache(ws)
    scores = pd.read_parquet(current_build(ws) / "customers.parquet")
    return {
        "orders": cache.read("orders"),
        "customers": cache.read("customers"),
        "campaigns": cache.read("campaigns"),
        "reviews": cache.read("reviews"),
        "scores": scores,
        "cutoff": cache.data_up_to,
    }


def _q(ws, *measures: str, **kw):
    from insight_agent.analytics.queries import query_metrics

    return query_metrics(ws, list(measures), **kw)


def test_build_wrote_the_parquet_cache(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    from insight_agent.data import load
    from insight_agent.engine.cache import cached, ensure_cache

    found = cached(ws)
    assert found is not None and found.tables["orders"] > 0
    # a cached workspace never re-reads its CSVs
    monkeypatch.setattr(load, "load_dataset", lambda *a, **k: pytest.fail("CSV re-read"))
    assert ensure_cache(ws).folder == found.folder


def test_revenue_by_month_equals_pandas(ws, frames) -> None:
    facts = _q(ws, "revenue", by=["month"], period="last 12 months")
    o = frames["orders"]
    cutoff = pd.Timestamp(frames["cutoff"])
    start = pd.Timestamp(facts["period"]["start"])
    assert facts["period"]["end"] == frames["cutoff"]
    window = o[(o.order_date >= start) & (o.order_date < cutoff + pd.Timedelta(days=1))]
    expected = window.groupby(window.order_date.dt.strftime("%Y-%m")).amount.sum().round(2)
    got = {r["month"]: r["revenue"] for r in facts["rows"]}
    assert len(got) == 12
    assert got == pytest.approx(expected.to_dict(), abs=0.011)
    assert facts["measures"][0]["aggregation"] == "total"
    assert facts["measures"][0]["unit"] == "currency"


def test_response_rate_by_campaign_equals_pandas(ws, frames) -> None:
    facts = _q(ws, "response_rate", "campaign_sends", by=["campaign"])
    c = frames["campaigns"]
    expected = c.groupby("campaign").responded.mean().round(6).to_dict()
    got = {r["campaign"]: r["response_rate"] for r in facts["rows"]}
    assert got == pytest.approx(expected, abs=1e-9)
    sends = {r["campaign"]: r["campaign_sends"] for r in facts["rows"]}
    assert sends == c.groupby("campaign").size().to_dict()
    rates = [r["response_rate"] for r in facts["rows"]]
    assert rates == sorted(rates, reverse=True)  # highest first
    assert facts["measures"][0]["aggregation"] == "rate"


def test_average_order_value_by_channel_equals_pandas(ws, frames) -> None:
    facts = _q(ws, "average_order_value", by=["channel"])
    o = frames["orders"].merge(frames["customers"][["customer_id", "channel"]], on="customer_id")
    per = o.groupby("channel").agg(revenue=("amount", "sum"), orders=("order_id", "nunique"))
    expected = (per.revenue / per.orders).round(2).to_dict()
    got = {r["channel"]: r["average_order_value"] for r in facts["rows"]}
    assert got == pytest.approx(expected, abs=0.011)
    assert facts["measures"][0]["aggregation"] == "mean"


def test_period_over_period_equals_pandas(ws, frames) -> None:
    facts = _q(ws, "revenue", "orders", period="last quarter", compare="previous")
    o = frames["orders"]

    def between(a: str, b: str) -> pd.DataFrame:
        return o[(o.order_date >= a) & (o.order_date < pd.Timestamp(b) + pd.Timedelta(days=1))]

    now = between(facts["period"]["start"], facts["period"]["end"])
    before = between(facts["compared_with"]["start"], facts["compared_with"]["end"])
    row = facts["rows"][0]
    assert row["revenue"] == pytest.approx(now.amount.sum(), abs=0.011)
    assert row["revenue_previous"] == pytest.approx(before.amount.sum(), abs=0.011)
    assert row["orders"] == now.order_id.nunique()
    assert row["orders_previous"] == before.order_id.nunique()
    change = (now.amount.sum() - before.amount.sum()) / before.amount.sum()
    assert row["revenue_change_pct"] == pytest.approx(change, abs=0.0006)


def test_year_over_year_by_month_lines_up_months(ws, frames) -> None:
    facts = _q(ws, "revenue", by=["month"], period="last 3 months", compare="year")
    o = frames["orders"]
    for row in facts["rows"]:
        year, month = map(int, row["month"].split("-"))
        prior = o[(o.order_date.dt.year == year - 1) & (o.order_date.dt.month == month)]
        assert row["revenue_previous"] == pytest.approx(prior.amount.sum(), abs=0.011)


def test_new_returning_and_repeat_rate_equal_pandas(ws, frames) -> None:
    facts = _q(ws, "new_customers", "returning_customers", "repeat_rate", by=["quarter"],
               period="2025")  # fmt: skip
    o = frames["orders"]
    first = o.groupby("customer_id").order_date.min()
    for row in facts["rows"]:
        year, q = int(row["quarter"][:4]), int(row["quarter"][-1])
        start = pd.Timestamp(year, 3 * q - 2, 1)
        part = o[(o.order_date >= start) & (o.order_date < start + pd.DateOffset(months=3))]
        buyers = part.customer_id.unique()
        new = int((first.loc[buyers] >= start).sum())
        assert row["new_customers"] == new
        assert row["returning_customers"] == len(buyers) - new
        repeat = (part.groupby("customer_id").order_id.nunique() >= 2).mean()
        assert row["repeat_rate"] == pytest.approx(repeat, abs=0.0006)


def test_model_measures_by_segment_equal_the_build(ws, frames) -> None:
    facts = _q(ws, "mean_churn_probability", "total_clv", by=["segment"])
    s = frames["scores"]
    churn = s.groupby("segment_name").p_churn.mean().round(6).to_dict()
    clv = s.groupby("segment_name").clv_12m.sum().round(2).to_dict()
    for row in facts["rows"]:
        assert row["mean_churn_probability"] == pytest.approx(churn[row["segment"]], abs=1e-9)
        assert row["total_clv"] == pytest.approx(clv[row["segment"]], abs=0.02)
    kinds = {m["name"]: m["aggregation"] for m in facts["measures"]}
    assert kinds == {"mean_churn_probability": "mean", "total_clv": "total"}


def test_filters_and_top_n(ws, frames) -> None:
    facts = _q(ws, "revenue", by=["category"], where=["segment=lapsing"], top=3)
    s = frames["scores"]
    lapsing = s.index[s.segment_name == "Lapsing customers"]
    o = frames["orders"]
    expected = o[o.customer_id.isin(lapsing)].groupby("category").amount.sum()
    expected = expected.sort_values(ascending=False).round(2)
    assert [r["category"] for r in facts["rows"]] == list(expected.index[:3])
    assert facts["rows"][0]["revenue"] == pytest.approx(expected.iloc[0], abs=0.011)
    assert facts["rows_total"] == len(expected)
    assert facts["filters"] == ["segment=lapsing"]


def test_review_measures_by_rating_sentiment(ws, frames) -> None:
    facts = _q(ws, "reviews", "average_rating", by=["sentiment"])
    r = frames["reviews"]
    band = pd.cut(r.rating, [-1, 2, 3.999, 5], labels=["negative", "neutral", "positive"])
    counts = r.groupby(band, observed=True).size().to_dict()
    got = {row["sentiment"]: row["reviews"] for row in facts["rows"]}
    assert got == {str(k): v for k, v in counts.items()}


@pytest.mark.parametrize(
    ("kwargs", "message", "hint"),
    [
        ({"measures": ["revenu"]}, "no measure 'revenu'", "did you mean revenue"),
        ({"measures": ["revenue"], "by": ["categry"]}, "no dimension", "category"),
        ({"measures": ["revenue"], "where": ["segment=Lapsers"]}, "no segment", "Lapsing"),
        ({"measures": ["mean_clv"], "by": ["month"]}, "per customer as of", "segment"),
        ({"measures": ["response_rate"], "by": ["category"]}, "cannot be broken down", None),
        ({"measures": ["revenue"], "period": "last fortnight-ish"}, "cannot read the period", None),
    ],
)
def test_bad_requests_get_clear_errors(ws, kwargs, message, hint) -> None:
    from insight_agent.analytics.queries import query_metrics

    measures = kwargs.pop("measures")
    with pytest.raises(ConfigError, match=message) as err:
        query_metrics(ws, measures, **kwargs)
    if hint:
        assert hint in (err.value.hint or "")


def test_cli_metrics_with_chart_and_json(built_demo: Path, tmp_path: Path) -> None:
    from insight_agent.cli import app

    png = tmp_path / "rev.png"
    args = ["metrics", "revenue", "--by", "month", "--period", "last 12 months"]
    result = CliRunner().invoke(app, [*args, "--chart", str(png), "-w", str(built_demo)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "revenue" in result.output and "2025-10" in result.output
    result = CliRunner().invoke(app, [*args, "--json", "-w", str(built_demo)])
    facts = json.loads(result.output)
    assert len(facts["rows"]) == 12 and facts["period"]["label"] == "last 12 months"
    bad = CliRunner().invoke(app, ["metrics", "revenue", "--by", "colour", "-w", str(built_demo)])
    assert bad.exit_code == 2 and "no dimension 'colour'" in bad.output
    listing = CliRunner().invoke(app, ["metrics", "--list", "-w", str(built_demo)])
    assert listing.exit_code == 0 and "response_rate" in listing.output


def test_orders_only_workspace_without_a_build(tmp_path: Path) -> None:
    """Metrics need validated tables, not models: an orders-only workspace answers."""
    from insight_agent.analytics.queries import query_metrics
    from insight_agent.data.bootstrap import open_workspace
    from tests.conftest import write_workspace

    orders = tmp_path / "orders.csv"
    orders.write_text(
        "customer_id,order_date,amount,category\n"
        "a,2026-01-05,10,Shoes\na,2026-02-05,20,Bags\nb,2026-02-07,5.5,Shoes\n",
        encoding="utf-8",
    )
    root = write_workspace(tmp_path / "ws", {"orders": orders})
    ws = open_workspace(root)
    facts = query_metrics(ws, ["revenue", "active_customers"], by=["category"])
    assert {r["category"]: r["revenue"] for r in facts["rows"]} == {"Shoes": 15.5, "Bags": 20.0}
    assert facts["data_up_to"] == "2026-02-07"
    with pytest.raises(ConfigError, match="no measure 'mean_clv'"):
        query_metrics(ws, ["mean_clv"])


# --- the query_metrics tool and the no-LLM router ---------------------------------------------


def test_tool_schema_lists_the_workspace_measures(ws) -> None:
    from insight_agent.tools.registry import ToolContext, call_tool, get_tool

    ctx = ToolContext(ws)
    schema = get_tool("query_metrics").args_model(ctx).model_json_schema()
    measures = schema["properties"]["measures"]["items"]["enum"]
    assert {"revenue", "response_rate", "mean_clv"} <= set(measures)
    assert "segment" in schema["properties"]["by"]["items"]["enum"]
    bad = call_tool(ctx, "query_metrics", {"measures": ["profit"]})
    assert bad.error and "revenue" in bad.error  # the choices come back to the model
    ok = call_tool(ctx, "query_metrics", {"measures": ["revenue"], "period": "last quarter",
                                          "compare": "previous"})  # fmt: skip
    assert ok.ok and ok.facts["headline"].startswith("Revenue in last quarter (")
    row = ok.facts["rows"][0]
    assert f"{row['revenue']:,.2f}" in ok.facts["headline"]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How much revenue did we make last month?",
         {"measures": ["revenue"], "period": "last month"}),
        ("Show me revenue by month for the last 12 months",
         {"measures": ["revenue"], "by": ["month"], "period": "last 12 months"}),
        ("What's our average order value by channel?",
         {"measures": ["average_order_value"], "by": ["channel"]}),
        ("Which campaign had the best response rate?",
         {"measures": ["response_rate"], "by": ["campaign"]}),
        ("Revenue last quarter vs the previous quarter",
         {"measures": ["revenue"], "period": "last quarter", "compare": "previous"}),
        ("Top 3 categories by revenue", {"measures": ["revenue"], "by": ["category"], "top": 3}),
        ("How many new customers did we get in 2025-Q3?",
         {"measures": ["new_customers"], "period": "2025-q3"}),
        # two values of one column compare it; one value filters by it
        ("did the spring sale do better than black friday?",
         {"measures": ["response_rate"], "by": ["campaign"]}),
        ("revenue from kitchen vs footwear", {"measures": ["revenue"], "by": ["category"]}),
        ("revenue in the north region last quarter",
         {"measures": ["revenue"], "period": "last quarter", "where": ["region=North"]}),
        ("how are we doing this year compared to last",
         {"measures": ["revenue"], "period": "this year", "compare": "year"}),
        ("avg clv by age band", {"measures": ["mean_clv"], "by": ["age_band"]}),
        ("which region spends the most per order?",
         {"measures": ["average_order_value"], "by": ["region"]}),
        ("how many new custs did we get in q3", {"measures": ["new_customers"], "period": "q3"}),
        # change without a period: the last 3 months against the 3 before
        ("which category is growing fastest?", {"measures": ["revenue"], "by": ["category"],
                                                "period": "last 3 months", "compare": "previous"}),
        ("Which region is worst at actually responding to our campaigns?",
         {"measures": ["response_rate"], "by": ["region"], "ascending": True}),
        ("do repeat rates differ much between segments",
         {"measures": ["repeat_rate"], "by": ["segment"]}),
        ("Footwear revenue by quarter please, and put it next to the same quarter a year earlier",
         {"measures": ["revenue"], "by": ["quarter"], "compare": "year",
          "where": ["category=Footwear"]}),
        ("which 3 campaigns had the worst response rate",
         {"measures": ["response_rate"], "by": ["campaign"], "top": 3, "ascending": True}),
        ("share of 1-2 star reveiws by month this year pls",
         {"measures": ["share_negative"], "by": ["month"], "period": "this year"}),
        # two named periods a year apart; "3 worst"; "the 3 months before that"
        ("how many ppl bought in march 2026 vs march 2025",
         {"measures": ["active_customers"], "period": "march 2026", "compare": "year"}),
        ("how much have we sold since march 2026",
         {"measures": ["revenue"], "period": "since march 2026"}),
        ("which were our 3 worst months for sales",
         {"measures": ["revenue"], "by": ["month"], "top": 3, "ascending": True}),
        ("orders in the last 3 months compared to the 3 months before that",
         {"measures": ["orders"], "period": "last 3 months", "compare": "previous"}),
        ("how did Q2 revenue stack up against Q2 last year",
         {"measures": ["revenue"], "period": "q2", "compare": "year"}),
    ],
)  # fmt: skip
def test_router_sends_metric_questions_to_query_metrics(ws, question, expected) -> None:
    from insight_agent.agent.router import route
    from insight_agent.tools.registry import ToolContext

    decision = route(ToolContext(ws), question)
    assert decision.tool == "query_metrics"
    assert decision.args == expected


def test_router_keeps_other_tools_for_their_questions(ws) -> None:
    from insight_agent.agent.router import route
    from insight_agent.tools.registry import ToolContext

    ctx = ToolContext(ws)
    assert route(ctx, "Which segment brings in the most revenue?").tool == "list_segments"
    assert route(ctx, "Who are the top 10 customers most likely to churn?").tool == (
        "top_customers"
    )


def test_none_provider_answers_a_metric_question_with_verified_figures(ws) -> None:
    from insight_agent.agent.session import SessionOptions, open_session

    session = open_session(ws, llm="none", options=SessionOptions(transcript=False))
    turn = session.ask("What was the response rate by campaign?")
    assert [c["tool"] for c in turn.tool_calls] == ["query_metrics"]
    assert "Black Friday" in turn.answer  # the campaign with the highest response rate
    assert turn.grounding["unverified"] == []


def test_metric_report_section(built_demo: Path, tmp_path: Path) -> None:
    from insight_agent.cli import app

    spec = Path(__file__).parents[1] / "examples" / "reports" / "monthly-business-review.yaml"
    out = tmp_path / "mbr.html"
    result = CliRunner().invoke(app, ["report", str(spec), "-o", str(out), "-w", str(built_demo)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert html.count("<img") >= 4  # one chart per metric section but the show_chart: false one
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "Revenue by month, last 12 months (" in md
    assert "response rate" in md


# --- segment persona and playbook tools ------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "tool"),
    [
        ("Write a persona for the bargain hunters", "segment_persona"),
        ("What should we offer lapsing customers?", "segment_playbook"),
        ("How do we win back the lapsing customers?", "segment_playbook"),
    ],
)
def test_persona_and_playbook_are_routed(ws, question: str, tool: str) -> None:
    from insight_agent.agent.router import route
    from insight_agent.tools.registry import ToolContext

    assert route(ToolContext(ws), question).tool == tool


def test_playbook_facts_come_from_their_tools(ws) -> None:
    from insight_agent.tools.registry import ToolContext, call_tool

    ctx = ToolContext(ws)
    book = call_tool(ctx, "segment_playbook", {"segment": "lapsing"})
    assert book.ok, book.error
    f = book.facts
    assert f["segment"] == "Lapsing customers"
    basket = call_tool(ctx, "basket_rules", {"segment": "Lapsing customers"}).facts
    assert f["offer_categories"][0]["category"] == basket["next_best_categories"][0]["category"]
    assert {p["source"] for p in f["plays"]} >= {"basket_rules", "review_themes"}
    persona = call_tool(ctx, "segment_persona", {"segment": "S1"})
    assert persona.ok and persona.facts["customers"] > 0 and persona.facts["quotes"]


def test_validate_writes_the_cache_and_a_changed_file_invalidates_it(tmp_path: Path) -> None:
    from insight_agent.cli import app
    from insight_agent.data.bootstrap import open_workspace
    from insight_agent.engine.cache import cached
    from tests.conftest import write_workspace

    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,order_date,amount\na,2026-01-05,10\n", encoding="utf-8")
    root = write_workspace(tmp_path / "ws", {"orders": orders})
    result = CliRunner().invoke(app, ["validate", "-w", str(root)])
    assert result.exit_code == 0, result.output
    ws = open_workspace(root)
    first = cached(ws)
    assert first is not None and first.tables["orders"] == 1
    orders.write_text(orders.read_text() + "b,2026-01-06,5\n", encoding="utf-8")
    assert cached(ws) is None  # new bytes, new fingerprint: the old cache is never read
    # a one-off ceiling validates only
    CliRunner().invoke(app, ["validate", "--max-drop-share", "0.5", "-w", str(root)])
    assert cached(ws) is None


def test_public_clothing_reviews_answer_by_department(tmp_path: Path) -> None:
    """Real reviews (tests/fixtures/public/womens_clothing_reviews, CC0), no build: a question
    worded by a marketer reaches the right breakdown, and the figure equals pandas."""
    from insight_agent.agent.router import route
    from insight_agent.analytics.queries import query_metrics
    from insight_agent.data.bootstrap import open_workspace
    from insight_agent.tools.registry import ToolContext
    from tests.conftest import FIXTURES, write_workspace

    data = FIXTURES / "public" / "womens_clothing_reviews" / "womens_clothing_reviews_5000.csv"
    ws = open_workspace(write_workspace(tmp_path / "ws", {"reviews": data}))
    decision = route(ToolContext(ws), "which department gets the worst ratings?")
    assert decision.tool == "query_metrics"
    assert decision.args == {"measures": ["average_rating"], "by": ["category"], "ascending": True}
    facts = query_metrics(ws, **decision.args)
    raw = pd.read_csv(data)
    kept = raw[raw["Review Text"].notna() & raw["Department Name"].notna()]
    expected = kept.groupby("Department Name")["Rating"].mean().round(2)
    got = {
        r["category"]: r["average_rating"] for r in facts["rows"] if r["category"] != "(missing)"
    }
    assert got == pytest.approx(expected.to_dict(), abs=0.006)
    assert facts["rows"][0]["category"] == expected.idxmin()


def test_a_compared_breakdown_names_the_biggest_rise_and_fall(ws) -> None:
    """ "Which category grew fastest / dropped the most?": the headline names the rows with
    the largest and smallest change, as the rows give them."""
    from insight_agent.formatting import signed_pct
    from insight_agent.tools.registry import ToolContext, call_tool

    args = {"measures": ["revenue"], "by": ["category"], "period": "last 3 months",
            "compare": "previous"}  # fmt: skip
    result = call_tool(ToolContext(ws), "query_metrics", args)
    rows = result.facts["rows"]
    up = max(rows, key=lambda r: r["revenue_change_pct"])
    down = min(rows, key=lambda r: r["revenue_change_pct"])
    line = result.facts["headline"]
    assert (
        f"biggest rise vs before: {up['category']} ({signed_pct(up['revenue_change_pct'])})" in line
    )
    fell = "biggest fall" if down["revenue_change_pct"] < 0 else "none fell, smallest rise"
    assert f"{fell}: {down['category']} ({signed_pct(down['revenue_change_pct'])})" in line


@pytest.mark.parametrize(
    ("column", "said", "not_said"),
    [
        ("coupon_disc", ["coupon discount", "coupon discounts", "coupon dollars"], ["coupons"]),
        ("AmtSpent", ["amount spent", "amt spent"], ["amount"]),
        ("disc_pct", ["discount percent", "disc pct"], ["discount"]),
    ],
)
def test_abbreviated_column_names_are_said_in_words(
    column: str, said: list[str], not_said: list[str]
) -> None:
    """Export abbreviations ("disc", "amt", "pct") match the words people type."""
    import re

    from insight_agent.engine.metrics import column_words

    pattern = rf"\b{column_words(column)}\b"
    for text in said:
        assert re.search(pattern, text), (column, text)
    for text in not_said:
        assert not re.search(pattern, text), (column, text)
