"""The command line as a user meets it: real processes, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from insight_agent import __version__
from insight_agent.agent.llm import choose_provider
from insight_agent.cli import app
from insight_agent.config import load_settings
from tests.conftest import FIXTURES, write_workspace

runner = CliRunner()
REPO = Path(__file__).parents[1]


def insight(*args: str, env: dict | None = None, cwd: Path | None = None):
    """Run the real CLI in a child process."""
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "insight_agent", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


def test_importing_the_cli_loads_no_heavy_library():
    probe = (
        "import sys, insight_agent.cli; heavy = ['pandas', 'numpy', 'sklearn', 'chromadb',"
        " 'langchain', 'langchain_core', 'openai', 'onnxruntime', 'xllamacpp', 'pyarrow'];"
        " print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"


def test_help_and_version():
    result = insight("--help")
    assert result.returncode == 0
    for command in ("init", "validate", "doctor"):
        assert command in result.stdout
    assert insight("--version").stdout.strip() == f"insight {__version__}"


def test_errors_are_messages_not_tracebacks(tmp_path):
    result = insight("validate", "-w", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "does not exist" in result.stderr and "insight init" in result.stderr

    (tmp_path / "insight.toml").write_text("[data\n")
    result = insight("validate", "-w", str(tmp_path))
    assert result.returncode == 2 and "not valid TOML" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_data_exits_2_without_traceback_in_a_real_process(tmp_path):
    ws = write_workspace(tmp_path / "ws", {"orders": FIXTURES / "bad/orders_bad_date.csv"})
    result = insight("validate", "-w", str(ws))
    assert result.returncode == 2
    assert "row 3" in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_init_points_at_exports_and_validates(tmp_path):
    result = runner.invoke(
        app,
        [
            "init",
            str(tmp_path / "shop"),
            "--orders",
            str(FIXTURES / "good/orders.csv"),
            "--customers",
            str(FIXTURES / "good/customers.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    settings = load_settings(tmp_path / "shop")
    assert settings.data.tables["orders"].path == FIXTURES / "good/orders.csv"
    assert (tmp_path / "shop" / ".insight").is_dir()
    again = runner.invoke(app, ["init", str(tmp_path / "shop")])
    assert again.exit_code == 2 and "already exists" in again.output
    assert runner.invoke(app, ["validate", "-w", str(tmp_path / "shop")]).exit_code == 0


def test_init_rejects_missing_export(tmp_path):
    result = runner.invoke(app, ["init", str(tmp_path / "x"), "--orders", "nope.csv"])
    assert result.exit_code == 2 and "orders file not found" in result.output


def test_doctor_reports_workspace_and_provider(tmp_path):
    ws = write_workspace(tmp_path / "ws", {"orders": FIXTURES / "good/orders.csv"})
    result = runner.invoke(app, ["doctor", "-w", str(ws), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["Workspace"]["folder"] == str(ws.resolve())
    assert report["Workspace"]["chosen by"] == "--workspace"
    assert "ok" in report["Workspace"]["orders"]
    assert report["LLM"]["provider"] in {"local", "none"}
    assert report["Vector store"]["chroma"].startswith("embedded")
    assert report["Vector store"]["embeddings"].startswith("all-MiniLM-L6-v2-int8, offline")


def test_a_closed_stdout_pipe_ends_the_command_quietly(tmp_path):
    """`insight ... | head` when head has gone: exit 1 without a message (not an "internal
    error", not Python's "Exception ignored" at exit), in a command and in --help."""
    import os

    ws = write_workspace(tmp_path / "ws", {"orders": FIXTURES / "good/orders.csv"})
    for args in (["doctor", "-w", str(ws), "--json"], ["reviews", "search", "--help"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the first write
        try:
            result = subprocess.run(
                [sys.executable, "-m", "insight_agent", *args],
                stdout=write,
                stderr=subprocess.PIPE,
                text=True,
                timeout=300,
            )
        finally:
            os.close(write)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr == "", (args, result.stderr)


def test_doctor_says_when_a_chroma_server_is_unreachable(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a free port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("INSIGHT_CHROMA_URL", f"http://127.0.0.1:{port}")
    ws = write_workspace(tmp_path / "ws", {})
    result = runner.invoke(app, ["doctor", "-w", str(ws), "--json"])
    assert "NOT reachable" in json.loads(result.stdout)["Vector store"]["chroma"]


@pytest.mark.parametrize(
    ("env", "toml", "override", "expected"),
    [
        ({}, "", "none", "none"),
        ({"OPENAI_API_KEY": "sk-test"}, "", None, "openai"),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}, "", None, "openai"),
        ({"OPENAI_API_KEY": "sk-test"}, '[llm]\nprovider = "none"\n', None, "none"),
        ({"OPENAI_API_KEY": "sk-test"}, '[llm]\nprovider = "none"\n', "openai", "openai"),
    ],
)
def test_provider_choice(tmp_path, monkeypatch, env, toml, override, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    write_workspace(tmp_path, {}, toml)
    choice = choose_provider(load_settings(tmp_path), override)
    assert choice.name == expected and choice.reason


def test_builtin_demo_workspace_is_created_on_first_use(tmp_path):
    import os

    first = runner.invoke(app, ["validate"])
    assert first.exit_code == 0, first.output
    assert "Using the built-in demo workspace" in first.stderr
    root = Path(os.environ["INSIGHT_HOME"]) / "demo-workspace"
    settings = load_settings(root)
    assert settings.demo and settings.name == "demo"
    assert (root / "data" / "truth" / "customers_truth.csv").is_file()
    stamp = (root / "insight.toml").stat().st_mtime_ns
    second = runner.invoke(app, ["validate"])  # reused, not regenerated
    assert second.exit_code == 0
    assert (root / "insight.toml").stat().st_mtime_ns == stamp


def test_init_demo_with_size_and_seed(tmp_path):
    result = runner.invoke(
        app, ["init", str(tmp_path / "d"), "--demo", "--customers-count", "300", "--seed", "7"]
    )
    assert result.exit_code == 0, result.output
    assert "customers: " in result.output and "(300 rows)" in result.output
    validated = runner.invoke(app, ["validate", "-w", str(tmp_path / "d"), "--json"])
    assert validated.exit_code == 0
    report = json.loads(validated.stdout)
    assert report["tables"]["customers"]["rows_kept"] == 300
    assert report["tables"]["orders"]["rows_dropped"] == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["metricz"], "No such command 'metricz'"),
        (["build", "--labell", "y"], "No such option: --labell"),
        (["metrics", "revenue", "--compare", "later"], "Invalid value for --compare"),
    ],
)
def test_usage_errors_are_usage_errors_not_bugs(args: list[str], expected: str) -> None:
    """A mistyped command or option gets Click's usage message and exit code 2."""
    from insight_agent.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert expected in result.output
    assert "internal error" not in result.output and "bug" not in result.output
