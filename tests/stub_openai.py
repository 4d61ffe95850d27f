"""A stub OpenAI-compatible HTTP server on 127.0.0.1 for tests (no network).

It plays a script: each request to ``/v1/chat/completions`` takes the next step, which is
either a reply (text or tool calls, sent as JSON or as server-sent events when the client asks
to stream), a failure (an HTTP status, or a delay longer than the client's timeout) or a
malformed reply (:func:`malformed`: a body that is not JSON, tool-call arguments that are not
JSON, no ``choices``). Every request body is recorded, so tests can check exactly what would
have left the machine.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Step:
    """One scripted response."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "arguments"}
    status: int = 200
    delay: float = 0.0
    # "body": the reply is not JSON; "arguments": a tool call's arguments are not JSON;
    # "choices": the reply has no ``choices``. None: a well-formed reply.
    malformed: str | None = None


MALFORMED = ("body", "arguments", "choices")


def reply(text: str) -> Step:
    """A text answer."""
    return Step(text=text)


def call(name: str, **arguments: Any) -> Step:
    """A tool call."""
    return Step(tool_calls=[{"name": name, "arguments": arguments}])


def fail(status: int) -> Step:
    """An HTTP error response."""
    return Step(status=status)


def slow(delay: float, text: str = "late") -> Step:
    """A text answer sent after ``delay`` seconds (longer than the client's timeout: a
    timeout)."""
    return Step(text=text, delay=delay)


def malformed(kind: str) -> Step:
    """A reply an OpenAI-compatible server should never send (``kind`` in :data:`MALFORMED`)."""
    if kind not in MALFORMED:
        raise ValueError(f"malformed kind {kind!r}: one of {MALFORMED}")
    if kind == "arguments":
        return Step(tool_calls=[{"name": "list_segments", "arguments": {}}], malformed=kind)
    return Step(text="broken", malformed=kind)


class StubOpenAI:
    """Start with ``with StubOpenAI([...]) as stub:``; ``stub.url`` is the base URL (…/v1)."""

    def __init__(self, script: list[Step], key: str | None = "test-key") -> None:
        self.script = list(script)
        self.key = key
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                # the client may give up first (a timeout test): nothing to send then
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._post()

            def _post(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                stub.headers.append(dict(self.headers))
                if stub.key and self.headers.get("Authorization") != f"Bearer {stub.key}":
                    return self._json(401, {"error": {"message": "Incorrect API key provided"}})
                step = stub.script.pop(0) if stub.script else Step(text="(script ended)")
                if step.delay:
                    time.sleep(step.delay)
                if step.status != 200:
                    return self._json(step.status, {"error": {"message": f"HTTP {step.status}"}})
                if step.malformed == "body":
                    return self._raw(body, '{"id": "chatcmpl-stub", "choices": [{"index": 0, ')
                if body.get("stream"):
                    return self._sse(body, step)
                return self._json(200, _completion(body, step))

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def _raw(self, body: dict[str, Any], text: str) -> None:
                """``text`` as the whole reply (or as the one event of a stream)."""
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    self.wfile.write(f"data: {text}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
                data = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, body: dict[str, Any], step: Step) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in _chunks(body, step):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL for OPENAI_BASE_URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def sent_text(self) -> str:
        """Everything the client sent, as one string (for leak checks)."""
        return "\n".join(json.dumps(r, ensure_ascii=False) for r in self.requests)

    def __enter__(self) -> StubOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _tool_calls(step: Step) -> list[dict[str, Any]]:
    def arguments(c: dict[str, Any]) -> str:
        if step.malformed == "arguments":
            return "{'segment': S2, "  # Python-ish and cut off: not JSON
        return json.dumps(c["arguments"])

    return [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": c["name"], "arguments": arguments(c)},
        }
        for i, c in enumerate(step.tool_calls)
    ]


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


def _completion(body: dict[str, Any], step: Step) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.text}
    if step.tool_calls:
        message["tool_calls"] = _tool_calls(step)
    if step.malformed == "choices":
        return {"id": "chatcmpl-stub", "object": "chat.completion", "model": "stub"}
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "stub"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if step.tool_calls else "stop",
            }
        ],
        "usage": _usage(),
    }


def _chunks(body: dict[str, Any], step: Step) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0}
    base["model"] = body.get("model", "stub")
    if step.malformed == "choices":
        return [base]  # one event, no choices (and no usage)
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    if step.tool_calls:
        for i, tc in enumerate(_tool_calls(step)):
            deltas.append({"tool_calls": [{"index": i, **tc}]})
    else:
        words = (step.text or "").split(" ")
        deltas += [
            {"content": w + (" " if i < len(words) - 1 else "")} for i, w in enumerate(words)
        ]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
    ]
    finish = "tool_calls" if step.tool_calls else "stop"
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": _usage()})
    return chunks
