"""The threads a batch drives its runs in, and the slices budget they share
(reindex_fsm.batch)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class SlicesBudget:
    """The slices budget: slices taken by the copies under way, given back at their end."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.left = total or 0
        self.cond = threading.Condition()

    def take(self, want: int, *, flexible: bool) -> int:
        """``flexible`` (a run about to be made): at most the budget left, at least one;
        else (a copy whose slices are stored) ``want``, at most the whole budget."""
        if self.total is None:
            return want
        need = 1 if flexible else min(want, self.total)
        with self.cond:
            while self.left < need:
                self.cond.wait(1.0)
            granted = min(want, self.left) if flexible else need
            self.left -= granted
            return granted

    def give(self, n: int) -> None:
        if self.total is None:
            return
        with self.cond:
            self.left += n
            self.cond.notify_all()


def in_threads(jobs: list[Callable[[], None]], concurrency: int) -> None:
    """Run ``jobs``, ``concurrency`` at a time, in daemon threads (a process that ends
    does not wait for them: its runs stop as if killed, and resume). A job's unexpected
    exception (a bug) is raised here once every job ended."""
    pending = list(reversed(jobs))
    lock = threading.Lock()
    bugs: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                job = pending.pop()
            try:
                job()
            except BaseException as exc:  # re-raised in the main thread
                bugs.append(exc)

    threads = [
        threading.Thread(target=work, name=f"batch-worker-{n}", daemon=True)
        for n in range(min(concurrency, len(jobs)))
    ]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)  # short waits: Ctrl-C and SIGTERM reach this thread at once
    if bugs:
        raise bugs[0]
