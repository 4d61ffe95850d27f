"""Scoring customers who were not in the build, with the build's saved models.

`insight score --record customer.json` / `--file new_customers.csv [--orders orders.csv]`:
the customer's attributes (the customers file's column names) and, for the order-based
models (churn, purchase, response, categories), their orders. Features are computed by the
same functions the build used (:func:`insight_agent.analytics.features.customer_features`
at the build's cutoff; :meth:`insight_agent.analytics.labels.LabelModel.features`), and the
saved estimators (``models/*.joblib``) score them, with reasons. An existing customer's record
scored this way reproduces the build's score.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from insight_agent.analytics.artifacts import current_build, read_json
from insight_agent.errors import DataError
from insight_agent.workspace import Workspace


def read_records(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Customers (and their orders, from each record's ``orders`` list) from a JSON file
    holding one record or a list of them; DataError naming the file when it cannot be read."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read JSON: {exc}", file=str(path)) from None
    records = raw if isinstance(raw, list) else [raw]
    rows, orders = [], []
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, dict) or not rec.get("customer_id"):
            raise DataError(
                "each record must be an object with a customer_id",
                file=str(path),
                row=i,
                hint='e.g. {"customer_id": "new-1", "age": 34, "orders": [{"order_date": '
                '"2026-09-01", "amount": 42.5}]}',
            )
        for order in rec.get("orders") or []:
            orders.append({"customer_id": str(rec["customer_id"]), **order})
        rows.append({k: v for k, v in rec.items() if k != "orders"})
    frame = _typed(pd.DataFrame(rows))
    return frame, (_orders(pd.DataFrame(orders), str(path)) if orders else None)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Ids as text; a column whose every value reads as a number becomes numeric (a record
    may say "age": "34"); dates stay text until a model's features parse them."""
    out = frame.copy()
    for col in out.columns:
        if col == "customer_id":
            out[col] = out[col].astype(str)
            continue
        values = pd.to_numeric(out[col], errors="coerce")
        if values.notna().sum() == out[col].notna().sum() and out[col].notna().any():
            out[col] = values
    return out


def read_table(path: Path, what: str) -> pd.DataFrame:
    """A file of new customers or their orders, read like any export (CSV with its delimiter
    and encoding detected, Excel, Parquet; ids as text); DataError naming the file otherwise."""
    from insight_agent.data.sources import open_table

    frame = open_table(Path(path), display=str(path)).read(text_columns=["customer_id"]).frame
    if "customer_id" not in frame:
        raise DataError(
            f"{what} need a customer_id column",
            file=str(path),
            hint=f"the file's columns are: {', '.join(map(str, frame.columns))}",
        )
    return _orders(frame, str(path)) if what == "orders" else _typed(frame)


def _orders(frame: pd.DataFrame, file: str) -> pd.DataFrame:
    """Orders with parsed dates and amounts; DataError naming row and column otherwise."""
    for col in ("order_date", "amount"):
        if col not in frame:
            raise DataError(f"orders need a column '{col}'", file=file)
    out = frame.copy()
    out["order_date"] = pd.to_datetime(out["order_date"], errors="coerce")
    out["amount"] = pd.to_numeric(out["amount"], errors="coerce")
    for col in ("order_date", "amount"):
        bad = out[col].isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise DataError(f"not a valid {col.replace('_', ' ')}", file=file, row=row, column=col)
    out["customer_id"] = out["customer_id"].astype(str)
    return out


def score_new(
    ws: Workspace, customers: pd.DataFrame, orders: pd.DataFrame | None = None
) -> list[dict[str, Any]]:
    """Each customer's probability, decile-free, with reasons, for every saved model."""
    import joblib

    from insight_agent.analytics.labels import LabelModel

    folder = current_build(ws)
    manifest = read_json(folder, "manifest.json")
    out: dict[str, dict[str, Any]] = {
        cid: {"customer_id": cid, "scores": {}} for cid in customers["customer_id"]
    }
    X = None
    for path in sorted((folder / "models").glob("*.joblib")):
        if path.stem == "segments":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # version warnings are the build's business
            model = joblib.load(path)
        name = path.stem.replace("__", ":")
        if isinstance(model, LabelModel):
            frame = customers
            if X is None and orders is not None and _has_order_features(model):
                X = _order_features(ws, manifest, customers, orders)
            if _has_order_features(model):
                feats = X if X is not None else pd.DataFrame(index=customers["customer_id"])
                frame = customers.join(feats.add_prefix("orders_"), on="customer_id")
            p = model.predict_proba(frame)
            reasons = model.reasons(frame)
        else:
            if orders is None:
                continue  # an order-based model needs orders
            if X is None:
                X = _order_features(ws, manifest, customers, orders)
            from insight_agent.analytics.propensity import score_customers

            scored = score_customers(model, X.reindex(customers["customer_id"]))
            p, reasons = scored["probability"].to_numpy(), list(scored["reasons"])
        for cid, prob, why in zip(customers["customer_id"], p, reasons, strict=True):
            out[cid]["scores"][name] = {
                "probability": round(float(np.clip(prob, 0.001, 0.999)), 4),
                "reasons": list(why)[:3],
            }
    return list(out.values())


def _has_order_features(model: Any) -> bool:
    return any(c.startswith("orders_") for c in model.plan.columns)


def _order_features(
    ws: Workspace, manifest: dict[str, Any], customers: pd.DataFrame, orders: pd.DataFrame
) -> pd.DataFrame:
    """The build's order features for these customers, at the build's cutoff."""
    from insight_agent.analytics.features import customer_features, top_categories
    from insight_agent.engine.cache import ensure_cache

    cache = ensure_cache(ws)
    known = cache.read("orders")
    categories = top_categories(known) if known is not None and len(known) else None
    cutoff = pd.Timestamp(manifest["data"]["cutoff"])
    people = customers.copy()
    for col in ("signup_date",):
        if col in people:
            people[col] = pd.to_datetime(people[col], errors="coerce")
    # What the workspace already knows about these ids (sends, reviews, returns) counts too,
    # so a known customer scores as in the build; a new one simply has none of it.
    ids = set(people["customer_id"])
    known_rows = {}
    for table in ("campaigns", "reviews", "returns"):
        frame = cache.read(table)
        if frame is not None and "customer_id" in frame:
            known_rows[table] = frame[frame["customer_id"].isin(ids)]
    frame = customer_features(
        people,
        orders,
        cutoff,
        categories=categories,
        reviews=known_rows.get("reviews"),
        campaigns=known_rows.get("campaigns"),
        returns=known_rows.get("returns"),
    )
    return frame.X


__all__ = ["read_records", "read_table", "score_new"]
