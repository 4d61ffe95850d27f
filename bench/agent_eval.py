"""Agent evaluation on examples/eval/questions.yaml: per provider, the right-tool rate, valid
arguments, grounded-or-flagged rate and seconds per question.

    python bench/agent_eval.py                      # every available provider, demo workspace
    python bench/agent_eval.py --providers none,local --limit 10 --workspace DIR
    python bench/agent_eval.py --providers local --tool-tokens 125   # a smaller view

Definitions (per question):
* right tool: the first tool call is the expected tool;
* valid arguments: every tool call passed validation, and the expected arguments (segment,
  target, id...) match after resolving segment names;
* grounded or flagged: every figure in the answer was verified against the tool output, or it
  is listed in the answer's "unverified:" line (the user is never shown an unchecked figure);
* all verified: no figure and no quote needed a flag (a quote is text in double quotes of
  four words or more; it must appear word for word in a tool output);
* invented quotes: how many quotes, over all answers, no tool output holds (each is flagged);
* key facts: the answer mentions the expected facts (e.g. the riskiest segment's name).
Timings: median seconds per question, excluding the first (model load, cold caches); for the
embedded model also where a one-tool question's time goes, from the engine's own timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def available_providers() -> list[str]:
    """Providers that can run here: none always; local when installed; openai when set."""
    import os

    from insight_agent.agent.llm import local_runtime_installed

    found = ["none"]
    if local_runtime_installed():
        found.append("local")
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        found.append("openai")
    return found


def _args_ok(ws: Any, call: dict[str, Any], expected: dict[str, Any]) -> bool:
    from insight_agent.analytics.queries import resolve_segment

    if call.get("error") and "invalid arguments" in call["error"]:
        return False
    for key, want in expected.items():
        got = call["args"].get(key)
        if key.startswith("segment") and got is not None:
            try:
                got = resolve_segment(ws, str(got))[1]
            except Exception:
                return False
        if str(got).lower() != str(want).lower():
            return False
    return True


def _engine_timings(messages: list[Any]) -> list[dict[str, float]]:
    """Per model call of the last turn, what the engine reports (llama.cpp ``timings``: tokens
    read and written, and the milliseconds each took); empty for providers without them."""
    from langchain_core.messages import AIMessage

    out = []
    for message in messages:
        t = (getattr(message, "response_metadata", None) or {}).get("timings")
        if isinstance(message, AIMessage) and t:
            out.append({k: t.get(k, 0) for k in ("prompt_n", "prompt_ms", "predicted_n")})
            out[-1]["predicted_ms"] = t.get("predicted_ms", 0)
    return out


def time_breakdown(rows: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """Median tokens and seconds of each step of a one-tool question (two model calls), over
    the warm questions: read the question, write the tool call, read the tool result, write
    the answer."""
    two = [r["model_calls"] for r in rows[1:] if len(r.get("model_calls") or []) == 2]
    if not two:
        return []
    steps = [
        ("read the question (rest of the prompt cached)", 0, "prompt"),
        ("write the tool call", 0, "predicted"),
        ("read the tool result (view + chat template)", 1, "prompt"),
        ("write the answer", 1, "predicted"),
    ]
    return [
        (
            label,
            statistics.median(c[i][f"{kind}_n"] for c in two),
            statistics.median(c[i][f"{kind}_ms"] for c in two) / 1000,
        )
        for label, i, kind in steps
    ]


def evaluate(
    ws: Any,
    provider: str,
    questions: list[dict[str, Any]],
    *,
    tool_tokens: int | None = None,
    answer_tokens: int | None = None,
) -> dict[str, Any]:
    """Run every question through a fresh conversation; return per-question rows + summary.

    ``tool_tokens`` / ``answer_tokens``: the session's caps on a tool result as the model sees
    it and on the answer (None: the provider's defaults), to measure what a change costs.
    """
    from insight_agent.agent.session import SessionOptions, open_session

    options = SessionOptions(transcript=False, tool_tokens=tool_tokens, answer_tokens=answer_tokens)
    session = open_session(ws, llm=provider, options=options)
    rows = []
    for item in questions:
        session.reset()
        start = time.perf_counter()
        try:
            result = session.ask(item["q"]).to_dict()
            error = None
        except Exception as exc:  # a provider failure counts as a miss, the run goes on
            result, error = None, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        engine = _engine_timings(session.history) if result else []
        calls = result["tool_calls"] if result else []
        first = calls[0] if calls else None
        unverified = result["grounding"]["unverified"] if result else []
        bad_quotes = result["grounding"].get("unverified_quotes", []) if result else []
        answer = result["answer"] if result else ""
        rows.append(
            {
                "question": item["q"],
                "expected_tool": item["tool"],
                "tools": [c["tool"] for c in calls],
                "right_tool": bool(first and first["tool"] == item["tool"]),
                "valid_args": bool(
                    first
                    and first["tool"] == item["tool"]
                    and _args_ok(ws, first, item.get("args", {}))
                    and all(
                        not (c.get("error") or "").startswith("invalid arguments") for c in calls
                    )
                ),
                "grounded_or_flagged": bool(result)
                and (
                    not unverified or all(u in answer.split("unverified:")[-1] for u in unverified)
                ),
                "all_verified": bool(result) and not unverified and not bad_quotes,
                "invented_quotes": len(bad_quotes),
                "facts": all(
                    any(
                        alt.lower() in answer.lower() for alt in (f if isinstance(f, list) else [f])
                    )
                    for f in item.get("facts", [])
                ),
                "seconds": round(seconds, 2),
                "model_calls": engine,
                "calls": [
                    {"tool": c["tool"], "args": c["args"], "error": c.get("error")} for c in calls
                ],
                "answer": answer,
                "error": error,
            }
        )
        print(
            f"  [{provider}] {len(rows):>2}/{len(questions)} "
            f"{'ok ' if rows[-1]['right_tool'] else 'MISS'} {seconds:5.1f}s  {item['q'][:60]}",
            file=sys.stderr,
        )
    warm = [r["seconds"] for r in rows[1:]] or [r["seconds"] for r in rows]
    n = len(rows)

    def rate(key: str) -> float:
        return round(sum(r[key] for r in rows) / n, 3)

    return {
        "provider": provider,
        "model": session.model_name,
        "questions": n,
        "right_tool": rate("right_tool"),
        "valid_args": rate("valid_args"),
        "grounded_or_flagged": rate("grounded_or_flagged"),
        "all_verified": rate("all_verified"),
        "key_facts": rate("facts"),
        "invented_quotes": sum(r["invented_quotes"] for r in rows),
        "median_s": round(statistics.median(warm), 2),
        "p90_s": round(sorted(warm)[int(0.9 * (len(warm) - 1))], 2),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", help="comma-separated (default: all available)")
    parser.add_argument("--workspace", type=Path, help="default: the built-in demo workspace")
    parser.add_argument("--questions", type=Path, default=ROOT / "examples/eval/questions.yaml")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--json", type=Path, help="also write every row to this file")
    parser.add_argument(
        "--tool-tokens",
        type=int,
        help="cap on a tool result as the model sees it (default: 125 local)",
    )
    parser.add_argument("--answer-tokens", type=int, help="cap on an answer (default: 120 local)")
    args = parser.parse_args()

    import yaml
    from threadpoolctl import threadpool_limits

    from insight_agent.analytics.artifacts import NoBuild, current_build
    from insight_agent.analytics.build import BuildOptions, run_build
    from insight_agent.data.bootstrap import open_workspace

    threadpool_limits(1)
    ws = open_workspace(args.workspace)
    try:
        current_build(ws)
    except NoBuild:
        print("building the workspace first…", file=sys.stderr)
        run_build(ws, BuildOptions())
    questions = yaml.safe_load(args.questions.read_text())["questions"][: args.limit]
    providers = args.providers.split(",") if args.providers else available_providers()
    results = [
        evaluate(ws, p, questions, tool_tokens=args.tool_tokens, answer_tokens=args.answer_tokens)
        for p in providers
    ]

    header = [
        "provider",
        "model",
        "questions",
        "right tool",
        "valid args",
        "grounded or flagged",
        "all verified",
        "invented quotes",
        "key facts",
        "median s",
        "p90 s",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in results:
        print(
            f"| {r['provider']} | {r['model'] or '-'} | {r['questions']} | {r['right_tool']:.0%} "
            f"| {r['valid_args']:.0%} | {r['grounded_or_flagged']:.0%} | {r['all_verified']:.0%} "
            f"| {r['invented_quotes']} | {r['key_facts']:.0%} | {r['median_s']} | {r['p90_s']} |"
        )
    for r in results:
        breakdown = time_breakdown(r["rows"])
        if breakdown:
            n = sum(len(row.get("model_calls") or []) == 2 for row in r["rows"][1:])
            print(
                f"\n{r['provider']}: where a warm one-tool question's time goes "
                f"(medians over {n} questions, engine timings)"
            )
            print("| step | tokens | seconds |\n|---|---|---|")
            for label, tokens, secs in breakdown:
                print(f"| {label} | {tokens:.0f} | {secs:.2f} |")
    misses = [(r["provider"], row) for r in results for row in r["rows"] if not row["right_tool"]]
    for provider, row in misses:
        print(
            f"miss [{provider}] {row['question']!r}: expected {row['expected_tool']}, "
            f"got {row['tools'] or row['error']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
