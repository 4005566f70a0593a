"""What a run was asked to do (RunOptions), stored as JSON on the run row so a resumed
run is driven with exactly the options it was started with, and start's flags as data.

Each option is stated once: a RunOptions field carries its default and, in its metadata,
the flag that sets it (name, help, type, choices, range); :meth:`RunOptions.validate`
holds every rule that needs only the options ("X needs Y", ranges, exclusions), so a
library caller building ``RunOptions(...)`` is refused exactly as the CLI is. The click
options are generated from these definitions (``reindex_fsm.cli.options``); the rules that
need the engine or the source (names, shard bounds, mapped field types) stay in the plan
step.

Length: over 600 lines on purpose; each of start's options is one field holding its flag, help,
type and bounds (about ten lines each), next to the rules that read them; splitting the
fields by topic would part a flag from its field's neighbours in --help order, which is
this dataclass's order.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import UsageError
from .flags import NOTIFY_URL_FLAG, Flag, meta, opt
from .lease import DEFAULT_TTL_S

# The names --skip-preflight accepts, one per check of preflight.py.
PREFLIGHT_CHECKS = ("health", "closed", "_source", "disk", "privileges")
MAX_SAMPLE = 10_000  # a sample is one search: index.max_result_window's default
VERIFY_LEVELS = ("count", "deep")
WRITE_POLICIES = ("block", "catch-up")
RECOMPUTE = "--recompute-embeddings"
REMOTE_COPY_MODES = ("auto", "reindex", "scan")  # --remote-copy
MAX_REMOTE_RANGES = 64


@dataclass(frozen=True)
class RunOptions:
    # -- verification: count (the default) or deep, before the swap --
    verify_level: str = opt(
        "count",
        Flag(
            ("--verify",),
            "Before the swap, check the target: --verify (= count, the default) requires its "
            "count to equal the source's; --verify deep also compares every document's ID and "
            "_source hash, the mappings and the --verify-queries.",
            kind="choice",
            choices=VERIFY_LEVELS,
            flag_value="count",
            default=None,  # given or not: --no-verify contradicts a given --verify
        ),
    )
    verify: bool = opt(  # count verification; off only with --no-verify
        True,
        Flag(
            ("--no-verify",),
            "Do not compare the target's count with the source's before the swap (warns).",
            kind="bool",
            invert=True,
        ),
    )
    # a target holding much fewer documents than its source may be swapped
    allow_shrink: bool = opt(
        False,
        Flag(
            ("--allow-shrink",),
            "Allow a target that holds under 90% of the source's documents to be swapped in.",
            kind="bool",
        ),
    )
    deep_sample: int | None = opt(  # --verify deep: N random documents instead of all
        None,
        Flag(
            ("--verify-sample",),
            "Check N random documents instead of all: with --verify deep, the documents "
            "compared; with --recompute-embeddings, the documents embedded again [default 50].",
            kind="int",
            min=1,
            max=MAX_SAMPLE,
            metavar="N",
        ),
        min=1,
        max=MAX_SAMPLE,
    )
    verify_queries_file: str | None = opt(  # shown in the record; read into verify_queries
        None,
        Flag(
            ("--verify-queries",),
            "With --verify deep: run each query of FILE (one a line: JSON query DSL, or "
            "text for a simple_query_string) on both indices; require top-k overlap.",
            kind="path",
            metavar="FILE",
        ),
    )
    verify_top_k: int = opt(
        10,
        Flag(
            ("--verify-top-k",),
            "With --verify-queries: hits compared per query.",
            kind="int",
            min=1,
            max=MAX_SAMPLE,
            show_default=True,
        ),
        min=1,
        max=MAX_SAMPLE,
    )
    verify_min_overlap: float = opt(
        0.9,
        Flag(
            ("--verify-min-overlap",),
            "With --verify-queries: least share of the source's top-k IDs found in the "
            "target's top-k.",
            kind="float",
            min=0.0,
            max=1.0,
            show_default=True,
        ),
        min=0.0,
        max=1.0,
    )
    # -- failure handling --
    rollback_on_failure: bool = opt(
        False,
        Flag(
            ("--rollback-on-failure",),
            "On failure, cancel the copy and delete the target (else: FAILED, kept).",
            kind="bool",
        ),
    )
    keep_block_on_failure: bool = opt(  # a FAILED run keeps its write block (else it comes off)
        False,
        Flag(
            ("--keep-block-on-failure",),
            "A FAILED run keeps its write block on the source until resumed or aborted "
            "(default: it comes off; a resume blocks again and copies what changed).",
            kind="bool",
        ),
    )
    # -- the target --
    target_index: str | None = opt(  # None: <alias>-<UTC timestamp>
        None,
        Flag(
            ("--target-index",),
            "Name of the new index [default: <alias>-<UTC timestamp>].",
            metavar="NAME",
        ),
    )
    settings_overrides: dict[str, Any] = field(  # flat keys; --set is START_FLAGS'
        default_factory=dict,
        metadata=meta(
            Flag(
                ("--settings", "settings_file"),
                "JSON settings to apply over the source's (nested or flat keys).",
                kind="path",
                metavar="FILE",
            ),
        ),
    )
    mappings_override: dict[str, Any] | None = field(
        default=None,
        metadata=meta(
            Flag(
                ("--mappings", "mappings_file"),
                "JSON mappings: each field and top-level key given replaces the source's.",
                kind="path",
                metavar="FILE",
            ),
        ),
    )
    bulk_tuning: bool = opt(  # 0 replicas and no refresh on the target while it is copied into
        True,
        Flag(
            ("--no-bulk-tuning",),
            "Keep the final replicas and refresh interval during the copy too "
            "(default: 0 replicas and no refresh while copying, restored before verify).",
            kind="bool",
            invert=True,
        ),
    )
    # the operator's copy-time settings; they win over the bulk-load tuning
    copy_settings_overrides: dict[str, Any] = field(
        default_factory=dict,
        metadata=meta(
            Flag(
                ("--copy-set", "copy_set_pairs"),
                "A setting the target has only while it is copied into, winning over the "
                "bulk-load tuning, e.g. index.refresh_interval=30s (repeatable); its final value "
                "(the source's, or --set's) is put back before verify.",
                multiple=True,
                metavar="KEY=VALUE",
            ),
        ),
    )
    # -- the _reindex copy --
    requests_per_second: float | None = opt(
        None,
        Flag(
            ("--requests-per-second",),
            "Throttle the _reindex copy: a positive number (unlimited or -1: no throttle).",
            metavar="N",
            hook="rate",
        ),
    )
    slices: int | str = opt(  # one slice per source shard: parallel copy
        "auto",
        Flag(("--slices",), "_reindex slices: a number or auto.", show_default=True),
    )
    # -- what happens to writes made to the source during the run --
    write_policy: str = opt(
        "block",
        Flag(
            ("--write-policy",),
            "Writes to the source during the run: block = refused (403) from just before the "
            "copy until the swap; catch-up = allowed, copied again afterwards by --since-field, "
            "then a short final block.",
            kind="choice",
            choices=WRITE_POLICIES,
            show_default=True,
        ),
    )
    since_field: str | None = opt(
        None,
        Flag(
            ("--since-field",),
            "With --write-policy catch-up: the date field writers set on every write.",
            metavar="FIELD",
        ),
    )
    catch_up_margin_s: float = opt(  # each delta starts this much before the previous pass
        60.0,
        Flag(
            ("--catch-up-margin",),
            "Each catch-up pass starts this much before the previous one did "
            "(writers' clock skew and refresh delay).",
            kind="float",
            min=0,
            show_default=True,
            metavar="SECONDS",
        ),
        min=0,
    )
    catch_up_max_passes: int = opt(  # the last one is the final, blocked, pass
        5,
        Flag(
            ("--catch-up-max-passes",),
            "Catch-up passes at most; the last one runs under the final block.",
            kind="int",
            min=2,
            show_default=True,
        ),
        min=2,
    )
    # -- --recompute-embeddings: the copy embeds and bulk-indexes instead of _reindex --
    recompute_embeddings: bool = opt(
        False,
        Flag(
            (RECOMPUTE,),
            "Copy by embedding each document's text and bulk-indexing it with its vector "
            "(instead of _reindex).",
            kind="bool",
        ),
    )
    documents_path: str | None = opt(  # JSONL; None: read the source index itself
        None,
        Flag(
            ("--documents-path",),
            "With --recompute-embeddings: read documents from this JSONL file "
            "[default: the source index].",
            kind="path",
            metavar="FILE.jsonl",
        ),
        needs=RECOMPUTE,
    )
    batch_size: int = opt(
        500,
        Flag(
            ("--batch-size",),
            "Documents embedded and indexed per batch (and per checkpoint).",
            kind="int",
            min=1,
            show_default=True,
        ),
        needs=RECOMPUTE,
        min=1,
    )
    embedder: str = opt(
        "hashing",
        Flag(
            ("--embedder",),
            "hashing, minilm, zeros (tests only), an entry point of group "
            "reindex_fsm.embedders, or module:function.",
            show_default=True,
            metavar="NAME|MODULE:FUNCTION",
        ),
        needs=RECOMPUTE,
    )
    id_field: str | None = opt(  # None: "id" in a JSONL file; the source's _id otherwise
        None,
        Flag(
            ("--id-field",),
            "Document ID field [default: id; the source's _id].",
            metavar="FIELD",
        ),
        needs=RECOMPUTE,
    )
    text_field: str = opt(
        "text",
        Flag(
            ("--text-field",),
            'Field to embed, or a template of fields such as "{title}. {body}".',
            show_default=True,
            metavar="FIELD|TEMPLATE",
        ),
        needs=RECOMPUTE,
    )
    vector_field: str = opt(
        "embedding",
        Flag(
            ("--vector-field",),
            "Field that receives the vector.",
            show_default=True,
            metavar="FIELD",
        ),
        needs=RECOMPUTE,
    )
    vector_mapping: dict[str, Any] | None = field(
        default=None,
        metadata=meta(
            Flag(
                ("--vector-mapping",),
                'Mapping of the vector field, e.g. \'{"type": "float"}\' [default: dense_vector '
                "on Elasticsearch, knn_vector on OpenSearch with k-NN].",
                metavar="JSON",
            ),
            needs=RECOMPUTE,
        ),
    )
    workers: int = opt(
        1,
        Flag(
            ("--workers",),
            "Processes that embed in parallel (for a CPU-bound embedder).",
            kind="int",
            min=1,
            show_default=True,
        ),
        needs=RECOMPUTE,
        min=1,
    )
    skip_invalid: str | None = opt(  # file that gets the rejected lines with their reason
        None,
        Flag(
            ("--skip-invalid",),
            "Write invalid input lines with their reason to FILE and go on (else: stop).",
            kind="path",
            metavar="FILE",
        ),
        needs=RECOMPUTE,
    )
    max_line_bytes: int = opt(  # a longer JSONL line is refused (documents.MAX_LINE_BYTES)
        4 * 2**20,
        Flag(
            ("--max-line-bytes",),
            "With --documents-path: a longer JSONL line is refused (or set aside with "
            "--skip-invalid); memory per line and batch is bounded by it.",
            kind="int",
            min=1,
            show_default=True,
            metavar="BYTES",
        ),
        needs=RECOMPUTE,
        min=1,
    )
    # -- lease and preflight --
    lease_ttl_s: float = opt(  # the engine lease expires this long after its last renewal
        DEFAULT_TTL_S,
        Flag(
            ("--lease-ttl",),
            "The engine lease on the alias expires this long after its last renewal "
            "(renewed every third of it); a killed run's alias is free again after it.",
            kind="float",
            min=1,
            default=int(DEFAULT_TTL_S),  # --help shows 60, and the CLI has always stored 60
            show_default=True,
            metavar="SECONDS",
        ),
        min=1,
    )
    skip_preflight: tuple[str, ...] = opt(  # names of preflight checks not to make
        (),
        Flag(
            ("--skip-preflight",),
            f"Skip one preflight check ({', '.join(PREFLIGHT_CHECKS)}); repeatable.",
            kind="choice",
            choices=PREFLIGHT_CHECKS,
            multiple=True,
            metavar="CHECK",
        ),
    )
    disk_headroom: float = opt(  # the disk check wants primary store x copies x this
        1.2,
        Flag(
            ("--disk-headroom",),
            "The disk check wants the source's primary store x (1 + replicas) x FACTOR free "
            "on the data nodes, below the cluster's low disk watermark.",
            kind="float",
            min=0,
            min_open=True,
            show_default=True,
            metavar="FACTOR",
        ),
        min=0,
        min_open=True,
    )
    # -- transforms sent with _reindex (dest.pipeline; the script object itself, read from
    # --script FILE at start, so a resumed copy sends exactly the same) --
    pipeline: str | None = opt(
        None,
        Flag(
            ("--pipeline",),
            "Ingest pipeline every copied document goes through (_reindex dest.pipeline); "
            "must exist.",
            metavar="NAME",
        ),
    )
    script: dict[str, Any] | None = field(
        default=None,
        metadata=meta(
            Flag(
                ("--script", "script_file"),
                "Script run on every copied document (_reindex script): painless source, or a "
                'JSON object {"source", "lang", "params"}.',
                kind="path",
                metavar="FILE",
            ),
        ),
    )
    # -- set from other flags, or not settable from the command line --
    verify_sample: int = opt(50, min=1, max=MAX_SAMPLE)  # documents embedded again at verify
    verify_queries: list[dict[str, Any]] | None = None  # {"line", "query"}, read at start
    poll_interval_s: float = 0.5
    poll_max_interval_s: float = 2.0  # a poll is one cheap GET; a long gap is wasted time
    cancel_wait_s: float = 60.0
    health_wait_s: float = 300.0
    # -- metrics and notifications: the run's figures for node_exporter (reindex_fsm.metrics);
    # stored, so a resume keeps writing the file (the notify URL is Config's: not stored) --
    metrics_file: str | None = opt(
        None,
        Flag(
            ("--metrics-file",),
            "Write the run's figures (state, documents done and total, docs/s, duration, "
            "failures) to FILE (*.prom) in the Prometheus text format, for node_exporter's "
            "textfile collector; rewritten atomically as the run goes. Kept by resume.",
            kind="path",
            metavar="FILE",
        ),
    )
    # -- another cluster as the source (reindex_fsm/remote.py, steps/copy/remote_*.py) --
    source_url: str | None = opt(  # stored without credentials (see remote.split_credentials)
        None,
        Flag(
            ("--source-url",),
            "Copy from the alias on this other cluster into a new index on the --engine-url "
            "cluster, where the alias is then created or moved (credentials: the --source-* "
            "options or their variables; never stored).",
            metavar="URL",
        ),
    )
    remote_copy: str = opt(
        "auto",
        Flag(
            ("--remote-copy",),
            "With --source-url: reindex = the target cluster's _reindex from remote (needs "
            "the source in its reindex.remote.allowlist), scan = this tool reads the source "
            "and bulk-indexes, auto = reindex if the allowlist probe passes, else scan.",
            kind="choice",
            choices=REMOTE_COPY_MODES,
            show_default=True,
        ),
    )
    remote_ranges: int = opt(
        4,
        Flag(
            ("--remote-ranges",),
            "With --source-url and a _reindex from remote: copy in N _seq_no ranges, each "
            "its own task, checkpointed and retried on its own.",
            kind="int",
            min=1,
            max=MAX_REMOTE_RANGES,
            show_default=True,
        ),
        min=1,
        max=MAX_REMOTE_RANGES,
    )
    remote_batch_size: int = opt(
        1000,
        Flag(
            ("--remote-batch-size",),
            "With --source-url: documents per read of the source (and per checkpoint of a "
            "scan copy).",
            kind="int",
            min=1,
            max=MAX_SAMPLE,
            show_default=True,
        ),
        min=1,
        max=MAX_SAMPLE,
    )
    block_source_writes: bool = opt(
        False,
        Flag(
            ("--block-source-writes",),
            "With --source-url: put a write block on the source index (on the source cluster) "
            "from just before the copy until the run ends (default: the run only reads the "
            "source cluster).",
            kind="bool",
        ),
    )
    # -- a gate before the swap --
    pause_before_swap: bool = opt(  # stop VERIFIED; `swap RUN_ID` moves the alias
        False,
        Flag(
            ("--pause-before-swap",),
            "Copy and verify, then stop in VERIFIED before the swap (exit 16): the alias "
            "untouched and locked, writes blocked as --write-policy says; `reindex-fsm swap "
            "RUN_ID` checks again and swaps, `reindex-fsm abort RUN_ID` cleans up.",
            kind="bool",
        ),
    )
    # -- vector targets: the k-NN graph built once after the load (steps/vector_load.py) --
    defer_vector_graph: bool = opt(
        True,
        Flag(
            ("--no-defer-vector-graph",),
            "Let the engine build a vector field's k-NN graph during the copy too (default: "
            "where the engine allows it, OpenSearch k-NN faiss/nmslib fields, no graph "
            "while copying, one force-merge builds it before verify).",
            kind="bool",
            invert=True,
        ),
    )

    # -- copy tuning: what the tool chooses for the _reindex copy at plan time --
    reindex_batch_size: int | None = opt(  # None: chosen from the source's document size
        None,
        Flag(
            ("--reindex-batch-size",),
            "Documents per _reindex scroll batch (source.size; each batch is one bulk "
            "request) [default: chosen from the source's average document size].",
            kind="int",
            min=1,
            max=MAX_SAMPLE,
            metavar="N",
        ),
        min=1,
        max=MAX_SAMPLE,
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunOptions:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def validate(self) -> None:
        """Refuse, with one line (UsageError, exit 2), what can be refused in the options
        alone, before the engine is asked anything; the same for the CLI and a library
        caller. The names and the bounds that need the source are checked by the plan; what
        the chosen copy strategy cannot honour it refuses itself (``refuses``), and
        :func:`reindex_fsm.api.check_options` asks both."""
        _check_verification(self)
        _check_recompute(self)
        check_requests_per_second(self.requests_per_second)
        slices = self.slices
        if slices != "auto" and (
            isinstance(slices, bool) or not isinstance(slices, int) or slices < 1
        ):
            raise UsageError(
                f"--slices {slices!r} is not a positive number or auto",
                hint="give auto (one slice per source shard) or a number from 1",
            )
        _check_ranges(self)
        _check_transforms(self)
        _check_copy_tuning(self)
        _check_write_policy(self)
        check_metrics_file(self.metrics_file)
        _check_remote(self)
        unknown = [name for name in self.skip_preflight if name not in PREFLIGHT_CHECKS]
        if unknown:
            raise UsageError(
                f"--skip-preflight {unknown[0]!r} is not one of {', '.join(PREFLIGHT_CHECKS)}"
            )


def check_metrics_file(path: str | None, flag: str = "--metrics-file") -> None:
    """A metrics file node_exporter's textfile collector reads (``*.prom``) in a folder
    that is there and writable (its temporary file is made beside it); None: none."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not path.endswith(".prom"):
        raise UsageError(
            f"{flag} {path} does not end in .prom",
            hint="node_exporter's textfile collector reads only *.prom files",
        )
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a folder", hint="give a file path ending in .prom")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"{flag} {path}: folder {folder} is not there or not writable",
            hint="give a file in a writable folder (e.g. the textfile collector's directory)",
        )


def field_flag(name: str) -> str:
    """The flag a RunOptions field is named by in messages (its own, else --field-name)."""
    flags = RunOptions.__dataclass_fields__[name].metadata.get("flags") or ()
    return flags[0].flag if flags else "--" + name.replace("_", "-")


def _default(name: str) -> Any:
    f = RunOptions.__dataclass_fields__[name]
    return f.default_factory() if callable(f.default_factory) else f.default


def _check_verification(o: RunOptions) -> None:
    """--verify LEVEL against --no-verify; what --verify-sample and the query options need.
    --verify-sample means "N random documents instead of all" for both checks that sample:
    the deep comparison and a recompute run's re-embedding."""
    if o.verify_level not in VERIFY_LEVELS:
        raise UsageError(f"--verify {o.verify_level!r} is not one of {', '.join(VERIFY_LEVELS)}")
    if not o.verify and o.verify_level != "count":
        raise UsageError(f"--verify {o.verify_level} and --no-verify contradict each other")
    deep = o.verify_level == "deep"
    sampled = o.deep_sample is not None or o.verify_sample != _default("verify_sample")
    if sampled and not deep and not o.recompute_embeddings:
        raise UsageError("--verify-sample needs --verify deep (or --recompute-embeddings)")
    has_queries = o.verify_queries_file is not None or o.verify_queries is not None
    query_options = {
        "--verify-queries": has_queries,
        "--verify-top-k": o.verify_top_k != _default("verify_top_k"),
        "--verify-min-overlap": o.verify_min_overlap != _default("verify_min_overlap"),
    }
    named = [flag for flag, given in query_options.items() if given]
    if named and not deep:
        raise UsageError(f"{named[0]} needs --verify deep")
    if named and not has_queries:
        raise UsageError(f"{named[0]} needs --verify-queries FILE")


def _check_recompute(o: RunOptions) -> None:
    """The --recompute-embeddings options need the flag; the vector mapping is an object."""
    if not o.recompute_embeddings:
        for f in fields(RunOptions):
            if f.metadata.get("needs") == RECOMPUTE and getattr(o, f.name) != _default(f.name):
                raise UsageError(f"{field_flag(f.name)} needs {RECOMPUTE}")
        return
    mapping = o.vector_mapping
    if mapping is not None and (not isinstance(mapping, dict) or "type" not in mapping):
        raise UsageError(
            "--vector-mapping must be a JSON object with a type",
            hint='e.g. \'{"type": "float"}\'',
        )
    if o.skip_invalid and o.documents_path and _same_path(o.skip_invalid, o.documents_path):
        raise UsageError("--skip-invalid must not be the --documents-path file itself")


def _same_path(a: str, b: str) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)


def _check_ranges(o: RunOptions) -> None:
    """The bounds of the numeric options (the CLI's click types refuse them first)."""
    for f in fields(RunOptions):
        low, high = f.metadata.get("min"), f.metadata.get("max")
        if low is None and high is None:
            continue
        value = getattr(o, f.name)
        if value is None:
            continue
        flag = field_flag(f.name) if f.name != "verify_sample" else "--verify-sample"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{flag} {value!r} is not a number")
        if low is not None and (value <= low if f.metadata.get("min_open") else value < low):
            at = "more than" if f.metadata.get("min_open") else "at least"
            raise UsageError(f"{flag} {value:g} must be {at} {low:g}")
        if high is not None and value > high:
            raise UsageError(f"{flag} {value:g} must be at most {high:g}")


def _check_copy_tuning(o: RunOptions) -> None:
    """The _reindex copy's own tuning flags: not for a copy that is not a local _reindex."""
    if o.reindex_batch_size is None:
        return
    if o.recompute_embeddings:
        raise UsageError(
            f"--reindex-batch-size is for the _reindex copy, not {RECOMPUTE}",
            hint="use --batch-size for the documents embedded and indexed per batch",
        )
    if o.source_url is not None:
        raise UsageError(
            "--reindex-batch-size is for a copy within one cluster, not --source-url",
            hint="use --remote-batch-size for the documents per read of the source",
        )


def _check_transforms(o: RunOptions) -> None:
    if o.pipeline is not None and not o.pipeline.strip():
        raise UsageError("--pipeline needs a pipeline name")


def _check_write_policy(o: RunOptions) -> None:
    """A write policy that cannot work, whatever the source (its field's mapped type is
    the plan's to check)."""
    if o.write_policy not in WRITE_POLICIES:
        raise UsageError(
            f"--write-policy {o.write_policy!r} is not one of {', '.join(WRITE_POLICIES)}"
        )
    if o.write_policy != "catch-up":
        if o.since_field:
            raise UsageError("--since-field needs --write-policy catch-up")
        return
    if not o.since_field:
        raise UsageError(
            "--write-policy catch-up needs --since-field FIELD",
            hint="a date field your writers set on every insert and update, e.g. updated_at",
        )


def _check_remote(o: RunOptions) -> None:
    """Another cluster as the source: its options need --source-url; what the copy from
    another cluster cannot do is refused (the strategies' ``refuses`` say the rest)."""
    if o.source_url is None:
        for name in ("remote_copy", "remote_ranges", "remote_batch_size", "block_source_writes"):
            if getattr(o, name) != _default(name):
                raise UsageError(f"{field_flag(name)} needs --source-url")
        return
    if not o.source_url.strip():
        raise UsageError("--source-url needs a cluster URL")
    if o.remote_copy not in REMOTE_COPY_MODES:
        raise UsageError(
            f"--remote-copy {o.remote_copy!r} is not one of {', '.join(REMOTE_COPY_MODES)}"
        )
    if o.recompute_embeddings:
        raise UsageError(f"--source-url and {RECOMPUTE} cannot be combined", hint="drop one")
    if o.pause_before_swap:  # the gate's checks read the source on the target cluster
        raise UsageError(
            "--pause-before-swap is not supported with --source-url",
            hint="leave one out; nothing was done",
        )
    if o.write_policy == "catch-up":
        raise UsageError(
            "--write-policy catch-up is not supported with --source-url",
            hint="leave it out (the source cluster is only read; verification compares both "
            "clusters), or add --block-source-writes",
        )


def check_requests_per_second(value: float | None, flag: str = "--requests-per-second") -> None:
    """A throttle is a positive, finite number of requests per second (None: unthrottled).
    0, a negative number or NaN would be refused by the engine only once the copy starts."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{flag} {value!r} is not a number")
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(
            f"{flag} {value:g} is not a positive number",
            hint="give e.g. 500, or leave it out (or -1 / unlimited) for no throttle",
        )


def parse_rate(value: str, what: str = "requests per second") -> float | None:
    """RPS as typed: a positive number; ``unlimited`` or -1 for no throttle (None). The
    same rule for start's --requests-per-second and rethrottle."""
    if value.lower() == "unlimited" or value.strip() == "-1":
        return None
    try:
        rate = float(value)
        check_requests_per_second(rate, what)
    except (ValueError, UsageError) as exc:
        raise UsageError(
            f"{what} {value!r} is not a positive number",
            hint="give e.g. 500, or unlimited (or -1) for no throttle",
        ) from exc
    return rate


# -- the start verb's own flags, and the flags that set a field from another form ----------
START_FLAGS: tuple[Flag, ...] = (
    Flag(
        ("--alias",),
        "The alias to move to a new index; repeat it for several (a batch of runs).",
        multiple=True,
        hook="alias_name",
        before="verify_level",
    ),
    Flag(
        ("--alias-pattern",),
        "Every alias matching PATTERN now, e.g. 'logs-*' (repeatable): one run per alias, "
        "as a batch. Resolved once, when the batch is planned.",
        multiple=True,
        metavar="PATTERN",
        before="verify_level",
    ),
    Flag(
        ("--dry-run",),
        "Print the plan; write nothing to the engine.",
        kind="bool",
        before="verify_level",
    ),
    Flag(
        ("--force",),
        "Do not ask for confirmation.",
        kind="bool",
        before="rollback_on_failure",
    ),
    Flag(
        ("--set", "set_pairs"),
        "One setting override, e.g. index.number_of_shards=3 (repeatable).",
        multiple=True,
        metavar="KEY=VALUE",
        field="settings_overrides",
        before="bulk_tuning",
    ),
    Flag(
        ("--force-unlock",),
        "Take the engine lease on the alias even if another run holds it (a warning "
        "names that run). Only when its process is gone for sure.",
        kind="bool",
        before="skip_preflight",
    ),
    replace(NOTIFY_URL_FLAG, before="metrics_file"),  # metrics and notifications
)


def start_flags() -> list[Flag]:
    """Every flag of ``start`` in --help order: each field's flags in field order, the
    verb's own before the field they name."""
    out: list[Flag] = []
    for f in fields(RunOptions):
        out.extend(flag for flag in START_FLAGS if flag.before == f.name)
        for flag in f.metadata.get("flags") or ():
            out.append(flag if flag.field else _with_field(flag, f.name))
    return out


def _with_field(flag: Flag, name: str) -> Flag:
    default = flag.default
    if default is None and not flag.invert and flag.flag_value is None:
        value = _default(name)
        if value not in (None, False, (), {}):
            default = value
    return replace(flag, field=name, default=default)


# -- batches: how a start on several aliases drives its runs (reindex_fsm.batch) ----------
# Each is a field of reindex_fsm.batch.BatchSettings (its parameter name); not given:
# its default there. Only with several --alias values or an --alias-pattern.
BATCH_FLAGS: tuple[Flag, ...] = (
    Flag(
        ("--concurrency",),
        "With several aliases: runs driven at once [default: 1].",
        kind="int",
        min=1,
        metavar="N",
    ),
    Flag(
        ("--slices-budget",),
        "With several aliases: _reindex slices at once across the batch's copies; a run "
        "gets at most the budget left (--slices auto counts as the source's primary shards) "
        "[default: no limit].",
        kind="int",
        min=1,
        metavar="N",
    ),
    Flag(
        ("--on-failure",),
        "With several aliases: stop = make no new run once one failed (those under way "
        "go on); continue = make every run [default: stop].",
        kind="choice",
        choices=("stop", "continue"),
    ),
)
