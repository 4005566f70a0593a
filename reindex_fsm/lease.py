"""A lease in the engine: at most one process drives a run on an alias, whatever state
database it uses and whichever machine it runs on.

The lease is one document per alias in the tool's hidden index (``LEASE_INDEX``), with
the holder's run ID, owner (``user@host:pid``), state database (without credentials),
and when it was taken, last renewed and expires. It is taken with optimistic
concurrency: ``op_type=create`` when there is none; when it has expired, or belongs to
the run being resumed, or ``--force-unlock`` was given, by a write conditional on the
``_seq_no``/``_primary_term`` just read. A 409 means another process won: the lock is
held. The holder renews it (every ttl/3, from a daemon thread) and before each step that
writes; a renewal that finds it changed means the lease was lost. From then on the
process writes nothing more: every transition, checkpoint and engine write of the run
checks :meth:`LeaseKeeper.ensure` first (the lost flag, and a renewal when the
heartbeat is late). It is released (a conditional delete) when the run ends; the lease
of a run that stops otherwise (FAILED, crash, Ctrl-C, SIGTERM) expires.

The run's own lease is taken back at once only from a holder that is gone: each lease
names its process (host, pid, and the boot and PID namespace where that pid means
something). A holder on this host whose pid is no longer running, or this process's
own lease no keeper here drives any more, is dead; a live one (another resume, the
start still running) refuses the resume. A holder elsewhere counts as live until its
lease expires.

Expiry is wall-clock time: the hosts that share an alias need clocks in step (NTP); a
skew of S seconds shortens or lengthens the lease by S.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from . import logs
from .engine.base import ENGINE_WRITES, Engine, StoredLease
from .errors import EngineError, LeaseConflict, LockHeld, ReindexFsmError

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
class Holder:
    """The process that holds a lease: its host and pid, and where that pid is valid
    (boot ID and PID namespace: two containers with one hostname are told apart)."""

    host: str
    pid: int
    pid_ns: str


@cache
def _pid_namespace() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # not Linux: the pid cannot be checked, only the expiry counts
        return ""


def this_process() -> Holder:
    return Holder(socket.gethostname(), os.getpid(), _pid_namespace())


def pid_running(pid: int) -> bool:
    """Whether ``pid`` is a live process here (a zombie, killed but not reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: it exists
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


# The leases this process holds and drives right now (their tokens): a lease naming this
# process but no token here was left by a driver that ended without releasing it.
_DRIVING: set[str] = set()
_DRIVING_LOCK = threading.Lock()


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
    holder: Holder | None = None  # None: a lease written before leases named their process
    token: str = ""  # unique per acquisition
    # False: its process stopped driving the run without finishing it (a FAILED run, an
    # error): nobody drives it, so the run's own resume takes the lease back at once.
    driving: bool = True

    @classmethod
    def from_stored(cls, alias: str, stored: StoredLease) -> Lease:
        doc = stored.doc
        holder = None
        if isinstance(doc.get("pid"), int):
            holder = Holder(str(doc.get("host") or ""), doc["pid"], str(doc.get("pid_ns") or ""))
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
            holder=holder,
            token=str(doc.get("token") or ""),
            driving=doc.get("driving", True) is not False,
        )

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def describe(self, now: datetime) -> str:
        """Who holds it and for how long, for error and warning lines."""
        left = (self.expires_at - now).total_seconds()
        when = f"expires in {left:.0f} s" if left > 0 else f"expired {-left:.0f} s ago"
        return f"owner {self.owner}, state DB {self.state_db}, {when}"

    def describe_process(self, now: datetime) -> str:
        """The live process that drives the run, for the line refusing a second one."""
        where = (
            f"pid {self.holder.pid} on host {self.holder.host}"
            if self.holder is not None
            else "its pid and host unknown"
        )
        beat = (now - self.heartbeat_at).total_seconds()
        left = (self.expires_at - now).total_seconds()
        return (
            f"owner {self.owner} ({where}), state DB {self.state_db}, lease renewed "
            f"{max(beat, 0):.0f} s ago, expires in {max(left, 0):.0f} s"
        )

    def holder_alive(self, me: Holder) -> bool | None:
        """True/False when the holding process can be checked from here (this host, this
        PID namespace), None when not (another host): then only the expiry tells."""
        if not self.driving:
            return False
        h = self.holder
        if h is None or not h.pid_ns or h.pid_ns != me.pid_ns:
            return None
        if h.pid == me.pid:  # this process: alive while one of its keepers drives it
            with _DRIVING_LOCK:
                return self.token in _DRIVING
        return pid_running(h.pid)


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
        process: Holder | None = None,
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
        self.process = process or this_process()
        self.warn = warn
        self.held: Lease | None = None
        self.lost: LockHeld | None = None
        self._lock = threading.Lock()  # renewals from the heartbeat and the driver
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- taking it ---------------------------------------------------------------------
    def _doc(self, acquired_at: datetime | None = None, token: str = "") -> dict[str, Any]:
        now = self.now()
        return {
            "alias": self.alias,
            "run_id": self.run_id,
            "owner": self.owner,
            "host": self.process.host,
            "pid": self.process.pid,
            "pid_ns": self.process.pid_ns,
            "token": token,
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

    def _driven_elsewhere(self, lease: Lease) -> LockHeld:
        return LockHeld(
            self.alias,
            lease.run_id,
            holder=lease.describe_process(self.now()),
            driven=True,
            hint="let it finish, or stop it with `reindex-fsm abort "
            f"{lease.run_id}`; if that process is gone for sure, wait for the lease to expire "
            "or resume with --force-unlock",
        )

    def acquire(self, *, force: bool = False, take_over: bool = False) -> Lease:
        """Take the lease, or raise LockHeld naming its holder.

        The run's own lease is taken back at once from a process that is gone (see the
        module docstring); from a live one only with ``take_over`` (abort: the operator
        stops the run, and its driver stops at its next check) or ``force``."""
        for _ in range(5):  # each lost race re-reads; a holder found alive ends it
            stored = self.engine.get_lease(self.alias)
            token = uuid.uuid4().hex
            doc = self._doc(token=token)
            try:
                if stored is None:
                    written = self.engine.put_lease(self.alias, doc)
                else:
                    lease = Lease.from_stored(self.alias, stored)
                    own = lease.run_id == self.run_id
                    stale = lease.expired(self.now()) or self.finished(lease.run_id)
                    dead = own and not stale and lease.holder_alive(self.process) is False
                    if not (stale or dead):
                        if own and not (force or take_over):
                            raise self._driven_elsewhere(lease)
                        if not own and not force:
                            raise self._held_by(lease)
                        self.warn(self._takeover_warning(lease, force=force))
                    written = self.engine.put_lease(
                        self.alias, doc, seq_no=stored.seq_no, primary_term=stored.primary_term
                    )
            except LeaseConflict:
                mine = self._mine(doc)
                if mine is None:
                    continue
                return self._hold(mine)
            return self._hold(Lease.from_stored(self.alias, written))
        current = self.engine.get_lease(self.alias)
        if current is None:
            raise LockHeld(self.alias, "?", holder="the lease changes too fast to take")
        lease = Lease.from_stored(self.alias, current)
        if lease.run_id == self.run_id:
            raise self._driven_elsewhere(lease)
        raise self._held_by(lease)

    def _takeover_warning(self, lease: Lease, *, force: bool) -> str:
        if lease.run_id != self.run_id:
            return (
                f"--force-unlock: took over the lease of alias {self.alias!r} "
                f"from run {lease.run_id} ({lease.describe(self.now())}); if "
                "that process is still running, both now write to the alias"
            )
        how = "--force-unlock" if force else "abort"
        return (
            f"{how}: took run {lease.run_id} over from the process driving it "
            f"({lease.describe_process(self.now())}); that process stops before its next write"
        )

    def _hold(self, lease: Lease) -> Lease:
        self.held, self.lost = lease, None
        with _DRIVING_LOCK:
            _DRIVING.add(lease.token)
        return lease

    # -- keeping it --------------------------------------------------------------------
    def _still_ours(self, stored: StoredLease | None) -> bool:
        """The same holder (run, owner, acquisition) at another ``_seq_no`` or
        ``_primary_term``: our own earlier write whose answer was lost, or a primary
        shard failover of the lease index. Another holder always differs in these."""
        if stored is None or self.held is None:
            return False
        doc = stored.doc
        return (
            doc.get("run_id"),
            doc.get("owner"),
            doc.get("acquired_at"),
            str(doc.get("token") or ""),
        ) == (self.run_id, self.owner, self.held.acquired_at.isoformat(), self.held.token)

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
                doc = self._doc(self.held.acquired_at, self.held.token)
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
        lease = Lease.from_stored(self.alias, current)
        if lease.run_id == self.run_id:  # another process drives this very run now
            return LockHeld(
                self.alias,
                lease.run_id,
                holder=lease.describe_process(self.now()),
                driven=True,
                lost=True,
                hint=f"this process stopped without writing more; see `reindex-fsm show "
                f"{lease.run_id}`",
            )
        return self._held_by(lease, lost=True)

    check = renew

    def ensure(self) -> None:
        """Before any write of the run (a transition, a checkpoint, an engine write): the
        lease is still this process's. Cheap: the flag the heartbeat sets when it finds
        the lease lost; a renewal (one request) only when the heartbeat is late, so that
        a process whose renewals stalled never writes on a lease that may have expired."""
        lost = self.lost
        if lost is not None:
            raise lost
        held = self.held
        if held is None:
            raise LockHeld(self.alias, "?", holder="this process holds no lease")
        if self.now() >= held.heartbeat_at + timedelta(seconds=self.ttl_s / 2):
            self.renew()

    def retire(self) -> None:
        """This process no longer drives the run (it ended, crashed or was interrupted):
        stop renewing; a resume may take the lease back at once."""
        self.stop_heartbeat()
        held = self.held
        if held is not None:
            with _DRIVING_LOCK:
                _DRIVING.discard(held.token)

    def mark_idle(self) -> None:
        """The run stopped unfinished (FAILED) and this process drives it no more, though
        it may live on (a library caller): keep the lease (the alias stays the run's for
        other state databases until it expires) but mark it driven by nobody, so that the
        run's resume from another process takes it back at once. Best effort: a process
        that cannot say so leaves its pid, which tells as much once it has exited."""
        self.retire()
        held = self.held
        if held is None or self.lost is not None:
            return
        doc = {**self._doc(acquired_at=held.acquired_at, token=held.token), "driving": False}
        with self._lock, suppress(ReindexFsmError):
            written = self.engine.put_lease(
                self.alias, doc, seq_no=held.seq_no, primary_term=held.primary_term
            )
            self.held = Lease.from_stored(self.alias, written)

    def release(self) -> None:
        """Give the lease up (only if it is still ours)."""
        self.retire()
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


# Before each of these the lease is verified on the engine (a conditional renewal), not only
# by the flag the heartbeat sets, so that a lease taken over (--force-unlock, an abort, a
# resume that adopted the run's task) since the last heartbeat is seen before the write, not
# up to ttl/3 later. Every write but ``bulk``: a recompute's batches go only into the run's
# own target, are many, and each is checked by the heartbeat's flag (and its checkpoint).
ENGINE_WRITES_VERIFIED = ENGINE_WRITES - {"bulk"}


class LeasedEngine:
    """The engine as the steps of a run see it: every write first checks that this
    process still holds the run's lease (:meth:`LeaseKeeper.ensure`); reads go through
    unchanged."""

    def __init__(self, engine: Engine, keeper: LeaseKeeper) -> None:
        self._engine = engine
        self._keeper = keeper

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._engine, name)
        if name not in ENGINE_WRITES:
            return attr
        check = self._keeper.renew if name in ENGINE_WRITES_VERIFIED else self._keeper.ensure

        def checked(*args: Any, **kwargs: Any) -> Any:
            check()
            return attr(*args, **kwargs)

        return checked


class LeasedSleep:
    """The run's sleep (a poll interval, a back-off): after each wait the lease is checked
    (:meth:`LeaseKeeper.ensure`), so a process that lost it stops polling too, even where
    nothing is written for a while (a stalled or throttled copy)."""

    def __init__(self, sleep: Callable[[float], None], keeper: LeaseKeeper) -> None:
        self.unchecked = sleep
        self._keeper = keeper

    def __call__(self, seconds: float) -> None:
        self.unchecked(seconds)
        self._keeper.ensure()
