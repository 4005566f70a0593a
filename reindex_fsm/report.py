"""A run's picture, from the state DB only (no engine): the timeline of its transitions,
the time spent in each state, its task status and error, and the state diagram (Mermaid,
drawn from the machine's table by transitions' own diagram support, with the path taken
and the current state highlighted), and the same as one self-contained HTML file."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .machine import TERMINAL, TRANSITIONS, State, retry_state
from .store import EventRecord, RunRecord


@dataclass(frozen=True)
class Step:
    """One state change, and how long the run stayed in the state it entered."""

    event: EventRecord
    # None: entered a terminal state (the run stays there).
    seconds: float | None
    ongoing: bool  # the run is still in this state (seconds counts up to now)

    @property
    def from_state(self) -> str | None:
        return self.event.from_state

    @property
    def to_state(self) -> str:
        return self.event.to_state

    def as_dict(self) -> dict[str, Any]:
        return {**self.event.as_dict(), "seconds": self.seconds, "ongoing": self.ongoing}


def result(record: RunRecord) -> str:
    """One word or two for the history table: how the run ended, or that it has not."""
    if record.state is State.FAILED:
        return f"failed ({record.error_kind})" if record.error_kind else "failed"
    if record.state in TERMINAL:
        return record.state.value.lower().replace("_", " ")
    if record.state is State.ABORTING:
        return "aborting"
    if record.state is State.VERIFIED:
        return "waiting for swap"
    return "in progress"


def writes_blocked(record: RunRecord) -> bool:
    """The run holds a write block on its source (writers of the alias get 403)."""
    from .steps import views  # here: history, which never asks, does not load it

    return views.is_blocked(record.write_policy)


def next_steps(record: RunRecord) -> list[str]:
    """What an operator reading an unfinished run can do next, one sentence each: whether
    writers are kept out, and the commands that end the run. Empty for a finished run."""
    if record.finished:
        return []
    if record.state is State.VERIFIED:  # at the gate before the swap
        from .steps import views

        return views.next_steps(record)
    held = record.write_policy or {}
    if writes_blocked(record):
        blocked = (
            f"writes to {held.get('index') or record.source_index} are still BLOCKED by this "
            "run: writers of the alias get HTTP 403 until it is resumed or aborted"
        )
    else:
        blocked = f"writes to {record.source_index} are not blocked by this run"
    retried = retry_state(record.failed_from)  # a swap refused at the gate: the verification
    where = retried.value if retried else record.state.value
    retry = (
        f"`reindex-fsm resume {record.id}` retries from {where}"
        if record.state is State.FAILED
        else f"`reindex-fsm resume {record.id}` continues it (if its process is gone)"
    )
    return [
        blocked,
        retry,
        f"`reindex-fsm abort {record.id}` gives up: deletes the target "
        f"{record.target_index}, leaves the alias and lifts the block",
    ]


def copied(progress: dict[str, Any] | None) -> int | None:
    """Documents the copy had written at its last stored progress (None: none stored)."""
    from .steps.copy.registry import documents_copied  # history: only for a copy under way

    return documents_copied(progress)


def documents_cell(row: dict[str, Any]) -> str:
    """history's documents column: target/source once counted; while a run copies, what its
    last stored progress says (``12000/20000 copied``)."""
    source = row.get("source_count")
    source_text = "-" if source is None else str(source)
    if row.get("target_count") is not None:
        return f"{row['target_count']}/{source_text}"
    done = copied(row.get("progress"))
    if done is None:
        return f"-/{source_text}"
    return f"{done}/{source_text} copied"


def duration_s(record: RunRecord, now: datetime) -> float:
    """From the plan to the end (or to ``now`` for an unfinished run)."""
    end = record.finished_at or (record.updated_at if record.finished else now)
    return max(0.0, (end - record.created_at).total_seconds())


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s"


def timeline(events: list[EventRecord], now: datetime) -> list[Step]:
    """The state changes in order (checkpoint events, which keep the state, are left out),
    each with the time until the next change."""
    changes = [e for e in events if e.from_state != e.to_state]
    steps = []
    for i, e in enumerate(changes):
        ongoing = False
        if i + 1 < len(changes):
            seconds: float | None = (changes[i + 1].at - e.at).total_seconds()
        elif e.to_state in TERMINAL:
            seconds = None
        else:
            seconds, ongoing = (now - e.at).total_seconds(), True
        steps.append(Step(e, _positive(seconds), ongoing))
    return steps


def _positive(seconds: float | None) -> float | None:
    return None if seconds is None else max(0.0, seconds)


def time_in_state(steps: list[Step]) -> dict[str, float]:
    """Total seconds per state entered (a state entered twice, e.g. after a retry, sums)."""
    totals: dict[str, float] = {}
    for s in steps:
        if s.seconds is not None:
            totals[s.to_state] = totals.get(s.to_state, 0.0) + s.seconds
    return totals


def path_taken(steps: list[Step]) -> list[tuple[str, str]]:
    """The transitions the run went through, as (source, destination) pairs."""
    return [(s.from_state, s.to_state) for s in steps if s.from_state]


class _DiagramModel:
    """The model the diagram machine attaches to (a run's own model is never needed)."""


def mermaid(current: State, path: list[tuple[str, str]]) -> str:
    """The machine's state diagram as Mermaid ``stateDiagram-v2`` text, drawn by
    transitions' GraphMachine from :data:`TRANSITIONS`: the states the run went through
    in class ``s_previous``, the current one in ``s_active``."""
    from transitions.extensions.diagrams import GraphMachine  # only show draws it

    model = _DiagramModel()
    graph_machine = GraphMachine(
        model=model,
        states=[s.value for s in State],
        transitions=[
            {"trigger": t["trigger"], "source": t["source"], "dest": t["dest"]} for t in TRANSITIONS
        ],
        initial=State.PLANNED.value,
        auto_transitions=False,
        graph_engine="mermaid",
        title="reindex-fsm run",
    )
    graph = graph_machine.model_graphs[id(model)]
    for src, dst in path:
        graph.set_previous_transition(src, dst)
    graph.set_node_style(State.PLANNED.value, "previous" if path else "active")
    graph.set_node_style(current.value, "active")
    source = str(graph.get_graph(title="reindex-fsm run").draw(None))
    # Mermaid's keyword is `class`; transitions writes `Class`.
    return "\n".join(
        line.replace("Class ", "class ", 1) if line.lstrip().startswith("Class ") else line
        for line in source.splitlines()
    )


def build(record: RunRecord, events: list[EventRecord], now: datetime) -> dict[str, Any]:
    """Everything `show` prints, as plain data (the JSON of `show --json`)."""
    from .steps import views

    steps = timeline(events, now)
    path = path_taken(steps)
    return {
        "result": result(record),
        "duration_s": duration_s(record, now),
        "timeline": [s.as_dict() for s in steps],
        "time_in_state": time_in_state(steps),
        "path": [steps[0].to_state, *(dst for _src, dst in path)] if steps else [],
        "task": {
            "task_id": record.task_id,
            "copy_attempts": record.copy_attempts,
            "progress": record.progress,
        },
        "failure": {
            "error": record.error,
            "error_kind": record.error_kind,
            "failed_from": record.failed_from.value if record.failed_from else None,
        },
        "writes_blocked": writes_blocked(record),
        "next_steps": next_steps(record),
        "gate": views.view(record),  # what the run verified before its swap, if it paused
        "diagram": mermaid(record.state, path),
    }


# -- the state diagram as inline SVG ------------------------------------------------------
# Where each state's box goes (column, row); the happy path on the top row.
LAYOUT: dict[State, tuple[int, int]] = {
    State.PLANNED: (0, 0),
    State.TARGET_CREATED: (1, 0),
    State.REINDEXING: (2, 0),
    State.VERIFYING: (3, 0),
    State.SWAPPED: (4, 0),
    State.VERIFIED: (4, 1),
    State.UNDONE: (5, 0),
    State.FAILED: (1, 1),
    State.ABORTING: (3, 1),
    State.ROLLED_BACK: (1, 2),
    State.CANCELLED: (3, 2),
}
_BOX_W, _BOX_H, _COL, _ROW, _MARGIN = 150, 40, 190, 130, 20


def _centre(state: str) -> tuple[float, float]:
    col, row = LAYOUT[State(state)]
    return _MARGIN + col * _COL + _BOX_W / 2, _MARGIN + row * _ROW + _BOX_H / 2


def _to_border(x: float, y: float, dx: float, dy: float) -> tuple[float, float]:
    """The point where the ray from a box's centre along (dx, dy) leaves the box."""
    scale = min(
        (_BOX_W / 2 + 4) / abs(dx) if dx else math.inf,
        (_BOX_H / 2 + 4) / abs(dy) if dy else math.inf,
    )
    return x + dx * scale, y + dy * scale


def edges() -> list[tuple[str, str, str]]:
    """(source, destination, triggers) of every arrow of the machine."""
    labels: dict[tuple[str, str], list[str]] = {}
    for t in TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for src in sources:
            names = labels.setdefault((str(src), str(t["dest"])), [])
            if t["trigger"] not in names:
                names.append(t["trigger"])
    return [(src, dst, " | ".join(names)) for (src, dst), names in labels.items()]


def svg(current: State, path: list[tuple[str, str]]) -> str:
    visited = {s for pair in path for s in pair} | {State.PLANNED.value}
    taken = set(path)
    pairs = {(src, dst) for src, dst, _ in edges()}
    parts = []
    for src, dst, label in edges():
        (x1, y1), (x2, y2) = _centre(src), _centre(dst)
        dx, dy = x2 - x1, y2 - y1
        if (dst, src) in pairs:  # two arrows between the same boxes: side by side
            norm = math.hypot(dx, dy)
            x1, y1 = x1 - dy / norm * 5, y1 + dx / norm * 5
            x2, y2 = x2 - dy / norm * 5, y2 + dx / norm * 5
        sx, sy = _to_border(x1, y1, dx, dy)
        ex, ey = _to_border(x2, y2, -dx, -dy)
        cls = "edge taken" if (src, dst) in taken else "edge"
        parts.append(
            f'<line class="{cls}" x1="{sx:.1f}" y1="{sy:.1f}" x2="{ex:.1f}" y2="{ey:.1f}" '
            f'marker-end="url(#{"arrow-taken" if (src, dst) in taken else "arrow"})">'
            f"<title>{html.escape(f'{src} -> {dst}: {label}')}</title></line>"
        )
    for state in State:
        x, y = _centre(state.value)
        cls = "active" if state is current else "visited" if state.value in visited else "idle"
        parts.append(
            f'<g class="state {cls}"><rect x="{x - _BOX_W / 2:.0f}" y="{y - _BOX_H / 2:.0f}" '
            f'width="{_BOX_W}" height="{_BOX_H}" rx="8"/>'
            f'<text x="{x:.0f}" y="{y + 5:.0f}">{html.escape(state.value)}</text></g>'
        )
    cols = max(c for c, _ in LAYOUT.values()) + 1
    rows = max(r for _, r in LAYOUT.values()) + 1
    width = 2 * _MARGIN + (cols - 1) * _COL + _BOX_W
    height = 2 * _MARGIN + (rows - 1) * _ROW + _BOX_H
    marker = (
        '<marker id="{id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="{id}"/></marker>'
    )
    return (
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="state diagram">'
        f"<defs>{marker.format(id='arrow')}{marker.format(id='arrow-taken')}</defs>"
        + "".join(parts)
        + "</svg>"
    )


# -- the HTML report ----------------------------------------------------------------------
_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 24px 0 8px; }
table { border-collapse: collapse; margin: 4px 0; }
th, td { border: 1px solid #c8c8cc; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f0f3; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 10px; font-weight: 600;
         background: #e6e6ea; }
.badge.SWAPPED { background: #c9f0d3; } .badge.FAILED { background: #f8c9c9; }
.badge.VERIFIED { background: #cfe3fb; }
.badge.ROLLED_BACK, .badge.CANCELLED, .badge.UNDONE, .badge.ABORTING { background: #fde7b0; }
.error { border-left: 4px solid #c0392b; background: #fdf0ef; padding: 8px 12px; }
pre { background: #f6f6f8; padding: 8px 12px; overflow-x: auto; font-size: 12px; }
svg .state rect { fill: #fff; stroke: #8e8e93; stroke-width: 1.5; }
svg .state.visited rect { fill: #dbeafe; stroke: #1d4ed8; }
svg .state.active rect { fill: #f4a582; stroke: #b2182b; stroke-width: 3; }
svg .state text { text-anchor: middle; font: 600 12px system-ui, sans-serif; fill: #1d1d1f; }
svg .edge { stroke: #b0b0b8; stroke-width: 1.2; }
svg .edge.taken { stroke: #1d4ed8; stroke-width: 3; }
svg path.arrow { fill: #b0b0b8; } svg path.arrow-taken { fill: #1d4ed8; }
"""


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "<td>-</td>"
    if isinstance(value, dict | list):
        value = json.dumps(value, default=str, sort_keys=True)
    return f"<td>{html.escape(str(value))}</td>"


def _kv_table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th>{_cell(v)}</tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else None


def html_report(record: RunRecord, events: list[EventRecord], now: datetime) -> str:
    """The run as one self-contained HTML page: no script, no external resource."""
    data = build(record, events, now)
    steps = timeline(events, now)
    esc = html.escape
    documents = (
        f"{record.target_count if record.target_count is not None else '-'}"
        f"/{record.source_count if record.source_count is not None else '-'}"
    )
    overview = _kv_table(
        [
            ("run", record.id),
            ("alias", record.alias),
            ("source -> target", f"{record.source_index} -> {record.target_index}"),
            ("state", record.state.value),
            ("result", data["result"]),
            ("started", _iso(record.created_at)),
            ("finished", _iso(record.finished_at)),
            ("duration", human_seconds(data["duration_s"])),
            ("documents (target/source)", documents),
            ("engine", f"{record.engine_flavor} {record.engine_version}"),
            ("engine url", record.engine_url),
        ]
    )
    failure = ""
    if record.error or record.error_kind:
        failure = (
            '<h2>Error</h2><div class="error">'
            + _kv_table(
                [
                    ("error", record.error),
                    ("cause (kind)", record.error_kind),
                    ("failed from", data["failure"]["failed_from"]),
                ]
            )
            + "</div>"
        )
    if data["next_steps"]:
        failure += (
            "<h2>What now</h2><ul>"
            + "".join(f"<li>{esc(step)}</li>" for step in data["next_steps"])
            + "</ul>"
        )
    task = _kv_table(
        [
            ("task id", record.task_id),
            ("copy attempts", record.copy_attempts),
            *((str(k), v) for k, v in (record.progress or {}).items()),
        ]
    )
    rows = "".join(
        "<tr>"
        + _cell(_iso(s.event.at))
        + _cell(s.from_state)
        + _cell(s.to_state)
        + _cell(s.event.trigger)
        + _cell(human_seconds(s.seconds) + (" (so far)" if s.ongoing else ""))
        + _cell(s.event.detail)
        + "</tr>"
        for s in steps
    )
    timeline_table = (
        "<table><tr><th>at</th><th>from</th><th>to</th><th>trigger</th>"
        f"<th>time in state</th><th>detail</th></tr>{rows}</table>"
    )
    totals = _kv_table([(k, human_seconds(v)) for k, v in data["time_in_state"].items()])
    verification = ""
    if record.verification:
        verification = (
            "<h2>Verification</h2><pre>"
            + esc(json.dumps(record.verification, indent=2, default=str, sort_keys=True))
            + "</pre>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>reindex-fsm run {esc(record.id)}</title><style>{_CSS}</style></head><body>"
        f"<h1>reindex-fsm run {esc(record.id)} "
        f'<span class="badge {esc(record.state.value)}">{esc(record.state.value)}</span></h1>'
        f"<p>path: {esc(' -> '.join(data['path']))}</p>"
        f"<h2>Run</h2>{overview}{failure}"
        f"<h2>Task status</h2>{task}"
        f"<h2>Timeline</h2>{timeline_table}"
        f"<h2>Time in each state</h2>{totals}"
        f"<h2>State diagram</h2>{svg(record.state, path_taken(steps))}"
        "<p>Blue: the path taken; red: the current state.</p>"
        f"<details><summary>Mermaid source</summary><pre>{esc(data['diagram'])}</pre></details>"
        f"{verification}"
        f"<p><small>generated {esc(_iso(now) or '')} by reindex-fsm</small></p>"
        "</body></html>\n"
    )
