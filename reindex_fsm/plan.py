"""What a run decided at plan time (Plan), stored as JSON on the run row, so a resumed run
uses exactly the names and bodies chosen when it was planned.

Each copy strategy with plan-time choices of its own has a typed plan here
(:class:`RecomputePlan`), stored under its own key of the Plan JSON (``"recompute"``:
an object, or null for a ``_reindex`` copy), in the same shape whichever version of the
tool planned the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .steps.copy.readers import Fields


@dataclass(frozen=True)
class RecomputePlan:
    """--recompute-embeddings: what the copy reads, embeds and checks."""

    source: str  # "jsonl" (a file) or "index" (the source index)
    index: str  # the source index
    fields: Fields
    embedder: str
    dimension: int
    vector_mapping: dict[str, Any]
    vector_mapping_chosen: str
    batch_size: int
    workers: int
    skip_file: str | None
    verify_sample: int
    source_count: int  # of the source index, at plan time
    expected: int | None  # documents the target is to hold (None: the source's less rejects)
    # A JSONL input only (absent from the stored JSON otherwise): the bounds every read of
    # the file cuts its batches with (absent: planned before there were bounds), and what
    # the plan-time check of the whole file found.
    max_line_bytes: int | None = None
    batch_bytes: int | None = None
    path: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    lines: int | None = None
    documents: int | None = None
    rejected: int | None = None
    duplicate_lines: list[int] | None = None
    first_rejects: list[dict[str, Any]] | None = None

    # stored only when set, as the plans of earlier versions did
    _OPTIONAL = (
        "max_line_bytes",
        "batch_bytes",
        "path",
        "size",
        "mtime_ns",
        "sha256",
        "lines",
        "documents",
        "rejected",
        "duplicate_lines",
        "first_rejects",
    )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self._OPTIONAL and value is None:
                continue
            out[f.name] = asdict(value) if f.name == "fields" else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecomputePlan:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["fields"] = Fields(**data["fields"])
        return cls(**values)


@dataclass(frozen=True)
class Plan:
    run_id: str
    alias: str
    source_index: str
    target_index: str
    source_count: int
    settings: dict[str, Any]  # flat settings the target is created with
    mappings: dict[str, Any]  # mappings the target is created with, _meta included
    aliases: dict[str, dict[str, Any]]  # the source's aliases and their properties
    alias_actions: list[dict[str, Any]]  # the one atomic _aliases request of the swap
    reindex: dict[str, Any]  # the _reindex body
    engine: dict[str, str]  # url (no credentials), flavor, version, cluster_name, cluster_uuid
    planned_at: str
    # Settings the target carries only while it is copied into; the final values are in
    # ``settings`` (absent there: the engine default) and are put back before verify.
    copy_settings: dict[str, Any] = field(default_factory=dict)
    # --recompute-embeddings: what the copy reads, embeds and checks (steps/copy/recompute.py).
    recompute: RecomputePlan | None = None
    # -- lease and preflight: what the preflight checks found --
    preflight: list[dict[str, Any]] = field(default_factory=list)
    # The source's index.uuid at plan time: an index deleted and made again under the same
    # name is another index, never the run's source.
    source_uuid: str | None = None
    # The target's index.uuid, stored when the run creates it: the run copies into and
    # swaps onto that index only, never another one made under the same name.
    target_uuid: str | None = None
    # The target will hold much fewer documents than its source (--allow-shrink given):
    # what the plan and the confirmation say; None when it will not.
    shrink: str | None = None
    # Lifecycle policies (ILM, ISM) held back from the target until the swap, then handed
    # over (steps/lifecycle.py): the settings put on the target after the swap, the
    # source's own, the ILM/ISM policy that moves; None when no lifecycle is involved.
    lifecycle: dict[str, Any] | None = None
    # -- index templates: those matching the target's name at plan time, each with what
    # it would add (steps/templates.py); the run keeps them off the target.
    templates: list[dict[str, Any]] = field(default_factory=list)
    # -- another cluster as the source (reindex_fsm/remote.py): that cluster (url without
    # credentials, flavor, version, cluster_name, cluster_uuid), the copy chosen and why,
    # its ranges, whether the run blocks the source's writes; None: the source is local.
    source_cluster: dict[str, Any] | None = None
    # -- copy tuning: the _reindex copy's scroll batch size chosen at plan time and why
    # (steps/copy/tuning.py); None: a recompute or remote copy, or a plan made before it.
    copy_tuning: dict[str, Any] | None = None

    @property
    def reads_source_only(self) -> bool:
        """The source is on another cluster and the run writes nothing there."""
        return self.source_cluster is not None and not self.source_cluster.get("write_block")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["recompute"] = self.recompute.to_dict() if self.recompute is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        recompute = values.get("recompute")
        if isinstance(recompute, dict):
            values["recompute"] = RecomputePlan.from_dict(recompute)
        return cls(**values)
