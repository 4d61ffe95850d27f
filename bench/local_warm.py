"""The embedded model on four warm questions, through the same session `insight ask` uses:
seconds and input tokens per question (the first one includes loading the model).

    python bench/local_warm.py --workspace WS                 # the code in this checkout
    python bench/local_warm.py --workspace WS --drop query_metrics,segment_persona
    # another commit, same machine, same hour (the A/B in docs/benchmarks.md):
    git worktree add /tmp/old REV && PYTHONPATH=/tmp/old python bench/local_warm.py --workspace WS

Run it with nothing else on the machine: the numbers are per-question wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

QUESTIONS = (
    "Which segment is most likely to churn?",
    "Where is our churn risk concentrated?",
    "What segments do we have?",
    "Which segment brings in the most revenue?",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--drop", default="", help="tools to unregister first (comma list)")
    args = parser.parse_args()
    from insight_agent.tools import registry

    registry.all_tools()
    for name in filter(None, args.drop.split(",")):
        registry._REGISTRY.pop(name, None)
    from insight_agent.agent.session import SessionOptions, open_session
    from insight_agent.data.bootstrap import open_workspace

    session = open_session(
        open_workspace(args.workspace), llm="local", options=SessionOptions(transcript=False)
    )
    print("| question | seconds | input tokens | tool |")
    print("|---|---|---|---|")
    for question in QUESTIONS:
        session.reset()
        start = time.perf_counter()
        turn = session.ask(question)
        tools = ", ".join(c["tool"] for c in turn.tool_calls)
        print(
            f"| {question} | {time.perf_counter() - start:.1f} | {turn.tokens['input']:,} | "
            f"{tools} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
