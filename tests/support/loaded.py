"""Run the reindex-fsm CLI (the arguments after OUT) in this fresh process, then write the
names of the modules it had loaded (``sys.modules``) to OUT as JSON, for
tests/test_startup.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    sys.argv = ["reindex-fsm", *sys.argv[2:]]
    from reindex_fsm.cli import main as cli_main

    try:
        cli_main()
    finally:
        out.write_text(json.dumps(sorted(sys.modules)))


if __name__ == "__main__":
    main()
