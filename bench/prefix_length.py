"""Embedded local LLM: how the length of the cached prefix slows reading and writing.

Why the agent renders its tools as short Python signatures (agent/local.py): every later
token attends over the whole KV cache, so a long system prompt costs on every turn, not
only the first. For each prefix length, one engine (the default threads) reads the prefix
once, then answers ``--turns`` short questions that share it; each turn reads ~150 new
tokens and writes 40 (``ignore_eos``). The table gives the median read and write speed of
those warm turns, and the ratio to the shortest prefix, measured in the same process.
``--flash-attn`` adds rows with flash attention forced off and on (default: llama.cpp's
auto); ``--kv-q8`` adds rows with the KV cache quantized to q8_0 (flash attention on, which a
quantized V cache needs).

    python bench/prefix_length.py [--lengths 100,1200,2300,3500] [--turns 6] [--flash-attn]
        [--kv-q8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILLER = "Some system text about tools and customers. "  # ~8 tokens
QUESTION = "the quick brown fox jumps over the lazy dog and " * 15  # ~150 tokens


def measure(engine: Any, tokens: int, turns: int) -> tuple[int, float, float]:
    """(cached tokens, median read tokens/s, median write tokens/s) over warm turns."""
    prefix = FILLER * max(1, tokens // 8)
    reads, writes, cached = [], [], 0
    for turn in range(turns + 1):  # turn 0 fills the cache
        reply = engine.chat(
            {
                "messages": [
                    {"role": "system", "content": prefix},
                    {"role": "user", "content": f"{turn} {QUESTION}"},
                ],
                "max_tokens": 40,
                "ignore_eos": True,
                "temperature": 0.0,
                "cache_prompt": True,
            }
        )
        timings = reply["timings"]
        if turn:
            reads.append(timings["prompt_per_second"])
            writes.append(timings["predicted_per_second"])
            cached = int(timings.get("cache_n", 0))
    return cached, statistics.median(reads), statistics.median(writes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="100,1200,2300,3500", help="prefix tokens")
    parser.add_argument("--turns", type=int, default=6, help="warm turns per length")
    parser.add_argument("--flash-attn", action="store_true", help="also force it off and on")
    parser.add_argument("--kv-q8", action="store_true", help="also a q8_0 KV cache")
    args = parser.parse_args()

    import xllamacpp

    from insight_agent.agent import local

    lengths = [int(x) for x in args.lengths.split(",")]
    modes: list[tuple[str, int | None, bool]] = [("auto", None, False)]
    if args.flash_attn:
        modes += [("off", 0, False), ("on", 1, False)]
    if args.kv_q8:
        modes += [("on, KV q8_0", 1, True)]
    plain = xllamacpp.CommonParams
    rows = []
    for label, flash, kv_q8 in modes:

        def params(_flash: int | None = flash, _q8: bool = kv_q8) -> Any:
            p = plain()
            if _flash is not None:
                p.flash_attn_type = _flash
            if _q8:
                p.cache_type_k = p.cache_type_v = xllamacpp.ggml_type.GGML_TYPE_Q8_0
            return p

        xllamacpp.CommonParams = params  # the engine builds its params through this name
        try:
            engine = local.LocalEngine(
                local.resolve_model_path(), n_ctx=8192, n_threads=local.default_threads()
            )
        finally:
            xllamacpp.CommonParams = plain
        base: tuple[float, float] | None = None
        for tokens in lengths:
            cached, read, write = measure(engine, tokens, args.turns)
            base = base or (read, write)
            rows.append((label, cached, read, write, read / base[0], write / base[1]))
            print(f"  {label} {cached} cached: read {read:.1f}/s write {write:.1f}/s", flush=True)
        engine.close()

    print(
        "\n| flash attention | cached tokens | read tokens/s | write tokens/s | read vs shortest "
        "| write vs shortest |"
    )
    print("|---|---|---|---|---|---|")
    for label, cached, read, write, r_ratio, w_ratio in rows:
        print(
            f"| {label} | {cached:,} | {read:.1f} | {write:.1f} | {r_ratio:.2f} | {w_ratio:.2f} |"
        )


if __name__ == "__main__":
    main()
