"""REINDEXING by recomputing embeddings (``--recompute-embeddings``): read documents (a
JSONL file or the source index), embed their text, bulk-index them with the vector into
the target.

At plan time (:meth:`RecomputeEmbeddings.prepare`), before anything is written: the
embedder is loaded and probed for its dimension, a JSONL file is checked whole, and the
vector field's mapping is chosen for the engine. The copy itself is :mod:`.stream`;
verification adds the vector's mapped dimension and a random sample embedded again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from ... import embedders
from ...engine.base import Engine, EngineInfo
from ...errors import BadInput, UsageError
from ...options import RunOptions
from ...plan import Plan, RecomputePlan
from .. import target as own_target
from .. import vector_load
from ..context import RunContext
from .base import CopiedFrom, Doc, Prepared
from .readers import BATCH_BYTES, Fields, JsonlReader, file_sha256, inspect_jsonl
from .stream import STRATEGY, Stream, initial_progress, recompute_plan

FLAG = "--recompute-embeddings"


VECTOR_TYPES = ("dense_vector", "knn_vector")
SAMPLE_MIN_COSINE = 0.999  # a stored vector this close to a fresh embedding of its text


# -- plan time -----------------------------------------------------------------------------


def fields_for(options: RunOptions) -> Fields:
    id_field = options.id_field or ("id" if options.documents_path else "_id")
    return Fields(id=id_field, text=options.text_field, vector=options.vector_field)


def _declared_dimension(mapping: dict[str, Any]) -> int | None:
    value = mapping.get("dims", mapping.get("dimension"))
    return int(value) if value is not None else None


def _settings_for(mapping: dict[str, Any]) -> dict[str, Any]:
    """A knn_vector field needs the index created with k-NN on."""
    return {"index.knn": "true"} if mapping.get("type") == "knn_vector" else {}


def vector_mapping(
    engine: Engine,
    info: EngineInfo,
    options: RunOptions,
    dimension: int,
    source_mappings: dict[str, Any],
    zeros: bool,
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The vector field's mapping, settings the target needs for it, and what was chosen."""
    name = options.vector_field
    existing = (source_mappings.get("properties") or {}).get(name)
    if options.vector_mapping is not None:
        given = _declared_dimension(options.vector_mapping)
        if given is not None and given != dimension:
            raise BadInput(
                f"--vector-mapping declares dimension {given}, but embedder "
                f"{options.embedder!r} returns {dimension}",
                hint="fix the mapping or choose the matching embedder",
            )
        given_mapping = dict(options.vector_mapping)
        return given_mapping, _settings_for(given_mapping), "given by --vector-mapping"
    if existing is not None:
        have = _declared_dimension(existing)
        if existing.get("type") in VECTOR_TYPES and have != dimension:
            raise BadInput(
                f"the source maps {name!r} as {existing.get('type')} of dimension {have}, "
                f"but embedder {options.embedder!r} returns {dimension}: stopping before "
                "anything is written",
                hint="use an embedder of that dimension, or pass --vector-mapping to "
                "replace the field's mapping knowingly",
            )
        if existing.get("type") in VECTOR_TYPES or existing.get("type") == "float":
            kept = dict(existing)
            return kept, _settings_for(kept), f"the source's {existing.get('type')} mapping"
    if info.flavor == "elasticsearch" and info.version.startswith("7."):
        # 7.x's dense_vector (x-pack) is stored for scripts only: it takes no index/similarity.
        return (
            {"type": "dense_vector", "dims": dimension},
            {},
            "dense_vector (Elasticsearch 7.x: stored, not indexed for kNN search)",
        )
    if info.flavor == "elasticsearch":
        # ES refuses zero vectors under cosine; the zeros embedder gets l2_norm.
        similarity = "l2_norm" if zeros else "cosine"
        return (
            {"type": "dense_vector", "dims": dimension, "index": True, "similarity": similarity},
            {},
            "dense_vector (Elasticsearch)",
        )
    if any("knn" in component for component in engine.plugins()):
        space = "l2" if zeros else "cosinesimil"
        knn = {
            "type": "knn_vector",
            "dimension": dimension,
            "method": {"name": "hnsw", "engine": "lucene", "space_type": space},
        }
        return knn, _settings_for(knn), "knn_vector (OpenSearch k-NN plugin, lucene engine)"
    raise BadInput(
        f"this OpenSearch ({engine.url}) has no k-NN plugin, so it has no vector field type "
        f"for {name!r}",
        hint="install the opensearch-knn plugin, or pass --vector-mapping "
        '\'{"type": "float"}\' to store the vector as a plain float array (not k-NN '
        "searchable)",
    )


def prepare(
    engine: Engine,
    info: EngineInfo,
    options: RunOptions,
    source_index: str,
    source_count: int,
    source_mappings: dict[str, Any],
) -> tuple[RecomputePlan, dict[str, Any], dict[str, Any]]:
    """Check everything a recompute run needs before anything is written.

    Returns the recompute plan, the mappings to merge over the source's, and extra
    target settings."""
    # What the options alone can say (sizes, --skip-invalid vs the file) RunOptions.validate()
    # has refused.
    fields = fields_for(options)
    embedder = embedders.load(options.embedder, warn_zeros=False)  # the CLI has warned
    zeros = embedder.allows_zero_rows
    mapping, settings, chosen = vector_mapping(
        engine, info, options, embedder.dimension, source_mappings, zeros
    )
    plan = RecomputePlan(
        source="jsonl" if options.documents_path else "index",
        index=source_index,
        fields=fields,
        embedder=options.embedder,
        dimension=embedder.dimension,
        vector_mapping=mapping,
        vector_mapping_chosen=chosen,
        batch_size=options.batch_size,
        workers=options.workers,
        skip_file=os.path.abspath(options.skip_invalid) if options.skip_invalid else None,
        verify_sample=options.verify_sample,
        source_count=source_count,
        expected=None,  # the source's count less what is rejected on the way
    )
    if options.documents_path:
        summary = inspect_jsonl(
            options.documents_path,
            fields,
            options.skip_invalid,
            write=False,
            max_line_bytes=options.max_line_bytes,
        )
        # the bounds are stored: every later read of the file cuts the same batches
        plan = replace(
            plan,
            max_line_bytes=options.max_line_bytes,
            batch_bytes=BATCH_BYTES,
            expected=summary.documents,
            **summary.to_dict(),
        )
    return plan, {"properties": {fields.vector: mapping}}, settings


def describe(p: Plan) -> dict[str, Any]:
    rp = recompute_plan(p).to_dict()
    rp.pop("duplicate_lines", None)
    version = p.engine.get("version") if p.engine.get("flavor") == "opensearch" else None
    graph = vector_load.describe(p.mappings, p.settings, p.copy_settings, version)
    return {"step": "copy", "strategy": "recompute embeddings", **rp, "vector_graph": graph}


# -- copying ---------------------------------------------------------------------------------


def run_start(ctx: RunContext) -> dict[str, Any]:
    own_target.require_own_target(ctx)
    rp = recompute_plan(ctx.plan)
    if rp.source == "jsonl" and rp.path is not None:
        # The file must be the one checked at plan time; with --skip-invalid, the check is
        # done again to write the rejected lines (a plan writes nothing).
        if rp.skip_file:
            summary = inspect_jsonl(rp.path, rp.fields, rp.skip_file, True, rp.max_line_bytes)
            digest = summary.sha256
        else:
            digest = file_sha256(rp.path)
        if digest != rp.sha256:
            raise BadInput(
                f"{rp.path}: changed since the run was planned",
                hint="put the planned file back, or abort this run and start a new one",
            )
    elif rp.skip_file:
        # The index's rejects are appended batch by batch: start from an empty file.
        try:
            open(rp.skip_file, "w").close()
        except OSError as exc:
            raise BadInput(f"{rp.skip_file}: cannot be written: {exc.strerror or exc}") from exc
    progress = initial_progress(rp.workers)
    return {
        "progress": progress,
        "detail": {"strategy": STRATEGY, "embedder": rp.embedder, "source": rp.source},
    }


def run_wait(ctx: RunContext) -> dict[str, Any]:
    progress = Stream(ctx).run()
    detail = {
        "strategy": STRATEGY,
        "indexed": progress.get("indexed", 0),
        "rejected": progress.get("rejected", 0),
    }
    return {"progress": progress, "detail": detail}


# -- verification ----------------------------------------------------------------------------


def expected_count(
    p: Plan, progress: dict[str, Any] | None, source_count: int | None = None
) -> int:
    """Documents the target should hold: a file's valid lines, or the source index's
    count (``source_count``: counted again under the write block) less rejects."""
    rp = recompute_plan(p)
    if rp.expected is not None:
        return int(rp.expected)
    count = source_count if source_count is not None else rp.source_count
    return int(count) - int((progress or {}).get("rejected", 0))


def mapped_dimension(engine: Engine, p: Plan) -> int | None:
    rp = recompute_plan(p)
    props = engine.get_index(p.target_index).mappings.get("properties") or {}
    return _declared_dimension(props.get(rp.fields.vector) or {})


def sample_check(ctx: RunContext) -> dict[str, Any]:
    """Embed a random sample of the target's documents again and compare with their
    stored vectors: the smallest cosine similarity, and how many are off."""
    p = ctx.plan
    rp = recompute_plan(p)
    fields = rp.fields
    size = int(rp.verify_sample)
    seed = int(ctx.run_id, 16) % 2**31 if all(c in "0123456789abcdef" for c in ctx.run_id) else 7
    body = {
        "size": size,
        "query": {
            "function_score": {
                "query": {"match_all": {}},
                "random_score": {"seed": seed, "field": "_seq_no"},
            }
        },
    }
    hits = ctx.engine.search(p.target_index, body)["hits"]["hits"]
    if not hits:
        return {"sample": 0, "min_cosine": None, "mismatched": [], "bad_dimension": []}
    embedder = embedders.load(rp.embedder, warn_zeros=False)
    texts, stored, ids, bad_dimension = [], [], [], []
    for hit in hits:
        source = hit.get("_source") or {}
        text, _ = fields.text_of(source)
        vector = source.get(fields.vector)
        if not isinstance(vector, list) or len(vector) != rp.dimension:
            bad_dimension.append(hit["_id"])
            continue
        texts.append(text or "")
        stored.append(vector)
        ids.append(hit["_id"])
    mismatched: list[str] = []
    min_cosine: float | None = None
    if texts:
        import numpy as np  # here: the CLI's start-up does not load it

        fresh = embedder(texts)
        kept = np.asarray(stored, dtype=np.float32)
        if embedder.allows_zero_rows:
            close = np.all(np.isclose(fresh, kept, atol=1e-6), axis=1)
            mismatched = [i for i, ok in zip(ids, close, strict=True) if not ok]
            min_cosine = 1.0 if not mismatched else 0.0
        else:
            norms = np.linalg.norm(fresh, axis=1) * np.linalg.norm(kept, axis=1)
            cosine = np.sum(fresh * kept, axis=1) / np.where(norms == 0, 1, norms)
            min_cosine = float(cosine.min())
            mismatched = [i for i, c in zip(ids, cosine, strict=True) if c < SAMPLE_MIN_COSINE]
    return {
        "sample": len(hits),
        "min_cosine": min_cosine,
        "mismatched": mismatched[:10],
        "bad_dimension": bad_dimension[:10],
    }


def verify_checks(ctx: RunContext, target_count: int, detail: dict[str, Any]) -> list[str]:
    """Count (input less rejects), the vector's dimension in the target mapping, and a
    random sample embedded again; the problems found."""
    p = ctx.plan
    rp = recompute_plan(p)
    expected = expected_count(p, ctx.record.progress, ctx.record.source_count)
    mapped = mapped_dimension(ctx.engine, p)
    sample = sample_check(ctx)
    rejected = int((ctx.record.progress or {}).get("rejected", 0))
    detail.update(
        expected_count=expected,
        rejected=rejected,
        input=rp.path or p.source_index,
        mapped_dimension=mapped,
        dimension=rp.dimension,
        **{f"sample_{k}": v for k, v in sample.items()},
    )
    problems = []
    if target_count != expected:
        read = rp.documents if rp.documents is not None else p.source_count
        problems.append(
            f"target {p.target_index} has {target_count} documents, expected {expected} "
            f"({read} read, {rejected} rejected)"
        )
    if mapped is not None and mapped != rp.dimension:
        problems.append(
            f"{rp.fields.vector} is mapped with dimension {mapped}, "
            f"the embedder gives {rp.dimension}"
        )
    if sample["bad_dimension"]:
        problems.append(f"stored vectors of the wrong length: {sample['bad_dimension']}")
    if sample["mismatched"]:
        problems.append(
            f"stored vectors differ from a fresh embedding (min cosine "
            f"{sample['min_cosine']:.6f}): {sample['mismatched']}"
        )
    return problems


def verify_check(p: Plan) -> str:
    """What verification checks, as the plan says it."""
    rp = recompute_plan(p)
    expected = (
        rp.expected if rp.expected is not None else f"{p.source_count} less rejected documents"
    )
    return (
        f"target count == {expected}; {rp.fields.vector} mapped with dimension "
        f"{rp.dimension}; {rp.verify_sample} random documents embedded again "
        f"match their stored vectors (cosine >= {SAMPLE_MIN_COSINE})"
    )


def _read_file(rp: RecomputePlan, batch_size: int) -> Iterator[Doc]:
    reader = JsonlReader(rp.to_dict(), rp.fields, batch_size)
    for batch in reader.batches(0, None):
        for doc_id, _text, doc in batch.docs:
            yield doc_id, None, doc


class RecomputeEmbeddings:
    """``--recompute-embeddings``: the run reads, embeds and bulk-indexes itself."""

    name = STRATEGY
    flag = FLAG
    can_rethrottle = False
    rate_set_by = "--batch-size and --workers"
    copies_again_by_reindex = False  # what the copy wrote cannot be made again by _reindex

    def chosen_by(self, options: RunOptions) -> bool:
        return options.recompute_embeddings

    def planned(self, p: Plan) -> bool:
        return p.recompute is not None

    def refuses(self, options: RunOptions) -> UsageError | None:
        if options.pipeline or options.script:
            return UsageError(
                f"--pipeline and --script apply to the _reindex copy, not to {FLAG}",
                hint="drop one of them",
            )
        if options.write_policy == "catch-up":
            return UsageError(
                f"--write-policy catch-up is not supported with {FLAG}",
                hint="use --write-policy block (the default): writers wait until the swap",
            )
        return None

    def warnings(self, options: RunOptions) -> list[str]:
        if options.embedder == "zeros":
            return ["the zeros embedder writes all-zero vectors: it is for tests only"]
        return []

    def input_file(self, options: RunOptions) -> str | None:
        return options.documents_path

    def prepare(
        self,
        engine: Engine,
        info: EngineInfo,
        options: RunOptions,
        source_index: str,
        source_count: int,
        source_mappings: dict[str, Any],
    ) -> Prepared:
        rp, mappings, settings = prepare(
            engine, info, options, source_index, source_count, source_mappings
        )
        return Prepared(
            plan_values={"recompute": rp},
            mappings=mappings,
            settings=settings,
            target_count=rp.expected,
        )

    def describe(self, p: Plan) -> dict[str, Any]:
        return describe(p)

    def start(self, ctx: RunContext) -> dict[str, Any]:
        return run_start(ctx)

    def wait(self, ctx: RunContext) -> dict[str, Any]:
        return run_wait(ctx)

    def source_index_count(self, p: Plan) -> int:
        return int(recompute_plan(p).source_count)

    def input_path(self, p: Plan) -> str | None:
        return recompute_plan(p).path

    def verify_check(self, p: Plan) -> str | None:
        return verify_check(p)

    def verify_checks(
        self, ctx: RunContext, target_count: int, detail: dict[str, Any]
    ) -> list[str]:
        return verify_checks(ctx, target_count, detail)

    def copied_from(self, p: Plan) -> CopiedFrom:
        rp = recompute_plan(p)
        vector, why = (rp.fields.vector,), "the recomputed vector"
        if rp.path is None:
            return CopiedFrom(computed_fields=vector, computed_as=why)
        return CopiedFrom(
            input_path=rp.path,
            computed_fields=vector,
            computed_as=why,
            read_input=lambda batch_size: _read_file(rp, batch_size),
        )

    def copied(self, progress: dict[str, Any]) -> int | None:
        if progress.get("strategy") == STRATEGY or "indexed" in progress:
            return int(progress.get("indexed") or 0)
        return None
