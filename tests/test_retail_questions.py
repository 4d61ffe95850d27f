"""Questions in a grocer's words on real transactions (84.51° Complete Journey, 300 whole
households: tests/fixtures/public/complete_journey), answered by the no-LLM router over the
validated cache and checked against pandas on the raw file: households are customers, trips
and baskets are orders, "dec vs nov" and "between mar 1 and may 31 2017" are periods, a
value named by part of its name ("beer" for BEERS/ALES, "gas" for FUEL) is a filter, a share
of sales is read from the breakdown, follow-ups change the last figure, and profit (no cost
column) is declined."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FIXTURES, none_session_asker, public_workspace

DATA = FIXTURES / "public" / "complete_journey" / "cj_transactions_300hh.csv.gz"


@pytest.fixture(scope="module")
def lines() -> pd.DataFrame:
    frame = pd.read_csv(DATA)
    frame["day"] = pd.to_datetime(frame["transaction_timestamp"]).dt.normalize()
    return frame


@pytest.fixture(scope="module")
def grocer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transactions as the orders table, validated (the metrics need no build)."""
    return public_workspace(
        tmp_path_factory.mktemp("grocer") / "ws",
        f'[workspace]\nname = "grocer"\n[data.orders]\npath = "{DATA}"\n'
        '[data.orders.columns]\ncustomer_id = "household_id"\norder_id = "basket_id"\n'
        'order_date = "transaction_timestamp"\namount = "sales_value"\nquantity = "quantity"\n'
        'category = "department"\nproduct = "product_category"\n',
        command="validate",
    )


def _between(frame: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    return frame[(frame["day"] >= start) & (frame["day"] <= end)]


def test_a_grocers_words_get_the_figures_pandas_gives(grocer: Path, lines: pd.DataFrame) -> None:
    asker = none_session_asker(grocer, tool="query_metrics")

    def ask(question: str) -> tuple[dict, dict, str]:
        _, args, result = asker(question)
        return args, result, asker.last.answer

    def figure(question: str, measure: str) -> float:
        return ask(question)[1]["rows"][0][measure]

    revenue = lines["sales_value"]
    dec, nov = _between(lines, "2017-12-01", "2017-12-31"), _between(lines, "2017-11-01",
                                                                      "2017-11-30")  # fmt: skip
    assert figure("how many shopping trips total", "orders") == lines["basket_id"].nunique()
    aov = revenue.sum() / lines["basket_id"].nunique()
    assert figure("avg basket $ value?", "average_order_value") == pytest.approx(aov, abs=5e-3)
    spend = revenue.sum() / lines["household_id"].nunique()
    assert figure("avg spend per household?", "revenue_per_customer") == pytest.approx(
        spend, abs=5e-3
    )
    args, result, answer = ask("how did dec do vs nov, sales")
    assert args["compare"] == "previous"
    row = result["rows"][0]
    assert row["revenue"] == pytest.approx(dec["sales_value"].sum(), abs=5e-3)
    assert row["revenue_previous"] == pytest.approx(nov["sales_value"].sum(), abs=5e-3)
    assert result["period"]["start"] == "2017-12-01" and "up 9.3%" in answer
    q4 = _between(lines, "2017-10-01", "2017-12-31")
    assert figure("units sold last qtr", "units") == q4["quantity"].sum()
    # a value by part of its name, said the grocer's way; the sentence states the filter
    args, result, answer = ask("beer sales last quarter?")
    assert args["where"] == ["product=BEERS/ALES"] and "for product = BEERS/ALES" in answer
    beer = q4.loc[q4["product_category"] == "BEERS/ALES", "sales_value"].sum()
    assert result["rows"][0]["revenue"] == pytest.approx(beer, abs=5e-3)
    args, result, _ = ask("how much did we take in on gas in 2017")
    assert args["where"] == ["category=FUEL"]
    fuel = _between(lines, "2017-01-01", "2017-12-31")
    fuel = fuel.loc[fuel["department"] == "FUEL", "sales_value"].sum()
    assert result["rows"][0]["revenue"] == pytest.approx(fuel, abs=5e-3)
    # "what % of sales is X": X's row of the breakdown, with its share of the total
    args, result, answer = ask("what % of our sales is private label")
    assert args["by"] == ["brand"] and not args.get("where")
    private = revenue[lines["brand"] == "Private"].sum() / revenue.sum()
    assert f"{private:.1%}" in answer
    # periods given by days, with and without a year on each
    for question, start, end in (
        ("sales between mar 1 and may 31 2017", "2017-03-01", "2017-05-31"),
        ("revenue since oct 1 2017", "2017-10-01", "2018-01-01"),
    ):
        args, result, _ = ask(question)
        assert (result["period"]["start"], result["period"]["end"]) == (start, end), question
        expected = _between(lines, start, end)["sales_value"].sum()
        assert result["rows"][0]["revenue"] == pytest.approx(expected, abs=5e-3)
    first = lines.groupby("household_id")["day"].min()
    new_q2 = int(((first >= "2017-04-01") & (first <= "2017-06-30")).sum())
    assert figure("how many new households came in q2", "new_customers") == new_q2


def test_follow_ups_change_the_last_figure(grocer: Path, lines: pd.DataFrame) -> None:
    asker = none_session_asker(grocer, tool="query_metrics")

    def args_of(question: str) -> dict:
        return asker(question)[1]

    args_of("sales last month?")
    assert args_of("and by dept?")["by"] == ["category"]
    args = args_of("just grocery - how many baskets?")  # that row, same period
    assert (args["measures"], args["where"], args.get("by") or [], args["period"]) == (
        ["orders"],
        ["category=GROCERY"],
        [],
        "last month",
    )
    args_of("top 5 depts by sales")
    args = args_of("now by units")
    assert (args["measures"], args["by"], args["top"]) == (["units"], ["category"], 5)
    args_of("how many households bought beer in dec")
    args = args_of("and how much did they spend on it")
    assert (args["measures"], args["where"]) == (["revenue"], ["product=BEERS/ALES"])
    # a bare measure, "those … new", "the % change": the last figure's period and filters
    args_of("how many hh shopped in q4")
    args = args_of("how many of those were new?")
    assert (args["measures"], args["period"]) == (["new_customers"], "q4")
    args = args_of("repeat rate?")
    assert (args["measures"], args["period"]) == (["repeat_rate"], "q4")
    args_of("deli rev q3")
    assert args_of("what about q4?")["period"] == "q4"
    args = args_of("so whats the % change")
    assert (args["measures"], args["where"], args["period"], args["compare"]) == (
        ["revenue"],
        ["category=DELI"],
        "q4",
        "previous",
    )
    # a customer ranking by another figure; "and by dept?" stays a breakdown
    args_of("top 10 households by # of trips")
    args = args_of("same for the top 5 by spend")
    assert (args["measures"], args["by"], args["top"]) == (["revenue"], ["customer"], 5)
    assert args_of("and by dept?")["by"] == ["category"]
    # shorthand in a comparison follow-up; a ranking of customers by how often they ordered
    args_of("how many baskets in q3")
    assert args_of("vs same qtr last yr?")["compare"] == "year"
    args = args_of("which 3 households ordered most often")
    assert (args["measures"], args["by"], args["top"]) == (["orders"], ["customer"], 3)


def test_customers_ranked_by_a_figure(grocer: Path, lines: pd.DataFrame) -> None:
    """ "top 10 households by spend", "who spent the most last month?", "biggest spenders":
    households ranked by the figure (equal to pandas), not by a churn score or a segment;
    "orders per household" is an average, not a list of households."""
    asker = none_session_asker(grocer, tool="query_metrics")

    def ranked(frame: pd.DataFrame, column: str, n: int, how: str = "sum") -> list[tuple]:
        per = frame.groupby("household_id")[column].agg(how).round(2)
        per = per.reset_index().sort_values([column, "household_id"], ascending=[False, True])
        return [(str(h), v) for h, v in per.head(n).itertuples(index=False)]

    def rows(question: str, measure: str) -> list[tuple]:
        _, args, result = asker(question)
        assert args["by"] == ["customer"], (question, args)
        return [(r["customer"], r[measure]) for r in result["rows"]]

    assert rows("top 10 households by spend", "revenue") == ranked(lines, "sales_value", 10)
    assert rows("who are our biggest spenders?", "revenue") == ranked(lines, "sales_value", 10)
    dec = _between(lines, "2017-12-01", "2017-12-31")
    assert rows("which customers spent the most last month?", "revenue") == ranked(
        dec, "sales_value", 10
    )
    assert rows("top 5 households by number of trips", "orders") == ranked(
        lines, "basket_id", 5, "nunique"
    )
    first = ranked(lines, "sales_value", 1)[0]
    assert asker.last.answer.startswith("Orders by customer")
    asker("top 3 households by spend")
    assert f"highest is customer {first[0]} with {first[1]:,.2f}" in asker.last.answer

    _, args, result = asker("how many orders per household?")
    assert args["measures"] == ["orders_per_customer"] and not args.get("by")
    per = lines["basket_id"].nunique() / lines["household_id"].nunique()
    assert result["rows"][0]["orders_per_customer"] == pytest.approx(per, abs=0.005)

    # rankings by a prediction stay with the prediction's tool
    session = none_session_asker(grocer).session
    turn = session.ask("top 10 households most likely to churn")
    assert [c["tool"] for c in turn.tool_calls] != ["query_metrics"]


def test_figures_the_data_cannot_give_are_declined(grocer: Path) -> None:
    session = none_session_asker(grocer).session
    for question in ("profit margin by dept?", "whats our gross margin last quarter"):
        turn = session.ask(question)
        assert turn.tool_calls == [], (question, turn.tool_calls)
        assert "no cost, margin or profit column" in turn.answer


def test_a_period_with_little_data_says_so(grocer: Path) -> None:
    """The data ends on 2018-01-01: "q1" (2018-Q1) and "this year" hold one day of data, and
    their figures said "Orders in 2018-Q1 (2018-01-01 to 2018-03-31): 6" with no word of it."""
    asker = none_session_asker(grocer, tool="query_metrics")
    asker("how many baskets did we do in q1")
    assert "1 of this period's 90 days has data" in asker.last.answer
    asker("total sales this year")
    assert "year to date is only 1 day of data" in asker.last.answer
    asker("sales last month")  # a whole month of data: no note
    assert "Note:" not in asker.last.answer
    # a period that starts after the data's end is no figure at all ("0, down 100%" before)
    turn = asker.session.ask("revenue in h2 2018 vs h1")
    assert "the data ends on 2018-01-01, before 2018-H2 starts" in turn.answer


def test_halves_of_a_year_compared(grocer: Path, lines: pd.DataFrame) -> None:
    """ "first half vs second half of 2017" gave 2017 whole (by product): the second half,
    compared with the first (the year said once is both halves')."""
    asker = none_session_asker(grocer, tool="query_metrics")
    _, args, result = asker("compare MEAT sales first half vs second half of 2017")
    assert (args["period"], args["compare"], args["where"]) == (
        "second half of 2017",
        "previous",
        ["category=MEAT"],
    )
    meat = lines[lines["department"] == "MEAT"]
    row = result["rows"][0]
    assert row["revenue"] == pytest.approx(
        _between(meat, "2017-07-01", "2017-12-31")["sales_value"].sum(), abs=5e-3
    )
    assert row["revenue_previous"] == pytest.approx(
        _between(meat, "2017-01-01", "2017-06-30")["sales_value"].sum(), abs=5e-3
    )


def test_a_column_that_is_not_a_breakdown_is_not_said_to_be_missing(grocer: Path) -> None:
    """ "sales by store" was declined as "no store column in its tables" while the file has
    store_id (150 stores, an id the figures do not break down by): the decline says so."""
    session = none_session_asker(grocer).session
    turn = session.ask("which stores have the highest share of private label sales")
    assert turn.tool_calls == [], turn.tool_calls
    assert "a store_id column, but figures do not break down by it yet" in turn.answer
    assert "no store column" not in turn.answer


def test_figures_of_things_no_column_holds_are_declined(grocer: Path) -> None:
    """ "average loyalty points", "top 5 households by monthly charges", "time between
    trips": no column or figure of this data is named, so no revenue ranking, CLV or order
    count stands in for it; rankings and averages of what the data has still get figures."""
    session = none_session_asker(grocer).session
    for question, thing in (
        ("what is the average loyalty points per household?", "loyalty points"),
        ("top 5 households by monthly charges", "charges"),
        ("rank customers by their NPS", "nps"),
        ("average days between trips", "time between orders"),
        ("app downloads last qtr", "app downloads"),
        ("roi of the back to school campaign", "roi"),
        ("out of stock rate in produce last week", "out of stock"),
        ("open rate on the dec email blast?", "open rate"),
    ):
        turn = session.ask(question)
        assert turn.tool_calls == [], (question, turn.tool_calls)
        # said by name, or by the out-of-scope decline ("not web analytics, ad platforms")
        assert f'no column or figure for "{thing}"' in turn.answer or (
            "not web analytics" in turn.answer
        ), turn.answer
    for question, measure in (
        ("rank households by spend", "revenue"),
        ("average basket size last month", "average_order_value"),
        ("total sales this year", "revenue"),
        ("top 3 customers by number of trips", "orders"),
        ("how many line items got rung up in dec", "order_lines"),
    ):
        turn = session.ask(question)
        assert [c["tool"] for c in turn.tool_calls] == ["query_metrics"], question
        assert turn.tool_calls[0]["args"]["measures"] == [measure], (question, turn.tool_calls)
    # what sells best: revenue ranked by product within a department named; by department
    turn = session.ask("whats the best seller in produce")
    args = turn.tool_calls[0]["args"]
    assert (args["measures"], args["by"], args["where"], args["top"]) == (
        ["revenue"],
        ["product"],
        ["category=PRODUCE"],
        1,
    )
    args = session.ask("which dept grew the most q4 vs q3").tool_calls[0]["args"]
    assert (args["by"], args["period"], args["compare"]) == (["category"], "q4", "previous")
    args = session.ask("which category sold the most last month").tool_calls[0]["args"]
    assert (args["measures"], args["by"]) == (["revenue"], ["category"])
    # the words between "how much" and "have we sold" name what was sold
    turn = session.ask("how much meat have we sold")
    args = turn.tool_calls[0]["args"]
    assert (args["measures"], args["where"], args.get("by")) == (["revenue"], ["category=MEAT"], [])


def test_days_and_months_as_people_write_them() -> None:
    from insight_agent.tools.metrics import _PERIOD, day_period, normalise

    cutoff = dt.date(2018, 1, 1)
    assert day_period("sales from dec 15 to jan 1", cutoff) == "2017-12-15 to 2018-01-01"
    assert day_period("sales until 3/31/2017", cutoff) == "until 2017-03-31"
    assert day_period("sales on the 1st of march 2017", cutoff) == "2017-03-01"
    assert day_period("sales last 12 months", cutoff) is None
    months = [m[1] for m in _PERIOD.finditer(normalise("trips in dec vs nov"))]
    assert months == ["dec", "nov"]
    assert not _PERIOD.search("may i see the sales")  # "may" the verb is no month
    assert [m[1] for m in _PERIOD.finditer("sales in may")] == ["may"]


def test_names_of_alternatives_and_regional_words() -> None:
    from insight_agent.names import mentions

    assert mentions("beer sales", "BEERS/ALES") and mentions("ale", "BEERS/ALES") == []
    assert mentions("how much on gas", "FUEL") and mentions("petrol", "Fuel")
    assert mentions("1/2 price", "1/2")  # a fraction is one name


def test_an_orders_exports_own_figures_are_measures(tmp_path: Path) -> None:
    """A Superstore-style orders file carries Profit and Discount beside the sales: "profit
    by region" is that column's total by the file's Region column (equal to pandas), "avg
    discount by category" its mean per line; a margin (a ratio Insight does not define) is
    declined with what it has instead."""
    frame = pd.DataFrame(
        {
            "Order ID": [f"O{i}" for i in range(12)],
            "Customer ID": [f"C{i % 5}" for i in range(12)],
            "Order Date": [f"2025-0{1 + i % 9}-1{i % 9}" for i in range(12)],
            "Sales": [100.0 + 7 * i for i in range(12)],
            "Category": ["Furniture", "Technology", "Office"] * 4,
            "Region": ["East", "West", "South", "Central"] * 3,
            "Profit": [12.5 - 3 * i for i in range(12)],
            "Discount": [0.0, 0.1, 0.2, 0.0, 0.15, 0.3] * 2,
        }
    )
    data = tmp_path / "superstore.csv"
    frame.to_csv(data, index=False)
    root = public_workspace(
        tmp_path / "ws",
        f'[workspace]\nname = "store"\n[data.orders]\npath = "{data}"\n'
        '[data.orders.columns]\ncustomer_id = "Customer ID"\norder_id = "Order ID"\n'
        'order_date = "Order Date"\namount = "Sales"\ncategory = "Category"\n',
        command="validate",
    )
    ask = none_session_asker(root, tool="query_metrics")
    _, args, result = ask("profit by region")
    assert (args["measures"], args["by"]) == (["total_profit"], ["region"])
    got = {r["region"]: r["total_profit"] for r in result["rows"]}
    assert got == pytest.approx(frame.groupby("Region")["Profit"].sum().to_dict())
    _, args, result = ask("avg discount by category")
    assert (args["measures"], args["by"]) == (["average_discount"], ["category"])
    got = {r["category"]: r["average_discount"] for r in result["rows"]}
    assert got == pytest.approx(frame.groupby("Category")["Discount"].mean().to_dict(), abs=5e-3)
    turn = ask.session.ask("profit margin by category?")
    assert turn.tool_calls == [] and "no margin measure" in turn.answer
