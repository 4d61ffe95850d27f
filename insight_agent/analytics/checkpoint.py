"""Resuming an interrupted build from its last finished stage.

A build writes into a temporary folder (``.insight/builds/.<build_id>.tmp``) and publishes it
only when complete (see :mod:`insight_agent.analytics.artifacts`). Each finished step (the
segments, each propensity model, CLV, the basket rules...) also records a checkpoint in that
folder: the step's stage reports, its result for the manifest, and the customer-table columns
it added (Parquet). The step's own files (model cards, estimators) are already there.

When a build stops (Ctrl-C, a crash, the machine going down) the folder stays. The next
``insight build`` of the same data with the same options (the *key*: data fingerprint, build
options, library versions) adopts it: finished steps are restored instead of run, and the
build goes on from the first unfinished one. Loading and the feature tables are recomputed
(they are the input of every step and are not stored). Any other leftover folder is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

FOLDER = "checkpoint"
STATE = "state.json"


def resume_key(fingerprint: str, options: dict[str, Any], versions: dict[str, str]) -> str:
    """What must match for a leftover build to be resumed: the data, the options (threads
    and workers aside: they change speed, not results) and the library versions."""
    wanted = {k: v for k, v in options.items() if k not in ("threads", "workers")}
    text = json.dumps(
        {"data": fingerprint, "options": wanted, "versions": versions},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plain(value: Any) -> Any:
    """``value`` with NumPy scalars and tuples turned into JSON's own types (recursively)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


class Checkpoint:
    """The finished steps of one unfinished build folder."""

    def __init__(self, build_folder: Path, key: str) -> None:
        self.folder = build_folder / FOLDER
        self.key = key
        self.steps: dict[str, dict[str, Any]] = {}
        state = _read_state(self.folder)
        if state is not None and state.get("key") == key:
            self.steps = dict(state.get("steps", {}))

    @staticmethod
    def find(builds: Path, key: str, *, exclude: Path) -> Path | None:
        """The newest leftover build folder whose checkpoint has ``key`` and at least one
        finished step; every other leftover folder (but ``exclude``) is removed."""
        if not builds.is_dir():
            return None
        leftovers = sorted(
            (p for p in builds.iterdir() if p.is_dir() and p.name.startswith(".") and p != exclude),
            key=lambda p: p.name,
            reverse=True,
        )
        chosen = None
        for folder in leftovers:
            state = _read_state(folder / FOLDER)
            if chosen is None and state and state.get("key") == key and state.get("steps"):
                chosen = folder
            else:
                shutil.rmtree(folder, ignore_errors=True)
        return chosen

    @property
    def finished(self) -> list[str]:
        """Names of the finished steps, in the order they ran."""
        return list(self.steps)

    def get(self, step: str) -> dict[str, Any] | None:
        """The record of a finished step, or None."""
        return self.steps.get(step)

    def columns(self, step: str) -> pd.DataFrame | None:
        """The customer-table columns a finished step added (None when it added none)."""
        name = self.steps[step].get("columns")
        if name is None:
            return None
        frame = pd.read_parquet(self.folder / name)
        for col in frame.columns:  # Parquet gives lists (reasons) back as arrays
            if frame[col].dtype == object:
                frame[col] = [v.tolist() if hasattr(v, "tolist") else v for v in frame[col]]
        return frame

    def record(
        self,
        step: str,
        reports: list[dict[str, Any]],
        result: Any,
        columns: pd.DataFrame | None,
    ) -> None:
        """Save a finished step (written before the state that names it, so a crash between
        the two leaves the previous state intact)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = None
        if columns is not None and len(columns.columns):
            name = f"{len(self.steps):02d}.parquet"
            columns.to_parquet(self.folder / name)
        self.steps[step] = {"reports": plain(reports), "result": plain(result), "columns": name}
        tmp = self.folder / f".{STATE}.tmp"
        tmp.write_text(
            json.dumps({"key": self.key, "steps": self.steps}, default=str), encoding="utf-8"
        )
        os.replace(tmp, self.folder / STATE)

    def discard(self) -> None:
        """Remove the checkpoint (the build is complete: it is not part of the artifacts)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


__all__ = ["Checkpoint", "plain", "resume_key"]
