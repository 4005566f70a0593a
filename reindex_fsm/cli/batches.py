"""Batches on the command line: ``start`` with several ``--alias`` values or an
``--alias-pattern``, and ``resume``, ``abort`` and ``show`` given a batch ID (``batch-...``),
``history --batches``. Parses, calls reindex_fsm.batch, prints."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode, UsageError
from ..options import BATCH_FLAGS, RunOptions
from ..store.records import is_batch_id as is_batch_id
from .lazy import lazy
from .prompts import confirm, need_terminal
from .rendering import close_reporter, emit_json, json_mode, out

if TYPE_CHECKING:  # imported on first use: see cli/lazy.py
    from .. import api, batch, progress, render
else:
    api = lazy("reindex_fsm.api")
    batch = lazy("reindex_fsm.batch")
    progress = lazy("reindex_fsm.progress")
    render = lazy("reindex_fsm.render")

__all__ = ["check_aliases_given", "is_batch_id", "refuse_batch_flags", "start", "wants_batch"]


def wants_batch(given: dict[str, Any]) -> bool:
    """Several --alias values or an --alias-pattern: a batch (one --alias: a run, as ever)."""
    return len(given["alias"]) != 1 or bool(given["alias_pattern"])


def refuse_batch_flags(given: dict[str, Any]) -> None:
    """The batch flags with one --alias: refused, nothing done."""
    for flag in BATCH_FLAGS:
        if given[flag.param] is not None:
            raise UsageError(
                f"{flag.flag} needs several --alias values or an --alias-pattern",
                hint="leave it out for one alias; nothing was done",
            )


def settings_of(given: dict[str, Any]) -> batch.BatchSettings:
    defaults = batch.BatchSettings()
    return batch.BatchSettings(
        concurrency=given["concurrency"] or defaults.concurrency,
        slices_budget=given["slices_budget"],
        on_failure=given["on_failure"] or defaults.on_failure,
    )


def _line_reporter(ctx: click.Context, cfg: api.Config) -> None:
    """Several runs at once cannot share one live bar: state lines instead."""
    if isinstance(cfg.reporter, progress.BarReporter):
        cfg.reporter.close()
        cfg.reporter = progress.LineReporter(
            sys.stderr, quiet=bool(ctx.find_root().meta.get("quiet"))
        )
        ctx.find_root().meta["reporter"] = cfg.reporter


def check_aliases_given(given: dict[str, Any]) -> None:
    """``start`` without --alias or --alias-pattern: refused first, as click refuses a
    missing option."""
    if not given["alias"] and not given["alias_pattern"]:
        raise UsageError(
            "start needs --alias NAME (repeatable) or --alias-pattern PATTERN",
            hint="see `reindex-fsm start --help`",
        )


def start(ctx: click.Context, cfg: api.Config, given: dict[str, Any], options: RunOptions) -> None:
    """``start`` on several aliases: resolve them (once), check, ask, start the batch."""
    aliases, patterns = list(given["alias"]), list(given["alias_pattern"])
    settings = settings_of(given)
    settings.validate()
    resolved = batch.resolve_aliases(cfg.engine(), aliases, patterns)
    items = [batch.BatchItem(alias, options) for alias in resolved]
    if given["dry_run"]:
        plans = []
        for alias in resolved:
            p = api.plan(cfg, alias, options)
            plans.append({**p.to_dict(), "run_id": None, "steps": api.describe(p, options)})
        data = {"dry_run": True, "batch_id": None, "aliases": resolved, "plans": plans}
        if given["as_json"]:
            emit_json(data)
        else:
            out().print_json(json.dumps(data, default=str))
        return
    if not given["force"]:
        need_terminal("start a batch", hint="pass --force (and try --dry-run first)")
        for alias in resolved:  # refused here, before the question, as a start would
            api.plan(cfg, alias, options)
        confirm(
            [f"batch of {len(resolved)} runs, {settings.concurrency} at a time:"]
            + [f"  {alias}" for alias in resolved],
            f"Rebuild the indices behind these {len(resolved)} aliases?",
        )
    _line_reporter(ctx, cfg)
    print_batch(ctx, batch.start_batch(cfg, items, settings))


def resume(ctx: click.Context, cfg: api.Config, batch_id: str) -> None:
    _line_reporter(ctx, cfg)
    print_batch(ctx, batch.resume_batch(cfg, batch_id))


def abort(ctx: click.Context, cfg: api.Config, batch_id: str) -> None:
    _line_reporter(ctx, cfg)
    print_batch(ctx, batch.abort_batch(cfg, batch_id))


def show(ctx: click.Context, cfg: api.Config, batch_id: str) -> None:
    outcome = batch.show_batch(cfg, batch_id)
    if json_mode(ctx):
        emit_json(outcome.as_dict())
        return
    _print_table(outcome)


def history(ctx: click.Context, cfg: api.Config, limit: int) -> None:
    rows = [o.as_dict() for o in batch.list_batches(cfg, limit)]
    if json_mode(ctx):
        emit_json(rows)
        return
    table = render.table("reindex-fsm batches")
    for col in ("batch", "state", "started", "runs swapped", "concurrency", "on failure", "error"):
        table.add_column(col)
    for r in rows:
        render.add_row(
            table,
            r["batch_id"],
            r["state"],
            r["created_at"][:19].replace("T", " "),
            f"{r['swapped']}/{r['total']}",
            r["concurrency"],
            r["on_failure"],
            r["error"] or "",
        )
    render.print_out(table)


def _print_table(outcome: batch.BatchOutcome) -> None:
    data = outcome.as_dict()
    title = f"batch {data['batch_id']}: {data['state']}, {data['swapped']}/{data['total']} SWAPPED"
    table = render.table(title)
    for col in ("alias", "run", "state", "source -> target", "error"):
        table.add_column(col)
    for r in data["runs"]:
        moved = f"{r['source_index']} -> {r['target_index']}" if r["run_id"] else ""
        render.add_row(
            table,
            r["alias"],
            r["run_id"] or "(not made)",
            r["state"] or "",
            moved,
            r["error"] or "",
        )
    render.print_out(table)


def print_batch(ctx: click.Context, outcome: batch.BatchOutcome) -> None:
    """A batch start, resume or abort that ended: its table (or JSON), one error line when
    not every run reached its goal, its exit code."""
    close_reporter(ctx)
    code = outcome.exit_code
    if code == ExitCode.PAUSED:
        click.echo(
            f"batch {outcome.batch_id} paused: {outcome.batch.error or ''}; `reindex-fsm swap "
            f"RUN_ID` lets each through (`reindex-fsm show {outcome.batch_id}` lists them), "
            f"then `reindex-fsm resume {outcome.batch_id}` records the batch",
            err=True,
        )
    elif code != ExitCode.OK:
        click.echo(
            f"error: batch {outcome.batch_id} ended {outcome.batch.state}: "
            f"{outcome.batch.error or ''}; `reindex-fsm resume {outcome.batch_id}` continues "
            f"its unfinished runs, `reindex-fsm show {outcome.batch_id}` shows them",
            err=True,
        )
    if json_mode(ctx):
        emit_json(outcome.as_dict())
    else:
        _print_table(outcome)
    ctx.exit(int(code))
