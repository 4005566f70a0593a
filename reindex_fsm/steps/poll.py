"""The one wait loop of a run: sleep between polls of the engine with a delay that grows
(``growth`` times per pause, up to ``cap``), optionally until a deadline.

Every wait of a run goes through :class:`Waiter` (the copy's task, catch-up passes, the
cancel of a copy task, the target's health after its settings are put back, the wait
for another process's abort), with the run's injected clock and sleep, so that tests
take no real time and a new wait keeps the same rhythm as the others. Like curator's
``wait_for_it``: the caller polls, the waiter decides how long to wait and when to stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..options import RunOptions

GROWTH = 1.5  # each pause is this many times the previous one, up to the cap


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

    def expired(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def sleep(self) -> None:
        """Sleep the next delay, whatever the deadline says."""
        self._sleep(self.delay)
        self.delay = self.backoff.after(self.delay)

    def pause(self) -> bool:
        """Sleep the next delay unless the deadline has passed (then False)."""
        if self.expired():
            return False
        self.sleep()
        return True

    def reset(self) -> None:
        self.delay = self.backoff.first
