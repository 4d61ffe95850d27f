"""Hosted endpoints (``--llm openai``) against the stub server on 127.0.0.1: replies that are not
chat completions, slow endpoints, and PII that must never leave the machine. No network."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from insight_agent.agent.llm import MalformedReply, ProviderChoice, ProviderError, make_chat_model
from insight_agent.agent.session import SessionOptions, open_session
from insight_agent.cli import app
from insight_agent.config import LLMSettings, Settings
from insight_agent.data.bootstrap import open_workspace
from tests.stub_openai import MALFORMED, StubOpenAI, call, malformed, reply, slow

WHAT_WAS_WRONG = {
    "body": "not valid JSON",
    "arguments": "arguments are not a JSON object",
    "choices": "without choices",
}


def hosted_model(stub: StubOpenAI, monkeypatch, *, timeout: float = 5.0, retries: int = 0):
    monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    settings = Settings(root=Path("."))
    settings.llm.timeout, settings.llm.max_retries = timeout, retries
    return make_chat_model(ProviderChoice("openai", "test"), settings, model="stub-model")


def hosted_session(ws, stub: StubOpenAI, monkeypatch, *, timeout=5.0, retries=0, notes=None):
    monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    ws.settings.llm.timeout, ws.settings.llm.max_retries = timeout, retries

    def on_event(kind: str, payload: Any) -> None:
        if kind == "status" and notes is not None:
            notes.append(payload)

    return open_session(
        ws,
        llm="openai",
        model="stub-model",
        options=SessionOptions(transcript=False),
        on_event=on_event,
    )


@pytest.fixture
def ws(built_demo: Path):
    return open_workspace(built_demo)


# --- replies that are not chat completions ----------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_reply_is_a_one_line_provider_error(kind, stream, monkeypatch):
    with StubOpenAI([malformed(kind)]) as stub:
        model = hosted_model(stub, monkeypatch)
        if kind == "arguments":
            model = model.bind_tools(
                [{"type": "function", "function": {"name": "list_segments", "parameters": {}}}]
            )
        with pytest.raises(MalformedReply) as caught:
            if stream:
                list(model.stream("How many segments?"))
            else:
                model.invoke("How many segments?")
    error = caught.value
    assert isinstance(error, ProviderError) and error.exit_code == 3
    assert "\n" not in error.message and error.hint
    assert error.message.startswith(stub.url)  # which endpoint
    assert WHAT_WAS_WRONG[kind] in error.message  # and what was wrong
    assert len(stub.requests) == 1  # a malformed reply is not retried


@pytest.mark.parametrize("kind", MALFORMED)
def test_after_a_malformed_reply_the_next_turn_works(ws, kind, monkeypatch):
    script = [malformed(kind), call("list_segments"), reply("There are 6 segments.")]
    with StubOpenAI(script) as stub:
        session = hosted_session(ws, stub, monkeypatch)
        with pytest.raises(MalformedReply, match=WHAT_WAS_WRONG[kind]):
            session.ask("How many segments?")
        assert session.history == []  # the failed turn left nothing behind
        result = session.ask("How many segments?")
    assert result.answer.startswith("There are 6 segments")
    assert [c["tool"] for c in result.tool_calls] == ["list_segments"]


def test_chat_reports_a_malformed_reply_in_one_line_and_goes_on(built_demo, monkeypatch):
    script = [malformed("body"), call("list_segments"), reply("There are 6 segments.")]
    with StubOpenAI(script) as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        result = CliRunner().invoke(
            app,
            ["chat", "--llm", "openai", "-w", str(built_demo)],
            input="How many segments?\nHow many segments?\n/quit\n",
        )
    assert result.exit_code == 0, result.output
    assert "sent a reply that is not valid JSON" in result.output
    assert "There are 6 segments." in result.output  # the next turn answered
    assert "internal error" not in result.output and "Traceback" not in result.output


def test_ask_exits_3_on_a_malformed_reply(built_demo, monkeypatch):
    with StubOpenAI([malformed("choices")]) as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        result = CliRunner().invoke(
            app, ["ask", "How many segments?", "--llm", "openai", "-w", str(built_demo)]
        )
    assert result.exit_code == 3, result.output
    assert "sent a reply without choices" in result.output
    assert "internal error" not in result.output


# --- slow endpoints ------------------------------------------------------------------------


def test_default_timeout_and_retries_give_up_within_a_minute():
    llm = LLMSettings()
    assert llm.timeout * (llm.max_retries + 1) <= 60
    assert llm.max_retries >= 1  # one slow reply is retried


def test_a_slow_endpoint_is_retried_with_a_note_and_gives_up_in_bounded_time(ws, monkeypatch):
    notes: list[str] = []
    with StubOpenAI([slow(10.0)] * 3) as stub:
        session = hosted_session(ws, stub, monkeypatch, timeout=0.4, retries=2, notes=notes)
        start = time.perf_counter()
        with pytest.raises(ProviderError, match="did not answer in time") as caught:
            session.ask("How many segments?")
        elapsed = time.perf_counter() - start
    assert len(stub.requests) == 3  # the first try and two retries
    assert [n[-6:] for n in notes] == ["(2/3)…", "(3/3)…"]
    assert all(n.startswith("endpoint slow") and "0.4 s" in n for n in notes)
    assert "3 tries" in caught.value.message and "\n" not in caught.value.message
    # ~1.2 s of tries (they share (retries + 1) x timeout) plus the turn's own work; waiting
    # for the stub's replies would take 30 s
    assert elapsed < 8.0


def test_a_slow_reply_then_a_quick_one_answers_after_one_note(ws, monkeypatch):
    notes: list[str] = []
    script = [slow(5.0), call("list_segments"), reply("There are 6 segments.")]
    with StubOpenAI(script) as stub:
        session = hosted_session(ws, stub, monkeypatch, timeout=0.4, retries=2, notes=notes)
        result = session.ask("How many segments?")
    assert result.answer.startswith("There are 6 segments")
    assert len(notes) == 1 and "retrying (2/3)" in notes[0]


def test_chat_shows_the_retry_note(built_demo, monkeypatch):
    script = [slow(5.0), reply("Hello.")]
    with StubOpenAI(script) as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        import insight_agent.cli as cli

        real = cli._open

        def open_fast(*args: Any, **kwargs: Any):
            ws = real(*args, **kwargs)
            ws.settings.llm.timeout, ws.settings.llm.max_retries = 0.4, 1
            return ws

        monkeypatch.setattr(cli, "_open", open_fast)
        result = CliRunner().invoke(
            app,
            ["chat", "--llm", "openai", "-w", str(built_demo)],
            input="How many segments?\n/quit\n",
        )
    assert result.exit_code == 0, result.output
    assert "endpoint slow: no reply from 127.0.0.1" in result.output
    assert "retrying (2/2)" in result.output
    assert "Hello." in result.output


# --- PII never reaches the endpoint ----------------------------------------------------------

PLANTED = {
    "phone_uk": "+44 20 7946 0958",
    "phone_us": "(555) 123 4567",
    "phone_plain": "555 123 4567",
    "card": "4111 1111 1111 1111",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "address": "221B Baker Street",
}


@pytest.fixture
def pii_ws(built_demo: Path, tmp_path: Path):
    """The built demo with a customers file whose names are under "First Name" / "Last Name",
    and three reviews in the index full of PII (each short: the model reads 15 words of a
    quote), dated after all others so a date filter finds exactly them."""
    import pandas as pd

    root = tmp_path / "ws"
    shutil.copytree(built_demo, root)
    path = root / "data" / "customers.csv"
    customers = pd.read_csv(path, dtype=str)
    split = customers.pop("name").str.split(" ", n=1, expand=True)
    customers.insert(1, "First Name", split[0])
    customers.insert(2, "Last Name", split[1])
    customers.to_csv(path, index=False)
    first, last = customers.loc[0, "First Name"], customers.loc[0, "Last Name"]
    texts = [
        f"Refund to card {PLANTED['card']} never came. {first} {last}",
        f"Call {PLANTED['phone_uk']}, {PLANTED['phone_us']}, {PLANTED['phone_plain']} re refund",
        f"IBAN {PLANTED['iban']}, post the refund to {PLANTED['address']}",
    ]
    from insight_agent.vectorstore.store import open_index

    index = open_index(root / ".insight")
    index.collection.add(
        ids=[f"rv-pii-{i}" for i in range(len(texts))],
        documents=texts,
        metadatas=[
            {
                "review_id": f"R99999{i}",
                "customer_id": customers.loc[0, "customer_id"],
                "segment": "Lapsing customers",
                "rating": 1.0,
                "sentiment": "negative",
                "date": 20270115,
                "product": "",
                "category": "Home",
            }
            for i in range(len(texts))
        ],
    )
    # Planted straight into Chroma, not through an ingest: the opinion-unit table (which
    # answers searches alone in an embedded store) does not hold them, so search runs over
    # the collection without it.
    shutil.rmtree(root / ".insight" / "units")
    return open_workspace(root), first, last


def test_no_planted_pii_reaches_the_endpoint(pii_ws, monkeypatch):
    ws, first, last = pii_ws
    script = [
        call("search_reviews", query="refund", since="2027-01-01", k=5),
        reply("The reviews ask for a refund to <CARD_1>."),
    ]
    with StubOpenAI(script) as stub:
        session = hosted_session(ws, stub, monkeypatch)
        result = session.ask(f"What did {first} {last} say about the refund to their card?")
    quotes = result.tool_calls[0]["result"]["quotes"]
    assert {q["review_id"] for q in quotes} == {"R999990", "R999991", "R999992"}
    sent = stub.sent_text()
    for raw in [*PLANTED.values(), f"{first} {last}"]:
        assert raw not in sent, raw
    for word in (first, last):  # "Ward" may be in "Wardrobe"; the name alone may not
        assert not re.search(rf"\b{re.escape(word)}\b", sent), word
    for kind in ("CARD", "IBAN", "PHONE", "ADDRESS", "PERSON"):
        assert f"<{kind}_" in sent, kind  # what the model got instead
    # restored for display
    assert result.answer.startswith(f"The reviews ask for a refund to {PLANTED['card']}.")
