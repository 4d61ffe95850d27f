"""The exact scan behind review counts and unit search: cosine of one query against every
opinion unit's float16 vector (``UnitTable.similarities``), by rows per block.

Random unit vectors in a float16 ``.npy`` read memory-mapped, as a workspace holds them; each
block size is timed over the same queries in one process, median of ``--repeats`` runs, with
the ratio to the first (the baseline) row. Every block size must give the same cosines (to
float32 rounding).

    python bench/unit_scan.py [--units 306481] [--blocks 65536,16384,4096,1024] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=306_481)  # the 100k demo reviews' units
    parser.add_argument("--blocks", default="65536,16384,4096,1024")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from insight_agent.vectorstore import unitstore

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.npy"
        v = rng.standard_normal((args.units, 384)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        np.save(path, v.astype(np.float16))
        del v
        vectors = np.load(path, mmap_mode="r")
        table = unitstore.UnitTable(
            reviews=None, review_ids=np.empty(0), units=None, vectors=vectors,
            threshold=0.5, sentiment_source="model",
        )  # fmt: skip
        queries = rng.standard_normal((5, 384)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        blocks = [int(b) for b in args.blocks.split(",")]
        reference = None
        rows = []
        for block in blocks:
            unitstore.SCAN_CHUNK = block
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                got = [table.similarities(q) for q in queries]
                times.append((time.perf_counter() - t) / len(queries))
            if reference is None:
                reference = got
            # equal up to float32 rounding (BLAS may sum a row in another order)
            assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(reference, got, strict=True))
            rows.append((block, statistics.median(times) * 1000))
    base = rows[0][1]
    print(f"units: {args.units:,}; median of {args.repeats} runs of 5 queries each")
    print(f"{'rows per block':>15} {'ms per query':>13} {'vs first':>9}")
    for block, ms in rows:
        print(f"{block:>15,} {ms:>13.1f} {ms / base:>9.2f}")


if __name__ == "__main__":
    main()
