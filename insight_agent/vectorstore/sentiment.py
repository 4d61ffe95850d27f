"""Review sentiment: from the star rating when there is one, else from the text.

* Rated reviews follow :func:`insight_agent.vectorstore.store.sentiment_from_rating`:
  4-5 stars positive, 3 neutral, 0-2 negative.
* Unrated reviews are scored by the model trained on the workspace's rated reviews
  (:mod:`insight_agent.vectorstore.textmodel`, source ``model``) when there is one.
* Otherwise unrated reviews are scored with the VADER lexicon (``vaderSentiment``, offline,
  rule-based): compound >= 0.05 positive, <= -0.05 negative, otherwise neutral (the
  thresholds VADER's authors recommend).
* Reviews with neither a rating nor any text stay ``unrated``.

Each label comes with its source (``rating``, ``model``, ``lexicon`` or ``none``) so a user can
tell a customer's own verdict from an inferred one. VADER loads on first use and is cached;
importing this module costs nothing beyond pandas.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd

from insight_agent.vectorstore.store import sentiment_from_rating

__all__ = [
    "NEGATIVE_BELOW",
    "POSITIVE_FROM",
    "SOURCES",
    "lexicon_score",
    "lexicon_sentiment",
    "review_sentiment",
]

#: VADER compound score at or above which an unrated review is positive.
POSITIVE_FROM = 0.05
#: VADER compound score at or below which an unrated review is negative.
NEGATIVE_BELOW = -0.05
#: Where a review's sentiment label came from.
SOURCES = ("rating", "model", "lexicon", "none")


@functools.cache
def _analyzer() -> Any:
    """The VADER analyzer, loaded once per process (it reads its lexicon files from disk)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def lexicon_score(text: str) -> float:
    """VADER's compound score of ``text``, in [-1, 1] (0 for empty text)."""
    return float(_analyzer().polarity_scores(text)["compound"])


def _label(compound: float) -> str:
    if compound >= POSITIVE_FROM:
        return "positive"
    return "negative" if compound <= NEGATIVE_BELOW else "neutral"


def lexicon_sentiment(texts: pd.Series) -> pd.Series:
    """positive, neutral or negative for each text, by VADER's compound score.

    Each distinct text is scored once (exports often repeat short reviews like "Great").
    """
    texts = texts.astype("string").fillna("")
    unique = texts.unique()
    labels = {text: _label(lexicon_score(str(text))) for text in unique}
    return texts.map(labels).astype(object)


def review_sentiment(
    ratings: pd.Series | None, texts: pd.Series | None, model: Any = None
) -> pd.DataFrame:
    """``sentiment`` and ``sentiment_source`` for each review, indexed like the inputs.

    ``ratings`` may hold numbers, numeric strings or missing values (either argument may be
    None when the column is absent). Only unrated reviews with some text go through VADER, so
    a fully rated export of any size costs one dictionary lookup per row.
    """
    if ratings is None and texts is None:
        raise ValueError("review_sentiment needs ratings, texts or both")
    index = ratings.index if ratings is not None else texts.index  # type: ignore[union-attr]
    n = len(index)
    if ratings is None:
        ratings = pd.Series([None] * n, index=index, dtype=object)
    if texts is None:
        texts = pd.Series([""] * n, index=index, dtype="string")
    numeric = pd.to_numeric(ratings, errors="coerce")
    rated = numeric.notna()

    sentiment = pd.Series(["unrated"] * n, index=index, dtype=object)
    source = pd.Series(["none"] * n, index=index, dtype=object)
    # The rating rule is applied once per distinct rating value, not once per row.
    by_rating = {value: sentiment_from_rating(value) for value in numeric[rated].unique()}
    sentiment[rated] = numeric[rated].map(by_rating)
    source[rated] = "rating"

    text = texts.astype("string").fillna("").str.strip()
    scored = ~rated & (text != "")
    if scored.any() and model is not None:
        from insight_agent.vectorstore.textmodel import unit_label

        p = model.predict_positive(texts[scored].astype(str).tolist())
        sentiment[scored] = [unit_label(float(v)) for v in p]
        source[scored] = "model"
    elif scored.any():
        sentiment[scored] = lexicon_sentiment(texts[scored])
        source[scored] = "lexicon"
    return pd.DataFrame({"sentiment": sentiment, "sentiment_source": source}, index=index)
