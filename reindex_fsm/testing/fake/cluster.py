"""The cluster on the fake: info, health, plugins and ingest pipelines, and what the
preflight reads (an index's status and size, data nodes' disks, disk watermarks,
privileges as each flavor reports them)."""

from __future__ import annotations

from typing import Any

from ...engine.base import (
    DiskWatermarks,
    EngineInfo,
    IndexStatus,
    NodeDisk,
    PrivilegeCheck,
    watermarks_from_settings,
)
from .copying import clone
from .state import FakeCore


class FakeCluster(FakeCore):
    def info(self) -> EngineInfo:
        self._call("info")
        return self._info

    def set_info(self, info: EngineInfo) -> None:
        """Answer ``GET /`` with ``info`` from now on (another flavor, version or cluster
        UUID: what the engine at the URL became), without recording a call."""
        self._info = info

    def cluster_health(
        self, index: str | None = None, wait_for_status: str | None = None, timeout_s: float = 30
    ) -> dict[str, Any]:
        self._call("cluster_health", index)
        if index is not None:
            self._index(index)
        return {
            "status": self.health_status,
            "number_of_data_nodes": len(self.disks),
            "unassigned_shards": self.unassigned_shards,
            "timed_out": False,
        }

    def plugins(self) -> set[str]:
        self._call("plugins")
        return set(self.plugin_names)

    def pipeline_exists(self, name: str) -> bool:
        self._call("pipeline_exists", name)
        return name in self.pipelines

    def close(self) -> None:
        pass

    # -- preflight ------------------------------------------------------------------
    def index_status(self, index: str) -> IndexStatus:
        self._call("index_status", index)
        idx = self._index(index)
        closed = index in self.closed
        size = self.store_bytes.get(index, 1000 * len(idx.docs))
        return IndexStatus(
            index,
            "close" if closed else "open",
            None if closed else self.health_status,
            None if closed else size,
        )

    def data_node_disks(self) -> list[NodeDisk]:
        self._call("data_node_disks")
        return list(self.disks)

    def disk_watermarks(self) -> DiskWatermarks:
        self._call("disk_watermarks")
        return watermarks_from_settings(clone(self.cluster_settings))

    def check_privileges(
        self, cluster: list[str], index: list[tuple[list[str], list[str]]]
    ) -> PrivilegeCheck | None:
        if self._info.flavor == "opensearch":  # as the adapter: the plugin, then authinfo
            if "opensearch-security" not in self.plugins():
                return None
            roles = ", ".join(self.security_roles) or "none"
            return PrivilegeCheck(
                checked=False,
                user=self.security_user,
                note=f"OpenSearch has no privilege-check API; user {self.security_user}, "
                f"roles: {roles}",
            )
        return self.has_privileges(cluster, index)

    def has_privileges(
        self, cluster: list[str], index: list[tuple[list[str], list[str]]]
    ) -> PrivilegeCheck | None:
        """Elasticsearch's ``_has_privileges`` (None: security off), whatever the fake's
        own flavor: the contract server answers it as Elasticsearch with this."""
        self._call("check_privileges")
        if not self.security_enabled:
            return None
        wanted = [f"cluster:{p}" for p in cluster] + [
            f"{name}:{p}" for names, privileges in index for name in names for p in privileges
        ]
        missing = tuple(w for w in wanted if w in self.missing_privileges)
        return PrivilegeCheck(checked=True, user=self.security_user, missing=missing)

    # -- OpenSearch security: a privilege probed by a request that can change nothing ------

    def privilege_refusal(
        self, action: str, method: str, path: str, body: Any = None
    ) -> str | None:
        """The security plugin as the fake knows it: ``action`` is refused iff it is in
        ``refused_actions``; the request itself is never carried out."""
        self._call("privilege_refusal", action)
        return action if action in self.refused_actions else None
