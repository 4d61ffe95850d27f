"""Review text in Chroma: idempotent, incremental ingest and metadata that follows segments.

* A document's id is a hash of its review id and text: an unchanged review keeps its id, so a
  re-ingest embeds nothing; an edited review gets a new id (embedded) and the old one is
  removed. Ingest adds in batches, so an interrupted run resumes where it stopped.
* Metadata per review: review_id, customer_id, segment, rating, date (YYYYMMDD as an int, for
  range filters), product, category, sentiment and sentiment_source ("rating"; "lexicon" for
  unrated reviews scored by :mod:`insight_agent.vectorstore.sentiment`; "none" with neither
  rating nor text). When segments change, only metadata is updated — no re-embedding.
* Review text is stored verbatim as data; nothing here treats it as instructions.

* Filter table (embedded store only): ``filter_table.npz`` next to the Chroma files holds each
  document's id and its filterable metadata as arrays, written at the end of every ingest and
  removed at its start. Chroma's own filtered query gathers the matching ids from SQLite
  first (~0.37 s for a rating-and-date filter at 100k reviews, bench/reviews.py); with this
  table a filter is a numpy mask. An ingest with a unit table also writes
  ``review_vectors.npy`` beside it (each document's vector, float32, the table's row order):
  the documents that pass are then ranked exactly by one product (~10 ms at 100k), else
  Chroma searches only their ids (~90-120 ms). Both are used only when the table's document
  count equals the collection's, asked again whenever the store's SQLite files change (see
  :mod:`insight_agent.vectorstore.search`).

The embedding function is passed in (see :mod:`insight_agent.vectorstore.embedder`), so tests
and other embedders plug in the same way.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where an ingest needs it: a search reads no frame
    import pandas as pd

COLLECTION = "reviews"
UNKNOWN = ""  # Chroma metadata cannot hold None


def doc_id(review_id: str, text: str) -> str:
    """Stable document id: changes when (and only when) the review's id or text changes."""
    digest = hashlib.sha1(f"{review_id}\x1f{text}".encode()).hexdigest()
    return f"rv-{digest[:20]}"


def sentiment_from_rating(rating: float | None) -> str:
    """positive (4-5 stars), neutral (3), negative (0-2), or unrated."""
    import pandas as pd

    if rating is None or pd.isna(rating):
        return "unrated"
    if rating >= 4:
        return "positive"
    return "neutral" if rating >= 3 else "negative"


def metadata_frame(
    reviews: pd.DataFrame, segments: pd.Series | None = None, text_model: Any = None
) -> pd.DataFrame:
    """One Chroma metadata row per review (plain str/int/float values, no missing values).

    ``text_model`` (a :class:`~insight_agent.vectorstore.textmodel.TextSentiment`) labels
    unrated reviews; without it the lexicon does."""
    import pandas as pd

    n = len(reviews)

    def col(name: str) -> pd.Series:
        if name in reviews:
            return reviews[name].astype("string").fillna(UNKNOWN)
        return pd.Series([UNKNOWN] * n, index=reviews.index, dtype="string")

    meta = pd.DataFrame(
        {
            "review_id": reviews["review_id"].astype("string"),
            "customer_id": col("customer_id"),
            "product": col("product"),
            "category": col("category"),
        }
    )
    if segments is not None and "customer_id" in reviews:
        seg = reviews["customer_id"].map(segments).astype("string")
        meta["segment"] = seg.fillna(UNKNOWN)
    else:
        meta["segment"] = UNKNOWN
    rating = (
        reviews["rating"] if "rating" in reviews else pd.Series([None] * n, index=reviews.index)
    )
    meta["rating"] = pd.to_numeric(rating, errors="coerce").fillna(-1.0).astype(float)
    # Rated reviews keep the rating rule; only unrated ones are scored from their text (the
    # trained model, else VADER). Imported here: sentiment.py builds on sentiment_from_rating.
    from insight_agent.vectorstore.sentiment import review_sentiment

    labels = review_sentiment(rating, reviews.get("text"), model=text_model)
    meta["sentiment"] = labels["sentiment"].astype("string")
    meta["sentiment_source"] = labels["sentiment_source"].astype("string")
    if "date" in reviews:
        dates = pd.to_datetime(reviews["date"], errors="coerce")
        meta["date"] = (
            (dates.dt.year * 10000 + dates.dt.month * 100 + dates.dt.day).fillna(0).astype(int)
        )
    else:
        meta["date"] = 0
    if "source_row" in reviews:  # the row in the user's file (data/load.py), -1 unknown
        meta["source_row"] = pd.to_numeric(reviews["source_row"], errors="coerce").fillna(-1)
        meta["source_row"] = meta["source_row"].astype(int)
    return meta


class MetaRows(Sequence[dict[str, Any]]):
    """The rows of a metadata frame as Chroma metadata dicts, made a chunk at a time when
    asked for (equal to ``frame.to_dict(orient="records")[i]``) rather than all held at once
    (about 60 MB at 100k reviews)."""

    CHUNK = 4096

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._chunk = -1
        self._rows: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        chunk = i // self.CHUNK
        if chunk != self._chunk:
            part = self.frame.iloc[chunk * self.CHUNK : (chunk + 1) * self.CHUNK]
            self._rows, self._chunk = part.to_dict(orient="records"), chunk
        return self._rows[i - chunk * self.CHUNK]


# An ingest that embedded at least this many units lets the embedding model go before the
# reviews are written to Chroma: a model and its buffers hold about 350 MB, Chroma's index at
# 100k reviews another 250 MB. Below it, reloading (about a second) would cost more than the
# memory is worth.
RELEASE_AFTER_UNITS = 10_000


def _release_embedder(embedding_function: Any) -> None:
    embedder = getattr(embedding_function, "embedder", None)
    if embedder is not None and hasattr(embedder, "release"):
        embedder.release()


@dataclass
class SyncReport:
    """What one ingest did."""

    total: int
    added: int
    removed: int
    metadata_updated: int
    unchanged: int
    seconds: float
    units: int = 0
    unit_seconds: float = 0.0  # splitting, embedding and scoring the units (part of seconds)


def open_index(
    artifacts: Path, url: str | None = None, *, threads: int | None = None
) -> ReviewIndex:
    """The workspace's review index: embedded Chroma under ``artifacts/chroma`` or a server,
    with its opinion-unit table under ``artifacts/units``."""
    from insight_agent.vectorstore.embedder import chroma_embedding_function, model_cache_dir
    from insight_agent.vectorstore.unitstore import unit_dir

    path = None if url else Path(artifacts) / "chroma"
    client = open_client(path, url)
    return ReviewIndex(
        client,
        chroma_embedding_function(threads=threads, cache_dir=model_cache_dir(artifacts)),
        path=path,
        units_dir=unit_dir(artifacts),
    )


def open_client(path: Path | None = None, url: str | None = None) -> Any:
    """A Chroma client: embedded at ``path``, or a server at ``url`` (http://host:port)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from insight_agent.vectorstore.embedder import register_with_chroma

    # Chroma rebuilds a collection's embedding function from a name it must already know;
    # without this, reopening the reviews collection fails at the first query.
    register_with_chroma()
    settings = ChromaSettings(anonymized_telemetry=False)
    if url:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        return chromadb.HttpClient(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 8000,
            ssl=parsed.scheme == "https",
            settings=settings,
        )
    if path is None:
        raise ValueError("open_client needs a path or a url")
    Path(path).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


FILTER_TABLE = "filter_table.npz"
# Each document's vector (float32, the filter table's row order), written with the table by an
# ingest that has a unit table: a filtered search whose neighbourhood holds too few matches
# ranks the documents the table lets through exactly, with one product (see search.py).
REVIEW_VECTORS = "review_vectors.npy"
VECTOR_BLOCK = 8192  # documents a block when the file is written
FILTER_COLUMNS = ("segment", "sentiment", "product", "category")


@dataclass
class FilterTable:
    """Every document's id and filterable metadata as arrays (see the module docstring)."""

    ids: Any  # numpy array of str
    rating: Any  # float32, -1 when unrated
    date: Any  # int32 YYYYMMDD, 0 when unknown
    codes: dict[str, Any]  # column -> int32 codes into values[column]
    values: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_frame(cls, ids: list[str], meta: pd.DataFrame) -> FilterTable:
        """The table for documents ``ids`` with metadata rows ``meta`` (same order)."""
        import pandas as pd

        codes, values = {}, {}
        for column in FILTER_COLUMNS:
            codes[column], uniques = pd.factorize(meta[column].astype(str))
            codes[column] = codes[column].astype(np.int32)
            values[column] = [str(v) for v in uniques]
        return cls(
            ids=np.asarray(ids, dtype=str),
            rating=meta["rating"].to_numpy(dtype=np.float32),
            date=meta["date"].to_numpy(dtype=np.int32),
            codes=codes,
            values=values,
        )

    def save(self, path: Path) -> None:
        """Write atomically (a temporary file renamed into place)."""
        import json

        import numpy as np

        tmp = path.with_name(path.name + ".tmp.npz")
        arrays = {f"code_{c}": self.codes[c] for c in FILTER_COLUMNS}
        np.savez(
            tmp,
            ids=self.ids,
            rating=self.rating,
            date=self.date,
            values=np.asarray(json.dumps(self.values)),
            **arrays,
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> FilterTable | None:
        """The table at ``path``; None when it is missing or unreadable."""
        import json

        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    ids=data["ids"],
                    rating=data["rating"],
                    date=data["date"],
                    codes={c: data[f"code_{c}"] for c in FILTER_COLUMNS},
                    values=json.loads(str(data["values"])),
                )
        except (OSError, ValueError, KeyError):
            return None

    def mask(self, filters: Any) -> Any:
        """Which documents pass ``filters`` (a ReviewFilters without ``contains``): the same
        test as its Chroma ``where`` clause."""
        import numpy as np

        from insight_agent.vectorstore.search import _date_int

        keep = np.ones(len(self.ids), dtype=bool)
        for column in FILTER_COLUMNS:
            wanted = getattr(filters, column)
            if wanted:  # any case: "dresses" finds "Dresses"
                wanted = str(wanted).lower()
                codes = [i for i, v in enumerate(self.values[column]) if v.lower() == wanted]
                keep &= np.isin(self.codes[column], codes or [-2])
        if filters.min_rating is not None:
            keep &= self.rating >= float(filters.min_rating)
        if filters.max_rating is not None:
            keep &= (self.rating >= 0) & (self.rating <= float(filters.max_rating))
        if filters.since is not None:
            keep &= self.date >= _date_int(filters.since)
        if filters.until is not None:
            keep &= (self.date > 0) & (self.date <= _date_int(filters.until))
        return keep


def indexed_values(artifacts: Path, column: str, url: str | None = None) -> list[str] | None:
    """The distinct values of a filter column (``category``, ``product``...) in the embedded
    index, read from its filter table without opening Chroma; None when they cannot be known
    (a Chroma server, or no table yet)."""
    if url or column not in FILTER_COLUMNS:
        return None
    path = Path(artifacts) / "chroma" / FILTER_TABLE
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    cached = _VALUES.get(path)
    if cached is None or cached[0] != stamp:
        table = FilterTable.load(path)
        if table is None:
            return None
        cached = (stamp, table.values)
        _VALUES[path] = cached
    return sorted(v for v in cached[1].get(column, []) if v and v not in ("nan", "None"))


_VALUES: dict[Path, tuple[int, dict[str, list[str]]]] = {}


class ReviewIndex:
    """The reviews collection of one workspace."""

    def __init__(
        self,
        client: Any,
        embedding_function: Any,
        name: str = COLLECTION,
        *,
        path: Path | None = None,
        units_dir: Path | None = None,
    ) -> None:
        self.client = client
        self.embedding_function = embedding_function
        self.collection = client.get_or_create_collection(
            name, embedding_function=embedding_function, configuration={"hnsw": {"space": "cosine"}}
        )
        # The filter table lives next to an embedded store only: a server's collection can
        # change under us (a teammate's ingest), and a stale table would filter wrongly.
        self.table_path = Path(path) / FILTER_TABLE if path is not None else None
        self._table: FilterTable | None = None
        self._checked: tuple[tuple[int, int], ...] | None = None  # see filter_table
        self.units_dir = Path(units_dir) if units_dir is not None else None
        self._units: Any = None
        self._matrix: np.ndarray | None = None

    def unit_table(self) -> Any:
        """The opinion-unit table (:class:`~insight_agent.vectorstore.unitstore.UnitTable`)
        when it matches the collection (same document count), else None."""
        if self.units_dir is None:
            return None
        if self._units is None:
            from insight_agent.vectorstore.unitstore import UnitTable

            self._units = UnitTable.load(self.units_dir)
        if self._units is None or self._units.n_reviews != self.collection.count():
            return None
        return self._units

    def filter_table(self) -> FilterTable | None:
        """The filter table when it matches the collection (same document count), else None."""
        if self.table_path is None:
            return None
        if self._table is None:
            self._table = FilterTable.load(self.table_path)
            self._checked = None
        if self._table is None:
            return None
        # Chroma's count costs ~10 ms at 100k reviews: it is asked again only when the store's
        # files changed since it last agreed (any write, by this process or another, does).
        stamp = self._store_stamp()
        if stamp is None or stamp != self._checked:
            if len(self._table) != self.collection.count():
                return None
            self._checked = stamp
        return self._table

    def _store_stamp(self) -> tuple[tuple[int, int], ...] | None:
        """(mtime, size) of the embedded store's SQLite files; None when unreadable."""
        assert self.table_path is not None
        stamps = []
        for name in ("chroma.sqlite3", "chroma.sqlite3-wal"):
            try:
                info = self.table_path.with_name(name).stat()
            except FileNotFoundError:
                continue
            except OSError:
                return None
            stamps.append((info.st_mtime_ns, info.st_size))
        return tuple(stamps) or None

    def has_review_vectors(self) -> bool:
        """Whether the review-vector file is there (a file check; :meth:`review_matrix`
        also checks it against the collection)."""
        return self.table_path is not None and self.table_path.with_name(REVIEW_VECTORS).is_file()

    def review_matrix(self, table: FilterTable | None = None) -> np.ndarray | None:
        """Every document's vector (memory-mapped, the filter table's rows) when the file and
        a usable filter table are there, else None. ``table``: the filter table the caller
        already checked (asking Chroma for its count again costs ~9 ms at 100k reviews)."""
        table = table if table is not None else self.filter_table()
        if table is None or self.table_path is None:
            return None
        if self._matrix is None:
            try:
                matrix = np.load(self.table_path.with_name(REVIEW_VECTORS), mmap_mode="r")
            except (OSError, ValueError):
                return None
            self._matrix = matrix
        if self._matrix.ndim != 2 or self._matrix.shape[0] != len(table):
            return None
        return self._matrix

    def _write_review_vectors(self, units: Any, ids: list[str]) -> None:
        """Write every document's vector, block by block (resident memory stays flat), then
        rename it into place. A document without units (blank text) was embedded by Chroma:
        its vector is read back from there."""
        from insight_agent.vectorstore.unitstore import VectorSink

        assert self.table_path is not None
        path = self.table_path.with_name(REVIEW_VECTORS)
        tmp = path.with_name(path.name + ".tmp")
        sink = VectorSink(len(ids), tmp)
        for lo in range(0, len(ids), VECTOR_BLOCK):
            block = review_vectors(units, range(lo, min(len(ids), lo + VECTOR_BLOCK)))
            missing = np.flatnonzero(~np.isfinite(block).all(axis=1))
            if len(missing):
                wanted = [ids[lo + i] for i in missing]
                got = self.collection.get(ids=wanted, include=["embeddings"])
                held = dict(zip(got["ids"], got["embeddings"], strict=True))
                for i, doc in zip(missing, wanted, strict=True):
                    vector = np.asarray(held[doc], dtype=np.float32)
                    block[i] = vector / max(float(np.linalg.norm(vector)), 1e-12)
            sink.write(block)
        sink.finish(units.vectors.shape[1])  # closes the file (its memory map is not kept)
        tmp.replace(path)
        self._matrix = None

    def count(self) -> int:
        """Documents in the collection."""
        return self.collection.count()

    def sync(
        self,
        reviews: pd.DataFrame,
        segments: pd.Series | None = None,
        *,
        batch_size: int = 256,
        progress: Callable[[int, int], None] | None = None,
        text_model: Any = None,
        unit_progress: Callable[[int, int], None] | None = None,
    ) -> SyncReport:
        """Make the collection hold exactly ``reviews`` (embedding only new or edited ones),
        then rewrite the opinion-unit table (embedding only new or edited reviews' units).

        ``text_model`` (trained on rated reviews) labels unrated reviews and every unit; without
        it the lexicon does."""
        start = time.perf_counter()
        self._table = self._checked = None
        self._units = None
        if self.table_path is not None:  # stale from here until the end of this ingest
            self.table_path.unlink(missing_ok=True)
            self.table_path.with_name(REVIEW_VECTORS).unlink(missing_ok=True)
        self._matrix = None
        texts = reviews["text"].astype(str).tolist()
        review_ids = reviews["review_id"].astype(str).tolist()
        ids = [doc_id(r, t) for r, t in zip(review_ids, texts, strict=True)]
        meta = metadata_frame(reviews, segments, text_model)
        metas = MetaRows(meta)
        wanted = dict(zip(ids, range(len(ids)), strict=True))
        previous = self._previous_units()
        if previous is not None and self._holds(previous):
            # What the collection holds, from the table the last finished ingest wrote, read
            # a line at a time: asking Chroma for every document's metadata cost about 500 MB
            # at 100k reviews.
            existing: Any = set(previous.reviews.ids.tolist())
            changed = [
                i
                for i, old in previous.iter_metadata()
                if i in wanted and _comparable(old) != _comparable(metas[wanted[i]])
            ]
        else:
            held = self._existing()
            changed = [i for i in ids if i in held and held[i] != _comparable(metas[wanted[i]])]
            existing = set(held)
            del held
        stale = [i for i in existing if i not in wanted]
        for chunk in _batches(stale, 5000):
            self.collection.delete(ids=chunk)
        new = [i for i in ids if i not in existing]
        table = FilterTable.from_frame(ids, meta)
        # Units first (embedded store): a new review's vector is then the mean of its units'
        # vectors, so the review text is not embedded a second time (about 40% of the ingest's
        # model time on real reviews), and a long review is represented by all of its
        # statements rather than by its first 256 word pieces.
        units, unit_start = 0, time.perf_counter()
        unit_table = None
        if self.units_dir is not None:
            unit_table = self._sync_units(
                ids, review_ids, texts, metas, table, text_model, unit_progress, previous
            )
            units = len(unit_table)
            if unit_table.embedded >= RELEASE_AFTER_UNITS:
                _release_embedder(self.embedding_function)
        unit_seconds = time.perf_counter() - unit_start
        done = 0
        for chunk in _batches(new, batch_size):
            rows = [wanted[i] for i in chunk]
            # Each batch's review vectors from its units (read now, not all held at once).
            block = review_vectors(unit_table, rows) if unit_table else None
            if block is not None:
                blank = np.flatnonzero(~np.isfinite(block).all(axis=1))
                if len(blank):  # no units (blank text): its own text is embedded
                    made = self.embedding_function([texts[rows[i]] for i in blank])
                    block[blank] = np.asarray(made, dtype=np.float32)
            self.collection.add(
                ids=chunk,
                documents=[texts[r] for r in rows],
                metadatas=[metas[r] for r in rows],
                embeddings=None if block is None else block,
            )
            done += len(chunk)
            if progress:
                progress(done, len(new))
        for chunk in _batches(changed, 5000):
            self.collection.update(ids=chunk, metadatas=[metas[wanted[i]] for i in chunk])
        if self.table_path is not None:
            if unit_table is not None:
                self._write_review_vectors(unit_table, ids)
            self._table = table
            self._table.save(self.table_path)
        if unit_table is not None and unit_table.directory is not None:
            unit_table.mark_synced()  # the collection now holds exactly the table's documents
        return SyncReport(
            total=len(ids),
            added=len(new),
            removed=len(stale),
            metadata_updated=len(changed),
            unchanged=len(ids) - len(new) - len(changed),
            seconds=round(time.perf_counter() - start, 2),
            units=units,
            unit_seconds=round(unit_seconds, 2),
        )

    def _sync_units(
        self,
        ids: list[str],
        review_ids: list[str],
        texts: list[str],
        metas: MetaRows,
        table: FilterTable,
        text_model: Any,
        progress: Callable[[int, int], None] | None,
        previous: Any,
    ) -> Any:
        from insight_agent.vectorstore.sentiment import lexicon_score
        from insight_agent.vectorstore.unitstore import build_unit_table

        assert self.units_dir is not None
        # The new vectors are written here as they are made, then moved into the table.
        workdir = self.units_dir.with_name(self.units_dir.name + ".build")
        shutil.rmtree(workdir, ignore_errors=True)

        def score(items: list[str]) -> Any:
            if text_model is not None:
                return text_model.predict_positive(items)
            # VADER's compound in [-1, 1] mapped onto [0, 1], so one scale serves both.
            return np.array([(lexicon_score(t) + 1.0) / 2.0 for t in items])

        def embed(items: list[str]) -> Any:
            return np.asarray(self.embedding_function(items), dtype=np.float32)

        units = build_unit_table(
            ids,
            review_ids,
            texts,
            table,
            embed=embed,
            score=score,
            sentiment_source="model" if text_model is not None else "lexicon",
            previous=previous,
            previous_doc_ids=None if previous is None else previous.reviews.ids,
            progress=progress,
            metadatas=metas,
            workdir=workdir,
        )
        units.save(self.units_dir)
        shutil.rmtree(workdir, ignore_errors=True)
        self._units = units
        return units

    def _previous_units(self) -> Any:
        """The unit table the last ingest wrote (its vectors are reused), or None."""
        if self.units_dir is None:
            return None
        from insight_agent.vectorstore.unitstore import UnitTable

        return UnitTable.load(self.units_dir)

    def _holds(self, previous: Any) -> bool:
        """Whether the collection holds exactly ``previous``'s documents: an embedded store
        (no one else writes to it) whose last ingest finished after writing the table, with
        the same document count. A server's collection is always asked."""
        return (
            self.table_path is not None
            and previous.synced
            and previous.has_documents
            and previous.n_reviews == self.collection.count()
        )

    def _existing(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        total = self.collection.count()
        for offset in range(0, total, 5000):
            got = self.collection.get(include=["metadatas"], limit=5000, offset=offset)
            for i, m in zip(got["ids"], got["metadatas"], strict=True):
                out[i] = _comparable(m or {})
        return out


def review_vectors(units: Any, docs: Sequence[int]) -> np.ndarray:
    """Unit-norm mean of each document's unit vectors (rows of ``docs``, in that order); NaN
    rows for documents without units. Reads only those documents' unit vectors.

    The sums run over each document's own run of unit rows in order, so a document's vector
    is the same whichever documents it is computed with (Chroma's copy, made per ingest batch,
    and the review-vector file, made in blocks, are equal)."""
    dim = units.vectors.shape[1]
    out = np.full((len(docs), dim), np.nan, dtype=np.float32)
    if not len(docs):
        return out
    # Units are stored in document order, so a document's units are one run of rows.
    doc = units.column("doc")
    wanted = np.asarray(docs, dtype=np.int64)
    first = np.searchsorted(doc, wanted, side="left")
    last = np.searchsorted(doc, wanted, side="right")
    lengths = last - first
    has = lengths > 0
    if has.any():
        rows = np.concatenate([np.arange(a, b) for a, b in zip(first[has], last[has], strict=True)])
        starts = np.concatenate([[0], np.cumsum(lengths[has])[:-1]])
        sums = np.add.reduceat(units.vector_rows(rows), starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[has] = sums / np.where(norms > 0, norms, np.nan)
    return out


def _comparable(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
        for k, v in meta.items()
    }
