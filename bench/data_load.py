"""Demo-data generation and validated loading at several sizes.

For each size, a child process generates the demo data, writes it as CSV, and loads it through
`load_dataset` (all validation included) `--repeats` times; the table shows seconds per stage
(median for loading) and the child's peak RSS. Each size runs in its own process so peak memory
is per size.

    python bench/data_load.py [--sizes 10000,100000] [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

from _sizes import per_size


def _child(n: int, repeats: int, root: Path) -> dict:
    from insight_agent.config import load_settings
    from insight_agent.data.bootstrap import init_workspace
    from insight_agent.data.demo import DemoConfig, generate_frames, write_demo

    out: dict = {"customers": n}
    t = time.perf_counter()
    frames = generate_frames(DemoConfig(n_customers=n))
    out["generate_s"] = time.perf_counter() - t
    out["order_rows"] = len(frames.orders)
    out["reviews"] = len(frames.reviews)
    t = time.perf_counter()
    write_demo(frames, root / "gen")
    out["write_csv_s"] = time.perf_counter() - t
    del frames
    tables = {k: root / "gen" / f"{k}.csv" for k in ("customers", "orders", "reviews", "campaigns")}
    init_workspace(root / "ws", sources=tables)
    settings = load_settings(root / "ws")
    from insight_agent.data.load import load_dataset

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        data = load_dataset(settings)
        times.append(time.perf_counter() - t)
        out["loaded_orders"] = len(data.orders)
        del data
    out["load_s_median"] = statistics.median(times)
    out["csv_mb"] = sum(p.stat().st_size for p in tables.values()) / 1e6
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.repeats, Path(args.root))))
        return
    rows = []
    for n, row, error in per_size(__file__, args.sizes, ["--repeats", str(args.repeats)]):
        if row is None:
            print(f"{n:,} customers: FAILED\n{error}")
            continue
        rows.append(row)
    cols = [
        "customers",
        "order_rows",
        "reviews",
        "csv_mb",
        "generate_s",
        "write_csv_s",
        "load_s_median",
        "peak_rss_mb",
    ]
    print(f"load repeats per size: {args.repeats} (median shown)")
    print(" ".join(f"{c:>14}" for c in cols))
    for row in rows:
        print(
            " ".join(
                f"{row[c]:>14,.0f}"
                if isinstance(row[c], int) or c.endswith("mb")
                else f"{row[c]:>14.2f}"
                for c in cols
            )
        )


if __name__ == "__main__":
    main()
