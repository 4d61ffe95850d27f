"""The validated Parquet cache: a workspace's tables after validation, one Parquet file each.

Keyed by the data fingerprint (file bytes + the settings that change how they load, see
:func:`insight_agent.data.load.fingerprint`): ``.insight/tables/<fingerprint[:16]>/``. It is
written once, by ``insight validate`` or ``insight build`` (or by the first command that needs
it), atomically (a temporary folder renamed into place), and read by every later command
instead of re-parsing the exports. Changing a file or a loading setting changes the
fingerprint, so a stale cache is never read; the two newest caches are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from insight_agent.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

    from insight_agent.data.load import Dataset

CACHE_DIR = "tables"
KEEP = 2
# 2: timestamps stored as microseconds (Spark cannot read Parquet's nanosecond timestamps)
CACHE_VERSION = 2
TABLE_NAMES = ("customers", "orders", "returns", "reviews", "campaigns")


@dataclass(frozen=True)
class TableCache:
    """One fingerprint's cached tables."""

    folder: Path
    fingerprint: str
    meta: dict[str, Any]

    def path(self, table: str) -> Path | None:
        """The Parquet file of ``table``, or None when the workspace has no such table."""
        path = self.folder / f"{table}.parquet"
        return path if table in self.meta.get("tables", {}) and path.is_file() else None

    @property
    def tables(self) -> dict[str, int]:
        """Table name -> rows, for the tables the workspace has."""
        return dict(self.meta.get("tables", {}))

    @property
    def data_up_to(self) -> str | None:
        """The last order date (ISO), or the last review / send date without orders."""
        return self.meta.get("data_up_to")

    def read(self, table: str) -> pd.DataFrame | None:
        """One cached table as pandas (None when absent)."""
        import pandas as pd

        path = self.path(table)
        return None if path is None else pd.read_parquet(path)


def _root(ws: Workspace) -> Path:
    return ws.artifacts / CACHE_DIR


def _folder(ws: Workspace, fingerprint: str) -> Path:
    return _root(ws) / fingerprint[:16]


def cached(ws: Workspace, fingerprint: str | None = None) -> TableCache | None:
    """The cache for the workspace's current data, or None when it has not been written."""
    from insight_agent.data.load import fingerprint as data_fingerprint

    fp = fingerprint or data_fingerprint(ws.settings)
    folder = _folder(ws, fp)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("fingerprint") != fp or meta.get("version") != CACHE_VERSION:
        return None
    return TableCache(folder, fp, meta)


def _for_parquet(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns Parquet can store as they are: mixed-type text columns become strings."""
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(lambda v: None if v is None or v is pd.NA else str(v))
            out[col] = out[col].astype("string")
    return out


def _end_date(frames: dict[str, pd.DataFrame]) -> str | None:
    for table, col in (("orders", "order_date"), ("campaigns", "sent_date"), ("reviews", "date")):
        frame = frames.get(table)
        if frame is not None and col in frame and frame[col].notna().any():
            return str(frame[col].max().date())
    return None


def write_cache(ws: Workspace, data: Dataset) -> TableCache:
    """Write the validated tables of ``data`` (idempotent: an existing cache is reused)."""
    found = cached(ws, data.fingerprint)
    if found is not None:
        return found
    frames: dict[str, pd.DataFrame] = {
        "customers": data.customers,
        "orders": data.orders,
        "returns": data.returns,
    }
    if data.reviews is not None:
        frames["reviews"] = data.reviews
    if data.campaigns is not None:
        frames["campaigns"] = data.campaigns
    # Customers derived from orders are not a table the user gave us; still cached (ids).
    final = _folder(ws, data.fingerprint)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name, frame in frames.items():
            # microsecond timestamps: every engine reads them (Spark refuses nanoseconds);
            # dates from exports carry no sub-microsecond part to lose
            _for_parquet(frame).to_parquet(
                tmp / f"{name}.parquet",
                index=False,
                coerce_timestamps="us",
                allow_truncated_timestamps=True,
            )
        meta = {
            "version": CACHE_VERSION,
            "fingerprint": data.fingerprint,
            "tables": {name: len(frame) for name, frame in frames.items()},
            "columns": {name: list(map(str, frame.columns)) for name, frame in frames.items()},
            "sources": data.sources,
            "derived_customers": bool(
                data.report.tables.get("customers") and data.report.tables["customers"].derived
            ),
            "data_up_to": _end_date(frames),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), "utf-8")
        if cached(ws, data.fingerprint) is not None:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(final, ignore_errors=True)  # a half-written folder (no meta.json)
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(ws, keep=final)
    return TableCache(final, data.fingerprint, meta)


def _prune(ws: Workspace, keep: Path) -> None:
    """Keep the newest caches (and ``keep``); leftovers of crashed writers are removed too."""
    root = _root(ws)
    folders = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in [p for p in folders if p != keep][KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def ensure_cache(ws: Workspace) -> TableCache:
    """The cache for the workspace's data, validating and writing it first when needed.

    Raises :class:`insight_agent.data.report.ValidationFailed` when the data cannot load.
    """
    found = cached(ws)
    if found is not None:
        return found
    from insight_agent.data.load import load_dataset

    return write_cache(ws, load_dataset(ws.settings, display=ws.display))


def validate_and_cache(ws: Workspace, *, max_drop_share: float | None = None) -> Any:
    """`insight validate`: the validation report, and (when the data loads under the
    workspace's own settings) the Parquet cache written, so the next command reads Parquet.

    A one-off ``max_drop_share`` validates only: data loaded under another ceiling is not the
    workspace's data and is not cached.
    """
    from insight_agent.data.load import load_dataset, validate
    from insight_agent.data.report import ValidationFailed

    if max_drop_share is not None:
        return validate(ws.settings, max_drop_share=max_drop_share, display=ws.display)
    try:
        data = load_dataset(ws.settings, display=ws.display)
    except ValidationFailed as exc:
        return exc.report
    write_cache(ws, data)
    return data.report


__all__ = ["TableCache", "cached", "ensure_cache", "validate_and_cache", "write_cache"]
