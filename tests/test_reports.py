"""Personas and scripted reports on the built demo workspace: spec errors with line numbers,
grounded and distinguishable personas, Markdown + HTML + manifest, byte-identical re-runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from typer.testing import CliRunner

from insight_agent.cli import app
from insight_agent.data.bootstrap import open_workspace
from insight_agent.reports.spec import SpecError, load_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "reports"


class Scripted(FakeMessagesListChatModel):
    """Plays back replies (used for report questions and LLM personas)."""

    def bind_tools(self, tools, **kwargs):
        return self


@pytest.fixture
def ws_copy(built_demo: Path, tmp_path: Path):
    """A private copy (reports write a cache under .insight/)."""
    root = tmp_path / "ws"
    shutil.copytree(built_demo, root)
    return open_workspace(root)


# --- spec validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("title: x\nsections:\n  - question: ok\n  - tool: nope\n", 4, "unknown tool 'nope'"),
        ("title: x\nsections:\n  - chart: pie\n", 3, "unknown chart 'pie'"),
        ("title: x\nsections:\n  - tool: top_customers\n    args: {n: 0}\n", 4, "n:"),
        ("title: x\nsections:\n  - question: a\n    tool: list_segments\n", 3, "exactly one"),
        ("title: x\nsections:\n  - persona: all\n    colour: red\n", 4, "unknown key 'colour'"),
        ("title: x\nsections: []\n", 2, "non-empty list"),
        ("sections:\n  - text: hi\n", 1, "missing 'title'"),
        ("title: x\nsections:\n  - question: [unclosed\n", 4, "invalid YAML"),
        ("title: x\nllm: gpt\nsections:\n  - text: a\n", 2, "unknown llm"),
        ("title: x\nsections:\n  - tool: export_audience\n", 3, "writes files"),
    ],
)
def test_spec_errors_name_the_line(tmp_path, text, line, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert f"spec.yaml:{line}:" in err.value.message
    assert message in err.value.message


def test_every_example_spec_is_valid():
    specs = sorted(EXAMPLES.glob("*.yaml"))
    assert len(specs) >= 3
    for spec in specs:
        assert load_spec(spec).sections


def test_bad_spec_fails_before_any_work_via_cli(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("title: x\nsections:\n  - chart: pie\n")
    # no workspace at all: the spec error comes first
    result = CliRunner().invoke(app, ["report", str(spec), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "bad.yaml:3: section 1: unknown chart 'pie'" in result.output


# --- personas ----------------------------------------------------------------------------------


def _sentences(text: str) -> set[str]:
    body = re.sub(r"^#.*$", "", text, flags=re.M)
    parts = re.split(r"(?<=[.!?])\s+|\n+", body)
    return {p.strip(" -*>").lower() for p in parts if len(p.strip(" -*>")) > 20}


def test_template_personas_are_grounded_and_distinguishable(ws_copy):
    from insight_agent.reports.persona import make_personas, persona_markdown

    personas = make_personas(ws_copy, llm="none")
    assert len(personas) == 6
    for p in personas:
        assert p.grounding["unverified"] == [], (p.name, p.grounding["unverified"])
        assert 3 <= len(p.quotes) <= 5
        assert all(q["review_id"].startswith("R") for q in p.quotes)
    texts = [persona_markdown(p) for p in personas]
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            a, b = _sentences(texts[i]), _sentences(texts[j])
            shared = len(a & b) / max(1, min(len(a), len(b)))
            assert shared <= 0.2, (personas[i].name, personas[j].name, a & b)


def test_persona_quotes_are_verbatim_from_the_index(ws_copy):
    from insight_agent.reports.persona import make_personas
    from insight_agent.vectorstore.store import open_index

    persona = make_personas(ws_copy, ["Lapsing customers"], llm="none")[0]
    index = open_index(ws_copy.artifacts)
    for quote in persona.quotes:
        got = index.collection.get(where={"review_id": quote["review_id"]}, include=["documents"])
        assert got["documents"] == [quote["text"]]


def test_llm_persona_flags_invented_figures_and_keeps_quotes_ours(ws_copy):
    from insight_agent.reports.persona import make_personas

    written = (
        "## Name\nThe Drifting Regular\n## Summary\nOnce frequent, now quiet.\n"
        "## Who they are\n- 1,096 customers, 21.9% of all customers.\n- Median age 77.\n"
        "## What they buy and when\n- Mostly Footwear.\n## Goals and motivations\n- Value.\n"
        "## Pain points\n- Late delivery.\n## Channels\n- No data.\n"
        "## Messaging do's\n- Apologise for delivery.\n## Messaging don'ts\n- No hard sell.\n"
    )
    model = Scripted(responses=[AIMessage(written)])
    persona = make_personas(ws_copy, ["Lapsing customers"], llm="local", chat_model=model)[0]
    assert persona.name == "The Drifting Regular"
    assert persona.grounding["unverified"] == ["77"]  # 1,096 and 21.9% are real facts
    assert persona.quotes
    # the model wrote "No data." for Channels: the data card's facts stand in
    from insight_agent.reports.persona import template_persona

    assert persona.sections["Channels"] == template_persona(persona.facts).sections["Channels"]
    assert persona.sections["Who they are"][0].startswith("1,096 customers")


def test_persona_cli_formats(built_demo, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app, ["persona", "S2", "--llm", "none", "--format", "json", "-w", str(built_demo)]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["segment"] == "Lapsing customers" and payload["quotes"]
    out = tmp_path / "personas.html"
    result = runner.invoke(
        app,
        ["persona", "--all", "--llm", "none", "-f", "html", "-o", str(out), "-w", str(built_demo)],
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<h2") >= 6


# --- reports -----------------------------------------------------------------------------------


def _report(ws, spec: Path, out: Path, **kw):
    from insight_agent.reports.runner import run_report, write_report
    from insight_agent.reports.spec import load_spec

    run = run_report(ws, load_spec(spec), **kw)
    return run, write_report(run, out)


def test_report_with_no_llm_renders_md_html_and_manifest(ws_copy, tmp_path):
    _, paths = _report(
        ws_copy, EXAMPLES / "weekly-churn-review.yaml", tmp_path / "r.html", llm="none"
    )
    html = paths["html"].read_text()
    md = paths["markdown"].read_text()
    assert "Weekly churn review" in html and "data:image/png;base64," in html
    assert "Lapsing customers" in md and "](r_files/" in md
    assert list((tmp_path / "r_files").glob("*.png"))
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["llm"]["provider"] == "none"
    assert len(manifest["data"]["fingerprint"]) == 64 and manifest["build"]["id"]
    assert manifest["build"]["models"]["churn"]["roc_auc"] > 0.7
    assert [s["kind"] for s in manifest["sections"]][:3] == ["text", "question", "chart"]


def test_unchanged_rerun_is_byte_identical_with_a_scripted_model(ws_copy, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "title: Churn\nsections:\n"
        "  - question: Which segment is most likely to churn?\n"
        "  - chart: segment_sizes\n"
        "  - persona: Lapsing customers\n"
    )
    persona = (
        "## Name\nThe Drifting Regular\n## Summary\nOnce frequent, now quiet.\n"
        "## Who they are\n- 1,096 customers.\n"
    )
    first_model = Scripted(
        responses=[
            AIMessage("", tool_calls=[{"name": "churn_risk_by_segment", "args": {}, "id": "c1"}]),
            AIMessage("Lapsing customers: mean churn probability 0.97."),
            AIMessage(persona),
        ]
    )
    run1, paths1 = _report(
        ws_copy, spec, tmp_path / "one.html", llm="local", chat_model=first_model
    )
    assert run1.manifest["llm"]["cache"]["misses"] == 2
    # second run: a model that would answer differently, but the cache answers
    other = Scripted(responses=[AIMessage("something else entirely 42")])
    run2, paths2 = _report(ws_copy, spec, tmp_path / "two.html", llm="local", chat_model=other)
    assert run2.manifest["llm"]["cache"]["hits"] == 2
    assert paths1["html"].read_bytes() == paths2["html"].read_bytes()
    assert (
        paths1["markdown"].read_text().replace("one_files", "two_files")
        == paths2["markdown"].read_text()
    )
    assert "0.97" in paths1["markdown"].read_text()
    assert "The Drifting Regular" in paths1["html"].read_text()


def test_no_llm_rerun_is_byte_identical_via_cli(built_demo, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(built_demo, root)
    runner = CliRunner()
    outs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.html"
        result = runner.invoke(
            app,
            [
                "report",
                str(EXAMPLES / "voice-of-the-customer.yaml"),
                "-o",
                str(out),
                "--llm",
                "none",
                "-w",
                str(root),
            ],
        )
        assert result.exit_code == 0, result.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_answer_cache_key_follows_what_the_model_is_shown(monkeypatch):
    """A cached LLM answer is reused only while the tools look the same to the model: their
    schemas, the keys their compact views keep, the signatures frame and the answer start."""
    import dataclasses

    from insight_agent.agent import session
    from insight_agent.reports import runner
    from insight_agent.tools import registry

    before = runner._tools_hash()
    assert runner._tools_hash() == before  # deterministic
    monkeypatch.setattr(session, "REVIEWS_ANSWER_START", "To sum up, these reviews")
    assert runner._tools_hash() != before
    monkeypatch.undo()
    specs = registry.all_tools()
    changed = [dataclasses.replace(specs[0], brief=(*specs[0].brief, "extra")), *specs[1:]]
    monkeypatch.setattr(registry, "all_tools", lambda: changed)
    assert runner._tools_hash() != before
