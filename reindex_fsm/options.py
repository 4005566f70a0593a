"""What a run was asked to do (RunOptions), stored as JSON on the run row so a resumed
run is driven with exactly the options it was started with."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import UsageError


@dataclass(frozen=True)
class RunOptions:
    verify: bool = True  # count verification; off only with --no-verify
    rollback_on_failure: bool = False
    target_index: str | None = None  # None: <alias>-<UTC timestamp>
    settings_overrides: dict[str, Any] = field(default_factory=dict)  # flat keys
    mappings_override: dict[str, Any] | None = None
    requests_per_second: float | None = None
    slices: int | str = "auto"  # one slice per source shard: parallel copy
    poll_interval_s: float = 0.5
    poll_max_interval_s: float = 2.0  # a poll is one cheap GET; a long gap is wasted time
    cancel_wait_s: float = 60.0
    bulk_tuning: bool = True  # 0 replicas and no refresh on the target while it is copied into
    health_wait_s: float = 300.0
    # --recompute-embeddings: the copy embeds and bulk-indexes instead of _reindex.
    recompute_embeddings: bool = False
    documents_path: str | None = None  # JSONL; None: read the source index itself
    batch_size: int = 500
    embedder: str = "hashing"
    id_field: str | None = None  # None: "id" in a JSONL file; the source's _id otherwise
    text_field: str = "text"
    vector_field: str = "embedding"
    vector_mapping: dict[str, Any] | None = None
    workers: int = 1
    skip_invalid: str | None = None  # file that gets the rejected lines with their reason
    max_line_bytes: int = 4 * 2**20  # a longer JSONL line is refused (documents.MAX_LINE_BYTES)
    verify_sample: int = 50  # documents embedded again at verify
    # --write-policy: what happens to writes made to the source during the run.
    write_policy: str = "block"  # or "catch-up" (needs since_field)
    since_field: str | None = None
    catch_up_margin_s: float = 60.0  # each delta starts this much before the previous pass
    catch_up_max_passes: int = 5  # the last one is the final, blocked, pass
    # --copy-set: the operator's copy-time settings; they win over the bulk-load tuning.
    copy_settings_overrides: dict[str, Any] = field(default_factory=dict)
    # --verify deep (steps/deep_verify.py); verify_level says what --verify checks.
    verify_level: str = "count"  # count | deep
    deep_sample: int | None = None  # --verify-sample N: N random documents instead of all
    verify_queries: list[dict[str, Any]] | None = None  # {"line", "query"}, read at start
    verify_queries_file: str | None = None  # shown in the record
    verify_top_k: int = 10
    verify_min_overlap: float = 0.9
    # --allow-shrink: a target holding much fewer documents than its source may be swapped
    allow_shrink: bool = False
    # --keep-block-on-failure: a FAILED run keeps its write block (else it comes off)
    keep_block_on_failure: bool = False
    # -- lease and preflight (issue 5) --
    lease_ttl_s: float = 60.0  # the engine lease expires this long after its last renewal
    skip_preflight: tuple[str, ...] = ()  # names of preflight checks not to make
    disk_headroom: float = 1.2  # the disk check wants primary store x copies x this
    # issue 5: transforms sent with _reindex (dest.pipeline; the script object itself,
    # read from --script FILE at start, so a resumed copy sends exactly the same).
    pipeline: str | None = None
    script: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunOptions:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


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


def check_options(options: RunOptions) -> None:
    """What can be refused in the options alone, before the engine is asked anything (the
    names and the bounds that need the source are checked by the plan)."""
    check_requests_per_second(options.requests_per_second)
    slices = options.slices
    if slices != "auto" and (isinstance(slices, bool) or not isinstance(slices, int) or slices < 1):
        raise UsageError(
            f"--slices {slices!r} is not a positive number or auto",
            hint="give auto (one slice per source shard) or a number from 1",
        )
