"""Lease documents on the fake: read, created once, replaced and deleted only on a
matching sequence number (the primary term is always 1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...engine.base import StoredLease
from ...errors import LeaseConflict
from .copying import clone
from .state import FakeCore


class FakeLease(FakeCore):
    def get_lease(self, key: str) -> StoredLease | None:
        self._call("get_lease", key)
        found = self.leases.get(key)
        return StoredLease(clone(found[0]), found[1], 1) if found else None

    def put_lease(
        self,
        key: str,
        doc: Mapping[str, Any],
        *,
        seq_no: int | None = None,
        primary_term: int | None = None,
    ) -> StoredLease:
        self._call("put_lease", key, "create" if seq_no is None else f"if_seq_no={seq_no}")
        found = self.leases.get(key)
        if seq_no is None:
            self.lease_index_created = True
            if found is not None:
                raise LeaseConflict(key)
        elif found is None or found[1] != seq_no or primary_term != 1:
            raise LeaseConflict(key)
        stored = (clone(dict(doc)), next(self._seq_nos))
        self.leases[key] = stored
        return StoredLease(clone(stored[0]), stored[1], 1)

    def delete_lease(self, key: str, seq_no: int, primary_term: int) -> None:
        self._call("delete_lease", key, seq_no)
        found = self.leases.get(key)
        if found is None:
            return
        if found[1] != seq_no or primary_term != 1:
            raise LeaseConflict(key)
        del self.leases[key]
