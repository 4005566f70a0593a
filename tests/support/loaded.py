"""Run the reindex-fsm CLI (the arguments after OUT) in this fresh process, then write the
names of the modules it had loaded to OUT as JSON (for tests/test_startup.py).

A module bound lazily by reindex_fsm.cli.lazy that was never used sits in sys.modules
unloaded; it is left out, as it was not imported."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path


def loaded() -> list[str]:
    lazy_type = getattr(importlib.util, "_LazyModule", None)
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if module is not None and (lazy_type is None or type(module) is not lazy_type)
    )


def main() -> None:
    out = Path(sys.argv[1])
    sys.argv = ["reindex-fsm", *sys.argv[2:]]
    from reindex_fsm.cli import main as cli_main

    try:
        cli_main()
    finally:
        out.write_text(json.dumps(loaded()))


if __name__ == "__main__":
    main()
