"""The one boundary between Insight and language models.

It decides *which* provider a command uses (``--llm``, insight.toml, or auto-detection) and
builds the LangChain chat model for it: the embedded local model (:mod:`.local`), any
OpenAI-compatible endpoint, or none (the deterministic router in :mod:`.router` answers).
Errors from hosted endpoints are turned into messages that say how to fix them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insight_agent.config import LLM_PROVIDERS, Settings
from insight_agent.errors import ConfigError

LOCAL_RUNTIME = "xllamacpp"


@dataclass(frozen=True)
class ProviderChoice:
    """The provider a command will use and the reason, as `insight doctor` shows it."""

    name: str
    reason: str


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
    return choice.name == "openai" if setting is None else bool(setting)


class ProviderError(ConfigError):
    """The LLM endpoint failed in a way the user can fix (key, URL, model, network)."""

    exit_code = 3


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
        from langchain_openai import ChatOpenAI

        base_url = env.get("OPENAI_BASE_URL") or settings.llm.base_url
        key = env.get("OPENAI_API_KEY")
        if not key and not base_url:
            raise ProviderError(
                "the openai provider needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)",
                hint="set OPENAI_API_KEY, or use --llm local / --llm none; see `insight doctor`",
            )
        return ChatOpenAI(
            model=model or settings.llm.model or DEFAULT_OPENAI_MODEL,
            base_url=base_url,
            # Local OpenAI-compatible servers (Ollama, llama.cpp, vLLM) accept any key.
            api_key=key or "not-needed",
            temperature=0,
            stream_usage=True,  # token counts for /usage and --json, also when streaming
            timeout=settings.llm.timeout,
            max_retries=settings.llm.max_retries,
        )
    raise ConfigError(f"unknown LLM provider '{choice.name}'")


def explain_provider_error(exc: BaseException, endpoint: str | None = None) -> ProviderError | None:
    """A clear message for errors from an OpenAI-compatible endpoint (None if not one)."""
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a dependency
        return None
    where = endpoint or "the OpenAI API"
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
            f"{where} is rate-limiting requests (429) and retries ran out",
            hint="wait a minute, or raise llm.max_retries in insight.toml",
        )
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(
            f"{where} did not answer in time", hint="raise llm.timeout in insight.toml"
        )
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(
            f"cannot reach {where}",
            hint="is the server running and OPENAI_BASE_URL right? Or use --llm local",
        )
    if isinstance(exc, openai.InternalServerError | openai.APIStatusError):
        status = getattr(exc, "status_code", "?")
        return ProviderError(
            f"{where} failed with HTTP {status} after retries", hint="try again later"
        )
    return None
