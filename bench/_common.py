"""What the benchmarks share: the engine they run on, and how they report."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.engine.connect import connect

ROOT = Path(__file__).resolve().parents[1]
ENGINE_SH = ROOT / "scripts" / "engine.sh"


@contextmanager
def bench_engine(request_timeout: float = 900) -> Iterator[tuple[str, ClientEngine]]:
    """(URL, client) of REINDEX_FSM_ENGINE_URL, else of a local engine started here and
    stopped at the end."""
    url = os.environ.get("REINDEX_FSM_ENGINE_URL")
    started = not url
    if not url:
        out = subprocess.run([str(ENGINE_SH), "start"], check=True, capture_output=True, text=True)
        url = out.stdout.strip()
    engine = connect(url, request_timeout=request_timeout)
    try:
        yield url, engine
    finally:
        engine.close()
        if started:
            subprocess.run([str(ENGINE_SH), "stop"], check=False)


def report(result: dict[str, Any], out: str | None) -> None:
    """Print the result as JSON, and write it to ``out`` too when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
