"""A lease in the engine: at most one process drives a run on an alias, whatever state
database it uses and whichever machine it runs on.

The lease is one document per alias in the tool's hidden index (``LEASE_INDEX``), with
the holder's run ID, owner (``user@host:pid``), state database (without credentials),
and when it was taken, last renewed and expires. It is taken with optimistic
concurrency: ``op_type=create`` when there is none; when it has expired, or belongs to
the run being resumed, or ``--force-unlock`` was given, by a write conditional on the
``_seq_no``/``_primary_term`` just read. A 409 means another process won: the lock is
held. The holder renews it (every ttl/3, from a daemon thread) and checks it before
each step that writes; a renewal that finds it changed means the lease was lost, and
the driver stops before writing. It is released (a conditional delete) when the run
ends; the lease of a run that stops otherwise (FAILED, crash, Ctrl-C) expires.

Expiry is wall-clock time: the hosts that share an alias need clocks in step (NTP); a
skew of S seconds shortens or lengthens the lease by S.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import logs
from .engine.base import Engine, StoredLease
from .errors import EngineError, LeaseConflict, LockHeld

log = logs.get_logger(__name__)

DEFAULT_TTL_S = 60.0
MIN_TTL_S = 1.0


def default_owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


def _when(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class Lease:
    """A lease as read from the engine."""

    alias: str
    run_id: str
    owner: str
    state_db: str
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    seq_no: int
    primary_term: int

    @classmethod
    def from_stored(cls, alias: str, stored: StoredLease) -> Lease:
        doc = stored.doc
        return cls(
            alias=alias,
            run_id=str(doc.get("run_id")),
            owner=str(doc.get("owner")),
            state_db=str(doc.get("state_db")),
            acquired_at=_when(doc["acquired_at"]),
            heartbeat_at=_when(doc["heartbeat_at"]),
            expires_at=_when(doc["expires_at"]),
            seq_no=stored.seq_no,
            primary_term=stored.primary_term,
        )

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def describe(self, now: datetime) -> str:
        """Who holds it and for how long, for error and warning lines."""
        left = (self.expires_at - now).total_seconds()
        when = f"expires in {left:.0f} s" if left > 0 else f"expired {-left:.0f} s ago"
        return f"owner {self.owner}, state DB {self.state_db}, {when}"


class LeaseKeeper:
    """Takes, renews, checks and releases the lease of one run on one alias."""

    def __init__(
        self,
        engine: Engine,
        alias: str,
        run_id: str,
        *,
        state_db: str,
        ttl_s: float = DEFAULT_TTL_S,
        now: Callable[[], datetime],
        owner: str | None = None,
        warn: Callable[[str], None] = lambda _message: None,
        finished: Callable[[str], bool] = lambda _run_id: False,
    ) -> None:
        self.engine = engine
        # A lease left by a run that this state database knows to be finished (killed
        # between its last commit and the release) is stale: no need to wait for expiry.
        self.finished = finished
        self.alias = alias
        self.run_id = run_id
        self.state_db = state_db
        self.ttl_s = max(MIN_TTL_S, float(ttl_s))
        self.now = now
        self.owner = owner or default_owner()
        self.warn = warn
        self.held: Lease | None = None
        self.lost: LockHeld | None = None
        self._lock = threading.Lock()  # renewals from the heartbeat and the driver
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- taking it ---------------------------------------------------------------------
    def _doc(self, acquired_at: datetime | None = None) -> dict[str, Any]:
        now = self.now()
        return {
            "alias": self.alias,
            "run_id": self.run_id,
            "owner": self.owner,
            "state_db": self.state_db,
            "acquired_at": (acquired_at or now).isoformat(),
            "heartbeat_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=self.ttl_s)).isoformat(),
        }

    def _held_by(self, lease: Lease, *, lost: bool = False) -> LockHeld:
        return LockHeld(
            self.alias,
            lease.run_id,
            holder=lease.describe(self.now()),
            lost=lost,
            hint="wait for that run to end or its lease to expire; if its process is gone "
            "for sure, start or resume with --force-unlock to take the lease over",
        )

    def _mine(self, written: dict[str, Any]) -> Lease | None:
        """After a 409: was it our own earlier write (an answer lost and retried)?"""
        current = self.engine.get_lease(self.alias)
        if current is not None and current.doc == written:
            return Lease.from_stored(self.alias, current)
        return None

    def acquire(self, *, force: bool = False) -> Lease:
        """Take the lease, or raise LockHeld naming its holder."""
        for _ in range(5):  # each lost race re-reads; a holder found alive ends it
            stored = self.engine.get_lease(self.alias)
            doc = self._doc()
            try:
                if stored is None:
                    written = self.engine.put_lease(self.alias, doc)
                else:
                    lease = Lease.from_stored(self.alias, stored)
                    own = lease.run_id == self.run_id
                    stale = lease.expired(self.now()) or self.finished(lease.run_id)
                    if not (own or force or stale):
                        raise self._held_by(lease)
                    if force and not own and not stale:
                        self.warn(
                            f"--force-unlock: took over the lease of alias {self.alias!r} "
                            f"from run {lease.run_id} ({lease.describe(self.now())}); if "
                            "that process is still running, both now write to the alias"
                        )
                    written = self.engine.put_lease(
                        self.alias, doc, seq_no=stored.seq_no, primary_term=stored.primary_term
                    )
            except LeaseConflict:
                mine = self._mine(doc)
                if mine is None:
                    continue
                self.held = mine
                return mine
            self.held = Lease.from_stored(self.alias, written)
            self.lost = None
            return self.held
        current = self.engine.get_lease(self.alias)
        if current is None:
            raise LockHeld(self.alias, "?", holder="the lease changes too fast to take")
        raise self._held_by(Lease.from_stored(self.alias, current))

    # -- keeping it --------------------------------------------------------------------
    def _still_ours(self, stored: StoredLease | None) -> bool:
        """The same holder (run, owner, acquisition) at another ``_seq_no`` or
        ``_primary_term``: our own earlier write whose answer was lost, or a primary
        shard failover of the lease index. Another holder always differs in these."""
        if stored is None or self.held is None:
            return False
        doc = stored.doc
        return (doc.get("run_id"), doc.get("owner"), doc.get("acquired_at")) == (
            self.run_id,
            self.owner,
            self.held.acquired_at.isoformat(),
        )

    def renew(self) -> None:
        """Extend the lease if it is still ours (a conditional write), else LockHeld
        naming the new holder. Called before every step that writes, and by the
        heartbeat."""
        with self._lock:
            if self.lost is not None:
                raise self.lost
            if self.held is None:
                raise LockHeld(self.alias, "?", holder="this process holds no lease")
            at: StoredLease | Lease = self.held
            for _ in range(3):
                doc = self._doc(self.held.acquired_at)
                try:
                    written = self.engine.put_lease(
                        self.alias, doc, seq_no=at.seq_no, primary_term=at.primary_term
                    )
                except LeaseConflict:
                    current = self.engine.get_lease(self.alias)
                    if current is not None and current.doc == doc:  # lost answer, retried
                        self.held = Lease.from_stored(self.alias, current)
                        return
                    if self._still_ours(current):
                        assert current is not None
                        at = current  # same holder, new seq_no/term: write again on it
                        continue
                    self.lost = self._lost_to(current)
                    log.warning(
                        "lease on %s lost: %s", self.alias, self.lost, extra={"run_id": self.run_id}
                    )
                    raise self.lost from None
                self.held = Lease.from_stored(self.alias, written)
                log.debug("lease on %s renewed", self.alias, extra={"run_id": self.run_id})
                return
            self.lost = self._lost_to(self.engine.get_lease(self.alias))
            log.warning(
                "lease on %s lost: %s", self.alias, self.lost, extra={"run_id": self.run_id}
            )
            raise self.lost

    def _lost_to(self, current: StoredLease | None) -> LockHeld:
        if current is None:
            return LockHeld(self.alias, "?", holder="the lease was deleted", lost=True)
        return self._held_by(Lease.from_stored(self.alias, current), lost=True)

    check = renew

    def release(self) -> None:
        """Give the lease up (only if it is still ours)."""
        self.stop_heartbeat()
        with self._lock:
            held, self.held = self.held, None
            if held is None or self.lost is not None:
                return
            try:
                self.engine.delete_lease(self.alias, held.seq_no, held.primary_term)
            except LeaseConflict:
                self.held = held
                current = self.engine.get_lease(self.alias)
                if self._still_ours(current):  # after a failover: delete it where it is now
                    assert current is not None
                    with suppress(LeaseConflict):
                        self.engine.delete_lease(self.alias, current.seq_no, current.primary_term)
                self.held = None  # else someone took it over: theirs, not ours to delete

    # -- the heartbeat -------------------------------------------------------------------
    def start_heartbeat(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.alias}", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.renew()
            except LockHeld:
                return  # lost: the driver sees it at its next check
            except EngineError:
                continue  # unreachable for now: try again; expiry decides if it lasts
