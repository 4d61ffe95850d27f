"""The exact scan behind review counts and unit search: cosine of one query against every
opinion unit's vector (``UnitTable.similarities``), by storage type and rows per block.

Random unit vectors in a ``.npy`` read memory-mapped, as a workspace holds them (float32 since
issue #16's last change; float16 before, the baseline row); each (type, block size) is timed
over the same queries in one process, median of ``--repeats`` runs, with the ratio to the
first row. Every row must give the same cosines (to float16 rounding).

    python bench/unit_scan.py [--units 306481] [--dtypes float16,float32]
        [--blocks 65536,16384] [--repeats 7]
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
    parser.add_argument("--dtypes", default="float16,float32")
    parser.add_argument("--blocks", default="65536,16384")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from insight_agent.vectorstore import unitstore

    rng = np.random.default_rng(0)
    v = rng.standard_normal((args.units, 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    queries = rng.standard_normal((5, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    reference = None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in args.dtypes.split(","):
            path = Path(tmp) / f"vectors-{dtype}.npy"
            np.save(path, v.astype(dtype))
            vectors = np.load(path, mmap_mode="r")
            table = unitstore.UnitTable(
                reviews=None, review_ids=np.empty(0), frame=None, vectors=vectors,
                threshold=0.5, sentiment_source="model",
            )  # fmt: skip
            for block in (int(b) for b in args.blocks.split(",")):
                unitstore.SCAN_CHUNK = block
                times = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    got = [table.similarities(q) for q in queries]
                    times.append((time.perf_counter() - t) / len(queries))
                if reference is None:
                    reference = got
                # equal up to float16 rounding of the stored vectors
                assert all(
                    np.allclose(a, b, atol=2e-3) for a, b in zip(reference, got, strict=True)
                )
                rows.append((f"{dtype}, {block:,}", statistics.median(times) * 1000))
    base = rows[0][1]
    print(f"units: {args.units:,}; median of {args.repeats} runs of 5 queries each")
    print(f"{'type, rows per block':>22} {'ms per query':>13} {'vs first':>9}")
    for label, ms in rows:
        print(f"{label:>22} {ms:>13.1f} {ms / base:>9.2f}")


if __name__ == "__main__":
    main()
