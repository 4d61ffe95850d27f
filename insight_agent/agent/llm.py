"""The one boundary between Insight and language models.

For now this module decides *which* provider a command would use; the providers themselves
(embedded local model, OpenAI-compatible endpoint, no-LLM router) are added by the agent work.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass

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
