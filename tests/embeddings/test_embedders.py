"""Embedders: the hashing embedder, the cache, and the bundled model (marked ``model``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engramdb import HashingEmbedder, MemoryEngine, ValidationError
from engramdb.embeddings import (
    CachedEmbedder,
    Embedder,
    SentenceTransformerEmbedder,
    resolve_embedder,
)
from engramdb.errors import EmbedderUnavailableError


def test_hashing_is_deterministic_and_unit_length() -> None:
    a, b = HashingEmbedder(128), HashingEmbedder(128)
    texts = ["the same text", "another one", "!!!"]
    va, vb = a.embed(texts), b.embed(texts)
    np.testing.assert_array_equal(va, vb)
    assert va.dtype == np.float32 and va.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(va, axis=1), 1.0, rtol=1e-6)
    pie, tart, physics = a.embed(["red apple pie", "red apple tart", "quantum field theory"])
    assert pie @ tart > pie @ physics
    assert isinstance(a, Embedder)
    with pytest.raises(ValidationError, match="dim 3"):
        HashingEmbedder(3)


class Counting:
    name, dim, normalized = "counting", 8, True

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.seen += list(texts)
        return HashingEmbedder(8).embed(texts)


def test_cache_embeds_each_text_once() -> None:
    inner = Counting()
    cached = CachedEmbedder(inner, capacity=100)
    first = cached.embed(["x", "y", "x"])
    second = cached.embed(["y", "z"])
    assert inner.seen == ["x", "y", "z"]
    np.testing.assert_array_equal(first[1], second[0])
    assert cached.hits == 2 and cached.misses == 3


def test_resolve_rejects_non_embedders() -> None:
    with pytest.raises(ValidationError, match="lacks"):
        resolve_embedder(object())  # type: ignore[arg-type]
    assert resolve_embedder("hashing-32").dim == 32


@pytest.mark.model
def test_unloadable_model_is_a_clear_error(tmp_path: Path) -> None:
    emb = SentenceTransformerEmbedder(tmp_path / "no-such-model")
    with pytest.raises(EmbedderUnavailableError, match="no-such-model"):
        emb.embed(["x"])


@pytest.mark.model
def test_bundled_model_embeds_semantically(minilm: SentenceTransformerEmbedder) -> None:
    v = minilm.embed(["A dog runs in the park", "A puppy is playing outside", "Tax law reform"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


@pytest.mark.model
def test_long_text_is_chunked_not_cut(minilm: SentenceTransformerEmbedder) -> None:
    head = "The launch code is hidden under the blue vase in the hallway. "
    tail = "Penguins in Antarctica huddle together to survive the winter storms. "
    long_text = head * 40 + tail * 40
    assert minilm.chunk_counts([long_text, "short"])[0] > 1
    vec = minilm.embed([long_text])[0]
    probe = minilm.embed(["penguins huddle in antarctic winter"])[0]
    truncated = minilm.embed([head * 40])[0]
    # The tail lies beyond the first window: a cut text would not know about penguins.
    assert vec @ probe > truncated @ probe + 0.1


@pytest.mark.model
def test_a_batch_embeds_each_text_as_alone(minilm: SentenceTransformerEmbedder) -> None:
    """Short ASCII texts skip the window count; long and non-ASCII ones do not: in a mixed
    batch every text gets the vector the model gives it alone, and its window count."""
    long_text = "The launch code is hidden under the blue vase in the hallway. " * 60
    window = "x" * minilm.max_tokens  # as many characters as the window has tokens
    texts = ["Yes, last week!", long_text, "Ça va très bien, merci", window, "한국어 문장입니다"]
    together = minilm.embed(texts)
    for text, vec in zip(texts, together, strict=True):
        np.testing.assert_allclose(vec, minilm.embed([text])[0], atol=1e-5)
        direct = minilm.model.encode([text], normalize_embeddings=True)[0]
        if minilm.chunk_counts([text]) == [1]:  # one window: the model's own vector
            np.testing.assert_allclose(vec, direct, atol=1e-5)
    counts = minilm.chunk_counts(texts)
    assert counts[1] > 1 and counts[:1] + counts[2:] == [1, 1, 1, 1]


@pytest.mark.model
def test_engine_on_the_bundled_model(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    with MemoryEngine.open(tmp_path / "s", embedder=minilm) as eng:
        eng.add_many(
            [
                "I adopted a golden retriever named Max",
                "My sister lives in Toronto",
                "I am training for a marathon in October",
            ],
            agent="u",
        )
        long = eng.add("word " * 2000, agent="u")
        assert long.chunks > 1
        hits = eng.recall("What is the name of my dog?", agent="u", k=1)
        assert "golden retriever" in hits[0].memory.text
    with pytest.raises(Exception, match="all-MiniLM-L6-v2"):
        MemoryEngine.open(tmp_path / "s", embedder="hashing")
