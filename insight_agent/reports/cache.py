"""LLM answers cached by prompt hash, so a report re-run on unchanged data and models is
byte-identical (and free). Keys are sha256 hashes of everything that shapes the answer:
provider, model, prompt file hashes, the question or facts, the build id and data fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from insight_agent.workspace import atomic_write_text


def cache_key(*parts: Any) -> str:
    """A stable key for ``parts`` (JSON-serialised, sorted keys)."""
    raw = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class AnswerCache:
    """One JSON file per key under ``folder`` (``.insight/cache/llm`` by default)."""

    def __init__(self, folder: Path, *, enabled: bool = True) -> None:
        self.folder = Path(folder)
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any:
        """The cached value, or None."""
        if not self.enabled:
            return None
        path = self._path(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            value = json.loads(path.read_text(encoding="utf-8"))["value"]
        except (OSError, ValueError, KeyError):
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) atomically."""
        if not self.enabled:
            return
        atomic_write_text(
            self._path(key), json.dumps({"value": value}, ensure_ascii=False, default=str)
        )
