"""Two customers-only tables no one tuned Insight on (tests/fixtures/public: East-West
Airlines' frequent-flyer members, Tayko's catalogue mailing test): an id column called "ID#"
behind a byte-order mark, a table with no id at all, many-valued number columns broken down
in bands, yes/no columns named "Web order" or "Gender=male", one spend column standing for
"revenue", and the words marketers use ("members", "100k", "3+ transactions", "women").
Figures equal pandas on the raw files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FIXTURES, none_session_asker, public_workspace

AIRLINE = FIXTURES / "public" / "eastwest_airlines" / "EastWestAirlinesCluster.csv.gz"
MAILING = FIXTURES / "public" / "tayko" / "Tayko.csv.gz"


@pytest.fixture(scope="module")
def members() -> pd.DataFrame:
    return pd.read_csv(AIRLINE, encoding="utf-8-sig")


@pytest.fixture(scope="module")
def mailing() -> pd.DataFrame:
    return pd.read_csv(MAILING)


@pytest.fixture(scope="module")
def airline_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # no column mapping: "ID#" is the customers table's id
    return public_workspace(
        tmp_path_factory.mktemp("airline") / "ws",
        f'[workspace]\nname = "airline"\n[data.customers]\npath = "{AIRLINE}"\nlabel = "Award?"\n',
    )


@pytest.fixture(scope="module")
def mailing_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return public_workspace(
        tmp_path_factory.mktemp("mailing") / "ws",
        f'[workspace]\nname = "mailing"\n[data.customers]\npath = "{MAILING}"\n'
        'label = "Purchase"\n[data.customers.columns]\ncustomer_id = "sequence_number"\n',
    )


def test_a_table_without_an_id_names_the_column_to_map(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from insight_agent.cli import app

    root = tmp_path / "ws"
    root.mkdir()
    (root / "insight.toml").write_text(
        f'[workspace]\nname = "x"\n[data.customers]\npath = "{MAILING}"\n', encoding="utf-8"
    )
    done = CliRunner().invoke(app, ["validate", "-w", str(root)])
    assert done.exit_code != 0
    text = " ".join(done.output.split())
    assert "missing required column: customer_id" in text
    assert 'customer_id = "sequence_number"' in text


def _bands(rows: list[dict], dim: str) -> list[str]:
    return [r[dim] for r in rows]


def test_many_valued_numbers_break_down_in_bands(airline_ws: Path, members: pd.DataFrame) -> None:
    from insight_agent.analytics.queries import metrics_engine
    from insight_agent.data.bootstrap import open_workspace
    from insight_agent.engine.metrics import MetricRequest, parse_filter

    engine = metrics_engine(open_workspace(airline_ws))
    balance = engine.catalogue.dimension("balance")
    assert balance.banded and balance.breakdown
    out = engine.query(MetricRequest(measures=["customers"], by=["balance"]))
    bands = engine.bands(balance)
    # in band order, each band from its lower bound up to the next one's
    assert _bands(out["rows"], "balance") == [label for label, _ in bands]
    assert bands[0][0].startswith("under ") and bands[-1][0].endswith(" and over")
    bounds = [lo for _, lo in bands[1:]] + [float("inf")]
    low = float("-inf")
    for row, high in zip(out["rows"], bounds, strict=True):
        inside = (members["Balance"] >= low) & (members["Balance"] < high)
        assert row["customers"] == int(inside.sum()), row
        low = high
    assert sum(r["customers"] for r in out["rows"]) == len(members)

    # mostly zeros: "0" is a band of its own, the rest cut at the non-zero values
    out = engine.query(MetricRequest(measures=["award_rate"], by=["qual_miles"]))
    first = out["rows"][0]
    assert first["qual_miles"] == "0"
    zero = members["Qual_miles"] == 0
    assert first["award_rate"] == pytest.approx(members.loc[zero, "Award?"].mean(), abs=1e-6)
    assert "bands" in out
    # a filter on the same column is still a number
    out = engine.query(
        MetricRequest(measures=["customers"], filters=[parse_filter("balance>100000")])
    )
    assert out["rows"][0]["customers"] == int((members["Balance"] > 100000).sum())


def test_a_loyalty_marketers_words(airline_ws: Path, members: pd.DataFrame) -> None:
    ask = none_session_asker(airline_ws, tool="query_metrics")
    _, args, result = ask("how many members have a balance over 100k")
    assert args["where"] == ["balance>100000"]
    assert result["rows"][0]["customers"] == int((members["Balance"] > 100_000).sum())
    _, args, _ = ask("award rate by balance")
    assert (args["measures"], args["by"]) == (["award_rate"], ["balance"])
    _, args, _ = ask("avg balance by bonus trans")  # "by" is not a filler word
    assert (args["measures"], args["by"]) == (["average_balance"], ["bonus_trans"])
    _, args, _ = ask("award redemption rate by cc1 band")
    assert (args["measures"], args["by"]) == (["award_rate"], ["cc1_miles"])
    _, args, result = ask("how many have less than 1,000 days since enroll")
    assert args["where"] == ["days_since_enroll<1000"]
    assert result["rows"][0]["customers"] == int((members["Days_since_enroll"] < 1000).sum())
    _, args, result = ask("top 10 members by flight miles past 12 mo")
    assert args["by"] == ["customer"] and args["top"] == 10
    top = members.nlargest(1, "Flight_miles_12mo")
    assert result["rows"][0]["customer"] == str(top["ID#"].iloc[0])


def test_a_mailers_words(mailing_ws: Path, mailing: pd.DataFrame) -> None:
    ask = none_session_asker(mailing_ws)
    bought = mailing["Purchase"] == 1
    _, args, result = ask("whats the buy rate on the test mailing overall")
    assert args["measures"] == ["purchase_rate"]
    assert result["rows"][0]["purchase_rate"] == pytest.approx(bought.mean())
    # a Gender=male flag: women are its 0 group
    _, args, result = ask("purchase rate for women")
    assert args["where"] == ["gender_male=No"]
    women = mailing["Gender=male"] == 0
    assert result["rows"][0]["purchase_rate"] == pytest.approx(bought[women].mean(), abs=1e-6)
    _, args, result = ask("how many custs have 3+ transactions")  # Freq: transactions
    assert args["where"] == ["freq>=3"]
    assert result["rows"][0]["customers"] == int((mailing["Freq"] >= 3).sum())
    # the one spend column is the revenue of a customers-only table
    _, args, result = ask("total $ the test mailing brought in")
    assert args["measures"] == ["total_spending"]
    assert result["rows"][0]["total_spending"] == pytest.approx(mailing["Spending"].sum())
    _, args, _ = ask("avg spend web orderers compared w/ everyone else")
    assert (args["measures"], args["by"]) == (["average_spending"], ["web_order"])
    _, args, result = ask("top 5 custs by spending")
    assert args["measures"] == ["total_spending"] and args["top"] == 5
    top = mailing.nlargest(1, "Spending")
    assert result["rows"][0]["customer"] == str(top["sequence_number"].iloc[0])
    _, args, _ = ask("us vs non-us purchse rate?")  # a typo of a column word
    assert (args["measures"], args["by"]) == (["purchase_rate"], ["us"])
    _, args, result = ask("how did the names off source a do, % that bought")
    assert args["where"] == ["source_a=Yes"]  # not every source_* column
    from_a = mailing["source_a"] == 1
    assert result["rows"][0]["purchase_rate"] == pytest.approx(bought[from_a].mean(), abs=1e-6)
    # a 0/1 column named "Address…" holds no address: it is a dimension
    _, args, _ = ask("purchase rate by address is res")
    assert args["by"] == ["address_is_res"]


def test_no_product_column_is_said_not_guessed(mailing_ws: Path) -> None:
    from insight_agent.agent.session import SessionOptions, open_session
    from insight_agent.data.bootstrap import open_workspace

    session = open_session(
        open_workspace(mailing_ws), llm="none", options=SessionOptions(transcript=False)
    )
    turn = session.ask("which titles did the buyers order most")
    assert not turn.tool_calls
    assert "no product column" in turn.answer


def test_a_members_record_is_in_the_profile(airline_ws: Path, members: pd.DataFrame) -> None:
    """Without orders, a customer's numbers are their record: "pull up member 2000" shows the
    balance and whether the outcome is already there, not only the model's probability."""
    ask = none_session_asker(airline_ws, tool="customer_profile")
    _, args, result = ask("pull up member id 2000")
    assert args["customer_id"] == "2000"
    row = members.set_index("ID#").loc[2000]
    assert result["known_outcome"] == {"Award?": int(row["Award?"])}
    answer = ask.last.answer
    assert f"Balance {int(row['Balance']):,}" in answer
    assert f"Award? = {int(row['Award?'])}" in answer


@pytest.mark.parametrize(
    ("flag", "men", "women"),
    [("male", "Yes", "No"), ("is_male", "Yes", "No"), ("gender_male", "Yes", "No"),
     ("female", "No", "Yes"), ("is_female", "No", "Yes")],
)  # fmt: skip
def test_a_sex_flag_reads_men_and_women_as_its_groups(flag: str, men: str, women: str) -> None:
    from insight_agent.tools.metrics import sex_group

    assert (sex_group(flag, men=True), sex_group(flag, men=False)) == (men, women)


def test_numbers_as_people_type_them() -> None:
    from insight_agent.tools.metrics import _amount

    assert _amount("100", "k") == "100000"
    assert _amount("1,500", None) == "1500"
    assert _amount("1.2", "m") == "1200000"
    assert _amount("1,234,567.5", None) == "1234567.5"  # not 1.23457e+06


def test_a_columns_last_word_names_it_when_no_other_column_has_it() -> None:
    """Universal Bank's "Personal Loan" outcome is "the loan" in a question ("loan rate",
    "took the loan"); "account" names neither "CD Account" nor "Securities Account"."""
    import re

    from insight_agent.engine.metrics import _label_measures, flag_words

    cols = ["customer_id", "Income", "Personal Loan", "CD Account", "Securities Account"]
    loan = flag_words("Personal Loan", cols)
    assert re.search(rf"\b{loan}\b", "avg income of ppl who took the loan")
    cd = flag_words("CD Account", cols)
    assert not re.search(rf"\b{cd}\b", "customers with an account")
    assert re.search(rf"\b{cd}\b", "customers with a cd account")
    rate = _label_measures({"customers": cols}, {"Personal Loan": "1"})["personal_loan_rate"]
    assert any(re.search(w, "whats the loan rate") for w in rate.words)
    # without the other columns to check against: the full name only
    assert not re.search(rf"\b{flag_words('Personal Loan')}\b", "who took the loan")
