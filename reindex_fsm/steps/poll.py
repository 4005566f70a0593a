"""The one wait loop of a run: sleep between polls of the engine with a delay that grows
(``growth`` times per pause, up to ``cap``), optionally until a deadline; a wait whose
end can be foreseen (a copy task's progress: :func:`task_eta_s`) wakes when it is due
instead, so that a task that ends right after a poll is not seen up to ``cap`` later.

Every wait of a run goes through :class:`Waiter` (the copy's task, catch-up passes, the
cancel of a copy task, the target's health after its settings are put back, the wait
for another process's abort), with the run's injected clock and sleep, so that tests
take no real time and a new wait keeps the same rhythm as the others. Like curator's
``wait_for_it``: the caller polls, the waiter decides how long to wait and when to stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..engine.base import TaskStatus
from ..options import RunOptions

GROWTH = 1.5  # each pause is this many times the previous one, up to the cap
# The shortest pause before a poll that is due (the end foreseen now or already past: a
# copy whose last batch is written finishes its bookkeeping); each further one in a row
# grows by GROWTH, up to the pause the backoff would make.
DUE_S = 0.05


def task_eta_s(status: TaskStatus, since: TaskStatus | None = None) -> float | None:
    """Seconds until a copy task is expected to end at its rate: documents done of its
    total in its running time, since the status ``since`` of the same task when given
    (its recent rate: a copy's first seconds, before its first batch, say little of how
    fast it goes); 0 when all are done; None when it cannot be told yet (no total,
    nothing done, no running time)."""
    done, total, elapsed = status.done_docs, status.total, status.running_time_s
    if total <= 0 or done <= 0 or elapsed <= 0:
        return None
    if done >= total:
        return 0.0
    rate = done / elapsed
    if since is not None and since.task_id == status.task_id:
        moved, took = done - since.done_docs, elapsed - since.running_time_s
        if moved > 0 and took > 0:
            rate = moved / took
    return (total - done) / rate


class TaskEta:
    """:func:`task_eta_s` of each status of a copy, from the rate since the previous."""

    def __init__(self) -> None:
        self._last: TaskStatus | None = None

    def __call__(self, status: TaskStatus) -> float | None:
        last, self._last = self._last, status
        return task_eta_s(status, last)


@dataclass(frozen=True)
class Backoff:
    """The first pause, the longest one, and how each grows from the previous."""

    first: float
    cap: float
    growth: float = GROWTH

    def after(self, delay: float) -> float:
        return min(delay * self.growth, self.cap)

    @classmethod
    def of(cls, options: RunOptions) -> Backoff:
        """The run's polling rhythm (--poll-interval, --poll-max-interval)."""
        return cls(options.poll_interval_s, options.poll_max_interval_s)

    @classmethod
    def fixed(cls, interval: float) -> Backoff:
        return cls(interval, interval, 1.0)


class Waiter:
    """Pauses between polls: ``pause()`` sleeps the next delay (False, without sleeping,
    once the deadline has passed); ``expired()`` says whether it has; ``reset()`` starts
    the delays again from the first (a copy started again is polled as a new one)."""

    def __init__(
        self,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        backoff: Backoff,
        timeout_s: float | None = None,
    ) -> None:
        self.clock = clock
        self._sleep = sleep
        self.backoff = backoff
        self.deadline = None if timeout_s is None else clock() + timeout_s
        self.delay = backoff.first
        self._due = DUE_S

    def expired(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def sleep(self) -> None:
        """Sleep the next delay, whatever the deadline says."""
        self._sleep(self.delay)
        self.delay = self.backoff.after(self.delay)

    def pause(self, due_in: float | None = None) -> bool:
        """Sleep the next delay unless the deadline has passed (then False). ``due_in``:
        when what is awaited is expected to be over (seconds from now, None: unknown):
        sooner than the next delay, sleep only until then (at least DUE_S, more for
        each such pause in a row), and the backoff's delay does not grow."""
        if self.expired():
            return False
        if due_in is None or due_in >= self.delay:
            self._due = DUE_S
            self.sleep()
            return True
        self._sleep(min(max(due_in, self._due), self.delay))
        self._due *= self.backoff.growth
        return True

    def reset(self) -> None:
        self.delay = self.backoff.first
        self._due = DUE_S
