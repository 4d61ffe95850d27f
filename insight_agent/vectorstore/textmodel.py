"""A sentiment model trained on the workspace's own rated reviews.

A lexicon (VADER) reads "runs small", "itchy" or "returned it" as neutral: on real clothing
reviews it called most 1-2 star reviews positive. Customers who leave a star rating label their
own text, so when the workspace has rated reviews we learn from them:

* **Target**: rating >= 4 (the same cut the rating rule uses for "positive").
* **Model**: TF-IDF over words and word pairs (so "not itchy" is its own feature, distinct from
  "itchy") + logistic regression with balanced class weights, so a text with no opinion words
  scores near 0.5 whatever the share of happy customers.
* **Honesty**: stratified 5-fold cross-validated AUC (and the lexicon's AUC on the same texts,
  for comparison) is stored with the model and shown by ``insight reviews model-card``.
* **Use**: unrated reviews and every opinion unit (:mod:`insight_agent.vectorstore.units`) get
  P(positive); a unit is negative below ``NEGATIVE_BELOW``, positive from ``POSITIVE_FROM``,
  neutral in between. The customer's own rating still labels a rated review.

Fewer than ``MIN_RATED`` rated reviews, or only one class among them: no model, and callers fall
back to the lexicon (and say so).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from insight_agent import __version__

if TYPE_CHECKING:  # a search imports this module for the model's file name: no pandas
    import pandas as pd

__all__ = [
    "MIN_RATED",
    "NEGATIVE_BELOW",
    "POSITIVE_FROM",
    "TextSentiment",
    "load_text_model",
    "train_text_sentiment",
    "unit_label",
]

#: Rated reviews (with text) needed before a model is trained.
MIN_RATED = 200
#: Each class needs at least this many reviews.
MIN_PER_CLASS = 30
#: P(positive) below which a text is negative, and from which it is positive.
NEGATIVE_BELOW = 0.35
POSITIVE_FROM = 0.65
#: Training uses at most this many rated reviews (a stratified sample beyond it).
MAX_TRAIN = 50_000
#: The lexicon comparison is computed on at most this many of them (VADER is slow).
LEXICON_SAMPLE = 5_000
FOLDS = 5
SEED = 0
FILE = "sentiment.joblib"


def _pipeline() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(
            ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True, strip_accents="unicode"
        ),
        LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000, solver="liblinear"),
    )


@dataclass
class TextSentiment:
    """A fitted text sentiment model and how well it did under cross-validation."""

    pipeline: Any
    n_train: int
    positive_share: float
    cv_auc: float
    cv_auc_folds: list[float]
    lexicon_auc: float | None
    trained_at: str
    insight_version: str = __version__
    terms: dict[str, list[str]] = field(default_factory=dict)

    def predict_positive(self, texts: list[str] | pd.Series) -> np.ndarray:
        """P(positive) for each text (float64 in [0, 1])."""
        items = [t if isinstance(t, str) else "" for t in list(texts)]
        if not items:
            return np.empty(0)
        return self.pipeline.predict_proba(items)[:, 1]

    def card(self) -> dict[str, Any]:
        """JSON-ready description for the model card."""
        return {
            "model": "TF-IDF (words and word pairs) + logistic regression, balanced classes",
            "target": "rating >= 4",
            "trained_on": self.n_train,
            "positive_share": round(self.positive_share, 4),
            "cv_auc": round(self.cv_auc, 4),
            "cv_auc_folds": [round(a, 4) for a in self.cv_auc_folds],
            "lexicon_auc": None if self.lexicon_auc is None else round(self.lexicon_auc, 4),
            "thresholds": {"negative_below": NEGATIVE_BELOW, "positive_from": POSITIVE_FROM},
            "top_terms": self.terms,
            "trained_at": self.trained_at,
            "insight_version": self.insight_version,
        }

    def save(self, directory: Path) -> Path:
        """Write the model to ``directory/sentiment.joblib`` (atomically), and its arrays to
        ``sentiment_terms.npz`` for scoring queries without scikit-learn
        (:mod:`insight_agent.vectorstore.textscore`)."""
        import joblib

        from insight_agent.vectorstore.textscore import export_terms

        directory.mkdir(parents=True, exist_ok=True)
        path = directory / FILE
        tmp = path.with_name(path.name + ".tmp")
        joblib.dump(self, tmp)
        export_terms(self.pipeline, directory)
        tmp.replace(path)
        return path


def unit_label(p: float) -> str:
    """negative, neutral or positive for one P(positive)."""
    if p < NEGATIVE_BELOW:
        return "negative"
    return "positive" if p >= POSITIVE_FROM else "neutral"


def _top_terms(pipeline: Any, n: int = 12) -> dict[str, list[str]]:
    vectorizer, model = pipeline[0], pipeline[-1]
    names = np.asarray(vectorizer.get_feature_names_out())
    coef = model.coef_[0]
    order = np.argsort(coef, kind="stable")
    return {"negative": names[order[:n]].tolist(), "positive": names[order[::-1][:n]].tolist()}


def _stratified(rng: np.random.Generator, y: np.ndarray, n: int) -> np.ndarray:
    """Row numbers of a sample of ``n`` with the classes in their proportions."""
    if n >= len(y):
        return np.arange(len(y))
    out = []
    for cls in (0, 1):
        rows = np.flatnonzero(y == cls)
        take = max(1, round(n * len(rows) / len(y)))
        out.append(rng.choice(rows, size=min(take, len(rows)), replace=False))
    return np.concatenate(out)


def train_text_sentiment(
    texts: pd.Series, ratings: pd.Series, *, folds: int = FOLDS, seed: int = SEED
) -> TextSentiment | None:
    """Train on the reviews that have both text and a rating; None when there are too few
    (``MIN_RATED``) or one class is too rare (``MIN_PER_CLASS``)."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    numeric = pd.to_numeric(ratings, errors="coerce")
    text = texts.astype("string").fillna("").str.strip()
    keep = numeric.notna() & (text != "")
    x = text[keep].astype(str).to_numpy()
    y = (numeric[keep] >= 4).astype(int).to_numpy()
    positives = int(y.sum())
    if len(y) < MIN_RATED or min(positives, len(y) - positives) < MIN_PER_CLASS:
        return None
    rng = np.random.default_rng(seed)
    if len(y) > MAX_TRAIN:
        keep_rows = np.sort(_stratified(rng, y, MAX_TRAIN))
        x, y = x[keep_rows], y[keep_rows]
        positives = int(y.sum())
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = np.empty(len(y))
    aucs = []
    for train, test in splitter.split(x, y):
        fold = _pipeline().fit(x[train], y[train])
        scores[test] = fold.predict_proba(x[test])[:, 1]
        aucs.append(float(roc_auc_score(y[test], scores[test])))
    lexicon_auc = None
    try:
        from insight_agent.vectorstore.sentiment import lexicon_score

        rows = np.sort(_stratified(rng, y, min(LEXICON_SAMPLE, len(y))))
        lexicon = np.array([lexicon_score(t) for t in x[rows]])
        lexicon_auc = float(roc_auc_score(y[rows], lexicon))
    except ImportError:  # VADER is optional for the comparison only
        pass
    pipeline = _pipeline().fit(x, y)
    return TextSentiment(
        pipeline=pipeline,
        n_train=len(y),
        positive_share=positives / len(y),
        cv_auc=float(np.mean(aucs)),
        cv_auc_folds=aucs,
        lexicon_auc=lexicon_auc,
        trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        terms=_top_terms(pipeline),
    )


def load_text_model(directory: Path) -> TextSentiment | None:
    """The saved model in ``directory``; None when there is none (or it cannot be read).
    Loaded once per file version: a chat session's searches do not re-read it per question."""
    path = Path(directory) / FILE
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    return _load(path, stamp)


@functools.lru_cache(maxsize=4)
def _load(path: Path, stamp: int) -> TextSentiment | None:
    import joblib

    del stamp  # part of the cache key only: a rebuilt model is read again
    try:
        model = joblib.load(path)
    except Exception:  # a damaged or incompatible file: behave as if there were no model
        return None
    return model if isinstance(model, TextSentiment) else None
