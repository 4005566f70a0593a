"""Data streams given as ``--alias``: refused before anything is written, in one line.

reindex-fsm rebuilds the one concrete index behind an alias and moves the alias. A data
stream is not that: its backing indices cannot carry an alias (both engines refuse one),
writes go to its write index only with ``op_type=create``, and it is rebuilt by rolling
it over or by copying its backing indices into a new stream. So a data stream's name, an
alias whose members are data streams (Elasticsearch 7.14+; OpenSearch has none) and a
backing index (``.ds-*``) are each refused with what to do instead.

Planning learns of it where the alias lookups fail as they do for such a name (alias
not found, a concrete index, several members, a member that is no index): only then is
the engine asked what the name is (``Engine.data_stream_use``), so a run on an ordinary
alias makes no extra request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..engine.base import DataStreamUse, Engine
from ..errors import (
    AliasNotFound,
    AliasOnSeveralIndices,
    IndexNotFound,
    NotAnAlias,
    ReindexFsmError,
    UsageError,
)

_SHOWN = 3  # backing indices named in the message


def _listed(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


class DataStreamRefused(UsageError):
    """``--alias`` names a data stream, an alias of data streams or a backing index."""

    def __init__(self, use: DataStreamUse) -> None:
        streams = ", ".join(repr(s) for s in use.data_streams)
        if use.kind == "data_stream":
            what = f"{use.name!r} is a data stream, not an alias"
            if use.backing_indices:
                what += f" (backing indices {_listed(use.backing_indices)})"
        elif use.kind == "backing_index":
            what = f"{use.name!r} is a backing index of data stream {streams}, not an alias"
        else:
            what = f"alias {use.name!r} points at data stream(s) {streams}, not at one index"
        rollover = use.data_streams[0] if len(use.data_streams) == 1 else "<stream>"
        super().__init__(
            f"{what}: reindex-fsm moves an alias from one index to another, and a data "
            "stream's backing indices cannot carry an alias",
            hint="to change a data stream's mappings or settings, update its index template "
            f"and roll it over (POST {rollover}/_rollover), or copy it into a new data stream "
            "with _reindex and op_type=create; nothing was done",
        )
        self.use = use


@contextmanager
def refused(engine: Engine, alias: str) -> Iterator[None]:
    """Turn a failed alias lookup into :class:`DataStreamRefused` when ``alias`` is a
    data stream, an alias of data streams or a backing index; any other failure stays
    as it was (and so does it when the engine cannot say)."""
    try:
        yield
    except (AliasNotFound, NotAnAlias, AliasOnSeveralIndices, IndexNotFound) as exc:
        try:
            use = engine.data_stream_use(alias)
        except ReindexFsmError:
            use = None
        if use is None:
            raise
        raise DataStreamRefused(use) from exc
