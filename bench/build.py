"""Time `insight build` stages (reviews excluded) at several sizes, with peak RSS, against the
floor: bare DuckDB reading the orders Parquet and grouping it by customer, in the same run.

Each run of each size is its own child process: generate demo data (about 13 order lines per
customer; above 1M customers, a million at a time), write it as CSV into a fresh workspace,
run the build exactly as `insight build` does, then time the floor on the orders Parquet the
build cached. The table shows the median
seconds per stage over the runs and the process's peak RSS after each stage (peak so far, so it
only grows; the largest over the runs). Targets on a 2-core machine (issue #17): 100k customers
<= 20 s, 1M <= 120 s, build <= 4x the floor at 1M.

    python bench/build.py [--sizes 10000,100000,1000000] [--runs 3] [--engines duckdb,pandas]
        [--workers 1,2] [--data DIR]

``--engines duckdb,pandas`` alternates the feature engine run by run (the same data, the same
noise on a shared machine): ``pandas`` is the build's reference path (analytics/features.py),
``duckdb`` the engine over the Parquet cache. ``--workers 1,2`` alternates how many propensity
models train at once the same way (0: the build's default, one per core up to 4). CPU seconds
(user + system, all threads) are printed too: on a shared machine they move less than wall
time.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

from _sizes import per_size


def _floor(orders: Path, threads: int | None = None) -> float:
    """Seconds for bare DuckDB to read the orders Parquet and group it by customer."""
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {threads}")
    t = time.perf_counter()
    con.execute(
        "SELECT customer_id, count(*), sum(amount), min(order_date), max(order_date) "
        f"FROM read_parquet('{orders}') GROUP BY customer_id"
    ).fetch_arrow_table()
    seconds = time.perf_counter() - t
    con.close()
    return seconds


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


#: Above this many customers the demo data is generated and written a chunk at a time (10M
#: customers' ~130M order lines would not fit in memory as one frame).
CHUNK = 1_000_000


def _prepare(n: int, data_dir: Path) -> tuple[dict[str, Path], int]:
    """Demo CSVs for ``n`` customers in ``data_dir``: (paths, order lines). Up to
    :data:`CHUNK` customers in one go (the same data as ``insight demo``'s generator gives);
    beyond it, chunks of independent customers over the same dates, each with its own seed
    and ids made unique by the chunk number (``C003-000042``, ``O003-0000042``), appended to
    the same files."""
    from insight_agent.data.demo import DemoConfig, generate_frames, write_demo

    if n <= CHUNK:
        frames = generate_frames(DemoConfig(n_customers=n, n_reviews=0))
        return write_demo(frames, data_dir), len(frames.orders)
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: data_dir / f"{name}.csv" for name in ("customers", "orders", "campaigns")}
    rows = 0
    for i, start in enumerate(range(0, n, CHUNK)):
        frames = generate_frames(
            DemoConfig(n_customers=min(CHUNK, n - start), n_reviews=0, seed=42 + i)
        )
        for name, path in paths.items():
            frame = getattr(frames, name)
            for column, prefix in (("customer_id", "C"), ("order_id", "O")):
                if column in frame.columns:
                    frame[column] = f"{prefix}{i:03d}-" + frame[column].str[1:]
            frame.to_csv(
                path,
                mode="a" if i else "w",
                header=not i,
                index=False,
                encoding="utf-8",
                lineterminator="\n",
                date_format="%Y-%m-%d",
                float_format="%.2f",
            )
        rows += len(frames.orders)
        del frames
    return paths, rows


def _data(n: int, root: Path, data: Path | None) -> tuple[dict[str, Path], int, float]:
    """The CSVs for ``n`` customers, their order lines and the seconds spent preparing them:
    made fresh under ``root``, or under ``data/customers-N`` once and reused by later runs
    (10M customers take ~12 minutes to generate; the files are the same every time)."""
    t = time.perf_counter()
    if data is None:
        paths, rows = _prepare(n, root / "data")
        return paths, rows, time.perf_counter() - t
    folder = data / f"customers-{n}"
    ready = folder / "prepared.json"
    if not ready.is_file():
        paths, rows = _prepare(n, folder)
        ready.write_text(json.dumps({"rows": rows, "seconds": round(time.perf_counter() - t, 1)}))
    info = json.loads(ready.read_text())
    names = ("customers", "orders", "campaigns")
    return {k: folder / f"{k}.csv" for k in names}, info["rows"], info["seconds"]


def _child(
    n: int, root: Path, engine: str, workers: int | None = None, data: Path | None = None
) -> dict:
    from insight_agent.analytics.build import BuildOptions, run_build
    from insight_agent.data.bootstrap import init_workspace
    from insight_agent.engine.cache import cached
    from insight_agent.workspace import Workspace, locate

    paths, rows, prep = _data(n, root, data)
    tables = {k: paths[k] for k in ("customers", "orders", "campaigns")}
    init_workspace(root / "ws", sources=tables)
    ws = Workspace.open(locate(root / "ws"))
    t, cpu = time.perf_counter(), _cpu()
    manifest = run_build(ws, BuildOptions(engine=engine, workers=workers))
    total, cpu = time.perf_counter() - t, _cpu() - cpu
    cache = cached(ws)
    floor = _floor(cache.path("orders")) if cache is not None else None
    return {
        "customers": n,
        "order_rows": rows,
        "prepare_s": round(prep, 1),
        "engine": engine,
        "workers": workers or "default",
        "build_s": round(total, 2),
        "build_cpu_s": round(cpu, 2),
        "floor_s": None if floor is None else round(floor, 3),
        "stages": manifest["stages"],
    }


def _median_table(results: list[dict]) -> list[tuple[str, str, float, float]]:
    """(stage, status, median seconds, max peak RSS MB) over runs, in stage order."""
    rows = []
    for i, st in enumerate(results[0]["stages"]):
        runs = [r["stages"][i] for r in results if len(r["stages"]) > i]
        rows.append(
            (
                st["name"],
                st["status"],
                statistics.median(s["seconds"] for s in runs),
                max(s["peak_rss_mb"] for s in runs),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=1, help="runs per size (median reported)")
    parser.add_argument("--engines", default="duckdb", help="feature engines, alternated")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="duckdb", help=argparse.SUPPRESS)
    parser.add_argument(
        "--workers",
        default="0",
        help="propensity models trained at once, alternated like --engines (0: the default)",
    )
    parser.add_argument(
        "--data",
        help="keep the generated CSVs in DATA/customers-N and reuse them in later runs",
    )
    args = parser.parse_args()
    if args.child:
        workers = int(args.workers) or None
        data = Path(args.data) if args.data else None
        print(json.dumps(_child(args.child, Path(args.root), args.engine, workers, data)))
        return
    by_size: dict[tuple[int, str, str], list[dict]] = {}
    for size in args.sizes.split(","):
        for _ in range(args.runs):
            for engine in args.engines.split(","):
                for workers in args.workers.split(","):
                    extra = ["--engine", engine, "--workers", workers]
                    if args.data:
                        extra += ["--data", str(Path(args.data).resolve())]
                    for n, res, error in per_size(__file__, size, extra):
                        if res is None:
                            print(f"{n:,} customers, {engine}, workers {workers}: FAILED\n{error}")
                            continue
                        by_size.setdefault((n, engine, workers), []).append(res)
                        # each run as it ends, so a long session that is stopped keeps its runs
                        print(json.dumps(res), file=sys.stderr, flush=True)
    for (n, engine, workers), results in by_size.items():
        first = results[0]
        builds = [r["build_s"] for r in results]
        cpus = [r["build_cpu_s"] for r in results]
        floors = [r["floor_s"] for r in results if r["floor_s"] is not None]
        floor = statistics.median(floors) if floors else float("nan")
        build = statistics.median(builds)
        print(
            f"\n{n:,} customers, feature engine {engine}, workers {workers or 'default'}, "
            f"{first['order_rows']:,} order rows, "
            f"{len(results)} run(s), "
            f"medians (data prepared in {first['prepare_s']} s, not part of the build)"
        )
        print(f"{'stage':<34} {'status':<8} {'seconds':>8} {'peak RSS MB':>12} {'floor s':>8}")
        for name, status, seconds, rss in _median_table(results):
            print(f"{name:<34} {status:<8} {seconds:>8.2f} {rss:>12,.0f} {floor:>8.3f}")
        print(f"{'total build':<34} {'':<8} {build:>8.2f} {'':>12} {floor:>8.3f}")
        print(
            f"build / floor: {build / floor:.0f}x · builds: {', '.join(f'{b:.1f}' for b in builds)}"
            f" s · build CPU: {', '.join(f'{c:.1f}' for c in cpus)} s"
            f" · floors: {', '.join(f'{f:.3f}' for f in floors)} s"
        )


if __name__ == "__main__":
    main()
