"""An in-memory engine implementing the Engine protocol, for tests.

It records the ordered calls, lets a test script how reindex tasks progress
(documents copied per poll, failures, cancellation, a task that vanishes), and
injects faults (an error on the Nth call of a method, connection refused).
The cluster outlives a simulated process death: a test keeps the same
FakeEngine, rebuilds everything else from the database, and resumes.

By topic: :mod:`.state` (the cluster's state, call recording, faults, test controls),
:mod:`.cluster` (info, health, plugins, pipelines, preflight reads, privileges),
:mod:`.indices` (indices, aliases, write blocks), :mod:`.documents` (bulk, scans,
searches, points in time, mget), :mod:`.tasks` (reindex tasks), :mod:`.lease`,
:mod:`.data_streams` (data streams, aliases over them), :mod:`.relocation` (a task moved
to another node, Elasticsearch 9.5+), :mod:`.lifecycle` (ILM and the ISM plugin),
:mod:`.templates` (index templates, applied by ``create_index``), :mod:`.remote`
(a ``_reindex`` from another fake cluster), :mod:`.merges` (force-merges).
"""

from __future__ import annotations

from .cluster import FakeCluster
from .data_streams import FakeDataStreams
from .documents import FakeDocuments
from .indices import FakeIndices
from .lease import FakeLease
from .lifecycle import FakeLifecycle
from .merges import FakeMerges
from .relocation import FakeRelocation
from .remote import FakeRemote
from .state import Call, Docs, FakeIndex, FakeTask, TaskScript
from .tasks import FakeTasks
from .templates import FakeTemplates

__all__ = ["Call", "Docs", "FakeEngine", "FakeIndex", "FakeTask", "TaskScript"]


class FakeEngine(
    FakeRemote,  # another cluster as the source
    FakeLifecycle,
    FakeDataStreams,
    FakeCluster,
    FakeTemplates,
    FakeIndices,
    FakeDocuments,
    FakeTasks,
    FakeLease,
    FakeRelocation,
    FakeMerges,  # force-merges (vector targets' graph build)
):
    """The whole fake cluster: every Engine protocol method, by topic in its mixins."""
