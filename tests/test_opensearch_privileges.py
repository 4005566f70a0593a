"""The preflight's privilege probes on OpenSearch with its security plugin (no
_has_privileges there): each action a run would be refused only after writing is tried
with a request that can change nothing, and a refusal fails the start in one line (exit 13)
before anything is written. The same probes on the real secured engine:
tests/integration/test_security.py."""

from __future__ import annotations

import json

import pytest

from reindex_fsm.errors import PreflightFailed
from reindex_fsm.options import RunOptions
from reindex_fsm.preflight import _opensearch_probes, _Source, preflight
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, SOURCE

PROBED = (
    "indices:admin/create",
    "indices:admin/aliases",
    "indices:admin/delete",
    "indices:admin/settings/update",
    "indices:data/write/reindex",
    "cluster:monitor/tasks/lists",
    "cluster:admin/tasks/cancel",
)


@pytest.fixture
def secured(fake: FakeEngine) -> FakeEngine:
    fake.plugin_names = {"opensearch-security"}
    return fake


def probed_actions(fake: FakeEngine) -> list[str]:
    return [c.args[0] for c in fake.calls if c.method == "privilege_refusal"]


def test_every_probe_is_made_and_nothing_is_written(secured: FakeEngine) -> None:
    before = secured.snapshot()
    results = preflight(secured, secured.info(), ALIAS, RunOptions())
    assert results[-1].status == "ok"
    assert probed_actions(secured) == list(PROBED)
    assert secured.call_names(mutating_only=True) == []
    assert secured.snapshot() == before


@pytest.mark.parametrize("action", PROBED)
def test_a_refused_action_fails_the_start_naming_it(secured: FakeEngine, action: str) -> None:
    secured.refused_actions = {action}
    with pytest.raises(PreflightFailed) as failed:
        preflight(secured, secured.info(), ALIAS, RunOptions())
    line = str(failed.value)
    assert f"lacks {action} on " in line
    assert "user reindexer (roles: reindex_role)" in line
    assert "\n" not in line
    assert failed.value.exit_code == 13


def test_several_refusals_are_named_in_one_line(secured: FakeEngine) -> None:
    secured.refused_actions = {"indices:admin/aliases", "indices:admin/delete"}
    with pytest.raises(PreflightFailed, match=r"lacks indices:admin/aliases on .*, "):
        preflight(secured, secured.info(), ALIAS, RunOptions())


def test_skip_preflight_privileges_makes_no_probe(secured: FakeEngine) -> None:
    secured.refused_actions = set(PROBED)
    results = preflight(secured, secured.info(), ALIAS, RunOptions(skip_preflight=("privileges",)))
    assert results[-1].status == "skipped"
    assert probed_actions(secured) == []


def test_without_the_security_plugin_nothing_is_probed(fake: FakeEngine) -> None:
    results = preflight(fake, fake.info(), ALIAS, RunOptions())
    assert results[-1].status == "not checked"
    assert probed_actions(fake) == []


def test_probes_name_only_an_index_that_does_not_exist(secured: FakeEngine) -> None:
    """Every probe that could write names the random probe index (which nobody has made),
    or asks for what the engine always refuses: the swap's request adds the alias to the
    missing index first, so the engine fails it before the source loses the alias."""
    source = SOURCE
    probe = f"{ALIAS}-privilege-probe-0123456789ab"
    probes = _opensearch_probes(_Source(secured, ALIAS, source), probe)
    by_action = {action: (method, path, body) for action, _what, method, path, body in probes}
    assert by_action["indices:admin/create"][:2] == ("PUT", f"/{probe}")
    body = json.dumps(by_action["indices:admin/create"][2])
    assert '"type": "reindex_fsm_privilege_probe"' in body  # no such field type: refused
    swap = by_action["indices:admin/aliases"][2]["actions"]
    assert swap[0] == {"add": {"index": probe, "alias": ALIAS}}
    assert swap[1] == {"remove": {"index": source, "alias": ALIAS}}
    assert by_action["indices:admin/delete"][:2] == ("DELETE", f"/{probe}")
    assert by_action["indices:admin/settings/update"][2] == {"index": {"number_of_shards": 1}}
    assert by_action["indices:data/write/reindex"][2]["source"] == {"index": probe}
