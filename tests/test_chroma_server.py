"""Integration: a real `chroma run` server on 127.0.0.1 holds the review index."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from insight_agent.cli import app

CHROMA = Path(sys.executable).with_name("chroma")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path):
    if not CHROMA.exists():  # pragma: no cover - chromadb installs the `chroma` script
        pytest.skip("chroma CLI not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(CHROMA),
            "run",
            "--path",
            str(tmp_path / "server-data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("chroma server did not start")
                time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


def test_ingest_and_search_through_a_chroma_server(chroma_server, tmp_path):
    runner = CliRunner()
    ws = tmp_path / "ws"
    made = runner.invoke(app, ["init", str(ws), "--demo", "--customers-count", "400"])
    assert made.exit_code == 0, made.output
    built = runner.invoke(app, ["build", "-w", str(ws), "--chroma-url", chroma_server, "--json"])
    assert built.exit_code == 0, built.output
    reviews = json.loads(built.stdout)["reviews"]
    assert reviews["added"] == reviews["total"] > 0
    assert not (ws / ".insight" / "chroma").exists()  # nothing embedded locally

    found = runner.invoke(
        app,
        [
            "reviews",
            "search",
            "late delivery",
            "-k",
            "3",
            "-w",
            str(ws),
            "--chroma-url",
            chroma_server,
            "--json",
        ],
    )
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)["hits"]
    assert len(hits) == 3 and all(h["review_id"].startswith("R") for h in hits)
    assert any("deliver" in h["text"].lower() or "late" in h["text"].lower() for h in hits)

    again = runner.invoke(app, ["build", "-w", str(ws), "--chroma-url", chroma_server, "--json"])
    assert json.loads(again.stdout)["reviews"]["added"] == 0  # the server keeps the index
