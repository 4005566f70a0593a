"""A rollover alias comes through a run on the real engine: the alias with
``is_write_index: true`` that also names older generations (``is_write_index: false``)
lands on the target exactly as the source had it, the older generations keep theirs,
writes through it go to the target, the engine's own ``_rollover`` works on it after
the swap, and undo puts the write index back.

The rollover_alias settings (``index.lifecycle.rollover_alias``,
``plugins.index_state_management.rollover_alias``) need ILM or the ISM plugin, which the
test engine lacks: their hand-over after the swap is tested on the fake and the contract
facade (tests/test_lifecycle.py, tests/test_contract_lifecycle.py)."""

from __future__ import annotations

import pytest

from reindex_fsm import api
from reindex_fsm.machine import State

from .conftest import options, raw

pytestmark = pytest.mark.integration

ONE_SHARD = {"index.number_of_shards": 1, "index.number_of_replicas": 0}


def rollover_setup(engine, names, make_source) -> dict[str, dict]:
    """The source is the write index of the rollover alias ``logs``; the older
    generation ``gen-000001`` holds it too, as a read index; ``read`` is a plain alias."""
    old = names("gen-000001")
    engine.create_index(old, ONE_SHARD, {})
    raw(engine, "PUT", f"/{old}/_doc/old-doc", body={"title": "old"}, refresh="true")
    logs, read = names("logs"), names("read")
    engine.update_aliases([{"add": {"index": old, "alias": logs, "is_write_index": False}}])
    make_source(extra_aliases={logs: {"is_write_index": True}, read: {}})
    return {"old": {"name": old}, "aliases": engine.get_index_aliases(names.source)}


def test_the_write_index_of_a_rollover_alias_moves_exactly_and_back(
    engine, cfg, names, make_source
):
    setup = rollover_setup(engine, names, make_source)
    logs, old = names("logs"), setup["old"]["name"]
    before = setup["aliases"]
    assert before[logs] == {"is_write_index": True} and before[names("read")] == {}

    rec = api.start(cfg, names.alias, options(verify=True, target_index=names.target)).record
    assert rec.state is State.SWAPPED, rec.error

    assert engine.get_index_aliases(names.target) == before  # is_write_index as it was
    assert engine.get_index_aliases(old) == {logs: {"is_write_index": False}}
    raw(engine, "PUT", f"/{logs}/_doc/through-logs", body={"title": "x"}, refresh="true")
    assert raw(engine, "GET", f"/{names.target}/_doc/through-logs")["found"] is True
    assert engine.count(logs) == engine.count(names.target) + 1  # and the old generation

    raw(engine, "DELETE", f"/{names.target}/_doc/through-logs", refresh="true")
    undone = api.undo(cfg, rec.id, force=True)
    assert undone.state is State.UNDONE
    assert engine.get_index_aliases(names.source) == before
    assert engine.get_index_aliases(old) == {logs: {"is_write_index": False}}
    assert engine.get_index_aliases(names.target) == {}


def test_the_engine_rolls_the_alias_over_from_the_target_after_the_swap(
    engine, cfg, names, make_source
):
    setup = rollover_setup(engine, names, make_source)
    logs, old = names("logs"), setup["old"]["name"]
    rec = api.start(cfg, names.alias, options(target_index=names("gen-000002"))).record
    assert rec.state is State.SWAPPED, rec.error

    rolled = raw(engine, "POST", f"/{logs}/_rollover")
    assert rolled["rolled_over"] is True
    assert rolled["old_index"] == names("gen-000002")
    assert rolled["new_index"] == names("gen-000003")
    assert engine.get_index_aliases(names("gen-000003"))[logs] == {"is_write_index": True}
    assert engine.get_index_aliases(names("gen-000002"))[logs] == {"is_write_index": False}
    assert engine.get_index_aliases(old) == {logs: {"is_write_index": False}}
