"""Shared test fixtures: every test runs isolated from the user's home, env and network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def _single_threaded_numerics():
    """One OpenMP/BLAS thread, as builds use: spinning threads on a shared 2-core machine make
    fits erratic (see BuildOptions.threads)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real home folder, no inherited workspace or API keys, a neutral working folder."""
    home = tmp_path_factory.mktemp("insight-home")
    monkeypatch.setenv("INSIGHT_HOME", str(home))
    for var in (
        "INSIGHT_WORKSPACE",
        "INSIGHT_LLM",
        "INSIGHT_MODEL",
        "INSIGHT_CHROMA_URL",
        "INSIGHT_ENGINE",
        "INSIGHT_SPARK_MASTER",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "INSIGHT_DEBUG",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def write_workspace(root: Path, tables: dict[str, Path | str], extra: str = "") -> Path:
    """Write an insight.toml in ``root`` pointing at ``tables`` (paths as given)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ['[workspace]\nname = "test"\n', "[data]\ntoday = 2026-11-01\n", extra]
    for name, path in tables.items():
        lines.append(f"[data.{name}]\npath = {json.dumps(str(path))}\n")
    (root / "insight.toml").write_text("\n".join(lines), encoding="utf-8")
    return root


def public_workspace(root: Path, toml: str, command: str = "build") -> Path:
    """A workspace over a public fixture: ``toml`` written as ``root``'s insight.toml, then
    ``insight validate`` or ``insight build`` run on it (asserted to succeed)."""
    from typer.testing import CliRunner

    from insight_agent.cli import app

    root.mkdir(parents=True, exist_ok=True)
    (root / "insight.toml").write_text(toml, encoding="utf-8")
    done = CliRunner().invoke(app, [command, "-w", str(root)])
    assert done.exit_code == 0, done.output
    return root


def none_session_asker(root: Path, tool: str | None = None):
    """``ask(question) -> (tool, args, result)`` over one no-LLM session on ``root``: each
    question must make exactly one call without an error (and to ``tool``, when given).
    ``ask.session`` is the session, ``ask.last`` the last turn."""
    from insight_agent.agent.session import SessionOptions, open_session
    from insight_agent.data.bootstrap import open_workspace

    session = open_session(
        open_workspace(root), llm="none", options=SessionOptions(transcript=False)
    )

    def ask(question: str) -> tuple[str, dict, dict]:
        turn = session.ask(question)
        ask.last = turn  # type: ignore[attr-defined]  # the answer's text, notes …
        assert len(turn.tool_calls) == 1, (question, turn.answer)
        call = turn.tool_calls[0]
        assert call["error"] is None, (question, call["error"])
        assert tool is None or call["tool"] == tool, (question, call)
        return call["tool"], call["args"], call["result"]

    ask.session = session  # type: ignore[attr-defined]
    return ask


@pytest.fixture
def workspace_factory(tmp_path: Path):
    """Build a workspace from fixture names or paths: ``factory(orders="bad/x.csv")``."""

    def make(extra: str = "", **tables: str | Path) -> Path:
        resolved = {k: (FIXTURES / v if isinstance(v, str) else v) for k, v in tables.items()}
        return write_workspace(tmp_path / "ws", resolved, extra)

    return make


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo workspace with the default 5,000-customer dataset (generated once per run)."""
    from insight_agent.data.bootstrap import init_workspace

    root = tmp_path_factory.mktemp("demo") / "ws"
    init_workspace(root, demo=True)
    return root


@pytest.fixture(scope="session")
def demo_data(demo_workspace: Path):
    """The demo workspace loaded and validated (a Dataset), plus its ground truth."""
    import pandas as pd

    from insight_agent.config import load_settings
    from insight_agent.data.load import load_dataset

    data = load_dataset(load_settings(demo_workspace))
    truth = pd.read_csv(
        demo_workspace / "data" / "truth" / "customers_truth.csv", dtype={"customer_id": str}
    ).set_index("customer_id")
    return data, truth


@pytest.fixture(scope="session")
def built_demo(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo workspace with one full build (models + review index), shared by the
    whole run: tests read it and must not change it (copy it first if they need to)."""
    import shutil

    from typer.testing import CliRunner

    from insight_agent.cli import app

    root = tmp_path_factory.mktemp("built") / "ws"
    reuse = os.environ.get("INSIGHT_TEST_BUILT")  # dev speed-up: copy an already built demo
    if reuse:
        shutil.copytree(reuse, root)
        return root
    shutil.copytree(demo_workspace, root)
    result = CliRunner().invoke(app, ["build", "-w", str(root)])
    assert result.exit_code == 0, result.output
    return root
