"""Validation: one fixture file per problem; each gives a clear message, a row, a column, and
the right exit code, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from insight_agent.cli import app
from insight_agent.config import load_settings
from insight_agent.data.load import load_dataset, validate
from insight_agent.data.report import ValidationFailed

runner = CliRunner()


def run_validate(ws: Path, *args: str):
    result = runner.invoke(app, ["validate", "-w", str(ws), *args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


# (fixture, table, expected fragments of the message: file, row, column, what)
FATAL_CASES = [
    (
        "bad/orders_missing_column.csv",
        "orders",
        ["orders_missing_column.csv", "missing required column", "order_date"],
    ),
    (
        "bad/orders_bad_date.csv",
        "orders",
        ["orders_bad_date.csv", "row 3", "column 'order_date'", "not a valid date", "2024-13-45"],
    ),
    (
        "bad/orders_bad_number.csv",
        "orders",
        ["orders_bad_number.csv", "row 3", "column 'amount'", "not a valid number", "forty"],
    ),
    (
        "bad/orders_unknown_customer.csv",
        "orders",
        [
            "orders_unknown_customer.csv",
            "row 3",
            "column 'customer_id'",
            "not in the customers table",
            "C99",
        ],
    ),
    (
        "bad/orders_future_date.csv",
        "orders",
        ["orders_future_date.csv", "row 3", "column 'order_date'", "after today"],
    ),
    ("bad/orders_empty.csv", "orders", ["orders_empty.csv", "empty"]),
    ("bad/orders_header_only.csv", "orders", ["orders_header_only.csv", "no data rows"]),
    ("bad/orders.json", "orders", ["orders.json", "unsupported file type", ".json"]),
    ("bad/orders_ragged.csv", "orders", ["orders_ragged.csv", "row 3", "wrong number of fields"]),
    (
        "bad/orders_missing_customer.csv",
        "orders",
        ["orders_missing_customer.csv", "row 3", "column 'customer_id'", "missing customer_id"],
    ),
    (
        "bad/orders_huge_amount.csv",
        "orders",
        ["orders_huge_amount.csv", "row 3", "column 'amount'"],
    ),
]


@pytest.mark.parametrize(
    ("fixture", "table", "fragments"), FATAL_CASES, ids=[c[0].split("/")[1] for c in FATAL_CASES]
)
def test_fatal_problem_is_named_with_file_row_column(workspace_factory, fixture, table, fragments):
    ws = workspace_factory(customers="good/customers.csv", **{table: fixture})
    result = run_validate(ws)
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in flat, f"{fragment!r} not in:\n{result.output}"
    assert "FAILED" in result.output


def test_duplicate_customer_ids(workspace_factory):
    ws = workspace_factory(customers="bad/customers_duplicate_ids.csv")
    result = run_validate(ws)
    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert "customers_duplicate_ids.csv, row 4, column 'customer_id': duplicate customer_id" in flat
    assert "first kept" in flat


def test_below_the_ceiling_rows_are_dropped_and_reported_but_data_loads(workspace_factory):
    ws = workspace_factory(orders="bad/orders_bad_date.csv")
    # one bad row of four (25%) is under a 50% ceiling: exit 0, the problem still listed
    result = run_validate(ws, "--max-drop-share", "0.5")
    assert result.exit_code == 0, result.output
    assert "row 3" in result.output and "OK" in result.output
    settings = load_settings(ws)
    data = load_dataset(settings, max_drop_share=0.5)
    assert len(data.orders) == 3
    assert data.report.tables["orders"].dropped == {"unparseable_date": 1}
    # --strict makes any dropped row fatal
    assert run_validate(ws, "--strict").exit_code == 2


def test_negative_amounts_are_returns_kept_apart(workspace_factory):
    ws = workspace_factory(customers="good/customers.csv", orders="bad/orders_negative_amount.csv")
    result = run_validate(ws, "--all")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "negative amounts" in flat and "kept apart as returns" in flat
    data = load_dataset(load_settings(ws))
    assert len(data.orders) == 3 and len(data.returns) == 1
    assert data.returns["amount"].iloc[0] == pytest.approx(-25.5)
    assert data.report.tables["orders"].returns == 1


def test_load_dataset_raises_project_error_with_full_report(workspace_factory):
    ws = workspace_factory(orders="bad/orders_missing_column.csv", reviews="bad/orders_empty.csv")
    with pytest.raises(ValidationFailed) as info:
        load_dataset(load_settings(ws))
    report = info.value.report
    assert len(report.errors) == 2  # both tables reported, not just the first
    assert info.value.exit_code == 2


def test_json_output_lists_problems(workspace_factory):
    import json

    ws = workspace_factory(customers="good/customers.csv", orders="bad/orders_bad_date.csv")
    result = run_validate(ws, "--json")
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    problem = next(p for p in payload["problems"] if p["code"] == "unparseable_date")
    assert problem["rows"] == [3] and problem["column"] == "order_date"
    assert payload["tables"]["orders"]["rows_read"] == 4
    assert payload["tables"]["orders"]["rows_kept"] == 3


def test_good_files_load_cleanly(workspace_factory):
    ws = workspace_factory(customers="good/customers.csv", orders="good/orders.csv")
    result = run_validate(ws)
    assert result.exit_code == 0, result.output
    data = load_dataset(load_settings(ws))
    assert list(data.customers.columns[:3]) == ["customer_id", "signup_date", "age"]
    assert "email" in data.customers.columns  # extra columns kept as attributes
    assert data.orders["amount"].sum() == pytest.approx(192.49)
    assert str(data.orders["order_date"].dtype).startswith("datetime64")


def test_orders_without_customers_derive_customers(workspace_factory):
    ws = workspace_factory(orders="good/orders.csv")
    data = load_dataset(load_settings(ws))
    assert sorted(data.customers["customer_id"]) == ["C1", "C2", "C3", "C4"]
    assert data.report.tables["customers"].derived


def test_report_lists_every_table(workspace_factory):
    ws = workspace_factory(
        customers="good/customers.csv", orders="good/orders.csv", reviews="good/reviews_bom.csv"
    )
    report = validate(load_settings(ws))
    assert set(report.tables) == {"customers", "orders", "reviews"}
    assert not report.fatal


def test_missing_file_and_bad_mapping_are_clear(workspace_factory, tmp_path):
    ws = workspace_factory(orders=tmp_path / "nope.csv")
    result = run_validate(ws)
    assert result.exit_code == 2 and "file not found" in result.output
    ws = workspace_factory('[data.orders.columns]\norder_date = "When"\n', orders="good/orders.csv")
    # a mapping table before the [data.orders] path table is still valid TOML
    result = run_validate(ws)
    assert result.exit_code == 2
    assert "column 'When' (mapped to order_date in insight.toml) is not in the file" in " ".join(
        result.output.split()
    )
