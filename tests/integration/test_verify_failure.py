"""A target that lost documents before verification: the run fails verification and rolls
back (target deleted, aliases untouched), and the CLI would exit 5."""

from __future__ import annotations

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import ExitCode
from reindex_fsm.machine import State

from .conftest import alias_snapshot, make_config, options

pytestmark = pytest.mark.integration

LOST = 10


def test_failed_verification_rolls_back(engine, engine_url, tmp_path, names, make_source):
    n_docs = make_source()
    aliases_before = alias_snapshot(engine, names.prefix)
    deleted: list[int] = []

    def lose_documents(_point: str) -> None:
        # the copy is done and recorded; the target has no refresh yet (bulk-load tuning)
        assert engine.count(names.source) == n_docs
        ok, errors = engine.bulk(
            {"_op_type": "delete", "_index": names.target, "_id": f"doc-{i:08d}"}
            for i in range(LOST)
        )
        assert (ok, errors) == (LOST, [])
        engine.refresh(names.target)
        deleted.append(engine.count(names.target))

    cfg = make_config(
        tmp_path,
        engine_url,
        crash=lambda: Crashpoints(at="commit.VERIFYING", action=lose_documents),
    )
    outcome = api.start(
        cfg,
        names.alias,
        options(verify=True, rollback_on_failure=True, target_index=names.target),
    )
    rec = outcome.record

    assert deleted == [n_docs - LOST]  # the action ran, once
    assert rec.state is State.ROLLED_BACK
    assert rec.error_kind == "VerificationFailed"
    assert str(n_docs - LOST) in rec.error and str(n_docs) in rec.error
    assert rec.failed_from is State.VERIFYING
    assert api.exit_code_for(rec) == ExitCode.VERIFICATION_FAILED == 5
    assert outcome.exit_code == ExitCode.VERIFICATION_FAILED
    assert [(e.from_state, e.to_state) for e in cfg.repo().events(rec.id)][-2:] == [
        ("VERIFYING", "FAILED"),
        ("FAILED", "ROLLED_BACK"),
    ]
    # the target is gone; every alias is where it was, with its properties
    assert not engine.index_exists(names.target)
    assert alias_snapshot(engine, names.prefix) == aliases_before
    assert engine.count(names.alias) == n_docs
    assert cfg.repo().active_run_for(names.alias) is None  # the lock is released
