"""The opinion-unit table: every review's units, their vectors and sentiment, next to Chroma.

Chroma holds one vector per review (search, quotes): in an embedded store, the unit-norm mean
of that review's unit vectors (see :func:`insight_agent.vectorstore.store.review_vectors`), so
ingest embeds each text once. Counting "how many reviews say it runs small" needs every unit
compared with the query, exactly; themes need every unit's vector. Both read this table,
written by each ingest (:meth:`insight_agent.vectorstore.store.ReviewIndex.sync`):

* ``units.parquet``: one row per unit — doc (row in the review arrays), unit_no, start, end
  (character span in the review), text, stems (its words stemmed, for aspect seed words;
  :func:`insight_agent.vectorstore.aspects.unit_stems`), p_positive (trained model or lexicon)
  and sentiment. The pandas frame of it (:attr:`UnitTable.units`) is read only when something
  asks for it (themes, a count's tables, an ingest): a search reads single columns
  (:meth:`UnitTable.column`) from ``columns.npz``.
* ``columns.npz``: the columns a search reads — doc, start, end, p_positive, sentiment and the
  texts (UTF-8 bytes and their offsets) — as plain numpy arrays, so a cold
  ``insight reviews search`` imports neither pandas (a third of its time before) nor pyarrow
  (another 45 ms). A table written before this file existed is read with pyarrow alone
  (still no pandas) until the next ingest rewrites it.
* ``vectors.npy``: the units' embeddings, float32 (384 numbers a unit), read memory-mapped.
  float32 rather than float16: a count or unit search compares the query with every unit,
  and numpy's float16-to-float32 cast was nearly all of that (268 against 19 ms for 306k
  units, bench/unit_scan.py); tables written as float16 by earlier versions are still read.
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

import itertools
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from insight_agent.vectorstore.units import units_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["THRESHOLD_FLOOR", "UnitTable", "build_unit_table", "calibrate_threshold", "unit_dir"]

DIRECTORY = "units"
THRESHOLD_FLOOR = 0.5
NULL_QUANTILE = 0.995
NULL_PAIRS = 20_000
SCAN_CHUNK = 65_536
VECTOR_DTYPE = np.dtype("<f4")  # unit vectors on disk (see the module docstring)


def unit_dir(artifacts: Path) -> Path:
    """Where a workspace's unit table lives."""
    return Path(artifacts) / DIRECTORY


@dataclass
class UnitTable:
    """Units of every indexed review (see the module docstring).

    The unit rows (doc, unit_no, start, end, text, stems, p_positive, sentiment) are a pandas
    ``frame`` after a build. A loaded table starts without one: :meth:`column` reads a column
    from ``columns.npz`` (``stored``) or, for the other columns and older tables, from
    ``units.parquet`` with pyarrow (``rows``); :attr:`units` reads the frame when asked."""

    reviews: Any  # FilterTable over review documents
    review_ids: np.ndarray  # str, per document
    frame: pd.DataFrame | None  # the unit rows; None in a loaded table until asked for
    vectors: np.ndarray  # (n_units, dim) VECTOR_DTYPE (float16 in older tables), maybe mapped
    threshold: float
    sentiment_source: str  # "model" or "lexicon"
    # Per document (text, metadata): in memory after a build, read by offset after a load.
    records: Sequence[tuple[str, dict[str, Any]]] | None = None
    directory: Path | None = None
    # The vectors live in a build's staging file, which save() moves into place.
    staged: bool = False
    embedded: int = 0  # units this build embedded (the rest reused their vectors)
    stored: dict[str, np.ndarray] | None = None  # columns.npz of a loaded table
    rows: Any = None  # pyarrow Table of a loaded table's units.parquet, read when first needed
    _columns: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        if self.frame is not None:
            return len(self.frame)
        if self.stored is not None:
            return len(self.stored["doc"])
        return int(self._rows().num_rows)

    @property
    def units(self) -> pd.DataFrame:
        """The unit rows as a pandas DataFrame; a loaded table converts its ``units.parquet``
        on first use (the frame ``pd.read_parquet`` gives, tested)."""
        if self.frame is None:
            self.frame = self._rows().to_pandas()
        return self.frame

    def column(self, name: str) -> np.ndarray:
        """One column of the unit rows as a numpy array (text columns as object arrays of
        str), the same values as ``units[name].to_numpy()``. A loaded table reads it once,
        without pandas: from ``columns.npz`` when it has it, else from ``units.parquet``."""
        if self.frame is not None:
            return self.frame[name].to_numpy()
        if name not in self._columns:
            if self.stored is not None and name in SEARCH_COLUMNS:
                self._columns[name] = stored_column(self.stored, name)
            else:
                self._columns[name] = column_array(self._rows().column(name))
        return self._columns[name]

    def _rows(self) -> Any:
        """The loaded table's ``units.parquet`` as a pyarrow Table (read on first use)."""
        if self.rows is None:
            assert self.directory is not None
            self.rows = read_unit_rows(self.directory / "units.parquet")
        return self.rows

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

    def vector_rows(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows`` as float32. A table backed by a file is read with plain
        reads, so the pages do not stay mapped into the process (resident memory stays flat
        while an ingest reads every vector once)."""
        rows = np.asarray(rows, dtype=np.int64)
        path = getattr(self.vectors, "filename", None)
        if path is None or not Path(path).is_file():
            return np.asarray(self.vectors[rows], dtype=np.float32)
        return read_vector_rows(
            Path(path), self.vectors.offset, self.vectors.shape, rows, self.vectors.dtype
        )

    def unit_mask(self, filters: Any | None) -> np.ndarray:
        """Which units belong to reviews passing ``filters`` (ReviewFilters) and its keyword."""
        doc = self.column("doc")
        if filters is None:
            return np.ones(len(doc), dtype=bool)
        keep = self.reviews.mask(filters)[doc]
        if getattr(filters, "contains", None):
            keep &= self.contains_mask(filters.contains)[doc]
        return keep

    def contains_mask(self, keyword: str) -> np.ndarray:
        """Per review document: whether any of its units contains ``keyword`` (any case)."""
        if self.frame is not None:
            hit = self.frame["text"].str.contains(keyword, case=False, regex=False).to_numpy()
        else:  # what pandas runs for its pyarrow-backed strings, without pandas
            import pyarrow.compute as pc

            found = pc.match_substring(self._rows().column("text"), keyword, ignore_case=True)
            hit = np.array(found.to_pylist(), dtype=bool)  # to_numpy would import pandas
        out = np.zeros(self.n_reviews, dtype=bool)
        out[self.column("doc")[hit]] = True
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

    def iter_metadata(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(document id, metadata) of every document in order, a line at a time."""
        ids = self.reviews.ids
        if self.records is not None:
            for d, (_, meta) in enumerate(self.records):
                yield str(ids[d]), meta
            return
        assert self.directory is not None
        with open(self.directory / "docs.jsonl", "rb") as f:
            for d, line in enumerate(f):
                yield str(ids[d]), json.loads(line)["meta"]

    @property
    def synced(self) -> bool:
        """Whether the ingest that wrote this table finished writing the Chroma collection."""
        if self.directory is None:
            return False
        try:
            info = json.loads((self.directory / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return bool(info.get("collection_synced"))

    def mark_synced(self) -> None:
        """Record that the Chroma collection now holds exactly this table's documents (the
        next ingest then reads what it holds from here, not from Chroma)."""
        assert self.directory is not None
        path = self.directory / "meta.json"
        info = json.loads(path.read_text(encoding="utf-8"))
        info["collection_synced"] = True
        tmp = path.with_name("meta.json.tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    def save(self, directory: Path, meta: dict[str, Any] | None = None) -> None:
        """Write the table to ``directory`` (a temporary directory renamed into place)."""
        directory = Path(directory)
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.units.to_parquet(tmp / "units.parquet", index=False)
        write_stored_columns(tmp / COLUMNS_FILE, self.units)
        source = getattr(self.vectors, "filename", None)
        if source is not None and self.vectors.dtype == VECTOR_DTYPE and Path(source).is_file():
            if self.staged:
                shutil.move(source, tmp / "vectors.npy")
            else:
                shutil.copyfile(source, tmp / "vectors.npy")
        else:
            np.save(tmp / "vectors.npy", np.asarray(self.vectors, dtype=VECTOR_DTYPE))
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
        if source is not None:  # the array's file moved (or was copied): map the saved one
            self.vectors = np.load(directory / "vectors.npy", mmap_mode="r")
            self.staged = False

    @classmethod
    def load(cls, directory: Path) -> UnitTable | None:
        """The table in ``directory``; None when missing or incomplete."""
        from insight_agent.vectorstore.store import FilterTable

        directory = Path(directory)
        rows = stored = None
        try:
            info = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
            reviews = FilterTable.load(directory / "reviews.npz")
            if (directory / COLUMNS_FILE).is_file() and (directory / "units.parquet").is_file():
                stored = read_stored_columns(directory / COLUMNS_FILE)
                n = len(stored["doc"])
            else:  # written before columns.npz: the search columns come from the parquet
                rows = read_unit_rows(directory / "units.parquet")
                n = rows.num_rows
            vectors = np.load(directory / "vectors.npy", mmap_mode="r")
            review_ids = np.load(directory / "review_ids.npy")
        except (OSError, ValueError, KeyError):
            return None
        if reviews is None or len(vectors) != n or len(review_ids) != len(reviews):
            return None
        return cls(
            reviews=reviews,
            review_ids=review_ids,
            frame=None,
            stored=stored,
            rows=rows,
            vectors=vectors,
            threshold=float(info["threshold"]),
            sentiment_source=str(info.get("sentiment_source", "lexicon")),
            directory=directory,
        )


#: The columns a search reads, kept in ``columns.npz`` beside units.parquet.
SEARCH_COLUMNS = ("doc", "start", "end", "p_positive", "sentiment", "text")
COLUMNS_FILE = "columns.npz"


def write_stored_columns(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame``'s :data:`SEARCH_COLUMNS` to ``path`` as plain arrays: numbers in their
    own dtypes, sentiment as fixed-width text, the texts as one UTF-8 byte array and the
    offset where each text starts (and the last ends)."""
    encoded = [str(t).encode() for t in frame["text"].tolist()]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    with open(path, "wb") as f:  # np.savez would add ".npz" to a name without it
        np.savez(
            f,
            **{name: frame[name].to_numpy() for name in ("doc", "start", "end", "p_positive")},
            sentiment=np.asarray(frame["sentiment"].tolist(), dtype=str),
            text_utf8=np.frombuffer(b"".join(encoded), dtype=np.uint8),
            text_offsets=offsets,
        )


def read_stored_columns(path: Path) -> dict[str, np.ndarray]:
    """The arrays :func:`write_stored_columns` wrote (read in full: they are small next to
    the vectors, which stay on disk)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def stored_column(stored: dict[str, np.ndarray], name: str) -> np.ndarray:
    """One of :data:`SEARCH_COLUMNS` from :func:`read_stored_columns`' arrays, as the pandas
    frame's ``to_numpy()`` gives it (text as object arrays of str)."""
    if name == "text":
        blob, offsets = stored["text_utf8"].tobytes(), stored["text_offsets"].tolist()
        out = np.empty(len(offsets) - 1, dtype=object)
        out[:] = [blob[a:b].decode() for a, b in itertools.pairwise(offsets)]
        return out
    if name == "sentiment":
        return stored[name].astype(object)
    return stored[name]


def read_unit_rows(path: Path) -> Any:
    """``units.parquet`` as a pyarrow Table. Through ``ParquetFile`` rather than
    ``pq.read_table``: the latter goes through pyarrow's dataset layer, which imports pandas
    (a third of a cold search's time). In one thread: on 2 cores the thread pool did not read
    306k units faster (42 against 49 ms) and its start sometimes cost 0.1-0.25 s."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        return f.read(use_pandas_metadata=True, use_threads=False)


def column_array(column: Any) -> np.ndarray:
    """A pyarrow column as numpy, as pandas holds it: numbers in their own dtype, text as an
    object array of str. Numbers are viewed from their buffers and text goes through Python
    lists, rather than ``to_numpy``: pyarrow's conversion loads its pandas shim, which imports
    pandas. A column with missing numbers (none in a unit table) takes that path anyway."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        out = np.empty(len(column), dtype=object)
        out[:] = column.to_pylist()
        return out
    if column.null_count or not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return column.to_numpy()
    dtype = np.dtype(kind.to_pandas_dtype())
    parts = [
        np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c), offset=c.offset * dtype.itemsize)
        for c in column.chunks
    ]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def null_pairs(docs: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """The random pairs of units from different reviews the threshold is calibrated on (rows
    ``a[i]``, ``b[i]``); None when there are too few units or pairs to calibrate."""
    n = len(docs)
    if n < 50:
        return None
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, NULL_PAIRS)
    b = rng.integers(0, n, NULL_PAIRS)
    keep = docs[a] != docs[b]
    if keep.sum() < 100:
        return None
    return a[keep], b[keep]


def threshold_from_pairs(va: np.ndarray, vb: np.ndarray) -> float:
    """The counting threshold from the vectors of :func:`null_pairs`' pairs."""
    sims = np.einsum("ij,ij->i", np.asarray(va, np.float32), np.asarray(vb, np.float32))
    return round(max(THRESHOLD_FLOOR, float(np.quantile(sims, NULL_QUANTILE))), 3)


def calibrate_threshold(vectors: np.ndarray, docs: np.ndarray, seed: int = 0) -> float:
    """The counting threshold for this data (see the module docstring)."""
    pairs = null_pairs(np.asarray(docs), seed)
    if pairs is None:
        return THRESHOLD_FLOOR
    a, b = pairs
    return threshold_from_pairs(vectors[a], vectors[b])


READ_WINDOW = 8192  # rows per plain read (12 MB of float32 at 384 numbers a row)


def read_vector_rows(
    path: Path,
    offset: int,
    shape: tuple[int, ...],
    rows: np.ndarray,
    dtype: Any = VECTOR_DTYPE,
) -> np.ndarray:
    """Rows of the ``.npy`` at ``path`` (``dtype`` data from byte ``offset``) as float32, read
    in windows with plain file reads (no memory map)."""
    dim = int(shape[1])
    out = np.empty((len(rows), dim), dtype=np.float32)
    if not len(rows):
        return out
    order = np.argsort(rows, kind="stable")
    ranked = rows[order]
    if ranked[0] < 0 or ranked[-1] >= shape[0]:
        raise IndexError(f"vector rows out of range 0..{shape[0] - 1}")
    dtype = np.dtype(dtype)
    item = dtype.itemsize
    with open(path, "rb") as f:
        i = 0
        while i < len(ranked):
            lo = int(ranked[i])
            j = int(np.searchsorted(ranked, lo + READ_WINDOW, side="left"))
            hi = int(ranked[j - 1]) + 1
            f.seek(offset + lo * dim * item)
            block = np.fromfile(f, dtype=dtype, count=(hi - lo) * dim).reshape(hi - lo, dim)
            out[order[i:j]] = block[ranked[i:j] - lo]
            i = j
    return out


class VectorSink:
    """``n`` vectors written block by block, in row order, as ``VECTOR_DTYPE``: to the
    ``.npy`` file ``path`` when one is given (so an ingest does not hold every vector in
    memory), else to an array."""

    def __init__(self, n: int, path: Path | None) -> None:
        self.n = n
        self.path = None if path is None else Path(path)
        self.file: Any = None
        self.array: np.ndarray | None = None
        self.written = 0

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=VECTOR_DTYPE)
        if self.path is None:
            if self.array is None:
                self.array = np.zeros((self.n, block.shape[1]), dtype=VECTOR_DTYPE)
            self.array[self.written : self.written + len(block)] = block
        else:
            if self.file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.file = open(self.path, "wb")  # noqa: SIM115 - closed in finish()
                header = {
                    "descr": VECTOR_DTYPE.str,
                    "fortran_order": False,
                    "shape": (self.n, block.shape[1]),
                }
                np.lib.format.write_array_header_1_0(self.file, header)
            self.file.write(block.tobytes())
        self.written += len(block)

    def finish(self, dim: int) -> np.ndarray:
        """The written vectors: memory-mapped from the file, or the array."""
        if self.written == 0:
            self.write(np.zeros((0, dim), dtype=VECTOR_DTYPE))
        if self.path is None:
            assert self.array is not None
            return self.array
        self.file.close()
        return np.load(self.path, mmap_mode="r")


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
    workdir: Path | None = None,
) -> UnitTable:
    """Split, embed and score the units of every review document.

    ``reviews`` is the :class:`FilterTable` of the same documents (same order); units of
    documents already in ``previous`` (matched by document id) reuse their vectors.
    ``metadatas`` (the documents' Chroma metadata) are kept with their texts for
    :meth:`UnitTable.documents`. With ``workdir`` the vectors are written block by block to
    ``workdir/vectors.npy`` (moved into place by :meth:`UnitTable.save`), so memory does not
    grow with the number of units; without it they are kept in memory.
    """
    import pandas as pd

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
    del cols
    n = len(units)
    found = np.full(n, -1, dtype=np.int64)  # the unit's row in ``previous``, -1 to embed
    stems = np.empty(n, dtype=object)
    old_stems = None
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
        got = old_key.reindex(key).to_numpy()
        have = ~pd.isna(got)
        found[have] = got[have].astype(np.int64)
        if "stems" in old_units:
            old_stems = old_units["stems"].to_numpy(dtype=object)
    reused = found >= 0
    n_todo = int((~reused).sum())
    pairs = null_pairs(units["doc"].to_numpy())
    sampled = None if pairs is None else np.unique(np.concatenate(pairs))
    sample = None
    sink = VectorSink(n, None if workdir is None else Path(workdir) / "vectors.npy")
    p = np.empty(n, dtype=np.float32)
    dim = previous.vectors.shape[1] if previous is not None and len(previous) else None
    done = 0
    # Block by block, in row order: reuse or embed the vectors, score and stem the texts.
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        texts_block = units["text"].iloc[start:stop].astype(str).tolist()
        old = found[start:stop]
        keep = old >= 0
        block: np.ndarray | None = None
        if keep.any():
            assert previous is not None
            block = np.zeros((stop - start, previous.vectors.shape[1]), dtype=VECTOR_DTYPE)
            block[keep] = previous.vector_rows(old[keep])
            if old_stems is not None:
                stems[start:stop][keep] = old_stems[old[keep]]
        todo = np.flatnonzero(~keep)
        if len(todo):
            vectors = np.asarray(embed([texts_block[i] for i in todo]), dtype=np.float32)
            dim = vectors.shape[1]
            if block is None:
                block = np.zeros((stop - start, dim), dtype=VECTOR_DTYPE)
            block[todo] = vectors
            done += len(todo)
            if progress:
                progress(done, n_todo)
        assert block is not None
        sink.write(block)
        missing = [i for i in range(stop - start) if stems[start + i] is None]
        if missing:
            new_stems = unit_stems([texts_block[i] for i in missing])
            stems[[start + i for i in missing]] = new_stems
        p[start:stop] = np.asarray(score(texts_block), dtype=np.float32)
        if sampled is not None:
            lo, hi = np.searchsorted(sampled, [start, stop])
            if sample is None:
                sample = np.zeros((len(sampled), block.shape[1]), dtype=VECTOR_DTYPE)
            sample[lo:hi] = block[sampled[lo:hi] - start]
    vectors_all = sink.finish(dim or 384)
    units["stems"] = pd.Series(stems, dtype="string")
    units["p_positive"] = p
    units["sentiment"] = pd.Series([unit_label(float(v)) for v in p], dtype="string")
    threshold = THRESHOLD_FLOOR
    if pairs is not None and sample is not None:
        a, b = pairs
        threshold = threshold_from_pairs(
            sample[np.searchsorted(sampled, a)], sample[np.searchsorted(sampled, b)]
        )
    return UnitTable(
        reviews=reviews,
        review_ids=np.asarray(review_ids, dtype=str),
        frame=units,
        vectors=vectors_all,
        threshold=threshold,
        sentiment_source=sentiment_source,
        records=None if metadatas is None else _Records(texts, metadatas),
        staged=workdir is not None,
        embedded=done,
    )


class _Records(Sequence[tuple[str, dict[str, Any]]]):
    """(text, metadata) per document, without building a list of pairs."""

    def __init__(self, texts: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        self.texts, self.metadatas = texts, metadatas

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.texts[i], self.metadatas[i]
