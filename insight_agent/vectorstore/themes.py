"""Review themes: k-means on the review embeddings, c-TF-IDF keywords, representative quotes.

How a theme run works (all reviews, or those passing a :class:`ReviewFilters`):

1. Fetch the reviews' stored vectors, text and metadata from Chroma in pages, then sort them by
   document id, so the same data always enters clustering in the same order.
2. Choose the number of themes k (unless given): k-means for every k in 2..min(12, n // 5) on a
   fixed random sample of at most 3,000 reviews, keep the k with the best silhouette score on
   that sample. Fewer than 10 reviews make one theme.
3. Fit k-means (fixed seed, 3 initialisations) on at most 20,000 reviews and assign every
   review to its nearest centre: every review gets exactly one theme, there is no outlier bucket.
4. Keywords per theme by class-based TF-IDF (c-TF-IDF, as in BERTopic) over unigrams and bigrams,
   English stop words removed; the label is the top three keywords.
5. Three quotes per theme: among the 50 reviews nearest the theme's centre, chosen with
   maximal marginal relevance so they do not repeat each other.

Themes are numbered T1, T2, ... by size (largest first). The same data, seed and k give the
same output. :func:`compare_themes` fits themes once over two segments' reviews and tests, per
theme, whether the segments mention it at different rates.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from insight_agent.errors import ConfigError, InsufficientData
from insight_agent.vectorstore.search import ReviewFilters, mmr

__all__ = [
    "ALPHA",
    "MAX_THEMES",
    "MIN_REVIEWS_TO_SPLIT",
    "ReviewSet",
    "Themes",
    "choose_k",
    "class_tfidf",
    "compare_themes",
    "ctfidf_weights",
    "fetch_reviews",
    "find_themes",
    "fit_themes",
    "holm",
]

#: Automatic k never exceeds this (an explicit k may, up to MAX_K_OVERRIDE).
MAX_THEMES = 12
MAX_K_OVERRIDE = 50
#: Below this many reviews there is nothing to split: one theme holds them all.
MIN_REVIEWS_TO_SPLIT = 10
#: Automatic k keeps at least this many reviews per theme on average.
MIN_REVIEWS_PER_THEME = 5
#: Reviews used to choose k (fit + silhouette for each candidate k).
K_SAMPLE = 3_000
#: Reviews k-means is fitted on; the rest are assigned to the nearest centre.
FIT_SAMPLE = 20_000
TOP_KEYWORDS = 8
LABEL_KEYWORDS = 3
QUOTES = 3
QUOTE_POOL = 50  # quotes are picked among this many reviews nearest the centre
ALPHA = 0.05
PAGE = 5_000


# -- fetching ----------------------------------------------------------------------------------


@dataclass
class ReviewSet:
    """Reviews with their vectors, sorted by document id (the clustering input)."""

    ids: list[str]
    vectors: np.ndarray  # (n, 384) float32, rows of norm 1
    documents: list[str]
    metadatas: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def review_ids(self) -> list[str]:
        """The reviews' own ids (metadata ``review_id``; the document id when missing)."""
        return [str(m.get("review_id") or i) for i, m in zip(self.ids, self.metadatas, strict=True)]


def fetch_reviews(
    index: Any,
    where: dict[str, Any] | None = None,
    where_document: dict[str, Any] | None = None,
    *,
    page: int = PAGE,
) -> ReviewSet:
    """Every review matching ``where`` (a Chroma clause), fetched in pages of ``page``."""
    ids: list[str] = []
    documents: list[str] = []
    metadatas: list[dict[str, Any]] = []
    chunks: list[np.ndarray] = []
    offset = 0
    while True:
        got = index.collection.get(
            where=where,
            where_document=where_document,
            include=["embeddings", "documents", "metadatas"],
            limit=page,
            offset=offset,
        )
        n = len(got["ids"])
        if n:
            ids.extend(got["ids"])
            documents.extend(got["documents"])
            metadatas.extend(dict(m or {}) for m in got["metadatas"])
            # Chroma returns float64; float32 halves memory and is what the model produced.
            chunks.append(np.asarray(got["embeddings"], dtype=np.float32))
        if n < page:
            break
        offset += n
    if not ids:
        return ReviewSet([], np.empty((0, 0), dtype=np.float32), [], [])
    vectors = np.concatenate(chunks)
    order = np.argsort(np.asarray(ids), kind="stable")
    vectors = vectors[order]
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return ReviewSet(
        ids=[ids[i] for i in order],
        vectors=vectors,
        documents=[documents[i] for i in order],
        metadatas=[metadatas[i] for i in order],
    )


# -- keywords: class-based TF-IDF --------------------------------------------------------------


def ctfidf_weights(counts: Any) -> np.ndarray:
    """c-TF-IDF weights from a (themes x terms) count matrix (dense or scipy sparse).

    ``W[c, t] = tf[c, t] * log(1 + A / f[t])`` where ``tf`` is the term's share of the words in
    theme ``c`` (counts L1-normalised per row), ``f[t]`` the term's count over all themes and
    ``A`` the mean number of words per theme. A term frequent in one theme but rare elsewhere
    scores high; one spread evenly over all themes scores low.
    """
    dense = np.asarray(counts.toarray() if hasattr(counts, "toarray") else counts, dtype=float)
    if dense.ndim != 2:
        raise ValueError("counts must be a 2-d (themes x terms) matrix")
    words_per_class = dense.sum(axis=1)
    term_total = dense.sum(axis=0)
    mean_words = float(words_per_class.mean()) if dense.size else 0.0
    idf = np.log1p(mean_words / np.maximum(term_total, 1e-12))
    idf[term_total == 0] = 0.0
    tf = dense / np.maximum(words_per_class, 1e-12)[:, None]
    return tf * idf[None, :]


def class_tfidf(
    documents: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    n_classes: int,
    *,
    top_n: int = TOP_KEYWORDS,
    extra_stop_words: Sequence[str] = (),
) -> list[list[str]]:
    """The ``top_n`` c-TF-IDF keywords of each class (unigrams and bigrams, English stop words
    and ``extra_stop_words`` removed), best first. ``labels[i]`` in ``0..n_classes-1`` is
    document ``i``'s class.

    Counting per document and summing per class equals counting the concatenated class text,
    except that no bigram spans two reviews. Terms seen in only one review are dropped when
    there are 50 reviews or more (typos and names, not themes). Ties break alphabetically.
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    labels = np.asarray(labels, dtype=np.int64)
    if len(documents) != len(labels):
        raise ValueError("documents and labels differ in length")
    if len(documents) == 0:
        return [[] for _ in range(n_classes)]
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stop: Any = "english"
    if extra_stop_words:
        stop = sorted(ENGLISH_STOP_WORDS | {w.lower() for w in extra_stop_words})
    vectorizer = CountVectorizer(
        ngram_range=(1, 2), stop_words=stop, min_df=2 if len(documents) >= 50 else 1
    )
    try:
        with warnings.catch_warnings():
            # hyphenated or apostrophe stop words ("noise-cancelling", "didn't") tokenise into
            # pieces that are not in the list: harmless here, and not the user's concern
            warnings.filterwarnings("ignore", message="Your stop_words may be inconsistent")
            doc_terms = vectorizer.fit_transform(list(documents))
    except ValueError:  # empty vocabulary: only stop words, numbers of one digit, blanks
        return [[] for _ in range(n_classes)]
    terms = vectorizer.get_feature_names_out()  # sorted alphabetically
    membership = sparse.csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(n_classes, len(labels))
    )
    weights = ctfidf_weights(membership @ doc_terms)
    keywords = []
    for row in weights:
        # Stable sort on -weight keeps the alphabetical order of the vocabulary for ties.
        best = np.argsort(-row, kind="stable")[:top_n]
        keywords.append([str(terms[t]) for t in best if row[t] > 0])
    return keywords


def _label(keywords: list[str], theme_id: str) -> str:
    """The first LABEL_KEYWORDS keywords, skipping one whose words a chosen bigram already
    holds ("late delivery" then "delivery" would say the same twice)."""
    chosen: list[str] = []
    for term in keywords:
        words = set(term.split())
        if any(words <= set(c.split()) or set(c.split()) <= words for c in chosen):
            continue
        chosen.append(term)
        if len(chosen) == LABEL_KEYWORDS:
            break
    return ", ".join(chosen) if chosen else f"theme {theme_id}"


# -- clustering --------------------------------------------------------------------------------


def _kmeans(vectors: np.ndarray, k: int, seed: int, n_init: int) -> Any:
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # Many identical reviews ("Great!") can leave fewer distinct points than k; the empty
        # themes are dropped afterwards.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(vectors)


def choose_k(
    vectors: np.ndarray,
    *,
    k_max: int = MAX_THEMES,
    seed: int = 0,
    sample: int = K_SAMPLE,
) -> tuple[int, float | None]:
    """The k in ``2..k_max`` with the best silhouette (on a fixed sample) and that score.

    k_max is lowered to keep MIN_REVIEWS_PER_THEME reviews per theme on average; with fewer
    than MIN_REVIEWS_TO_SPLIT reviews the answer is ``(1, None)``.
    """
    from sklearn.metrics import silhouette_score

    n = len(vectors)
    k_max = min(k_max, n // MIN_REVIEWS_PER_THEME)
    if n < MIN_REVIEWS_TO_SPLIT or k_max < 2:
        return 1, None
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=sample, replace=False)) if n > sample else np.arange(n)
    x = vectors[rows]
    # The sample's distances are the same for every k: compute them once (rows have norm 1,
    # so |a - b|^2 = 2 - 2 a.b).
    distances = np.sqrt(np.clip(2.0 - 2.0 * (x @ x.T), 0.0, None))
    np.fill_diagonal(distances, 0.0)
    best_k, best_score = 1, None
    for k in range(2, k_max + 1):
        labels = _kmeans(x, k, seed, n_init=2).labels_
        if len(np.unique(labels)) < 2:
            continue
        score = float(silhouette_score(distances, labels, metric="precomputed"))
        if best_score is None or score > best_score + 1e-9:  # ties keep the smaller k
            best_k, best_score = k, score
    return best_k, best_score


def _assign(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    """One cluster index per review: k-means on at most FIT_SAMPLE reviews, nearest centre for
    all (fitting on a sample bounds time and memory at 100k+ reviews)."""
    if k == 1:
        return np.zeros(len(vectors), dtype=np.int64)
    n = len(vectors)
    if n > FIT_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=FIT_SAMPLE, replace=False))
        model = _kmeans(vectors[rows], k, seed, n_init=3)
        return model.predict(vectors).astype(np.int64)
    return _kmeans(vectors, k, seed, n_init=3).labels_.astype(np.int64)


# -- the result --------------------------------------------------------------------------------


@dataclass
class Themes:
    """Fitted themes over one set of reviews.

    ``assignment[i]`` is the theme (0 = T1) of ``reviews.ids[i]``; ``themes`` are the JSON-ready
    theme summaries in that order.
    """

    reviews: ReviewSet
    assignment: np.ndarray
    themes: list[dict[str, Any]]
    k_chosen_by: str
    silhouette: float | None = None
    filters: dict[str, str] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of themes."""
        return len(self.themes)

    def theme_of(self) -> dict[str, str]:
        """review_id -> theme id, for every review in scope."""
        ids = [t["theme"] for t in self.themes]
        return {
            rid: ids[a] for rid, a in zip(self.reviews.review_ids, self.assignment, strict=True)
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts: counts, how k was chosen, headline themes, then every theme."""
        largest = self.themes[0]
        most_negative = max(self.themes, key=lambda t: (t["share_negative"], t["size"]))
        return {
            "reviews": len(self.reviews),
            "filters": dict(self.filters),
            "k": self.k,
            "k_chosen_by": self.k_chosen_by,
            "silhouette": None if self.silhouette is None else round(self.silhouette, 3),
            "largest_theme": _headline(largest, "share"),
            "most_negative_theme": _headline(most_negative, "share_negative"),
            "themes": self.themes,
        }


def _headline(theme: dict[str, Any], key: str) -> dict[str, Any]:
    return {"theme": theme["theme"], "label": theme["label"], key: theme[key]}


def _rating(meta: dict[str, Any]) -> float | None:
    value = meta.get("rating")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _quote(reviews: ReviewSet, i: int) -> dict[str, Any]:
    meta = reviews.metadatas[i]
    return {
        "review_id": str(meta.get("review_id") or reviews.ids[i]),
        "text": reviews.documents[i],
        "rating": _rating(meta),
        "sentiment": meta.get("sentiment") or None,
        "sentiment_source": meta.get("sentiment_source") or None,
        "segment": meta.get("segment") or None,
    }


def _summarise(reviews: ReviewSet, assignment: np.ndarray, k: int) -> tuple[np.ndarray, list]:
    """Renumber clusters by size (ties: the cluster holding the smallest document id first),
    drop empty ones, and describe each theme."""
    sizes = np.bincount(assignment, minlength=k)
    first = np.full(k, len(assignment))
    np.minimum.at(first, assignment, np.arange(len(assignment)))  # rows are sorted by doc id
    order = [c for c in sorted(range(k), key=lambda c: (-sizes[c], first[c])) if sizes[c] > 0]
    remap = np.full(k, -1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    assignment = remap[assignment]
    k = len(order)

    keywords = class_tfidf(reviews.documents, assignment, k)
    ratings = np.array(
        [np.nan if (r := _rating(m)) is None else r for m in reviews.metadatas], dtype=float
    )
    negative = np.array([m.get("sentiment") == "negative" for m in reviews.metadatas])
    total = len(assignment)
    themes = []
    for c in range(k):
        members = np.flatnonzero(assignment == c)
        theme_id = f"T{c + 1}"
        rated = ratings[members][~np.isnan(ratings[members])]
        themes.append(
            {
                "theme": theme_id,
                "label": _label(keywords[c], theme_id),
                "keywords": keywords[c],
                "size": len(members),
                "share": round(len(members) / total, 3),
                "avg_rating": round(float(rated.mean()), 2) if len(rated) else None,
                "rated": len(rated),
                "share_negative": round(float(negative[members].mean()), 3),
                "quotes": [_quote(reviews, i) for i in _representatives(reviews.vectors, members)],
            }
        )
    return assignment, themes


def _representatives(vectors: np.ndarray, members: np.ndarray) -> list[int]:
    """QUOTES rows of ``members`` near their centroid and unlike each other (MMR)."""
    centroid = vectors[members].mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    closeness = vectors[members] @ centroid
    pool = members[np.argsort(-closeness, kind="stable")[:QUOTE_POOL]]
    return [int(pool[j]) for j in mmr(centroid, vectors[pool], QUOTES, lambda_=0.8)]


def fit_themes(
    reviews: ReviewSet, *, k: int | None = None, seed: int = 0, threads: int = 1
) -> Themes:
    """Cluster ``reviews`` into themes (see the module docstring for the method).

    ``k`` forces the number of themes (1..50, at most one per review). ``threads`` caps the
    BLAS/OpenMP threads scikit-learn uses (one is fastest on a shared 2-core machine).
    Raises :class:`InsufficientData` when there are no reviews.
    """
    # scikit-learn is imported before the limit: threadpoolctl only caps libraries already
    # loaded, and an uncapped OpenMP k-means ran 10x slower on a busy 2-core machine.
    import sklearn.cluster
    import sklearn.metrics  # noqa: F401
    from threadpoolctl import threadpool_limits

    n = len(reviews)
    if n == 0:
        raise InsufficientData(
            "no reviews in scope: nothing to group into themes",
            hint="loosen the filters (segment, rating, sentiment)",
        )
    if k is not None:
        if not 1 <= k <= MAX_K_OVERRIDE:
            raise ConfigError(f"k must be between 1 and {MAX_K_OVERRIDE}, got {k}")
        if k > n:
            raise InsufficientData(
                f"{k} themes asked for but only {n} reviews in scope",
                hint=f"use k <= {n}, or leave k out to choose it automatically",
            )
    with threadpool_limits(limits=threads):
        if k is not None:
            chosen, score, how = k, None, "given"
        else:
            chosen, score = choose_k(reviews.vectors, seed=seed)
            how = (
                "silhouette"
                if chosen > 1
                else f"fewer than {MIN_REVIEWS_TO_SPLIT} reviews: one theme"
            )
        assignment = _assign(reviews.vectors, chosen, seed)
    assignment, themes = _summarise(reviews, assignment, chosen)
    return Themes(reviews, assignment, themes, k_chosen_by=how, silhouette=score)


def find_themes(
    index: Any,
    filters: ReviewFilters | None = None,
    *,
    k: int | None = None,
    seed: int = 0,
    threads: int = 1,
) -> Themes:
    """Themes of the reviews in ``index`` that pass ``filters`` (all reviews by default)."""
    filters = filters or ReviewFilters()
    reviews = fetch_reviews(index, filters.where(), filters.where_document())
    themes = fit_themes(reviews, k=k, seed=seed, threads=threads)
    themes.filters = {key: str(v) for key, v in vars(filters).items() if v is not None}
    return themes


# -- comparing two segments --------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), input order."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def _two_proportion_p(x_a: int, n_a: int, x_b: int, n_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (x of n in each group)."""
    from scipy.stats import norm

    pooled = (x_a + x_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:  # the theme holds all reviews or none: no difference to test
        return 1.0
    z = (x_a / n_a - x_b / n_b) / se
    return float(2 * norm.sf(abs(z)))


def _p(value: float) -> float:
    """A p-value rounded to 3 significant digits (tiny values stay visible, not 0.0)."""
    return float(f"{min(max(value, 0.0), 1.0):.3g}")


_HEADLINE_KEYS = (
    "theme",
    "label",
    "share_a",
    "share_b",
    "difference",
    "p_value",
    "p_adjusted",
    "significant",
)


def compare_themes(
    index: Any,
    segment_a: str,
    segment_b: str,
    *,
    k: int | None = None,
    seed: int = 0,
    threads: int = 1,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """How often two segments' reviews fall in each theme, with significance tests.

    Themes are fitted once over both segments' reviews, so a theme means the same in both. Per
    theme: counts, shares of each segment's reviews, the difference (A - B) and a pooled
    two-proportion z-test; p-values are Holm-adjusted across themes and a theme is flagged
    significant when its adjusted p < ``alpha``. Overall: Pearson's chi-square test of
    independence on the segment x theme table.
    """
    from scipy.stats import chi2_contingency

    if segment_a == segment_b:
        raise ConfigError("compare two different segments", hint=f"both are '{segment_a}'")
    reviews = fetch_reviews(index, {"segment": {"$in": [segment_a, segment_b]}})
    segments = np.array([m.get("segment") for m in reviews.metadatas], dtype=object)
    n_a, n_b = int((segments == segment_a).sum()), int((segments == segment_b).sum())
    for name, count in ((segment_a, n_a), (segment_b, n_b)):
        if count == 0:
            raise InsufficientData(
                f"segment '{name}' has no reviews", hint="run `insight segments` to see them"
            )
    fitted = fit_themes(reviews, k=k, seed=seed, threads=threads)
    in_a = segments == segment_a
    table = np.array(
        [
            np.bincount(fitted.assignment[in_a], minlength=fitted.k),
            np.bincount(fitted.assignment[~in_a], minlength=fitted.k),
        ]
    )
    raw = [_two_proportion_p(int(a), n_a, int(b), n_b) for a, b in table.T]
    adjusted = holm(raw)
    rows = []
    for c, theme in enumerate(fitted.themes):
        share_a, share_b = table[0, c] / n_a, table[1, c] / n_b
        rows.append(
            {
                "theme": theme["theme"],
                "label": theme["label"],
                "keywords": theme["keywords"],
                "count_a": int(table[0, c]),
                "count_b": int(table[1, c]),
                "share_a": round(float(share_a), 3),
                "share_b": round(float(share_b), 3),
                "difference": round(float(share_a - share_b), 3),
                "p_value": _p(raw[c]),
                "p_adjusted": _p(adjusted[c]),
                "significant": bool(adjusted[c] < alpha),
            }
        )
    if fitted.k > 1:
        chi2, p_overall, dof, _ = chi2_contingency(table, correction=False)
        overall = {
            "statistic": round(float(chi2), 2),
            "dof": int(dof),
            "p_value": _p(float(p_overall)),
            "significant": bool(p_overall < alpha),
        }
    else:
        overall = {"statistic": 0.0, "dof": 0, "p_value": 1.0, "significant": False}
    top = max(range(fitted.k), key=lambda c: (abs(rows[c]["difference"]), -c))
    return {
        "segment_a": segment_a,
        "segment_b": segment_b,
        "reviews_a": n_a,
        "reviews_b": n_b,
        "reviews": len(reviews),
        "k": fitted.k,
        "k_chosen_by": fitted.k_chosen_by,
        "largest_difference": {key: rows[top][key] for key in _HEADLINE_KEYS},
        "significant_themes": [r["theme"] for r in rows if r["significant"]],
        "chi_square": overall,
        "method": (
            f"themes fitted once on both segments' reviews; per theme a pooled two-proportion "
            f"z-test, Holm-adjusted across the {fitted.k} themes, significant when adjusted "
            f"p < {alpha}; overall Pearson chi-square test of independence (segment x theme)"
        ),
        "themes": rows,
    }
