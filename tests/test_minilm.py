"""The numpy ``minilm`` embedder against sentence-transformers' own vectors.

tests/data/minilm_reference.json was made by scripts/minilm_reference.py with the real
sentence-transformers library (torch) from the same model files; see that script to rerun it.
Run with ``-s`` to see the cosines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reindex_fsm import embedders
from reindex_fsm.embedders import minilm

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"
MIN_COSINE = 0.999


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def test_tokens_match_sentence_transformers(reference: dict[str, Any]) -> None:
    items = reference["items"]
    assert any(item["tokens_untruncated"] > 256 for item in items), "nothing exercises truncation"
    tokenizer = minilm.get_model().tokenizer
    for item in items:
        assert tokenizer.encode(item["text"]).ids == item["input_ids"], item["text"][:60]


def test_vectors_match_sentence_transformers(reference: dict[str, Any]) -> None:
    items = reference["items"]
    texts = [item["text"] for item in items]
    expected = np.array([item["vector"] for item in items], dtype=np.float64)

    got = minilm.compute_embeddings(texts)

    assert got.shape == (len(texts), 384)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = (got.astype(np.float64) * expected).sum(axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    print(
        f"\nminilm vs sentence-transformers over {len(texts)} texts: "
        f"min cosine {cosines.min():.8f}, mean {cosines.mean():.8f}, "
        f"max abs diff {np.abs(got - expected).max():.2e}"
    )
    for text, cosine in zip(texts, cosines, strict=True):
        assert cosine > MIN_COSINE, f"cosine {cosine:.6f} for {text[:60]!r}"


def test_batching_and_order_do_not_change_vectors(reference: dict[str, Any]) -> None:
    texts = [item["text"] for item in reference["items"]]
    together = minilm.compute_embeddings(texts)
    one_by_one = np.vstack([minilm.compute_embeddings([text]) for text in reversed(texts)])[::-1]
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert minilm.compute_embeddings([]).shape == (0, 384)


def test_load_by_name_reports_dimension_384() -> None:
    embedder = embedders.load("minilm")
    assert embedder.dimension == 384
    vectors = embedder(["one text", "another text"])
    assert vectors.shape == (2, 384)
    assert vectors.dtype == np.float32
