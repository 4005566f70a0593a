"""Processes opening one new SQLite state database at the same moment (a start making it,
a `show` or `history` beside it, several starts of a batch script) all get it migrated:
they take turns on its write lock, none fails with "database is locked"."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

OPENER = """
import sys, time
from reindex_fsm.store import open_store
at = float(sys.argv[2])
while time.time() < at:
    pass
store = open_store(sys.argv[1], read_only=sys.argv[3] == "ro")
print(len(store.list()))
"""


@pytest.mark.slow  # six interpreters, three rounds: some seconds
def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    for attempt in range(3):  # a few rounds: the race is one of timing
        db = tmp_path / f"state-{attempt}.db"
        db.touch()  # as a start's _prepare_sqlite_file leaves it: there, empty, writable
        at = time.time() + 2.0  # every process is imported and spinning by then
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, f"sqlite:///{db}", str(at), mode],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for mode in ("rw", "ro", "rw", "ro", "rw", "ro")
        ]
        results = [p.communicate(timeout=120) for p in procs]
        for proc, (out, err) in zip(procs, results, strict=True):
            assert proc.returncode == 0, err[-2000:]
            assert out.strip() == "0"
