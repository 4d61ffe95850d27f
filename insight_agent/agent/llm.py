"""The one boundary between Insight and language models.

It decides *which* provider a command uses (``--llm``, insight.toml, or auto-detection) and
builds the LangChain chat model for it: the embedded local model (:mod:`.local`), any
OpenAI-compatible endpoint, or none (the deterministic router in :mod:`.router` answers).

Hosted endpoints go through :class:`HostedChatModel`, which owns retries and turns every way an
endpoint can fail (a wrong key, a timeout, a reply that is not an OpenAI chat completion) into a
:class:`ProviderError`: one line saying what went wrong where, and a hint how to fix it. A chat
reports it and goes on; ``ask`` exits with code 3.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from insight_agent.config import LLM_PROVIDERS, Settings
from insight_agent.errors import ConfigError

LOCAL_RUNTIME = "xllamacpp"


@dataclass(frozen=True)
class ProviderProfile:
    """What a session needs to know about one provider, in one place (in the spirit of
    pydantic-ai's ModelProfile): how much of a tool result it reads and in which form,
    whether PII is masked by default, its answer cap, whether unasked filters are dropped and
    the tools shortlisted on a user turn, and how its chat model is prepared for a session.
    The session never asks "is it local?"; a new provider registers a profile."""

    name: str
    tool_tokens: int = 1200  # cap on one tool result as the model sees it
    view_format: str = "json"  # "json" or "compact" (agent/compact.py)
    mask_pii: bool = False  # default when llm.mask_pii / --mask-pii is not given
    answer_tokens: int | None = None  # longest answer (None: the provider's own limit)
    keeps_unasked_filters: bool = True  # False: drop filters the user's words never asked for
    shortlists_tools: bool = False  # the router narrows the tools on a user turn
    # On a decisive cue the router's call (tool and arguments) is the model's first reply:
    # the model only words the answer (a 1.5B model lost counts, ratings and measures)
    takes_decisive_routes: bool = False
    answer_after_result: bool = False  # one tool, then the answer
    # The answer after a result starts with the result's headline, read rather than written:
    # the 1.5B model otherwise left out what it says (a persona without the segment's size,
    # "The main themes in reviews with their shares." with no theme) or miscopied its figures
    answer_starts_with_headline: bool = False
    reads_tool_summaries: bool = False  # short tool docs instead of full descriptions

    def prepare(
        self,
        chat_model: Any,
        *,
        answer_tokens: int | None,
        summaries: dict[str, str],
        prefills: dict[str, str],
        on_status: Callable[[str], None],
    ) -> Any:
        """A session's copy of ``chat_model`` set up for this provider (the caller's model,
        e.g. a report's, keeps its own settings)."""
        if chat_model is None:
            return None
        update: dict[str, Any] = {}
        limit = answer_tokens or self.answer_tokens
        if limit and hasattr(chat_model, "max_tokens"):
            update["max_tokens"] = limit
        if self.answer_after_result and hasattr(chat_model, "answer_after_result"):
            update["answer_after_result"] = True
        if prefills and hasattr(chat_model, "answer_prefills"):
            update["answer_prefills"] = prefills  # the quotes are shown under the answer
        if self.reads_tool_summaries and hasattr(chat_model, "tool_docs"):
            update["tool_docs"] = summaries  # a short tools prompt: faster every token
        if hasattr(chat_model, "on_retry"):  # a hosted endpoint: say so before each retry
            update["on_retry"] = on_status
        return chat_model.model_copy(update=update) if update else chat_model


@dataclass(frozen=True)
class TurnPlan:
    """What a session decides about a user turn before the model reads it (for a provider
    whose profile ``shortlists_tools``): the tools its call may use (None: any), the call that
    is its first reply (the router's, on a decisive cue; None: the model chooses), and the
    optional arguments, per tool, its grammar leaves out (filters nobody asked for)."""

    tools: list[str] | None = None
    call: dict[str, Any] | None = None
    omit: dict[str, list[str]] = field(default_factory=dict)
    # Filled by the session as results arrive (profile ``answer_starts_with_headline``): tool
    # name -> the text the answer after its result starts with, the result's headline.
    answer_starts: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class PlansTurns(Protocol):
    """A chat model that takes a :class:`TurnPlan` (the embedded model); a session hands the
    plan over through this one method and sets nothing else on the model."""

    def plan_turn(self, plan: TurnPlan | None) -> None:
        """Apply ``plan`` to the next user turn; None clears it."""


_PROFILES: dict[str, ProviderProfile] = {}


def register_profile(profile: ProviderProfile) -> ProviderProfile:
    """Add a provider's profile (built-ins register themselves the same way)."""
    _PROFILES[profile.name] = profile
    return profile


def profile_for(name: str) -> ProviderProfile:
    """The profile of provider ``name`` (a default profile for an unknown name)."""
    return _PROFILES.get(name, ProviderProfile(name))


# The embedded 1.5B model reads a tool result at ~17 ms a token on 2 cores: a compact view of
# 125 tokens (the headline first), a 120-token answer, no filters it made up, a shortlist of
# tools on each user turn and short tool docs (docs/benchmarks.md).
register_profile(
    ProviderProfile(
        "local",
        tool_tokens=125,
        view_format="compact",
        answer_tokens=120,
        keeps_unasked_filters=False,
        shortlists_tools=True,
        takes_decisive_routes=True,
        answer_after_result=True,
        answer_starts_with_headline=True,
        reads_tool_summaries=True,
    )
)
register_profile(ProviderProfile("openai", tool_tokens=1200, view_format="json", mask_pii=True))
register_profile(ProviderProfile("none"))


@dataclass(frozen=True)
class ProviderChoice:
    """The provider a command will use and the reason, as `insight doctor` shows it."""

    name: str
    reason: str

    @property
    def profile(self) -> ProviderProfile:
        """What a session needs to know about this provider."""
        return profile_for(self.name)


def local_runtime_installed() -> bool:
    """True when the embedded LLM runtime (the `local` extra) is importable."""
    return importlib.util.find_spec(LOCAL_RUNTIME) is not None


def choose_provider(
    settings: Settings, override: str | None = None, env: Mapping[str, str] | None = None
) -> ProviderChoice:
    """Pick the LLM provider: ``--llm`` beats insight.toml/INSIGHT_LLM beats auto-detection.

    Auto: ``openai`` when OPENAI_API_KEY or OPENAI_BASE_URL is set, else ``local`` when the
    embedded runtime is installed, else ``none`` (templated answers, no LLM).
    """
    env = os.environ if env is None else env
    if override:
        if override not in LLM_PROVIDERS:
            raise ConfigError(
                f"unknown LLM provider '{override}'", hint=f"use one of: {', '.join(LLM_PROVIDERS)}"
            )
        if override != "auto":
            return ProviderChoice(override, "chosen with --llm")
    elif settings.llm.provider != "auto":
        source = "INSIGHT_LLM" if env.get("INSIGHT_LLM") else "llm.provider in insight.toml"
        return ProviderChoice(settings.llm.provider, f"set by {source}")
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL") or settings.llm.base_url:
        which = (
            "OPENAI_BASE_URL"
            if env.get("OPENAI_BASE_URL")
            else ("llm.base_url" if settings.llm.base_url else "OPENAI_API_KEY")
        )
        return ProviderChoice("openai", f"auto: {which} is set")
    if local_runtime_installed():
        return ProviderChoice("local", "auto: no API key set; the embedded model is installed")
    return ProviderChoice(
        "none",
        "auto: no API key set and the embedded model is not installed "
        "(pip install 'customer-insight-agent[local]')",
    )


DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


def model_name(chat_model: Any) -> str | None:
    """A chat model's name as its provider reports it (None without an LLM)."""
    if chat_model is None:
        return None
    for attr in ("model_name", "model", "model_path"):
        value = getattr(chat_model, attr, None)
        if value:
            return str(value)
    return type(chat_model).__name__


def masks_pii(choice: ProviderChoice, setting: bool | None) -> bool:
    """Whether PII is masked before text reaches the model: ``setting`` (--mask-pii,
    llm.mask_pii) when given, else on for hosted endpoints and off for the local model."""
    return choice.profile.mask_pii if setting is None else bool(setting)


class ProviderError(ConfigError):
    """The LLM endpoint failed in a way the user can fix (key, URL, model, network)."""

    exit_code = 3


class MalformedReply(ProviderError):
    """The endpoint answered, but not with an OpenAI-style chat completion: a body that is not
    JSON, tool-call arguments that are not a JSON object, no ``choices``."""


# Retries of a hosted call: after 429 / 5xx / a refused connection wait BACKOFF_S, doubling,
# at most BACKOFF_CAP_S (or what Retry-After asks, up to the cap); after a timeout retry at
# once (the wait was the timeout). All tries of one call share (max_retries + 1) x timeout:
# 3 x 20 s = 60 s with the defaults, and the user sees a note before each retry.
BACKOFF_S = 0.5
BACKOFF_CAP_S = 4.0
_RETRY_STATUSES = frozenset({408, 409, 429})


def _hosted_class() -> type:
    """``HostedChatModel``, defined on first use (langchain_openai is a heavy import)."""
    global _HOSTED
    if _HOSTED is None:
        from langchain_openai import ChatOpenAI

        _HOSTED = _define_hosted(ChatOpenAI)
    return _HOSTED


_HOSTED: type | None = None


def _define_hosted(base: type) -> type:
    from pydantic import Field

    class HostedChatModel(base):  # type: ignore[misc, valid-type]
        """ChatOpenAI with Insight's retries, progress notes and error messages.

        The OpenAI client's own retries are off (``max_retries=0``): this class retries
        ``retries`` times within a budget of ``(retries + 1) * timeout`` seconds, calls
        ``on_retry`` with a one-line note before each retry, and raises :class:`ProviderError`
        (:class:`MalformedReply` for replies that are not a chat completion).
        """

        retries: int = 2
        on_retry: Callable[[str], None] | None = Field(default=None, exclude=True)

        @property
        def endpoint(self) -> str:
            """The base URL, as messages name it."""
            return str(self.openai_api_base or "the OpenAI API")

        def _stream(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> Iterator[Any]:
            kwargs.pop("timeout", None)  # each try gets its own

            def attempt(timeout: float) -> Iterator[Any]:
                calls: dict[int, dict[str, str]] = {}
                answered = False
                for chunk in base._stream(
                    self, messages, stop, run_manager, timeout=timeout, **kwargs
                ):
                    message = chunk.message
                    for part in getattr(message, "tool_call_chunks", None) or []:
                        slot = calls.setdefault(part.get("index") or 0, {"name": "", "args": ""})
                        slot["name"] += part.get("name") or ""
                        slot["args"] += part.get("args") or ""
                    answered = answered or bool(
                        message.content
                        or getattr(message, "tool_call_chunks", None)
                        or (chunk.generation_info or {}).get("finish_reason")
                    )
                    yield chunk
                if not answered:
                    raise MalformedReply(
                        f"{self.endpoint} sent a reply without choices (nothing to read)",
                        hint=_MALFORMED_HINT,
                    )
                for slot in calls.values():
                    _check_arguments(slot["name"], slot["args"], self.endpoint)

            yield from self._with_retries(attempt)

        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> Any:
            kwargs.pop("timeout", None)  # each try gets its own

            def attempt(timeout: float) -> Iterator[Any]:
                result = base._generate(
                    self, messages, stop, run_manager, timeout=timeout, **kwargs
                )
                for generation in result.generations:
                    for bad in getattr(generation.message, "invalid_tool_calls", None) or []:
                        _check_arguments(
                            bad.get("name") or "", bad.get("args") or "", self.endpoint
                        )
                yield result

            return next(iter(self._with_retries(attempt)))

        def _with_retries(self, attempt: Callable[[float], Iterator[Any]]) -> Iterator[Any]:
            per_try = float(self.request_timeout or 60.0)
            tries = max(0, int(self.retries)) + 1
            deadline = time.monotonic() + per_try * tries
            timeout = per_try
            n = 1
            while True:
                started = False
                try:
                    for item in attempt(timeout):
                        started = True
                        yield item
                    return
                except ProviderError:
                    raise
                except Exception as exc:
                    malformed = _malformed(exc, self.endpoint)
                    if malformed is not None:
                        raise malformed from exc
                    wait = None if started or n >= tries else _retry_wait(exc, n)
                    left = deadline - time.monotonic() - (wait or 0.0)
                    if wait is None or left < min(1.0, per_try / 2):
                        explained = explain_provider_error(
                            exc, self.endpoint, tries=n, timeout=per_try
                        )
                        if explained is not None:
                            raise explained from exc
                        raise
                    if self.on_retry is not None:
                        self.on_retry(_retry_note(exc, self.endpoint, per_try, wait, n + 1, tries))
                    if wait:
                        time.sleep(wait)
                    timeout = min(per_try, left)
                    n += 1

    return HostedChatModel


_MALFORMED_HINT = "is OPENAI_BASE_URL an OpenAI-compatible /v1 endpoint? Try again, or --llm local"


def _check_arguments(name: str, args: str, endpoint: str) -> None:
    """Raise :class:`MalformedReply` unless a tool call's arguments are a JSON object."""
    if not args.strip():
        return  # no arguments: {}
    try:
        parsed = json.loads(args)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        shown = args if len(args) <= 40 else args[:40] + "…"
        raise MalformedReply(
            f"{endpoint} sent a call to {name or 'a tool'} whose arguments are not a JSON "
            f"object: {shown!r}",
            hint="the model may not support tool calling well; try again, another --model, "
            "or --llm local",
        )


def _malformed(exc: BaseException, endpoint: str) -> MalformedReply | None:
    """A :class:`MalformedReply` for an error that means the reply could not be read."""
    import openai

    if isinstance(exc, openai.APIResponseValidationError):
        what = "a reply that is not a chat completion"
    elif isinstance(exc, openai.APIError) or _transport_kind(exc):
        return None
    elif isinstance(exc, json.JSONDecodeError):
        what = f"a reply that is not valid JSON ({exc.msg} at character {exc.pos})"
    elif "choices" in str(exc):
        what = "a reply without choices"
    elif isinstance(exc, ValueError | TypeError | KeyError | IndexError | AttributeError):
        what = f"a reply Insight cannot read ({type(exc).__name__}: {_first_line(exc)})"
    else:
        return None
    return MalformedReply(f"{endpoint} sent {what}", hint=_MALFORMED_HINT)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 80 else line[:80] + "…"


def _transport_kind(exc: BaseException) -> str | None:
    """The kind of an httpx error ("timeout", "connection"; None for others). The OpenAI client
    wraps them, except while a stream is read."""
    names = {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.startswith("httpx")}
    if "TimeoutException" in names:
        return "timeout"
    if names & {"TransportError", "NetworkError", "RemoteProtocolError"}:
        return "connection"
    return None


def _retry_wait(exc: BaseException, attempt: int) -> float | None:
    """Seconds to wait before retrying after ``exc`` (None: do not retry)."""
    import openai

    if isinstance(exc, openai.APITimeoutError) or _transport_kind(exc) == "timeout":
        return 0.0
    backoff = min(BACKOFF_CAP_S, BACKOFF_S * 2 ** (attempt - 1))
    if isinstance(exc, openai.APIConnectionError) or _transport_kind(exc) == "connection":
        return backoff
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        headers = exc.response.headers if exc.response is not None else {}
        if headers.get("x-should-retry") == "false":
            return None
        if status in _RETRY_STATUSES or status >= 500 or headers.get("x-should-retry") == "true":
            asked = _retry_after(headers)
            return backoff if asked is None else min(asked, BACKOFF_CAP_S)
    return None


def _retry_after(headers: Any) -> float | None:
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers.get(header)) * scale)
        except (TypeError, ValueError):
            continue
    return None


def _retry_note(
    exc: BaseException, endpoint: str, timeout: float, wait: float, attempt: int, tries: int
) -> str:
    """The progress line shown before a retry: "endpoint slow: ..., retrying (2/3)…"."""
    import openai

    host = urlsplit(endpoint).netloc or endpoint
    if isinstance(exc, openai.APITimeoutError) or _transport_kind(exc) == "timeout":
        why = f"endpoint slow: no reply from {host} within {timeout:g} s"
    elif isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        kind = "busy" if status == 429 else "error"
        why = f"endpoint {kind}: {host} answered HTTP {status}"
    else:
        why = f"endpoint unreachable: cannot connect to {host}"
    later = f" in {wait:g} s" if wait else ""
    return f"{why}; retrying{later} ({attempt}/{tries})…"


def make_chat_model(
    choice: ProviderChoice,
    settings: Settings,
    *,
    model: str | None = None,
    model_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Any:
    """The LangChain chat model for a provider (None for ``none``: no LLM)."""
    env = os.environ if env is None else env
    if choice.name == "none":
        return None
    if choice.name == "local":
        from insight_agent.agent.local import LocalChatModel

        path = model_path or settings.llm.model_path
        # A small model answers in prose instead of calling a tool now and then: on a user turn
        # the call is forced (prefill + grammar); after a tool result it answers freely.
        return LocalChatModel(model_path=str(path) if path else None, force_tool_on_user_turn=True)
    if choice.name == "openai":
        base_url = env.get("OPENAI_BASE_URL") or settings.llm.base_url
        key = env.get("OPENAI_API_KEY")
        if not key and not base_url:
            raise ProviderError(
                "the openai provider needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)",
                hint="set OPENAI_API_KEY, or use --llm local / --llm none; see `insight doctor`",
            )
        return _hosted_class()(
            model=model or settings.llm.model or DEFAULT_OPENAI_MODEL,
            base_url=base_url,
            # Local OpenAI-compatible servers (Ollama, llama.cpp, vLLM) accept any key.
            api_key=key or "not-needed",
            temperature=0,
            stream_usage=True,  # token counts for /usage and --json, also when streaming
            timeout=settings.llm.timeout,
            max_retries=0,  # HostedChatModel retries, with a note to the user each time
            retries=settings.llm.max_retries,
        )
    raise ConfigError(f"unknown LLM provider '{choice.name}'")


def explain_provider_error(
    exc: BaseException,
    endpoint: str | None = None,
    *,
    tries: int | None = None,
    timeout: float | None = None,
) -> ProviderError | None:
    """A clear message for errors from an OpenAI-compatible endpoint (None if not one).

    ``tries`` and ``timeout`` (of the last try), when known, are named in the message."""
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a dependency
        return None
    where = endpoint or "the OpenAI API"
    after = f" ({tries} tries)" if tries and tries > 1 else ""
    if isinstance(exc, openai.AuthenticationError):
        return ProviderError(
            f"{where} rejected the API key (401)", hint="check OPENAI_API_KEY; `insight doctor`"
        )
    if isinstance(exc, openai.PermissionDeniedError):
        return ProviderError(f"{where} refused the request (403)", hint="check the key's access")
    if isinstance(exc, openai.NotFoundError):
        return ProviderError(
            f"{where} does not know this model or path (404)",
            hint="check --model / INSIGHT_MODEL and OPENAI_BASE_URL (it usually ends in /v1)",
        )
    if isinstance(exc, openai.RateLimitError):
        return ProviderError(
            f"{where} is rate-limiting requests (429) and retries ran out{after}",
            hint="wait a minute, or raise llm.max_retries in insight.toml",
        )
    if isinstance(exc, openai.APITimeoutError) or _transport_kind(exc) == "timeout":
        if timeout:
            waited = f"{timeout:g} s a try, {tries} tries" if after else f"{timeout:g} s"
            after = f" ({waited})"
        return ProviderError(
            f"{where} did not answer in time{after}",
            hint="raise llm.timeout in insight.toml (a local server on a CPU may need 120)",
        )
    if isinstance(exc, openai.APIConnectionError) or _transport_kind(exc) == "connection":
        return ProviderError(
            f"cannot reach {where}{after}",
            hint="is the server running and OPENAI_BASE_URL right? Or use --llm local",
        )
    if isinstance(exc, openai.BadRequestError):
        return ProviderError(
            f"{where} rejected the request (HTTP 400): {_first_line(exc)}",
            hint="the model may not support tools or this context length; try another --model",
        )
    if isinstance(exc, openai.InternalServerError | openai.APIStatusError):
        status = getattr(exc, "status_code", "?")
        return ProviderError(
            f"{where} failed with HTTP {status}{after or ' after retries'}",
            hint="try again later",
        )
    return None
