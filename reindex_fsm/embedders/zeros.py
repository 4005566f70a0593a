"""All-zero vectors, for tests only: chosen only by name (``--embedder zeros``), with a warning.
Never a fallback."""

from __future__ import annotations

import numpy as np

DIMENSION = 8


def compute_embeddings(texts: list[str]) -> np.ndarray:
    return np.zeros((len(texts), DIMENSION), dtype=np.float32)
