"""Grounding: figures in answers are checked against this turn's tool outputs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from insight_agent.agent.grounding import (
    Figure,
    annotate,
    check_grounding,
    collect_numbers,
    extract_figures,
)


def raws(text: str) -> list[str]:
    return [f.raw for f in extract_figures(text)]


def one(text: str) -> Figure:
    figures = extract_figures(text)
    assert len(figures) == 1, figures
    return figures[0]


# --- extraction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "kind", "decimals", "scale"),
    [
        ("1,380", 1380, "plain", 0, 1),
        ("1380", 1380, "plain", 0, 1),
        ("41%", 41, "percent", 0, 1),
        ("41.2 %", 41.2, "percent", 1, 1),
        ("41 percent", 41, "percent", 0, 1),
        ("3.2pp", 3.2, "percent", 1, 1),
        ("$1,234.56", 1234.56, "currency", 2, 1),
        ("€12.5k", 12500, "currency", 1, 1000),
        ("£1.2 million", 1_200_000, "currency", 1, 1_000_000),
        ("1.4M", 1_400_000, "plain", 1, 1_000_000),
        ("3bn", 3_000_000_000, "plain", 0, 1_000_000_000),
        ("-3.2", -3.2, "plain", 1, 1),
        ("0.91", 0.91, "plain", 2, 1),
        ("2.5x", 2.5, "multiplier", 1, 1),
        ("2.5×", 2.5, "multiplier", 1, 1),
        ("USD 12", 12, "currency", 0, 1),
        ("-$4.50", -4.5, "currency", 2, 1),
    ],
)
def test_accepted_forms(text: str, value: float, kind: str, decimals: int, scale: int) -> None:
    fig = one(f"The figure is {text} today.")
    assert fig.raw == text
    assert fig.value == pytest.approx(value)
    assert (fig.kind, fig.decimals, fig.scale) == (kind, decimals, scale)


def test_span_points_at_the_raw_text() -> None:
    text = "Churn is 41.2% in S2."
    fig = one(text)
    assert text[fig.span[0] : fig.span[1]] == "41.2%"


@pytest.mark.parametrize(
    "text",
    [
        "customer C000042 wrote review R001234 about theme T3 in segment S2",
        "answered by gpt-4o, Qwen2.5 and llama-3",
        "on 2026-11-24, 2026-11-24T10:30:00Z, 2026-11 and 24/11/2026 at 10:30",
        "around Nov 24, 2026, on 3 December and in March 2026",
        "the 3rd and 21st best, open 24/7, version 1.2.3, see #2",
        "a top-3 list, 5km away, two segments, the third theme",
        "placeholders <CUSTOMER_1> and <PERSON_12> stay out",
    ],
)
def test_not_figures(text: str) -> None:
    assert raws(text) == []


def test_a_ratings_scale_is_not_a_figure() -> None:
    """The embedded model wrote "a rating of 2 out of 5" about a 2-star review: the 5 is the
    scale, not a claim; "2 out of 5 customers" still has two figures to check."""
    assert raws("late, with a rating of 2 out of 5.") == ["2"]
    assert raws("rated 4.2 out of 5 stars, and 3 out of 10") == ["4.2", "3"]
    assert raws("2 out of 5 customers came back") == ["2", "5"]


def test_list_markers_are_not_figures() -> None:
    text = "1. Lapsing big spenders\n2) Loyal regulars\n  - 3. nested\n## 4. Heading\nSee 5. here"
    assert raws(text) == ["5"]


def test_years_are_year_like() -> None:
    fig = one("Black Friday 2025 was busy")
    assert fig.year_like
    assert not one("2,025 customers").year_like
    assert not one("$2025").year_like


def test_range_takes_the_unit_of_its_end() -> None:
    low, high = extract_figures("churn of 10-20% and lift of 1.5 to 2x")[:2]
    assert (low.kind, high.kind) == ("percent", "percent")
    assert extract_figures("churn of 10-20% and lift of 1.5 to 2x")[2].kind == "multiplier"


# --- checking -----------------------------------------------------------------------------


def test_planted_wrong_number_is_flagged() -> None:
    """The issue's example: the tool says 1380, the answer says 13,800."""
    tool = {"segment": "Lapsing big spenders", "customers": 1380, "churn_rate": 0.41}
    result = check_grounding("Lapsing big spenders has 13,800 customers, 41% churn.", [tool])
    assert result.unverified == ["13,800"]
    assert not result.ok
    assert [v.figure.raw for v in result.verified] == ["41%"]
    assert annotate("Answer.", result) == "Answer.\n\nunverified: 13,800"


def test_everything_verified_leaves_answer_unchanged() -> None:
    tool = {"customers": 1380, "churn_rate": 0.4123, "revenue": 1234567, "lift": 2.46}
    answer = "1,380 customers (about 1.4k), 41% churn, $1.2M revenue and a 2.5x lift."
    result = check_grounding(answer, [tool])
    assert result.ok, result.unverified
    assert annotate(answer, result) == answer
    assert result.to_dict()["ok"] is True


@pytest.mark.parametrize(
    ("figure", "source"),
    [
        ("1,380", 1380),
        ("1380", 1380),
        ("1.4k", 1380),
        ("1.4k", 1423),
        ("$1.2M", 1234567),
        ("$1,234.56", 1234.56),
        ("€12.5k", 12_480),
        ("41%", 0.41),
        ("41%", 0.4123),
        ("41%", 41.2),
        ("41.2%", 0.4123),
        ("41 percent", 0.41),
        ("0.91", 0.9149),
        ("-3.2", -3.2),
        ("3.2%", -0.032),  # "fell by 3.2%": an unsigned figure matches either sign
        ("2.5x", 2.5),
        ("0.13", 0.125),  # half-up
        ("0.12", 0.125),  # half-even
        ("2", 2.5),  # half-even
        ("3", 2.5),  # half-up
        ("57", 56.8),
    ],
)
def test_verified_forms(figure: str, source: float) -> None:
    result = check_grounding(f"We see {figure} here.", [{"x": source}])
    assert result.ok, (figure, source, result.unverified)
    assert result.verified[0].source_value == source


@pytest.mark.parametrize(
    ("figure", "source"),
    [
        ("13,800", 1380),
        ("1,380", 13800),
        ("0.62", 0.26),
        ("0.26", 0.62),
        ("41", 0.41),  # a plain figure never matches a fraction times 100
        ("1.5k", 1380),
        ("42%", 0.4149),
        ("-3.2", 3.2),  # an explicit sign must agree
        ("+12%", -0.12),
        ("$1.3M", 1234567),
        ("2.6x", 2.54),
    ],
)
def test_unverified_forms(figure: str, source: float) -> None:
    result = check_grounding(f"We see {figure} here.", [{"x": source}])
    assert result.unverified == [figure]


def test_percent_and_fraction_both_ways() -> None:
    # fraction in data, percent in answer
    assert check_grounding("Churn is 41%.", [{"churn": 0.41}]).ok
    # percent in data (a number or a string), fraction in answer
    assert check_grounding("Churn is 0.41.", [{"churn_pct": "41%"}]).ok
    assert check_grounding("Churn is 41%.", [{"churn_pct": 41}]).ok
    assert check_grounding("Churn is 41%.", ['{"summary": "churn 41.0% overall"}']).ok


def test_question_numbers_count_as_grounded() -> None:
    result = check_grounding("Here are the top 3 segments.", [], question="What are the top 3?")
    assert result.ok
    assert result.verified[0].source == "question"
    assert not check_grounding("Here are the top 3 segments.", []).ok


def test_nested_json_sources() -> None:
    sources = [
        json.dumps(
            {"segments": [{"name": "A", "stats": {"aov": 57.2, "n": [1, 2, {"deep": 987}]}}]}
        ),
        [{"rules": [{"lift": 3.14}]}],
        "plain text with 12.5% inside",
    ]
    numbers = collect_numbers(sources)
    assert {57.2, 987.0, 3.14, 12.5} <= set(numbers)
    assert check_grounding("AOV $57, lift 3.1x, 987 orders, 12.5% share.", sources).ok


def test_list_lengths_count() -> None:
    tool = {"themes": [{"label": "delivery"}, {"label": "sizing"}, {"label": "price"}]}
    assert check_grounding("Reviewers raise 3 themes.", [tool]).ok


def test_message_objects_are_read() -> None:
    from langchain_core.messages import ToolMessage

    msg = ToolMessage(content=json.dumps({"customers": 1380}), tool_call_id="call_1")
    assert check_grounding("1,380 customers.", [msg]).ok


def test_ids_and_dates_in_answer_are_not_checked() -> None:
    answer = "Customer C000042 (segment S2) last ordered on 2026-11-24, see review R001234."
    result = check_grounding(answer, [])
    assert result.ok
    assert result.verified == []


def test_years_not_flagged_but_verified_when_present() -> None:
    result = check_grounding("Sales in 2025 were 1,380.", [{"orders": 1380}])
    assert result.ok
    assert result.ignored == ["2025"]
    result = check_grounding("Sales in 2025 were 1,380.", [{"orders": 1380, "year": 2025}])
    assert result.ignored == [] and len(result.verified) == 2


def test_derived_figures_are_hinted_but_not_verified() -> None:
    tool = {"a_churn": 41.2, "b_churn": 33.7}
    result = check_grounding("Segment A churns 7.5 points more.", [tool])
    assert result.unverified == ["7.5"]
    assert result.derived == {"7.5": "41.2 - 33.7"}
    assert annotate("x", result) == "x\n\nunverified: 7.5 (derived? 41.2 - 33.7)"


def test_unverified_listed_once_in_order() -> None:
    result = check_grounding("13,800 then 7.5% then 13,800 again", [{"n": 1380}])
    assert result.unverified == ["13,800", "7.5%"]
    assert annotate("a ", result).endswith("unverified: 13,800, 7.5%")


def test_bools_and_non_finite_are_ignored() -> None:
    assert collect_numbers([{"flag": True, "x": float("nan"), "y": None}]) == []


# --- property: any number, formatted the usual ways, is verified by itself ----------------


def _formats(x: float) -> list[str]:
    out = [f"{x:,.0f}", f"{x:.0f}", f"{x:,.2f}", f"{x:.1f}"]
    if abs(x) >= 1000:
        out.append(f"{x / 1000:.1f}k")
    if abs(x) >= 1_000_000:
        out.append(f"${x / 1_000_000:.2f}M")
    return out


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=5e7, allow_nan=False, allow_infinity=False))
def test_property_formatted_numbers_verify(x: float) -> None:
    for text in _formats(x):
        result = check_grounding(f"The value is {text} this month.", [{"v": x}])
        assert result.ok, (x, text, result.unverified)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=1, allow_nan=False, allow_infinity=False))
def test_property_fractions_verify_as_percents(x: float) -> None:
    for text in (f"{x * 100:.0f}%", f"{x * 100:.1f}%", f"{x * 100:.2f} %", f"{x:.2f}"):
        result = check_grounding(f"Rate: {text}.", [{"rate": x}])
        assert result.ok, (x, text, result.unverified)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=100, max_value=10**7))
def test_property_tenfold_error_is_caught(n: int) -> None:
    wrong = n * 10
    result = check_grounding(f"We had {wrong:,} orders.", [{"orders": n}])
    assert result.unverified == [f"{wrong:,}"]


def test_invented_review_quotes_are_flagged_real_ones_pass() -> None:
    from insight_agent.agent.grounding import check_grounding

    view = (
        "quotes (3 rows):\nreview_id | text\n"
        'R1 | "Delivery was delayed three times and nobody told me why."\n'
        'R2 | "Arrived very late, long after the promised delivery window."'
    )
    answer = (
        "Customers complain about late parcels: \u201cArrived very late, long after the promised "
        'delivery window\u201d [R2], "delivery was delayed three times and nobody told me why" '
        '[R1] and "The courier lost my parcel twice this month." The "Lapsing customers" '
        'segment and the "delivery, parcel, days" theme are short names, not quotes.'
    )
    result = check_grounding(answer, [view])
    assert result.unverified_quotes == ["The courier lost my parcel twice this month."]
    assert not result.ok
    annotated = annotate(answer, result)
    assert annotated.endswith(
        'unverified quote (no review says this): "The courier lost my parcel twice this month."'
    )
    # a quote the user typed counts as grounded
    asked = check_grounding(
        'You said "the courier lost my parcel twice".',
        [],
        question=('Who wrote "the courier lost my parcel twice"?'),
    )
    assert asked.ok


def test_numbers_in_fact_keys_ground_the_horizon_they_name() -> None:
    facts = {"clv_12m": {"mean": 119.68}, "top_20pct_capture": 0.34, "orders_90d": 3}
    ok = check_grounding(
        "Expected value over the next 12 months is 119.68; the top 20% hold 34% of buyers "
        "(3 orders in 90 days).",
        [facts],
    )
    assert ok.ok, ok.unverified
    bad = check_grounding("Over the next 13 months, 91 orders.", [facts])
    assert bad.unverified == ["13", "91"]


def test_numbers_in_keys_of_a_compact_view_ground_the_answer() -> None:
    view = "New customers: 922 customers.\nclv_12m: mean=656.61\nsegment|clv_12m\nS6|656.61"
    ok = check_grounding("Expected value over the next 12 months is 656.61.", [view])
    assert ok.ok, ok.unverified
    assert check_grounding("Over the next 13 months: 656.61.", [view]).unverified == ["13"]


# --- meaning: digits that match a fact of another kind are flagged ----------------------------

_CLV = {
    "total_clv": 3500000.12,
    "mean_clv": 700.5,
    "segments": [
        {"segment": "High-value loyal", "total_clv": 1372244.0, "share_of_clv": 0.392,
         "mean_clv": 1715.3},
    ],
}  # fmt: skip
_SEGMENTS = {"segments": [{"name": "High-value loyal", "share_customers": 0.16,
                           "share_revenue": 0.578}]}  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "source", "problem"),
    [
        ("A typical High-value loyal customer is worth 1,372,244.", _CLV,
         "1,372,244 is a total, not a typical or average value"),
        ("High-value loyal make up 39.2% of customers.", _CLV,
         "39.2% is a share of CLV, not a share of customers"),
        ("High-value loyal make up 57.8% of customers.", _SEGMENTS,
         "57.8% is a share of revenue, not a share of customers"),
        ("Segment X has a high churn probability of 0.31.",
         {"base_rate": 0.42, "segments": [{"mean_churn_probability": 0.31}]},
         "0.31 is below the base rate (0.42), not high"),
        ("Referral customers spent 173.44 in total.",
         {"measures": [{"name": "average_order_value", "aggregation": "mean"}],
          "rows": [{"channel": "Referral", "average_order_value": 173.44}]},
         "173.44 is an average (mean or median), not a total"),
    ],
)  # fmt: skip
def test_meaning_mismatch_is_flagged(answer: str, source: dict, problem: str) -> None:
    result = check_grounding(answer, [source])
    assert result.unverified == []  # the digits are right ...
    assert result.meaning == [problem]  # ... the meaning is not
    assert not result.ok
    assert f"unverified meaning: {problem}" in annotate(answer, result)


@pytest.mark.parametrize(
    ("answer", "source"),
    [
        ("High-value loyal customers are worth 1,372,244 in total (39.2% of CLV).", _CLV),
        ("The average High-value loyal customer is worth 1,715.3.", _CLV),
        ("High-value loyal make up 16% of customers and 57.8% of revenue.", _SEGMENTS),
        ("Segment X has a churn probability of 0.31.",
         {"base_rate": 0.42, "segments": [{"mean_churn_probability": 0.31}]}),
        ("Revenue was 900,374.24 in total last quarter.",
         {"measures": [{"name": "revenue", "aggregation": "total"}],
          "rows": [{"revenue": 900374.24}]}),
    ],
)  # fmt: skip
def test_meaning_that_fits_is_not_flagged(answer: str, source: dict) -> None:
    result = check_grounding(answer, [source])
    assert result.ok, result.to_dict()


def test_a_short_breakdown_is_listed_under_an_answer_that_leaves_rows_out() -> None:
    """ "Churn by contract" answered with the top value only gets the three rows under it;
    an answer that states every row's figure is left alone; a long table shows its first
    rows and how many there are."""
    from insight_agent.agent.session import with_breakdown_rows
    from insight_agent.tools.registry import ToolResult

    rows = [
        {"contract": "Month-to-month", "churn_rate": 0.427},
        {"contract": "One year", "churn_rate": 0.113},
        {"contract": "Two year", "churn_rate": 0.028},
    ]
    facts = {
        "headline": "Churn rate by contract: highest is Month-to-month with 42.7%.",
        "by": ["contract"],
        "period": {"label": "all data", "start": None, "end": None},
        "data_up_to": None,
        "rows_total": 3,
        "rows": rows,
        "measures": [
            {
                "name": "churn_rate",
                "label": "Share with churn = Yes",
                "unit": "share",
                "aggregation": "share_of_customers",
            }
        ],
    }
    result = ToolResult("query_metrics", {}, facts, None, 0.01)
    short = "Month-to-month contracts churn most, at 42.7%."
    shown = with_breakdown_rows(short, [result])
    assert shown.startswith(short) and "11.3%" in shown and "2.8%" in shown
    whole = "Month-to-month 42.7%, one year 11.3%, two year 2.8%."
    assert with_breakdown_rows(whole, [result]) == whole
    # a longer breakdown: its first 12 rows and how many there are ("sales by dept": 28)
    many = {**facts, "rows": rows * 5, "rows_total": 15}
    shown = with_breakdown_rows(short, [ToolResult("query_metrics", {}, many, None, 0.0)])
    assert shown.count("\n- ") == 12 and "(15 rows in all" in shown
