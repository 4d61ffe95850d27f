"""Real-time scoring: customers not in the build are scored by the saved models, with the
build's own feature functions; a known customer's record reproduces the build's score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from insight_agent.cli import app


def test_a_known_customers_record_scores_as_in_the_build(built_demo: Path, tmp_path: Path):
    from insight_agent.analytics.queries import customer_table
    from insight_agent.data.bootstrap import open_workspace
    from insight_agent.engine.cache import ensure_cache

    ws = open_workspace(built_demo)
    cache = ensure_cache(ws)
    table = customer_table(ws)
    cid = str(table.sort_values("p_response").index[-1])  # a customer with campaign history
    person = cache.read("customers").set_index("customer_id").loc[cid]
    orders = cache.read("orders")
    mine = orders[orders["customer_id"] == cid]
    record = {
        "customer_id": cid,
        **{k: (None if v != v else str(v)) for k, v in person.items()},
        "orders": json.loads(
            mine.drop(columns=["customer_id"]).to_json(orient="records", date_format="iso")
        ),
    }
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["score", "--record", str(path), "--json", "-w", str(built_demo)]
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)[0]["scores"]
    for target in ("churn", "purchase", "response"):
        built = float(table.loc[cid, f"p_{target}"])
        assert scores[target]["probability"] == pytest.approx(
            min(max(built, 0.001), 0.999), abs=2e-4
        ), target


def test_a_new_customer_is_scored_and_bad_records_are_refused(built_demo: Path, tmp_path: Path):
    record = {
        "customer_id": "brand-new-1",
        "age": 31,
        "orders": [
            {"order_date": "2026-09-01", "amount": 120.0},
            {"order_date": "2026-09-20", "amount": 80.0},
        ],
    }
    path = tmp_path / "new.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    result = CliRunner().invoke(app, ["score", "--record", str(path), "-w", str(built_demo)])
    assert result.exit_code == 0, result.output
    assert "brand-new-1 (not in the build; saved models)" in result.output
    assert "churn:" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"customer_id": "x", "orders": [{"order_date": "soon", "amount": 3}]})
    )
    result = CliRunner().invoke(app, ["score", "--record", str(bad), "-w", str(built_demo)])
    assert result.exit_code == 2
    assert "bad.json, row 2, column 'order_date': not a valid order date" in result.output
    both = CliRunner().invoke(
        app, ["score", "-c", "C000042", "--record", str(path), "-w", str(built_demo)]
    )
    assert both.exit_code == 2


def test_a_file_of_new_customers_is_read_like_any_export(built_demo: Path, tmp_path: Path):
    """--file / --orders go through the export readers: a ';' file is read, ids stay text."""
    people = tmp_path / "new.csv"
    people.write_text("customer_id;age\n007;31\n008;52\n", encoding="utf-8")
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "customer_id,order_date,amount\n007,2026-09-01,120\n008,2026-08-02,35.5\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        app,
        ["score", "--file", str(people), "--orders", str(orders), "--json", "-w", str(built_demo)],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["customer_id"] for r in rows] == ["007", "008"]
    assert all("churn" in r["scores"] for r in rows)
