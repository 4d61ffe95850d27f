"""`insight clv check` on the public CDNOW sample reproduces the published holdout check:
1,882 actual vs 1,653 predicted repeat purchases in weeks 40-78, with daily periods."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from insight_agent.cli import app
from tests.conftest import FIXTURES, write_workspace


def _cdnow_workspace(tmp_path: Path) -> Path:
    raw = pd.read_csv(
        FIXTURES / "cdnow" / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "amount"],
        dtype=str,
    )
    orders = pd.DataFrame(
        {
            "customer_id": raw["customer_id"],
            "order_date": raw["date"].str[:4]
            + "-"
            + raw["date"].str[4:6]
            + "-"
            + raw["date"].str[6:],
            "quantity": raw["cds"],
            "amount": raw["amount"],
        }
    )
    orders.to_csv(tmp_path / "orders.csv", index=False)
    return write_workspace(tmp_path / "ws", {"orders": tmp_path / "orders.csv"})


def test_clv_check_reproduces_the_cdnow_holdout(tmp_path: Path) -> None:
    ws = _cdnow_workspace(tmp_path)
    args = ["clv", "check", "--calibration-end", "1997-09-30", "--holdout-end", "1998-06-30"]
    result = CliRunner().invoke(app, [*args, "--json", "-w", str(ws)])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert facts["actual_repeat_purchases"] == 1882
    assert round(facts["predicted_repeat_purchases"]) == 1653
    # daily periods: the published weekly parameters with alpha in days (4.414 weeks x 7)
    p = facts["params"]
    assert (round(p["r"], 3), round(p["a"], 3), round(p["b"], 3)) == (0.243, 0.793, 2.426)
    assert abs(p["alpha"] / 7 - 4.414) < 0.01
    assert sum(r["customers"] for r in facts["by_frequency"]) == 2357
    table = CliRunner().invoke(app, [*args, "-w", str(ws)])
    assert "1,882 actual vs 1,653 predicted" in table.output
    weekly = CliRunner().invoke(app, [*args, "--period", "week", "--json", "-w", str(ws)])
    assert json.loads(weekly.output)["period"] == "week"
    bad = CliRunner().invoke(app, ["clv", "check", "--calibration-end", "soon", "-w", str(ws)])
    assert bad.exit_code == 2 and "not a date" in bad.output


def test_build_clv_period_setting(tmp_path: Path) -> None:
    """[analytics] clv_period = "day" fits the build's BG/NBD on days (the manifest says so);
    anything but day or week is refused."""
    ws = _cdnow_workspace(tmp_path)
    toml = ws / "insight.toml"
    toml.write_text(toml.read_text() + '\n[analytics]\nclv_period = "day"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["build", "--json", "-w", str(ws)])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["options"]["clv_period"] == "day"
    toml.write_text(toml.read_text().replace('"day"', '"month"'), encoding="utf-8")
    bad = CliRunner().invoke(app, ["build", "-w", str(ws)])
    assert bad.exit_code == 2 and "clv_period" in bad.output
