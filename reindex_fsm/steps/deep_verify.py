"""``--verify deep``: compare the target with what it was copied from, document by
document, plus its mappings and, optionally, the answers to a set of queries.

Documents are streamed in chunks of :data:`CHUNK`: a scroll over the source (or a
seeded random sample of it, or the JSONL input of a recompute run) gives IDs and
``_source``; one ``_mget`` per chunk fetches the same IDs from the target (in a second
thread, while the next chunk is read), and the SHA-256 of each side's canonical JSON
is compared. Memory does not depend on the index's
size. When every source document was found and the target holds no more documents than
the source, the two sets are identical; when the target holds more, a reverse pass
(IDs only) finds the ones the source does not have.

What a run changes by design is left out of the comparison, and the record says so:
the fields the copy strategy computes (the vector of a ``--recompute-embeddings`` run);
the whole ``_source`` of a copy with a script or an ingest pipeline (IDs are still
compared). What the copy read instead of the source index comes from the strategy
(:class:`~.copy.base.CopiedFrom`).

The result is one bounded JSON record (counts, the first :data:`MAX_LISTED` IDs of each
kind of difference, mapping differences, one line per query) stored in
``runs.verification`` and printed by ``show``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..engine.base import Engine
from ..errors import BadInput, EngineError, UsageError
from ..inputfiles import read_text
from ..options import RunOptions
from ..plan import Plan
from .copy.base import CopiedFrom, Doc

CHUNK = 500  # documents per _mget
MAX_LISTED = 20  # IDs kept per kind of difference
MAX_QUERIES_LISTED = 100  # per-query lines kept in the record


def source_hash(source: dict[str, Any]) -> str:
    """SHA-256 of ``source`` as canonical JSON (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(source, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# -- the queries file ------------------------------------------------------------------------


def load_queries(path: str) -> list[dict[str, Any]]:
    """The queries of FILE, one per line: a JSON object is query DSL (a query clause, or a
    body with a ``query`` key), any other line a ``simple_query_string``; blank lines and
    lines starting with ``#`` are skipped. Every problem is a UsageError naming the line."""
    lines = read_text(path, "--verify-queries file").splitlines()
    queries = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UsageError(
                    f"{path}:{number}: not valid JSON: {exc.msg}",
                    hint="one query per line: a JSON query object or plain text; nothing was done",
                ) from exc
            query = parsed.get("query") if set(parsed) == {"query"} else parsed
            if not isinstance(query, dict) or len(query) != 1:
                raise UsageError(
                    f"{path}:{number}: a JSON query must be an object with one query type, "
                    'e.g. {"match": {"title": "x"}}',
                    hint="fix the line; nothing was done",
                )
        else:
            query = {"simple_query_string": {"query": text}}
        queries.append({"line": number, "query": query})
    if not queries:
        raise UsageError(
            f"--verify-queries file {path} holds no query",
            hint="one query per line: a JSON query object or plain text",
        )
    return queries


def check_queries(engine: Engine, source: str, options: RunOptions) -> None:
    """Run each query of ``--verify-queries`` once on the source (``size`` 0) at start, so
    that one the engine refuses (an unknown query type, a bad value for a field) is a usage
    error naming its line before anything is written, not a failure after the whole copy."""
    where = options.verify_queries_file or "--verify-queries"
    for q in options.verify_queries or ():
        body = {"query": q["query"], "size": 0, "track_total_hits": False}
        try:
            answer = engine.search(source, body)
        except EngineError as exc:
            if exc.status != 400:
                raise
            reason = exc.message
        else:
            failures = (answer.get("_shards") or {}).get("failures") or ()
            if not failures:
                continue
            reason = json.dumps(failures[0].get("reason", failures[0]), default=str)
        raise UsageError(
            f"{where}:{q['line']}: the engine refuses this query on {source}: {reason}",
            hint="fix or remove the line; nothing was done",
        )


# -- what is compared ------------------------------------------------------------------------


def _transform(p: Plan) -> str | None:
    """Why the copy changes documents (a script, an ingest pipeline), or None."""
    reasons = []
    if p.reindex.get("script"):
        reasons.append("a script")
    if (p.reindex.get("dest") or {}).get("pipeline"):
        reasons.append(f"ingest pipeline {p.reindex['dest']['pipeline']}")
    return " and ".join(reasons) or None


class Comparison:
    """What a verification compares for this plan: which stream is the truth, which
    fields are ignored, and whether ``_source`` is compared at all."""

    def __init__(self, p: Plan, options: RunOptions, copied_from: CopiedFrom | None = None) -> None:
        self.plan = p
        self.copied_from = copied_from or CopiedFrom()
        self.jsonl = self.copied_from.input_path
        self.ignored = list(self.copied_from.computed_fields)
        transform = _transform(p)
        self.compare_source = transform is None
        self.sample = options.deep_sample
        notes = []
        if transform:
            notes.append(
                f"_source not compared: the copy runs {transform}, which changes documents "
                "by design; IDs compared"
            )
        if self.ignored:
            why = self.copied_from.computed_as
            notes.append(f"field {self.ignored[0]} ({why}) left out of the hash")
        if self.jsonl:
            notes.append(f"compared with the input file {self.jsonl}, the run's source of truth")
            if self.sample:
                notes.append("every line compared: a JSONL input cannot be sampled by ID")
                self.sample = None
        self.notes = notes

    def strip(self, source: dict[str, Any]) -> dict[str, Any]:
        if not self.ignored:
            return source
        return {k: v for k, v in source.items() if k not in self.ignored}


def _hits(hits: Iterable[dict[str, Any]]) -> Iterator[Doc]:
    for hit in hits:
        yield hit["_id"], hit.get("_routing"), hit.get("_source")


def _source_docs(engine: Engine, c: Comparison, seed: int) -> Iterator[Doc]:
    p = c.plan
    if c.jsonl and c.copied_from.read_input is not None:
        yield from c.copied_from.read_input(CHUNK)
        return
    fetch = c.compare_source
    if c.sample:
        body = {
            "size": c.sample,
            "_source": fetch,
            "query": {
                "function_score": {
                    "query": {"match_all": {}},
                    "random_score": {"seed": seed, "field": "_seq_no"},
                }
            },
        }
        yield from _hits(engine.search(p.source_index, body)["hits"]["hits"])
        return
    body = {"query": {"match_all": {}}, "_source": fetch}
    yield from _hits(engine.scan(p.source_index, body))


def _chunks(docs: Iterable[Doc]) -> Iterator[list[Doc]]:
    chunk: list[Doc] = []
    for doc in docs:
        chunk.append(doc)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _looked_up(
    engine: Engine, index: str, chunks: Iterable[list[Doc]], source: bool
) -> Iterator[tuple[list[Doc], dict[str, dict[str, Any] | None]]]:
    """Each chunk with ``index``'s answer to its ``_mget``. The lookup of chunk k+1 runs
    in a second thread while chunk k is compared and chunk k+2 read: at most three
    chunks in memory."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-mget") as pool:
        pending: tuple[list[Doc], Future[dict[str, dict[str, Any] | None]]] | None = None
        for chunk in chunks:
            future = pool.submit(engine.mget, index, [(d, r) for d, r, _ in chunk], source)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (chunk, future)
        if pending is not None:
            yield pending[0], pending[1].result()


class _Kind:
    """A count and the first MAX_LISTED IDs of one kind of difference."""

    def __init__(self) -> None:
        self.count = 0
        self.ids: list[str] = []

    def add(self, doc_id: str) -> None:
        self.count += 1
        if len(self.ids) < MAX_LISTED:
            self.ids.append(doc_id)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "ids": self.ids}


def compare_documents(engine: Engine, c: Comparison, target_count: int, seed: int) -> dict:
    """The forward pass (every source document looked up in the target) and, when the
    target has documents it did not match, the reverse pass."""
    p = c.plan
    missing, differing, extra = _Kind(), _Kind(), _Kind()
    compared = 0
    chunks = _chunks(_source_docs(engine, c, seed))
    for chunk, found in _looked_up(engine, p.target_index, chunks, c.compare_source):
        for doc_id, _routing, source in chunk:
            compared += 1
            target = found.get(doc_id)
            if target is None:
                missing.add(doc_id)
            elif c.compare_source and source_hash(c.strip(source or {})) != source_hash(
                c.strip(target)
            ):
                differing.add(doc_id)
    record: dict[str, Any] = {
        "mode": f"sample of {c.sample}" if c.sample else "every document",
        "hash_compared": c.compare_source,
        "compared": compared,
        "missing_in_target": missing.as_dict(),
        "differing": differing.as_dict(),
    }
    if c.sample:
        record["seed"] = seed
        record["only_in_target"] = {"checked": False, "why": "a sample is checked one way"}
        return record
    unmatched = target_count - (compared - missing.count)
    if unmatched > 0 and c.jsonl:
        record["only_in_target"] = {
            "checked": False,
            "count": unmatched,
            "why": "a file cannot be looked up by ID; the count says how many",
        }
        return record
    if unmatched > 0:
        hits = engine.scan(p.target_index, {"query": {"match_all": {}}, "_source": False})
        for chunk, known in _looked_up(engine, p.source_index, _chunks(_hits(hits)), False):
            for doc_id, _routing, _source in chunk:
                if known.get(doc_id) is None:
                    extra.add(doc_id)
    record["only_in_target"] = {"checked": unmatched > 0, **extra.as_dict()}
    return record


# -- mappings ---------------------------------------------------------------------------------


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _leaves(inner, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _normal(value: Any) -> str:
    """Engines echo some mapping parameters in another JSON type ("false" vs false)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | str):
        return str(value)
    return json.dumps(value, sort_keys=True)


def compare_mappings(planned: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """Every planned mapping parameter must be in effect with its value ("changed",
    "missing"). Parameters only the target has are engine defaults it filled in or
    fields added by dynamic mapping: listed ("added"), not a mismatch."""
    want = dict(_leaves(planned))
    have = dict(_leaves(actual))
    differences = []
    for path, value in want.items():
        if path not in have:
            differences.append({"path": path, "planned": value, "actual": None})
        elif _normal(value) != _normal(have[path]):
            differences.append({"path": path, "planned": value, "actual": have[path]})
    added = sorted(path for path in have if path not in want)
    return {
        "differences": differences[:MAX_LISTED],
        "difference_count": len(differences),
        "added": added[:MAX_LISTED],
        "added_count": len(added),
    }


# -- queries ----------------------------------------------------------------------------------


Hit = tuple[str, Any]  # (_id, _score)


def _top_hits(engine: Engine, index: str, query: dict[str, Any], k: int) -> list[Hit]:
    body = {"query": query, "size": k, "_source": False, "track_total_hits": False}
    return [(hit["_id"], hit.get("_score")) for hit in engine.search(index, body)["hits"]["hits"]]


def top_k_overlap(source_ids: list[str], target_ids: list[str]) -> float:
    if not source_ids:
        return 0.0 if target_ids else 1.0
    return len(set(source_ids) & set(target_ids)) / len(source_ids)


def _cut_off(hits: list[Hit], k: int) -> float | None:
    """The last score of a full top-k list (more may tie with it), else None."""
    if len(hits) < k or not all(isinstance(score, int | float) for _, score in hits):
        return None
    return float(hits[-1][1])


def tied_top_k_overlap(source: list[Hit], target: list[Hit], k: int) -> float:
    """``top_k_overlap`` where the hits tied with a full list's last score are one block:
    which of equally scored documents make the top k is up to where they lie in the index
    (shard, segment, the order they were written in), and a copy changes that (a constant
    score query such as a range: all its hits tie). A source hit at its list's cut-off is
    found when the target has it, or has another hit at its own cut-off in its place."""
    source_ids, target_ids = [i for i, _ in source], [i for i, _ in target]
    source_cut, target_cut = _cut_off(source, k), _cut_off(target, k)
    if not source_ids or source_cut is None or target_cut is None:
        return top_k_overlap(source_ids, target_ids)
    in_source, in_target = set(source_ids), set(target_ids)
    found = sum(i in in_target for i in source_ids)
    tied_missing = sum(s == source_cut and i not in in_target for i, s in source)
    spare = sum(s == target_cut and i not in in_source for i, s in target)
    return (found + min(tied_missing, spare)) / len(source_ids)


def compare_queries(engine: Engine, p: Plan, options: RunOptions) -> dict[str, Any]:
    """Each query on both indices; overlap = the share of the source's top-k IDs that are
    in the target's top-k (1.0 when both find nothing, 0.0 when only the target does)."""
    k, floor = options.verify_top_k, options.verify_min_overlap
    lines: list[dict[str, Any]] = []
    failed, lowest = 0, 1.0
    for q in options.verify_queries or []:
        src = _top_hits(engine, p.source_index, q["query"], k)
        tgt = _top_hits(engine, p.target_index, q["query"], k)
        overlap = tied_top_k_overlap(src, tgt, k)
        passed = overlap >= floor
        failed += not passed
        lowest = min(lowest, overlap)
        if len(lines) < MAX_QUERIES_LISTED:
            lines.append(
                {
                    "line": q["line"],
                    "source_hits": len(src),
                    "target_hits": len(tgt),
                    "overlap": round(overlap, 4),
                    "passed": passed,
                }
            )
    return {
        "file": options.verify_queries_file,
        "top_k": k,
        "min_overlap": floor,
        "run": len(options.verify_queries or []),
        "failed": failed,
        "lowest_overlap": round(lowest, 4),
        "queries": lines,
    }


# -- the whole check ----------------------------------------------------------------------------


def seed_for(run_id: str) -> int:
    """The sample's seed: fixed by the run ID, so a resumed verification checks the same
    documents (and a failure can be looked at again)."""
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16) % 2**31


def verify(
    engine: Engine,
    p: Plan,
    options: RunOptions,
    run_id: str,
    target_count: int,
    copied_from: CopiedFrom | None = None,
) -> dict[str, Any]:
    """The deep verification record of the target as it is now (``copied_from``: what the
    copy strategy read, when not the source index)."""
    c = Comparison(p, options, copied_from)
    try:
        documents = compare_documents(engine, c, target_count, seed_for(run_id))
    except BadInput as exc:  # the JSONL input changed or went away since the copy
        documents = {"checked": False, "why": exc.one_line()}
    record: dict[str, Any] = {
        "level": "deep",
        "notes": c.notes,
        "documents": documents,
        "mappings": compare_mappings(p.mappings, engine.get_index(p.target_index).mappings),
    }
    if options.verify_queries:
        record["queries"] = compare_queries(engine, p, options)
    return record


def problems(record: dict[str, Any]) -> list[str]:
    """One phrase per kind of difference the record holds; none when it passed."""
    out = []
    docs = record.get("documents") or {}
    for key, what in (
        ("missing_in_target", "missing from the target"),
        ("differing", "differ from the source"),
        ("only_in_target", "only in the target"),
    ):
        kind = docs.get(key) or {}
        if kind.get("count"):
            listed = ", ".join(kind.get("ids") or [])
            out.append(
                f"{kind['count']} documents {what}" + (f" (first: {listed})" if listed else "")
            )
    mappings = record.get("mappings") or {}
    if mappings.get("difference_count"):
        paths = ", ".join(d["path"] for d in mappings["differences"][:5])
        out.append(f"{mappings['difference_count']} mapping parameters differ ({paths})")
    queries = record.get("queries") or {}
    if queries.get("failed"):
        out.append(
            f"{queries['failed']} of {queries['run']} queries below top-{queries['top_k']} "
            f"overlap {queries['min_overlap']} (lowest {queries['lowest_overlap']})"
        )
    return out
