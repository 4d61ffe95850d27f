"""Review ingest into a real embedded Chroma: idempotent, incremental, metadata-only updates."""

from __future__ import annotations

import pandas as pd
import pytest

from insight_agent.vectorstore.store import ReviewIndex, doc_id, open_client

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def reviews(demo_data):
    data, _ = demo_data
    return data.reviews.head(300).reset_index(drop=True)


@pytest.fixture(scope="module")
def embedding_function():
    from insight_agent.vectorstore.embedder import EmbedderUnavailable, chroma_embedding_function

    try:
        ef = chroma_embedding_function(threads=1)
        ef(["warm up"])
    except EmbedderUnavailable as exc:  # pragma: no cover - the model ships with the package
        pytest.skip(str(exc))
    return ef


def test_ingest_is_idempotent_and_incremental(tmp_path, reviews, embedding_function):
    index = ReviewIndex(open_client(tmp_path / "chroma"), embedding_function)
    first = index.sync(reviews)
    assert (first.added, first.removed, first.total) == (300, 0, 300)
    assert index.count() == 300

    again = index.sync(reviews)  # nothing changed: nothing embedded
    assert (again.added, again.removed, again.metadata_updated, again.unchanged) == (0, 0, 0, 300)

    edited = reviews.copy()
    edited.loc[0, "text"] = "My zebra-striped teapot exploded in the microwave."
    report = index.sync(edited)
    assert (report.added, report.removed) == (1, 1)
    assert index.count() == 300

    # reopening the store from disk needs no embedding function argument
    reopened = open_client(tmp_path / "chroma").get_collection("reviews")
    hit = reopened.query(query_texts=["the teapot blew up in my microwave"], n_results=1)
    assert hit["ids"][0][0] == doc_id(str(edited.loc[0, "review_id"]), edited.loc[0, "text"])


def test_segment_changes_update_metadata_only(tmp_path, reviews, embedding_function):
    index = ReviewIndex(open_client(tmp_path / "chroma"), embedding_function)
    linked = reviews[reviews["customer_id"].notna()]
    segments = pd.Series("Bargain hunters", index=linked["customer_id"].unique())
    index.sync(reviews, segments)
    segments.iloc[: len(segments) // 2] = "Lapsing customers"
    report = index.sync(reviews, segments)
    assert report.added == 0 and report.metadata_updated > 0
    got = index.collection.get(where={"segment": "Lapsing customers"}, include=["metadatas"])
    assert got["ids"] and all(m["segment"] == "Lapsing customers" for m in got["metadatas"])


def test_metadata_is_filterable(tmp_path, reviews, embedding_function):
    index = ReviewIndex(open_client(tmp_path / "chroma"), embedding_function)
    index.sync(reviews)
    hits = index.collection.query(
        query_texts=["late delivery"],
        n_results=5,
        where={"$and": [{"rating": {"$lte": 2}}, {"date": {"$gte": 20250101}}]},
        include=["metadatas", "documents"],
    )
    assert hits["ids"][0]
    for meta in hits["metadatas"][0]:
        assert meta["rating"] <= 2 and meta["date"] >= 20250101
        assert meta["sentiment"] == "negative"


def test_interrupted_ingest_resumes_where_it_stopped(tmp_path, reviews, embedding_function):
    index = ReviewIndex(open_client(tmp_path / "chroma"), embedding_function)
    seen: list[tuple[int, int]] = []

    def interrupt_after_two_batches(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) == 2:
            raise KeyboardInterrupt  # what Ctrl-C does mid-ingest

    with pytest.raises(KeyboardInterrupt):
        index.sync(reviews, batch_size=64, progress=interrupt_after_two_batches)
    assert seen == [(64, 300), (128, 300)]
    assert index.count() == 128  # finished batches are kept

    progress: list[tuple[int, int]] = []
    resumed = index.sync(reviews, batch_size=64, progress=lambda d, t: progress.append((d, t)))
    assert resumed.added == 300 - 128 and index.count() == 300
    assert progress[-1] == (172, 172)  # only the rest was embedded, with progress to the end


FILTER_CASES = [
    {"max_rating": 2},
    {"min_rating": 4, "sentiment": "positive"},
    {"since": "2025-01-01", "until": "2025-12-31"},
    {"category": "Apparel"},
    {"contains": "late"},
    {"max_rating": 2, "since": "2024-06-01", "contains": "delivery"},
]


@pytest.mark.parametrize(
    ("candidates", "table", "id_chunk", "units"),
    [
        ((50, 400), True, 20_000, False),
        ((8,), False, 20_000, False),
        ((8,), True, 20_000, False),
        ((8,), True, 7, False),
        ((8,), True, 20_000, True),
    ],
)
def test_filtered_search_equals_chromas_filtered_query(
    tmp_path, reviews, embedding_function, monkeypatch, candidates, table, id_chunk, units
):
    """Filtered searches first rank unfiltered candidates and keep those that pass; with too
    few candidates (8) they search the ids the filter table lets through (in chunks of 7 ids
    here), or rank them exactly against the review-vector file an ingest with a unit table
    writes, or without a table ask Chroma to filter. Every path must give the result Chroma's
    own filtered query gives."""
    import datetime as dt

    from insight_agent.vectorstore import search

    monkeypatch.setattr(search, "POST_FILTER_CANDIDATES", candidates)
    monkeypatch.setattr(search, "ID_CHUNK", id_chunk)
    path = tmp_path / "chroma"
    index = ReviewIndex(
        open_client(path),
        embedding_function,
        path=path if table else None,
        units_dir=tmp_path / "units" if units else None,
    )
    index.sync(reviews)
    assert (index.filter_table() is not None) == table
    assert (index.review_matrix() is not None) == units
    if units:  # Chroma would be slower; it must not be asked to search
        monkeypatch.setattr(search, "ID_CHUNK", 0)
    for case in FILTER_CASES:
        args = {
            key: dt.date.fromisoformat(value) if key in ("since", "until") else value
            for key, value in case.items()
        }
        filters = search.ReviewFilters(**args)
        for query in ("late delivery", "great quality", "too small"):
            got = search.search_reviews(index, query, k=5, filters=filters, diverse=False)
            want = index.collection.query(
                query_texts=[query],
                n_results=5,
                where=filters.where(),
                where_document=filters.where_document(),
            )["ids"][0]
            assert [h["review_id"] for h in got] == [
                index.collection.get(ids=[i])["metadatas"][0]["review_id"] for i in want
            ], (case, query)


def test_the_review_vector_file_holds_what_chroma_holds(tmp_path, reviews, embedding_function):
    """The file the exact filtered search reads has each document's Chroma vector, in the
    filter table's order: those made from units (per ingest batch, the file in blocks of 7
    here) and one Chroma embedded itself (a review with blank text has no units)."""
    import numpy as np

    from insight_agent.vectorstore import store

    some = reviews.head(40).copy()
    some.loc[3, "text"] = "   "
    path = tmp_path / "chroma"
    index = ReviewIndex(
        open_client(path), embedding_function, path=path, units_dir=tmp_path / "units"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "VECTOR_BLOCK", 7)
        index.sync(some, batch_size=16)
    matrix, table = index.review_matrix(), index.filter_table()
    assert matrix is not None and matrix.shape == (40, 384)
    got = index.collection.get(ids=[str(i) for i in table.ids], include=["embeddings"])
    held = dict(zip(got["ids"], got["embeddings"], strict=True))
    for row, doc in enumerate(table.ids):
        want = np.asarray(held[str(doc)], dtype=np.float32)
        np.testing.assert_allclose(matrix[row], want / np.linalg.norm(want), atol=1e-6)
    # an ingest that changes the collection replaces it; one that breaks off leaves none
    index.sync(some.head(30))
    assert index.review_matrix().shape == (30, 384)
    index.collection.delete(ids=[str(index.filter_table().ids[0])])
    assert index.review_matrix() is None


def test_the_filter_table_follows_ingest(tmp_path, reviews, embedding_function):
    path = tmp_path / "chroma"
    index = ReviewIndex(open_client(path), embedding_function, path=path)
    index.sync(reviews.head(50))
    table = index.filter_table()
    assert table is not None and len(table) == 50
    index.sync(reviews.head(60))  # a new ingest rewrites it
    assert len(index.filter_table()) == 60
    # a table that no longer matches the collection (an interrupted ingest, another writer)
    # is not used
    index.collection.delete(ids=[str(index.filter_table().ids[0])])
    assert index.filter_table() is None


def test_a_reingest_reads_what_chroma_holds_from_the_unit_table(tmp_path, reviews, monkeypatch):
    """An embedded store's re-ingest takes the held documents and their metadata from the
    unit table the last finished ingest wrote (asking Chroma for all of them cost ~500 MB at
    100k reviews); after an ingest that did not finish, it asks Chroma again."""
    import json

    from insight_agent.vectorstore.store import open_index

    index = open_index(tmp_path)
    index.sync(reviews)
    asked: list[int] = []
    original = ReviewIndex._existing

    def counted(self: ReviewIndex) -> dict:
        asked.append(1)
        return original(self)

    monkeypatch.setattr(ReviewIndex, "_existing", counted)
    edited = reviews.copy()
    edited.loc[0, "text"] = "My zebra-striped teapot exploded in the microwave."
    edited.loc[1, "rating"] = 5 if edited.loc[1, "rating"] != 5 else 1
    report = index.sync(edited)
    assert asked == []
    assert (report.added, report.removed, report.metadata_updated) == (1, 1, 1)
    row1 = doc_id(str(edited.loc[1, "review_id"]), edited.loc[1, "text"])
    got = index.collection.get(ids=[row1], include=["metadatas"])
    assert got["metadatas"][0]["rating"] == float(edited.loc[1, "rating"])
    meta = tmp_path / "units" / "meta.json"
    info = json.loads(meta.read_text())
    assert info["collection_synced"] is True
    meta.write_text(json.dumps({**info, "collection_synced": False}))  # as if interrupted
    again = index.sync(edited)
    assert asked == [1] and (again.added, again.removed, again.metadata_updated) == (0, 0, 0)
