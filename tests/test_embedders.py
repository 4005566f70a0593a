"""Embedder loading and the built-in hashing embedder."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import EntryPoint

import numpy as np
import pytest

from reindex_fsm import embedders
from reindex_fsm.embedders import hashing
from reindex_fsm.errors import EmbedderError


def test_hashing_is_deterministic_across_processes() -> None:
    texts = ["The quick brown fox", "", "Ünïcödé text, with punctuation!"]
    here = hashing.compute_embeddings(texts)
    code = (
        "import sys, json; from reindex_fsm.embedders import hashing; "
        f"print(json.dumps(hashing.compute_embeddings({texts!r}).tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert np.array_equal(here, np.asarray(json.loads(out.stdout), dtype=np.float32))
    assert here.dtype == np.float32 and here.shape == (3, hashing.DIMENSION)
    assert np.allclose(np.linalg.norm(here, axis=1), 1.0, atol=1e-6)


def test_hashing_puts_similar_texts_closer() -> None:
    a, b, c = hashing.compute_embeddings(
        ["rebuild the index behind the alias", "rebuild the index behind an alias", "pizza"]
    )
    assert float(a @ b) > 0.7 > float(a @ c)


def test_entry_point_names_load(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint("three", "tests.support.embedders:three_d", embedders.ENTRY_POINT_GROUP)
    monkeypatch.setattr(embedders, "entry_points", lambda group: [ep])
    assert "three" in embedders.available()
    loaded = embedders.load("three")
    assert loaded.dimension == 3 and loaded(["a", "b"]).shape == (2, 3)


def test_builtins_are_registered_entry_points_of_the_package() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=embedders.ENTRY_POINT_GROUP)}
    assert {"hashing", "zeros", "minilm"} <= names


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        ([[1.0, 2.0]], "not a numpy.ndarray"),
        (np.ones((2, 2), dtype=np.float32), r"shape \(2, 2\) for 1 texts"),
        (np.ones((1, 3), dtype=np.float32), r"expected \(1, 2\)"),
        (np.array([[np.inf, 1.0]], dtype=np.float32), "non-finite"),
        (np.zeros((1, 2), dtype=np.float32), "all-zero vector in row 0"),
        (np.array([["a", "b"]]), "not floats"),
    ],
)
def test_check_batch_refuses(vectors: object, message: str) -> None:
    with pytest.raises(EmbedderError, match=message):
        embedders.check_batch("x", vectors, 1, 2)


def test_check_batch_casts_to_float32_and_allows_zeros_only_when_asked() -> None:
    out = embedders.check_batch("x", np.ones((1, 2), dtype=np.float64), 1, 2)
    assert out.dtype == np.float32
    zeros = embedders.check_batch("zeros", np.zeros((1, 2)), 1, 2, allow_zero_rows=True)
    assert not zeros.any()


def test_a_failing_embedder_is_named() -> None:
    loaded = embedders.Embedder("tests.support.embedders:raising", lambda t: 1 / 0, 3)  # type: ignore[arg-type,return-value]
    with pytest.raises(EmbedderError, match="failed on a batch of 2: ZeroDivisionError"):
        loaded(["a", "b"])
