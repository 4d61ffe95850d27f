"""Review sentiment: the rating rule for rated reviews, VADER for unrated ones, and its source."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from insight_agent.vectorstore import sentiment as sentiment_module
from insight_agent.vectorstore.sentiment import lexicon_sentiment, review_sentiment
from insight_agent.vectorstore.store import metadata_frame, sentiment_from_rating

NEGATIVE = "Terrible, broke after a day, never again"
POSITIVE = "Love it, works perfectly and arrived quickly. Great value!"


def test_rated_reviews_follow_the_rating_rule_whatever_the_text():
    ratings = pd.Series([0, 1, 2, 2.5, 3, 3.5, 4, 5])
    texts = pd.Series([POSITIVE] * 4 + [NEGATIVE] * 4)
    got = review_sentiment(ratings, texts)
    assert got["sentiment"].tolist() == [sentiment_from_rating(r) for r in ratings]
    assert got["sentiment"].tolist() == ["negative"] * 4 + ["neutral"] * 2 + ["positive"] * 2
    assert (got["sentiment_source"] == "rating").all()


def test_unrated_reviews_are_scored_from_their_text():
    texts = pd.Series([NEGATIVE, POSITIVE, "It is a chair."])
    got = review_sentiment(pd.Series([None, None, None]), texts)
    assert got["sentiment"].tolist() == ["negative", "positive", "neutral"]
    assert (got["sentiment_source"] == "lexicon").all()
    assert lexicon_sentiment(texts).tolist() == ["negative", "positive", "neutral"]


def test_mixed_frame_keeps_index_and_order_and_marks_sources():
    index = pd.Index([10, 3, 7, 42, 5], name="row")
    ratings = pd.Series([5, None, "2", "", None], index=index)  # numeric strings and blanks
    texts = pd.Series([NEGATIVE, NEGATIVE, POSITIVE, POSITIVE, None], index=index)
    got = review_sentiment(ratings, texts)
    assert got.index.equals(index)
    assert got["sentiment"].tolist() == ["positive", "negative", "negative", "positive", "unrated"]
    assert got["sentiment_source"].tolist() == ["rating", "lexicon", "rating", "lexicon", "none"]


def test_empty_inputs():
    got = review_sentiment(pd.Series([], dtype=float), pd.Series([], dtype="string"))
    assert got.empty and list(got.columns) == ["sentiment", "sentiment_source"]
    meta = metadata_frame(pd.DataFrame({"review_id": [], "rating": [], "text": []}))
    assert meta.empty and {"sentiment", "sentiment_source"} <= set(meta.columns)
    with pytest.raises(ValueError):
        review_sentiment(None, None)


def test_only_unrated_distinct_texts_go_through_vader(monkeypatch):
    scored: list[str] = []

    def fake_score(text: str) -> float:
        scored.append(text)
        return -0.5

    monkeypatch.setattr(sentiment_module, "lexicon_score", fake_score)
    ratings = pd.Series([5, None, None, 4, None])
    texts = pd.Series(["rated one", "awful", "awful", "rated two", "bad"])
    got = review_sentiment(ratings, texts)
    assert sorted(scored) == ["awful", "bad"]  # no rated text, each distinct text once
    assert got["sentiment"].tolist() == ["positive", "negative", "negative", "positive", "negative"]


def test_metadata_frame_stores_label_and_source():
    reviews = pd.DataFrame(
        {
            "review_id": ["R1", "R2", "R3", "R4"],
            "rating": [4, None, None, 1],
            "text": ["fine", NEGATIVE, POSITIVE, "fine"],
        }
    )
    meta = metadata_frame(reviews)
    assert meta["sentiment"].tolist() == ["positive", "negative", "positive", "negative"]
    assert meta["sentiment_source"].tolist() == ["rating", "lexicon", "lexicon", "rating"]
    assert meta["rating"].tolist() == [4.0, -1.0, -1.0, 1.0]
    record = meta.to_dict(orient="records")[1]  # what Chroma receives: plain str values
    assert record["sentiment"] == "negative" and isinstance(record["sentiment_source"], str)
    no_ratings = metadata_frame(reviews.drop(columns="rating"))
    assert (no_ratings["sentiment_source"] == "lexicon").all()


def test_importing_the_cli_loads_neither_vader_nor_sklearn():
    code = (
        "import sys, insight_agent.cli, insight_agent.vectorstore.sentiment, "
        "insight_agent.vectorstore.themes, insight_agent.vectorstore.queries; "
        "print(sorted(m for m in ('vaderSentiment', 'sklearn', 'scipy', 'chromadb') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_unrated_reviews_in_the_index_are_filterable_by_lexicon_sentiment(tmp_path):
    pytest.importorskip("onnxruntime")
    from insight_agent.vectorstore.embedder import EmbedderUnavailable, chroma_embedding_function
    from insight_agent.vectorstore.search import ReviewFilters, search_reviews
    from insight_agent.vectorstore.store import ReviewIndex, open_client

    try:
        ef = chroma_embedding_function(threads=1)
        ef(["warm up"])
    except EmbedderUnavailable as exc:  # pragma: no cover - the model ships with the package
        pytest.skip(str(exc))
    reviews = pd.DataFrame(
        {
            "review_id": ["R1", "R2", "R3"],
            "rating": [5, None, None],
            "text": ["Arrived broken, awful.", NEGATIVE, POSITIVE],
        }
    )
    index = ReviewIndex(open_client(tmp_path / "chroma"), ef)
    index.sync(reviews)
    hits = search_reviews(index, "broken", k=3, filters=ReviewFilters(sentiment="negative"))
    assert [h["review_id"] for h in hits] == ["R2"]
    assert hits[0]["sentiment_source"] == "lexicon"  # a hit says where its label came from
    got = index.collection.get(where={"sentiment_source": "lexicon"}, include=["metadatas"])
    assert sorted(m["review_id"] for m in got["metadatas"]) == ["R2", "R3"]
    assert index.sync(reviews).unchanged == 3  # labels are stable: nothing to update


def test_the_demo_index_labels_every_rated_review_by_its_rating(built_demo):
    from insight_agent.vectorstore.store import open_index

    index = open_index(built_demo / ".insight")
    got = index.collection.get(include=["metadatas"])
    assert len(got["ids"]) == 4000
    for meta in got["metadatas"]:
        assert meta["sentiment_source"] == "rating"
        assert meta["sentiment"] == sentiment_from_rating(meta["rating"])
