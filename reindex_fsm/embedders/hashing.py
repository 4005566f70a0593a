"""The default embedder: deterministic feature hashing with numpy, no model files.

Each text is lower-cased and split into word tokens; every token and every pair of
adjacent tokens is hashed (CRC-32, so the result is the same in every process and
on every machine, unlike ``hash()``) into one of ``DIMENSION`` buckets with a sign,
and the row is L2-normalised. Similar texts share buckets, so cosine similarity means
something; a text with no tokens gets a fixed non-zero vector. The hashing is one Python
pass over the features; the summing is one ``numpy.bincount`` over the whole batch.
"""

from __future__ import annotations

import itertools
import re
from zlib import crc32

import numpy as np

DIMENSION = 256
_TOKEN = re.compile(r"\w+", re.UNICODE)
_EMPTY = "\x00empty"


def compute_embeddings(texts: list[str]) -> np.ndarray:
    n = len(texts)
    hashes: list[int] = []
    counts: list[int] = []
    for text in texts:
        tokens = _TOKEN.findall(text.lower()) or [_EMPTY]
        features = tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
        hashes.extend([crc32(f.encode()) for f in features])
        counts.append(len(features))
    h = np.fromiter(hashes, dtype=np.uint32, count=len(hashes))
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    signs = np.where(h >> 31, 1.0, -1.0)
    flat = rows * DIMENSION + (h % DIMENSION).astype(np.int64)
    out = np.bincount(flat, weights=signs, minlength=n * DIMENSION).reshape(n, DIMENSION)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    if zero.any():
        e = crc32(_EMPTY.encode())
        out[zero] = 0.0
        out[zero, e % DIMENSION] = 1.0 if e >> 31 else -1.0
        norms[zero] = 1.0
    return (out / norms).astype(np.float32)
