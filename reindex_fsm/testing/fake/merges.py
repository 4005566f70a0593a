"""Force-merges on the fake: each is recorded with the settings the index had when it was
asked for (a vector target's graph is built by the merge only once its threshold is
restored), and done at once (no task to poll)."""

from __future__ import annotations

from typing import Any

from .state import FakeCore


class FakeMerges(FakeCore):
    @property
    def force_merges(self) -> list[tuple[str, int, dict[str, Any]]]:
        """``(index, max_num_segments, the index's settings then)`` of each force-merge."""
        return self.__dict__.setdefault("_force_merges", [])

    def force_merge(self, index: str, max_num_segments: int) -> str | None:
        self._call("force_merge", index, max_num_segments)
        settings = dict(self._index(index).settings)
        self.force_merges.append((index, max_num_segments, settings))
        return None
