"""Read-side services over the current build: what the CLI commands and agent tools ask for.

Every function returns plain, JSON-ready data (sorted, rounded as it should be quoted), so the
CLI renders it and the agent's tools pass it on unchanged.
"""

from __future__ import annotations

import re
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
from insight_agent.names import match_value
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
    if target in BASE_TARGETS and (models / f"{target}.json").is_file():
        stem = target
    else:  # "response" without orders is the campaign's label model (label__response)
        name = target.split(":", 1)[-1].lower()
        # a label of the customers table ("y", "label:y") or a product category
        matches = [
            p.stem
            for kind in ("label", "category")
            for p in sorted(models.glob(f"{kind}__*.json"))
            if p.stem.split("__", 1)[1].lower() == name
        ]
        stem = matches[0] if matches else f"category__{target}"
    if not (models / f"{stem}.json").is_file():
        available = sorted(p.stem.split("__", 1)[-1] for p in models.glob("*.json"))
        raise ConfigError(
            f"no model for '{target}' in the current build",
            hint=f"available: {', '.join(available) or 'none'} "
            "(skipped models are listed by `insight build`)",
        )
    return stem


#: Below this top-decile lift a model's best tenth is barely better than anyone: the card says
#: so beside its ROC-AUC (a grocer where 94% buy every quarter: AUC 0.8, lift 1.1x).
WEAK_TARGETING_LIFT = 1.5


def targeting_note(metrics: dict[str, Any]) -> str | None:
    """Why a well-ranking model still targets poorly, or None when its top tenth lifts enough.

    The top decile's lift is at most 1 / base rate: when most customers are positive, picking
    the highest scores cannot find many more positives than picking anyone.
    """
    lift, base = metrics.get("top_decile_lift"), metrics.get("base_rate")
    if lift is None or base is None or lift >= WEAK_TARGETING_LIFT:
        return None
    return (
        f"the top 10% of scores are only {lift:.1f}x as likely as the average customer "
        f"(base rate {base:.1%}); choosing customers by this score finds few more than "
        "choosing at random"
    )


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
    note = targeting_note(m)
    if note and auc >= 0.6:
        # ROC-AUC says the model ranks well; with most customers positive, ranking buys little
        card["reliability"] += " at ranking, but of little use for targeting"
        card["targeting"] = note
    # the base rate says what the lift and capture are measured against ("26.5% churn")
    base = f"; base rate {m['base_rate']:.1%}" if m.get("base_rate") is not None else ""
    card["headline"] = (
        f"{card['meaning']}: ROC-AUC {auc:.2f} on the held-out window; the top "
        f"10% of scores hold {m['capture_by_decile'][0]:.0%} of positives "
        f"(lift {m['top_decile_lift']:.1f}x{base})"
    )
    return card


def customer_score(ws: Workspace, customer_id: str) -> dict[str, Any]:
    """One customer's segment, scores with reasons, and CLV (SQLite point lookup)."""
    folder = current_build(ws)
    row = lookup_customer(folder, customer_id)
    if row is None:
        raise unknown_customer(folder, customer_id)
    row["build_id"] = folder.name
    return row


NOT_KNOWN_WHAT_BOUGHT = "not known: the orders have no product or category column"


def customer_categories(ws: Workspace, customer_id: str, n: int = 3) -> dict[str, Any] | None:
    """What one customer buys: their ``n`` largest categories by spend over all their orders
    in the validated data (share of their spend, and orders when the data has order ids).

    Orders with products but no category give the largest products instead
    (``top_products``, ``products_bought``); orders with neither give
    ``{"what_they_buy": NOT_KNOWN_WHAT_BOUGHT}``, so "what does 00004 usually buy?" is
    answered "not known" rather than with the figures there are. None when the workspace has
    no orders. One engine query (the build keeps totals per customer, not a history by
    category)."""
    engine = metrics_engine(ws)
    if "revenue" not in engine.catalogue.measures:
        return None  # no orders, or an empty orders table (a customers-only export)
    orders = engine.con.table("orders")
    column = next((c for c in ("category", "product") if c in orders.columns), None)
    if column is None:
        return {"what_they_buy": NOT_KNOWN_WHAT_BOUGHT}
    plural = "categories" if column == "category" else "products"
    mine = orders.filter(orders.customer_id.cast("string") == str(customer_id))
    mine = mine.filter(mine.amount > 0)  # returns are kept apart; a zero line is no purchase
    counts = {"spend": mine.amount.sum()}
    if "order_id" in orders.columns:
        counts["orders"] = mine.order_id.nunique()
    rows = mine.group_by(column).aggregate(**counts).execute()
    if rows.empty:
        return {f"{plural}_bought": 0, f"top_{plural}": []}
    total = float(rows["spend"].sum())
    rows = rows.sort_values(["spend", column], ascending=[False, True], kind="stable")
    top = []
    for r in rows.head(n).itertuples(index=False):
        item: dict[str, Any] = {
            column: str(getattr(r, column)),
            "share_of_spend": round(float(r.spend) / total, 3) if total > 0 else None,
        }
        if "orders" in counts:
            item["orders"] = int(r.orders)
        top.append(item)
    return {
        f"{plural}_bought": len(rows),
        f"top_{plural}": top,
        f"{plural}_period": f"all orders up to {engine.catalogue.data_up_to}",
    }


def customer_attributes(ws: Workspace, customer_id: str) -> dict[str, Any]:
    """One customer's own columns in the validated customers table (contact details and the
    id left out, missing values skipped): what "what age group is 2451 in?" and "has 254
    already got the policy?" are answered from. Empty when the workspace has no customers
    table or does not hold the id."""
    from insight_agent.engine.metrics import PII_COLUMN

    con = metrics_engine(ws).con
    if "customers" not in con.list_tables():
        return {}
    t = con.table("customers")
    wanted = [c for c in t.columns if c != "customer_id" and not PII_COLUMN.search(c)]
    if not wanted:
        return {}
    rows = (
        t.filter(t.customer_id.cast("string") == str(customer_id))
        .select(*wanted)
        .limit(1)
        .to_pyarrow()
        .to_pylist()
    )
    if not rows:
        return {}
    out: dict[str, Any] = {}
    for col, value in rows[0].items():
        if value is None or (isinstance(value, float) and value != value):
            continue
        if hasattr(value, "isoformat"):
            value = value.isoformat()[:10]
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        out[col] = value
    return out


def skipped_models(ws: Workspace) -> dict[str, str]:
    """The current build's propensity models that were not built, with the reason its
    manifest gives (``{"churn": "not enough data to model churn …"}``)."""
    import json

    folder = current_build(ws)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {
        st["name"].removeprefix("propensity:"): st.get("message", "")
        for st in manifest.get("stages", [])
        if st.get("status") == "skipped" and str(st.get("name", "")).startswith("propensity:")
    }


def unknown_customer(folder: Any, customer_id: str) -> InsightError:
    """The error for an id the build ``folder`` does not hold. It says so first, with ids that
    are there: a model paraphrasing the old hint ("rebuild after adding new data") told a
    user the model needed retraining."""
    examples = _some_customer_ids(folder)
    seen = f" (its ids look like {', '.join(examples)})" if examples else ""
    return InsightError(
        f"customer '{customer_id}' is not in the current build: no customer has that id",
        hint=f"check the id against the customers file{seen}",
    )


def _some_customer_ids(folder: Any, n: int = 2) -> list[str]:
    """The first ``n`` customer ids of a build's table (for an error message)."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{folder / 'customers.sqlite'}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT customer_id FROM customers LIMIT ?", (n,)).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    return [str(r[0]) for r in rows]


def audience(
    ws: Workspace,
    target: str,
    *,
    top: int = 500,
    segment: str | None = None,
    min_probability: float = 0.0,
) -> Any:
    """The ``top`` customers by a target's probability (optionally within one segment).

    For a model of the customers table's own yes/no column (``insight build --label``), the
    customers whose column already has the outcome (bought the policy, churned) are left out:
    they are not prospects; ``attrs["already_positive"]`` counts them.

    Returns a pandas DataFrame: customer_id, segment, probability, decile, reasons, CLV.
    """
    import pandas as pd

    folder, manifest = _manifest(ws)
    stem = resolve_target(folder, target)
    card = read_json(folder, f"models/{stem}.json")
    column = card["column"]
    table = pd.read_parquet(folder / "customers.parquet")
    already = _already_positive(ws, card)
    if already is not None:
        table = table[~table.index.astype("string").isin(already)]
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
    order = [column, *(["monetary_total"] if "monetary_total" in table else [])]
    out = table.sort_values(order, ascending=[False] * len(order)).head(top)
    out = out[keep].rename(
        columns={column: "probability", f"{base}_decile": "decile", f"{base}_reasons": "reasons"}
    )
    out.attrs["target"] = target
    out.attrs["build_id"] = manifest["build_id"]
    if already is not None:
        out.attrs["already_positive"] = {
            "customers": len(already),
            "label": f"{card['label']} = {card['positive']}",
        }
    return out


def _already_positive(ws: Workspace, card: dict[str, Any]) -> Any:
    """Ids of the customers whose own label column already holds the model's positive value
    (None when the model is not of the customers table's own column, or it cannot be read)."""
    if not card.get("own_label") or not card.get("label"):
        return None
    from insight_agent.analytics.labels import binary_label

    con = metrics_engine(ws).con
    if "customers" not in con.list_tables():
        return None
    t = con.table("customers")
    name = next((c for c in t.columns if c.lower() == str(card["label"]).lower()), None)
    if name is None:
        return None
    rows = t.select("customer_id", name).to_pandas()
    try:
        y = binary_label(rows[name], card.get("positive"), name)
    except Exception:  # the column changed since the build: nothing is left out
        return None
    return set(rows["customer_id"].astype("string")[y == 1])


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


# --- segment-level facts (agent tools, personas, reports) -------------------------------------

RISK_THRESHOLD = 0.5  # "high churn risk" = calibrated churn probability of at least 50%

_TABLES: dict[Path, Any] = {}


def customer_table(ws: Workspace) -> Any:
    """The current build's per-customer table (pandas), loaded once per process per build."""
    import pandas as pd

    folder = current_build(ws)
    if folder not in _TABLES:
        _TABLES.clear()  # one build at a time is enough; a rebuild makes a new folder
        _TABLES[folder] = pd.read_parquet(folder / "customers.parquet")
    return _TABLES[folder]


def segment_names(ws: Workspace) -> dict[str, str]:
    """Segment id → name of the current build."""
    return dict(read_json(current_build(ws), "segments.json")["names"])


def resolve_segment(ws: Workspace, text: str) -> tuple[str, str]:
    """(id, name) for a segment given by id ("S2"), name, or an unambiguous part of a name
    ("lapsing"), case-insensitively; ConfigError listing the segments otherwise."""
    names = segment_names(ws)
    wanted = str(text).strip().lower()
    for sid, name in names.items():
        # also "S2 Lapsing customers" / "Lapsing customers (S2)", as segments are listed
        both = (f"{sid} {name}".lower(), f"{name} ({sid})".lower())
        if wanted in (sid.lower(), name.lower(), *both):
            return sid, name
    partial = [(sid, name) for sid, name in names.items() if wanted and wanted in name.lower()]
    if len(partial) == 1:
        return partial[0]
    if not partial:  # "the high-value loyal customers segment" -> "High-value loyal"
        core = _core_words(wanted)
        partial = [(sid, name) for sid, name in names.items() if core and core in _core_words(name)]
        if len(partial) == 1:
            return partial[0]
    listing = ", ".join(f"{sid} {name}" for sid, name in sorted(names.items()))
    if partial:
        raise ConfigError(f"'{text}' matches several segments", hint=f"segments: {listing}")
    raise ConfigError(f"no segment '{text}'", hint=f"segments: {listing}")


_FILLER = frozenset({"the", "our", "segment", "segments", "group", "customers", "customer"})


def _core_words(text: str) -> str:
    """A segment name without filler words, lower case: "the lapsing customers" -> "lapsing"."""
    words = re.findall(r"[\w()-]+", text.lower())
    return " ".join(w for w in words if w not in _FILLER)


def _share(mask: Any) -> float:
    return round(float(mask.mean()), 3) if len(mask) else 0.0


def _mix(series: Any, top: int = 3) -> list[list[Any]]:
    """The most common values of a categorical column with their shares."""
    counts = series.dropna().astype(str).value_counts(normalize=True).head(top)
    return [[str(k), round(float(v), 3)] for k, v in counts.items()]


def _round(value: Any, digits: int) -> float | None:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def churn_by_segment(ws: Workspace) -> dict[str, Any]:
    """Churn risk per segment, riskiest first: mean probability, customers at high risk."""
    table = customer_table(ws)
    if "p_churn" not in table:
        raise NoBuild("the current build has no churn model", hint="see `insight build`")
    card = model_card(ws, "churn")
    rows = []
    for name, group in table.groupby("segment_name", observed=True):
        high = group["p_churn"] >= RISK_THRESHOLD
        rows.append(
            {
                "segment": str(name),
                "customers": len(group),
                "mean_churn_probability": round(float(group["p_churn"].mean()), 3),
                "high_risk_customers": int(high.sum()),
                "share_high_risk": _share(high),
                "clv_at_risk": round(float(group.loc[high, "clv_12m"].sum()))
                if "clv_12m" in group
                else None,
            }
        )
    rows.sort(key=lambda r: (-r["mean_churn_probability"], r["segment"]))
    high_total = int((table["p_churn"] >= RISK_THRESHOLD).sum())
    return {
        "highest_churn_segment": rows[0]["segment"] if rows else None,
        "lowest_churn_segment": rows[-1]["segment"] if rows else None,
        "high_risk_customers_total": high_total,
        "high_risk_threshold": RISK_THRESHOLD,
        "horizon_days": card.get("horizon_days"),
        "model_roc_auc": round(card["metrics"]["roc_auc"], 2),
        "model_reliability": card["reliability"],
        **({"model_targeting": card["targeting"]} if card.get("targeting") else {}),
        "segments": rows,
    }


def segment_profile(ws: Workspace, segment: str) -> dict[str, Any]:
    """Everything the build knows about one segment: size, value, behaviour (RFM medians and
    ratios to the average customer), who they are, what they buy, propensities and CLV."""
    sid, name = resolve_segment(ws, segment)
    folder = current_build(ws)
    seg = read_json(folder, "segments.json")
    profile = next(p for p in seg["profiles"] if p["segment"] == sid)
    table = customer_table(ws)
    group = table[table["segment"] == sid]
    out: dict[str, Any] = {
        "id": sid,
        "name": name,
        "customers": int(profile["customers"]),
        "share_customers": round(profile["share_customers"], 3),
        "share_revenue": round(profile["share_revenue"], 3),
        "rules": seg["rules"].get(sid, [])[:3],
        "behaviour": {
            key: {
                "median": _round(profile.get(f"median_{key}"), 1),
                "vs_average": _round(profile.get(f"ratio_{key}"), 2),
            }
            for key in (
                "recency_days",
                "frequency",
                "monetary_total",
                "avg_order_value",
                "mean_gap_days",
                "tenure_days",
            )
            if f"median_{key}" in profile
        },
        "top_categories": profile.get("top_categories", []),
    }
    who: dict[str, Any] = {}
    if "age" in group and group["age"].notna().any():
        who["median_age"] = _round(group["age"].median(), 0)
    for column in ("gender", "region", "country", "channel"):
        if column in group and group[column].notna().any():
            who[f"{column}_mix"] = _mix(group[column])
    if "income" in group and group["income"].notna().any():
        who["median_income"] = _round(group["income"].median(), 0)
    if who:
        out["who"] = who
    scores: dict[str, Any] = {}
    for column, label in (
        ("p_churn", "churn"),
        ("p_purchase", "purchase"),
        ("p_response", "response"),
    ):
        if column in group:
            scores[f"mean_{label}_probability"] = round(float(group[column].mean()), 3)
    if "p_churn" in group:
        scores["share_high_churn_risk"] = _share(group["p_churn"] >= RISK_THRESHOLD)
    if scores:
        out["propensity"] = scores
    if "clv_12m" in group:
        out["clv_12m"] = {
            "mean": round(float(group["clv_12m"].mean()), 2),
            "median": round(float(group["clv_12m"].median()), 2),
            "total": round(float(group["clv_12m"].sum()), 0),
            "mean_p_alive": round(float(group["p_alive"].mean()), 3)
            if "p_alive" in group
            else None,
        }
    if "next_best_category" in group and group["next_best_category"].notna().any():
        out["next_best_categories"] = _mix(group["next_best_category"])
    return out


# How segments are compared: (profile key path, label, higher is "more").
_COMPARED = (
    ("share_customers", "share of customers"),
    ("share_revenue", "share of revenue"),
    ("behaviour.recency_days.median", "median days since last order"),
    ("behaviour.frequency.median", "median orders"),
    ("behaviour.monetary_total.median", "median total spend"),
    ("behaviour.avg_order_value.median", "median order value"),
    ("propensity.mean_churn_probability", "mean churn probability"),
    ("propensity.mean_purchase_probability", "mean purchase probability"),
    ("clv_12m.mean", "mean 12-month CLV"),
)


def _dig(obj: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def compare_segments(ws: Workspace, segment_a: str, segment_b: str) -> dict[str, Any]:
    """Two segments side by side, with the metrics where they differ most first."""
    a, b = segment_profile(ws, segment_a), segment_profile(ws, segment_b)
    if a["id"] == b["id"]:
        raise ConfigError("compare two different segments")
    rows = []
    for path, label in _COMPARED:
        va, vb = _dig(a, path), _dig(b, path)
        if va is None or vb is None:
            continue
        ratio = None if not vb else round(float(va) / float(vb), 2)
        rows.append({"metric": label, a["name"]: va, b["name"]: vb, "ratio_a_to_b": ratio})
    rows.sort(key=lambda r: -abs(_log_ratio(r["ratio_a_to_b"])))
    return {
        "segment_a": a["name"],
        "segment_b": b["name"],
        "biggest_difference": rows[0]["metric"] if rows else None,
        "metrics": rows,
        "top_categories": {a["name"]: a["top_categories"], b["name"]: b["top_categories"]},
    }


def _log_ratio(ratio: float | None) -> float:
    import math

    if not ratio or ratio <= 0:
        return 0.0
    return math.log(ratio)


def clv_summary(ws: Workspace) -> dict[str, Any]:
    """Expected 12-month customer value by segment (BG/NBD + Gamma-Gamma), largest first."""
    folder = current_build(ws)
    clv = read_json(folder, "clv.json")
    rows = sorted(clv["summary"], key=lambda r: -r["total_clv"])
    table = customer_table(ws)
    return {
        "horizon_days": clv.get("horizon_days"),
        "total_clv": round(float(table["clv_12m"].sum())) if "clv_12m" in table else None,
        "mean_clv": round(float(table["clv_12m"].mean()), 2) if "clv_12m" in table else None,
        "highest_value_segment": rows[0]["segment_name"] if rows else None,
        "segments": [
            {
                "segment": r["segment_name"],
                "customers": r["customers"],
                "total_clv": round(r["total_clv"]),
                "share_of_clv": r["share_of_clv"],
                "mean_clv": r["mean_clv"],
                "median_clv": r["median_clv"],
                "mean_p_alive": r["mean_p_alive"],
            }
            for r in rows
        ],
    }


def basket_summary(
    ws: Workspace, *, category: str | None = None, segment: str | None = None, top: int = 5
) -> dict[str, Any]:
    """Market-basket rules (optionally those starting from one category) and the next-best
    categories for one segment."""
    folder = current_build(ws)
    basket = read_json(folder, "basket.json")
    facts = basket["facts"]
    rules = facts.get("top_rules", [])
    note = None
    named = _segment_not_category(ws, basket, category) if category else None
    if named is not None and (segment is None or resolve_segment(ws, segment)[1] == named):
        # "cross-sell ideas for lapsing customers": a segment passed as the category (small
        # models mix the two up, or pass it as both) is the segment's next-best categories
        segment = named
        note = f"'{category}' is a segment: its next-best categories are below"
        category = None
    if category:
        category = _basket_category(ws, basket, category)
        rules = [r for r in rules if r["rule"].split(" → ")[0] == category]
        if not rules:
            note = (
                f"no rule starts from {category} (a rule needs support ≥ "
                f"{facts.get('min_support')} and confidence ≥ {facts.get('min_confidence')})"
            )
    out: dict[str, Any] = {
        "baskets": facts.get("n_baskets"),
        "multi_item_baskets": facts.get("n_multi_item_baskets"),
        "strongest_rule": rules[0]["rule"] if rules else None,
        # the rule first: it names the row (JSON from the build has its keys sorted)
        "rules": [{"rule": r["rule"], **r} for r in rules[:top]],
    }
    if note:
        out["note"] = note
    if segment:
        _, name = resolve_segment(ws, segment)
        rows = [r for r in basket.get("by_segment", []) if r["segment"] == name]
        out["segment"] = name
        out["next_best_categories"] = [
            {"category": r["item"], "share": r["share"]}
            for r in sorted(rows, key=lambda r: r["rank"])
            if r["kind"] == "next_best"
        ][:top]
    return out


def _basket_categories(basket: dict[str, Any]) -> set[str]:
    """The categories the basket rules and next-best picks name."""
    known = {r["item"] for r in basket.get("by_segment", [])}
    for rule in basket.get("facts", {}).get("top_rules", []):
        known.update(side.strip() for side in rule["rule"].split("→"))
    return known


def _segment_not_category(ws: Workspace, basket: dict[str, Any], text: str) -> str | None:
    """The segment's name when ``text`` names a segment and no basket category, else None."""
    if match_value(text, _basket_categories(basket)):
        return None
    try:
        return resolve_segment(ws, text)[1]
    except ConfigError:
        return None


def _basket_category(ws: Workspace, basket: dict[str, Any], text: str) -> str:
    """The basket category named by ``text`` (any case or number); ConfigError listing the
    categories otherwise, saying so when ``text`` is a segment (models mix the two up)."""
    known = _basket_categories(basket)
    found = match_value(text, known)
    if found:
        return found
    listing = ", ".join(sorted(known))
    try:
        _, segment = resolve_segment(ws, text)
    except ConfigError:
        raise ConfigError(f"no product category '{text}'", hint=f"categories: {listing}") from None
    raise ConfigError(
        f"'{text}' is a segment ({segment}), not a product category",
        hint=f"pass it as segment; categories: {listing}",
    )


def dataset_overview(ws: Workspace) -> dict[str, Any]:
    """What the workspace holds and what the current build produced."""
    _, manifest = _manifest(ws)
    table = customer_table(ws)
    models = (
        {name: {"roc_auc": info["roc_auc"]} for name, info in sorted(manifest["models"].items())}
        if "models" in manifest
        else {}
    )
    out: dict[str, Any] = {
        "workspace": ws.settings.name,
        "build_id": manifest["build_id"],
        "data_up_to": manifest["data"]["cutoff"],
        "rows": manifest["data"].get("rows", {}),
        "customers_scored": len(table),
    }
    if "monetary_total" in table:  # a build without orders has no spend or frequency
        out["total_spend"] = round(float(table["monetary_total"].sum()))
        out["median_orders_per_customer"] = _round(table["frequency"].median(), 1)
    out["segments"] = manifest.get("segments", {}).get("k")
    out["models"] = models
    if "reviews" in manifest:
        out["reviews_indexed"] = manifest["reviews"].get("total")
    skipped = {
        st["name"]: st.get("message", "")
        for st in manifest.get("stages", [])
        if st.get("status") == "skipped" and st.get("name") != "reviews"
    }
    if skipped:  # what this data could not give, and why (one reason per stage)
        out["not_built"] = skipped
    return out


# --- the metrics layer (engine/metrics.py over the validated Parquet cache) -------------------

_ENGINES: dict[tuple[str, str], Any] = {}


def metrics_engine(ws: Workspace) -> Any:
    """The workspace's :class:`~insight_agent.engine.metrics.MetricsEngine`: DuckDB over the
    validated Parquet cache (written now if missing) plus the current build's per-customer
    scores when there is a build. One per process per data and build."""
    from insight_agent.engine.backend import connect
    from insight_agent.engine.cache import ensure_cache, spill_dir
    from insight_agent.engine.metrics import MetricsEngine

    cache = ensure_cache(ws)
    try:
        scores: Path | None = current_build(ws) / "customers.parquet"
    except NoBuild:
        scores = None
    key = (str(cache.folder), str(scores))
    if key not in _ENGINES:
        _ENGINES.clear()
        con = connect(cache, scores=scores, spill_dir=spill_dir(ws))
        labels = label_values(scores.parent) if scores is not None else {}
        _ENGINES[key] = MetricsEngine(con, dayfirst=ws.settings.data.dayfirst, labels=labels)
    return _ENGINES[key]


def label_values(folder: Path) -> dict[str, str]:
    """The build's label models of customers-table columns: label column -> the value the
    model took as positive (its card says; older cards only in their ``meaning``)."""
    import json

    out: dict[str, str] = {}
    for path in sorted((folder / "models").glob("label__*.json")):
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        label, positive = card.get("label"), card.get("positive")
        if label is None or positive is None:
            m = re.match(r"^(.+?) = (.+?) \(the customers table's own label\)$",
                         str(card.get("meaning", "")))  # fmt: skip
            if not m:
                continue  # a derived label (campaign response): not a customers column
            label, positive = m[1], m[2]
        out[str(label)] = str(positive)
    return out


def query_metrics(
    ws: Workspace,
    measures: list[str],
    *,
    by: list[str] | None = None,
    period: str | None = None,
    compare: str | None = None,
    where: list[str] | None = None,
    top: int | None = None,
    ascending: bool = False,
) -> dict[str, Any]:
    """Measures broken down by dimensions over a period (see engine/metrics.py): JSON-ready
    rows, each figure's measure/unit/aggregation, the resolved period and the data's end."""
    from insight_agent.engine.metrics import MetricRequest, parse_filter

    request = MetricRequest(
        measures=list(measures),
        by=list(by or []),
        period=period,
        compare=compare,
        filters=[parse_filter(w) for w in where or []],
        top=top,
        ascending=ascending,
    )
    return metrics_engine(ws).query(request)


def clv_check(
    ws: Workspace,
    calibration_end: str,
    holdout_end: str | None = None,
    *,
    period: str = "day",
) -> dict[str, Any]:
    """The CLV model's calibration / holdout check (as lifetimes users run it): BG/NBD fitted
    on orders up to ``calibration_end``, its expected repeat purchases in the holdout against
    the actual ones, in total and by calibration frequency. ``period`` "day" or "week": what
    counts as one purchase occasion."""
    import pandas as pd

    from insight_agent.analytics.clv import BetaGeo, holdout_check, rfm_summary
    from insight_agent.engine.cache import ensure_cache

    days = {"day": 1.0, "week": 7.0}.get(period)
    if days is None:
        raise ConfigError(f"unknown period '{period}'", hint="use day or week")
    orders = ensure_cache(ws).read("orders")
    if orders is None or orders.empty:
        raise InsightError("no orders to check a CLV model on", hint="add [data.orders]")
    try:
        cal = pd.Timestamp(calibration_end)
        end = pd.Timestamp(holdout_end) if holdout_end else None
    except ValueError as exc:
        raise ConfigError(f"not a date: {exc}", hint="dates as YYYY-MM-DD") from None
    table = holdout_check(orders, cal, end, period_days=days)
    summary = rfm_summary(orders, cal.normalize(), period_days=days)
    model = BetaGeo().fit(summary["frequency"], summary["recency"], summary["T"])
    last = pd.to_datetime(orders["order_date"]).max().normalize()
    holdout_to = (end or last).normalize()
    rows = []
    for bucket, r in table.iterrows():
        rows.append(
            {
                "frequency": str(bucket),
                "customers": int(r["customers"]),
                "actual": round(float(r["actual"] * r["customers"]), 1),
                "predicted": round(float(r["predicted"] * r["customers"]), 1),
                "actual_per_customer": round(float(r["actual"]), 4),
                "predicted_per_customer": round(float(r["predicted"]), 4),
            }
        )
    total = next(r for r in rows if r["frequency"] == "total")
    error = (total["predicted"] - total["actual"]) / total["actual"] if total["actual"] else None
    return {
        "period": period,
        "calibration": {
            "start": str(pd.to_datetime(orders["order_date"]).min().date()),
            "end": str(cal.date()),
        },
        "holdout": {
            "start": str((cal + pd.Timedelta(days=1)).date()),
            "end": str(holdout_to.date()),
        },
        "params": {k: round(float(v), 4) for k, v in (model.params_ or {}).items()},
        "actual_repeat_purchases": total["actual"],
        "predicted_repeat_purchases": total["predicted"],
        "error": None if error is None else round(error, 4),
        "by_frequency": [r for r in rows if r["frequency"] != "total"],
    }


__all__ = [
    "NoBuild",
    "audience",
    "basket_summary",
    "build_summary",
    "churn_by_segment",
    "clv_check",
    "clv_summary",
    "compare_segments",
    "customer_score",
    "customer_table",
    "dataset_overview",
    "metrics_engine",
    "model_card",
    "query_metrics",
    "resolve_segment",
    "segment_profile",
    "segments_summary",
    "write_audience",
]
