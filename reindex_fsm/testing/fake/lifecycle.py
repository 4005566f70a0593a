"""Lifecycle management on the fake: Elasticsearch ILM and the OpenSearch ISM plugin.

ILM, as the engine keeps it: an index is managed while its settings name a policy
(``index.lifecycle.name``); explain reports the policy, a phase and the date the index's
age is counted from (``index.lifecycle.origination_date``, else its creation date), and
remove takes ``index.lifecycle.name`` and ``index.lifecycle.rollover_alias`` away.
``ilm_available`` False is an engine without ILM (an OpenSearch, an Elasticsearch
without x-pack): explain answers None.

ISM, as the plugin keeps it: managed indices live in the plugin's own store
(:attr:`FakeLifecycle.ism_managed`), not in the index settings. A policy with an
``ism_template`` (:meth:`FakeLifecycle.add_ism_policy` with ``patterns``) is attached to
every index created afterwards whose name matches, as the plugin's coordinator does,
unless the index is created with ``auto_manage`` false (both the plugin's key and the
legacy one: the coordinator of OpenSearch 2.x falls back to the legacy key). Remove sets
``auto_manage`` false on the index, as the plugin does. ``ism_available`` False (the
default) is an engine without the plugin: explain answers None, add and remove refuse.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from ...engine.base import LifecycleStatus
from ...errors import EngineError
from .indices import FakeIndices

AUTO_MANAGE = "index.plugins.index_state_management.auto_manage"
LEGACY_AUTO_MANAGE = "index.opendistro.index_state_management.auto_manage"


class FakeLifecycle(FakeIndices):
    """ILM and ISM; above the indices, whose creation and deletion the plugin follows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ilm_available = self._info.flavor == "elasticsearch"
        self.ism_available = False
        self.ism_policies: dict[str, list[str]] = {}  # policy ID -> its ism_template patterns
        self.ism_managed: dict[str, dict[str, Any]] = {}  # index -> {"policy_id", "state"}

    # -- test controls ------------------------------------------------------------
    def add_ism_policy(self, policy_id: str, patterns: tuple[str, ...] = ()) -> None:
        """A policy (and the plugin, now available); ``patterns``: its ism_template."""
        self.ism_available = True
        self.ism_policies[policy_id] = list(patterns)

    def manage(self, index: str, policy_id: str, state: str = "hot") -> None:
        """Put ``index`` under the ISM policy ``policy_id`` (no engine call)."""
        self.ism_managed[index] = {"policy_id": policy_id, "state": state}

    # -- index creation: what the ISM coordinator does on a new index --------------
    def create_index(
        self, index: str, settings: Mapping[str, Any], mappings: Mapping[str, Any]
    ) -> None:
        super().create_index(index, settings, mappings)
        if not self.ism_available:
            return
        stored = self.indices[index].settings
        if str(stored.get(AUTO_MANAGE, "true")).lower() == "false" and (
            str(stored.get(LEGACY_AUTO_MANAGE, "true")).lower() == "false"
        ):
            return
        for policy_id, patterns in sorted(self.ism_policies.items()):
            if any(fnmatch.fnmatchcase(index, p) for p in patterns):
                self.manage(index, policy_id, "init")
                return

    def delete_index(self, index: str) -> None:
        super().delete_index(index)
        self.ism_managed.pop(index, None)

    # -- ILM ---------------------------------------------------------------------------
    def ilm_explain(self, index: str) -> LifecycleStatus | None:
        self._call("ilm_explain", index)
        if not self.ilm_available:
            return None
        settings = self._index(index).settings
        policy = settings.get("index.lifecycle.name")
        if not policy:
            return LifecycleStatus(policy=None)
        date = settings.get("index.lifecycle.origination_date") or settings.get(
            "index.creation_date"
        )
        return LifecycleStatus(
            policy=str(policy), phase="hot", lifecycle_date_ms=int(date) if date else None
        )

    def ilm_remove_policy(self, index: str) -> None:
        self._call("ilm_remove_policy", index)
        if not self.ilm_available:
            raise EngineError("no handler found for uri [/_ilm/remove]", status=400)
        settings = self._index(index).settings
        for key in ("index.lifecycle.name", "index.lifecycle.rollover_alias"):
            settings.pop(key, None)

    # -- ISM ---------------------------------------------------------------------------
    def ism_explain(self, index: str) -> LifecycleStatus | None:
        self._call("ism_explain", index)
        if not self.ism_available:
            return None
        self._index(index)
        managed = self.ism_managed.get(index)
        if managed is None:
            return LifecycleStatus(policy=None)
        return LifecycleStatus(policy=managed["policy_id"], phase=managed["state"])

    def ism_add_policy(self, index: str, policy_id: str) -> None:
        self._call("ism_add_policy", index, policy_id)
        self._require_ism()
        self._index(index)
        if index in self.ism_managed:
            raise EngineError(
                f"POST _plugins/_ism/add/{index} failed: This index already has a policy, use "
                "the update policy API to update index policies",
                status=400,
            )
        if policy_id not in self.ism_policies:
            raise EngineError(
                f"POST _plugins/_ism/add/{index} failed: Could not load policy", status=404
            )
        self.manage(index, policy_id, "init")

    def ism_remove_policy(self, index: str) -> None:
        self._call("ism_remove_policy", index)
        self._require_ism()
        settings = self._index(index).settings
        if self.ism_managed.pop(index, None) is not None:
            settings[AUTO_MANAGE] = "false"

    def _require_ism(self) -> None:
        if not self.ism_available:
            raise EngineError("no handler found for uri [/_plugins/_ism]", status=400)
