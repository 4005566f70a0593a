"""The verbs that act on a stored run or on an alias's indices: resume, abort, undo,
cleanup and rethrottle."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..flags import CLEANUP_FLAGS, FORCE_UNLOCK_RESUME, NOTIFY_URL_FLAG, RESUME_FLAGS, UNDO_FLAGS
from ..machine import State
from ..options import parse_rate
from . import batches
from .lazy import lazy
from .options import common_flags, config_for, engine_flags, with_flags
from .prompts import confirm, need_terminal
from .rendering import emit_json, print_outcome

if TYPE_CHECKING:  # imported on first use: see cli/lazy.py
    from .. import api, render
    from .. import cleanup as cleanup_rules
else:
    api = lazy("reindex_fsm.api")
    render = lazy("reindex_fsm.render")
    cleanup_rules = lazy("reindex_fsm.cleanup")


@click.command()
@click.argument("run_id")
@with_flags((FORCE_UNLOCK_RESUME,), RESUME_FLAGS)
@engine_flags
@common_flags
@click.pass_context
def resume(
    ctx: click.Context,
    run_id: str,
    force_unlock: bool,
    metrics_file: str | None,
    engine_url: str | None,
    engine_kind: str,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Continue RUN_ID from its last checkpoint (after a crash, or to retry a FAILED run);
    given a batch ID (batch-...), every unfinished run of the batch, and the runs not made.

    \b
    Example:
      reindex-fsm resume 3f2a9c1b7d4e
    """
    cfg = config_for(ctx, state_db, engine_url, engine_kind)
    if batches.is_batch_id(run_id):  # a batch: every unfinished run of it (cli/batches.py)
        batches.resume(ctx, cfg, run_id)
    outcome = api.resume(cfg, run_id, force_unlock=force_unlock, metrics_file=metrics_file)
    print_outcome(ctx, outcome)


@click.command()
@click.argument("run_id")
@with_flags((NOTIFY_URL_FLAG,))
@engine_flags
@common_flags
@click.pass_context
def abort(
    ctx: click.Context,
    run_id: str,
    engine_url: str | None,
    engine_kind: str,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Stop RUN_ID: cancel its copy and delete its target; the alias is not touched.
    Given a batch ID (batch-...), every unfinished run of the batch; it makes no more.

    \b
    Example:
      reindex-fsm abort 3f2a9c1b7d4e
    """
    cfg = config_for(ctx, state_db, engine_url, engine_kind)
    if batches.is_batch_id(run_id):  # a batch: every unfinished run of it (cli/batches.py)
        batches.abort(ctx, cfg, run_id)
    print_outcome(ctx, api.abort(cfg, run_id))


@click.command()
@click.argument("run_id")
@with_flags(UNDO_FLAGS, (NOTIFY_URL_FLAG,))
@engine_flags
@common_flags
@click.pass_context
def undo(
    ctx: click.Context,
    run_id: str,
    force: bool,
    yes: bool,
    engine_url: str | None,
    engine_kind: str,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Move RUN_ID's aliases back to its previous index, atomically: SWAPPED -> UNDONE.

    Refused (exit 14, nothing changed) when the run is not SWAPPED, the previous index is
    gone or closed, the alias is no longer on the run's target, another run is active on
    the alias, or (without --force) the target received documents since the swap.
    Asks first on a terminal (--yes or --force: no question).

    \b
    Example:
      reindex-fsm undo 3f2a9c1b7d4e
    """
    cfg = config_for(ctx, state_db, engine_url, engine_kind)
    record = cfg.repo().get(run_id)
    if not (yes or force) and record.state is State.SWAPPED:
        need_terminal("undo", "--yes")
        confirm(
            [
                f"undo run {record.id}: alias {record.alias} (and the other aliases the swap "
                f"moved) from {record.target_index} back to {record.source_index}",
                f"writes made to {record.target_index} since the swap are not in "
                f"{record.source_index}: undo refuses them without --force",
            ],
            f"Move alias {record.alias} back to {record.source_index}?",
        )
    print_outcome(ctx, api.Outcome(api.undo(cfg, run_id, force), undone=True))


@click.command()
@with_flags(CLEANUP_FLAGS)
@engine_flags
@common_flags
@click.pass_context
def cleanup(
    ctx: click.Context,
    alias: str,
    keep: int | None,
    older_than: str | None,
    dry_run: bool,
    force: bool,
    engine_url: str | None,
    engine_kind: str,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Delete the indices earlier runs of ALIAS created, beyond the newest N (--keep N)
    and/or older than AGE (--older-than 14d); with both, only what is beyond the newest N
    AND older than AGE.

    Only indices whose mappings' _meta names reindex-fsm, this alias and a run of this
    state database (whose target they are) are considered. Never deleted, nor counted in
    N: an index carrying any alias, and the source or target of an unfinished run. The
    index that `undo` of the newest swapped run moves the alias back to is kept too, unless
    --force. Lists what it would delete and asks first on a terminal (--force: no question).

    \b
    Example:
      reindex-fsm cleanup --alias documents --keep 1 --dry-run
      reindex-fsm cleanup --alias documents --keep 1 --older-than 14d --force
    """
    age = cleanup_rules.check_rules(keep, older_than)  # one line, exit 2, nothing opened
    cfg = config_for(ctx, state_db, engine_url, engine_kind)
    only: set[str] | None = None
    if not dry_run and not force:
        listed = api.cleanup(cfg, alias, keep, dry_run=True, older_than=age)
        doomed = [r for r in listed if r.action == "delete"]
        if doomed:
            need_terminal("delete indices", "--force")
            confirm(
                [f"delete {r.index} ({r.reason})" for r in doomed]
                + [f"keep   {r.index} ({r.reason})" for r in listed if r.action != "delete"],
                f"Delete {len(doomed)} {'index' if len(doomed) == 1 else 'indices'} of alias "
                f"{alias}?",
            )
        only = {r.index for r in doomed}
    rows = api.cleanup(
        cfg, alias, keep, dry_run, only=only, delete_undo_index=force, older_than=age
    )
    if as_json:
        emit_json({"dry_run": dry_run, "indices": [r.as_dict() for r in rows]})
        return
    title = f"reindex-fsm indices of alias {alias}" + (" (dry run)" if dry_run else "")
    table = render.table(title)
    for col in ("index", "created", "run", "action", "reason"):
        table.add_column(col)
    for r in rows:
        render.add_row(table, r.index, r.created[:19], r.run_id or "", r.action, r.reason)
    render.print_out(table)


@click.command(context_settings={"ignore_unknown_options": True})  # RPS may be -1
@click.argument("run_id")
@click.argument("rps")
@engine_flags
@common_flags
@click.pass_context
def rethrottle(
    ctx: click.Context,
    run_id: str,
    rps: str,
    engine_url: str | None,
    engine_kind: str,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Change the rate of RUN_ID's running _reindex copy to RPS requests per second
    (a positive number, or unlimited / -1). Stored with the run: a restarted copy keeps it.

    \b
    Example:
      reindex-fsm rethrottle 3f2a9c1b7d4e 2000
    """
    rate = parse_rate(rps)
    data = api.rethrottle(config_for(ctx, state_db, engine_url, engine_kind), run_id, rate)
    if as_json:
        emit_json(data)
    else:
        click.echo(
            f"run {run_id}: copy task {data['task_id']} now at {data['requests_per_second']} "
            "requests per second"
        )
