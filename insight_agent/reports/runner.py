"""Run a report spec: each section becomes document blocks; then Markdown, HTML and a manifest.

Reproducible by construction: tools are deterministic for a build, charts render to identical
bytes, and LLM answers are cached by a hash of everything that shapes them (provider, model,
prompt hashes, question or facts, build id, data fingerprint). Re-running on unchanged data and
models gives byte-identical Markdown and HTML; the manifest records what went in.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from insight_agent.reports.cache import AnswerCache, cache_key
from insight_agent.reports.spec import ReportSpec, Section
from insight_agent.tools.registry import ToolContext, call_tool

Progress = Callable[[int, int, str], None]  # (done, total, label)


@dataclass
class ReportRun:
    """The rendered report and what it was made from."""

    document: Any
    manifest: dict[str, Any]
    unverified: list[str] = field(default_factory=list)


def _build_info(ws: Any) -> dict[str, Any]:
    from insight_agent.analytics.queries import build_summary

    manifest = build_summary(ws)
    return {
        "build_id": manifest["build_id"],
        "data_fingerprint": manifest["data"]["fingerprint"],
        "data_up_to": manifest["data"]["cutoff"],
        "versions": manifest.get("versions", {}),
        "seed": manifest.get("options", {}).get("seed"),
        "models": {
            name: {"family": m.get("family"), "roc_auc": m.get("roc_auc")}
            for name, m in sorted(manifest.get("models", {}).items())
        },
    }


def _tools_hash() -> str:
    """What the model is shown of the tools, for the answer cache key: each tool's schema and
    description, the keys its compact view keeps, the view's size and format, and how the
    embedded model reads tools and starts an answer after a review search (a change to any
    of them re-asks the question)."""
    from insight_agent.agent.compact import VIEW_FORMAT
    from insight_agent.agent.local import TOOLS_PROMPT
    from insight_agent.agent.session import (
        LOCAL_TOOL_TOKENS,
        QUOTES_SHOWN,
        QUOTES_VIEW_TOKENS,
        REVIEWS_ANSWER_START,
    )
    from insight_agent.tools.registry import all_tools

    schema = [
        (
            t.name,
            t.description,
            t.summary,
            t.args.model_json_schema(),
            t.brief,
            t.shows_quotes,
            t.summarises_quotes,
        )
        for t in all_tools()
    ]
    shown = [
        TOOLS_PROMPT,
        REVIEWS_ANSWER_START,
        QUOTES_SHOWN,
        LOCAL_TOOL_TOKENS,
        QUOTES_VIEW_TOKENS,
        VIEW_FORMAT,
    ]
    return hashlib.sha256(json.dumps([schema, shown], sort_keys=True).encode()).hexdigest()[:16]


class _Runner:
    def __init__(
        self,
        ws: Any,
        spec: ReportSpec,
        *,
        llm: str | None,
        chat_model: Any,
        use_cache: bool,
    ) -> None:
        from insight_agent.agent.llm import choose_provider, make_chat_model

        self.ws = ws
        self.spec = spec
        self.ctx = ToolContext(ws)
        self.choice = choose_provider(ws.settings, llm or spec.llm)
        needs_llm = any(s.kind in {"question", "persona"} for s in spec.sections)
        self.chat_model = None
        if self.choice.name != "none" and needs_llm:
            self.chat_model = chat_model or make_chat_model(self.choice, ws.settings)
        self.cache = AnswerCache(ws.artifacts / "cache" / "llm", enabled=use_cache)
        self.build = _build_info(ws)
        self.session: Any = None
        self.unverified: list[str] = []
        self.prompts: dict[str, str] = {}

    @property
    def model_name(self) -> str | None:
        from insight_agent.agent.llm import model_name

        return model_name(self.chat_model)

    # --- sections ----------------------------------------------------------------------------

    def blocks(self, section: Section) -> list[Any]:
        from insight_agent.reports.document import Heading

        out: list[Any] = []
        if section.heading:
            out.append(Heading(section.heading, 2))
        out += getattr(self, f"_{section.kind}")(section)
        return out

    def _text(self, section: Section) -> list[Any]:
        from insight_agent.reports.document import Paragraph

        return [Paragraph(p.strip()) for p in section.value.strip().split("\n\n") if p.strip()]

    def _question(self, section: Section) -> list[Any]:
        from insight_agent.agent.session import SessionOptions, open_session
        from insight_agent.prompts import prompt_hash
        from insight_agent.reports.document import Callout, Heading, Paragraph, Quote

        self.prompts["system"] = prompt_hash("system")
        key = cache_key(
            "question",
            self.choice.name,
            self.model_name,
            self.prompts["system"],
            _tools_hash(),
            section.value,
            self.build["build_id"],
            self.build["data_fingerprint"],
        )
        turn = self.cache.get(key)
        if turn is None:
            if self.session is None:
                self.session = open_session(
                    self.ws,
                    llm=self.choice.name,
                    chat_model=self.chat_model,
                    options=SessionOptions(transcript=False),
                )
            self.session.reset()
            turn = self.session.ask(section.value).to_dict()
            turn.pop("timings", None)
            self.cache.put(key, turn)
        out: list[Any] = []
        if not section.heading:
            out.append(Heading(section.value, 2))
        answer = turn["answer"].partition("\n\nunverified:")[0]
        out += [Paragraph(p.strip()) for p in answer.strip().split("\n\n") if p.strip()]
        for q in turn.get("quotes") or []:  # the reviews behind the answer, verbatim
            meta = " · ".join(str(q[k]) for k in ("date", "segment") if q.get(k))
            out.append(Quote(q["text"], q["review_id"], meta or None))
        unverified = turn.get("grounding", {}).get("unverified", [])
        if unverified:
            self.unverified += unverified
            out.append(Callout(f"unverified: {', '.join(unverified)}", "warning"))
        tools = ", ".join(c["tool"] for c in turn.get("tool_calls", []))
        if tools:
            out.append(Callout(f"Source: {tools} (provider {turn['provider']})", "note"))
        return out

    def _tool(self, section: Section) -> list[Any]:
        from insight_agent.reports.document import Callout, Heading

        result = call_tool(self.ctx, section.value, section.options.get("args", {}))
        out: list[Any] = []
        if not section.heading:
            out.append(Heading(section.value.replace("_", " ").capitalize(), 2))
        if result.facts is None:
            return [*out, Callout(f"{section.value} failed: {result.error}", "warning")]
        return out + facts_blocks(result.facts, section.options.get("columns"))

    def _chart(self, section: Section) -> list[Any]:
        from insight_agent.reports import charts
        from insight_agent.reports.document import Chart

        kind = section.value
        if kind == "segment_sizes":
            facts = self._facts("list_segments", {})
            png = charts.segment_sizes_chart(facts["segments"])
            alt = "Share of customers and of revenue per segment"
        elif kind == "churn_risk":
            facts = self._facts("churn_risk_by_segment", {})
            png = charts.churn_risk_chart(facts["segments"])
            alt = f"Churn risk by segment; highest: {facts['highest_churn_segment']}"
        elif kind == "lift":
            from insight_agent.analytics.queries import model_card

            target = section.options.get("target", "churn")
            card = model_card(self.ws, target)
            png = charts.lift_chart(card["metrics"]["lift_by_decile"], target)
            alt = f"Lift by decile of the {target} model"
        elif kind == "clv_distribution":
            from insight_agent.analytics.queries import customer_table

            table = customer_table(self.ws)
            by_segment = {
                str(name): [float(v) for v in group["clv_12m"]]
                for name, group in table.groupby("segment_name", observed=True)
            }
            png = charts.clv_distribution_chart(
                [float(v) for v in table["clv_12m"]], dict(sorted(by_segment.items()))
            )
            alt = "Distribution of expected 12-month customer value"
        else:  # theme_shares
            shares = theme_shares(self.ws, section.options.get("segments"))
            png = charts.theme_shares_chart(shares)
            alt = "Share of each review theme by segment"
        return [Chart(png, alt, section.options.get("caption"))]

    def _metric(self, section: Section) -> list[Any]:
        """A metrics-layer query: headline, the rows as a table, a chart of the first
        measure (unless ``show_chart: false``) and what each measure means."""
        from insight_agent.reports import charts
        from insight_agent.reports.document import Callout, Chart, Paragraph, Table

        o = section.options
        args = {"measures": section.value, "by": o.get("by") or [], "where": o.get("where") or []}
        for key in ("period", "compare", "top"):
            if o.get(key) is not None:
                args[key] = o[key]
        result = call_tool(self.ctx, "query_metrics", args)
        if result.facts is None:
            return [Callout(f"metric {', '.join(section.value)} failed: {result.error}", "warning")]
        facts = result.facts
        out: list[Any] = [Paragraph(f"**{facts['headline']}**")] if facts.get("headline") else []
        if facts["rows"]:
            cols = list(facts["rows"][0])
            rows = [[_cell(r.get(c)) for c in cols] for r in facts["rows"]]
            out.append(Table([c.replace("_", " ") for c in cols], rows, None))
            if o.get("show_chart", True):
                png = charts.metric_chart(facts)
                alt = facts.get("headline") or ", ".join(section.value)
                out.append(Chart(png, alt, o.get("caption")))
        meanings = "; ".join(f"{m['name']}: {m['meaning']}" for m in facts["measures"])
        out.append(Paragraph(f"_{meanings}._"))
        return out

    def _persona(self, section: Section) -> list[Any]:
        from insight_agent.analytics.queries import segment_names

        if section.value.strip().lower() == "all":
            names = list(segment_names(self.ws).values())
        else:
            names = [section.value]
        out: list[Any] = []
        for name in names:
            persona = self.persona(name)
            out += persona_blocks(persona)
            self.unverified += persona.grounding.get("unverified", [])
        return out

    def persona(self, segment: str) -> Any:
        from insight_agent.prompts import prompt_hash
        from insight_agent.reports.persona import collect_facts, llm_persona, template_persona

        facts = collect_facts(self.ctx, segment)
        if self.chat_model is None:
            return template_persona(facts)
        self.prompts["persona"] = prompt_hash("persona")
        from insight_agent.agent.llm import masks_pii

        mask = masks_pii(self.choice, self.ws.settings.llm.mask_pii)
        return llm_persona(
            facts, self.chat_model, provider=self.choice.name, mask=mask, cache=self.cache
        )

    def _facts(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = call_tool(self.ctx, tool, args)
        if result.facts is None:
            from insight_agent.errors import InsightError

            raise InsightError(f"{tool}: {result.error}")
        return result.facts


def theme_shares(ws: Any, segments: list[str] | None = None) -> dict[str, dict[str, float]]:
    """segment → theme label → share of that segment's reviews, with themes fitted once over
    all reviews (so the shares are comparable across segments)."""
    from insight_agent.analytics.queries import resolve_segment, segment_names
    from insight_agent.vectorstore.queries import nonempty_index
    from insight_agent.vectorstore.themes import find_themes

    themes = find_themes(nonempty_index(ws))
    labels = [t["label"] for t in themes.themes]
    wanted = (
        [resolve_segment(ws, s)[1] for s in segments]
        if segments
        else sorted(segment_names(ws).values())
    )
    counts: dict[str, list[int]] = {name: [0] * len(labels) for name in wanted}
    for meta, theme in zip(themes.reviews.metadatas, themes.assignment, strict=True):
        segment = (meta or {}).get("segment")
        if segment in counts:
            counts[segment][int(theme)] += 1
    out: dict[str, dict[str, float]] = {}
    for name, row in counts.items():
        total = sum(row)
        if total:
            out[name] = {label: round(c / total, 3) for label, c in zip(labels, row, strict=True)}
    return out


def facts_blocks(facts: dict[str, Any], columns: list[str] | None = None) -> list[Any]:
    """Tool facts as blocks: headline scalars as key figures, the main list as a table."""
    from insight_agent.reports.document import KeyFigures, Paragraph, Quote, Table

    scalars = [
        (k.replace("_", " "), v)
        for k, v in facts.items()
        if isinstance(v, str | int | float)
        and not isinstance(v, bool)
        and k not in {"note", "headline"}
    ]
    blocks: list[Any] = []
    if facts.get("headline"):
        blocks.append(Paragraph(f"**{facts['headline']}**"))
    if scalars:
        blocks.append(KeyFigures(scalars[:6]))
    for key, value in facts.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            if "review_id" in value[0] and "text" in value[0]:  # quotes: verbatim, with ids
                for q in value:
                    meta = " · ".join(
                        str(q[k]) for k in ("date", "segment", "category") if q.get(k)
                    )
                    blocks.append(Quote(q["text"], q["review_id"], meta or None))
                break
            cols = columns or [
                c for c, v in value[0].items() if not isinstance(v, list | dict) and c != "text"
            ]
            rows = [[_cell(row.get(c)) for c in cols] for row in value]
            blocks.append(Table([c.replace("_", " ") for c in cols], rows, key.replace("_", " ")))
            break
    return blocks


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else value


def persona_blocks(persona: Any) -> list[Any]:
    """A persona as document blocks (quotes verbatim with their review ids)."""
    from insight_agent.reports.document import Callout, Heading, Paragraph, Quote

    blocks: list[Any] = [Heading(persona.name, 2)]
    if persona.name != persona.segment:
        blocks.append(Paragraph(f"*Segment: {persona.segment}*"))
    if persona.summary:
        blocks.append(Paragraph(persona.summary))
    for title, items in persona.sections.items():
        blocks.append(Heading(title, 3))
        blocks.append(Paragraph("\n".join(f"- {item}" for item in items)))
    if persona.quotes:
        blocks.append(Heading("In their words", 3))
        for q in persona.quotes:
            meta = f"{q['rating']:.0f}★" if q.get("rating") is not None else None
            blocks.append(Quote(q["text"], q["review_id"], meta))
    unverified = persona.grounding.get("unverified") or []
    if unverified:
        blocks.append(Callout(f"unverified: {', '.join(unverified)}", "warning"))
    return blocks


def run_report(
    ws: Any,
    spec: ReportSpec,
    *,
    llm: str | None = None,
    chat_model: Any = None,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> ReportRun:
    """Run every section of ``spec`` and assemble the document and its manifest."""
    from insight_agent import __version__
    from insight_agent.reports.document import Document

    runner = _Runner(ws, spec, llm=llm, chat_model=chat_model, use_cache=use_cache)
    blocks: list[Any] = []
    timings = []
    total = len(spec.sections)
    for i, section in enumerate(spec.sections):
        label = f"{section.kind}: {str(section.value).strip().splitlines()[0][:50]}"
        if progress:
            progress(i, total, label)
        start = time.perf_counter()
        blocks += runner.blocks(section)
        timings.append(
            {
                "section": i + 1,
                "line": section.line,
                "kind": section.kind,
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
    if progress:
        progress(total, total, "done")
    footer = (
        f"Insight {__version__} · build {runner.build['build_id']} · data up to "
        f"{runner.build['data_up_to']} · data fingerprint {runner.build['data_fingerprint'][:12]}"
        f" · answers by {runner.choice.name}"
        + (f" ({runner.model_name})" if runner.model_name else "")
    )
    document = Document(spec.title, spec.subtitle, blocks, footer)
    manifest = {
        "title": spec.title,
        "spec": {
            "path": str(spec.path),
            "sha256": hashlib.sha256(spec.text.encode("utf-8")).hexdigest(),
        },
        "insight_version": __version__,
        "workspace": ws.settings.name,
        "data": {
            "fingerprint": runner.build["data_fingerprint"],
            "up_to": runner.build["data_up_to"],
        },
        "build": {
            "id": runner.build["build_id"],
            "seed": runner.build["seed"],
            "versions": runner.build["versions"],
            "models": runner.build["models"],
        },
        "llm": {
            "provider": runner.choice.name,
            "reason": runner.choice.reason,
            "model": runner.model_name,
            "cache": {"hits": runner.cache.hits, "misses": runner.cache.misses},
        },
        "prompts": dict(sorted(runner.prompts.items())),
        "tools_schema": _tools_hash(),
        "sections": timings,
        "unverified": runner.unverified,
    }
    return ReportRun(document, manifest, list(runner.unverified))


def write_report(run: ReportRun, output: Path) -> dict[str, Path]:
    """Write OUT.html and OUT.md (whichever -o names, plus the other) and OUT.manifest.json."""
    from insight_agent.reports.render import render_html, render_markdown
    from insight_agent.workspace import atomic_write_text

    output = Path(output)
    stem = output.with_suffix("")
    html_path, md_path = stem.with_suffix(".html"), stem.with_suffix(".md")
    assets = stem.parent / f"{stem.name}_files"
    markdown, _ = render_markdown(run.document, assets, f"{stem.name}_files")  # writes PNGs
    atomic_write_text(md_path, markdown)
    atomic_write_text(html_path, render_html(run.document))
    manifest_path = stem.parent / f"{stem.name}.manifest.json"
    run.manifest["outputs"] = {
        "html": html_path.name,
        "markdown": md_path.name,
        "html_sha256": hashlib.sha256(html_path.read_bytes()).hexdigest(),
        "markdown_sha256": hashlib.sha256(md_path.read_bytes()).hexdigest(),
    }
    atomic_write_text(manifest_path, json.dumps(run.manifest, indent=2, sort_keys=True) + "\n")
    return {"html": html_path, "markdown": md_path, "manifest": manifest_path}
