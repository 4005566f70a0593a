"""Writes made during a run are never lost: a writer process writes through the alias for
the whole run (before, during the copy, during the swap and after it), and every write it
was acknowledged is in the index behind the alias afterwards, for both write policies."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from .conftest import cli_argv, cli_env, raw, run_cli

pytestmark = pytest.mark.integration

WRITER = Path(__file__).with_name("writer.py")
N_DOCS = 3000
RPS = "600"  # the copy takes about five seconds: the writer gets plenty in


def writes(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def lost_writes(engine, index: str, log: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Acknowledged writes whose effect is not in ``index``: for each document, its last
    acknowledged write (unless a later write's outcome is unknown) must be what is there."""
    last: dict[str, dict[str, Any]] = {}
    unsure: set[str] = set()
    for w in log:
        if w["outcome"] == "ack":
            last[w["id"]] = w
            unsure.discard(w["id"])
        elif w["outcome"] == "unknown":
            unsure.add(w["id"])
    lost, found = [], 0
    ids = sorted(set(last) - unsure)
    got = (
        {d["_id"]: d for d in raw(engine, "POST", f"/{index}/_mget", {"ids": ids})["docs"]}
        if ids
        else {}
    )
    for doc_id in ids:
        w, doc = last[doc_id], got[doc_id]
        if w["op"] == "delete":
            ok = not doc["found"]
        else:
            ok = doc["found"] and doc["_source"]["v"] == w["v"]
        if ok:
            found += 1
        else:
            lost.append(f"{w['op']} {doc_id} v{w['v']}: {doc.get('_source')}")
    return lost, found


def seconds_between(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def run_with_writer(engine, engine_url, tmp_path, names, make_source, *policy: str) -> dict:
    make_source(N_DOCS)
    raw(
        engine, "PUT", f"/{names.source}/_mapping", {"properties": {"updated_at": {"type": "date"}}}
    )
    log, stop = tmp_path / "writes.jsonl", tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), engine_url, names.alias, str(log), str(stop)]
    )
    try:
        deadline = time.monotonic() + 30
        while len(writes(log) if log.exists() else []) < 50:  # the writer is going
            assert time.monotonic() < deadline and writer.poll() is None, "writer did not start"
            time.sleep(0.1)
        result = run_cli(
            "start",
            "--alias",
            names.alias,
            "--target-index",
            names.target,
            "--verify",
            "--force",
            "--requests-per-second",
            RPS,
            "--slices",
            "1",
            *policy,
            "--state-db",
            str(tmp_path / "state.db"),
            "--engine-url",
            engine_url,
            "--json",
            timeout=300,
        )
        time.sleep(1.0)  # and after the swap too
    finally:
        stop.touch()
        writer.wait(timeout=60)
    assert result.returncode == 0, (
        json.loads(result.stdout or "{}").get("error"),
        result.stderr[-3000:],
    )
    run = json.loads(result.stdout)
    assert run["state"] == "SWAPPED"
    behind = list(engine.get_alias(names.alias))
    assert behind == [names.target]
    engine.refresh(names.target)
    log_entries = writes(log)
    lost, found = lost_writes(engine, names.target, log_entries)
    outcomes = Counter(w["outcome"] for w in log_entries)
    figures = {
        "policy": policy[1] if policy else "block",
        "made": len(log_entries),
        "acknowledged": outcomes["ack"],
        "refused": outcomes["refused"],
        "unknown": outcomes["unknown"],
        "documents checked": found + len(lost),
        "found": found,
        "lost": len(lost),
    }
    assert lost == [], f"{len(lost)} acknowledged writes lost: {lost[:10]}"
    # the source is writable again (it stays as the previous index, for undo)
    settings = engine.get_index(names.source).settings
    assert str(settings.get("index.blocks.write", "false")).lower() != "true"
    shown = json.loads(
        run_cli("show", run["run_id"], "--json", "--state-db", str(tmp_path / "state.db")).stdout
    )
    wp = shown["write_policy"]
    blocked_s = seconds_between(wp["blocked_at"], wp["released_at"])
    run_s = seconds_between(shown["created_at"], shown["finished_at"])
    figures.update(blocked_s=round(blocked_s, 2), run_s=round(run_s, 2))
    print(f"write policy {figures}")
    return {"figures": figures, "record": shown, "stderr": result.stderr, "log": log_entries}


def test_block_policy_loses_no_acknowledged_write(engine, engine_url, tmp_path, names, make_source):
    out = run_with_writer(engine, engine_url, tmp_path, names, make_source)
    f = out["figures"]
    assert f["refused"] > 0, "no write came during the block: the test proves nothing"
    assert f["acknowledged"] > 50
    assert "ARE BLOCKED until the swap" in out["stderr"]
    wp = out["record"]["write_policy"]
    assert wp["policy"] == "block" and wp["blocked"] is False and wp["released_at"]
    # writes resumed after the swap, into the target
    refused_at = [i for i, w in enumerate(out["log"]) if w["outcome"] == "refused"]
    assert any(w["outcome"] == "ack" for w in out["log"][refused_at[-1] :])


def test_catch_up_policy_loses_no_acknowledged_write(
    engine, engine_url, tmp_path, names, make_source
):
    out = run_with_writer(
        engine,
        engine_url,
        tmp_path,
        names,
        make_source,
        "--write-policy",
        "catch-up",
        "--since-field",
        "updated_at",
        "--catch-up-margin",
        "10",  # a write's stamp is taken before it is sent; on a loaded machine it can
        # be acknowledged seconds later
    )
    f = out["figures"]
    wp = out["record"]["write_policy"]
    assert wp["policy"] == "catch-up" and wp["blocked"] is False
    passes = wp["passes"]
    assert len(passes) >= 2 and passes[-1]["final"]
    assert sum(p["copied"] for p in passes) > 0, "no write came during the copy"
    assert wp["deleted_from_target"] > 0, "deletes made during the copy were not reconciled"
    # writes went on during the main copy: the writers waited only for the final block
    assert f["blocked_s"] < f["run_s"] / 2, f


def _copy_task(engine, target: str, deadline_s: float = 60.0):
    """The running reindex task into ``target`` once it has copied something."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for task in engine.list_reindex_tasks():
            if f"[{target}]" in task.description and task.created >= 300:
                return task
        time.sleep(0.1)
    raise AssertionError(f"no copy into {target} got going within {deadline_s}s")


def test_block_policy_with_a_failure_in_the_middle_loses_nothing(
    engine, engine_url, tmp_path, names, make_source
):
    """The copy fails half way (its task is cancelled from outside): the run ends FAILED
    and its block comes off at once, so the writer's writes are acknowledged again while
    nobody drives the run. The resume blocks again, copies the source again over the
    target (op_type=index) and deletes what was deleted meanwhile, then swaps: every
    acknowledged write, before, during the failure and after the swap, is in the index
    behind the alias, and the writer was refused only while a run copied or verified."""
    make_source(N_DOCS)
    db = str(tmp_path / "state.db")
    log, stop = tmp_path / "writes.jsonl", tmp_path / "stop"
    common = ["--state-db", db, "--engine-url", engine_url, "--json"]
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), engine_url, names.alias, str(log), str(stop)]
    )
    try:
        deadline = time.monotonic() + 30
        while len(writes(log) if log.exists() else []) < 50:
            assert time.monotonic() < deadline and writer.poll() is None, "writer did not start"
            time.sleep(0.1)
        started = subprocess.Popen(
            cli_argv(
                "start",
                "--alias",
                names.alias,
                "--target-index",
                names.target,
                "--force",
                "--requests-per-second",
                RPS,
                "--slices",
                "1",
                *common,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        task = _copy_task(engine, names.target)
        engine.cancel_task(task.task_id)  # the failure in the middle of the copy
        out, err = started.communicate(timeout=120)
        assert started.returncode == 4, (out, err[-3000:])
        failed = json.loads(out)
        assert failed["state"] == "FAILED" and failed["failed_from"] == "REINDEXING"
        assert failed["write_policy"]["blocked"] is False and failed["write_policy"]["resync"]
        assert "still BLOCKED" not in err
        at_failure = len(writes(log))
        # documents the failed copy had copied change too: 5 deleted, 5 updated
        engine.refresh(names.target)
        copied = raw(engine, "POST", f"/{names.target}/_search", {"size": 10, "_source": False})
        ids = [h["_id"] for h in copied["hits"]["hits"]]
        assert len(ids) == 10
        mine = []
        for i, doc_id in enumerate(ids):
            if i < 5:
                raw(engine, "DELETE", f"/{names.alias}/_doc/{doc_id}")
                mine.append({"op": "delete", "id": doc_id, "v": None, "outcome": "ack"})
            else:
                body = {"title": "changed while the run was FAILED", "v": 1000 + i}
                raw(engine, "PUT", f"/{names.alias}/_doc/{doc_id}", body)
                mine.append({"op": "update", "id": doc_id, "v": 1000 + i, "outcome": "ack"})
        time.sleep(3.0)  # nobody drives the run: the writers go on
        at_resume = len(writes(log))
        resumed = run_cli("resume", failed["run_id"], *common, timeout=300)
        time.sleep(1.0)  # and after the swap too
    finally:
        stop.touch()
        writer.wait(timeout=60)
    assert resumed.returncode == 0, (resumed.stdout, resumed.stderr[-3000:])
    run = json.loads(resumed.stdout)
    assert run["state"] == "SWAPPED"
    assert list(engine.get_alias(names.alias)) == [names.target]
    engine.refresh(names.target)
    log_entries = writes(log)
    # while the run was FAILED, writes were acknowledged, none refused
    between = log_entries[at_failure:at_resume]
    assert between and all(w["outcome"] == "ack" for w in between), Counter(
        w["outcome"] for w in between
    )
    assert {"new", "update", "delete"} <= {w["op"] for w in between}
    lost, found = lost_writes(engine, names.target, log_entries + mine)
    outcomes = Counter(w["outcome"] for w in log_entries + mine)
    shown = json.loads(run_cli("show", run["run_id"], "--json", "--state-db", db).stdout)
    wp = shown["write_policy"]
    periods = wp["blocked_periods"]
    assert len(periods) == 2  # the first copy until it failed; the copy again and the swap
    blocked_s = sum(seconds_between(p["from"], p["to"]) for p in periods)
    run_s = seconds_between(shown["created_at"], shown["finished_at"])
    figures = {
        "policy": "block, the copy failed half way, then resume",
        "made": len(log_entries) + len(mine),
        "acknowledged": outcomes["ack"],
        "refused": outcomes["refused"],
        "unknown": outcomes["unknown"],
        "acknowledged while FAILED": len(between) + len(mine),
        "documents checked": found + len(lost),
        "lost": len(lost),
        "blocked_s": round(blocked_s, 2),
        "unblocked while FAILED_s": round(seconds_between(periods[0]["to"], periods[1]["from"]), 2),
        "run_s": round(run_s, 2),
        "deleted_from_target": wp["deleted_from_target"],
    }
    print(f"write policy {figures}")
    assert lost == [], f"{len(lost)} acknowledged writes lost: {lost[:10]}"
    assert outcomes["refused"] > 0, "no write came during the block: the test proves nothing"
    assert wp["deleted_from_target"] >= 5, "the deletes made while FAILED were not reconciled"
    assert (wp["passes"][-1]["resync"], wp["passes"][-1]["since"]) == (True, None)
    settings = engine.get_index(names.source).settings
    assert str(settings.get("index.blocks.write", "false")).lower() != "true"
