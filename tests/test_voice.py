"""Voice of the customer on real review text (tests/fixtures/public/womens_clothing_reviews, CC0):
opinion units, the trained sentiment model, negation- and antonym-aware matching, exact counts,
aspect themes, case-insensitive filters."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insight_agent.vectorstore.aspects import DEFAULT_ASPECTS, match_aspects, unit_stems
from insight_agent.vectorstore.opinions import MatchRule, brute_force_count, count_matches
from insight_agent.vectorstore.units import excerpt, split_units
from tests.conftest import FIXTURES, write_workspace

CLOTHING = FIXTURES / "public" / "womens_clothing_reviews" / "womens_clothing_reviews_5000.csv"

# -- opinion units -------------------------------------------------------------------------------


def test_units_split_sentences_and_contrasts_and_keep_spans():
    text = (
        "Love the colour but it runs small. Ok! The fabric is itchy; returned it.\nWould buy again."
    )
    units = split_units(text)
    assert [u.text for u in units] == [
        "Love the colour",
        "but it runs small. Ok!",
        "The fabric is itchy; returned it.",
        "Would buy again.",
    ]
    assert all(text[u.start : u.end] == u.text for u in units)
    assert [u.unit_no for u in units] == [0, 1, 2, 3]
    assert split_units("") == [] and split_units("   ") == []
    assert [u.text for u in split_units("Great.")] == ["Great."]  # one short review: one unit
    # decimals and sizes do not end a sentence; a long run-on is cut at word boundaries
    assert len(split_units("I am 5.5 ft and the 2.0 version fits.")) == 1
    long = " ".join(["word"] * 130)
    assert [len(u.text.split()) for u in split_units(long)] == [60, 60, 10]


def test_excerpt_keeps_the_unit_whole_and_cuts_at_words():
    text = "First sentence here. " * 20 + "The zipper broke on day two. " + "Filler words. " * 30
    start = text.index("The zipper")
    end = start + len("The zipper broke on day two.")
    before, unit, after = excerpt(text, start, end, width=120)
    assert unit == "The zipper broke on day two."
    assert before.startswith("… ") and after.endswith(" …")
    assert len(before) + len(unit) + len(after) <= 130
    assert excerpt("short", 0, 5) == ("", "short", "")


# -- matching rules (no model needed) ----------------------------------------------------------


def test_negated_and_opposite_matches_are_demoted():
    itchy = MatchRule.for_query("itchy")
    assert itchy.adjust("it was so itchy") > 0
    assert itchy.adjust("not itchy at all") < 0
    assert itchy.adjust("the wool doesn't itch") < 0
    assert itchy.adjust("cozy without being itchy") < 0
    small = MatchRule.for_query("runs small")
    assert small.adjust("runs a little big") < 0 < small.adjust("it runs very small")
    # a query that negates wants the negated use
    not_itchy = MatchRule.for_query("not itchy")
    assert not_itchy.adjust("not itchy at all") > 0 > not_itchy.adjust("it was itchy")


# -- the trained sentiment model -----------------------------------------------------------------


def test_trained_sentiment_beats_the_lexicon_on_real_reviews(tmp_path):
    from insight_agent.config import load_settings
    from insight_agent.data.load import load_dataset
    from insight_agent.vectorstore.textmodel import load_text_model, train_text_sentiment

    ws = write_workspace(tmp_path / "ws", {"reviews": CLOTHING})
    reviews = load_dataset(load_settings(ws)).reviews
    model = train_text_sentiment(reviews["text"], reviews["rating"])
    assert model is not None
    assert model.cv_auc >= 0.93, model.cv_auc  # the bar; TF-IDF + LR on this text
    assert model.lexicon_auc is not None and model.lexicon_auc < model.cv_auc - 0.08
    p = model.predict_positive(["itchy and thin, returned it", "love it, fits perfectly"])
    assert p[0] < 0.35 < 0.65 <= p[1]
    assert p.min() > 0.0 and p.max() < 1.0
    model.save(tmp_path / "m")
    again = load_text_model(tmp_path / "m")
    assert again is not None
    assert np.allclose(again.predict_positive(["itchy"]), model.predict_positive(["itchy"]))
    # too few ratings: no model (the lexicon is used, and the build says so)
    assert train_text_sentiment(reviews["text"].head(50), reviews["rating"].head(50)) is None


def test_the_exported_term_scorer_equals_the_trained_pipeline(tmp_path):
    """A search scores its query without scikit-learn, with the same numbers."""
    from insight_agent.vectorstore.textmodel import _pipeline
    from insight_agent.vectorstore.textscore import export_terms, load_term_scorer

    frame = pd.read_csv(CLOTHING).dropna(subset=["Review Text", "Rating"]).head(1500)
    texts = frame["Review Text"].astype(str).tolist()
    pipeline = _pipeline().fit(texts[:1000], (frame["Rating"].head(1000) >= 4).astype(int))
    export_terms(pipeline, tmp_path)
    scorer = load_term_scorer(tmp_path)
    assert scorer is not None
    probe = [*texts[1000:], "", "runs small", "Not itchy at all!", "Café crème, naïve façade",
             "RUNS SMALL!!! runs small", "x y z 12 34"]  # fmt: skip
    expected = pipeline.predict_proba(probe)[:, 1]
    np.testing.assert_allclose(scorer.predict_positive(probe), expected, rtol=0, atol=1e-9)


# -- a built reviews-only workspace of real reviews -----------------------------------------------

pytest.importorskip("onnxruntime")
SUBSET = 400


@pytest.fixture(scope="module")
def clothing_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 400 fixture reviews, built (review index, opinion units, sentiment model)."""
    from typer.testing import CliRunner

    from insight_agent.cli import app

    root = tmp_path_factory.mktemp("clothing")
    data = root / "reviews.csv"
    pd.read_csv(CLOTHING).head(SUBSET).to_csv(data, index=False)
    ws = write_workspace(root / "ws", {"reviews": data})
    result = CliRunner().invoke(app, ["build", "-w", str(ws)])
    assert result.exit_code == 0, result.output
    return ws


@pytest.fixture(scope="module")
def units(clothing_ws):
    from insight_agent.vectorstore.unitstore import UnitTable, unit_dir

    table = UnitTable.load(unit_dir(clothing_ws / ".insight"))
    assert table is not None
    return table


def _vector(text: str) -> np.ndarray:
    from insight_agent.vectorstore.embedder import shared_embedder

    return shared_embedder(threads=1).embed([text])[0]


def test_the_build_writes_units_with_sentiment_and_a_calibrated_threshold(clothing_ws, units):
    from insight_agent.vectorstore.unitstore import THRESHOLD_FLOOR

    assert units.n_reviews >= SUBSET - 20  # reviews without text or title are dropped
    assert len(units) > 3 * units.n_reviews  # several sentences per review
    assert units.sentiment_source == "model"
    assert set(units.units["sentiment"].unique()) <= {"negative", "neutral", "positive"}
    assert THRESHOLD_FLOOR <= units.threshold < 0.9
    assert (clothing_ws / ".insight" / "reviews" / "sentiment.joblib").is_file()
    # stems stored at ingest, so aspect matching does not tokenize every unit per question
    texts = units.units["text"].astype(str).tolist()
    assert units.units["stems"].tolist() == unit_stems(texts)
    expected = [_one_aspect(t) for t in texts[:400]]
    assert match_aspects(texts[:400], DEFAULT_ASPECTS).tolist() == expected


def _one_aspect(text: str) -> int:
    """The aspect rule for one text, spelled out: most seed hits, ties to list order."""
    from insight_agent.vectorstore.aspects import _WORD
    from insight_agent.vectorstore.opinions import stem

    low = text.lower()
    stems = [stem(w) for w in _WORD.findall(low)]
    best, best_hits = -1, 0
    for a, words in enumerate(DEFAULT_ASPECTS.values()):
        singles = {stem(w) for w in words if " " not in w}
        hits = sum(s in singles for s in stems) + sum(p in low for p in words if " " in p)
        if hits > best_hits:
            best, best_hits = a, hits
    return best


@pytest.mark.parametrize("query", ["runs small", "itchy", "zipper broke", "not itchy", "colour"])
def test_counts_equal_a_brute_force_scan(units, query):
    vector = _vector(query)
    fast = count_matches(units, vector, query)
    assert fast["matching_reviews"] == brute_force_count(units, vector, query)
    assert fast["reviews_in_scope"] == units.n_reviews
    # a filter: the base and the count both narrow to it
    from insight_agent.vectorstore.search import ReviewFilters

    dresses = ReviewFilters(category="dresses")  # any case
    scoped = count_matches(units, vector, query, filters=dresses)
    docs = np.flatnonzero(units.reviews.mask(dresses))
    assert scoped["reviews_in_scope"] == len(docs)
    assert scoped["matching_reviews"] == brute_force_count(units, vector, query, docs)


def test_adjust_many_equals_adjust_on_every_unit(units):
    """The substring pre-check only skips units the rule gives 0."""
    texts = units.units["text"].astype(str).tolist()
    for query in ("runs small", "not itchy", "zipper broke", "love the color", "too big"):
        rule = MatchRule.for_query(query)
        expected = np.array([rule.adjust(t) for t in texts])
        assert np.array_equal(rule.adjust_many(texts), expected), query


def test_count_by_group_adds_up_and_lower_threshold_counts_more(units):
    vector = _vector("runs small")
    result = count_matches(units, vector, "runs small", by="category")
    assert sum(g["matching"] for g in result["groups"]) == result["matching_reviews"]
    assert sum(g["reviews"] for g in result["groups"]) == result["reviews_in_scope"]
    looser = count_matches(units, vector, "runs small", threshold=units.threshold - 0.1)
    assert looser["matching_reviews"] > result["matching_reviews"]


def test_a_negated_match_ranks_below_a_true_complaint(clothing_ws, units):
    from insight_agent.vectorstore.opinions import search_units

    hits = search_units(units, _vector("itchy"), "itchy", k=20, query_positive=0.15)
    texts = [h["unit"].lower() for h in hits]
    negators = ("not ", "n't", "without", "no ")
    true = [i for i, t in enumerate(texts) if "itch" in t and not any(n in t for n in negators)]
    negated = [i for i, t in enumerate(texts) if "itch" in t and any(n in t for n in negators)]
    assert true, texts
    assert not negated or min(true) < min(negated)
    small = search_units(units, _vector("runs small"), "runs small", k=10)
    assert all("small" in h["unit"].lower() for h in small[:5]), [h["unit"] for h in small]


def test_quotes_from_negative_reviews_are_their_complaints(clothing_ws, units, monkeypatch):
    """Filtered to negative reviews, a neutral topic's hits quote the reviews' negative
    sentences first: "colour" in a 1-star review is its complaint, not its "love the
    colour"; positive reviews lean the other way."""
    from insight_agent.vectorstore import opinions
    from insight_agent.vectorstore.search import ReviewFilters

    def positive_units(sentiment: str) -> int:
        hits = opinions.search_units(
            units, _vector("colour"), "colour", k=20, filters=ReviewFilters(sentiment=sentiment)
        )
        assert len(hits) == 20
        return sum(h["unit_sentiment"] == "positive" for h in hits)

    leaning = positive_units("negative"), positive_units("positive")
    monkeypatch.setattr(opinions, "POLARITY_WEIGHT", 0.0)
    flat = positive_units("negative"), positive_units("positive")
    assert leaning[0] < flat[0], (leaning, flat)
    assert leaning[1] >= flat[1], (leaning, flat)


def test_aspect_themes_are_aspects_and_deterministic(units):
    from insight_agent.vectorstore.aspects import find_aspect_themes

    first = find_aspect_themes(units).to_dict()
    second = find_aspect_themes(units).to_dict()
    assert first == second
    aspects = {t["aspect"] for t in first["themes"] if t["aspect"]}
    assert {"sizing/fit", "material/fabric"} <= aspects
    assert len(aspects & {"sizing/fit", "material/fabric", "quality/durability", "colour",
                          "price/value"}) >= 4, aspects  # fmt: skip
    for theme in first["themes"]:
        assert 0 < theme["share"] <= 1 and theme["units"] >= 1
        assert len(theme["quotes"]) <= 3
        for quote in theme["quotes"]:
            assert quote["review_id"] in set(units.review_ids.tolist())
    # sizing is the most talked-about aspect of clothing
    assert first["themes"][0]["label"] == "sizing/fit"


@pytest.mark.parametrize(
    ("query", "aspect"),
    [
        ("returns", "returns/refunds"),
        ("returning the item", "returns/refunds"),
        ("complaints about the fabric", "material/fabric"),
        ("quality issues", "quality/durability"),
        ("customer service", "customer service"),
        ("Colour", "colour"),
        ("runs small", None),  # an opinion: matched as a phrase
        ("zipper broke", None),
        ("rude customer service", None),
        ("late delivery", None),
    ],
)
def test_a_count_query_naming_an_aspect_counts_the_aspect(query, aspect):
    from insight_agent.vectorstore.aspects import DEFAULT_ASPECTS, aspect_list, query_aspect

    assert query_aspect(query, DEFAULT_ASPECTS) == aspect
    # an aspect added in insight.toml is named by its own words
    assert query_aspect("hood", aspect_list({"hood": ["hood", "hoodie"]})) == "hood"


def test_an_aspect_count_equals_the_aspect_theme(units):
    """'How many reviews mention returns' and the returns theme are one figure, in any scope."""
    from insight_agent.vectorstore.aspects import DEFAULT_ASPECTS, count_aspect, find_aspect_themes
    from insight_agent.vectorstore.search import ReviewFilters

    for filters in (None, ReviewFilters(max_rating=2)):
        themes = find_aspect_themes(units, filters).to_dict()
        for name in ("returns/refunds", "material/fabric", "sizing/fit"):
            theme = next(t for t in themes["themes"] if t["aspect"] == name)
            got = count_aspect(units, name, name, DEFAULT_ASPECTS, filters=filters)
            assert got["matching_reviews"] == theme["size"], (name, filters)
            assert got["reviews_in_scope"] == themes["reviews"]
    every = count_aspect(units, "fit", "sizing/fit", DEFAULT_ASPECTS)
    negative = count_aspect(units, "fit", "sizing/fit", DEFAULT_ASPECTS, tone="negative")
    assert 0 < negative["matching_reviews"] < every["matching_reviews"]


def test_review_vectors_are_the_mean_of_their_unit_vectors(clothing_ws, units):
    """Ingest embeds each text once: a review's Chroma vector is its units' normalised mean."""
    from insight_agent.vectorstore.store import open_index

    index = open_index(clothing_ws / ".insight")
    ids = units.reviews.ids[:20].tolist()
    got = index.collection.get(ids=ids, include=["embeddings"])
    stored = dict(zip(got["ids"], np.asarray(got["embeddings"], dtype=np.float32), strict=True))
    doc = units.units["doc"].to_numpy()
    for d, doc_id in enumerate(ids):
        mean = np.asarray(units.vectors[doc == d], dtype=np.float32).mean(axis=0)
        mean /= np.linalg.norm(mean)
        assert float(stored[doc_id] @ mean) > 0.999


def test_search_and_count_answer_from_the_unit_table_without_chroma(clothing_ws, monkeypatch):
    """Same hits and counts as through Chroma, and a cold process never imports chromadb."""
    import subprocess
    import sys

    from insight_agent.config import load_settings
    from insight_agent.vectorstore import queries
    from insight_agent.workspace import Workspace

    ws = Workspace(load_settings(clothing_ws))
    local = queries.review_search(ws, "runs small", k=5, category="dresses")
    counted = queries.review_count(ws, "zipper broke", by="category")
    monkeypatch.setattr(queries, "local_units", lambda ws: None)
    via_chroma = queries.review_search(ws, "runs small", k=5, category="dresses")
    assert local == via_chroma and local["count"] == 5
    again = queries.review_count(ws, "zipper broke", by="category")
    assert counted["matches"].equals(again["matches"])
    code = (
        "import sys; from pathlib import Path; from insight_agent.config import load_settings;"
        "from insight_agent.workspace import Workspace;"
        "from insight_agent.vectorstore.queries import review_search, review_count;"
        f"ws = Workspace(load_settings(Path({str(clothing_ws)!r})));"
        "assert review_search(ws, 'itchy', k=3)['count'] == 3;"
        "review_count(ws, 'runs small');"
        "print(sorted(m for m in ('chromadb', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def _unit_dirs(clothing_ws: Path, tmp_path: Path) -> list[Path]:
    """The built unit table, and a copy as tables were written before columns.npz."""
    import shutil

    from insight_agent.vectorstore.unitstore import COLUMNS_FILE, unit_dir

    built = unit_dir(clothing_ws / ".insight")
    assert (built / COLUMNS_FILE).is_file()
    older = tmp_path / "units"
    shutil.copytree(built, older, ignore=shutil.ignore_patterns(COLUMNS_FILE))
    return [built, older]


def test_a_loaded_unit_table_reads_its_columns_as_the_frame_holds_them(clothing_ws, tmp_path):
    """A loaded table gives each column as pandas would (values and dtypes), from
    columns.npz or, in a table written before it, from units.parquet; its frame, when asked
    for, is the one pd.read_parquet gives; the keyword mask is the same without pandas."""
    from insight_agent.vectorstore.unitstore import UnitTable

    for directory in _unit_dirs(clothing_ws, tmp_path):
        expected = pd.read_parquet(directory / "units.parquet")
        loaded = UnitTable.load(directory)
        assert loaded is not None and loaded.frame is None and len(loaded) == len(expected)
        for name in expected.columns:
            got, want = loaded.column(name), expected[name].to_numpy()
            assert got.dtype == want.dtype, name
            assert got.tolist() == want.tolist(), name
        framed = UnitTable.load(directory)
        assert framed is not None
        pd.testing.assert_frame_equal(framed.units, expected)
        for keyword in ("zipper", "ZIPPER", "Size", "it's", "é", "runs small", "no such words"):
            got_mask = loaded.contains_mask(keyword).tolist()
            assert got_mask == framed.contains_mask(keyword).tolist(), keyword


def test_search_from_disk_equals_search_over_the_frame(clothing_ws, tmp_path):
    """The hits a cold search finds from the stored columns (columns.npz, or units.parquet
    read with pyarrow) are those the pandas frame gives, for unfiltered and filtered
    searches."""
    from insight_agent.vectorstore.opinions import search_units
    from insight_agent.vectorstore.search import ReviewFilters
    from insight_agent.vectorstore.unitstore import UnitTable

    scopes = [
        None,
        ReviewFilters(),
        ReviewFilters(min_rating=4),
        ReviewFilters(sentiment="negative"),
        ReviewFilters(category="Dresses", max_rating=3),
        ReviewFilters(contains="zipper"),
    ]
    for directory in _unit_dirs(clothing_ws, tmp_path):
        from_disk, framed = UnitTable.load(directory), UnitTable.load(directory)
        assert from_disk is not None and framed is not None
        framed.units  # noqa: B018 - the frame, as every table had before
        for query in ("runs small", "not itchy", "zipper broke", "love the colour"):
            vector = _vector(query)
            for filters in scopes:
                for positive in (None, 0.2, 0.9):
                    a = search_units(from_disk, vector, query, k=7, filters=filters,
                                     query_positive=positive)  # fmt: skip
                    b = search_units(framed, vector, query, k=7, filters=filters,
                                     query_positive=positive)  # fmt: skip
                    assert a == b and a, (directory, query, filters, positive)
        assert from_disk.frame is None  # the search never built one


def test_a_cold_cli_search_imports_neither_pandas_nor_chromadb_nor_sklearn(clothing_ws):
    """`insight reviews search` in a fresh interpreter, without and with filters: answered
    from the unit table without pandas (a third of its cold time), chromadb or scikit-learn,
    and without pyarrow unless a keyword must be matched."""
    import subprocess
    import sys

    ws = str(clothing_ws)
    # the build's ingest left the optimized model copy, so a search does not optimize again
    assert (clothing_ws / ".insight" / "embedder" / "minilm-int8" / "model.data").is_file()
    heavy = ("pandas", "chromadb", "sklearn", "scipy", "langchain_core", "pyarrow")
    for filters in ([], ["--min-rating", "4", "--category", "dresses"],
                    ["--sentiment", "negative", "--contains", "size"]):  # fmt: skip
        if "--contains" in filters:  # the keyword is matched with pyarrow, as pandas does
            heavy = heavy[:-1]
        code = (
            "import sys\n"
            "from insight_agent.cli import main\n"
            f"sys.argv = ['insight', 'reviews', 'search', 'runs small', '-k', '3', '--json',"
            f" '-w', {ws!r}, *{filters!r}]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "import gc\n"  # a read-only command: its shutdown skips the cyclic collector
            "assert gc.get_freeze_count() > 0\n"
            f"print('LOADED', sorted(m for m in {heavy!r} if m in sys.modules))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
        )
        assert '"count": 3' in out.stdout, out.stdout + out.stderr
        assert out.stdout.strip().endswith("LOADED []"), (filters, out.stdout[-300:], out.stderr)


def test_only_the_console_script_freezes_the_collector(clothing_ws):
    """An in-process search (tests, CliRunner) leaves the garbage collector as it was."""
    import gc

    from typer.testing import CliRunner

    from insight_agent.cli import app

    before = gc.get_freeze_count()
    result = CliRunner().invoke(app, ["reviews", "search", "zipper", "-w", str(clothing_ws)])
    assert result.exit_code == 0, result.output
    assert gc.get_freeze_count() == before


def test_cli_count_search_themes_and_filters(clothing_ws, tmp_path):
    from typer.testing import CliRunner

    from insight_agent.cli import app

    run = CliRunner()
    ws = ["-w", str(clothing_ws)]
    out = run.invoke(
        app,
        [
            "reviews",
            "count",
            "runs small",
            "--by",
            "category",
            "--export",
            str(tmp_path / "m.csv"),
            *ws,
        ],
    )
    assert out.exit_code == 0, out.output
    assert "reviews (" in out.output and "category" in out.output
    exported = pd.read_csv(tmp_path / "m.csv")
    assert list(exported.columns) == [
        "review_id",
        "source_row",
        "doc_id",
        "matching_unit",
        "score",
    ]
    source = pd.read_csv(CLOTHING).head(SUBSET)  # row 1 is the header: data row r is r - 2
    words = re.compile(r"\W+")  # the workspace joins title and text with ". "
    for row in exported.itertuples():
        said = " ".join(str(v) for v in source.iloc[row.source_row - 2][["Title", "Review Text"]])
        unit = words.sub(" ", row.matching_unit).strip()[:25]
        assert unit in words.sub(" ", said), (row.source_row, row.matching_unit)
    aspect = run.invoke(app, ["reviews", "count", "returns", "--json", *ws])
    phrase = run.invoke(app, ["reviews", "count", "returns", "--phrase", "--json", *ws])
    assert aspect.exit_code == 0 and phrase.exit_code == 0, aspect.output + phrase.output
    import json

    assert json.loads(aspect.output)["aspect"] == "returns/refunds"
    assert json.loads(phrase.output)["matched_as"] == "phrase"
    lower = run.invoke(
        app, ["reviews", "search", "zipper", "--category", "dresses", "-k", "2", *ws]
    )
    upper = run.invoke(
        app, ["reviews", "search", "zipper", "--category", "DRESSES", "-k", "2", *ws]
    )
    assert lower.exit_code == 0 and lower.output == upper.output and "Dresses" in lower.output
    unknown = run.invoke(app, ["reviews", "search", "zipper", "--category", "shoes", *ws])
    assert unknown.exit_code != 0 and "Dresses" in unknown.output  # the error lists the choices
    card = run.invoke(app, ["reviews", "model-card", *ws])
    assert card.exit_code == 0 and "CV AUC" in card.output
    themes = run.invoke(app, ["reviews", "themes", "--by", "category", *ws])
    assert themes.exit_code == 0 and "sizing/fit" in themes.output


def test_product_and_category_filters_ignore_case():
    from insight_agent.vectorstore.search import ReviewFilters
    from insight_agent.vectorstore.store import FilterTable

    meta = pd.DataFrame(
        {
            "segment": ["", "", ""],
            "sentiment": ["positive", "negative", "neutral"],
            "product": ["Wrap Dress", "wrap dress", "Jeans"],
            "category": ["Dresses", "Dresses", "Bottoms"],
            "rating": [5.0, 1.0, 3.0],
            "date": [20250101, 20250102, 20250103],
        }
    )
    table = FilterTable.from_frame(["a", "b", "c"], meta)
    for wanted in ("wrap dress", "WRAP DRESS", "Wrap Dress"):
        assert table.mask(ReviewFilters(product=wanted)).tolist() == [True, True, False]
    assert table.mask(ReviewFilters(category="bottoms")).tolist() == [False, False, True]
    assert ReviewFilters(product="JEANS").matches({"product": "Jeans"}, "text")
    assert ReviewFilters(contains="ZIPPER").matches({}, "the zipper broke")
    assert ReviewFilters(contains="ZIPPER").where_document() == {"$regex": "(?i)ZIPPER"}


def test_unit_table_reuses_the_vectors_of_unchanged_reviews(tmp_path):
    """A re-ingest embeds only new or edited reviews' units; the table round-trips on disk."""
    from insight_agent.vectorstore.store import FilterTable
    from insight_agent.vectorstore.unitstore import UnitTable, build_unit_table

    embedded: list[str] = []

    def embed(texts: list[str]) -> np.ndarray:
        embedded.extend(texts)
        rng = np.random.default_rng([len(t) for t in texts] or [0])
        v = rng.normal(size=(len(texts), 8)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def score(texts: list[str]) -> np.ndarray:
        return np.array([0.1 if "broke" in t else 0.9 for t in texts])

    def table_for(docs: list[str], texts: list[str], previous=None) -> UnitTable:
        meta = pd.DataFrame(
            {c: [""] * len(docs) for c in ("segment", "sentiment", "product", "category")}
            | {"rating": [5.0] * len(docs), "date": [0] * len(docs)}
        )
        reviews = FilterTable.from_frame(docs, meta)
        return build_unit_table(
            docs, docs, texts, reviews, embed=embed, score=score, sentiment_source="model",
            previous=previous, previous_doc_ids=None if previous is None else previous.reviews.ids,
        )  # fmt: skip

    texts = ["Love the colour. The zipper broke on day two.", "Runs small, size up."]
    first = table_for(["d1", "d2"], texts)
    assert len(first) == 3 and embedded == ["Love the colour.", "The zipper broke on day two.",
                                            "Runs small, size up."]  # fmt: skip
    assert first.units["sentiment"].tolist() == ["positive", "negative", "positive"]
    first.save(tmp_path / "units")
    loaded = UnitTable.load(tmp_path / "units")
    assert loaded is not None and len(loaded) == 3
    embedded.clear()
    # d2 unchanged (same id), d3 new: only d3's unit is embedded, d2's vector is reused
    second = table_for(["d2", "d3"], [texts[1], "Arrived late."], previous=loaded)
    assert embedded == ["Arrived late."]
    np.testing.assert_array_equal(second.vectors[0], np.asarray(loaded.vectors[2]))


def test_unit_vectors_streamed_to_disk_equal_the_in_memory_build(tmp_path):
    """An ingest writes unit vectors block by block to a file (memory stays flat): the table,
    its threshold and the vectors read back with plain reads equal an in-memory build."""
    from insight_agent.vectorstore.store import FilterTable, MetaRows, review_vectors
    from insight_agent.vectorstore.unitstore import UnitTable, build_unit_table

    rng = np.random.default_rng(7)
    words = ["fit", "fabric", "zipper", "colour", "price", "runs", "small", "soft", "broke"]
    texts = [
        ". ".join(" ".join(rng.choice(words, 4)) for _ in range(rng.integers(1, 5))) + "."
        for _ in range(400)
    ]
    docs = [f"d{i}" for i in range(len(texts))]

    def embed(batch: list[str]) -> np.ndarray:
        v = np.array([[hash((t, j)) % 997 for j in range(16)] for t in batch], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def score(batch: list[str]) -> np.ndarray:
        return np.array([0.2 if "broke" in t else 0.8 for t in batch])

    meta = pd.DataFrame(
        {c: ["x"] * len(docs) for c in ("segment", "sentiment", "product", "category")}
        | {"rating": [5.0] * len(docs), "date": [0] * len(docs)}
    )
    reviews = FilterTable.from_frame(docs, meta)
    kwargs = {"embed": embed, "score": score, "sentiment_source": "model", "batch_size": 64}
    memory = build_unit_table(docs, docs, texts, reviews, **kwargs)
    streamed = build_unit_table(docs, docs, texts, reviews, workdir=tmp_path / "w", **kwargs)
    assert isinstance(streamed.vectors, np.memmap) and streamed.staged
    np.testing.assert_array_equal(np.asarray(streamed.vectors), memory.vectors)
    assert streamed.threshold == memory.threshold
    pd.testing.assert_frame_equal(streamed.units, memory.units)
    rows = rng.integers(0, len(memory), 300)
    np.testing.assert_array_equal(
        streamed.vector_rows(rows), memory.vectors[rows].astype(np.float32)
    )
    some = [5, 0, 399, 17]
    np.testing.assert_allclose(review_vectors(streamed, some), review_vectors(memory, some))
    streamed.save(tmp_path / "units")
    assert not (tmp_path / "w" / "vectors.npy").exists()  # moved into the table, not copied
    loaded = UnitTable.load(tmp_path / "units")
    assert loaded is not None
    np.testing.assert_array_equal(np.asarray(loaded.vectors), memory.vectors)
    np.testing.assert_array_equal(streamed.vector_rows(rows), loaded.vector_rows(rows))
    records = MetaRows(meta)
    assert len(records) == len(meta) and records[399] == meta.to_dict(orient="records")[399]
    assert records[-1] == records[399] and records[1:3] == meta.iloc[1:3].to_dict("records")


def test_router_on_a_reviews_only_workspace(clothing_ws):
    """Real review questions get themes with the asked polarity and category, a topic gets
    a search, and order, segment or churn questions say what data is missing."""
    from insight_agent.agent.session import SessionOptions, open_session
    from insight_agent.data.bootstrap import open_workspace

    session = open_session(
        open_workspace(clothing_ws), llm="none", options=SessionOptions(transcript=False)
    )
    routed = {
        "what do shoppers dislike about dresses?": (
            "review_themes", {"sentiment": "negative", "category": "Dresses"}),
        "is fit a bigger problem than fabric?": ("review_themes", {"sentiment": "negative"}),
        "what are the main complaints?": ("review_themes", {"sentiment": "negative"}),
        "what do customers complain about regarding the zipper?": (
            "search_reviews", {"query": "zipper", "sentiment": "negative"}),
        "which department gets the worst ratings?": (
            "query_metrics", {"measures": ["average_rating"], "by": ["category"]}),
        "which dept gets the most 'too tight' comments": (
            "count_reviews", {"query": "too tight", "by": "category"}),
        "what % of tops reviews complain about shrinking after a wash?": (
            "count_reviews", {"query": "shrinking after a wash", "category": "Tops",
                              "tone": "negative"}),
        "How many reviews say things run small, and which category gets that the most?": (
            "count_reviews", {"query": "things run small", "by": "category"}),
        "show me some quotes abt tops being see-through": (
            "search_reviews", {"query": "see-through", "category": "Tops"}),
    }  # fmt: skip
    for question, (tool, args) in routed.items():
        turn = session.ask(question)
        call = turn.tool_calls[0]
        assert call["tool"] == tool, question
        assert {k: call["args"].get(k) for k in args} == args, question
        assert call["error"] is None, question
    session.ask("what are the main complaints about dresses?")
    follow = session.ask("and about tops?")  # the same question, for tops
    assert follow.tool_calls[0]["tool"] == "review_themes"
    assert follow.tool_calls[0]["args"] == {"sentiment": "negative", "category": "Tops"}
    for question in ("what segments do we have?", "who is likely to churn?",
                     "what's our revenue by month?", "which customer segment leaves the worst "
                     "reviews", "whats the lifetime value of our reviewers"):  # fmt: skip
        turn = session.ask(question)
        assert turn.tool_calls == [] and "I can't answer that from this workspace" in turn.answer
        assert "what customers say in reviews" in turn.answer, turn.answer
