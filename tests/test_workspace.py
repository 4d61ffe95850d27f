"""Workspace resolution, settings, atomic writes and the build lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from insight_agent.config import load_settings
from insight_agent.errors import ConfigError, WorkspaceBusy
from insight_agent.workspace import (
    Workspace,
    atomic_path,
    atomic_write_text,
    file_lock,
    locate,
)
from tests.conftest import write_workspace


def test_resolution_order(tmp_path, monkeypatch):
    explicit, env_ws, cwd_ws = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root in (explicit, env_ws, cwd_ws):
        write_workspace(root, {})
    monkeypatch.chdir(cwd_ws)
    monkeypatch.setenv("INSIGHT_WORKSPACE", str(env_ws))
    assert (locate(explicit).root, locate(explicit).source) == (explicit, "--workspace")
    assert (locate().root, locate().source) == (env_ws, "INSIGHT_WORKSPACE")
    monkeypatch.delenv("INSIGHT_WORKSPACE")
    assert (locate().root, locate().source) == (cwd_ws, "current directory")
    monkeypatch.chdir(tmp_path)
    fallback = locate()
    assert fallback.is_builtin_demo and not fallback.exists
    import os

    assert fallback.root == (Path(os.environ["INSIGHT_HOME"]) / "demo-workspace").resolve()


def test_unknown_setting_suggests_the_right_key(tmp_path):
    (tmp_path / "insight.toml").write_text("[data]\nmax_drop_shar = 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path)
    assert "unknown setting 'data.max_drop_shar'" in info.value.message
    assert "max_drop_share" in (info.value.hint or "")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[data\n", "not valid TOML"),
        ("[data]\nmax_drop_share = 2\n", "between 0 and 1"),
        ('[data]\ndayfirst = "yes"\n', "'data.dayfirst' must be true or false"),
        ('[llm]\nprovider = "gpt"\n', "unknown LLM provider 'gpt'"),
        ("[data.orders]\ncolumns = {}\n", "needs a 'path'"),
    ],
)
def test_bad_settings_are_reported_with_the_key(tmp_path, text, fragment):
    (tmp_path / "insight.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path)
    assert fragment in info.value.message


def test_env_overrides_settings(tmp_path, monkeypatch):
    write_workspace(tmp_path, {})
    monkeypatch.setenv("INSIGHT_LLM", "none")
    monkeypatch.setenv("INSIGHT_CHROMA_URL", "http://127.0.0.1:9")
    settings = load_settings(tmp_path)
    assert settings.llm.provider == "none"
    assert settings.vectorstore.chroma_url == "http://127.0.0.1:9"


def test_missing_workspace_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        Workspace.open(locate(tmp_path / "nowhere"))
    assert "does not exist" in info.value.message and "insight init" in (info.value.hint or "")


def test_atomic_write_keeps_previous_content_when_the_writer_fails(tmp_path):
    target = tmp_path / "model.json"
    atomic_write_text(target, "version 1")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("version 2, half writ")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "version 1"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]  # temp file cleaned up


def test_atomic_write_survives_a_hard_crash(tmp_path):
    """A process killed mid-write (no cleanup runs) leaves the previous artifact intact."""
    target = tmp_path / "segments.parquet"
    atomic_write_text(target, "previous artifact")
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from insight_agent.workspace import atomic_path
        with atomic_path(Path({str(target)!r})) as tmp:
            with open(tmp, "w") as fh:
                fh.write("partial")
                fh.flush()
                os._exit(9)  # simulated crash: no exception handling, no rename
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    assert proc.returncode == 9
    assert target.read_text() == "previous artifact"
    atomic_write_text(target, "next artifact")  # a leftover temp file does not get in the way
    assert target.read_text() == "next artifact"


def test_lock_stops_a_second_build(tmp_path):
    write_workspace(tmp_path, {})
    ws = Workspace.open(locate(tmp_path))
    held = threading.Event()
    release = threading.Event()

    def first_build() -> None:
        with ws.lock():
            held.set()
            release.wait(5)

    thread = threading.Thread(target=first_build)
    thread.start()
    try:
        assert held.wait(5)
        with pytest.raises(WorkspaceBusy) as info, file_lock(ws.artifacts / "build.lock"):
            pass
        assert "another Insight process" in info.value.message
    finally:
        release.set()
        thread.join()
    with ws.lock():  # free again once the first build is done
        pass


def test_artifact_paths_live_under_dot_insight(tmp_path):
    write_workspace(tmp_path, {})
    ws = Workspace.open(locate(tmp_path))
    path = ws.artifact_path("models", "churn.joblib")
    assert path.parent.is_dir()
    assert path.is_relative_to(tmp_path / ".insight")
