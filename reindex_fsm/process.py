"""The end of a command's process: what it leaves behind is written, then it exits
without the interpreter's own teardown.

Once a command has returned, everything it promised is stored (the state database
commits each transition before it returns, the engine answered every request), and
what Python does next (finalizing every module of SQLAlchemy, Alembic, both engine
clients and numpy, one object at a time) takes a measurable part of a short run's
time: 0.5 to 1.3 s on the loaded two-core test machine, more than all of a 20,000
document run's requests before its copy. :func:`exit_now` keeps what that teardown is
for (non-daemon threads joined, exit handlers run: logging's flush, coverage's data,
the standard streams flushed) and then ends the process with its exit code.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from contextlib import suppress
from typing import NoReturn


def exit_code_of(exc: SystemExit) -> int:
    """The status ``sys.exit(code)`` ends a process with: None is 0, an int itself,
    anything else is printed on stderr and is 1 (as the interpreter does)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    with suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def exit_now(code: int) -> NoReturn:
    """End the process with ``code``: wait for its non-daemon threads, run the exit
    handlers, flush stdout and stderr, then ``os._exit`` (no module teardown)."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(code)
