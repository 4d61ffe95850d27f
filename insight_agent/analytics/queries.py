"""Read-side services over the current build: what the CLI commands and agent tools ask for.

Every function returns plain, JSON-ready data (sorted, rounded as it should be quoted), so the
CLI renders it and the agent's tools pass it on unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from insight_agent.analytics.artifacts import (
    NoBuild,
    check_versions,
    current_build,
    lookup_customer,
    read_json,
)
from insight_agent.errors import ConfigError, InsightError
from insight_agent.workspace import Workspace, atomic_path

BASE_TARGETS = ("churn", "purchase", "response")


def _manifest(ws: Workspace) -> tuple[Path, dict[str, Any]]:
    folder = current_build(ws)
    manifest = read_json(folder, "manifest.json")
    check_versions(manifest)
    return folder, manifest


def segments_summary(ws: Workspace) -> dict[str, Any]:
    """Segments of the current build: size, revenue share, key medians, categories, rules."""
    folder, manifest = _manifest(ws)
    seg = read_json(folder, "segments.json")
    rows = []
    for p in seg["profiles"]:
        sid = p["segment"]
        rows.append(
            {
                "id": sid,
                "name": p["name"],
                "customers": int(p["customers"]),
                "share_customers": round(p["share_customers"], 3),
                "share_revenue": round(p["share_revenue"], 3),
                "median_recency_days": round(p.get("median_recency_days", float("nan")), 1),
                "median_orders": round(p.get("median_frequency", float("nan")), 1),
                "median_total_spend": round(p.get("median_monetary_total", float("nan")), 2),
                "median_order_value": round(p.get("median_avg_order_value", float("nan")), 2),
                "median_tenure_days": round(p.get("median_tenure_days", float("nan")), 1),
                "top_categories": p.get("top_categories", []),
                "rules": seg["rules"].get(sid, [])[:2],
            }
        )
    rows.sort(key=lambda r: -r["share_revenue"])
    return {
        "build_id": manifest["build_id"],
        "cutoff": manifest["data"]["cutoff"],
        "k": seg["k"],
        "tree_fidelity": seg["tree_fidelity"],
        "largest_segment": max(rows, key=lambda r: r["customers"])["name"] if rows else None,
        "top_revenue_segment": rows[0]["name"] if rows else None,
        "segments": rows,
    }


def resolve_target(folder: Path, target: str) -> str:
    """Model file stem for a user's target: churn, purchase, response, or a category name."""
    models = folder / "models"
    if target in BASE_TARGETS:
        stem = target
    else:
        name = target.split(":", 1)[-1].lower()
        matches = [
            p.stem
            for p in models.glob("category__*.json")
            if p.stem.split("__", 1)[1].lower() == name
        ]
        stem = matches[0] if matches else f"category__{target}"
    if not (models / f"{stem}.json").is_file():
        available = sorted(p.stem.replace("category__", "") for p in models.glob("*.json"))
        raise ConfigError(
            f"no model for '{target}' in the current build",
            hint=f"available: {', '.join(available) or 'none'} "
            "(skipped models are listed by `insight build`)",
        )
    return stem


def model_card(ws: Workspace, target: str) -> dict[str, Any]:
    """The model card of one target (metrics on the held-out window, drivers, comparison)."""
    folder, manifest = _manifest(ws)
    stem = resolve_target(folder, target)
    card = read_json(folder, f"models/{stem}.json")
    card["build_id"] = manifest["build_id"]
    m = card["metrics"]
    auc = m["roc_auc"]
    card["reliability"] = (
        "strong"
        if auc >= 0.8
        else "useful"
        if auc >= 0.7
        else "weak"
        if auc >= 0.6
        else "not better than chance"
    )
    card["headline"] = (
        f"{card['meaning']}: ROC-AUC {auc:.2f} on the held-out window; the top "
        f"10% of scores hold {m['capture_by_decile'][0]:.0%} of positives "
        f"(lift {m['top_decile_lift']:.1f}x)"
    )
    return card


def customer_score(ws: Workspace, customer_id: str) -> dict[str, Any]:
    """One customer's segment, scores with reasons, and CLV (SQLite point lookup)."""
    folder = current_build(ws)
    row = lookup_customer(folder, customer_id)
    if row is None:
        raise InsightError(
            f"customer '{customer_id}' is not in the current build",
            hint="check the id, or rebuild after adding new data",
        )
    row["build_id"] = folder.name
    return row


def audience(
    ws: Workspace,
    target: str,
    *,
    top: int = 500,
    segment: str | None = None,
    min_probability: float = 0.0,
) -> Any:
    """The ``top`` customers by a target's probability (optionally within one segment).

    Returns a pandas DataFrame: customer_id, segment, probability, decile, reasons, CLV.
    """
    import pandas as pd

    folder, manifest = _manifest(ws)
    stem = resolve_target(folder, target)
    column = read_json(folder, f"models/{stem}.json")["column"]
    table = pd.read_parquet(folder / "customers.parquet")
    if segment:
        wanted = segment.lower()
        mask = (table["segment"].str.lower() == wanted) | (
            table["segment_name"].str.lower() == wanted
        )
        if not mask.any():
            names = sorted(set(table["segment_name"].dropna()))
            raise ConfigError(f"no segment '{segment}'", hint=f"segments: {', '.join(names)}")
        table = table[mask]
    table = table[table[column] >= min_probability]
    base = column.removeprefix("p_")
    keep = [
        c
        for c in (
            "segment",
            "segment_name",
            column,
            f"{base}_decile",
            f"{base}_reasons",
            "clv_12m",
            "recency_days",
            "frequency",
            "monetary_total",
        )
        if c in table
    ]
    out = table.sort_values([column, "monetary_total"], ascending=[False, False]).head(top)
    out = out[keep].rename(
        columns={column: "probability", f"{base}_decile": "decile", f"{base}_reasons": "reasons"}
    )
    out.attrs["target"] = target
    out.attrs["build_id"] = manifest["build_id"]
    return out


def write_audience(frame: Any, path: Path) -> Path:
    """Write an audience as CSV atomically (reasons joined with '; ')."""
    out = frame.copy()
    if "reasons" in out:
        out["reasons"] = out["reasons"].map(
            lambda r: (
                "; ".join(r)
                if isinstance(r, list | tuple) or hasattr(r, "tolist")
                else ("" if r is None else str(r))
            )
        )
    path = Path(path)
    with atomic_path(path) as tmp:
        out.reset_index().to_csv(tmp, index=False)
    return path


def build_summary(ws: Workspace) -> dict[str, Any]:
    """The manifest of the current build (for `insight build --json` and `insight doctor`)."""
    _, manifest = _manifest(ws)
    return manifest


__all__ = [
    "NoBuild",
    "audience",
    "build_summary",
    "customer_score",
    "model_card",
    "segments_summary",
    "write_audience",
]
