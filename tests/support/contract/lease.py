"""The lease index: created hidden once, its documents read, created, replaced and
deleted only with if_seq_no/if_primary_term (a 409 on a conflict)."""

from __future__ import annotations

from typing import Any

from reindex_fsm.engine.base import LEASE_INDEX

from .wire import Answer, ApiError, Call, Family, Route, Unsupported, flat_settings, index_not_found


class LeaseApi(Family):
    """The routes of the lease index, by its name: they go before the generic index routes."""

    def lease_routes(self) -> list[Route]:
        lease = LEASE_INDEX
        return [
            ("GET", (lease, "_settings", "index.uuid"), self._lease_index_exists),
            ("PUT", (lease,), self._create_lease_index),
            ("GET", (lease, "_doc", "{id}"), self._get_lease),
            ("PUT|POST", (lease, "_create", "{id}"), self._put_lease),
            ("PUT|POST", (lease, "_doc", "{id}"), self._put_lease),
            ("DELETE", (lease, "_doc", "{id}"), self._delete_lease),
        ]

    def _lease_index_exists(self, call: Call) -> Answer:
        if not self.fake.lease_index_created:
            raise index_not_found(LEASE_INDEX)
        return 200, {LEASE_INDEX: {"settings": {"index": {"uuid": "lease-index-uuid"}}}}

    def _create_lease_index(self, call: Call) -> Answer:
        if self.fake.lease_index_created:
            raise ApiError(
                400,
                "resource_already_exists_exception",
                f"index [{LEASE_INDEX}/lease-index-uuid] already exists",
            )
        settings = flat_settings(self._body(call).get("settings") or {})
        if settings.get("index.hidden") != "true":
            raise Unsupported(f"the lease index must be created hidden, not with {settings}")
        self.fake.lease_index_created = True
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": LEASE_INDEX}

    def _lease_answer(self, doc_id: str, seq_no: int, **extra: Any) -> dict[str, Any]:
        return {
            "_index": LEASE_INDEX,
            "_id": doc_id,
            "_version": seq_no + 1,
            "_seq_no": seq_no,
            "_primary_term": 1,
            **extra,
        }

    def _get_lease(self, call: Call) -> Answer:
        doc_id = call.params["id"]
        stored = self.fake.get_lease(doc_id)
        if not self.fake.lease_index_created:
            raise index_not_found(LEASE_INDEX)
        if stored is None:
            return 404, {"_index": LEASE_INDEX, "_id": doc_id, "found": False}
        return 200, self._lease_answer(doc_id, stored.seq_no, found=True, _source=stored.doc)

    def _put_lease(self, call: Call) -> Answer:
        doc_id = call.params["id"]
        create = call.path[1] == "_create" or call.query.get("op_type") == "create"
        if not self.fake.lease_index_created:  # a real engine would auto-create it, visible
            raise Unsupported("a lease written before its hidden index was created")
        if create:
            stored = self.fake.put_lease(doc_id, self._body(call))
        elif "if_seq_no" in call.query and "if_primary_term" in call.query:
            stored = self.fake.put_lease(
                doc_id,
                self._body(call),
                seq_no=int(call.query["if_seq_no"]),
                primary_term=int(call.query["if_primary_term"]),
            )
        else:
            raise Unsupported("a lease overwritten without if_seq_no/if_primary_term")
        return (201 if create else 200), self._lease_answer(
            doc_id, stored.seq_no, result="created" if create else "updated"
        )

    def _delete_lease(self, call: Call) -> Answer:
        doc_id = call.params["id"]
        if "if_seq_no" not in call.query or "if_primary_term" not in call.query:
            raise Unsupported("a lease deleted without if_seq_no/if_primary_term")
        existed = doc_id in self.fake.leases
        seq_no = int(call.query["if_seq_no"])
        self.fake.delete_lease(doc_id, seq_no, int(call.query["if_primary_term"]))
        if not existed:
            return 404, self._lease_answer(doc_id, seq_no, result="not_found")
        return 200, self._lease_answer(doc_id, seq_no + 1, result="deleted")
