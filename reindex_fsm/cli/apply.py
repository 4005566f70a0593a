"""``apply PLAN_FILE``: the runs a plan file asks for (reindex_fsm.planfile reads and
checks it with start's own readers), or with --dry-run what each would change
(reindex_fsm.plan_changes). Every run made stores the file's absolute path and the
SHA-256 of its bytes."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from ..config import Config
from ..errors import ExitCode, UsageError
from ..options import start_flags
from ..store import RunOrigin
from . import batches
from .lazy import lazy
from .options import common_flags, config_for, engine_flags, with_flags
from .prompts import confirm, need_terminal
from .rendering import emit_json, print_outcome, warn
from .start import run_options

if TYPE_CHECKING:  # imported on first use: see cli/lazy.py
    from .. import api, batch, plan_changes, planfile, render
    from ..plan import Plan
    from ..steps.copy import registry
else:
    api = lazy("reindex_fsm.api")
    batch = lazy("reindex_fsm.batch")
    plan_changes = lazy("reindex_fsm.plan_changes")
    planfile = lazy("reindex_fsm.planfile")
    render = lazy("reindex_fsm.render")
    registry = lazy("reindex_fsm.steps.copy.registry")

# apply's own flags: start's definitions of them.
APPLY_FLAGS = tuple(
    f for f in start_flags() if f.flag in ("--dry-run", "--force", "--force-unlock", "--notify-url")
)


@click.command(name="apply")
@click.argument("plan_file", type=click.Path(dir_okay=False))
@with_flags(APPLY_FLAGS)
@engine_flags
@common_flags
@click.pass_context
def apply(ctx: click.Context, plan_file: str, **given: Any) -> None:
    """Apply PLAN_FILE (YAML): move the alias, the aliases or the aliases matching the
    patterns it names, with the options it gives (start's flags, without the --).

    The file is checked whole before anything is written: an error names the file, the
    line and the key (exit 2). Credentials are never read from the file. Every run made
    stores the file's path and SHA-256 (see show and history --json).

    \b
    Examples:
      reindex-fsm apply documents.yaml --dry-run
      reindex-fsm apply documents.yaml --force --json
    """
    plan = planfile.load(plan_file, run_options)
    cfg = _config(ctx, plan, given)
    entries = _entries(cfg, plan)
    _warnings(entries)
    if given["dry_run"]:
        _print_dry_run(cfg, plan, entries, given["as_json"])
        return
    if plan.shape == "batch":
        _start_batch(ctx, cfg, plan, entries, given)
        return
    (entry,) = entries
    if not given["force"]:
        need_terminal("apply", hint="pass --force (and try --dry-run first)")
    planned = _plan(cfg, plan, entry)
    if not given["force"]:
        confirm(
            render.confirmation(planned, entry.options),
            f"Move alias {entry.alias} from {planned.source_index} to {planned.target_index}?",
        )
    outcome = api.start(
        cfg,
        entry.alias,
        entry.options,
        planned,
        force_unlock=given["force_unlock"],
        origin=RunOrigin(plan_path=plan.path, plan_hash=plan.sha256),
    )
    print_outcome(ctx, outcome)


def _config(ctx: click.Context, plan: planfile.PlanFile, given: dict[str, Any]) -> Config:
    """The command line's connection flags, else the file's keys, else the environment
    and the defaults (as for every command)."""
    file = plan.connection
    kind = given["engine_kind"]
    if ctx.get_parameter_source("engine_kind") is click.core.ParameterSource.DEFAULT:
        kind = file.get("engine_kind", kind)
    cfg = config_for(
        ctx,
        given["state_db"] or file.get("state_db"),
        given["engine_url"] or file.get("engine_url"),
        kind,
    )
    client = dict(cfg.client_options)
    if file.get("insecure") and "verify_certs" not in client:
        client["verify_certs"] = False
        warn(f"{plan.shown}: insecure: the engine's TLS certificate is NOT verified")
    from_flag = ctx.get_parameter_source("ca_certs") is click.core.ParameterSource.COMMANDLINE
    if file.get("ca_certs") and not from_flag:  # the file's over REINDEX_FSM_CA_CERTS
        client["ca_certs"] = file["ca_certs"]
    cfg.client_options = client
    return cfg


def _entries(cfg: Config, plan: planfile.PlanFile) -> list[planfile.PlanEntry]:
    """The aliases the file applies to; its patterns resolved once, now, each to the
    aliases that exist (a pattern matching none is refused at its line)."""
    if not plan.patterns:
        return list(plan.entries)
    engine = cfg.engine()
    matched: list[tuple[str, int]] = []
    for pattern, line in plan.patterns:
        try:
            found = batch.resolve_aliases(engine, [], [pattern])
        except UsageError as exc:
            if exc.exit_code is not ExitCode.USAGE:
                raise
            where = plan.where(line)
            raise planfile.PlanError(where, "alias-pattern", exc.message, exc.hint) from exc
        matched.extend((alias, line) for alias in found)
    return plan.resolve(matched)


def _start_batch(
    ctx: click.Context,
    cfg: Config,
    plan: planfile.PlanFile,
    entries: list[planfile.PlanEntry],
    given: dict[str, Any],
) -> None:
    """Several aliases: one batch of runs (reindex_fsm.batch), each run storing the file."""
    settings = plan.settings()
    if given["force_unlock"]:
        raise UsageError(
            f"{plan.shown}: --force-unlock takes the lease of one alias: not for a batch",
            hint="free the one alias with `reindex-fsm start --alias NAME --force-unlock`, "
            "or wait for its lease to expire; nothing was done",
        )
    if not given["force"]:
        need_terminal("apply", hint="pass --force (and try --dry-run first)")
    for entry in entries:  # refused here, at the entry's line, before the question
        _plan(cfg, plan, entry)
    if not given["force"]:
        confirm(
            [f"batch of {len(entries)} runs, {settings.concurrency} at a time:"]
            + [
                f"  {e.alias}" + (f" ({', '.join(e.overrides)})" if e.overrides else "")
                for e in entries
            ],
            f"Rebuild the indices behind these {len(entries)} aliases?",
        )
    items = [batch.BatchItem(e.alias, e.options) for e in entries]
    batches._line_reporter(ctx, cfg)  # several runs at once: state lines, no bar
    outcome = batch.start_batch(cfg, items, settings, plan_path=plan.path, plan_hash=plan.sha256)
    batches.print_batch(ctx, outcome)


def _plan(cfg: Config, plan: planfile.PlanFile, entry: planfile.PlanEntry) -> Plan:
    """The alias's plan (reads only); a refusal of the alias (not found, not an alias, a
    bad override for this source) names the line of its entry."""
    try:
        return api.plan(cfg, entry.alias, entry.options)
    except UsageError as exc:
        if exc.exit_code is not ExitCode.USAGE:
            raise
        raise planfile.PlanError(
            plan.where(entry.line), "alias", f"{entry.alias}: {exc.message}", exc.hint
        ) from exc


def _warnings(entries: list[planfile.PlanEntry]) -> None:
    """What start warns of before it plans, each line once for all the file's aliases."""
    lines: dict[str, None] = {}
    for entry in entries:
        if not entry.options.verify:
            lines["no-verify: the target's document count is NOT compared with the source's"] = None
        lines.update(
            dict.fromkeys(registry.strategy_for_options(entry.options).warnings(entry.options))
        )
    for line in lines:
        warn(line)


def _print_dry_run(
    cfg: Config, plan: planfile.PlanFile, entries: list[planfile.PlanEntry], as_json: bool
) -> None:
    """Per alias, what its run would change; nothing is written."""
    shown = []
    for entry in entries:
        p = _plan(cfg, plan, entry)
        source = cfg.engine().get_index(p.source_index)
        shown.append((p, plan_changes.changes(p, source, entry.options)))
    if as_json:
        emit_json(
            {
                "dry_run": True,
                "plan_file": {"path": plan.path, "sha256": plan.sha256},
                "batch": asdict(plan.settings()) if plan.shape == "batch" else None,
                "aliases": [change for _, change in shown],
            }
        )
        return
    lines = [f"plan file {plan.path} (sha256 {plan.sha256}): dry run, nothing written"]
    if plan.shape == "batch":
        settings = plan.settings()
        budget = settings.slices_budget or "no limit"
        lines.append(
            f"batch of {len(entries)} runs: concurrency {settings.concurrency}, slices budget "
            f"{budget}, on failure {settings.on_failure}"
        )
    for p, change in shown:
        lines.extend(plan_changes.lines(change, p))
    render.print_out(*lines)
