"""Review embedding throughput, ingest time and peak memory, opinion-unit throughput, query
latency (p50/p95, with/without filters) and the count's latency.

Each size runs in its own child process: generate demo reviews, embed and ingest them into a
fresh embedded Chroma plus the opinion-unit table (timed; the unit part separately; before it,
``train_s``: the sentiment model trained on the rated reviews, as a build does, which then
labels every unit), re-ingest (should embed nothing), then time the unit search the CLI and the
agent use (``unit_p50_ms``: embed the query, rank every unit, fetch the hits' reviews from
Chroma) and whole-review `search_reviews` queries without and with metadata filters,
as a baseline the median of 10 queries through Chroma's own filtered query (`where`), which the
search only falls back to, and `count_matches` (embed the query + exact scan over every unit,
by category). Peak RSS is the child's (the ingest dominates it). Targets (2 cores): >= 150
reviews/s, <= 1 GB peak, unfiltered p95 <= 10 ms, filtered p95 <= 100 ms at 100k reviews.

    python bench/reviews.py [--sizes 2000,20000,100000] [--queries 50] [--keep DIR]
        [--text demo|clothing]

``--text clothing`` ingests the public clothing reviews fixture (5,000 real reviews, title
before text as a workspace loads them; ~60 words each against the demo's ~15) repeated under
fresh review ids up to the size, so every copy is embedded again. ``embed_floor_units_per_s``
is the floor in the same process: the embedder alone on 2,000 of the ingested units' texts
(``ingest_vs_floor`` = that rate / the ingest's units per second; 1.0 would mean the ingest
costs nothing beyond the model).

Queries: 50 different texts (no query repeats, so no cache can help). ``--keep DIR`` leaves
each size's index in DIR/size-N; a later run with the same DIR re-uses it (its ingest columns
then show the re-ingest, which must add 0), handy for timing queries at 100k without
embedding 100k reviews again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _sizes import per_size

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = [
    "late delivery",
    "too small",
    "great value for money",
    "rude support agent",
    "package arrived damaged",
    "fabric feels cheap",
    "love the quality",
    "refund took weeks",
    "sizes run large",
    "price went up",
    "courier left the parcel outside",
    "the shoes fell apart after a month",
    "customer service never replied to my email",
    "cheaper than other shops",
    "colour looks different from the photos",
    "arrived a day early",
    "had to return it twice",
    "excellent stitching and finish",
    "the discount code did not work",
    "tracking number never updated",
    "fits perfectly",
    "waited three weeks for my order",
    "the box was crushed",
    "support agent was very helpful",
    "not worth the money",
    "feels premium",
    "the zip broke on the first day",
    "would buy again",
    "delivery driver was rude",
    "the sizing chart is wrong",
    "quick refund, no questions asked",
    "expensive for what you get",
    "battery died after a week",
    "smells of chemicals",
    "gift wrapping was lovely",
    "order was cancelled without warning",
    "the material is too thin",
    "the sale price was a bargain",
    "I chose express shipping and it was still late",
    "nobody answered the phone",
    "half the order was missing",
    "comfortable all day",
    "the instructions were confusing",
    "great quality for the price",
    "the parcel went to the wrong address",
    "chat bot was useless",
    "much smaller than expected",
    "loyal customer for years",
    "the handle snapped",
    "I love this brand",
]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


FIXTURE = ROOT / "tests/fixtures/public/womens_clothing_reviews/womens_clothing_reviews_5000.csv"


def _clothing(n: int):
    """``n`` real reviews: the fixture loaded as a workspace loads it, repeated under new ids."""
    import tempfile

    import pandas as pd

    from insight_agent.config import load_settings
    from insight_agent.data.load import load_dataset
    from tests.conftest import write_workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws = write_workspace(Path(tmp) / "ws", {"reviews": FIXTURE})
        base = load_dataset(load_settings(ws)).reviews
    base = base[base["text"].fillna("").str.strip().ne("")].reset_index(drop=True)
    out = pd.concat([base] * (n // len(base) + 1), ignore_index=True).head(n).copy()
    out["review_id"] = [f"R{i}" for i in range(len(out))]
    if "date" not in out or out["date"].isna().all():
        out["date"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(
            out.index.to_numpy() % 365, unit="D"
        )
    return out


def _child(n: int, n_queries: int, root: Path, text: str = "demo") -> dict:
    import pandas as pd

    from insight_agent.data.demo import DemoConfig, generate_frames
    from insight_agent.vectorstore.search import ReviewFilters, search_reviews
    from insight_agent.vectorstore.store import open_index

    assert n_queries <= len(QUERIES), f"at most {len(QUERIES)} different queries"
    if text == "clothing":
        reviews = _clothing(n)
    else:
        frames = generate_frames(DemoConfig(n_customers=max(1000, int(n / 0.8)), n_reviews=n))
        reviews = frames.reviews.copy()
    reviews["date"] = pd.to_datetime(reviews["date"])
    index = open_index(root)
    # As `insight build` does: the sentiment model trained on the rated reviews labels units.
    from insight_agent.vectorstore.textmodel import train_text_sentiment

    t = time.perf_counter()
    text_model = train_text_sentiment(reviews["text"], reviews["rating"])
    train = time.perf_counter() - t
    t = time.perf_counter()
    first = index.sync(reviews, text_model=text_model)
    ingest = time.perf_counter() - t
    again = index.sync(reviews, text_model=text_model)
    import resource

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from insight_agent.vectorstore.opinions import count_matches

    units = index.unit_table()
    sample = units.units["text"].astype(str).tolist()[:: max(1, len(units) // 2000)][:2000]
    t = time.perf_counter()
    index.embedding_function(sample)
    floor = len(sample) / (time.perf_counter() - t)
    counts = []
    for q in QUERIES[:10]:
        t = time.perf_counter()
        vector = index.embedding_function([q])[0]
        count_matches(units, vector, q, by="category")
        counts.append(time.perf_counter() - t)
    from insight_agent.vectorstore.opinions import search_units

    unit_search = []
    for q in QUERIES[:n_queries]:
        t = time.perf_counter()
        vector = index.embedding_function([q])[0]
        found = search_units(units, vector, q, k=5)
        index.collection.get(
            ids=[str(units.reviews.ids[h["doc"]]) for h in found], include=["documents"]
        )
        unit_search.append(time.perf_counter() - t)
    filters = ReviewFilters(max_rating=2, since=reviews["date"].min().date())
    plain, filtered = [], []
    for i in range(n_queries):
        q = QUERIES[i]
        t = time.perf_counter()
        search_reviews(index, q, k=5, diverse=False)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        search_reviews(index, q, k=5, filters=filters, diverse=False)
        filtered.append(time.perf_counter() - t)
    # Baseline in the same process: Chroma's own filtered query (`where`), what the search
    # falls back to last; 10 queries, it is slow at 100k.
    baseline = []
    for q in QUERIES[:10]:
        t = time.perf_counter()
        index.collection.query(query_texts=[q], n_results=5, where=filters.where())
        baseline.append(time.perf_counter() - t)
    return {
        "reviews": n,
        "train_s": round(train, 1),
        "ingest_s": round(ingest, 1),
        "reviews_per_s": round(n / ingest, 1),
        "reingest_added": again.added,
        "units": first.units,
        "units_per_s": round(first.units / max(first.unit_seconds, 1e-9), 1),
        "embed_floor_units_per_s": round(floor, 1),
        "ingest_vs_floor": round(floor / max(first.units / max(ingest, 1e-9), 1e-9), 2),
        "peak_rss_mb": round(peak_mb),
        "count_p50_ms": round(statistics.median(counts) * 1000, 1),
        "unit_p50_ms": round(statistics.median(unit_search) * 1000, 1),
        "first_added": first.added,
        "p50_ms": round(statistics.median(plain) * 1000, 1),
        "p95_ms": round(_pct(plain, 0.95) * 1000, 1),
        "filtered_p50_ms": round(statistics.median(filtered) * 1000, 1),
        "filtered_p95_ms": round(_pct(filtered, 0.95) * 1000, 1),
        "chroma_where_p50_ms": round(statistics.median(baseline) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--keep", help="keep each size's index in KEEP/size-N (and reuse it)")
    parser.add_argument("--text", choices=["demo", "clothing"], default="demo")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.queries, Path(args.root), args.text)))
        return
    cols = [
        "reviews",
        "train_s",
        "ingest_s",
        "reviews_per_s",
        "reingest_added",
        "units",
        "units_per_s",
        "embed_floor_units_per_s",
        "ingest_vs_floor",
        "peak_rss_mb",
        "count_p50_ms",
        "unit_p50_ms",
        "p50_ms",
        "p95_ms",
        "filtered_p50_ms",
        "filtered_p95_ms",
        "chroma_where_p50_ms",
    ]
    print(f"text: {args.text}; queries per size: {args.queries} (k=5, no MMR, each embedded)")
    print(" ".join(f"{c:>15}" for c in cols))
    for n, row, error in per_size(
        __file__, args.sizes, ["--queries", str(args.queries), "--text", args.text], keep=args.keep
    ):
        if row is None:
            print(f"{n}: FAILED {error}")
            continue
        if not row["first_added"]:  # --keep: this index was built by an earlier run
            row["ingest_s"] = row["reviews_per_s"] = "reused"
        print(" ".join(f"{row[c]:>15}" for c in cols))


if __name__ == "__main__":
    main()
