"""How fast does `insight --help` start (target: median under 0.5 s), and `insight score`?

Prints a table: median / p90 / min wall time over N runs of each command, and the ratio to a
bare `python -c pass` measured in the same run (so a noisy machine shows up in both).
Also lists heavy modules that a plain `import insight_agent.cli` pulls in (should be none).
Every command runs this checkout's code (PYTHONPATH is set to it).

With ``--workspace DIR`` (a workspace that has a build) it also times
``insight score --customer ID`` (target: under 200 ms warm; the first run warms the OS cache
and is not counted).

With ``--search DIR`` (a workspace with a review index) it times a cold
``insight reviews search QUERY -k 3`` (target: 0.5 s), without and with a filter, each run a
fresh process, with its peak RSS, next to ``insight --help`` in the same minutes; and lists
the heavy modules such a search imports. ``--baseline SRC`` (another checkout, e.g. ``git
worktree add --detach /tmp/base COMMIT``) runs the same searches with that code, alternating
run by run with this checkout so a busy machine slows both alike. One run of each command is
not counted (it warms the OS cache, writes bytecode and lets the workspace make what a first
search makes). PYTHONDONTWRITEBYTECODE is dropped for the runs, so Python writes and reads
bytecode as for an installed package (with it set and no ``__pycache__`` in the checkout,
Insight's own modules compile at every run: ~60 ms more before this work). ``--steps N``
adds where the time goes: each step of a cold search (and the ones it no longer takes) timed
alone in N fresh interpreters.

    python bench/cli_startup.py [--runs 15] [--workspace DIR --customer ID]
    python bench/cli_startup.py --runs 15 --search DIR [--baseline SRC] [--steps 9]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

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


def _env(source: Path) -> dict[str, str]:
    """The environment that makes a child process run the code in ``source``, with its
    bytecode cached (see the module docstring)."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _time(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=_env(REPO)
        )
        times.append(time.perf_counter() - start)
    return times


def _run_once(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one child process running ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd
    )
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (Linux, macOS)
    elapsed = time.perf_counter() - start
    error = proc.stderr.read().decode() if proc.stderr else ""
    if status != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed: {error[-500:]}")
    scale = 1024 if sys.platform.startswith("linux") else 1024 * 1024  # KB / bytes
    return elapsed, usage.ru_maxrss / scale


def _search_bench(args: argparse.Namespace, insight: str) -> None:
    """Cold ``insight reviews search``, this checkout (and ``--baseline``), alternated."""
    sources = {"this checkout": REPO}
    if args.baseline:
        sources = {"baseline": Path(args.baseline).resolve(), **sources}
    search = [insight, "reviews", "search", args.query, "-k", "3", "-w", args.search]
    cases = [("(none)", [])]
    if args.filter:
        cases.append((args.filter, shlex.split(args.filter)))
    jobs = [
        (f"{name}, filter {label}", [*search, *extra], _env(source))
        for label, extra in cases
        for name, source in sources.items()
    ]
    here = _env(REPO)
    jobs.append(("insight --help", [insight, "--help"], here))
    # The floor: what embedding one query costs in a fresh interpreter, nothing else
    embed = (
        "from insight_agent.vectorstore.embedder import LocalEmbedder;"
        "LocalEmbedder(cache_dir={}).embed([{!r}])"
    )
    copy = repr(str(Path(args.search, ".insight", "embedder")))
    jobs += [
        ("python -c pass", [sys.executable, "-c", "pass"], here),
        ("floor: embed the query, optimized copy", [
            sys.executable, "-c", embed.format(copy, args.query)], here),
        ("floor: embed the query, optimizing", [
            sys.executable, "-c", embed.format(None, args.query)], here),
    ]  # fmt: skip
    for _, cmd, env in jobs:  # warm-up, not counted
        _run_once(cmd, env, cwd=REPO)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in jobs}
    for i in range(args.runs):
        order = jobs if i % 2 == 0 else jobs[::-1]  # neither side always runs first
        for name, cmd, env in order:
            results[name].append(_run_once(cmd, env, cwd=REPO))
    print(
        f"cold `insight reviews search {args.query!r} -k 3 -w {args.search}`; "
        f"{args.runs} runs each, alternated"
    )
    print(f"{'command':<44} {'median s':>9} {'p90 s':>7} {'min s':>7} {'peak RSS MB':>12}")
    for name, got in results.items():
        times = sorted(t for t, _ in got)
        p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
        rss = statistics.median(r for _, r in got)
        print(
            f"{name:<44} {statistics.median(times):>9.3f} {p90:>7.3f} {times[0]:>7.3f} {rss:>12.0f}"
        )
    probe = (
        "import sys\n"
        "from insight_agent.cli import main\n"
        f"sys.argv = ['insight', 'reviews', 'search', {args.query!r}, '-k', '3', '-w',"
        f" {args.search!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    for name, source in sources.items():
        out = subprocess.run(  # cwd: `python -c` looks there first
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            env=_env(source),
            cwd=source,
        ).stdout
        loaded = out.rsplit("LOADED", 1)[-1].strip() if "LOADED" in out else "?"
        print(f"heavy modules a search imports ({name}): {loaded or 'none'}")
    if args.steps:
        _time_steps(args.search, args.steps)


_ORT = (
    "import numpy, onnxruntime as ort\n"
    "from tokenizers import Tokenizer\n"
    "from insight_agent.vectorstore.embedder import default_model_path, default_tokenizer_path\n"
    "o = ort.SessionOptions(); o.intra_op_num_threads = 0; o.inter_op_num_threads = 1\n"
    "o.add_session_config_entry('session.intra_op.allow_spinning', '0'); o.log_severity_level = 3\n"
)


def _steps(workspace: str) -> list[tuple[str, str, str]]:
    """(step, set-up code, timed code): the parts of a cold search, each run alone."""
    units = repr(str(Path(workspace, ".insight", "units")))
    copy = repr(str(Path(workspace, ".insight", "embedder", "minilm-int8", "model.onnx")))
    session = "ort.InferenceSession({}, sess_options=o, providers=['CPUExecutionProvider'])"
    level = "o.graph_optimization_level = ort.GraphOptimizationLevel.{}\n"
    return [
        ("import typer + insight_agent.cli", "", "import insight_agent.cli"),
        (
            "Typer's option coercion: pydantic + 16 TypeAdapters",
            "from pathlib import Path\nfrom typer.models import OptionInfo\n",
            "from typer import _adapters\n"  # Typer's own (private) step, as it runs it
            "for a in [str, str | None, float | None, int, bool, Path | None] * 2 + [str] * 4:\n"
            "    _adapters.try_build_adapter(a, OptionInfo())",
        ),
        ("import numpy", "", "import numpy"),
        (
            "load the unit table (search columns)",
            "import numpy\nfrom insight_agent.vectorstore.unitstore import UnitTable\n",
            f"UnitTable.load({units}).column('text')",
        ),
        (
            "import pyarrow.parquet + read units.parquet",
            "import numpy\n",
            "import pyarrow.parquet as pq\n"
            f"with pq.ParquetFile({units} + '/units.parquet') as f:\n"
            "    f.read(use_pandas_metadata=True, use_threads=False)",
        ),
        ("import pandas (before)", "import numpy\n", "import pandas"),
        ("import onnxruntime + tokenizers", "import numpy\n", "import onnxruntime, tokenizers"),
        ("load tokenizer.json", _ORT, "Tokenizer.from_file(str(default_tokenizer_path()))"),
        (
            "onnxruntime session from the optimized copy",
            _ORT + level.format("ORT_DISABLE_ALL"),
            session.format(copy),
        ),
        (
            "onnxruntime session optimizing model.onnx (before)",
            _ORT + level.format("ORT_ENABLE_ALL"),
            session.format("str(default_model_path())"),
        ),
        (
            "sha256 of model.onnx (before)",
            "from insight_agent.vectorstore.embedder import _sha256, default_model_path\n",
            "_sha256(default_model_path())",
        ),
        ("import rich.console + rich.markup", "", "import rich.console, rich.markup"),
    ]


def _time_steps(workspace: str, runs: int) -> None:
    """Each part of a cold search timed alone in fresh interpreters (after its set-up)."""
    print(f"\neach step alone, {runs} fresh interpreters each (timed inside, after its set-up)")
    print(f"{'step':<52} {'min ms':>7} {'median ms':>10}")
    env = _env(REPO)
    for name, setup, step in _steps(workspace):
        code = (
            f"{setup}import time\nt = time.perf_counter()\n{step}\nprint(time.perf_counter() - t)"
        )
        times = []
        for _ in range(runs + 1):  # the first writes bytecode and warms the OS cache
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO
            )
            if out.returncode:
                print(f"{name:<52} failed: {out.stderr.strip().splitlines()[-1:]}")
                break
            times.append(float(out.stdout.split()[-1]) * 1000)
        else:
            times = times[1:]
            print(f"{name:<52} {min(times):>7.1f} {statistics.median(times):>10.1f}")


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
    parser.add_argument("--search", help="a workspace with a review index, to time a search")
    parser.add_argument("--query", default="runs small")
    parser.add_argument(
        "--filter", default="--max-rating 3", help="the filtered search's options ('' for none)"
    )
    parser.add_argument("--baseline", help="another checkout to time the same searches with")
    parser.add_argument(
        "--steps", type=int, default=0, help="also time each step of a search alone, N runs"
    )
    args = parser.parse_args()
    if args.search:
        _search_bench(args, str(Path(sys.executable).with_name("insight")))
        return
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
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()
    print(f"heavy modules imported by `import insight_agent.cli`: {loaded or 'none'}")


if __name__ == "__main__":
    main()
