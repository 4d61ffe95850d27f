"""Resuming an interrupted build: the checkpoint of finished steps (analytics/checkpoint.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from insight_agent.analytics.checkpoint import Checkpoint, plain, resume_key


def test_key_ignores_threads_and_workers_only() -> None:
    base = {"seed": 0, "threads": 1, "workers": None, "engine": "duckdb"}
    versions = {"insight": "1"}
    key = resume_key("fp", base, versions)
    assert resume_key("fp", {**base, "threads": 2}, versions) == key
    assert resume_key("fp", {**base, "workers": 3}, versions) == key
    assert resume_key("fp", {**base, "seed": 1}, versions) != key
    assert resume_key("other", base, versions) != key
    assert resume_key("fp", base, {"insight": "2"}) != key


def test_record_restore_and_find(tmp_path: Path) -> None:
    builds = tmp_path / "builds"
    folder = builds / ".20261206T120000-1.tmp"
    check = Checkpoint(folder, "k1")
    columns = pd.DataFrame(
        {"p_churn": [0.1, 0.9], "churn_reasons": [["a", "b"], []]},
        index=pd.Index(["C1", "C2"], name="customer_id"),
    )
    check.record(
        "propensity:churn", [{"name": "propensity:churn"}], {"auc": np.float64(0.8)}, columns
    )
    check.record("clv", [{"name": "clv", "status": "skipped"}], None, None)

    again = Checkpoint(folder, "k1")
    assert again.finished == ["propensity:churn", "clv"]
    assert again.get("propensity:churn")["result"] == {"auc": 0.8}
    restored = again.columns("propensity:churn")
    assert restored["churn_reasons"].tolist() == [["a", "b"], []]  # lists, not arrays
    assert restored["p_churn"].tolist() == [0.1, 0.9]
    assert again.columns("clv") is None
    assert Checkpoint(folder, "other key").finished == []  # another build's state is not used

    stale = builds / ".20261205T000000-9.tmp"
    stale.mkdir()
    empty = builds / ".20261207T000000-3.tmp"
    Checkpoint(empty, "k1")  # no finished step: nothing to resume
    empty.mkdir()
    current = builds / ".20261208T000000-4.tmp"
    current.mkdir()
    assert Checkpoint.find(builds, "k1", exclude=current) == folder
    assert not stale.exists() and not empty.exists()  # other leftovers are removed
    assert current.exists()
    assert Checkpoint.find(builds, "k2", exclude=current) is None
    assert not folder.exists()


def test_plain_turns_numpy_into_json_types() -> None:
    got = plain({"a": np.int64(3), "b": (np.float32(0.5), "x"), 1: [np.bool_(True)]})
    assert got == {"a": 3, "b": [0.5, "x"], "1": [True]}
    assert type(got["a"]) is int


def test_pace_adds_throughput_and_time_left(monkeypatch) -> None:
    import insight_agent.analytics.build as build_module
    from insight_agent.analytics.build import Pace

    clock = iter([0.0, 0.0, 2.0, 2.0, 2.0, 3.0])  # each start reads the clock twice
    monkeypatch.setattr(build_module.time, "perf_counter", lambda: next(clock))
    heard: list[tuple[str, str]] = []
    pace = Pace(({"load": 4.0, "features": 2.0, "segments": 6.0}, 1000))
    say = pace.wrap(lambda stage, msg: heard.append((stage, msg)))
    say("load", "running")  # same size as last time assumed: 12 s left
    pace.rows = 2000  # twice the order lines of the last build
    say("load", "ok")
    say("features", "running")  # (2 + 6) s last time, x2
    say("features", "embedding 10/20")  # not the stage's end
    pace.customers = 500
    say("features", "ok")
    assert heard == [
        ("load", "running · about 12 s left"),
        ("load", "ok · 1,000 order lines/s"),
        ("features", "running · about 16 s left"),
        ("features", "embedding 10/20"),
        ("features", "ok · 500 customers/s"),
    ]
    assert Pace(({}, 0)).left() is None  # a first build: no estimate
    say("segments", "resumed: finished by the interrupted build")  # done, without a rate
    assert heard[-1] == ("segments", "resumed: finished by the interrupted build")
    assert pace.left() == 0.0
