"""Reindex tasks on the fake: started, progressing as they are polled (as a
:class:`TaskScript` says), listed, cancelled, rethrottled, and their stored results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...engine.base import ReindexRequest, TaskStatus
from ...errors import EngineError, TaskNotFound
from .copying import clone
from .state import FakeCore, FakeTask


def _matches(query: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    """The two queries a run sends with ``_reindex``: match_all and a range (gte)."""
    if "match_all" in query:
        return True
    ((field_name, bounds),) = query["range"].items()
    value: Any = doc
    for part in field_name.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value is not None and value >= bounds["gte"]


class FakeTasks(FakeCore):
    # -- test controls --------------------------------------------------------
    def vanish_task(self, task_id: str) -> None:
        self.tasks[task_id].vanished = True

    def advance(self, task_id: str, polls: int = 1) -> None:
        """Let a task progress as if it had been polled ``polls`` times."""
        for _ in range(polls):
            self._progress(self.tasks[task_id])

    def status_of(self, task: FakeTask) -> TaskStatus:
        """What ``get_task`` reports of ``task`` now, without a call or a poll (the
        contract server answers the Tasks API with it)."""
        return TaskStatus(
            task_id=task.task_id,
            completed=task.completed,
            total=task.total,
            created=task.created,
            updated=task.updated,
            deleted=task.deleted,
            version_conflicts=task.version_conflicts,
            noops=task.noops,
            failures=tuple(task.failures),
            cancelled=task.cancelled,
            opaque_id=task.request.opaque_id,
            description=f"reindex from [{task.request.source}] to [{task.request.dest}]",
            running_time_s=task.polls * task.script.seconds_per_poll,
        )

    # -- Engine protocol -----------------------------------------------------------
    def start_reindex(self, request: ReindexRequest) -> str:
        self._call("start_reindex", request.source, request.dest, request.op_type)
        src = self._index(request.source)
        query = dict(request.body()["source"].get("query") or {"match_all": {}})
        pending = sorted(k for k, doc in src.docs.items() if _matches(query, doc))
        task_id = f"fake-node:{next(self._task_ids)}"
        self.tasks[task_id] = FakeTask(
            task_id=task_id,
            request=request,
            pending=pending,
            script=self.next_task_scripts.pop(0) if self.next_task_scripts else self.task_script,
            total=len(pending),
            rps=request.requests_per_second,
        )
        return task_id

    def get_task(self, task_id: str) -> TaskStatus | None:
        self._call("get_task", task_id)
        task = self.tasks.get(task_id)
        if task is None or task.vanished:
            return None
        self._progress(task)
        if task.vanished:
            return None
        return self.status_of(task)

    def list_reindex_tasks(self, opaque_id: str | None = None) -> list[TaskStatus]:
        self._call("list_reindex_tasks", opaque_id)
        return [
            self.status_of(t)
            for t in self.tasks.values()
            if not t.completed
            and not t.vanished
            and (opaque_id is None or t.request.opaque_id == opaque_id)
        ]

    def cancel_task(self, task_id: str) -> None:
        self._call("cancel_task", task_id)
        task = self.tasks.get(task_id)
        if task is None or task.vanished or task.completed:
            raise EngineError(f"task [{task_id}] is not running", status=404)
        task.cancelled = True

    def rethrottle(self, task_id: str, requests_per_second: float) -> None:
        self._call("rethrottle", task_id, requests_per_second)
        task = self.tasks.get(task_id)
        if task is None or task.vanished or task.completed:
            raise TaskNotFound(task_id)
        task.rps = requests_per_second

    def delete_task_result(self, task_id: str) -> bool:
        self._call("delete_task_result", task_id)
        task = self.tasks.get(task_id)
        if task is None or task.vanished:
            return False
        if not task.completed:
            raise EngineError(f"task [{task_id}] is still running", status=409)
        if not self.task_results_deletable:
            raise EngineError(
                "security_exception: action [indices:data/write/delete] is unauthorized "
                "on restricted indices [.tasks]",
                status=403,
            )
        task.vanished = True  # its stored result is gone: GET _tasks/<id> is a 404 now
        return True

    # -- one batch of a task ---------------------------------------------------------
    def _progress(self, task: FakeTask) -> None:
        if task.completed or task.vanished:
            return
        task.polls += 1
        script = task.script
        if task.cancelled:
            task.completed = True
            return
        if script.vanish_after_polls is not None and task.polls > script.vanish_after_polls:
            task.vanished = True
            return
        if script.fail_after_polls is not None and task.polls > script.fail_after_polls:
            task.failures.append(
                {
                    "id": task.pending[0] if task.pending else None,
                    "cause": {
                        "type": "mapper_parsing_exception",
                        "reason": "injected bulk failure",
                    },
                }
            )
            task.completed = True
            return
        if script.stall:
            return
        src = self.indices.get(task.request.source)
        dest = self.indices.get(task.request.dest)
        if dest is None:  # a real engine would auto-create it; the tool must never let it
            if not self.auto_create_missing_dest:
                raise AssertionError(f"reindex into missing index {task.request.dest}")
            dest = self.add_index(task.request.dest, {}, mappings={"properties": {}})
        for _ in range(min(script.docs_per_poll, len(task.pending))):
            doc_id = task.pending.pop(0)
            if src is None or doc_id not in src.docs:
                continue
            if doc_id in dest.docs and task.request.op_type == "create":
                task.version_conflicts += 1
                if task.request.conflicts == "abort":
                    task.failures.append(
                        {"id": doc_id, "cause": {"type": "version_conflict_engine_exception"}}
                    )
                    task.completed = True
                    return
                continue
            if doc_id in dest.docs:
                task.updated += 1
            else:
                task.created += 1
            dest.docs[doc_id] = clone(src.docs[doc_id])
        if not task.pending:
            task.completed = True
