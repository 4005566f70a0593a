"""Start-up of the CLI: whole processes, timed from spawn to exit, for the commands a
person types most and the one a shell runs on every TAB:
- ``--help``, ``start --help``;
- completion (``_REINDEX_FSM_COMPLETE=bash_complete``, the words ``reindex-fsm start --``);
- ``history`` and ``show RUN_ID`` on a SQLite state database of ``--runs`` runs;
next to ``python -c pass`` (the interpreter alone: the floor).

Each command runs as ``python -m reindex_fsm.cli`` with PYTHONPATH set to a checkout, so
that two checkouts (``--before DIR``: an older tree, e.g. ``git worktree add DIR 6275e7a``)
run with the same interpreter and libraries; variants alternate within each repeat, so
the machine's load falls on both alike. Reported: median, min and max seconds of each.

    python bench/bench_startup.py --repeats 15 --before /tmp/startup-before \
        --out bench/results/startup-<date>.json
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from _common import ROOT, report

COMPLETE_ENV = {
    "_REINDEX_FSM_COMPLETE": "bash_complete",
    "COMP_WORDS": "reindex-fsm start --",
    "COMP_CWORD": "2",
}


def _make_db(path: Path, runs: int) -> str:
    """A state database (this checkout's schema) of ``runs`` finished runs, each with
    five events; the ID of the newest."""
    from reindex_fsm.machine import State
    from reindex_fsm.store import open_store

    clock = [datetime(2026, 1, 1, tzinfo=UTC)]

    def now() -> datetime:
        clock[0] += timedelta(seconds=7)
        return clock[0]

    repo = open_store(f"sqlite:///{path}")
    repo.now = now
    run_id = ""
    for i in range(runs):
        run_id = f"{i:012x}"
        repo.create(
            {
                "id": run_id,
                "alias": "documents",
                "source_index": f"documents-{i}",
                "target_index": f"documents-{i + 1}",
                "options": {"verify": True},
                "plan": {"alias": "documents"},
                "engine_url": "http://127.0.0.1:9200",
                "engine_flavor": "opensearch",
                "engine_version": "2.19.6",
                "source_count": 20000,
            }
        )
        path_taken = (State.TARGET_CREATED, State.REINDEXING, State.VERIFYING, State.SWAPPED)
        src = State.PLANNED
        for dst in path_taken:
            repo.transition(run_id, src, dst, f"to_{dst.value.lower()}", target_count=20000)
            src = dst
    return run_id


def _commands(db: Path, run_id: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    cli = [sys.executable, "-m", "reindex_fsm.cli"]
    state = ["--state-db", str(db)]
    return {
        "python -c pass": ([sys.executable, "-c", "pass"], {}),
        "--help": ([*cli, "--help"], {}),
        "start --help": ([*cli, "start", "--help"], {}),
        "completion (bash, TAB)": (cli, COMPLETE_ENV),
        "history": ([*cli, "history", *state], {}),
        "show RUN_ID": ([*cli, "show", run_id, *state], {}),
    }


def _time(argv: list[str], env: dict[str, str], cwd: str) -> float:
    """Seconds from spawn to exit. ``cwd``: not a checkout (``-m`` puts it on sys.path)."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise click.ClickException(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}"
        )
    return elapsed


def _figures(times: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "n": len(times),
    }


@click.command()
@click.option("--repeats", default=15, show_default=True, help="Runs of each command.")
@click.option("--runs", default=50, show_default=True, help="Runs in the state database.")
@click.option(
    "--before",
    type=click.Path(file_okay=False, exists=True),
    help="An older checkout to time alongside this one (same interpreter).",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the JSON here.")
def main(repeats: int, runs: int, before: str | None, out: str | None) -> None:
    """Time the CLI's start-up, whole processes (see the module docstring)."""
    trees = {"after": str(ROOT)}
    if before:
        trees["before"] = str(Path(before).resolve())
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        db = Path(tmp) / "state.db"
        run_id = _make_db(db, runs)
        commands = _commands(db, run_id)
        times: dict[str, dict[str, list[float]]] = {
            tree: {name: [] for name in commands} for tree in trees
        }
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("REINDEX_FSM_")}
        for path in trees.values():  # each variant really runs its own checkout
            where = subprocess.run(
                [sys.executable, "-c", "import reindex_fsm; print(reindex_fsm.__file__)"],
                env={**base_env, "PYTHONPATH": path},
                cwd=tmp,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            if not where.startswith(path):
                raise click.ClickException(f"PYTHONPATH={path} imports {where}")
        for _ in range(repeats):
            for name, (argv, extra) in commands.items():
                for tree, path in trees.items():  # alternate: the load falls on both
                    env = {**base_env, **extra, "PYTHONPATH": path}
                    times[tree][name].append(_time(argv, env, tmp))
    result: dict[str, Any] = {
        "bench": "startup",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()),
        "repeats": repeats,
        "runs_in_state_db": runs,
        "goal_s": 0.25,
        "results": {
            tree: {name: _figures(t) for name, t in by_name.items()}
            for tree, by_name in times.items()
        },
    }
    if before:
        result["before_over_after"] = {
            name: round(
                statistics.median(times["before"][name]) / statistics.median(times["after"][name]),
                2,
            )
            for name in commands
        }
    report(result, out)


if __name__ == "__main__":
    main()
