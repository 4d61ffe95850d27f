"""Review sentiment on real text: the trained model against the lexicon and an embedding model.

On the public clothing reviews fixture (tests/fixtures/public/womens_clothing_reviews, 5,000
real reviews, CC0), loaded as a workspace would load them (title put before the text), target
rating >= 4, stratified 5-fold CV with the same folds for every row:

* ``tfidf_lr``: what `insight build` trains (insight_agent.vectorstore.textmodel);
* ``vader``: the VADER lexicon's compound score (no training; AUC on all rated reviews);
* ``minilm_lr``: logistic regression on the offline MiniLM review embeddings (the vectors the
  index stores), the alternative the issue names.

    python bench/sentiment.py [--file CSV] [--no-embeddings]

Prints AUC (mean over folds, and min–max) and seconds per row.
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
FIXTURE = ROOT / "tests/fixtures/public/womens_clothing_reviews/womens_clothing_reviews_5000.csv"


def _reviews(path: Path):
    from insight_agent.config import load_settings
    from insight_agent.data.load import load_dataset
    from tests.conftest import write_workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws = write_workspace(Path(tmp) / "ws", {"reviews": path})
        reviews = load_dataset(load_settings(ws)).reviews
    keep = reviews["rating"].notna() & reviews["text"].fillna("").str.strip().ne("")
    return reviews[keep].reset_index(drop=True)


def _cv(x, y, fit_predict) -> list[float]:
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    aucs = []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
        aucs.append(float(roc_auc_score(y[test], fit_predict(train, test))))
    return aucs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=FIXTURE)
    parser.add_argument("--no-embeddings", action="store_true")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression

    from insight_agent.vectorstore.sentiment import lexicon_score
    from insight_agent.vectorstore.textmodel import _pipeline

    reviews = _reviews(args.file)
    texts = reviews["text"].astype(str).to_numpy()
    y = (reviews["rating"].astype(float) >= 4).astype(int).to_numpy()
    rows = []

    t = time.perf_counter()
    aucs = _cv(
        texts,
        y,
        lambda tr, te: _pipeline().fit(texts[tr], y[tr]).predict_proba(texts[te])[:, 1],
    )
    rows.append(("tfidf_lr", aucs, time.perf_counter() - t))

    t = time.perf_counter()
    from sklearn.metrics import roc_auc_score

    lexicon = np.array([lexicon_score(s) for s in texts])
    rows.append(("vader", [float(roc_auc_score(y, lexicon))], time.perf_counter() - t))

    if not args.no_embeddings:
        from insight_agent.vectorstore.embedder import shared_embedder

        t = time.perf_counter()
        vectors = shared_embedder().embed(texts.tolist())
        embed_s = time.perf_counter() - t

        def lr(tr, te):
            model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
            return model.fit(vectors[tr], y[tr]).predict_proba(vectors[te])[:, 1]

        t = time.perf_counter()
        aucs = _cv(vectors, y, lr)
        rows.append(("minilm_lr", aucs, time.perf_counter() - t + embed_s))

    print(f"{len(y):,} rated reviews, {y.mean():.1%} rated >= 4 ({args.file.name})")
    print(f"{'model':>10} {'auc':>7} {'min':>7} {'max':>7} {'seconds':>8}")
    for name, aucs, seconds in rows:
        print(
            f"{name:>10} {statistics.mean(aucs):7.4f} {min(aucs):7.4f} {max(aucs):7.4f} "
            f"{seconds:8.1f}"
        )


if __name__ == "__main__":
    main()
