"""A node of a 3-node cluster dies (SIGKILL) in the middle of the copy: the node running the
reindex task. The run must end correct (SWAPPED with exactly the source's documents) or
cleanly FAILED / ROLLED_BACK with a clear reason; never with the alias on a partial index.

What an operator would do is done too, and each step's outcome is checked and recorded:

1. ``start`` talks to node-2 (so the fixture's node-1 stays up); the task runs there.
2. node-2 is killed mid-copy; the ``start`` process ends (its engine is gone).
3. ``resume`` against a live node while node-2 is still down: the target was being filled
   with 0 replicas, so one of its primaries is gone with the node; the run may not swap.
4. node-2 is started again (its shards come back from disk) and ``resume`` is run again: the
   run must end SWAPPED with the source's exact document set.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm.engine.base import opaque_id_for
from reindex_fsm.engine.connect import connect

from .conftest import (
    NOTES,
    TERMINAL_STATES,
    LocalEngine,
    Source,
    diff_docs,
    doc_hashes,
    drop_source,
    finish,
    history,
    http_json,
    make_source,
    resume_args,
    run_cli,
    show,
    spawn,
    wait_for_state,
)

pytestmark = [pytest.mark.crash, pytest.mark.slow]

N_DOCS = 3000
RPS = 250  # about 12 s of copy: the node is killed after the first batch of 1,000
RUN_NODE = "node-2"  # not node-1: the fixture's URL is node-1's
RESUME_WHILE_DOWN = True  # step 3 (waits for the engine's 1 min bulk timeout)


def assert_alias_safe(src: Source) -> str:
    """Every alias on one index: the source, or a target holding the source's documents."""
    where = set()
    for name in src.aliases:
        on = src.engine.get_alias(name)
        assert len(on) == 1, f"alias {name} on {sorted(on)}"
        where |= set(on)
    assert len(where) == 1, f"aliases split over {sorted(where)}"
    (index,) = where
    if index != src.index:
        got = doc_hashes(src.engine, index)
        assert got == src.hashes, f"alias on a partial index {index}: {diff_docs(src.hashes, got)}"
    return index


def wait_for_copy(src: Source, run_id: str, timeout: float = 60) -> Any:
    """The run's task once it has copied a first batch (and is far from done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = src.engine.list_reindex_tasks(opaque_id_for(run_id))
        if tasks and tasks[0].created >= 1:
            return tasks[0]
        time.sleep(0.1)
    raise AssertionError(f"the copy of run {run_id} did not start within {timeout}s")


@pytest.mark.needs("local_engines")
def test_node_running_the_copy_is_killed(cluster3: LocalEngine, tmp_path: Path) -> None:
    t0 = time.monotonic()
    log: list[str] = []

    def note(msg: str) -> None:
        log.append(f"[{time.monotonic() - t0:6.1f}s] {msg}")

    engine = connect(cluster3.url)
    src = make_source(
        engine,
        cluster3.url,
        f"nodefail-{uuid.uuid4().hex[:8]}",
        N_DOCS,
        settings={"index.number_of_replicas": 1},  # the source survives the loss of a node
    )
    try:
        assert not engine.cluster_health(src.index, "green", 60).get("timed_out")
        note(f"source {src.index}: {N_DOCS} docs, 3 shards, 1 replica")
        _scenario(cluster3, src, tmp_path, note)
    finally:
        NOTES.append("node failure test (3 nodes):")
        NOTES.extend(f"  {line}" for line in log)
        drop_source(src)


def _scenario(cluster: LocalEngine, src: Source, tmp_path: Path, note: Any) -> None:
    db = tmp_path / "state.db"
    run_url = cluster.nodes()[RUN_NODE]["url"]
    proc = spawn(
        [
            *("start", "--alias", src.alias, "--verify", "--force", "--json"),
            *("--state-db", str(db), "--engine-url", run_url),
            *("--requests-per-second", str(RPS), "--slices", "1"),
        ]
    )
    try:
        wait_for_state(proc, db, "REINDEXING")
        (run,) = history(db)
        run_id = run["run_id"]
        task = wait_for_copy(src, run_id)
    except BaseException:
        proc.kill()
        raise
    names = {nid: n["name"] for nid, n in http_json(src.url, "/_nodes")["nodes"].items()}
    task_node = names[task.task_id.split(":")[0]]
    note(
        f"run {run_id} via {RUN_NODE}: task {task.task_id} runs on {task_node}, "
        f"{task.created}/{task.total} copied; killing {task_node}"
    )

    cluster.stop_node(task_node, kill=True)
    # Re-resolve: the fixture's URL is node-1's, which stays up unless it ran the task.
    live = cluster.live_url()
    src.engine = connect(live)
    src.url = live
    note(f"{task_node} killed; test and resumes use {live}")

    first = finish(proc, timeout=300)
    state = show(db, run_id)
    note(
        f"start exited {first.rc} in state {state['state']}: "
        f"{state['error'] or first.err.strip().splitlines()[-1:]}"
    )
    where = assert_alias_safe(src)
    _check_outcome(first.rc, first.err, state, where, src)

    if RESUME_WHILE_DOWN and state["state"] not in TERMINAL_STATES:
        while_down = run_cli(resume_args(db, live, run_id), timeout=400)
        state = show(db, run_id)
        note(
            f"resume with {task_node} down exited {while_down.rc} in state {state['state']}"
            f"{': ' + state['error'] if state['error'] else ''}"
        )
        where = assert_alias_safe(src)
        _check_outcome(while_down.rc, while_down.err, state, where, src)

    cluster.start_node(task_node)
    note(f"{task_node} started again")
    if state["state"] not in TERMINAL_STATES:
        final = run_cli(resume_args(db, live, run_id), timeout=400)
        assert final.rc == 0, f"resume exited {final.rc}: {final.out} {final.err[-2000:]}"
        state = show(db, run_id)
    record = src.assert_converged(db, run_id)
    trail = []
    for e in state["events"]:
        if e["from"] == e["to"] and e["trigger"] != "copy_restarted":
            continue  # progress checkpoints
        detail = e["detail"] or {}
        why = detail.get("error") or detail.get("vanished_task") or detail.get("adopted")
        trail.append(f"{e['from']}->{e['to']} {e['trigger']}" + (f" ({why})"[:160] if why else ""))
    note(
        f"run ended {record['state']} with the source's {len(src.hashes)} docs "
        f"(copy attempts {record['copy_attempts']}, progress {record['progress']}); "
        f"events: {'; '.join(trail)}"
    )


def _check_outcome(rc: int, err: str, state: dict[str, Any], where: str, src: Source) -> None:
    """One process's end is acceptable: SWAPPED correct, FAILED/ROLLED_BACK with a clear
    reason and the alias on the source, or still active after an 'engine unreachable'."""
    if state["state"] == "SWAPPED":
        assert rc == 0 and where == state["target_index"]
    elif state["state"] in ("FAILED", "ROLLED_BACK"):
        assert where == src.index, "a failed run moved the alias"
        assert state["error"] and len(state["error"]) > 20, f"no clear reason: {state}"
        if "unavailable_shards_exception" in state["error"]:  # the cluster's, not the data's
            assert "mappings refuse" not in state["error"], state["error"]
        assert rc in (3, 4, 5), rc
    else:  # stopped without deciding: only acceptable when the engine could not be reached
        assert where == src.index
        assert rc == 6, f"exit {rc} in {state['state']}: {err[-2000:]}"
        assert "cannot reach the engine" in err
