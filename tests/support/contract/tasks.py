"""The tasks API: a reindex task polled (it progresses as polled), listed, cancelled,
rethrottled; a finished task's stored result deleted, as each flavor allows.

Elasticsearch 9.5+ also has the reindex management API (``GET _reindex[/{id}]``,
``POST _reindex/{id}/_cancel``), which follows a task relocated to another node
(:meth:`FakeEngine.relocate_task`) by the ID it was started with; the Tasks API knows a
relocated task only by its new ID, and answers 404 for the old one."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from reindex_fsm.errors import EngineError, TaskNotFound
from reindex_fsm.testing.fake import FakeTask

from .reindex import response_body, status_body
from .wire import START_MILLIS, Answer, ApiError, Call, Family, Route, Unsupported, valid_task_id

REINDEX_ACTION = "indices:data/write/reindex"
REINDEX_MANAGEMENT_SINCE = (9, 5)


def _major_minor(version: str) -> tuple[int, int]:
    major, _, rest = version.partition(".")
    return int(major), int(rest.partition(".")[0] or 0)


class TaskApi(Family):
    """GET _tasks[/{id}], _cancel, _rethrottle, DELETE _tasks/{id}, DELETE .tasks/_doc/{id}."""

    @property
    def reindex_management(self) -> bool:
        """Elasticsearch 9.5+: the reindex management API, and tasks that relocate."""
        return self.flavor == "elasticsearch" and (
            _major_minor(self.version) >= REINDEX_MANAGEMENT_SINCE
        )

    def task_routes(self) -> list[Route]:
        management: list[Route] = [
            ("GET", ("_reindex",), self._list_reindex),
            ("GET", ("_reindex", "{task}"), self._get_reindex),
            ("POST", ("_reindex", "{task}", "_cancel"), self._cancel_reindex),
        ]
        return [
            *(management if self.reindex_management else []),
            ("GET", ("_tasks",), self._list_tasks),
            ("GET", ("_tasks", "{task}"), self._get_task),
            ("POST", ("_tasks", "{task}", "_cancel"), self._cancel_task),
            ("POST", ("_reindex", "{task}", "_rethrottle"), self._rethrottle),
            *(
                [("DELETE", ("_tasks", "{task}"), self._delete_task_api)]
                if self.flavor == "opensearch"
                else []
            ),
            ("DELETE", (".tasks", "_doc", "{task}"), self._delete_task_doc),
        ]

    def _task_info(self, task: FakeTask, detailed: bool = True) -> dict[str, Any]:
        """The task as the Tasks API shows it: under the ID it runs under now."""
        node, _, number = self.fake.current_task_id(task.task_id).partition(":")
        info: dict[str, Any] = {
            "node": node,
            "id": int(number),
            "type": "transport",
            "action": REINDEX_ACTION,
        }
        if detailed:
            info["status"] = status_body(self.fake, task)
            info["description"] = f"reindex from [{task.request.source}] to [{task.request.dest}]"
        info.update(
            {
                "start_time_in_millis": START_MILLIS + int(number),
                "running_time_in_nanos": 500_000_000 * task.polls,
                "cancellable": True,
                "cancelled": task.cancelled,
                "headers": {"X-Opaque-Id": task.request.opaque_id}
                if task.request.opaque_id
                else {},
            }
        )
        return info

    def _nodes(self, tasks: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        nodes: dict[str, Any] = {}
        for task_id, info in tasks.items():
            node = nodes.setdefault(
                info["node"],
                {
                    "name": info["node"],
                    "transport_address": "127.0.0.1:9300",
                    "host": "127.0.0.1",
                    "ip": "127.0.0.1:9300",
                    "roles": ["data", "ingest", "master", "remote_cluster_client"],
                    "tasks": {},
                },
            )
            node["tasks"][task_id] = info
        return {"nodes": nodes}

    def _task_not_found(self, task_id: str) -> Answer:
        node = task_id.partition(":")[0]
        reason = f"task [{task_id}] is not found"
        if self.task_not_found == "404":
            raise ApiError(404, "resource_not_found_exception", reason)
        return 200, {
            "node_failures": [
                {
                    "type": "failed_node_exception",
                    "reason": f"Failed node [{node}]",
                    "node_id": node,
                    "caused_by": {"type": "resource_not_found_exception", "reason": reason},
                }
            ],
            "nodes": {},
        }

    def _get_task(self, call: Call) -> Answer:
        asked = valid_task_id(call.params["task"])
        task_id = self.fake.original_task_id(asked)  # None: relocated away from that ID
        if task_id is None or self.fake.get_task(task_id) is None:
            raise ApiError(
                404,
                "resource_not_found_exception",
                f"task [{asked}] isn't running and hasn't stored its results",
            )
        task = self.fake.tasks[task_id]
        body: dict[str, Any] = {"completed": task.completed, "task": self._task_info(task)}
        if task.completed:
            body["response"] = response_body(self.fake, task)
        return 200, body

    def _list_tasks(self, call: Call) -> Answer:
        actions = call.query.get("actions", "*").split(",")
        if "parent_task_id" in call.query or not any(
            fnmatch.fnmatchcase(REINDEX_ACTION, a) for a in actions
        ):
            return 200, {"nodes": {}}  # the fake's tasks have no children, and are reindexes
        detailed = call.query.get("detailed") == "true"
        tasks = {
            self.fake.current_task_id(s.task_id): self._task_info(
                self.fake.tasks[s.task_id], detailed
            )
            for s in self.fake.list_reindex_tasks(None)
        }
        group_by = call.query.get("group_by", "nodes")
        if group_by == "none":
            return 200, {"tasks": list(tasks.values())}
        if group_by == "parents":
            return 200, {"tasks": tasks}
        return 200, self._nodes(tasks)

    def _cancel_task(self, call: Call) -> Answer:
        asked = valid_task_id(call.params["task"])
        task_id = self.fake.original_task_id(asked)
        if task_id is None:
            return self._task_not_found(asked)
        try:
            self.fake.cancel_task(task_id)
        except EngineError as exc:
            if exc.status != 404:
                raise
            return self._task_not_found(task_id)
        return 200, self._nodes({asked: self._task_info(self.fake.tasks[task_id])})

    def _rethrottle(self, call: Call) -> Answer:
        task_id = self._followed(valid_task_id(call.params["task"]))
        if "requests_per_second" not in call.query:
            raise ApiError(400, "action_request_validation_exception", "requests_per_second set")
        rps = float(call.query["requests_per_second"])
        try:  # recorded as the fake records it directly, found or not
            self.fake.rethrottle(task_id, float("inf") if rps <= 0 else rps)
        except TaskNotFound:
            return self._task_not_found(task_id)
        current = self.fake.current_task_id(task_id)
        return 200, self._nodes({current: self._task_info(self.fake.tasks[task_id])})

    def _delete_task_api(self, call: Call) -> Answer:
        reason = (
            f"Incorrect HTTP method for uri [/_tasks/{call.params['task']}] and method "
            "[DELETE], allowed: [GET]"
        )
        return 405, {"error": reason, "status": 405}

    def _delete_task_doc(self, call: Call) -> Answer:
        task_id = valid_task_id(call.params["task"])
        if not self.fake.delete_task_result(task_id):
            return 404, {"_index": ".tasks", "_id": task_id, "result": "not_found"}
        return 200, {"_index": ".tasks", "_id": task_id, "result": "deleted"}

    # -- reindex management (Elasticsearch 9.5+) ----------------------------------------

    def _followed(self, any_id: str) -> str:
        """The ID a task was started with, from it or from the ID it runs under now (as
        rethrottle and the management API follow a relocation)."""
        if any_id in self.fake.relocated:
            return any_id
        return self.fake.original_task_id(any_id) or any_id

    def _reindex_info(self, task: FakeTask) -> dict[str, Any]:
        """GetReindexResponse's task fields: the original ID and timings, wherever it runs."""
        number = int(task.task_id.partition(":")[2])
        return {
            "id": task.task_id,
            "description": f"reindex from [{task.request.source}] to [{task.request.dest}]",
            "start_time_in_millis": START_MILLIS + number,
            "running_time_in_nanos": 500_000_000 * task.polls,
            "cancelled": task.cancelled,
            "status": status_body(self.fake, task),
        }

    def _get_reindex(self, call: Call) -> Answer:
        asked = valid_task_id(call.params["task"])
        task_id = self._followed(asked)
        if self.fake.get_task(task_id) is None:
            raise ApiError(
                404, "resource_not_found_exception", f"Reindex operation [{asked}] not found"
            )
        task = self.fake.tasks[task_id]
        body: dict[str, Any] = {"completed": task.completed, **self._reindex_info(task)}
        if task.completed:
            body["response"] = response_body(self.fake, task)
        return 200, body

    def _cancel_reindex(self, call: Call) -> Answer:
        asked = valid_task_id(call.params["task"])
        if call.query.get("wait_for_completion", "true") != "false":
            raise Unsupported("a cancel that waits for the task to stop")
        try:
            self.fake.cancel_task(self._followed(asked))
        except EngineError as exc:
            if exc.status != 404:
                raise
            raise ApiError(
                404,
                "resource_not_found_exception",
                f"reindex task [{asked}] either not found or completed",
            ) from exc
        return 200, {"acknowledged": True}

    def _list_reindex(self, call: Call) -> Answer:
        running = [self.fake.tasks[s.task_id] for s in self.fake.list_reindex_tasks(None)]
        return 200, {"reindex": [self._reindex_info(t) for t in running]}
