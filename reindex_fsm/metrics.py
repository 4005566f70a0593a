"""The figures of a run, or of a batch of runs, as a Prometheus text file for
node_exporter's textfile collector (``--metrics-file PATH``, a ``*.prom`` file).

Written with ``prometheus_client``: a registry of its own per write (nothing global), and
``write_to_textfile``, which writes a temporary file beside ``PATH`` and renames it over
``PATH``, so the collector never reads half a file. Every series carries ``run_id`` and
``alias`` (and ``batch_id``, empty for a run started on its own):

- ``reindex_fsm_run_info`` (1; source and target index, engine, batch, plan file hash),
- ``reindex_fsm_run_state`` (one series per state of the machine: 1 for the run's, else 0),
- ``reindex_fsm_run_documents_done`` / ``_documents_total`` (the copy's counts; the total is
  the task's, else the source's count at plan time), ``_source_documents``,
  ``_target_documents`` (once verified),
- ``reindex_fsm_run_documents_per_second``: the copy's rate as the progress line shows it
  while this process watches the copy, else documents done over the run's duration so far,
- ``reindex_fsm_run_duration_seconds`` (plan to end, or to now), ``_started_timestamp_seconds``,
  ``_finished_timestamp_seconds`` (a finished run only),
- ``reindex_fsm_run_copy_attempts``, ``_failed_documents`` (documents the target refused,
  or lines a recompute set aside), ``_version_conflicts``, ``_failed`` (1: the run holds an
  error),
- ``reindex_fsm_metrics_written_timestamp_seconds`` (when the file was written: an alert on
  a file that stopped moving while a run is unfinished).

A batch's file (:func:`write_batch`) holds those series for each of its runs, plus its
totals: ``reindex_fsm_batch_state``, ``reindex_fsm_batch_runs`` (by state),
``reindex_fsm_batch_documents_done`` / ``_documents_total``, ``_failed_documents``,
``_duration_seconds``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric

from . import report
from .machine import State
from .store import RunRecord

PREFIX = "reindex_fsm"
_RUN_LABELS = ("run_id", "alias", "batch_id")


@dataclass(frozen=True)
class RunFigures:
    """What one run's series say, worked out from its record (and a measured rate)."""

    record: RunRecord
    now: datetime
    docs_per_s: float | None = None  # measured by this process while it watched the copy

    @property
    def labels(self) -> list[str]:
        r = self.record
        return [r.id, r.alias, r.batch_id or ""]

    @property
    def done(self) -> int:
        p = self.record.progress or {}
        if "indexed" in p:  # a recompute's batches
            return int(p.get("indexed") or 0)
        counted = ("created", "updated", "deleted", "version_conflicts", "noops")
        done = sum(int(p.get(k) or 0) for k in counted)
        if not done and self.record.state is State.SWAPPED and self.record.target_count:
            return int(self.record.target_count)  # resumed after the copy: no counts stored
        return done

    @property
    def total(self) -> int:
        p = self.record.progress or {}
        return int(p.get("total") or 0) or int(self.record.source_count or 0)

    @property
    def failed_documents(self) -> int:
        p = self.record.progress or {}
        return int(p.get("failures") or 0) + int(p.get("rejected") or 0)

    @property
    def duration_s(self) -> float:
        return report.duration_s(self.record, self.now)

    @property
    def rate(self) -> float:
        if self.docs_per_s is not None:
            return self.docs_per_s
        return self.done / self.duration_s if self.duration_s > 0 else 0.0


class _Families:
    """The metric families of a file, filled run by run."""

    def __init__(self) -> None:
        self.info = InfoMetricFamily(
            f"{PREFIX}_run", "The run: its indices, engine and origin.", labels=_RUN_LABELS
        )
        self.by_name: dict[str, GaugeMetricFamily] = {}
        self.state = GaugeMetricFamily(
            f"{PREFIX}_run_state",
            "1 for the state the run is in, 0 for the others.",
            labels=[*_RUN_LABELS, "state"],
        )

    def gauge(self, name: str, doc: str, labels: Sequence[str], value: float) -> None:
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = GaugeMetricFamily(
                f"{PREFIX}_{name}", doc, labels=list(_RUN_LABELS)
            )
        family.add_metric(list(labels), value)

    def add_run(self, f: RunFigures) -> None:
        r, labels = f.record, f.labels
        self.info.add_metric(
            labels,
            {
                "source_index": r.source_index,
                "target_index": r.target_index,
                "engine_flavor": r.engine_flavor,
                "engine_version": r.engine_version,
                "plan_hash": r.plan_hash or "",
            },
        )
        for state in State:
            self.state.add_metric([*labels, state.value], 1.0 if r.state is state else 0.0)
        g = self.gauge
        g("run_documents_done", "Documents the copy is done with.", labels, f.done)
        g("run_documents_total", "Documents the copy has to do.", labels, f.total)
        g("run_source_documents", "The source's count at plan time.", labels, r.source_count or 0)
        if r.target_count is not None:
            g("run_target_documents", "The target's count, verified.", labels, r.target_count)
        g("run_documents_per_second", "The copy's rate (see the README).", labels, f.rate)
        g("run_duration_seconds", "From the plan to the end, or to now.", labels, f.duration_s)
        g(
            "run_started_timestamp_seconds",
            "When the run was planned.",
            labels,
            r.created_at.timestamp(),
        )
        if r.finished and r.finished_at is not None:
            g(
                "run_finished_timestamp_seconds",
                "When it finished.",
                labels,
                r.finished_at.timestamp(),
            )
        g(
            "run_copy_attempts",
            "Copies started (a retried copy counts again).",
            labels,
            r.copy_attempts,
        )
        g(
            "run_failed_documents",
            "Documents the target refused (or lines set aside).",
            labels,
            f.failed_documents,
        )
        conflicts = int((r.progress or {}).get("version_conflicts") or 0)
        g("run_version_conflicts", "Version conflicts of the copy.", labels, conflicts)
        g("run_failed", "1 when the run holds an error.", labels, 1.0 if r.error else 0.0)

    def families(self) -> Iterator[Metric]:
        yield self.info
        yield self.state
        yield from self.by_name.values()


class _Collected:
    """A collector of families made beforehand (the registry asks once per write)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def _written(now: datetime) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        f"{PREFIX}_metrics_written_timestamp_seconds", "When reindex-fsm wrote this file."
    )
    family.add_metric([], now.timestamp())
    return family


def _write(path: str, families: Iterable[Metric]) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collected(families))
    write_to_textfile(path, registry)


def _run_families(figures: Sequence[RunFigures]) -> list[Metric]:
    f = _Families()
    for one in figures:
        f.add_run(one)
    return list(f.families())


def write_run(path: str, record: RunRecord, now: datetime, docs_per_s: float | None = None) -> None:
    """Write one run's figures to ``path`` (atomically). ``now``: the clock of the stored
    timestamps (``RunRepository.now``). OSError when the file cannot be written."""
    figures = RunFigures(record, now, docs_per_s)
    _write(path, [*_run_families([figures]), _written(now)])


def write_batch(
    path: str,
    batch_id: str,
    state: str,
    runs: Sequence[RunRecord],
    now: datetime,
    rates: dict[str, float] | None = None,
) -> None:
    """Write a batch's figures to ``path`` (atomically): one series per run of it (with
    ``rates``, the copy rates measured by run ID) and the batch's totals, labelled
    ``batch_id``. ``state``: the batch's state, as its runner names it."""
    figures = [RunFigures(r, now, (rates or {}).get(r.id)) for r in runs]
    labels = ["batch_id"]
    batch_state = GaugeMetricFamily(
        f"{PREFIX}_batch_state", "1 for the batch's state.", labels=[*labels, "state"]
    )
    batch_state.add_metric([batch_id, state], 1.0)
    by_state = GaugeMetricFamily(
        f"{PREFIX}_batch_runs", "The batch's runs, by state.", labels=[*labels, "state"]
    )
    for s in State:
        by_state.add_metric([batch_id, s.value], sum(1 for r in runs if r.state is s))
    totals = []
    sums = (
        ("documents_done", "Documents its runs' copies are done with.", [f.done for f in figures]),
        ("documents_total", "Documents its runs' copies have to do.", [f.total for f in figures]),
        (
            "failed_documents",
            "Documents its runs' targets refused.",
            [f.failed_documents for f in figures],
        ),
    )
    for name, doc, values in sums:
        family = GaugeMetricFamily(f"{PREFIX}_batch_{name}", doc, labels=labels)
        family.add_metric([batch_id], sum(values))
        totals.append(family)
    duration = GaugeMetricFamily(
        f"{PREFIX}_batch_duration_seconds",
        "From its first run's plan to its last run's end, or to now.",
        labels=labels,
    )
    duration.add_metric([batch_id], _batch_duration(runs, now))
    totals.append(duration)
    families = [*_run_families(figures), batch_state, by_state, *totals, _written(now)]
    _write(path, families)


def _batch_duration(runs: Sequence[RunRecord], now: datetime) -> float:
    if not runs:
        return 0.0
    start = min(r.created_at for r in runs)
    finished = all(r.finished for r in runs)
    end = max(r.finished_at or r.updated_at for r in runs) if finished else now
    return max(0.0, (end - start).total_seconds())
