"""The real engine of the integration and crash suites, through the Python launcher
(``devtools.engine``, imported: no shell output is parsed).

* ``engine_url`` (session): ``REINDEX_FSM_TEST_ENGINE_URL`` when set (any Elasticsearch or
  OpenSearch the suites should run against), else the local engine of
  ``REINDEX_FSM_ENGINE_HOME`` (default ``/tmp/reindex-fsm-engine``), started if need be and
  stopped at the end only if this session started it. The operator's own
  ``REINDEX_FSM_ENGINE_URL`` is never read here: tests do not touch the operator's cluster.
* ``started_engine(home, nodes, ...)``: an engine of its own in another home (a second
  cluster, a cluster whose nodes a test stops), as a ``LocalEngine`` with its node commands.

Registered once for the whole session by ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools.engine import EngineHome, LauncherError, Settings
from devtools.engine.kinds import engine_home as kind_home

TEST_ENGINE_URL_ENV = "REINDEX_FSM_TEST_ENGINE_URL"


@dataclass
class LocalEngine:
    """A local engine this session runs: its home and node-1's URL (the one ``start``
    returned)."""

    home: EngineHome
    url: str

    def nodes(self) -> dict[str, dict[str, str]]:
        """name -> {"url", "state" (up|down)}."""
        return {
            n.name: {"url": n.url, "state": "up" if n.up else "down"} for n in self.home.nodes()
        }

    def live_url(self) -> str:
        """node-1's URL while it runs, else the first live node's."""
        url = self.home.url()
        if url is None:
            raise LauncherError(f"no node of the engine in {self.home.path} runs")
        return url

    def stop_node(self, name: str, kill: bool = True) -> None:
        self.home.stop_node(name, kill=kill)

    def start_node(self, name: str) -> None:
        self.home.start_node(name)


@contextmanager
def started_engine(
    home: Path | str | None = None,
    nodes: int | None = None,
    *,
    always_stop: bool = True,
    **settings: Any,
) -> Iterator[LocalEngine]:
    """A local engine in ``home`` (default: ``REINDEX_FSM_ENGINE_HOME``'s), ``nodes`` nodes
    (default 1, or as many as a reused engine has); ``settings`` override the environment's
    (``knn=False``, ``heap="512m"`` ...). Stopped at the end; with ``always_stop=False``
    only if it was not already running. A launcher error fails the test in one line."""
    if home is not None:
        settings["home"] = Path(home)
    try:
        engine_home = kind_home(Settings.from_env(**settings))
        was_running = engine_home.running()
        url = engine_home.start(nodes)
    except LauncherError as err:
        pytest.fail(
            f"the local test engine did not start: {err} (set {TEST_ENGINE_URL_ENV} to run "
            "the suite against another cluster)",
            pytrace=False,
        )
    try:
        yield LocalEngine(engine_home, url)
    finally:
        if always_stop or not was_running:
            engine_home.stop()


@pytest.fixture(scope="session")
def engine_url() -> Iterator[str]:
    """The URL of the tests' engine: ``REINDEX_FSM_TEST_ENGINE_URL``, else a local one."""
    url = os.environ.get(TEST_ENGINE_URL_ENV)
    if url:
        yield url
        return
    with started_engine(always_stop=False) as local:
        yield local.url
