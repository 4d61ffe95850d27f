"""Label-model build time: a customers table with 20 attributes and a yes/no label, trained
(LR vs HistGradientBoosting, 5-fold CV, calibration, drivers) and scored with reasons for
every customer, as `insight build --label y` does.

    python bench/labels.py                 # 50k and 1M customers, 3 runs each
    python bench/labels.py --sizes 50000 --runs 5

Prints a table: median seconds per step over the runs, peak RSS, and the ratio of the whole
to a baseline measured in the same process — one plain HistGradientBoosting fit + predict on
the same sample (what a data scientist's first notebook cell costs).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_customers(n: int, seed: int = 0) -> pd.DataFrame:
    """n customers: 11 numbers, 8 text attributes, a signup date and a label (20 attributes)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"customer_id": [f"c{i:08d}" for i in range(n)]})
    for j in range(11):
        frame[f"num_{j}"] = rng.normal(j, 1 + j, n).round(2)
    for j in range(8):
        levels = np.array([f"l{j}_{k}" for k in range(3 + j)])
        frame[f"cat_{j}"] = levels[rng.integers(0, len(levels), n)]
    frame["signup_date"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(
        rng.integers(0, 2000, n), unit="D"
    )
    logit = -2 + 0.3 * frame["num_1"] - 0.2 * frame["num_3"] + 0.8 * (frame["cat_2"] == "l2_1")
    frame["y"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return frame


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n: int, runs: int) -> dict[str, float]:
    from threadpoolctl import threadpool_limits

    from insight_agent.analytics.labels import score_label, train_label_model

    frame = make_customers(n)
    times: dict[str, list[float]] = {"train": [], "score+reasons": [], "baseline": []}
    with threadpool_limits(limits=1):  # as builds run (BuildOptions.threads)
        for _ in range(runs):
            t0 = time.perf_counter()
            model = train_label_model(frame, "y", seed=0)
            t1 = time.perf_counter()
            score_label(model, frame)
            t2 = time.perf_counter()
            times["train"].append(t1 - t0)
            times["score+reasons"].append(t2 - t1)
            times["baseline"].append(_baseline(frame))
    out = {k: statistics.median(v) for k, v in times.items()}
    out["total"] = out["train"] + out["score+reasons"]
    out["ratio"] = out["total"] / out["baseline"]
    out["peak_rss_mb"] = _rss_mb()
    return out


def _baseline(frame: pd.DataFrame) -> float:
    """One HistGradientBoosting fit on a 20k sample and a predict on every row."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = frame.drop(columns=["customer_id", "y", "signup_date"])
    for col in X.columns:
        if not pd.api.types.is_numeric_dtype(X[col]):
            X[col] = X[col].astype("category").cat.codes
    y = (frame["y"] == "yes").to_numpy()
    t = time.perf_counter()
    sample = np.random.default_rng(0).choice(len(X), min(20_000, len(X)), replace=False)
    model = HistGradientBoostingClassifier(random_state=0).fit(X.iloc[sample], y[sample])
    model.predict_proba(X)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,1000000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(
        "| customers | train s | score+reasons s | total s | baseline s | total/baseline "
        "| peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        r = run(n, args.runs)
        print(
            f"| {n:,} | {r['train']:.1f} | {r['score+reasons']:.1f} | {r['total']:.1f} | "
            f"{r['baseline']:.1f} | {r['ratio']:.1f}x | {r['peak_rss_mb']:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
