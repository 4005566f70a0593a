"""Embedders for tests: loaded by ``module:function`` like an operator's own."""

from __future__ import annotations

import numpy as np

_calls = {"nan_after_probe": 0}


def three_d(texts: list[str]) -> np.ndarray:
    return np.ones((len(texts), 3), dtype=np.float32)


def raising(texts: list[str]) -> np.ndarray:
    raise RuntimeError("model server unreachable")


def wrong_shape(texts: list[str]) -> np.ndarray:
    return np.ones((len(texts) + 1, 3), dtype=np.float32)


def nan(texts: list[str]) -> np.ndarray:
    out = np.ones((len(texts), 3), dtype=np.float32)
    out[0, 1] = np.nan
    return out


def zero(texts: list[str]) -> np.ndarray:
    return np.zeros((len(texts), 3), dtype=np.float32)


def ints(texts: list[str]) -> np.ndarray:
    return np.ones((len(texts), 3), dtype=np.int64)


def nan_after_probe(texts: list[str]) -> np.ndarray:
    """Good for the probe and the first batch, then NaN."""
    _calls["nan_after_probe"] += 1
    out = np.ones((len(texts), 3), dtype=np.float32)
    if _calls["nan_after_probe"] > 2:
        out[-1, 0] = np.nan
    return out
