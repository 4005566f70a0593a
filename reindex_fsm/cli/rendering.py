"""What the CLI prints: JSON on stdout, the human tables, the one error line, the
warnings, and the live progress display (all engine, user and database text through
reindex_fsm.render, so rich markup never eats ``[...]``)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..errors import ExitCode, ReindexFsmError
from ..machine import State
from .lazy import lazy

if TYPE_CHECKING:  # imported on first use: see cli/lazy.py
    from rich import console as rich_console
    from rich import table as rich_table

    from .. import progress, reads, render
    from ..api import Outcome
    from ..events import Reporter
    from ..steps import views
else:
    rich_console = lazy("rich.console")
    rich_table = lazy("rich.table")
    progress = lazy("reindex_fsm.progress")
    reads = lazy("reindex_fsm.reads")
    render = lazy("reindex_fsm.render")
    views = lazy("reindex_fsm.steps.views")


def out() -> rich_console.Console:
    console = rich_console.Console(soft_wrap=True)
    if not console.is_terminal:  # piped or logged: don't squeeze tables into 80 columns
        console = rich_console.Console(soft_wrap=True, width=200)
    return console


def err() -> rich_console.Console:
    return rich_console.Console(stderr=True, soft_wrap=True)


def json_mode(ctx: click.Context) -> bool:
    return bool(ctx.find_root().meta.get("json"))


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, default=str, sort_keys=False))


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def fail(ctx: click.Context, exc: ReindexFsmError) -> NoReturn:
    """The one error line (and the JSON error object with --json), then its exit code."""
    if json_mode(ctx):
        emit_json({"error": exc.one_line(), "exit_code": int(exc.exit_code)})
    click.echo(f"error: {exc.one_line()}", err=True)
    ctx.exit(int(exc.exit_code))


def usage_error_json(exc: click.ClickException) -> NoReturn:
    """A click usage error under --json: the JSON error object on stdout, one line on
    stderr, click's exit code (2), as for every other error."""
    where = getattr(exc, "ctx", None)
    line = exc.format_message().rstrip(".")
    if where is not None:
        line += f"; see `{where.command_path} --help`"
    emit_json({"error": line, "exit_code": exc.exit_code})
    click.echo(f"error: {line}", err=True)
    raise click.exceptions.Exit(exc.exit_code)


def make_reporter(ctx: click.Context) -> Reporter:
    """The progress display: JSON lines with --json, a bar on a terminal, else lines.
    All on stderr; kept in the root context so that it is closed however the command
    ends."""
    meta = ctx.find_root().meta
    quiet = bool(meta.get("quiet"))
    reporter: Reporter
    if json_mode(ctx):
        reporter = progress.JsonReporter(sys.stderr, quiet=quiet)
    elif (console := err()).is_terminal:
        reporter = progress.BarReporter(console, quiet=quiet)
    else:
        reporter = progress.LineReporter(sys.stderr, quiet=quiet)
    meta["reporter"] = reporter
    return reporter


def close_reporter(ctx: click.Context) -> None:
    reporter = ctx.find_root().meta.get("reporter")
    if reporter is not None:
        reporter.close()


def print_outcome(ctx: click.Context, outcome: Outcome) -> None:
    """A start, resume, abort or undo that ended: the summary, the error line when the
    run did not reach its goal, a warning while writes stay blocked; its exit code."""
    close_reporter(ctx)
    data = reads.summary(outcome.record)
    if outcome.exit_code != ExitCode.OK:  # the summary goes to stdout; the error, here too
        run_error_line(outcome.record)
    held = outcome.record.write_policy or {}
    if views.is_blocked(held):
        verb = "swap" if outcome.record.state is State.VERIFIED else "resume"
        click.echo(
            f"warning: writes to {held.get('index')} are still BLOCKED by run "
            f"{outcome.record.id} ({outcome.record.state}): `reindex-fsm {verb} "
            f"{outcome.record.id}` or `reindex-fsm abort {outcome.record.id}` lifts the block",
            err=True,
        )
    if json_mode(ctx):
        emit_json(data)
    else:
        print_summary(data)
    ctx.exit(int(outcome.exit_code))


def run_error_line(record: Any) -> None:
    """The one stderr line of a start/resume/abort whose run did not reach its goal."""
    if record.state is State.VERIFIED:  # --pause-before-swap: waits at the gate (exit 15)
        click.echo(f"paused: {views.waiting_line(record)}", err=True)
        return
    what = f"run {record.id} ended {record.state}"
    if record.error:
        what += f": {record.error}"
    if record.state is State.FAILED:
        hint = (
            f"`reindex-fsm resume {record.id}` retries, `reindex-fsm abort {record.id}` "
            f"cleans up; details: `reindex-fsm show {record.id}`"
        )
    else:
        hint = f"details: `reindex-fsm show {record.id}`"
    click.echo(f"error: {what}; {hint}", err=True)


def print_summary(data: dict[str, Any]) -> None:
    table = rich_table.Table(show_header=False, box=None)
    for key in reads.KEY_FIELDS:
        if data.get(key) is not None:
            render.add_row(table, render.text(key, "bold"), data[key])
    render.print_out(table)


def print_verification(v: dict[str, Any]) -> None:
    """What the last verification compared and what differed, one row per check."""
    table = rich_table.Table(title="verification", show_header=False)
    result = render.text("passed") if v.get("passed") else render.text("DIFFERENCES", "bold red")
    render.add_row(table, render.text("result", "bold"), result)
    for note in v.get("notes") or ():
        render.add_row(table, "note", note)
    docs = v.get("documents") or {}
    if docs.get("checked") is False:
        render.add_row(table, "documents", f"not checked: {docs.get('why')}")
    else:
        render.add_row(table, "documents", f"{docs.get('compared')} compared ({docs.get('mode')})")
        for key in ("missing_in_target", "differing", "only_in_target"):
            kind = docs.get(key) or {}
            if kind.get("count"):
                ids = ", ".join(kind.get("ids") or [])
                render.add_row(table, key.replace("_", " "), f"{kind['count']}: {ids}")
    mappings = v.get("mappings") or {}
    for diff in mappings.get("differences") or ():
        render.add_row(
            table,
            "mapping",
            f"{diff['path']}: planned {diff['planned']!r}, actual {diff['actual']!r}",
        )
    queries = v.get("queries")
    if queries:
        render.add_row(
            table,
            "queries",
            f"{queries['run'] - queries['failed']}/{queries['run']} at top-{queries['top_k']} "
            f"overlap >= {queries['min_overlap']} (lowest {queries['lowest_overlap']})",
        )
        for q in queries.get("queries") or ():
            if not q["passed"]:
                render.add_row(table, f"query line {q['line']}", f"overlap {q['overlap']}")
    render.print_out(table)
