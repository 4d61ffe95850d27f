"""One conversation with the agent: the loop behind `insight chat` and `insight ask`.

A turn: the question (masked for hosted models) goes to a LangChain ``create_agent`` graph
with Insight's tools and prompts/system.md; the model calls tools (bounded steps), the tools
compute, the model words the answer. Then every figure in the answer is checked against this
turn's tool outputs (:mod:`.grounding`); unmatched figures are flagged, and with ``strict`` the
model is asked once to fix them. With no LLM (``none``) the deterministic router answers.

History stays within a token budget (tiktoken), and each turn is appended to a JSONL
transcript under the workspace's ``.insight/runs/``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from insight_agent.agent.llm import (
    PlansTurns,
    ProviderChoice,
    TurnPlan,
    explain_provider_error,
    masks_pii,
    model_name,
    profile_for,
)
from insight_agent.errors import InsightError
from insight_agent.tools.registry import (
    ToolContext,
    ToolResult,
    ToolSpec,
    all_tools,
    as_langchain_tools,
    available_tools,
    get_tool,
)

Event = Callable[[str, Any], None]  # ("token", str) | ("tool", ToolResult) | ("status", str)

FIX_REQUEST = (
    "These figures or quotes in your answer do not appear in the tool results: {figures}. "
    "Rewrite the answer using only figures and review quotes exactly as the tools returned them."
)
MEANING_FIX = (
    "These figures are described wrongly: {problems}. Rewrite the answer so each figure is "
    "described as what the tool says it is."
)


@dataclass
class TurnResult:
    """What one question produced (``insight ask --json`` prints this)."""

    question: str
    answer: str
    provider: str
    model: str | None
    tool_calls: list[dict[str, Any]]
    grounding: dict[str, Any]
    timings: dict[str, float]
    tokens: dict[str, int]
    fixed: bool = False
    notes: list[str] = field(default_factory=list)
    # Review quotes behind the answer, verbatim from the tools (search_reviews): shown under
    # the answer, so the model summarises them instead of retyping (or inventing) them.
    quotes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass
class SessionOptions:
    """Knobs of a session (CLI flags map onto these)."""

    strict: bool = False
    mask_pii: bool | None = None  # None: on for hosted providers
    max_steps: int = 6  # model calls per turn
    history_tokens: int = 3000
    # Cap on one tool result as the model sees it. None: LOCAL_TOOL_TOKENS for the embedded
    # model (reading a tool result costs it ~17 ms a token on 2 cores; the headline comes
    # first), 1,200 for hosted models.
    tool_tokens: int | None = None
    # How tool results are written for the model: "compact" text (tables, one token per
    # digit counted; agent/compact.py) or "json". None: compact for the embedded model.
    tool_format: str | None = None
    # Longest answer the embedded model may write, in tokens (it writes ~18 a second on 2
    # cores, and a 1.5B model asked for a list sometimes runs on); an answer cut there ends
    # at its last whole sentence. None: 120 for the embedded model, the provider's own limit
    # for hosted ones.
    answer_tokens: int | None = None
    # Keep optional filters (review sentiment, ratings, dates, category) the user's words do
    # not ask for. None: dropped for the embedded model, which fills them in out of thin air
    # (agent/router.py: unasked_filters); kept for hosted models.
    keep_unasked_filters: bool | None = None
    transcript: bool = True


def system_prompt(ctx: ToolContext) -> str:
    """prompts/system.md and the names of the workspace's segments.

    Knowing the names, a model passes "New customers" where it otherwise guesses
    "new_customers" or "lapsed" from the question (an error and a retry, or an empty answer);
    the names change only with a rebuild, so the prompt stays cached between turns.
    """
    from insight_agent.analytics.queries import segment_names
    from insight_agent.prompts import load_prompt

    text = load_prompt("system")
    lacks = _lacks(ctx)
    if lacks:  # the tools for it are not offered: the model must say so, not improvise
        from insight_agent.agent.router import can_answer

        text = (
            f"{text.rstrip()}\n\nThis workspace has {lacks}. Asked about that, say so in one "
            f"sentence and offer what it can answer: {can_answer(ctx)}.\n"
        )
    try:
        names = segment_names(ctx.ws)
    except (InsightError, OSError, KeyError, ValueError):
        return text  # no build yet: the tools say so when called
    if not names:
        return text
    listing = "; ".join(names.values())
    return f"{text.rstrip()}\n\nThe segments: {listing}.\n"


def _lacks(ctx: ToolContext) -> str:
    """What this workspace's build lacks, in words ("no reviews (add …); no churn …")."""
    from insight_agent.tools.registry import DATA_KINDS, workspace_has

    has = workspace_has(ctx)
    if has is None:
        return ""
    return "; ".join(
        text
        for kind, text in DATA_KINDS.items()
        if kind in ("segments", "churn", "models", "clv", "basket", "reviews") and kind not in has
    )


class AgentSession:
    """A chat session over one workspace with one provider."""

    def __init__(
        self,
        ctx: ToolContext,
        choice: ProviderChoice,
        *,
        chat_model: Any = None,
        options: SessionOptions | None = None,
        on_event: Event | None = None,
    ) -> None:
        self.ctx = ctx
        self.choice = choice
        self.options = options or SessionOptions()
        self.on_event = on_event or (lambda kind, payload: None)
        self.profile = choice.profile
        self.chat_model = self.profile.prepare(
            chat_model,
            answer_tokens=self.options.answer_tokens,
            summaries={s.name: s.summary for s in all_tools() if s.summary},
            # a persona or a review count shows quotes too, but answers on its own terms:
            # started "In short, these reviews", personas came out as "these reviews are
            # about bargain hunters…" without the segment's size
            prefills={s.name: REVIEWS_ANSWER_START for s in all_tools() if s.summarises_quotes},
            on_status=lambda note: self.on_event("status", note),
        )
        self.history: list[Any] = []
        self.usage = {"input": 0, "output": 0, "turns": 0}
        self.session_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S-") + secrets.token_hex(3)
        self.masking = masks_pii(choice, self.options.mask_pii)
        self._redactor: Any = None
        self._agent: Any = None
        self._turn_results: list[ToolResult] = []
        self._seen_facts: list[dict[str, Any] | str] = []
        self._user_texts: list[str] = []  # what the user wrote in this conversation
        self._dropped: list[str] = []  # filters dropped this turn (unasked_filters)
        self._decided: dict[str, Any] | None = None  # the router's call this turn, if any
        self._plan: TurnPlan | None = None  # this user turn's plan (PlansTurns models)
        # What "it / they / that segment" refer to in a follow-up: the last segment, customer
        # and prediction target the conversation was about (router.DialogueState).
        from insight_agent.agent.router import DialogueState

        self.state = DialogueState()

    # --- public ------------------------------------------------------------------------------

    @property
    def model_name(self) -> str | None:
        """The model's name as the provider reports it (None without an LLM)."""
        return model_name(self.chat_model)

    def reset(self) -> None:
        """Forget the conversation (tools and model stay loaded)."""
        from insight_agent.agent.router import DialogueState

        self.history = []
        self._user_texts = []
        self.state = DialogueState()

    def _keeps_unasked_filters(self) -> bool:
        if self.options.keep_unasked_filters is not None:
            return self.options.keep_unasked_filters
        return self.profile.keeps_unasked_filters

    def ask(self, question: str) -> TurnResult:
        """Answer one question (memory of earlier turns included)."""
        start = time.perf_counter()
        self._turn_results = []
        self._seen_facts = []
        self._dropped = []
        self._decided = None
        self._plan = None
        self._user_texts.append(question)
        from insight_agent.agent.router import can_answer, decline, domain_names, no_data, route

        declined = decline(
            question,
            follow_up=len(self._user_texts) > 1 or self.state.active,
            names=domain_names(self.ctx),
            can=can_answer(self.ctx),
        )
        decision = None
        if declined is None and (self.chat_model is None or self.profile.shortlists_tools):
            # the route this provider takes anyway; a question only a tool whose data this
            # workspace lacks can answer is declined with what is missing
            decision = route(self.ctx, question, self.state)
            declined = no_data(self.ctx, decision, question)
        if declined is not None:
            result = self._declined(question, declined)
        elif self.chat_model is None:
            result = self._ask_router(question, decision)
        else:
            result = self._ask_model(question, decision)
        if declined is None:  # a decline's list of what Insight can do names no subject
            self.state.update(self.ctx, self._turn_results, result.answer, question)
        result.timings["total_s"] = round(time.perf_counter() - start, 3)
        self.usage["input"] += result.tokens.get("input", 0)
        self.usage["output"] += result.tokens.get("output", 0)
        self.usage["turns"] += 1
        if self.options.transcript:
            self._save(result)
        return result

    # --- providers ---------------------------------------------------------------------------

    def _declined(self, question: str, declined: Any) -> TurnResult:
        """No tool fits (or the request is one Insight refuses): say so, with no tool call.
        The exchange joins the history so a follow-up still reads naturally."""
        from langchain_core.messages import AIMessage, HumanMessage

        self.on_event("token", declined.answer)
        if self.chat_model is not None:
            self.history += [HumanMessage(question), AIMessage(declined.answer)]
        return TurnResult(
            question=question,
            answer=declined.answer,
            provider=self.choice.name,
            model=self.model_name,
            tool_calls=[],
            grounding={"ok": True, "verified": [], "unverified": [], "meaning": []},
            timings={"tools_s": 0.0},
            tokens={"input": 0, "output": 0},
            notes=[f"declined: {declined.kind}"],
        )

    def _ask_router(self, question: str, decision: Any = None) -> TurnResult:
        from insight_agent.agent.grounding import annotate, check_grounding
        from insight_agent.agent.router import route_and_answer

        answer, results = route_and_answer(
            self.ctx, question, self.state, declines_checked=True, decision=decision
        )
        self._turn_results = list(results)
        for r in results:
            self.on_event("tool", r)
        self.on_event("token", answer)
        grounding = check_grounding(
            answer, [r.facts for r in results if r.facts], question=question
        )
        return TurnResult(
            question=question,
            answer=annotate(answer, grounding),
            provider="none",
            model=None,
            tool_calls=[r.to_dict() for r in results],
            grounding=grounding.to_dict(),
            timings={"tools_s": round(sum(r.seconds for r in results), 3)},
            tokens={"input": 0, "output": 0},
        )

    def _redact(self) -> Any:
        if self._redactor is None:
            from insight_agent.agent.redaction import Redactor

            self._redactor = Redactor(**_known_pii(self.ctx))
        return self._redactor

    def _build_agent(self) -> Any:
        from langchain.agents import create_agent
        from langchain.agents.middleware import ModelCallLimitMiddleware

        from insight_agent.agent.budget import cap_json
        from insight_agent.agent.compact import compact_facts, quotes_for_summary

        budget = self.options.tool_tokens or self.profile.tool_tokens
        compact = (self.options.tool_format or self.profile.view_format) == "compact"

        def facts_out(facts: dict[str, Any], spec: ToolSpec) -> dict[str, Any] | str:
            limit = budget
            if spec.shows_quotes:  # the user sees them under the answer
                facts = quotes_for_summary(facts, QUOTES_SHOWN, search=spec.summarises_quotes)
                # the model must read every quote the user is shown, or it describes the
                # one it missed from imagination
                limit = max(budget, QUOTES_VIEW_TOKENS)
            if compact:
                question = self._user_texts[-1] if self._user_texts else ""
                text = compact_facts(facts, limit, keep=spec.brief, question=question)
                self._seen_facts.append(text)  # ground answers on what the model actually saw
                shown = self._redact().mask(text) if self.masking else text
                plan = self._plan
                if (
                    plan is not None
                    and self.profile.answer_starts_with_headline
                    and not spec.summarises_quotes
                    and not _empty_text(facts.get("headline"))
                ):
                    # the view's first line is the headline (agent/compact.py)
                    plan.answer_starts[spec.name] = shown.split("\n", 1)[0].strip()
                return shown
            capped = cap_json(facts, budget)
            self._seen_facts.append(capped)
            return self._redact().mask_obj(capped) if self.masking else capped

        def args_in(args: dict[str, Any], spec: ToolSpec) -> dict[str, Any]:
            args = self._redact().unmask_obj(args) if self.masking else args
            decided = self._decided
            if decided and spec.name == decided["name"] and args == decided["args"]:
                return args  # the router's call: read from the user's words already
            if not self._keeps_unasked_filters():
                from insight_agent.agent.router import unasked_filters

                said = " ".join(self._user_texts)
                for name in unasked_filters(spec.name, args, said):
                    self._dropped.append(f"{name}={args[name]!r}")
                    args = {k: v for k, v in args.items() if k != name}
                if spec.name == "query_metrics" and self._user_texts:
                    from insight_agent.agent.router import period_as_said

                    said_period = period_as_said(self._user_texts[-1])
                    if said_period:  # the user's words, not the model's paraphrase
                        args = {**args, "period": said_period}
            return args

        from insight_agent.agent.router import retry_with_listed_name

        tools = as_langchain_tools(
            self.ctx,
            specs=available_tools(self.ctx),  # only what this workspace's data can answer
            on_result=self._on_result,
            args_in=args_in,
            facts_out=facts_out,
            retry=retry_with_listed_name,  # "lapsers" -> "Lapsing customers", once
        )
        return create_agent(
            self.chat_model,
            tools,
            system_prompt=system_prompt(self.ctx),
            middleware=[
                ModelCallLimitMiddleware(run_limit=self.options.max_steps, exit_behavior="end")
            ],
        )

    def _on_result(self, result: ToolResult) -> None:
        self._turn_results.append(result)
        self.on_event("tool", result)

    def _run_graph(self, messages: list[Any]) -> tuple[list[Any], float]:
        """Run the agent graph on ``messages``; stream answer tokens; return all messages."""
        from langchain_core.messages import AIMessageChunk

        if self._agent is None:
            self._agent = self._build_agent()
        start = time.perf_counter()
        final: list[Any] = messages
        streamer = _Unmasker(self._redact().unmask if self.masking else None, self.on_event)
        try:
            for mode, payload in self._agent.stream(
                {"messages": messages},
                stream_mode=["messages", "values"],
                config={"recursion_limit": 4 * self.options.max_steps + 4},
            ):
                if mode == "values":
                    final = payload["messages"]
                    continue
                chunk, meta = payload
                if (
                    isinstance(chunk, AIMessageChunk)
                    and isinstance(chunk.content, str)
                    and chunk.content
                    and not chunk.tool_call_chunks
                    and meta.get("langgraph_node") == "model"
                ):
                    streamer.feed(chunk.content)
        except InsightError:
            # The provider's own one-line error (llm.ProviderError, e.g. MalformedReply): the
            # chat prints it and goes on; this turn leaves no trace in the history.
            raise
        except Exception as exc:
            explained = explain_provider_error(exc, _endpoint(self.chat_model))
            if explained is not None:
                raise explained from exc
            raise
        streamer.flush()
        return final, time.perf_counter() - start

    def _plan_turn(self, question: str, decision: Any = None) -> TurnPlan | None:
        """What the model may do on this user turn, as the profile asks: the router's
        shortlist of tools, its call on a decisive cue, the filters nobody asked for (None:
        the profile plans nothing). ``decision``: the route already taken, if any."""
        if not self.profile.shortlists_tools:
            return None
        from insight_agent.agent.router import decided_call, route, shortlist

        said = " ".join(_text_of(m) for m in self.history)
        if decision is None:
            decision = route(self.ctx, question, self.state)
        tools = shortlist(self.ctx, question, context=said, decision=decision)
        call = decided_call(decision) if self.profile.takes_decisive_routes else None
        self._decided = call
        if call is not None and self.masking:
            call = {**call, "args": self._redact().mask_obj(call["args"])}
        omit: dict[str, list[str]] = {}
        if not self._keeps_unasked_filters():
            from insight_agent.agent.router import filters_never_asked

            asked_by_user = " ".join(self._user_texts)  # this question included
            omit = filters_never_asked(self.ctx, asked_by_user)
        return TurnPlan(tools=tools, call=call, omit=omit)

    def _ask_model(self, question: str, decision: Any = None) -> TurnResult:
        from langchain_core.messages import AIMessage, HumanMessage

        from insight_agent.agent.budget import trim_history
        from insight_agent.agent.grounding import annotate, check_grounding

        planner = self.chat_model if isinstance(self.chat_model, PlansTurns) else None
        plan = self._plan_turn(question, decision) if planner is not None else None
        self._plan = plan
        if planner is not None:
            planner.plan_turn(plan)
        # a follow-up that refers back ("how big is it?") gets what it refers to spelled out
        question_in = self.state.spell_out(self.ctx, question)
        shown = self._redact().mask(question_in) if self.masking else question_in
        messages = trim_history([*self.history, HumanMessage(shown)], self.options.history_tokens)
        final, llm_seconds = self._run_graph(messages)
        new = final[len(messages) :]
        answer = _last_text(new)
        notes: list[str] = []
        if self._dropped:
            dropped = ", ".join(self._dropped)
            notes.append(f"ignored filters the question did not ask for: {dropped}")
        if answer and _hit_length_limit(new):
            answer = _whole_sentences(answer)
            notes.append("answer cut at the length limit")
        unmask = self._redact().unmask if self.masking else (lambda s: s)
        display = unmask(answer)
        grounding = check_grounding(display, self._seen_facts, question=question)
        fixed = False
        if not answer:
            first = next((r for r in self._turn_results if r.ok and r.facts), None)
            if first is not None:
                # The facts are there: say them the way the no-LLM provider would.
                from insight_agent.agent.router import render

                display = render(first.name, first.facts)
                grounding = check_grounding(display, [first.facts], question=question)
                notes.append(
                    f"the model gave no answer; this is {first.name}'s result, worded without it"
                )
            else:
                display = (
                    "I could not finish this question within the step limit; try rephrasing it."
                )
                notes.append("no final answer from the model")
        elif not grounding.ok and self.options.strict:
            wrong = [*grounding.unverified, *(f'"{q}"' for q in grounding.unverified_quotes)]
            request = FIX_REQUEST.format(figures=", ".join(wrong)) if wrong else ""
            if grounding.meaning:
                request += " " + MEANING_FIX.format(problems="; ".join(grounding.meaning))
            request = request.strip()
            retry = [*final, HumanMessage(request)]
            if planner is not None and plan is not None:
                planner.plan_turn(replace(plan, call=None))  # the fix request is no question
            self.on_event("status", "re-asking the model to fix unverified figures")
            final, more = self._run_graph(retry)
            llm_seconds += more
            new = final[len(messages) :]
            fixed_answer = _last_text(final[len(retry) :])
            if fixed_answer:
                display = unmask(fixed_answer)
                grounding = check_grounding(display, self._seen_facts, question=question)
                fixed = True
            # The fix request is scaffolding: keep only the question and the final answer.
            final = [*final[: len(messages)], *[m for m in new if not _is_fix(m)]]
        self.history = [m for m in final if not _is_fix(m)]
        if fixed:
            self.history.append(AIMessage(_last_text(final)))
        display = with_cap_notes(display, self._turn_results)
        display = with_breakdown_rows(display, self._turn_results)
        tokens = _usage(new)
        return TurnResult(
            question=question,
            answer=annotate(display, grounding),
            provider=self.choice.name,
            model=self.model_name,
            tool_calls=[r.to_dict() for r in self._turn_results],
            grounding=grounding.to_dict(),
            timings={
                "llm_s": round(llm_seconds - sum(r.seconds for r in self._turn_results), 3),
                "tools_s": round(sum(r.seconds for r in self._turn_results), 3),
            },
            tokens=tokens,
            fixed=fixed,
            notes=notes,
            quotes=turn_quotes(self._turn_results),
        )

    def _save(self, result: TurnResult) -> None:
        runs = self.ctx.ws.artifacts / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        record = {
            "session": self.session_id,
            "at": dt.datetime.now(dt.UTC).isoformat(),
            **result.to_dict(),
        }
        with open(runs / f"{self.session_id}.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    @property
    def transcript_path(self) -> Path:
        """Where this session's turns are saved."""
        return self.ctx.ws.artifacts / "runs" / f"{self.session_id}.jsonl"


QUOTES_SHOWN = 3
# The embedded model's view of one tool result, in digit-aware tokens (agent/compact.py): the
# headline, the tool's brief keys, what the question names, then as many table rows as fit.
# 150 -> 125 took ~25 tokens (0.3-0.4 s) off each warm question at the same key-fact rate
# (docs/benchmarks.md); at 110 the model began citing figures the view no longer held.
LOCAL_TOOL_TOKENS = profile_for("local").tool_tokens  # reports' cache key reads it
QUOTES_VIEW_TOKENS = 150  # QUOTES_SHOWN quotes of 15 words and their ids fit
# How the embedded model's answer starts after a review search: one summarising sentence
# instead of the list of quotes the user sees anyway (local.LocalChatModel.answer_prefills).
REVIEWS_ANSWER_START = "In short, these reviews"


def _empty_text(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


_QUOTE_FIELDS = ("review_id", "text", "rating", "segment", "date")


def with_cap_notes(answer: str, results: list[ToolResult]) -> str:
    """``answer`` with each cap the tools state ("showing 100 of the 200 asked; `insight
    audience …` exports all") appended, word for word, unless the answer already says it: a
    model asked for 200 customers and shown 100 tends to call them "the 200"."""
    for result in results:
        facts = result.facts or {}
        notes = [facts.get("note"), *(facts.get("notes") or [])]
        for note in notes:
            if not isinstance(note, str) or not note.startswith("showing "):
                continue
            shown = note.split(";", 1)[0]  # "showing 100 of the 200 asked"
            if shown.lower() not in answer.lower():
                answer = f"{answer.rstrip()}\n({note[0].upper()}{note[1:]}.)"
    return answer


def with_breakdown_rows(answer: str, results: list[ToolResult]) -> str:
    """``answer`` with the rows of a metrics breakdown ("churn rate by contract": three rows;
    a longer one's first rows and how many there are) listed under it, as the tool's template
    gives them, when the answer does not state every row's figure: a model tends to name the
    top value and drop the rest, and the figures behind an answer belong under it (as the
    quotes behind a review answer do)."""
    from insight_agent.agent.router import render

    for result in results:
        facts = result.facts or {}
        if result.name != "query_metrics" or not facts.get("by"):
            continue
        rows = facts.get("rows") or []
        if len(rows) < 2:
            continue
        # the first rows and, for a longer breakdown, the line that says how many there are
        lines = [
            ln
            for ln in render(result.name, facts).splitlines()
            if ln.startswith("- ") or (ln.startswith("(") and "rows in all" in ln)
        ]
        missing = [ln for ln in lines if ln.startswith("- ") and _row_figure(ln) not in answer]
        if missing:
            answer = answer.rstrip() + "\n" + "\n".join(lines)
    return answer


def _row_figure(line: str) -> str:
    """The first figure of a rendered row ("- One year: churn_rate 11.3%" -> "11.3%")."""
    found = re.search(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?%?", line.split(":", 1)[-1])
    return found[0] if found else line


def turn_quotes(results: list[ToolResult], limit: int = QUOTES_SHOWN) -> list[dict[str, Any]]:
    """The first ``limit`` review quotes this turn's quoting tools (``ToolSpec.shows_quotes``)
    returned (each review once), verbatim and unmasked: the evidence shown under the answer."""
    quotes: list[dict[str, Any]] = []
    seen: set[str] = set()
    for result in results:
        if not result.facts or not get_tool(result.name).shows_quotes:
            continue
        for quote in result.facts.get("quotes") or []:
            rid = str(quote.get("review_id"))
            if rid in seen or len(quotes) >= limit:
                continue
            seen.add(rid)
            quotes.append({k: quote[k] for k in _QUOTE_FIELDS if quote.get(k) is not None})
    return quotes


TABLE_ROWS_SHOWN = 10
TABLE_COLUMNS_SHOWN = 6


def turn_table(
    tool_calls: list[dict[str, Any]], rows: int = TABLE_ROWS_SHOWN
) -> dict[str, Any] | None:
    """The figures behind the answer, printed under it: the first table (a list of records) of
    this turn's first successful result that has one, as ``{"tool", "name", "columns",
    "rows", "total"}`` (``rows`` as text, at most ``rows`` of them and
    :data:`TABLE_COLUMNS_SHOWN` scalar columns). The model reads a few rows of it (its view
    is ~125 tokens); the user sees the list. None after a review search (its quotes are
    shown instead) or when no result has a table. ``tool_calls`` as in :class:`TurnResult`."""
    from insight_agent.agent.compact import is_table

    for call in tool_calls:
        facts = call.get("result")
        if call.get("error") or not isinstance(facts, dict) or get_tool(call["tool"]).shows_quotes:
            continue
        for name, value in facts.items():
            if not is_table(value):
                continue
            columns = [
                k
                for k in dict.fromkeys(k for record in value for k in record)
                if all(not isinstance(r.get(k), list | dict) for r in value)
            ][:TABLE_COLUMNS_SHOWN]
            shown = [
                ["" if r.get(c) is None else _cell(r[c]) for c in columns] for r in value[:rows]
            ]
            return {
                "tool": call["tool"],
                "name": name,
                "columns": columns,
                "rows": shown,
                "total": len(value),
            }
    return None


def _cell(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1000:
        return f"{value:,}"
    return str(value)


def quote_line(quote: dict[str, Any]) -> str:
    """One quote as a line of text: ``"text" [R000173] 2★ · Lapsing customers · 2026-03-02``."""
    meta = []
    if quote.get("rating") is not None:
        meta.append(f"{float(quote['rating']):.0f}★")
    meta += [str(quote[k]) for k in ("segment", "date") if quote.get(k)]
    line = f'"{quote["text"]}" [{quote["review_id"]}]'
    return f"{line} {' · '.join(meta)}" if meta else line


def _text_of(message: Any) -> str:
    """A user or assistant message's text ("" for tool calls and results)."""
    from langchain_core.messages import AIMessage, HumanMessage

    if isinstance(message, HumanMessage | AIMessage) and isinstance(message.content, str):
        return message.content
    return ""


def _is_fix(message: Any) -> bool:
    content = getattr(message, "content", "")
    return isinstance(content, str) and content.startswith(
        (FIX_REQUEST.split("{", 1)[0], MEANING_FIX.split("{", 1)[0])
    )


# What LangChain's ModelCallLimitMiddleware puts in the model's place when the step limit is
# reached (exit_behavior "end"): a message for developers, not an answer.
_STEP_LIMIT_TEXT = "Model call limits exceeded"


def _last_text(messages: list[Any]) -> str:
    from langchain_core.messages import AIMessage

    for message in reversed(messages):
        if isinstance(message, AIMessage) and not message.tool_calls:
            text = message.text if isinstance(message.text, str) else str(message.content)
            if text.strip().startswith(_STEP_LIMIT_TEXT):
                return ""
            if text.strip():
                return text.strip()
    return ""


def _hit_length_limit(messages: list[Any]) -> bool:
    """Whether the last model reply stopped at its token limit."""
    from langchain_core.messages import AIMessage

    for message in reversed(messages):
        if isinstance(message, AIMessage):
            return (message.response_metadata or {}).get("finish_reason") == "length"
    return False


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”)\]]*(?=\s)|\n")


def _whole_sentences(text: str) -> str:
    """``text`` up to its last sentence end or line break (all of it, plus an ellipsis,
    when there is none)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if not ends:
        return text.rstrip() + "…"
    return text[: ends[-1]].rstrip()


def _usage(messages: list[Any]) -> dict[str, int]:
    tokens = {"input": 0, "output": 0}
    for message in messages:
        usage = getattr(message, "usage_metadata", None) or {}
        tokens["input"] += int(usage.get("input_tokens", 0))
        tokens["output"] += int(usage.get("output_tokens", 0))
    return tokens


def _endpoint(chat_model: Any) -> str | None:
    url = getattr(chat_model, "openai_api_base", None) or getattr(chat_model, "base_url", None)
    return str(url) if url else None


def _known_pii(ctx: ToolContext) -> dict[str, Any]:
    """Customer ids (from the current build) and names (from the customers file, when it has
    a name column) for the redactor."""
    known: dict[str, Any] = {}
    try:
        from insight_agent.analytics.queries import customer_table

        known["known_ids"] = [str(i) for i in customer_table(ctx.ws).index]
    except Exception:  # no build: ids are masked by pattern only
        known["known_ids"] = []
    known["known_names"] = _customer_names(ctx)
    return known


def _customer_names(ctx: ToolContext) -> list[str]:
    source = ctx.ws.settings.data.tables.get("customers")
    if source is None:
        return []
    try:
        from insight_agent.data.sources import open_table

        frame = open_table(source, "customers").read().frame
    except Exception:  # unreadable here means the build failed too; masking falls back
        return []
    from insight_agent.agent.redaction import names_in_table

    return names_in_table(frame)  # any name-like header: "First Name", "Contact", ...


class _Unmasker:
    """Streams text to the UI, restoring placeholders that may be split across chunks."""

    def __init__(self, unmask: Callable[[str], str] | None, on_event: Event) -> None:
        self.unmask = unmask
        self.on_event = on_event
        self.pending = ""

    def feed(self, text: str) -> None:
        if self.unmask is None:
            self.on_event("token", text)
            return
        self.pending += text
        cut = self.pending.rfind("<")
        if cut != -1 and ">" not in self.pending[cut:]:
            ready, self.pending = self.pending[:cut], self.pending[cut:]
        else:
            ready, self.pending = self.pending, ""
        if ready:
            self.on_event("token", self.unmask(ready))

    def flush(self) -> None:
        if self.pending:
            self.on_event("token", self.unmask(self.pending) if self.unmask else self.pending)
            self.pending = ""


def open_session(
    ws: Any,
    *,
    llm: str | None = None,
    model: str | None = None,
    model_path: Path | None = None,
    options: SessionOptions | None = None,
    confirm: Callable[[str], bool] | None = None,
    on_event: Event | None = None,
    chat_model: Any = None,
) -> AgentSession:
    """A session for a workspace with the provider the user asked for (or auto-detected).

    ``chat_model`` overrides the provider's model (tests pass a scripted one).
    """
    from insight_agent.agent.llm import choose_provider, make_chat_model
    from insight_agent.agent.router import use_model_cache
    from insight_agent.vectorstore.embedder import model_cache_dir

    use_model_cache(model_cache_dir(ws.artifacts))  # one embedder for routing and search
    choice = choose_provider(ws.settings, llm)
    if chat_model is None:
        chat_model = make_chat_model(choice, ws.settings, model=model, model_path=model_path)
    options = options or SessionOptions()
    if options.mask_pii is None:
        options.mask_pii = ws.settings.llm.mask_pii
    ctx = ToolContext(ws, confirm=confirm or (lambda prompt: False))
    return AgentSession(ctx, choice, chat_model=chat_model, options=options, on_event=on_event)
