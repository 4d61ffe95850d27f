"""Metrics-layer latency: DuckDB (through Ibis) over the validated Parquet cache, against
pandas doing the same group-by from the same Parquet file in the same process.

    python bench/metrics.py                        # 1M and 10M order lines, 3 runs each
    python bench/metrics.py --sizes 100000 --runs 5

Prints one row per query and size: median seconds of the metrics engine (including Ibis
compilation), median seconds of pandas (read the Parquet columns + group-by), and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_cache(folder: Path, lines: int, seed: int = 0) -> None:
    """Orders (``lines`` rows, ~13 per customer) and customers as a validated cache."""
    rng = np.random.default_rng(seed)
    customers = max(lines // 13, 10)
    ids = np.array([f"C{i:08d}" for i in range(customers)])
    cust = pd.DataFrame(
        {
            "customer_id": ids,
            "channel": rng.choice(["Email", "Paid Social", "Referral", "Organic"], customers),
            "region": rng.choice(["North", "South", "East", "West"], customers),
        }
    )
    start = np.datetime64("2024-01-01")
    orders = pd.DataFrame(
        {
            "customer_id": ids[rng.integers(0, customers, lines)],
            "order_date": start + rng.integers(0, 730, lines).astype("timedelta64[D]"),
            "amount": rng.gamma(2.0, 40.0, lines).round(2),
            "order_id": [f"O{i:09d}" for i in rng.integers(0, lines // 2, lines)],
            "category": rng.choice(["Footwear", "Apparel", "Home", "Beauty", "Kitchen"], lines),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    cust.to_parquet(folder / "customers.parquet", index=False)
    orders.to_parquet(folder / "orders.parquet", index=False)
    meta = {
        "version": 1,
        "fingerprint": "bench",
        "tables": {"customers": customers, "orders": lines},
        "columns": {"customers": list(cust.columns), "orders": list(orders.columns)},
    }
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


QUERIES = {
    "revenue by month, last 12 months": (
        {"measures": ["revenue"], "by": ["month"], "period": "last 12 months"},
        lambda o, c: (
            o[o.order_date >= o.order_date.max() - pd.DateOffset(months=12)]
            .groupby(o.order_date.dt.to_period("M"))
            .amount.sum()
        ),
    ),
    "AOV by channel (customers joined)": (
        {"measures": ["average_order_value"], "by": ["channel"]},
        lambda o, c: (
            o.merge(c, on="customer_id")
            .groupby("channel")
            .agg(r=("amount", "sum"), n=("order_id", "nunique"))
            .pipe(lambda d: d.r / d.n)
        ),
    ),
    "active customers by category": (
        {"measures": ["active_customers"], "by": ["category"]},
        lambda o, c: o.groupby("category").customer_id.nunique(),
    ),
}


def run(lines: int, runs: int) -> list[tuple[str, float, float]]:
    from insight_agent.engine.backend import connect
    from insight_agent.engine.cache import TableCache
    from insight_agent.engine.metrics import MetricRequest, MetricsEngine

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cache"
        make_cache(folder, lines)
        meta = json.loads((folder / "meta.json").read_text())
        cache = TableCache(folder, "bench", meta)
        rows = []
        t = time.perf_counter()
        engine = MetricsEngine(connect(cache, spill_dir=Path(tmp) / "spill"))
        rows.append(("open engine + catalogue", time.perf_counter() - t, float("nan")))
        for name, (request, with_pandas) in QUERIES.items():
            ours, theirs = [], []
            for _ in range(runs):
                t = time.perf_counter()
                engine.query(MetricRequest(**request))
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                o = pd.read_parquet(folder / "orders.parquet")
                c = pd.read_parquet(folder / "customers.parquet")
                with_pandas(o, c)
                theirs.append(time.perf_counter() - t)
            rows.append((name, statistics.median(ours), statistics.median(theirs)))
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| order lines | query | metrics engine s | pandas s | pandas / engine |")
    print("|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        for name, ours, theirs in run(n, args.runs):
            ratio = "" if theirs != theirs else f"{theirs / ours:.1f}x"
            base = "" if theirs != theirs else f"{theirs:.2f}"
            print(f"| {n:,} | {name} | {ours:.2f} | {base} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
