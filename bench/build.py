"""Time `insight build` stages (reviews excluded) at several sizes, with peak RSS.

Each size runs in its own child process: generate demo data (about 13 order lines per
customer), write it as CSV into a fresh workspace, then run the build exactly as
`insight build` does. The table shows seconds per stage and the process's peak RSS after
each stage (peak so far, so it only grows). Targets on a 2-core machine: 100k customers
under 60 s, 1M under 10 min, within 8 GB.

    python bench/build.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _sizes import per_size


def _child(n: int, root: Path) -> dict:
    from insight_agent.analytics.build import BuildOptions, run_build
    from insight_agent.data.bootstrap import init_workspace
    from insight_agent.data.demo import DemoConfig, generate_frames, write_demo
    from insight_agent.workspace import Workspace, locate

    t = time.perf_counter()
    frames = generate_frames(DemoConfig(n_customers=n, n_reviews=0))
    paths = write_demo(frames, root / "data")
    rows = len(frames.orders)
    del frames
    prep = time.perf_counter() - t
    tables = {k: paths[k] for k in ("customers", "orders", "campaigns")}
    init_workspace(root / "ws", sources=tables)
    ws = Workspace.open(locate(root / "ws"))
    t = time.perf_counter()
    manifest = run_build(ws, BuildOptions())
    total = time.perf_counter() - t
    return {
        "customers": n,
        "order_rows": rows,
        "prepare_s": round(prep, 1),
        "build_s": round(total, 1),
        "stages": manifest["stages"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, Path(args.root))))
        return
    for n, res, error in per_size(__file__, args.sizes, []):
        if res is None:
            print(f"{n:,} customers: FAILED\n{error}")
            continue
        print(
            f"\n{res['customers']:,} customers, {res['order_rows']:,} order rows "
            f"(data prepared in {res['prepare_s']} s, not part of the build)"
        )
        print(f"{'stage':<34} {'status':<8} {'seconds':>8} {'peak RSS MB':>12}")
        for st in res["stages"]:
            print(
                f"{st['name']:<34} {st['status']:<8} {st['seconds']:>8.1f} "
                f"{st['peak_rss_mb']:>12,.0f}"
            )
        print(f"{'total build':<34} {'':<8} {res['build_s']:>8.1f}")


if __name__ == "__main__":
    main()
