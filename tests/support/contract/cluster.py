"""The cluster APIs: GET / (each flavor's own body), health, nodes' disks, cluster
settings, plugins, ingest pipelines."""

from __future__ import annotations

import copy
from typing import Any

from .wire import Answer, Call, Family, Route, Unsupported, nest_setting, seconds

_HEALTH_RANK = {"red": 0, "yellow": 1, "green": 2}


class ClusterApi(Family):
    """GET /, _cluster/health, _nodes/stats/fs, _cluster/settings, _cat/plugins, _ingest."""

    def cluster_routes(self) -> list[Route]:
        return [
            ("GET|HEAD", (), self._root),
            ("GET", ("_cluster", "health"), self._health),
            ("GET", ("_cluster", "health", "{index}"), self._health),
            ("GET", ("_nodes", "stats", "fs"), self._nodes_fs),
            ("GET", ("_cluster", "settings"), self._cluster_settings),
            ("GET", ("_cat", "plugins"), self._cat_plugins),
            ("GET", ("_ingest", "pipeline", "{name}"), self._get_pipeline),
        ]

    def _root(self, call: Call) -> Answer:
        info = self.fake.info()
        cluster_name = info.cluster_name
        if self.flavor == "elasticsearch":
            version = {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0000000000000000000000000000000000000000",
                "build_date": "2024-10-01T00:00:00.000000000Z",
                "build_snapshot": False,
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            }
            tagline = "You Know, for Search"
        else:
            version = {
                "distribution": "opensearch",
                "number": self.version,
                "build_type": "tar",
                "build_hash": "0000000000000000000000000000000000000000",
                "build_date": "2025-03-01T00:00:00.000000000Z",
                "build_snapshot": False,
                "lucene_version": "9.12.1",
                "minimum_wire_compatibility_version": "7.10.0",
                "minimum_index_compatibility_version": "7.0.0",
            }
            tagline = "The OpenSearch Project: https://opensearch.org/"
        return 200, {
            "name": "fake-node",
            "cluster_name": cluster_name,
            "cluster_uuid": info.cluster_uuid or "_na_",
            "version": version,
            "tagline": tagline,
        }

    def _health(self, call: Call) -> Answer:
        index = call.params.get("index")
        wait_for = call.query.get("wait_for_status")
        timeout = seconds(call.query.get("timeout", "30s"))
        result = self.fake.cluster_health(index, wait_for, timeout)
        body = {
            "cluster_name": self.cluster_name,
            "status": "green",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": len(self.fake.indices),
            "active_shards": len(self.fake.indices),
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0,
            **result,
        }
        if wait_for and _HEALTH_RANK[body["status"]] < _HEALTH_RANK[wait_for]:
            body["timed_out"] = True
        return (408 if body["timed_out"] else 200), body

    def _nodes_fs(self, call: Call) -> Answer:
        master_role = "master" if self.flavor == "elasticsearch" else "cluster_manager"
        data_role = "data_content" if self.flavor == "elasticsearch" else "data"  # both count
        nodes: dict[str, Any] = {
            "coordinating-only": {
                "name": "coordinating-only",
                "roles": [],
                "fs": {"total": {"total_in_bytes": 1, "available_in_bytes": 1}},
            }
        }
        for i, disk in enumerate(self.fake.data_node_disks()):
            nodes[f"node-id-{i}"] = {
                "name": disk.name,
                "roles": [master_role, data_role],
                "fs": {
                    "total": {
                        "total_in_bytes": disk.total_bytes,
                        "free_in_bytes": disk.available_bytes,
                        "available_in_bytes": disk.available_bytes,
                    }
                },
            }
        total = len(nodes)
        return 200, {
            "_nodes": {"total": total, "successful": total, "failed": 0},
            "cluster_name": self.cluster_name,
            "nodes": nodes,
        }

    def _cluster_settings(self, call: Call) -> Answer:
        """The fake's cluster settings layers, nested as the engines answer by default
        (``flat_settings`` is not asked for); ``defaults`` only with include_defaults;
        ``filter_path`` honoured for the one prefix the adapter asks for."""
        self.fake.disk_watermarks()  # recorded as the adapter's call
        if call.query.get("flat_settings") == "true":
            raise Unsupported("_cluster/settings only nested")
        wanted = call.query.get("filter_path", "")
        prefix = wanted.removeprefix("*.") if wanted.startswith("*.") else None
        if wanted and prefix is None:
            raise Unsupported(f"_cluster/settings filter_path {wanted!r}")
        layers = ["transient", "persistent"]
        if call.query.get("include_defaults") == "true":
            layers.append("defaults")
        body: dict[str, Any] = {}
        for layer in layers:
            nested: dict[str, Any] = {}
            for key, value in self.fake.cluster_settings[layer].items():
                if prefix and not key.startswith(prefix):
                    continue
                nest_setting(nested, "", key, value)
            if nested or not prefix:
                body[layer] = nested
        return 200, body

    def _cat_plugins(self, call: Call) -> Answer:
        if call.query.get("format") != "json":
            raise Unsupported("_cat/plugins only with format=json")
        version = self.version if self.flavor == "elasticsearch" else f"{self.version}.0"
        return 200, [
            {"name": "fake-node", "component": component, "version": version}
            for component in sorted(self.fake.plugins())
        ]

    def _get_pipeline(self, call: Call) -> Answer:
        name = call.params["name"]
        if not self.fake.pipeline_exists(name):
            return 404, {}
        return 200, {name: copy.deepcopy(self.fake.pipelines[name])}
