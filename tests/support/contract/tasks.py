"""The tasks API: a reindex task polled (it progresses as polled), listed, cancelled,
rethrottled; a finished task's stored result deleted, as each flavor allows."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from reindex_fsm.errors import EngineError, TaskNotFound
from reindex_fsm.testing.fake import FakeTask

from .reindex import response_body, status_body
from .wire import START_MILLIS, Answer, ApiError, Call, Family, Route, valid_task_id

REINDEX_ACTION = "indices:data/write/reindex"


class TaskApi(Family):
    """GET _tasks[/{id}], _cancel, _rethrottle, DELETE _tasks/{id}, DELETE .tasks/_doc/{id}."""

    def task_routes(self) -> list[Route]:
        return [
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
        node, _, number = task.task_id.partition(":")
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
        task_id = valid_task_id(call.params["task"])
        if self.fake.get_task(task_id) is None:
            raise ApiError(
                404,
                "resource_not_found_exception",
                f"task [{task_id}] isn't running and hasn't stored its results",
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
            s.task_id: self._task_info(self.fake.tasks[s.task_id], detailed)
            for s in self.fake.list_reindex_tasks(None)
        }
        group_by = call.query.get("group_by", "nodes")
        if group_by == "none":
            return 200, {"tasks": list(tasks.values())}
        if group_by == "parents":
            return 200, {"tasks": tasks}
        return 200, self._nodes(tasks)

    def _cancel_task(self, call: Call) -> Answer:
        task_id = valid_task_id(call.params["task"])
        try:
            self.fake.cancel_task(task_id)
        except EngineError as exc:
            if exc.status != 404:
                raise
            return self._task_not_found(task_id)
        return 200, self._nodes({task_id: self._task_info(self.fake.tasks[task_id])})

    def _rethrottle(self, call: Call) -> Answer:
        task_id = valid_task_id(call.params["task"])
        if "requests_per_second" not in call.query:
            raise ApiError(400, "action_request_validation_exception", "requests_per_second set")
        rps = float(call.query["requests_per_second"])
        try:  # recorded as the fake records it directly, found or not
            self.fake.rethrottle(task_id, float("inf") if rps <= 0 else rps)
        except TaskNotFound:
            return self._task_not_found(task_id)
        return 200, self._nodes({task_id: self._task_info(self.fake.tasks[task_id])})

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
