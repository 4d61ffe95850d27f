"""The opinion-unit table: every review's units, their vectors and sentiment, next to Chroma.

Chroma holds one vector per review (search, quotes): in an embedded store, the unit-norm mean
of that review's unit vectors (see :func:`insight_agent.vectorstore.store.review_vectors`), so
ingest embeds each text once. Counting "how many reviews say it runs small" needs every unit
compared with the query, exactly; themes need every unit's vector. Both read this table,
written by each ingest (:meth:`insight_agent.vectorstore.store.ReviewIndex.sync`):

* ``units.parquet``: one row per unit — doc (row in the review arrays), unit_no, start, end
  (character span in the review), text, stems (its words stemmed, for aspect seed words;
  :func:`insight_agent.vectorstore.aspects.unit_stems`), p_positive (trained model or lexicon)
  and sentiment.
* ``vectors.npy``: the units' embeddings, float16 (384 numbers a unit), read memory-mapped.
* ``reviews.npz``: per review document, its id and filterable metadata
  (:class:`~insight_agent.vectorstore.store.FilterTable`), so a filter is a numpy mask.
* ``meta.json``: counts, the similarity threshold for counting, where sentiment came from.
* ``docs.jsonl`` + ``docs_offsets.npy``: each review document's text and metadata (as Chroma
  holds them), one JSON line each, and the byte offset of every line. A search reads only its
  hits' lines, so ``insight reviews search`` and ``count`` answer from this directory without
  importing or opening Chroma (in an embedded store; with a Chroma server, the server).

An unchanged review keeps its units' vectors from the previous table (same document id), so a
re-ingest embeds only new or edited reviews' units. The table is used only when its document
count equals the collection's.

**Counting threshold.** A unit "says" the query when their cosine similarity is at least the
workspace's threshold: the 99.5th percentile of similarities between random pairs of units from
different reviews (what two unrelated statements about the same products score on this data),
and never below ``THRESHOLD_FLOOR``. It is stored in ``meta.json`` and can be overridden per
question (``--threshold``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from insight_agent.vectorstore.units import units_frame

__all__ = ["THRESHOLD_FLOOR", "UnitTable", "build_unit_table", "calibrate_threshold", "unit_dir"]

DIRECTORY = "units"
THRESHOLD_FLOOR = 0.5
NULL_QUANTILE = 0.995
NULL_PAIRS = 20_000
SCAN_CHUNK = 65_536


def unit_dir(artifacts: Path) -> Path:
    """Where a workspace's unit table lives."""
    return Path(artifacts) / DIRECTORY


@dataclass
class UnitTable:
    """Units of every indexed review (see the module docstring)."""

    reviews: Any  # FilterTable over review documents
    review_ids: np.ndarray  # str, per document
    units: pd.DataFrame  # doc, unit_no, start, end, text, p_positive, sentiment
    vectors: np.ndarray  # (n_units, dim) float16, maybe memory-mapped
    threshold: float
    sentiment_source: str  # "model" or "lexicon"
    # Per document (text, metadata): in memory after a build, read by offset after a load.
    records: list[tuple[str, dict[str, Any]]] | None = None
    directory: Path | None = None

    def __len__(self) -> int:
        return len(self.units)

    @property
    def n_reviews(self) -> int:
        """Review documents the table covers."""
        return len(self.reviews)

    def similarities(self, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Cosine similarity of ``query`` (unit norm) to every unit (or to ``rows``)."""
        q = np.asarray(query, dtype=np.float32)
        source = self.vectors if rows is None else self.vectors[rows]
        out = np.empty(len(source), dtype=np.float32)
        for start in range(0, len(source), SCAN_CHUNK):
            block = np.asarray(source[start : start + SCAN_CHUNK], dtype=np.float32)
            out[start : start + len(block)] = block @ q
        return out

    def unit_mask(self, filters: Any | None) -> np.ndarray:
        """Which units belong to reviews passing ``filters`` (ReviewFilters) and its keyword."""
        doc = self.units["doc"].to_numpy()
        if filters is None:
            return np.ones(len(doc), dtype=bool)
        keep = self.reviews.mask(filters)[doc]
        if getattr(filters, "contains", None):
            keep &= self.contains_mask(filters.contains)[doc]
        return keep

    def contains_mask(self, keyword: str) -> np.ndarray:
        """Per review document: whether any of its units contains ``keyword`` (any case)."""
        hit = self.units["text"].str.contains(keyword, case=False, regex=False).to_numpy()
        out = np.zeros(self.n_reviews, dtype=bool)
        out[self.units["doc"].to_numpy()[hit]] = True
        return out

    @property
    def has_documents(self) -> bool:
        """Whether the table can give its documents' text and metadata (see :meth:`documents`)."""
        if self.records is not None:
            return True
        return self.directory is not None and (self.directory / "docs_offsets.npy").is_file()

    def documents(self, docs: list[int]) -> list[tuple[str, dict[str, Any]]]:
        """Text and metadata of the documents ``docs`` (rows of the review arrays)."""
        if self.records is not None:
            return [self.records[d] for d in docs]
        assert self.directory is not None
        offsets = np.load(self.directory / "docs_offsets.npy", mmap_mode="r")
        out = []
        with open(self.directory / "docs.jsonl", "rb") as f:
            for d in docs:
                start, end = int(offsets[d]), int(offsets[d + 1])
                f.seek(start)
                line = json.loads(f.read(end - start))
                out.append((line["text"], line["meta"]))
        return out

    def save(self, directory: Path, meta: dict[str, Any] | None = None) -> None:
        """Write the table to ``directory`` (a temporary directory renamed into place)."""
        directory = Path(directory)
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.units.to_parquet(tmp / "units.parquet", index=False)
        np.save(tmp / "vectors.npy", np.asarray(self.vectors, dtype=np.float16))
        self.reviews.save(tmp / "reviews.npz")
        np.save(tmp / "review_ids.npy", np.asarray(self.review_ids, dtype=str))
        if self.records is not None:
            offsets = np.zeros(len(self.records) + 1, dtype=np.int64)
            with open(tmp / "docs.jsonl", "wb") as f:
                for i, (text, record) in enumerate(self.records):
                    line = json.dumps({"text": text, "meta": record}, default=str).encode()
                    f.write(line + b"\n")
                    offsets[i + 1] = offsets[i] + len(line) + 1
            np.save(tmp / "docs_offsets.npy", offsets)
        info = {
            "reviews": self.n_reviews,
            "units": len(self),
            "threshold": self.threshold,
            "sentiment_source": self.sentiment_source,
            **(meta or {}),
        }
        (tmp / "meta.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
        self.directory = directory

    @classmethod
    def load(cls, directory: Path) -> UnitTable | None:
        """The table in ``directory``; None when missing or incomplete."""
        from insight_agent.vectorstore.store import FilterTable

        directory = Path(directory)
        try:
            info = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
            reviews = FilterTable.load(directory / "reviews.npz")
            units = pd.read_parquet(directory / "units.parquet")
            vectors = np.load(directory / "vectors.npy", mmap_mode="r")
            review_ids = np.load(directory / "review_ids.npy")
        except (OSError, ValueError, KeyError):
            return None
        if reviews is None or len(vectors) != len(units) or len(review_ids) != len(reviews):
            return None
        return cls(
            reviews=reviews,
            review_ids=review_ids,
            units=units,
            vectors=vectors,
            threshold=float(info["threshold"]),
            sentiment_source=str(info.get("sentiment_source", "lexicon")),
            directory=directory,
        )


def calibrate_threshold(vectors: np.ndarray, docs: np.ndarray, seed: int = 0) -> float:
    """The counting threshold for this data (see the module docstring)."""
    n = len(vectors)
    if n < 50:
        return THRESHOLD_FLOOR
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, NULL_PAIRS)
    b = rng.integers(0, n, NULL_PAIRS)
    keep = docs[a] != docs[b]
    if keep.sum() < 100:
        return THRESHOLD_FLOOR
    va = np.asarray(vectors[a[keep]], dtype=np.float32)
    vb = np.asarray(vectors[b[keep]], dtype=np.float32)
    sims = np.einsum("ij,ij->i", va, vb)
    return round(max(THRESHOLD_FLOOR, float(np.quantile(sims, NULL_QUANTILE))), 3)


def build_unit_table(
    doc_ids: Sequence[str],
    review_ids: Sequence[str],
    texts: Sequence[str],
    reviews: Any,
    *,
    embed: Callable[[list[str]], np.ndarray],
    score: Callable[[list[str]], np.ndarray],
    sentiment_source: str,
    previous: UnitTable | None = None,
    previous_doc_ids: np.ndarray | None = None,
    batch_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
    metadatas: Sequence[dict[str, Any]] | None = None,
) -> UnitTable:
    """Split, embed and score the units of every review document.

    ``reviews`` is the :class:`FilterTable` of the same documents (same order); units of
    documents already in ``previous`` (matched by document id) reuse their vectors.
    ``metadatas`` (the documents' Chroma metadata) are kept with their texts for
    :meth:`UnitTable.documents`.
    """
    from insight_agent.vectorstore.aspects import unit_stems
    from insight_agent.vectorstore.textmodel import unit_label

    cols = units_frame(review_ids, texts)
    units = pd.DataFrame(
        {
            "doc": np.asarray(cols["row"], dtype=np.int32),
            "unit_no": np.asarray(cols["unit_no"], dtype=np.int16),
            "start": np.asarray(cols["start"], dtype=np.int32),
            "end": np.asarray(cols["end"], dtype=np.int32),
            "text": pd.Series(cols["text"], dtype="string"),
        }
    )
    dim = None
    vectors: np.ndarray | None = None
    todo = np.arange(len(units))
    stems = np.empty(len(units), dtype=object)
    stems_todo = todo
    if previous is not None and previous_doc_ids is not None and len(previous):
        # Reuse: a unit of an unchanged document is the same text at the same unit_no.
        old_pos = {d: i for i, d in enumerate(previous_doc_ids.tolist())}
        old_units = previous.units
        old_key = pd.Series(
            np.arange(len(old_units)),
            index=pd.MultiIndex.from_arrays(
                [old_units["doc"].to_numpy(), old_units["unit_no"].to_numpy()]
            ),
        )
        mapped = np.array([old_pos.get(d, -1) for d in doc_ids], dtype=np.int64)[units["doc"]]
        key = pd.MultiIndex.from_arrays([mapped, units["unit_no"].to_numpy()])
        found = old_key.reindex(key).to_numpy()
        have = ~pd.isna(found)
        dim = previous.vectors.shape[1]
        vectors = np.zeros((len(units), dim), dtype=np.float16)
        vectors[have] = np.asarray(previous.vectors[found[have].astype(np.int64)])
        todo = np.flatnonzero(~have)
        if "stems" in old_units:
            stems[have] = old_units["stems"].to_numpy(dtype=object)[found[have].astype(np.int64)]
            stems_todo = todo
    texts_all = units["text"].astype(str).tolist()
    stems[stems_todo] = unit_stems([texts_all[i] for i in stems_todo])
    units["stems"] = pd.Series(stems, dtype="string")
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        got = np.asarray(embed([texts_all[i] for i in rows]), dtype=np.float32)
        if vectors is None:
            dim = got.shape[1]
            vectors = np.zeros((len(units), dim), dtype=np.float16)
        vectors[rows] = got.astype(np.float16)
        if progress:
            progress(min(start + batch_size, len(todo)), len(todo))
    if vectors is None:
        vectors = np.zeros((0, dim or 384), dtype=np.float16)
    p = np.asarray(score(texts_all), dtype=np.float32) if len(units) else np.empty(0, np.float32)
    units["p_positive"] = p
    units["sentiment"] = pd.Series([unit_label(float(v)) for v in p], dtype="string")
    threshold = calibrate_threshold(vectors, units["doc"].to_numpy())
    return UnitTable(
        reviews=reviews,
        review_ids=np.asarray(review_ids, dtype=str),
        units=units,
        vectors=vectors,
        threshold=threshold,
        sentiment_source=sentiment_source,
        records=None if metadatas is None else list(zip(texts, metadatas, strict=True)),
    )
