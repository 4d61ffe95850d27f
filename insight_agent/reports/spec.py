"""Report specs: a YAML file of sections, validated with line numbers before any work starts.

```yaml
title: Weekly churn review            # required
subtitle: Demo workspace              # optional
llm: none                             # optional: local | openai | none (default: auto)
sections:
  - text: |                           # free Markdown
      What changed this week.
  - heading: Who is at risk           # any section may carry a heading
    question: Which segments are most likely to churn?   # asked to the agent
  - tool: churn_risk_by_segment       # a named tool call, rendered as a table
    args: {}
  - chart: churn_risk                 # segment_sizes | churn_risk | lift | clv_distribution
    target: churn                     #   | theme_shares  (lift: target; theme_shares: segments)
  - persona: Lapsing customers        # a segment persona, or "all"
  - metric: revenue                   # a metrics-layer table + chart (insight metrics)
    by: month                         #   by, period, compare, where, top, show_chart
    period: last 12 months
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from insight_agent.errors import ConfigError

SECTION_KINDS = ("text", "question", "tool", "chart", "persona", "metric")
CHARTS = ("segment_sizes", "churn_risk", "lift", "clv_distribution", "theme_shares")
PROVIDERS = ("auto", "local", "openai", "none")
_ALLOWED = {
    "text": {"text", "heading"},
    "question": {"question", "heading"},
    "tool": {"tool", "args", "heading", "columns"},
    "chart": {"chart", "heading", "target", "segments", "caption"},
    "persona": {"persona", "heading"},
    "metric": {
        "metric",
        "heading",
        "by",
        "period",
        "compare",
        "where",
        "top",
        "show_chart",
        "caption",
    },
}


@dataclass
class Section:
    """One validated section: its kind, its main value and options, and where it was written."""

    kind: str
    value: Any
    line: int
    heading: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportSpec:
    """A validated report spec."""

    path: Path
    title: str
    subtitle: str | None
    llm: str | None
    sections: list[Section]
    text: str  # the spec file as read (hashed into the manifest)


class SpecError(ConfigError):
    """A spec problem, naming the file and line."""

    exit_code = 2


def _err(path: Path, node: Any, message: str, hint: str | None = None) -> SpecError:
    line = node.start_mark.line + 1 if node is not None else 1
    return SpecError(f"{path}:{line}: {message}", hint=hint)


def _scalar(path: Path, node: Any, what: str) -> str:
    import yaml

    if not isinstance(node, yaml.ScalarNode) or node.value == "":
        raise _err(path, node, f"{what} must be text")
    return str(node.value)


def _mapping(node: Any) -> dict[str, tuple[Any, Any]]:
    return {k.value: (k, v) for k, v in node.value}


def load_spec(path: Path) -> ReportSpec:
    """Read and validate a spec; every problem names the file and line."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SpecError(f"no report spec at {path}", hint="see examples/reports/ for specs")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    try:
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise SpecError(f"{path}:{line}: invalid YAML: {exc.problem or exc.context}") from exc
    if root is None or not isinstance(root, yaml.MappingNode):
        raise _err(path, root, "a report spec is a mapping with title and sections")
    top = _mapping(root)
    for key, (knode, _) in top.items():
        if key not in {"title", "subtitle", "llm", "sections"}:
            raise _err(
                path, knode, f"unknown key '{key}'", hint="keys: title, subtitle, llm, sections"
            )
    if "title" not in top:
        raise _err(path, root, "missing 'title'")
    title = _scalar(path, top["title"][1], "title")
    subtitle = _scalar(path, top["subtitle"][1], "subtitle") if "subtitle" in top else None
    llm = None
    if "llm" in top:
        llm = _scalar(path, top["llm"][1], "llm")
        if llm not in PROVIDERS:
            raise _err(path, top["llm"][1], f"unknown llm '{llm}'", hint="local, openai or none")
    if "sections" not in top:
        raise _err(path, root, "missing 'sections' (a list of sections)")
    seq = top["sections"][1]
    if not isinstance(seq, yaml.SequenceNode) or not seq.value:
        raise _err(path, seq, "'sections' must be a non-empty list")
    sections = [_section(path, i + 1, node) for i, node in enumerate(seq.value)]
    return ReportSpec(path, title, subtitle, llm, sections, text)


def _section(path: Path, number: int, node: Any) -> Section:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise _err(path, node, f"section {number} must be a mapping like 'question: ...'")
    fields = _mapping(node)
    kinds = [k for k in SECTION_KINDS if k in fields]
    if len(kinds) != 1:
        found = ", ".join(kinds) or "none"
        raise _err(
            path,
            node,
            f"section {number} needs exactly one of {', '.join(SECTION_KINDS)} (found {found})",
        )
    kind = kinds[0]
    for key, (knode, _) in fields.items():
        if key not in _ALLOWED[kind]:
            allowed = ", ".join(sorted(_ALLOWED[kind]))
            raise _err(path, knode, f"section {number} ({kind}): unknown key '{key}'", f"{allowed}")
    data = yaml.safe_load(yaml.serialize(node))
    line = node.start_mark.line + 1
    heading = data.get("heading")
    if heading is not None and not isinstance(heading, str):
        raise _err(path, fields["heading"][1], f"section {number}: heading must be text")
    value = data[kind]
    vnode = fields[kind][1]
    options = {k: v for k, v in data.items() if k not in {kind, "heading"}}
    if kind in {"text", "question", "persona"} and (
        not isinstance(value, str) or not value.strip()
    ):
        raise _err(path, vnode, f"section {number} ({kind}) must be non-empty text")
    if kind == "tool":
        from insight_agent.tools.registry import all_tools

        names = [t.name for t in all_tools()]
        if value not in names:
            raise _err(
                path,
                vnode,
                f"section {number}: unknown tool '{value}'",
                "tools: " + ", ".join(names),
            )
        args = options.get("args", {}) or {}
        if not isinstance(args, dict):
            raise _err(path, fields["args"][1], f"section {number}: args must be a mapping")
        spec = next(t for t in all_tools() if t.name == value)
        if spec.writes:
            raise _err(path, vnode, f"section {number}: {value} writes files; not in reports")
        from pydantic import ValidationError

        try:
            spec.args.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in exc.errors()
            )
            where = fields["args"][1] if "args" in fields else vnode
            raise _err(path, where, f"section {number} ({value}): {problems}") from exc
        options["args"] = args
    if kind == "metric":
        measures = [value] if isinstance(value, str) else value
        if (
            not isinstance(measures, list)
            or not measures
            or not all(isinstance(m, str) and m.strip() for m in measures)
        ):
            raise _err(path, vnode, f"section {number}: metric must be a measure or a list")
        for key in ("by", "where"):
            got = options.get(key)
            if isinstance(got, str):
                options[key] = [got]
            elif got is not None and not (
                isinstance(got, list) and all(isinstance(v, str) for v in got)
            ):
                raise _err(path, fields[key][1], f"section {number}: {key} must be text or a list")
        if options.get("compare") not in (None, "previous", "year"):
            raise _err(path, fields["compare"][1], "compare must be previous or year")
        value = measures
    if kind == "chart":
        if value not in CHARTS:
            raise _err(
                path,
                vnode,
                f"section {number}: unknown chart '{value}'",
                "charts: " + ", ".join(CHARTS),
            )
        if value == "theme_shares":
            segs = options.get("segments")
            if segs is not None and (
                not isinstance(segs, list) or not all(isinstance(s, str) for s in segs)
            ):
                raise _err(path, fields["segments"][1], "segments must be a list of names")
    return Section(kind, value, line, heading, options)
