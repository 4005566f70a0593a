"""The gate before the swap on a real engine, through the CLI: ``start --pause-before-swap``
stops VERIFIED with the alias untouched and the writes blocked as the policy says; ``show``
presents the verification; ``swap`` swaps; ``abort`` from VERIFIED rolls back with the alias
and the source as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from reindex_fsm.errors import EngineError, ExitCode

from .conftest import alias_snapshot, cli_json, content_digest, raw, run_cli

pytestmark = pytest.mark.integration

N_DOCS = 2000


def _start(names: Any, db: str, url: str, *extra: str) -> dict[str, Any]:
    code, run = cli_json(
        "start",
        "--alias",
        names.alias,
        "--target-index",
        names.target,
        "--pause-before-swap",
        "--force",
        *extra,
        "--state-db",
        db,
        "--engine-url",
        url,
    )
    assert code == ExitCode.PAUSED, run
    assert run["state"] == "VERIFIED", run
    return run


def _write(engine: Any, alias: str, doc_id: str) -> int:
    """One document written through the alias: the HTTP status the engine answered."""
    body = {"title": f"written at the gate {doc_id}", "updated_at": _now()}
    try:
        raw(engine, "PUT", f"/{alias}/_doc/{doc_id}", body, refresh="true")
    except EngineError as exc:
        return int(exc.status or 0)
    return 200


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _blocked(engine: Any, index: str) -> bool:
    settings = engine.get_index(index).settings
    return str(settings.get("index.blocks.write", "false")).lower() == "true"


def test_block_policy_pauses_blocked_then_swap_swaps(
    engine, engine_url, tmp_path, names, make_source
):
    make_source(N_DOCS)
    db = str(tmp_path / "state.db")
    before = alias_snapshot(engine, names.prefix)
    run = _start(names, db, engine_url, "--verify", "deep")
    # the alias untouched, writes blocked: a writer of the alias is refused (403)
    now = alias_snapshot(engine, names.prefix)
    assert now[names.source] == before[names.source] and now[names.target] == {"aliases": {}}
    assert list(engine.get_alias(names.alias)) == [names.source]
    assert _blocked(engine, names.source)
    assert _write(engine, names.alias, "refused-1") == 403
    code, shown = cli_json("show", run["run_id"], "--state-db", db)
    assert code == 0
    gate = shown["gate"]
    assert gate["waiting"] and gate["counts_equal"] and gate["target_count"] == N_DOCS
    assert gate["deep"]["passed"] and gate["deep"]["documents_compared"] == N_DOCS
    assert "BLOCKED" in gate["write_block"]
    human = run_cli("show", run["run_id"], "--state-db", db)
    assert "at the gate before the swap" in human.stdout and "WAITING" in human.stdout
    # resume does not pass the gate
    code, resumed = cli_json("resume", run["run_id"], "--state-db", db, "--engine-url", engine_url)
    assert code == ExitCode.PAUSED and resumed["state"] == "VERIFIED"
    code, swapped = cli_json("swap", run["run_id"], "--force", "--state-db", db)
    assert code == 0, swapped
    assert swapped["state"] == "SWAPPED"
    assert list(engine.get_alias(names.alias)) == [names.target]
    assert not _blocked(engine, names.source)
    assert content_digest(engine, names.target) == content_digest(engine, names.source)


def test_abort_from_the_gate_leaves_alias_and_source_as_before(
    engine, engine_url, tmp_path, names, make_source
):
    make_source(N_DOCS)
    db = str(tmp_path / "state.db")
    before = alias_snapshot(engine, names.prefix)
    digest = content_digest(engine, names.source)
    run = _start(names, db, engine_url)
    assert _blocked(engine, names.source)
    code, aborted = cli_json("abort", run["run_id"], "--state-db", db)
    assert code == 0, aborted
    assert aborted["state"] == "ROLLED_BACK"
    assert alias_snapshot(engine, names.prefix) == before
    assert not engine.index_exists(names.target)
    assert not _blocked(engine, names.source)
    assert content_digest(engine, names.source) == digest


def test_catch_up_writes_go_on_at_the_gate_and_the_swap_copies_them(
    engine, engine_url, tmp_path, names, make_source
):
    make_source(N_DOCS)
    raw(
        engine, "PUT", f"/{names.source}/_mapping", {"properties": {"updated_at": {"type": "date"}}}
    )
    db = str(tmp_path / "state.db")
    policy = ("--write-policy", "catch-up", "--since-field", "updated_at")
    run = _start(names, db, engine_url, *policy, "--catch-up-margin", "10")
    assert not _blocked(engine, names.source)  # writers go on while the run waits
    assert list(engine.get_alias(names.alias)) == [names.source]
    written = [f"late-{i}" for i in range(5)]
    assert [_write(engine, names.alias, d) for d in written] == [200] * 5
    raw(engine, "DELETE", f"/{names.alias}/_doc/late-0", refresh="true")
    code, swapped = cli_json("swap", run["run_id"], "--force", "--state-db", db)
    assert code == 0, swapped
    assert swapped["state"] == "SWAPPED"
    assert list(engine.get_alias(names.alias)) == [names.target]
    assert not _blocked(engine, names.source)
    engine.refresh(names.target)
    assert content_digest(engine, names.target) == content_digest(engine, names.source)
    assert content_digest(engine, names.target)[0] == N_DOCS + 4
    code, shown = cli_json("show", run["run_id"], "--state-db", db)
    passes = shown["write_policy"]["passes"]
    assert passes[-1]["final"] and passes[-1]["copied"] >= 4  # the last pass, at the swap
    assert json.dumps(shown["gate"]).count("catch-up") >= 1
