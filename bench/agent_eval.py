"""Agent evaluation on examples/eval/questions.yaml: per provider, the right-tool rate, valid
arguments, true answers, declines, kept scope, pass^k and seconds per question.

    python bench/agent_eval.py                      # every available provider, demo workspace
    python bench/agent_eval.py --providers none,local --limit 10 --workspace DIR
    python bench/agent_eval.py --providers local --tool-tokens 125   # a smaller view
    python bench/agent_eval.py --providers none --repeat 3           # pass^3
    python bench/agent_eval.py --providers none --category metrics,scope

A file may carry its own ``workspace:`` (``name``, ``toml``: an insight.toml whose ``{root}``
is this repository, ``build``: extra ``insight build`` options, ``head``: NAME -> [fixture,
rows] written as NAME.csv beside it): the eval builds it once under
``.eval-workspaces/`` (kept between runs, rebuilt when the block changes) unless
``--workspace`` is given. examples/eval/bank.yaml and clothing.yaml run on public data that no
one tuned the demo on.

The file holds entries of three shapes: a question (``q``, ``tool``, ``args``, ``facts``,
``scope``), a decline (``q``, ``decline: true``: no tool may be called) and a dialogue
(``turns:``, each a question as above, asked one after the other in one session). Each entry
may name its ``category`` (default ``core``).

Definitions (per turn; a question is one turn):
* right tool: the first tool call is the expected tool, or one of them when ``tool`` is a
  list (a decline: no tool call at all);
* valid arguments: every tool call passed validation, and the expected arguments match after
  normalising them (segment names resolved; measures and dimensions through the metrics
  catalogue's aliases, compared as sets, except that extra measures after an expected first
  one are allowed; periods resolved to their dates; filters
  DIMENSION=VALUE; numbers as numbers; an absent argument counts as the tool's default, and an
  expected null means the argument must be absent);
* grounded or flagged: every figure in the answer was verified against the tool output, or it
  is listed in the answer's "unverified:" line (the user is never shown an unchecked figure);
* all verified: no figure and no quote needed a flag (a quote is text in double quotes of
  four words or more; it must appear word for word in a tool output);
* invented quotes: how many quotes, over all answers, no tool output holds (each is flagged);
* key facts: the answer mentions the expected facts (case-insensitive substrings; a list is
  alternatives, any one counts);
* true answer: key facts present, a tool returned facts (declines: no call), and no figure,
  meaning or quote flagged as unverified;
* meaning (shown when the grounding result has a ``meaning`` list): share of answers with a
  figure whose words do not fit the fact it matched ("a typical customer is worth <a total>");
* decline rate: decline questions answered with no tool call / decline questions; false
  declines (a question that should have been answered got no tool call) count as misses of
  right tool and are listed;
* scope kept: for turns with ``scope:`` (a count, rating, date, period, filter or the segment
  of an earlier turn), every scope value reached the call of the expected tool;
* pass: right tool, valid arguments, true answer and scope kept on every turn of the entry;
  pass^k (with --repeat k > 1): entries that pass in all k runs.
Timings: median seconds per turn, excluding the first (model load, cold caches); for the
embedded model also where a one-tool question's time goes, from the engine's own timings.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import defaultdict
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


# --- the questions file ----------------------------------------------------------------------


def load_entries(path: Path) -> list[dict[str, Any]]:
    """The file's entries, each with ``turns`` (a question or a decline is one turn) and a
    ``category``; a turn has ``q`` and either ``decline`` or ``tool``."""
    import yaml

    entries = []
    for i, raw in enumerate(yaml.safe_load(path.read_text())["questions"]):
        turns = raw.get("turns") or [raw]
        for t in turns:
            if not t.get("q") or not (t.get("tool") or t.get("decline")):
                raise SystemExit(f"{path}: entry {i + 1} has a turn without q and tool/decline")
        category = raw.get("category") or ("decline" if raw.get("decline") else "core")
        label = raw.get("dialogue") or turns[0]["q"]
        entries.append({"label": label, "category": category, "turns": turns})
    return entries


def file_workspace(path: Path) -> Path | None:
    """The workspace a questions file declares (``workspace:``), built once under
    ``.eval-workspaces/NAME-HASH``; None when it declares none."""
    import hashlib
    import subprocess

    import yaml

    spec = yaml.safe_load(path.read_text()).get("workspace")
    if not spec:
        return None
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    root = ROOT / ".eval-workspaces" / f"{spec['name']}-{key}"
    if (root / ".insight" / "current").is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    for name, (source, rows) in (spec.get("head") or {}).items():
        # the first ROWS rows of a fixture, as NAME.csv (a faster build than the whole file)
        pd.read_csv(ROOT / source).head(rows).to_csv(root / f"{name}.csv", index=False)
    (root / "insight.toml").write_text(spec["toml"].replace("{root}", str(ROOT)))
    print(f"building the {spec['name']} workspace in {root}…", file=sys.stderr)
    cmd = [sys.executable, "-m", "insight_agent", "build", "-w", str(root), *spec.get("build", [])]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"building {root} failed:\n{done.stdout}\n{done.stderr}")
    return root


# --- argument matching -------------------------------------------------------------------------


class _Normaliser:
    """Puts expected and actual argument values in one form (segment names resolved, metric
    names through the catalogue's aliases, periods as dates)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        try:
            from insight_agent.analytics.queries import metrics_engine

            self.cat = metrics_engine(ws).catalogue
        except Exception:
            self.cat = None

    def segment(self, value: Any) -> str:
        from insight_agent.analytics.queries import resolve_segment

        try:
            return str(resolve_segment(self.ws, str(value))[1]).lower()
        except Exception:
            return f"?{value}".lower()

    def _name(self, value: Any, kind: str) -> str:
        try:
            found = self.cat.measure(str(value)) if kind == "m" else self.cat.dimension(str(value))
            return found.name
        except Exception:
            return str(value).strip().lower()

    def period(self, value: Any) -> Any:
        if self.cat is None or self.cat.data_up_to is None:
            return str(value).strip().lower()
        from insight_agent.engine.periods import parse_period

        try:
            p = parse_period(str(value), self.cat.data_up_to, first=self.cat.data_from)
            return (p.start, p.end)
        except Exception:
            return str(value).strip().lower()

    def where(self, value: Any) -> str:
        m = re.match(r"\s*([^=!<>]+?)\s*(!=|<=|>=|=|<|>)\s*(.+?)\s*$", str(value))
        if not m:
            return str(value).strip().lower()
        dim, op, val = m.groups()
        dim = self._name(dim, "d")
        val = self.segment(val) if dim == "segment" else val.lower()
        flag = self.cat is not None and getattr(self.cat.dimensions.get(dim), "flag", False)
        if flag:  # a yes/no column: "=1", "=true" and "=Yes" are one group
            from insight_agent.engine.metrics import FLAG_VALUES

            val = FLAG_VALUES.get(val, val).lower()
        return f"{dim}{op}{val}"

    def value(self, key: str, value: Any) -> Any:
        if value in (None, "", []):
            return None
        if key.startswith("segment"):
            return self.segment(value)
        if key == "measures":
            return frozenset(self._name(v, "m") for v in value)
        if key == "by":
            return frozenset(self._name(v, "d") for v in value)
        if key == "where":
            return frozenset(self.where(v) for v in value)
        if key == "period":
            return self.period(value)
        if key in ("since", "until"):
            return str(value)[:10]
        if isinstance(value, bool) or key == "ascending":
            return bool(value) or None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            return float(str(value))
        except ValueError:
            return str(value).strip().lower()


def _defaults(tool: str) -> dict[str, Any]:
    """The tool's optional arguments and their defaults (an absent argument has this value)."""
    from insight_agent.tools.registry import all_tools

    spec = next((s for s in all_tools() if s.name == tool), None)
    if spec is None:
        return {}
    out = {}
    for name, field in spec.args.model_fields.items():
        if not field.is_required():
            default = field.get_default(call_default_factory=True)
            out[name] = default
    return out


def _show(value: Any) -> str:
    return json.dumps(value, default=str)


def arg_mismatches(norm: _Normaliser, call: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """``key: expected -> got`` for every expected argument the call does not match."""
    got_args = {**_defaults(call["tool"]), **(call.get("args") or {})}
    out = []
    for key, want in expected.items():
        got = got_args.get(key)
        if key == "measures" and want and got:
            # every expected measure, and one of them first (it sorts and heads the answer);
            # an extra measure after it is harmless
            need, have = norm.value(key, want), [norm._name(m, "m") for m in got]
            if need <= set(have) and have[0] in need:
                continue
        if norm.value(key, got) != norm.value(key, want):
            out.append(f"{key}: {_show(want)} -> {_show(got)}")
    return out


def _args_ok(ws: Any, call: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Kept for callers of the old bench: every expected argument matches."""
    if call.get("error") and "invalid arguments" in call["error"]:
        return False
    return not arg_mismatches(_Normaliser(ws), call, expected)


# --- timings -----------------------------------------------------------------------------------


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


def time_breakdown(rows: list[dict[str, Any]], calls: int = 2) -> list[tuple[str, float, float]]:
    """Median tokens and seconds of each step of a one-tool question, over the warm questions.
    ``calls=2``: the model wrote the call (read the question, write the tool call, read the
    tool result, write the answer); ``calls=1``: the call was the router's (a decisive cue)
    and the model only read the question with the result and wrote the answer."""
    two = [r["model_calls"] for r in rows[1:] if len(r.get("model_calls") or []) == calls]
    if not two:
        return []
    steps = [
        ("read the question (rest of the prompt cached)", 0, "prompt"),
        ("write the tool call", 0, "predicted"),
        ("read the tool result (view + chat template)", 1, "prompt"),
        ("write the answer", 1, "predicted"),
    ]
    if calls == 1:
        steps = [
            ("read the question and the tool result (rest cached)", 0, "prompt"),
            ("write the answer", 0, "predicted"),
        ]
    return [
        (
            label,
            statistics.median(c[i][f"{kind}_n"] for c in two),
            statistics.median(c[i][f"{kind}_ms"] for c in two) / 1000,
        )
        for label, i, kind in steps
    ]


# --- one turn ----------------------------------------------------------------------------------


def _has(answer: str, fact: Any) -> bool:
    alts = fact if isinstance(fact, list) else [fact]
    return any(str(alt).lower() in answer.lower() for alt in alts)


def _tools(turn: dict[str, Any]) -> list[str]:
    tool = turn["tool"]
    return [str(t) for t in tool] if isinstance(tool, list) else [str(tool)]


def score_turn(
    norm: _Normaliser,
    turn: dict[str, Any],
    result: dict[str, Any] | None,
    error: str | None,
) -> dict[str, Any]:
    """The checks of one turn and, for a miss, what happened."""
    calls = result["tool_calls"] if result else []
    first = calls[0] if calls else None
    grounding = result["grounding"] if result else {}
    unverified = grounding.get("unverified", [])
    bad_quotes = grounding.get("unverified_quotes", [])
    meaning = grounding.get("meaning", [])
    answer = result["answer"] if result else ""
    notes = result.get("notes", []) if result else []
    declined = next((n for n in notes if n.startswith("declined")), None)
    is_decline = bool(turn.get("decline"))
    tools = [] if is_decline else _tools(turn)
    problems: list[str] = []

    if is_decline:
        right = bool(result) and not calls
        valid = right
        if not right:
            problems.append(f"not declined: called {[c['tool'] for c in calls]}")
    else:
        right = bool(first and first["tool"] in tools)
        if not right:
            got = [c["tool"] for c in calls] or (declined or error or "no tool call")
            problems.append(f"tool: expected {' or '.join(tools)}, got {got}")
        mism = arg_mismatches(norm, first, turn.get("args") or {}) if right else []
        invalid = [c for c in calls if (c.get("error") or "").startswith("invalid arguments")]
        valid = right and not mism and not invalid
        if mism:
            problems.append("args " + "; ".join(mism))
        if invalid:
            problems.append(f"invalid arguments: {invalid[0]['error'][:120]}")
    missing = [f for f in turn.get("facts", []) if not _has(answer, f)]
    if missing:
        problems.append(f"facts missing {missing}")
    tool_ok = is_decline or any(c.get("result") is not None and not c.get("error") for c in calls)
    if not is_decline and calls and not tool_ok:
        problems.append(f"tool error: {(calls[-1].get('error') or '')[:160]}")
    true_answer = (
        bool(result) and not missing and tool_ok and not (unverified or meaning or bad_quotes)
    )
    if unverified:
        problems.append(f"unverified {unverified[:3]}")
    if meaning:
        problems.append(f"meaning {meaning[:2]}")
    scope = turn.get("scope") or {}
    scope_kept = None
    if scope:
        call = next((c for c in calls if c["tool"] in tools), None)
        lost = arg_mismatches(norm, call, scope) if call else ["no call of the expected tool"]
        scope_kept = not lost
        if lost and call:
            problems.append("scope lost " + "; ".join(lost))
    passed = right and valid and true_answer and scope_kept is not False
    return {
        "question": turn["q"],
        "expected_tool": None if is_decline else " or ".join(tools),
        "decline": is_decline,
        "tools": [c["tool"] for c in calls],
        "declined": declined,
        "right_tool": right,
        "valid_args": valid,
        "grounded_or_flagged": bool(result)
        and (not unverified or all(u in answer.split("unverified:")[-1] for u in unverified)),
        "all_verified": bool(result) and not unverified and not bad_quotes,
        "invented_quotes": len(bad_quotes),
        "facts": not missing,
        "true_answer": true_answer,
        "has_meaning": "meaning" in grounding,
        "meaning_flagged": bool(meaning),
        "scope_kept": scope_kept,
        "passed": passed,
        "problems": problems,
        "calls": [{"tool": c["tool"], "args": c["args"], "error": c.get("error")} for c in calls],
        "answer": answer,
        "error": error,
    }


# --- a provider --------------------------------------------------------------------------------


def evaluate(
    ws: Any,
    provider: str,
    entries: list[dict[str, Any]],
    *,
    tool_tokens: int | None = None,
    answer_tokens: int | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """Run every entry ``repeat`` times, each in a fresh conversation (a dialogue's turns in
    one); return per-turn rows and the summary.

    ``tool_tokens`` / ``answer_tokens``: the session's caps on a tool result as the model sees
    it and on the answer (None: the provider's defaults), to measure what a change costs.
    """
    from insight_agent.agent.session import SessionOptions, open_session

    options = SessionOptions(transcript=False, tool_tokens=tool_tokens, answer_tokens=answer_tokens)
    session = open_session(ws, llm=provider, options=options)
    norm = _Normaliser(ws)
    rows: list[dict[str, Any]] = []
    total = len(entries)
    for run in range(repeat):
        for index, entry in enumerate(entries):
            session.reset()
            for turn_no, turn in enumerate(entry["turns"]):
                start = time.perf_counter()
                try:
                    result = session.ask(turn["q"]).to_dict()
                    error = None
                except Exception as exc:  # a provider failure counts as a miss, the run goes on
                    result, error = None, f"{type(exc).__name__}: {exc}"
                seconds = time.perf_counter() - start
                row = score_turn(norm, turn, result, error)
                row.update(
                    run=run,
                    entry=index,
                    turn=turn_no,
                    category=entry["category"],
                    label=entry["label"],
                    seconds=round(seconds, 2),
                    model_calls=_engine_timings(session.history) if result else [],
                )
                rows.append(row)
                mark = "ok  " if row["passed"] else "FAIL"
                run_no = f"r{run + 1} " if repeat > 1 else ""
                turn_of = f".{turn_no + 1}" if len(entry["turns"]) > 1 else ""
                print(
                    f"  [{provider}] {run_no}{index + 1:>3}/{total}{turn_of}"
                    f" {mark} {seconds:5.1f}s  {turn['q'][:60]}",
                    file=sys.stderr,
                )
    summary = summarise(rows, repeat)
    return {"provider": provider, "model": session.model_name, **summary, "rows": rows}


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def summarise(rows: list[dict[str, Any]], repeat: int) -> dict[str, Any]:
    """The per-provider (or per-category) figures over ``rows``."""
    warm = [r["seconds"] for r in rows[1:]] or [r["seconds"] for r in rows] or [0.0]
    # an entry passes a run when every turn passes; pass^k when it passes every run
    by_entry: dict[int, dict[int, bool]] = defaultdict(dict)
    for r in rows:
        runs = by_entry[r["entry"]]
        runs[r["run"]] = runs.get(r["run"], True) and r["passed"]
    entries = len(by_entry)
    out = {
        "questions": entries,
        "turns": len(rows) // max(repeat, 1),
        "right_tool": _rate([r["right_tool"] for r in rows]),
        "valid_args": _rate([r["valid_args"] for r in rows]),
        "grounded_or_flagged": _rate([r["grounded_or_flagged"] for r in rows]),
        "all_verified": _rate([r["all_verified"] for r in rows]),
        "key_facts": _rate([r["facts"] for r in rows]),
        "true_answer": _rate([r["true_answer"] for r in rows]),
        "meaning": _rate([r["meaning_flagged"] for r in rows if r["has_meaning"]]),
        "decline_rate": _rate([r["right_tool"] for r in rows if r["decline"]]),
        "false_declines": sum(1 for r in rows if not r["decline"] and r["declined"]),
        "scope_kept": _rate([bool(r["scope_kept"]) for r in rows if r["scope_kept"] is not None]),
        "invented_quotes": sum(r["invented_quotes"] for r in rows),
        "pass": _rate([ok for runs in by_entry.values() for ok in runs.values()]),
        "pass_k": _rate([all(runs.values()) for runs in by_entry.values()]),
        "median_s": round(statistics.median(warm), 2),
        "p90_s": round(sorted(warm)[int(0.9 * (len(warm) - 1))], 2),
    }
    return out


# --- tables ------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def main_table(results: list[dict[str, Any]], repeat: int) -> list[str]:
    """The per-provider table (markdown)."""
    show_meaning = any(r["meaning"] is not None for r in results)
    header = [
        "provider",
        "model",
        "questions",
        "turns",
        "right tool",
        "valid args",
        "grounded or flagged",
        "all verified",
        "invented quotes",
        "key facts",
        "true answer",
        *(["meaning"] if show_meaning else []),
        "decline rate",
        "scope kept",
        "pass",
        *([f"pass^{repeat}"] if repeat > 1 else []),
        "median s",
        "p90 s",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [
            r["provider"],
            r["model"] or "-",
            str(r["questions"]),
            str(r["turns"]),
            _pct(r["right_tool"]),
            _pct(r["valid_args"]),
            _pct(r["grounded_or_flagged"]),
            _pct(r["all_verified"]),
            str(r["invented_quotes"]),
            _pct(r["key_facts"]),
            _pct(r["true_answer"]),
            *([_pct(r["meaning"])] if show_meaning else []),
            _pct(r["decline_rate"]),
            _pct(r["scope_kept"]),
            _pct(r["pass"]),
            *([_pct(r["pass_k"])] if repeat > 1 else []),
            str(r["median_s"]),
            str(r["p90_s"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def category_table(result: dict[str, Any], repeat: int) -> list[str]:
    """One provider's figures per category (markdown)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in result["rows"]:
        groups[row["category"]].append(row)
    header = ["category", "questions", "turns", "right tool", "valid args", "true answer",
              "scope kept", "pass", *([f"pass^{repeat}"] if repeat > 1 else [])]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for category, rows in groups.items():
        s = summarise(rows, repeat)
        cells = [category, str(s["questions"]), str(s["turns"]), _pct(s["right_tool"]),
                 _pct(s["valid_args"]), _pct(s["true_answer"]), _pct(s["scope_kept"]),
                 _pct(s["pass"]), *([_pct(s["pass_k"])] if repeat > 1 else [])]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", help="comma-separated (default: all available)")
    parser.add_argument("--workspace", type=Path, help="default: the built-in demo workspace")
    parser.add_argument("--questions", type=Path, default=ROOT / "examples/eval/questions.yaml")
    parser.add_argument("--limit", type=int, help="only the first N entries")
    parser.add_argument("--category", help="only these categories (comma-separated)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run every entry N times; pass^N when N > 1"
    )
    parser.add_argument("--json", type=Path, help="also write every row to this file")
    parser.add_argument(
        "--tool-tokens",
        type=int,
        help="cap on a tool result as the model sees it (default: 125 local)",
    )
    parser.add_argument("--answer-tokens", type=int, help="cap on an answer (default: 120 local)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")

    from threadpoolctl import threadpool_limits

    from insight_agent.analytics.artifacts import NoBuild, current_build
    from insight_agent.analytics.build import BuildOptions, run_build
    from insight_agent.data.bootstrap import open_workspace

    threadpool_limits(1)
    ws = open_workspace(args.workspace or file_workspace(args.questions))
    try:
        current_build(ws)
    except NoBuild:
        print("building the workspace first…", file=sys.stderr)
        run_build(ws, BuildOptions())
    entries = load_entries(args.questions)
    if args.category:
        wanted = {c.strip() for c in args.category.split(",")}
        entries = [e for e in entries if e["category"] in wanted]
    entries = entries[: args.limit]
    providers = args.providers.split(",") if args.providers else available_providers()
    results = [
        evaluate(
            ws,
            p,
            entries,
            tool_tokens=args.tool_tokens,
            answer_tokens=args.answer_tokens,
            repeat=args.repeat,
        )
        for p in providers
    ]

    print("\n".join(main_table(results, args.repeat)))
    for r in results:
        print(f"\n{r['provider']}: by category")
        print("\n".join(category_table(r, args.repeat)))
    for r in results:
        for calls, how in ((2, "the model wrote the call"), (1, "the router's call")):
            breakdown = time_breakdown(r["rows"], calls)
            if not breakdown:
                continue
            n = sum(len(row.get("model_calls") or []) == calls for row in r["rows"][1:])
            print(
                f"\n{r['provider']}: where a warm one-tool question's time goes, {how} "
                f"(medians over {n} questions, engine timings)"
            )
            print("| step | tokens | seconds |\n|---|---|---|")
            for label, tokens, secs in breakdown:
                print(f"| {label} | {tokens:.0f} | {secs:.2f} |")
    for r in results:
        failed = [row for row in r["rows"] if not row["passed"]]
        if failed:
            print(f"\n{r['provider']}: {len(failed)} failing turns")
        for row in failed:
            where = f"run {row['run'] + 1}, " if args.repeat > 1 else ""
            turn = f" (turn {row['turn'] + 1})" if row["turn"] else ""
            print(
                f"fail [{r['provider']}] [{row['category']}] {where}{row['question']!r}{turn}: "
                + ("; ".join(row["problems"]) or row["error"] or "?")
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
