"""What the launcher is told: the environment variables (the same names ``scripts/engine.sh``
always read), their defaults, and the launcher's own error."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

log = logging.getLogger("devtools.engine")

REPO = Path(__file__).resolve().parents[2]
ENGINE_SRC = REPO / "scripts" / "engine"  # pom.xml (the jars to fetch) and EngineNode.java
CLUSTER_NAME = "reindex-fsm-engine"
MAX_NODES = 9
KNN_RETRY_SECONDS = 3600  # a failed k-NN download is tried again by `start` once an hour

CACHE_ENV = "REINDEX_FSM_ENGINE_CACHE"
HOME_ENV = "REINDEX_FSM_ENGINE_HOME"
TIMEOUT_ENV = "REINDEX_FSM_ENGINE_TIMEOUT"
HEAP_ENV = "REINDEX_FSM_ENGINE_HEAP"
JAVA_HOME_ENV = "REINDEX_FSM_ENGINE_JAVA_HOME"
JAVA_OPTS_ENV = "REINDEX_FSM_ENGINE_JAVA_OPTS"
MVN_REPO_ENV = "REINDEX_FSM_ENGINE_MVN_REPO"
KNN_ENV = "REINDEX_FSM_ENGINE_KNN"
# -- security: the security plugin with TLS (devtools/engine/security.py)
SECURITY_ENV = "REINDEX_FSM_ENGINE_SECURITY"
KIND_ENV = "REINDEX_FSM_ENGINE_KIND"
# Every variable the launcher reads: none of them is read by reindex-fsm itself.
VARIABLES = (
    CACHE_ENV,
    HOME_ENV,
    TIMEOUT_ENV,
    HEAP_ENV,
    JAVA_HOME_ENV,
    JAVA_OPTS_ENV,
    MVN_REPO_ENV,
    KNN_ENV,
    SECURITY_ENV,
    KIND_ENV,
)

DEFAULT_HOME = "/tmp/reindex-fsm-engine"
DEFAULT_TIMEOUT_S = 180.0
DEFAULT_HEAP = "1g"
DEFAULT_KIND = "opensearch-2"  # the engine kinds: devtools/engine/kinds.py


class LauncherError(Exception):
    """The engine could not be fetched, started, found or stopped: one line saying why."""


@dataclass(frozen=True)
class Settings:
    """One engine home and how to run it. ``from_env`` reads the variables above."""

    home: Path = Path(DEFAULT_HOME)
    cache: Path = field(default_factory=lambda: default_cache(os.environ))
    timeout_s: float = DEFAULT_TIMEOUT_S  # wait this long for green health
    heap: str = DEFAULT_HEAP  # -Xmx of every node
    java_home: str | None = None  # a JDK (java + javac); None: the first one found
    java_opts: tuple[str, ...] = ()  # extra JVM options for every node
    mvn_repo: str | None = None  # local Maven repository for the first download
    knn: bool = True  # load (and download if need be) the k-NN plugin
    security: bool = False  # the security plugin, TLS and users (a home of its own)
    kind: str = DEFAULT_KIND  # which engine (kinds.KINDS): opensearch-2, opensearch-3, ...
    src: Path | None = None  # its pom.xml and EngineNode.java; None: the kind's own

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The settings the environment gives (``os.environ`` by default); keyword
        arguments override single fields (``home=``, ``knn=``, ``heap=`` ...)."""
        env = os.environ if env is None else env
        raw_timeout = env.get(TIMEOUT_ENV) or str(DEFAULT_TIMEOUT_S)
        try:
            timeout_s = float(raw_timeout)
        except ValueError:
            raise LauncherError(
                f"{TIMEOUT_ENV} must be a number of seconds: {raw_timeout!r}"
            ) from None
        settings = cls(
            home=Path(env.get(HOME_ENV) or DEFAULT_HOME),
            cache=default_cache(env),
            timeout_s=timeout_s,
            heap=env.get(HEAP_ENV) or DEFAULT_HEAP,
            java_home=env.get(JAVA_HOME_ENV) or None,
            java_opts=tuple((env.get(JAVA_OPTS_ENV) or "").split()),
            mvn_repo=env.get(MVN_REPO_ENV) or None,
            knn=knn_enabled(env.get(KNN_ENV)),
            security=security_enabled(env.get(SECURITY_ENV)),
            kind=(env.get(KIND_ENV) or DEFAULT_KIND).strip().lower(),
        )
        return replace(settings, **overrides)


def default_cache(env: Mapping[str, str]) -> Path:
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV])
    return Path(env.get("HOME") or "/root") / ".cache" / "reindex-fsm" / "engine"


def knn_enabled(value: str | None) -> bool:
    """``REINDEX_FSM_ENGINE_KNN``: 0, false, no or off turn the k-NN plugin off."""
    return (value or "1").strip().lower() not in ("0", "false", "no", "off")


def security_enabled(value: str | None) -> bool:
    """``REINDEX_FSM_ENGINE_SECURITY``: 1, true, yes or on start the engine secured."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def initial_heap(heap: str) -> str:
    """-Xms: 512m, or the maximum when that is given in megabytes and is less."""
    if heap[:-1].isdigit() and heap[-1:] in ("m", "M") and int(heap[:-1]) < 512:
        return heap
    return "512m"
