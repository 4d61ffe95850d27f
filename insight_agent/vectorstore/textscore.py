"""The review sentiment model as plain arrays, for scoring a few texts without scikit-learn.

A review search scores its query's polarity ("runs small" is a complaint) with the workspace's
trained model (:mod:`insight_agent.vectorstore.textmodel`). Unpickling that pipeline imports
scikit-learn, which costs a cold ``insight reviews search`` more than the search itself (5 s of
an 18 s call on a busy 2-core machine). The model is a TF-IDF vectorizer and a logistic
regression, so its arithmetic fits in a few arrays: ``sentiment_terms.npz`` (written next to
``sentiment.joblib``) holds the vocabulary, each term's idf and coefficient, and the intercept;
:class:`TermScorer` repeats the vectorizer's steps (accents stripped, lower case, words of two or
more letters, word pairs, sublinear term frequency, idf, L2 norm) and the logistic link. A test
checks it against the pipeline's own ``predict_proba`` on real reviews.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FILE", "TermScorer", "export_terms", "load_term_scorer"]

FILE = "sentiment_terms.npz"
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # TfidfVectorizer's default token_pattern


def _strip_accents(text: str) -> str:
    """scikit-learn's ``strip_accents_unicode``: NFKD, then combining marks dropped."""
    try:
        text.encode("ASCII", errors="strict")
        return text
    except UnicodeEncodeError:
        normal = unicodedata.normalize("NFKD", text)
        return "".join(c for c in normal if not unicodedata.combining(c))


class TermScorer:
    """P(positive) of a text from the exported arrays (see the module docstring)."""

    def __init__(
        self, terms: list[str], idf: np.ndarray, coef: np.ndarray, intercept: float, ngrams: int
    ) -> None:
        self.index = {t: i for i, t in enumerate(terms)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        self.ngrams = int(ngrams)

    def _terms(self, text: str) -> list[str]:
        words = _TOKEN.findall(_strip_accents(text).lower())
        out = list(words)
        for n in range(2, self.ngrams + 1):
            out += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        return out

    def predict_positive(self, texts: list[str]) -> np.ndarray:
        """P(positive) for each text, as the pipeline's ``predict_proba(texts)[:, 1]``."""
        out = np.empty(len(texts), dtype=np.float64)
        for row, text in enumerate(texts):
            counts = Counter(t for t in self._terms(str(text)) if t in self.index)
            cols = np.fromiter((self.index[t] for t in counts), dtype=np.int64, count=len(counts))
            tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float64)
            weights = tf * self.idf[cols]
            norm = float(np.sqrt((weights * weights).sum()))
            score = self.intercept
            if norm > 0:
                score += float((weights / norm) @ self.coef[cols])
            out[row] = 1.0 / (1.0 + math.exp(-score))
        return out


def export_terms(pipeline: Any, directory: Path) -> Path:
    """Write the arrays of a fitted TF-IDF + logistic regression ``pipeline`` (atomically)."""
    vectorizer, model = pipeline[0], pipeline[-1]
    settings = (
        vectorizer.lowercase,
        vectorizer.strip_accents,
        vectorizer.sublinear_tf,
        vectorizer.norm,
        vectorizer.use_idf,
        vectorizer.token_pattern,
        vectorizer.analyzer,
        vectorizer.ngram_range[0],
    )
    if settings != (True, "unicode", True, "l2", True, _TOKEN.pattern, "word", 1):
        raise ValueError(f"export_terms does not reproduce this vectorizer: {settings}")
    path = Path(directory) / FILE
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        terms=np.asarray(vectorizer.get_feature_names_out(), dtype=str),
        idf=vectorizer.idf_.astype(np.float64),
        coef=model.coef_[0].astype(np.float64),
        intercept=np.float64(model.intercept_[0]),
        ngrams=np.int64(vectorizer.ngram_range[1]),
    )
    tmp.replace(path)
    return path


def load_term_scorer(directory: Path) -> TermScorer | None:
    """The exported scorer in ``directory``; None when there is none or it cannot be read.
    Loaded once per file version."""
    path = Path(directory) / FILE
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    return _load(path, stamp)


@functools.lru_cache(maxsize=4)
def _load(path: Path, stamp: int) -> TermScorer | None:
    del stamp  # part of the cache key only
    try:
        with np.load(path, allow_pickle=False) as data:
            return TermScorer(
                data["terms"].tolist(),
                data["idf"],
                data["coef"],
                float(data["intercept"]),
                int(data["ngrams"]),
            )
    except (OSError, ValueError, KeyError):
        return None
