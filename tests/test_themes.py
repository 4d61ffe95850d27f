"""Review themes: c-TF-IDF, clustering, recovery of the demo's planted aspects, comparisons."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from insight_agent.errors import ConfigError, InsufficientData
from insight_agent.vectorstore.search import ReviewFilters
from insight_agent.vectorstore.themes import (
    ReviewSet,
    class_tfidf,
    compare_themes,
    ctfidf_weights,
    fetch_reviews,
    find_themes,
    fit_themes,
    holm,
)

# -- c-TF-IDF on hand-made input -----------------------------------------------------------------


def test_ctfidf_weights_match_the_formula():
    counts = np.array([[2, 1, 0], [0, 1, 3]])
    # A = mean words per class = (3 + 4) / 2; f = term totals over classes = (2, 2, 3)
    idf = np.log(1 + 3.5 / np.array([2, 2, 3]))
    tf = np.array([[2 / 3, 1 / 3, 0], [0, 1 / 4, 3 / 4]])
    np.testing.assert_allclose(ctfidf_weights(counts), tf * idf)
    # sparse input gives the same; a term nobody uses weighs 0 (no division by zero)
    from scipy import sparse

    np.testing.assert_allclose(ctfidf_weights(sparse.csr_matrix(counts)), tf * idf)
    assert ctfidf_weights(np.array([[1, 0], [2, 0]]))[:, 1].tolist() == [0.0, 0.0]


def test_class_tfidf_prefers_words_specific_to_a_class():
    docs = [
        "The order arrived late, late delivery again",
        "Late delivery and the courier lost my order",
        "Courier was late with the order",
        "The refund took weeks, support never replied about my order",
        "Support agent promised a refund for the order",
        "Asked support for a refund on the order twice",
        "The order size is too small, size chart is wrong",
        "Wrong size, the order runs small",
        "Order a size up, it runs small",
    ]
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    keywords = class_tfidf(docs, labels, 3, top_n=5)
    assert keywords[0][:2] == ["late", "courier"]
    assert "late delivery" in keywords[0]
    assert keywords[1][:2] == ["refund", "support"]
    assert keywords[2][:2] == ["size", "small"]
    # "order" is in every review of every class: frequent, but it ranks below every
    # class-specific word (its idf is the lowest)
    assert all("order" not in k[:3] for k in keywords)
    # stop words are gone, also from bigrams ("the order" never appears)
    assert not any(term in {"the", "the order", "was", "my"} for k in keywords for term in k)


def test_class_tfidf_edge_cases():
    assert class_tfidf([], [], 2) == [[], []]
    assert class_tfidf(["the", "it is"], [0, 1], 2) == [[], []]  # only stop words
    with pytest.raises(ValueError):
        class_tfidf(["a b"], [0, 1], 2)


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


# -- clustering on synthetic vectors --------------------------------------------------------------

_WORDS = {
    0: "parcel courier delivery late",
    1: "refund support agent email",
    2: "size fit small large",
}


def _synthetic(
    counts: dict[int, int], *, segments: dict[int, list[str]] | None = None, seed: int = 0
) -> ReviewSet:
    """Reviews around well-separated unit directions, one direction (and vocabulary) per
    group; ids are shuffled so sorting by id matters."""
    rng = np.random.default_rng(seed)
    centres = np.eye(384, dtype=np.float32)[: len(counts)]
    vectors, docs, metas = [], [], []
    for group, n in counts.items():
        noise = rng.normal(scale=0.03, size=(n, 384)).astype(np.float32)
        vectors.append(centres[group] + noise)
        for i in range(n):
            words = _WORDS[group].split()
            docs.append(f"{words[i % 4]} {words[(i + 1) % 4]} {words[(i + 2) % 4]} review")
            segment = segments[group][i] if segments else ""
            metas.append(
                {"review_id": f"R{group}-{i:04d}", "rating": float(1 + group), "segment": segment}
            )
    x = np.concatenate(vectors)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"rv-{h:08x}" for h in rng.permutation(len(docs)) * 7919]
    order = np.argsort(ids, kind="stable")
    return ReviewSet(
        ids=[ids[i] for i in order],
        vectors=x[order],
        documents=[docs[i] for i in order],
        metadatas=[metas[i] for i in order],
    )


def test_fit_themes_recovers_separated_groups_deterministically():
    reviews = _synthetic({0: 60, 1: 40, 2: 25})
    themes = fit_themes(reviews)
    assert themes.k == 3 and themes.k_chosen_by == "silhouette"
    assert [t["size"] for t in themes.themes] == [60, 40, 25]  # sorted by size, ids T1..T3
    assert [t["theme"] for t in themes.themes] == ["T1", "T2", "T3"]
    assert [t["avg_rating"] for t in themes.themes] == [1.0, 2.0, 3.0]
    assert themes.themes[0]["keywords"][0] in _WORDS[0].split()
    by_review = themes.theme_of()
    assert all(by_review[f"R{g}-0000"] == f"T{g + 1}" for g in range(3))
    for t in themes.themes:
        assert len(t["quotes"]) == 3 and len({q["review_id"] for q in t["quotes"]}) == 3
    assert fit_themes(reviews).to_dict() == themes.to_dict()
    assert fit_themes(reviews, k=2).k == 2


def test_tiny_and_empty_inputs():
    tiny = _synthetic({0: 4, 1: 3})
    themes = fit_themes(tiny)
    assert themes.k == 1 and themes.themes[0]["size"] == 7 and themes.themes[0]["share"] == 1.0
    assert "fewer than 10" in themes.k_chosen_by
    assert len(themes.themes[0]["quotes"]) == 3
    assert fit_themes(tiny, k=2).k == 2
    with pytest.raises(InsufficientData):
        fit_themes(tiny, k=8)
    with pytest.raises(ConfigError):
        fit_themes(tiny, k=0)
    empty = ReviewSet([], np.empty((0, 384), dtype=np.float32), [], [])
    with pytest.raises(InsufficientData):
        fit_themes(empty)


class _FakeCollection:
    """Enough of a Chroma collection for fetch_reviews: ``$in`` on segment, limit/offset."""

    def __init__(self, reviews: ReviewSet) -> None:
        self.reviews = reviews

    def get(self, *, where: Any, where_document: Any, include: Any, limit: int, offset: int):
        wanted = set(where["segment"]["$in"]) if where else None
        rows = [
            i
            for i, m in enumerate(self.reviews.metadatas)
            if wanted is None or m["segment"] in wanted
        ][offset : offset + limit]
        return {
            "ids": [self.reviews.ids[i] for i in rows],
            "embeddings": self.reviews.vectors[rows].astype(np.float64),
            "documents": [self.reviews.documents[i] for i in rows],
            "metadatas": [self.reviews.metadatas[i] for i in rows],
        }


class _FakeIndex:
    def __init__(self, reviews: ReviewSet) -> None:
        self.collection = _FakeCollection(reviews)


def test_compare_finds_no_difference_when_mixes_are_equal():
    # Each group is half A, half B: identical theme mixes, so nothing may be flagged.
    halves = {g: ["A", "B"] * 30 for g in range(3)}
    index = _FakeIndex(_synthetic({0: 60, 1: 60, 2: 60}, segments=halves))
    result = compare_themes(index, "A", "B")
    assert (result["reviews_a"], result["reviews_b"], result["k"]) == (90, 90, 3)
    assert result["significant_themes"] == [] and not result["chi_square"]["significant"]
    assert all(t["difference"] == 0 and t["p_value"] == 1.0 for t in result["themes"])


def test_compare_flags_a_planted_difference_and_adjusts_for_many_themes():
    # Group 0 is 80% A, group 1 20% A, group 2 half and half.
    segments = {0: ["A"] * 48 + ["B"] * 12, 1: ["A"] * 12 + ["B"] * 48, 2: ["A", "B"] * 30}
    index = _FakeIndex(_synthetic({0: 60, 1: 60, 2: 60}, segments=segments))
    result = compare_themes(index, "A", "B", k=3)
    by_theme = {t["theme"]: t for t in result["themes"]}
    assert sum(t["count_a"] for t in result["themes"]) == result["reviews_a"] == 90
    assert result["chi_square"]["significant"] and result["chi_square"]["dof"] == 2
    assert len(result["significant_themes"]) == 2
    for t in result["themes"]:
        assert 0 <= t["p_value"] <= t["p_adjusted"] <= 1
        assert t["share_a"] == round(t["count_a"] / 90, 3)
    largest = result["largest_difference"]
    assert abs(largest["difference"]) == pytest.approx(0.4, abs=0.001)
    assert largest["significant"] and by_theme[largest["theme"]]["p_value"] == largest["p_value"]
    with pytest.raises(InsufficientData):
        compare_themes(index, "A", "nobody")
    with pytest.raises(ConfigError):
        compare_themes(index, "A", "A")


# -- the demo workspace ---------------------------------------------------------------------------

# Words a theme about each planted aspect is expected to be labelled with.
ASPECT_WORDS = {
    "shipping": {"delivery", "delivered", "courier", "parcel", "shipping", "arrived", "dispatch"},
    "sizing": {"size", "fit", "fits", "smaller", "bigger", "dimensions", "tight", "small"},
    "price": {"price", "value", "money", "sale", "discount", "deal", "bargain", "expensive"},
    "quality": {"quality", "materials", "premium", "solid", "made", "flimsy", "finish"},
    "support": {"support", "service", "customer service", "refund", "agent", "team", "chat"},
}


@pytest.fixture(scope="module")
def ws(built_demo: Path):
    from insight_agent.workspace import Workspace, locate

    return Workspace.open(locate(built_demo))


@pytest.fixture(scope="module")
def index(ws):
    from insight_agent.vectorstore.store import open_index

    return open_index(ws.artifacts)


@pytest.fixture(scope="module")
def truth(built_demo: Path) -> pd.Series:
    frame = pd.read_csv(built_demo / "data" / "truth" / "reviews_truth.csv", dtype=str)
    return frame.set_index("review_id")["aspect"]


@pytest.fixture(scope="module")
def all_themes(index):
    return find_themes(index)


def test_themes_recover_the_planted_aspects(all_themes, truth):
    theme = pd.Series(all_themes.theme_of())
    themes = pd.DataFrame({"theme": theme, "aspect": truth.reindex(theme.index)})
    assert themes["aspect"].notna().all()
    mix = pd.crosstab(themes["theme"], themes["aspect"], normalize="index")
    keywords = {t["theme"]: t["keywords"] for t in all_themes.themes}
    for aspect, words in ASPECT_WORDS.items():
        dominated = mix.index[mix[aspect] >= 0.6].tolist()
        assert dominated, f"no theme is mostly about {aspect}:\n{mix.round(2)}"
        assert any(set(keywords[t][:5]) & words for t in dominated), (aspect, keywords)
    # Overall purity: each review is about one planted aspect, so a theme's reviews should
    # mostly share it (chance level here is about 0.25).
    purity = themes.groupby("theme")["aspect"].agg(lambda a: a.value_counts().iloc[0]).sum()
    assert purity / len(themes) >= 0.85


def test_every_review_is_in_exactly_one_theme(all_themes, index, truth):
    result = all_themes.to_dict()
    assert result["reviews"] == index.count() == 4000
    assert sum(t["size"] for t in result["themes"]) == 4000
    assert math.isclose(sum(t["share"] for t in result["themes"]), 1.0, abs_tol=0.01)
    assert set(all_themes.theme_of()) == set(truth.index)
    sizes = [t["size"] for t in result["themes"]]
    assert sizes == sorted(sizes, reverse=True)
    assert [t["theme"] for t in result["themes"]] == [f"T{i + 1}" for i in range(len(sizes))]
    assert 2 <= result["k"] <= 12 and result["k_chosen_by"] == "silhouette"
    for theme in result["themes"]:
        assert len(theme["keywords"]) == 8
        assert theme["label"] and len(theme["label"].split(", ")) == 3
        assert 1 <= theme["avg_rating"] <= 5 and 0 <= theme["share_negative"] <= 1
        assert len(theme["quotes"]) == 3
        for quote in theme["quotes"]:
            assert all_themes.theme_of()[quote["review_id"]] == theme["theme"]
            assert quote["text"]


def test_review_themes_is_deterministic_and_json_ready(ws):
    import json

    from insight_agent.vectorstore.queries import review_themes

    first = review_themes(ws)
    assert review_themes(ws) == first
    assert json.loads(json.dumps(first)) == first
    assert first["largest_theme"]["theme"] == "T1"
    assert first["most_negative_theme"]["share_negative"] == max(
        t["share_negative"] for t in first["themes"]
    )


def _segment_id(ws, name: str) -> str:
    from insight_agent.analytics.artifacts import current_build, read_json

    names = read_json(current_build(ws), "segments.json")["names"]
    return next(sid for sid, n in names.items() if n == name)


def test_a_segment_run_only_holds_that_segments_reviews(ws, index):
    from insight_agent.vectorstore.queries import review_themes

    name = "Bargain hunters"
    in_segment = index.collection.get(where={"segment": name}, include=[])["ids"]
    by_id = review_themes(ws, segment=_segment_id(ws, name))  # ids are accepted too
    assert by_id["filters"] == {"segment": name}
    # aspect themes: a review may speak to several, so sizes add up to at least the reviews
    assert by_id["reviews"] == len(in_segment) <= sum(t["size"] for t in by_id["themes"])
    assert all(t["size"] <= by_id["reviews"] for t in by_id["themes"])
    whole = review_themes(ws, segment=name, whole_reviews=True)  # one theme per review
    assert whole["reviews"] == len(in_segment) == sum(t["size"] for t in whole["themes"])
    fitted = find_themes(index, ReviewFilters(segment=name))
    assert sorted(fitted.reviews.ids) == sorted(in_segment)
    assert all(m["segment"] == name for m in fitted.reviews.metadatas)
    assert all(q["segment"] == name for t in by_id["themes"] for q in t["quotes"])


def test_rating_and_sentiment_filters(ws):
    from insight_agent.vectorstore.queries import review_themes

    high = review_themes(ws, min_rating=4)
    assert all(t["avg_rating"] >= 4 for t in high["themes"])
    assert all(q["rating"] >= 4 for t in high["themes"] for q in t["quotes"])
    negative = review_themes(ws, sentiment="negative", k=4)
    assert negative["k"] == 4 and negative["k_chosen_by"] == "given"
    assert all(t["share_negative"] == 1.0 for t in negative["themes"])
    with pytest.raises(ConfigError):
        review_themes(ws, sentiment="angry")
    with pytest.raises(InsufficientData):
        review_themes(ws, min_rating=5, max_rating=1)


def test_paged_fetch_matches_one_page(index):
    where = ReviewFilters(segment="Lapsing customers").where()
    whole = fetch_reviews(index, where)
    paged = fetch_reviews(index, where, page=97)
    assert whole.ids == paged.ids and whole.ids == sorted(whole.ids)
    np.testing.assert_array_equal(whole.vectors, paged.vectors)


def test_comparing_two_demo_segments_finds_the_planted_mix(ws, truth):
    # The generator plants price talk in half of bargain hunters' reviews (8% for loyal high
    # spenders) and quality in 46% of loyal high spenders' reviews (14% for bargain hunters).
    from insight_agent.vectorstore.queries import compare_segment_themes

    result = compare_segment_themes(ws, "Bargain hunters", _segment_id(ws, "High-value loyal"))
    assert result["segment_b"] == "High-value loyal"
    assert result["reviews"] == result["reviews_a"] + result["reviews_b"]
    for theme in result["themes"]:
        assert 0 <= theme["p_value"] <= 1 and 0 <= theme["p_adjusted"] <= 1
    assert result["chi_square"]["significant"] and 0 <= result["chi_square"]["p_value"] < 0.05
    significant = {t["theme"]: t for t in result["themes"] if t["significant"]}
    assert set(significant) == set(result["significant_themes"])
    words = {t["theme"]: set(t["keywords"][:5]) for t in result["themes"]}
    price = [t for t in significant if words[t] & ASPECT_WORDS["price"] - {"value"}]
    quality = [t for t in significant if words[t] & {"quality", "premium", "materials"}]
    assert price and significant[price[0]]["difference"] > 0.2
    assert quality and significant[quality[0]]["difference"] < -0.15
    largest = result["largest_difference"]
    assert largest["theme"] in significant and largest["p_value"] < 0.05
    assert set(largest) >= {"theme", "label", "share_a", "share_b", "p_value"}


def test_an_empty_index_says_to_build(tmp_path):
    from insight_agent.vectorstore.queries import compare_segment_themes, review_themes
    from insight_agent.workspace import Workspace, locate
    from tests.conftest import write_workspace

    ws = Workspace.open(locate(write_workspace(tmp_path / "ws", {})))
    for call in (lambda: review_themes(ws), lambda: compare_segment_themes(ws, "A", "B")):
        with pytest.raises(ConfigError) as info:
            call()
        assert "insight build" in (info.value.hint or "")
