"""Prompt files (.md) and a tiny loader: prompt text lives in files, never inside .py files."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources


@cache
def load_prompt(name: str) -> str:
    """The text of ``prompts/<name>.md`` (packaged with Insight)."""
    return resources.files(__name__).joinpath(f"{name}.md").read_text(encoding="utf-8")


def prompt_hash(name: str) -> str:
    """sha256 of a prompt file (short form, for manifests and LLM answer caches)."""
    return hashlib.sha256(load_prompt(name).encode("utf-8")).hexdigest()[:16]


__all__ = ["load_prompt", "prompt_hash"]
