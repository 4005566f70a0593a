"""A reader querying the alias all through a run (and so through the swap) never gets an
error, a partial answer or an empty result."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from reindex_fsm import api
from reindex_fsm.engine.connect import connect
from reindex_fsm.machine import State

from .conftest import options, raw

pytestmark = pytest.mark.integration

MAX_QUERIES = 50_000
MAX_SECONDS = 120.0
AFTER_SWAP_S = 1.0  # keep reading this long after the run ended


class Reader(threading.Thread):
    """Searches ``alias`` in a loop, with its own client, until stopped (or a bound)."""

    def __init__(self, engine_url: str, alias: str, expected: int) -> None:
        super().__init__(daemon=True)
        self.engine_url, self.alias, self.expected = engine_url, alias, expected
        self.stop = threading.Event()
        self.queries = 0
        self.bad: list[str] = []  # errors, partial or empty answers
        self.served_by: list[str] = []  # the index of each answer, in order

    def run(self) -> None:
        body: dict[str, Any] = {
            "size": 1,
            "track_total_hits": True,
            "query": {"match": {"title": "index"}},
        }
        engine = connect(self.engine_url)
        deadline = time.monotonic() + MAX_SECONDS
        try:
            while (
                not self.stop.is_set()
                and self.queries < MAX_QUERIES
                and time.monotonic() < deadline
            ):
                self.queries += 1
                try:
                    answer = raw(engine, "POST", f"/{self.alias}/_search", body=body)
                except Exception as exc:
                    self.bad.append(f"query {self.queries}: {type(exc).__name__}: {exc}")
                    continue
                hits = answer["hits"]
                shards = answer.get("_shards", {})
                if (
                    not hits["hits"]
                    or hits["total"]["value"] != self.expected
                    or shards.get("failed")
                    or answer.get("timed_out")
                ):
                    self.bad.append(f"query {self.queries}: {answer}")
                    continue
                self.served_by.append(hits["hits"][0]["_index"])
        finally:
            engine.close()


def test_reader_sees_no_error_and_no_empty_result_during_the_swap(
    engine, engine_url, cfg, names, make_source, record_property
):
    make_source()
    matching = raw(
        engine, "POST", f"/{names.alias}/_count", body={"query": {"match": {"title": "index"}}}
    )["count"]
    assert matching > 0
    reader = Reader(engine_url, names.alias, matching)
    reader.start()
    try:
        while not reader.served_by and not reader.bad and reader.is_alive():
            time.sleep(0.01)  # the reader is reading before the run starts
        rec = api.start(cfg, names.alias, options(verify=True, target_index=names.target))
        time.sleep(AFTER_SWAP_S)
    finally:
        reader.stop.set()
        reader.join(timeout=30)
    assert rec.record.state is State.SWAPPED, rec.record.error
    assert not reader.is_alive()

    print(f"\nreader made {reader.queries} queries during the run")
    record_property("reader_queries", reader.queries)
    assert reader.bad == []
    seen = Counter(reader.served_by)
    assert set(seen) == {names.source, names.target}, seen  # it read across the swap
    # the swap is atomic: once the target answered, the source never answered again
    first_target = reader.served_by.index(names.target)
    assert names.source not in reader.served_by[first_target:]
    assert reader.queries == len(reader.served_by) > 10
