"""Which launcher runs an engine home: ``Settings.kind`` (``REINDEX_FSM_ENGINE_KIND``)."""

from __future__ import annotations

from .cluster import EngineHome
from .settings import Settings


def engine_home(settings: Settings) -> EngineHome:
    """The engine home of ``settings``, run by the launcher of its kind."""
    if settings.kind == "elasticsearch-7":
        from .elasticsearch import ElasticsearchHome

        return ElasticsearchHome(settings)
    return EngineHome(settings)
