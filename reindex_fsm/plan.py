"""What a run decided at plan time (Plan), stored as JSON on the run row, so a resumed run
uses exactly the names and bodies chosen when it was planned."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
    # --recompute-embeddings: what the copy reads, embeds and checks (steps/recompute.py).
    recompute: dict[str, Any] | None = None
    # -- lease and preflight (issue 5): what the preflight checks found --
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
