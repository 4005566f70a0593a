"""An exclusive lock on a file (``flock(2)``, the same lock the shell's ``flock`` takes), with a
timeout. The file descriptor is close-on-exec, so no JVM started under the lock holds it."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .settings import LauncherError

POLL_S = 0.1


@contextmanager
def file_lock(path: Path, timeout_s: float, what: str = "the lock") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if need be) for the ``with`` block;
    LauncherError after ``timeout_s`` seconds of waiting for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LauncherError(f"timed out waiting for {what} {path}") from None
                time.sleep(POLL_S)
        yield
    finally:
        os.close(fd)  # releases the lock
