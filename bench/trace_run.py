"""A trace of one whole ``reindex-fsm start --alias A --verify --force`` process: every
engine request, every sleep, every state-database commit, and where the time goes
before, during and after the copy.

On a real engine (REINDEX_FSM_ENGINE_URL, else a local one from scripts/engine.sh) a
fresh sample of N documents (reindex_fsm.testing.sample) is put behind an alias; each
repeat runs the CLI in a child process of its own (process start-up included), with
hooks installed before the package is imported:

- engine requests: the clients' own per-request hooks (opensearch-py's
  ``Connection.log_request_success`` / ``log_request_fail``, which the client calls with
  the status and the duration it measured; elastic_transport's ``Transport.perform_request``
  answer, which carries both), each with its method, path, start offset, duration,
  status, thread and the tool's frames that sent it;
- waits: ``time.sleep`` (the tool's injected sleep is ``time.sleep`` by default), with
  the frames that slept and what was asked;
- state database: SQLAlchemy's DBAPI ``do_begin``/``do_commit`` (each commit's duration,
  an fsync on SQLite) and the statements in between (``before/after_cursor_execute``).

Offsets are seconds from the moment the parent spawned the child. The summary splits
the process into three phases: before the copy (spawn to the ``POST _reindex``), the
copy (to the end of the task poll that saw it completed) and after (to the exit), with
the requests, waits and commits of each, what is left (Python: imports, start-up,
rendering), the copy task's own running time (from its final status) and the fixed
cost: the whole process minus that running time (and that cost without the start-up,
the time to the first request, which the machine's load moves most). ``--plain`` also
runs the same command without hooks, alternating, so that the hooks' own cost shows.
``--variant NAME=FOLDER`` traces the package of another folder (an earlier commit's
``git archive``), alternating with the others in each repeat, so that a before and an
after are measured side by side under the same load.

    git archive 6275e7a reindex_fsm | tar -x -C /tmp/before
    python bench/trace_run.py --docs 20000 --repeats 3 --label before-after \
        --variant before=/tmp/before --variant after=installed
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ALIAS = "trace-documents"
SOURCE = "trace-documents-src"
RESULTS = Path(__file__).resolve().parent / "results"
CHILD_FLAG = "--child"
T0_ENV = "REINDEX_FSM_TRACE_T0"
# The frames of these modules are the plumbing between a step and the request or sleep it
# made: the step that asked is named instead.
_PLUMBING = ("/reindex_fsm/engine/", "/reindex_fsm/steps/poll.py")


# -- the child: hooks, then the CLI ------------------------------------------------------------


def _frames(limit: int = 4) -> list[str]:
    """The package's frames (innermost first) that led here, plumbing left out."""
    out: list[str] = []
    frame = sys._getframe(2)
    while frame is not None and len(out) < limit:
        name = frame.f_code.co_filename
        at = name.find("/reindex_fsm/")
        if at >= 0 and not any(p in name for p in _PLUMBING):
            out.append(f"{name[at + len('/reindex_fsm/') :]}:{frame.f_code.co_name}")
        frame = frame.f_back  # type: ignore[assignment]
    return out


class Trace:
    """The events of the child process, appended from any thread."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.events: list[dict[str, Any]] = []
        self.marks: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, start: float, duration: float, **fields: Any) -> None:
        event = {
            "kind": kind,
            "start": round(start - self.t0, 4),
            "duration": round(duration, 4),
            "thread": threading.current_thread().name,
            **fields,
        }
        with self._lock:
            self.events.append(event)

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.time() - self.t0, 4)


def _task_fields(path: str, response: Any) -> dict[str, Any]:
    """What a task poll answered: completed, the counts, and the task's own times."""
    if "/_tasks/" not in path or not isinstance(response, str | bytes):
        return {}
    try:
        body = json.loads(response)
    except ValueError:
        return {}
    task = body.get("task") or {}
    status = task.get("status") or {}
    keys = ("total", "created", "updated", "deleted", "version_conflicts", "noops")
    return {
        "task": {
            "completed": bool(body.get("completed")),
            "start_time_in_millis": task.get("start_time_in_millis"),
            "running_time_in_nanos": task.get("running_time_in_nanos"),
            **{k: status.get(k) for k in keys},
        }
    }


def _request(
    trace: Trace,
    started: float,
    duration: float,
    method: str,
    path: str,
    status: int | None,
    **extra: Any,
) -> None:
    """One engine request of the traced run, with the tool frames that sent it."""
    trace.add(
        "request", started, duration, method=method, path=path, status=status, by=_frames(), **extra
    )


def _hook_opensearch(trace: Trace) -> None:
    from opensearchpy.connection.base import Connection

    success, fail = Connection.log_request_success, Connection.log_request_fail

    def log_request_success(
        self: Any,
        method: str,
        full_url: str,
        path: str,
        body: Any,
        status_code: int,
        response: Any,
        duration: float,
    ) -> None:
        _request(
            trace,
            time.time() - duration,
            duration,
            method,
            path,
            status_code,
            **_task_fields(path, response),
        )
        success(self, method, full_url, path, body, status_code, response, duration)

    def log_request_fail(
        self: Any,
        method: str,
        full_url: str,
        path: str,
        body: Any,
        duration: float,
        status_code: int | None = None,
        response: Any = None,
        exception: Exception | None = None,
    ) -> None:
        _request(
            trace,
            time.time() - duration,
            duration,
            method,
            path,
            status_code,
            error=type(exception).__name__ if exception is not None else None,
        )
        fail(self, method, full_url, path, body, duration, status_code, response, exception)

    Connection.log_request_success = log_request_success  # type: ignore[method-assign]
    Connection.log_request_fail = log_request_fail  # type: ignore[method-assign]


def _hook_elastic(trace: Trace) -> None:
    import elastic_transport

    perform = elastic_transport.Transport.perform_request

    def perform_request(self: Any, method: str, target: str, **kwargs: Any) -> Any:
        started = time.time()
        try:
            answer = perform(self, method, target, **kwargs)
        except Exception as exc:
            _request(
                trace,
                started,
                time.time() - started,
                method,
                target,
                None,
                error=type(exc).__name__,
            )
            raise
        body = answer.body
        text = json.dumps(body) if isinstance(body, dict) else None
        _request(
            trace,
            started,
            time.time() - started,
            method,
            target,
            answer.meta.status,
            **_task_fields(target.split("?")[0], text),
        )
        return answer

    elastic_transport.Transport.perform_request = perform_request  # type: ignore[method-assign]


def _hook_sleep(trace: Trace) -> None:
    real = time.sleep

    def sleep(seconds: float) -> None:
        started = time.time()
        real(seconds)
        trace.add("sleep", started, time.time() - started, asked=seconds, by=_frames())

    time.sleep = sleep


def _hook_state_db(trace: Trace) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.engine.default import DefaultDialect

    commit, begin = DefaultDialect.do_commit, DefaultDialect.do_begin

    def do_commit(self: Any, dbapi_connection: Any) -> None:
        started = time.time()
        commit(self, dbapi_connection)
        trace.add("commit", started, time.time() - started, by=_frames())

    def do_begin(self: Any, dbapi_connection: Any) -> None:
        started = time.time()
        begin(self, dbapi_connection)
        trace.add("begin", started, time.time() - started, by=_frames())

    DefaultDialect.do_commit = do_commit  # type: ignore[method-assign]
    DefaultDialect.do_begin = do_begin  # type: ignore[method-assign]

    started: dict[int, float] = {}

    def _before(_conn: Any, cursor: Any, *_args: Any) -> None:
        started[id(cursor)] = time.time()

    def _after(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        t = started.pop(id(cursor), time.time())
        verb = statement.split(None, 1)[0].upper() if statement.strip() else "?"
        trace.add("sql", t, time.time() - t, verb=verb, by=_frames(3))

    event.listen(Engine, "before_cursor_execute", _before)
    event.listen(Engine, "after_cursor_execute", _after)


class AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``then`` right after the package ``name`` is first imported."""

    def __init__(self, name: str, then: Callable[[], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        if loader is None:
            return spec
        exec_module, then = loader.exec_module, self.then

        def exec_then(module: Any) -> None:
            exec_module(module)
            then()

        loader.exec_module = exec_then  # type: ignore[method-assign]
        return spec


def child(out: str, args: list[str]) -> None:
    """Install the hooks, run the CLI with ``args`` in this process, write the trace (at
    exit, after every other exit handler: what is left is the interpreter's own end)."""
    trace = Trace(float(os.environ.get(T0_ENV) or time.time()))
    trace.mark("child_started")

    def write() -> None:
        trace.mark("exit_handlers_done")
        data = {"t0": trace.t0, "marks": trace.marks, "events": trace.events}
        Path(out).write_text(json.dumps(data))

    atexit.register(write)  # the first registered runs last
    _hook_sleep(trace)
    # each client hooked once the process imports it (not before: the import is the tool's)
    sys.meta_path.insert(0, AfterImport("opensearchpy", lambda: _hook_opensearch(trace)))
    sys.meta_path.insert(0, AfterImport("elastic_transport", lambda: _hook_elastic(trace)))
    sys.meta_path.insert(0, AfterImport("sqlalchemy", lambda: _hook_state_db(trace)))
    trace.mark("hooks_installed")
    try:
        from reindex_fsm.cli import main

        trace.mark("cli_imported")
        sys.argv = ["reindex-fsm", *args]
        main()
    finally:
        trace.mark("cli_done")


# -- the summary --------------------------------------------------------------------------------


_TASK_ID = re.compile(r"[A-Za-z0-9_-]{10,}:\d+")
_TARGET = re.compile(re.escape(ALIAS) + r"-\d[0-9a-z-]*")
_NUMBERS = re.compile(r"(if_seq_no|if_primary_term)=\d+")


def shape(path: str) -> str:
    """A request path with its run-specific names as placeholders."""
    path = _TASK_ID.sub("{task}", path)
    path = _NUMBERS.sub(r"\1={n}", path.replace(SOURCE, "{source}"))
    return _TARGET.sub("{target}", path)


def _key(event: dict[str, Any]) -> str:
    by = event.get("by") or ["?"]
    if event["kind"] == "request":
        return f"{event['method']} {shape(event['path'])} <- {by[0]}"
    return f"{event['kind']} <- {' < '.join(by[:2])}"


def _phase_of(start: float, bounds: tuple[float, float]) -> str:
    if start < bounds[0]:
        return "before_copy"
    return "copy" if start < bounds[1] else "after_copy"


def summarize(trace: dict[str, Any], whole_s: float) -> dict[str, Any]:
    """The phases of one traced process (see the module docstring); ``whole_s``: the
    process's time from spawn to exit, as the parent measured it."""
    events = trace["events"]
    main = [e for e in events if e["thread"] == "MainThread"]
    requests = [e for e in main if e["kind"] == "request"]
    started = [e for e in requests if e["method"] == "POST" and e["path"].startswith("/_reindex")]
    done = [e for e in requests if (e.get("task") or {}).get("completed")]
    if not started or not done:
        raise ValueError("no copy in the trace: no POST /_reindex, or no completed task poll")
    copy_start = started[0]["start"]
    seen = done[-1]
    copy_seen = seen["start"] + seen["duration"]
    task = seen["task"]
    running_s = (task.get("running_time_in_nanos") or 0) / 1e9
    bounds = (copy_start, copy_seen)
    spans = {
        "before_copy": copy_start,
        "copy": copy_seen - copy_start,
        "after_copy": whole_s - copy_seen,
    }
    phases: dict[str, Any] = {}
    for name, span in spans.items():
        mine = [e for e in main if _phase_of(e["start"], bounds) == name]
        by_key: dict[str, list[float]] = defaultdict(list)
        for e in mine:
            if e["kind"] != "sql":  # statements are inside their transactions' time
                by_key[_key(e)].append(e["duration"])
        totals = {
            kind: round(sum(e["duration"] for e in mine if e["kind"] == kind), 4)
            for kind in ("request", "sleep", "commit", "begin", "sql")
        }
        counted = totals["request"] + totals["sleep"] + totals["commit"] + totals["begin"]
        phases[name] = {
            "seconds": round(span, 4),
            "requests": sum(1 for e in mine if e["kind"] == "request"),
            "request_s": totals["request"],
            "sleeps": sum(1 for e in mine if e["kind"] == "sleep"),
            "sleep_s": totals["sleep"],
            "commits": sum(1 for e in mine if e["kind"] == "commit"),
            "commit_s": totals["commit"],
            "sql_statements": sum(1 for e in mine if e["kind"] == "sql"),
            "sql_s": totals["sql"],
            "other_s": round(span - counted, 4),
            "by_what": {
                k: {"n": len(v), "s": round(sum(v), 4)}
                for k, v in sorted(by_key.items(), key=lambda kv: -sum(kv[1]))
            },
        }
    task_end = None
    if task.get("start_time_in_millis") is not None:
        task_end = task["start_time_in_millis"] / 1000 + running_s
    first = min(e["start"] for e in events if e["kind"] in ("request", "sql"))
    ended = trace["marks"].get("exit_handlers_done", whole_s)
    return {
        "whole_process_s": round(whole_s, 4),
        "copy_task_running_s": round(running_s, 4),
        "fixed_cost_s": round(whole_s - running_s, 4),
        # Python's start-up and the imports, up to the first request or statement
        "start_up_s": round(first, 4),
        "fixed_cost_after_start_up_s": round(whole_s - running_s - first, 4),
        # from the last exit handler to the parent seeing the process end
        "teardown_s": round(whole_s - ended, 4),
        "marks": trace["marks"],
        "phases": phases,
        "polls": sum(1 for e in requests if shape(e["path"]).startswith("/_tasks/{task}")),
        # from the task's end (engine clock) to the poll that saw it (this host's clock)
        "seen_after_task_end_s": None
        if task_end is None
        else round(copy_seen + trace["t0"] - task_end, 4),
        "background_requests": sum(
            1 for e in events if e["kind"] == "request" and e["thread"] != "MainThread"
        ),
    }


# -- the parent: the sample, the runs, the file -------------------------------------------------


def _reset(engine: Any) -> None:
    """The alias back on the source; every other index of the trace deleted."""
    on = engine.get_alias(ALIAS)
    if SOURCE not in on:
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": ALIAS}} for i in on]
        actions.append({"add": {"index": SOURCE, "alias": ALIAS, "is_write_index": True}})
        engine.update_aliases(actions)
    body = engine.request("GET", "/_cat/indices", params={"format": "json", "h": "index"})
    for row in body:
        if row["index"].startswith(ALIAS) and row["index"] != SOURCE:
            engine.delete_index(row["index"])


def _spawn(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.time()
    env = {**env, T0_ENV: repr(t0)}
    # run from the temporary folder: a `-c` child puts its working directory first on sys.path
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, check=False, cwd=env["TRACE_CWD"]
    )
    whole = time.time() - t0
    if done.returncode != 0:
        raise SystemExit(f"{argv[-6:]} exited {done.returncode}: {done.stderr[-2000:]}")
    return whole


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-c", "from reindex_fsm.cli import main; main()", *args]


def run_traced(env: dict[str, str], args: list[str], tmp: str, i: int) -> dict[str, Any]:
    out = os.path.join(tmp, f"trace-{i}.json")
    argv = [sys.executable, os.path.abspath(__file__), CHILD_FLAG, out, "--", *args]
    whole = _spawn(argv, env)
    trace = json.loads(Path(out).read_text())
    return {"trace": trace, "summary": summarize(trace, whole)}


def _median_phases(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("seconds", "request_s", "sleep_s", "commit_s", "other_s", "requests", "commits")
    return {
        phase: {k: statistics.median(s["phases"][phase][k] for s in summaries) for k in keys}
        for phase in ("before_copy", "copy", "after_copy")
    }


def _medians(summaries: list[dict[str, Any]], plain_s: list[float]) -> dict[str, Any]:
    def median(key: str) -> float:
        return round(statistics.median(s[key] for s in summaries), 4)

    fixed = [s["fixed_cost_s"] for s in summaries]
    return {
        "median_whole_process_s": median("whole_process_s"),
        "median_copy_task_running_s": median("copy_task_running_s"),
        "median_fixed_cost_s": median("fixed_cost_s"),
        "fixed_cost_range_s": [min(fixed), max(fixed)],
        "median_start_up_s": median("start_up_s"),
        "median_fixed_cost_after_start_up_s": median("fixed_cost_after_start_up_s"),
        "median_seen_after_task_end_s": median("seen_after_task_end_s"),
        "median_teardown_s": median("teardown_s"),
        "median_plain_process_s": round(statistics.median(plain_s), 4) if plain_s else None,
        "median_phases": _median_phases(summaries),
    }


def _variant(text: str) -> tuple[str, str | None]:
    name, _, folder = text.partition("=")
    if not name or not folder:
        raise SystemExit(f"--variant {text!r}: give NAME=FOLDER (FOLDER `installed`: this one)")
    if folder != "installed" and not (Path(folder) / "reindex_fsm").is_dir():
        raise SystemExit(f"--variant {text!r}: {folder} holds no reindex_fsm package")
    return name, None if folder == "installed" else os.path.abspath(folder)


def main(argv: list[str]) -> None:
    import click

    @click.command()
    @click.option("--docs", type=int, default=20_000, show_default=True)
    @click.option("--repeats", type=int, default=3, show_default=True)
    @click.option("--label", default="run", show_default=True, help="Names the results file.")
    @click.option("--plain/--no-plain", default=True, help="Also time untraced runs, alternating.")
    @click.option("--out", type=click.Path(dir_okay=False), default=None)
    @click.option(
        "--variant",
        "variants",
        multiple=True,
        help="NAME=FOLDER: trace the reindex_fsm package of FOLDER (e.g. `git archive` of an "
        "earlier commit; `installed`: this checkout's), alternating with the others in "
        "each repeat. [default: installed=installed]",
    )
    def command(
        docs: int, repeats: int, label: str, plain: bool, out: str | None, variants: tuple[str]
    ) -> None:
        """Trace whole `reindex-fsm start --alias A --verify --force` processes."""
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _common import bench_engine

        from reindex_fsm.testing.sample import create_sample

        chosen = [_variant(v) for v in variants] or [("installed", None)]
        args = ["start", "--alias", ALIAS, "--verify", "--force"]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in chosen}
        plain_s: dict[str, list[float]] = {name: [] for name, _ in chosen}
        with bench_engine() as (url, engine), tempfile.TemporaryDirectory() as tmp:
            if not engine.index_exists(SOURCE) or engine.count(SOURCE) != docs:
                if engine.index_exists(SOURCE):
                    engine.delete_index(SOURCE)
                create_sample(engine, SOURCE, ALIAS, docs)
            _reset(engine)
            base = {
                **os.environ,
                "REINDEX_FSM_ENGINE_URL": url,
                "REINDEX_FSM_STATE_DB": f"sqlite:///{tmp}/state.db",
                "TRACE_CWD": tmp,
            }
            envs = {
                name: {**base, **({"PYTHONPATH": folder} if folder else {})}
                for name, folder in chosen
            }
            # the database made and migrated once, as an operator's is after a first run
            migrate = "import sys; from reindex_fsm.store import open_store as o; o(sys.argv[1])"
            _spawn([sys.executable, "-c", migrate, base["REINDEX_FSM_STATE_DB"]], base)
            for i in range(repeats):
                names = [name for name, _ in chosen]
                names = names[i % len(names) :] + names[: i % len(names)]
                for name in names:
                    order = ("traced", "plain") if i % 2 == 0 else ("plain", "traced")
                    for which in order if plain else ("traced",):
                        if which == "plain":
                            plain_s[name].append(_spawn(_cli(args), envs[name]))
                        else:
                            runs[name].append(run_traced(envs[name], args, tmp, i))
                        _reset(engine)
                    s = runs[name][-1]["summary"]
                    print(
                        f"repeat {i + 1} {name}: whole {s['whole_process_s']:.2f}s, copy task "
                        f"{s['copy_task_running_s']:.2f}s, fixed {s['fixed_cost_s']:.2f}s "
                        f"(start-up {s['start_up_s']:.2f}s)"
                        + (f", plain {plain_s[name][-1]:.2f}s" if plain else ""),
                        file=sys.stderr,
                    )
            info = engine.info().__dict__
        result = {
            "docs": docs,
            "repeats": repeats,
            "label": label,
            "engine": info,
            "command": "reindex-fsm " + " ".join(args),
            "state_db": "SQLite, made and migrated before the first run",
            "variants": {
                name: {
                    "code": folder or "installed",
                    **_medians([r["summary"] for r in runs[name]], plain_s[name]),
                }
                for name, folder in chosen
            },
            "runs": runs,
        }
        k = f"{docs // 1000}k" if docs % 1000 == 0 else str(docs)
        path = Path(out) if out else RESULTS / f"trace-{k}-{label}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
        print(f"written to {path}", file=sys.stderr)

    command(argv)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == CHILD_FLAG:
        child(sys.argv[2], sys.argv[4:])
    else:
        main(sys.argv[1:])
