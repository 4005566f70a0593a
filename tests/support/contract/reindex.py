"""The reindex API, and a reindex task's counts as the engines write them.

``POST _reindex`` starts the fake's task; with ``wait_for_completion=false`` the answer
is the task's ID, otherwise the finished task's response (and, as the engines do for a
request that waited, no result is kept under ``GET _tasks/<id>``). The counts in a task
status and in a task response are the fake's own (``created``, ``updated``, ``deleted``,
``version_conflicts``, ``noops``), in the order and with the fields of the engines'
``BulkByScrollTask.Status`` and ``BulkByScrollResponse`` (the human-readable
``throttled``/``throttled_until`` only with ``?human``, which the adapters never ask).
"""

from __future__ import annotations

import copy
from typing import Any

from reindex_fsm.engine.base import ReindexRequest
from reindex_fsm.errors import EngineUnreachable
from reindex_fsm.testing.fake import FakeEngine, FakeTask

from .wire import Answer, Call, Family, Route, Unsupported


def rps_value(rps: float | None) -> float:
    return -1.0 if rps is None or rps == float("inf") or rps <= 0 else float(rps)


def status_body(fake: FakeEngine, task: FakeTask) -> dict[str, Any]:
    """A running or finished task's ``status`` (BulkByScrollTask.Status)."""
    counts = fake.status_of(task)
    status: dict[str, Any] = {
        "total": counts.total,
        "updated": counts.updated,
        "created": counts.created,
        "deleted": counts.deleted,
        "batches": task.polls,
        "version_conflicts": counts.version_conflicts,
        "noops": counts.noops,
        "retries": {"bulk": 0, "search": 0},
        "throttled_millis": 0,
        "requests_per_second": rps_value(task.rps),
    }
    if task.cancelled:
        status["canceled"] = "by user request"
    status["throttled_until_millis"] = 0
    return status


def response_body(fake: FakeEngine, task: FakeTask) -> dict[str, Any]:
    """A finished task's ``response`` (BulkByScrollResponse): took, timed_out, the status
    fields, the failures (each with its index and HTTP status)."""
    return {
        "took": 500 * task.polls,
        "timed_out": False,
        **status_body(fake, task),
        "failures": [
            {
                "index": task.request.dest,
                **copy.deepcopy(f),
                "status": 409
                if (f.get("cause") or {}).get("type") == "version_conflict_engine_exception"
                else 400,
            }
            for f in task.failures
        ],
    }


class ReindexApi(Family):
    """POST _reindex."""

    def reindex_routes(self) -> list[Route]:
        return [("POST", ("_reindex",), self._start_reindex)]

    def _start_reindex(self, call: Call) -> Answer:
        wait = call.query.get("wait_for_completion", "true") != "false"
        body = self._body(call)
        source, dest = body.get("source") or {}, body.get("dest") or {}
        if not isinstance(source.get("index"), str) or not set(source) <= {
            "index",
            "query",
            "size",
        }:
            raise Unsupported(f"reindex source {source!r} (one index, a query, a batch size)")
        if "size" in body or "max_docs" in body:  # the run never caps the documents copied
            raise Unsupported(f"reindex with a top-level size or max_docs: {body!r}")
        batch = source.get("size")
        if batch is not None:
            window = int(
                self.fake._index(source["index"]).settings.get("index.max_result_window") or 10_000
            )
            if isinstance(batch, bool) or not isinstance(batch, int) or not 0 < batch <= window:
                # the engines refuse it when the task's first scroll starts; a run must not
                # send one (the plan bounds it by the source's max_result_window)
                raise Unsupported(f"reindex source.size {batch!r} (1..{window})")
        slices = call.query.get("slices", "1")
        rps = float(call.query.get("requests_per_second", "-1"))
        request = ReindexRequest(
            source=source["index"],
            dest=dest["index"],
            opaque_id=call.headers.get("x-opaque-id", ""),
            op_type=dest.get("op_type", "index"),
            conflicts=body.get("conflicts", "abort"),
            slices=int(slices) if slices.isdigit() else slices,
            requests_per_second=None if rps <= 0 else rps,
            extra={
                **{
                    k: v
                    for k, v in body.items()
                    if k not in ("source", "dest", "conflicts", "script")
                },
                **({"source": source} if "query" in source else {}),
            },
            pipeline=dest.get("pipeline"),
            script=body.get("script"),
            batch_size=batch,
        )
        task_id = self.fake.start_reindex(request)
        if not wait:
            return 200, {"task": task_id}
        return 200, self._wait_for(self.fake.tasks[task_id])

    def _wait_for(self, task: FakeTask) -> dict[str, Any]:
        """Run ``task`` to its end (unrecorded polls) and answer its response."""
        while not task.completed:
            pending = len(task.pending)
            self.fake.advance(task.task_id)
            if task.vanished:  # the node was lost while the request waited
                raise EngineUnreachable(self.fake.url, "the node running the reindex left")
            if not task.completed and len(task.pending) == pending:
                raise Unsupported(f"_reindex waiting on {task.task_id}, which never progresses")
        answer = response_body(self.fake, task)
        task.vanished = True  # a request that waited keeps no result in the tasks API
        return answer
