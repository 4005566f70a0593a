"""Run the reindex-fsm CLI (the arguments after OUT) in this fresh process, then write the
names of the modules it had loaded (``sys.modules``) to OUT as JSON, for
tests/test_startup.py."""

from __future__ import annotations

import atexit
import json
import sys
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    sys.argv = ["reindex-fsm", *sys.argv[2:]]
    # The CLI ends its process itself once its exit handlers ran (reindex_fsm/process.py):
    # the list is written by one of them, after everything the command loaded.
    atexit.register(lambda: out.write_text(json.dumps(sorted(sys.modules))))
    from reindex_fsm.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
