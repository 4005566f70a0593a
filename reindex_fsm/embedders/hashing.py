"""The default embedder: deterministic feature hashing with numpy, no model files.

Each text is lower-cased and split into word tokens; every token and every pair of
adjacent tokens is hashed (CRC-32, so the result is the same in every process and
on every machine, unlike ``hash()``) into one of ``DIMENSION`` buckets with a sign,
and the row is L2-normalised. Similar texts share buckets, so cosine similarity
means something; a text with no tokens gets a fixed non-zero vector.
"""

from __future__ import annotations

import itertools
import re
from zlib import crc32

import numpy as np

DIMENSION = 256
_TOKEN = re.compile(r"\w+", re.UNICODE)
_EMPTY = "\x00empty"


def _features(text: str) -> list[str]:
    tokens = _TOKEN.findall(text.lower())
    if not tokens:
        return [_EMPTY]
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


def _bucket(feature: str) -> tuple[int, float]:
    digest = crc32(feature.encode())
    return digest % DIMENSION, 1.0 if digest >> 31 else -1.0


def compute_embeddings(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
    cache: dict[str, tuple[int, float]] = {}
    for row, text in enumerate(texts):
        for feature in _features(text):
            hit = cache.get(feature)
            if hit is None:
                hit = cache[feature] = _bucket(feature)
            out[row, hit[0]] += hit[1]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    # A text whose features all cancel out is vanishingly rare; give it the empty text's vector.
    zero = norms[:, 0] == 0
    if zero.any():
        index, sign = _bucket(_EMPTY)
        out[zero, index] = sign
        norms[zero] = 1.0
    out /= norms
    return out
