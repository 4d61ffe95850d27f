"""How fast does `insight --help` start (target: median under 0.5 s), and `insight score`?

Prints a table: median / p90 / min wall time over N runs of each command, and the ratio to a
bare `python -c pass` measured in the same run (so a noisy machine shows up in both).
Also lists heavy modules that a plain `import insight_agent.cli` pulls in (should be none).

With ``--workspace DIR`` (a workspace that has a build) it also times
``insight score --customer ID`` (target: under 200 ms warm; the first run warms the OS cache
and is not counted).

    python bench/cli_startup.py [--runs 15] [--workspace DIR --customer ID]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = (
    "pandas",
    "numpy",
    "sklearn",
    "scipy",
    "chromadb",
    "langchain",
    "langchain_core",
    "openai",
    "onnxruntime",
    "xllamacpp",
    "tiktoken",
    "pyarrow",
)


def _time(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def _time_in_process(workspace: str, customer: str, runs: int) -> None:
    """`customer_score` called repeatedly in one process: what a chat session pays per call."""
    from insight_agent.analytics.queries import customer_score
    from insight_agent.data.bootstrap import open_workspace

    ws = open_workspace(Path(workspace))
    customer_score(ws, customer)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        customer_score(ws, customer)
        times.append(time.perf_counter() - start)
    print(
        f"customer_score in-process (warm), {runs} calls: median "
        f"{statistics.median(times) * 1000:.2f} ms, max {max(times) * 1000:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--workspace", help="a built workspace, to time `insight score`")
    parser.add_argument("--customer", default="C000001")
    args = parser.parse_args()
    insight = str(Path(sys.executable).with_name("insight"))
    commands = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "insight --help": [insight, "--help"],
        "insight --version": [insight, "--version"],
        "insight validate --help": [insight, "validate", "--help"],
    }
    if args.workspace:
        score = [insight, "score", "--customer", args.customer, "-w", args.workspace]
        subprocess.run(score, stdout=subprocess.DEVNULL, check=True)  # warm-up, not counted
        commands["insight score --customer"] = score
    results = {name: _time(cmd, args.runs) for name, cmd in commands.items()}
    base = statistics.median(results["python -c pass (baseline)"])
    print(f"runs per command: {args.runs}")
    print(f"{'command':<28} {'median s':>9} {'p90 s':>7} {'min s':>7} {'x baseline':>11}")
    for name, times in results.items():
        times.sort()
        p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
        med = statistics.median(times)
        print(f"{name:<28} {med:>9.3f} {p90:>7.3f} {times[0]:>7.3f} {med / base:>11.1f}")
    if args.workspace:
        _time_in_process(args.workspace, args.customer, runs=50)
    probe = (
        f"import sys, insight_agent.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(f"heavy modules imported by `import insight_agent.cli`: {loaded or 'none'}")


if __name__ == "__main__":
    main()
