"""Named points between an engine call and its checkpoint, where tests kill the process.

Production code calls ``ctx.crash("swap.engine_done")`` after every engine call
that changes something and after every commit. Normally that only counts. When
``REINDEX_FSM_TEST_CRASH_AT`` is set (to a number N, or to a point name, with an
optional ``#K`` for its K-th occurrence) the process SIGKILLs itself there: that
is how the crash tests stop a run at an exact place. Unit tests pass their own
action (raise an exception) instead of the kill.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

ENV_VAR = "REINDEX_FSM_TEST_CRASH_AT"


def _sigkill(_name: str) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Crashpoints:
    def __init__(
        self, at: str | int | None = None, action: Callable[[str], None] = _sigkill
    ) -> None:
        self.at = str(at) if at is not None else None
        self.action = action
        self.seen: list[str] = []

    def __call__(self, name: str) -> None:
        self.seen.append(name)
        if self.at is None:
            return
        if self.at.isdigit():
            hit = len(self.seen) == int(self.at)
        else:
            want, _, nth = self.at.partition("#")
            hit = name == want and self.seen.count(name) == int(nth or 1)
        if hit:
            self.action(name)

    @classmethod
    def from_env(cls) -> Crashpoints:
        return cls(os.environ.get(ENV_VAR) or None)
