"""Every alias of the source moves to the target in the swap, with its properties, and
keeps working: the filter filters, the routing routes, the write index takes writes."""

from __future__ import annotations

import pytest

from reindex_fsm import api
from reindex_fsm.machine import State

from .conftest import options, raw

pytestmark = pytest.mark.integration


def test_every_alias_moves_with_filter_routing_and_write_index(engine, cfg, names, make_source):
    extra = {
        names("en"): {
            "filter": {"term": {"lang": "en"}},
            "index_routing": "1",
            "search_routing": "1,2",
            "is_write_index": False,
        },
        names("routed"): {"routing": "3"},
        names("hidden"): {"is_hidden": True},
    }
    n_docs = make_source(extra_aliases=extra)
    before = engine.get_index_aliases(names.source)
    assert set(before) == {names.alias, *extra}
    assert before[names.alias] == {"is_write_index": True}
    assert before[names("en")]["filter"] == {"term": {"lang": "en"}}
    assert before[names("routed")] == {"index_routing": "3", "search_routing": "3"}
    en_count = engine.count(names("en"))
    assert 0 < en_count < n_docs

    rec = api.start(cfg, names.alias, options(verify=True, target_index=names.target)).record
    assert rec.state is State.SWAPPED, rec.error

    assert engine.get_index_aliases(names.target) == before
    assert engine.get_index_aliases(names.source) == {}
    resolved = raw(engine, "GET", f"/_alias/{names.prefix}*", expand_wildcards="all")
    assert resolved == {names.target: {"aliases": before}}
    # the filtered alias still filters, on the target
    assert engine.count(names("en")) == en_count
    # the write index is the target: a write through the alias lands there
    raw(engine, "PUT", f"/{names.alias}/_doc/new-doc", body={"title": "x"}, refresh="true")
    assert raw(engine, "GET", f"/{names.target}/_doc/new-doc")["found"] is True
    assert engine.count(names.source) == n_docs
    # the routing of an alias is applied to writes through it
    raw(engine, "PUT", f"/{names('routed')}/_doc/routed-doc", body={"lang": "en"}, refresh="true")
    assert raw(engine, "GET", f"/{names.target}/_doc/routed-doc", routing="3")["found"] is True
