"""Smoke test with the real embedded model (Qwen2.5-Coder-1.5B via xllamacpp): three marketer
questions answered end to end through `insight ask`'s session — tool choice, tool run, a
worded answer whose figures are all verified. Slow (about two minutes on 2 cores: the first
question reads the system prompt and tool schemas once; later ones reuse the KV cache)."""

from __future__ import annotations

from pathlib import Path

import pytest

from insight_agent.agent.llm import local_runtime_installed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not local_runtime_installed(), reason="the `local` extra is not installed"),
]

QUESTIONS = [
    ("Which segment is most likely to churn?", "churn_risk_by_segment", "lapsing"),
    ("Which segment brings in the most revenue?", "list_segments", "high-value loyal"),
    ("What do customers say about late delivery?", "search_reviews", None),
]


def test_embedded_model_answers_three_questions(built_demo: Path):
    from insight_agent.agent.session import SessionOptions, open_session
    from insight_agent.data.bootstrap import open_workspace

    session = open_session(
        open_workspace(built_demo), llm="local", options=SessionOptions(transcript=False)
    )
    for question, tool, fact in QUESTIONS:
        session.reset()
        result = session.ask(question)
        assert result.provider == "local" and result.model
        assert [c["tool"] for c in result.tool_calls][:1] == [tool], result.tool_calls
        assert result.tool_calls[0]["error"] is None
        # a long list of quotes may reach the 120-token answer cap (cut at a sentence): fine
        assert result.answer.strip(), result
        assert all(
            n == "answer cut at the length limit" or n.startswith("ignored filters")
            for n in result.notes
        ), result
        if tool == "search_reviews":  # the quotes behind the answer, verbatim, with ids
            assert result.quotes and all(q["review_id"] and q["text"] for q in result.quotes)
            assert result.answer.startswith("In short, these reviews"), result.answer
        # every figure is verified or flagged; on these questions none should need a flag
        assert result.grounding["unverified"] == [], result.answer
        if fact:
            assert fact in result.answer.lower(), result.answer
        assert result.tokens["output"] > 0
