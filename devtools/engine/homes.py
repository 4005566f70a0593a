"""The engine home of a kind: the one place that picks the launcher class for
``Settings.kind`` (``REINDEX_FSM_ENGINE_KIND``; the kinds are in :mod:`.kinds`)."""

from __future__ import annotations

from .cluster import EngineHome
from .elasticsearch import ElasticsearchHome
from .kinds import kind_of
from .settings import Settings

__all__ = ["engine_home"]


def engine_home(settings: Settings) -> EngineHome:
    """The engine home of ``settings``, run by the launcher of its kind: an Elasticsearch
    distribution for ``elasticsearch-7``, the classpath launcher otherwise."""
    if kind_of(settings.kind).launcher == "distribution":
        return ElasticsearchHome(settings)
    return EngineHome(settings)
