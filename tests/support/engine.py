"""The real engine of the integration and crash suites, through the Python launcher
(``devtools.engine``, imported: no shell output is parsed).

* ``engine_url`` (session): ``REINDEX_FSM_TEST_ENGINE_URL`` when set (any Elasticsearch or
  OpenSearch the suites should run against), else the local engine of
  ``REINDEX_FSM_ENGINE_HOME`` (default ``/tmp/reindex-fsm-engine``), started if need be and
  stopped at the end only if this session started it; its kind (OpenSearch 2 or 3, ...) is
  ``REINDEX_FSM_ENGINE_KIND``'s, and so is that of every engine ``started_engine`` starts
  unless given ``kind=``. The operator's own
  ``REINDEX_FSM_ENGINE_URL`` is never read here: tests do not touch the operator's cluster.
* ``started_engine(home, nodes, ...)``: an engine of its own in another home (a second
  cluster, a cluster whose nodes a test stops), as a ``LocalEngine`` with its node commands.
  ``started_engine(home, security=True)``: the security plugin with TLS; the engine's CA
  file and its users' passwords are on the ``LocalEngine`` (``ca_certs``, ``users``).
* ``secured_engine`` (session): one such secured engine for the whole session, in a home of
  its own under pytest's temporary directory, stopped at the end; its start time is printed
  in the session's summary (``secured engine started in N s``).

Registered once for the whole session by ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devtools.engine import EngineHome, LauncherError, Settings
from devtools.engine.homes import engine_home as kind_home

TEST_ENGINE_URL_ENV = "REINDEX_FSM_TEST_ENGINE_URL"
# The URL engine_url gave (for the capability summary, tests/support/capabilities.py).
ENGINE_URL_USED = pytest.StashKey[str]()


@dataclass
class LocalEngine:
    """A local engine this session runs: its home and node-1's URL (the one ``start``
    returned)."""

    home: EngineHome
    url: str
    # -- security: a secured engine's CA file and user -> password ({} when not secured)
    ca_certs: Path | None = None
    users: dict[str, str] = field(default_factory=dict)
    start_s: float = 0.0  # how long start() took

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
        began = time.monotonic()
        url = engine_home.start(nodes)
        took = time.monotonic() - began
    except LauncherError as err:
        pytest.fail(
            f"the local test engine did not start: {err} (set {TEST_ENGINE_URL_ENV} to run "
            "the suite against another cluster)",
            pytrace=False,
        )
    secured = engine_home.secured()
    ca = engine_home.ca_path if secured else None
    try:
        yield LocalEngine(engine_home, url, ca, engine_home.users(), took)
    finally:
        if always_stop or not was_running:
            engine_home.stop()


@pytest.fixture(scope="session")
def engine_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """The URL of the tests' engine: ``REINDEX_FSM_TEST_ENGINE_URL``, else a local one
    (of the kind ``REINDEX_FSM_ENGINE_KIND`` names, ``devtools/engine/kinds.py``)."""
    url = os.environ.get(TEST_ENGINE_URL_ENV)
    if url:
        yield url
        return
    # security=False: the suites' engine is a plain one whatever REINDEX_FSM_ENGINE_SECURITY
    # says (the secured one is ``secured_engine``, in a home of its own)
    with started_engine(always_stop=False, security=False) as local:
        pytestconfig.stash[ENGINE_URL_USED] = local.url
        yield local.url


# -- security: one secured engine per session -------------------------------------------------

SECURED_TIMES: list[float] = []  # the secured engine's start time, for the summary


@pytest.fixture(scope="session")
def secured_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    """A one-node engine with the security plugin, TLS and the test users (admin,
    reindexer: the least-privilege role, noalias: the same less indices:admin/aliases),
    started for this session in a home of its own and stopped at its end."""
    home = tmp_path_factory.mktemp("secured-engine")
    with started_engine(home, security=True, knn=False, kind="opensearch-2") as local:
        SECURED_TIMES.append(local.start_s)
        yield local


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for took in SECURED_TIMES:
        terminalreporter.write_line(f"secured engine started in {took:.1f} s")
