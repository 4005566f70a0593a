"""Reindex tasks relocated on the fake, as Elasticsearch 9.5+ moves them: a graceful
shutdown of a task's node hands it to another node, where it resumes under a new task ID.

At the Engine protocol a relocation changes nothing: the task is still known by the ID
it was started with (an adapter follows it through the reindex management API). What
changes is the REST API the contract server answers: the Tasks API knows the task only
by its new ID, and forgets the old one."""

from __future__ import annotations

from .state import FakeCore

RELOCATION_SINCE = (9, 5)


class FakeRelocation(FakeCore):
    @property
    def relocated(self) -> dict[str, str]:
        """The ID each relocated task runs under now, by the ID it was started with."""
        return self.__dict__.setdefault("_relocated", {})

    # -- test controls ------------------------------------------------------------------
    def relocate_task(self, task_id: str) -> str:
        """Move a running task to another node (Elasticsearch 9.5+ only); its new ID."""
        info = self._info
        if info.flavor != "elasticsearch" or info.major_minor < RELOCATION_SINCE:
            raise AssertionError(f"{info.flavor} {info.version} does not relocate tasks")
        task = self.tasks[task_id]
        if task.completed or task.vanished:
            raise AssertionError(f"task {task_id} is not running")
        node = f"fake-node-{len(self.relocated) + 2}"
        self.relocated[task_id] = new_id = f"{node}:{next(self._task_ids)}"
        return new_id

    def current_task_id(self, task_id: str) -> str:
        """The ID the task started as ``task_id`` runs under now (no engine call)."""
        return self.relocated.get(task_id, task_id)

    def original_task_id(self, any_id: str) -> str | None:
        """The ID a task was started with, from that ID or the one it runs under now; None
        when it is the old ID of a relocated task (the Tasks API forgot it)."""
        if any_id in self.relocated:
            return None
        return next((old for old, new in self.relocated.items() if new == any_id), any_id)
