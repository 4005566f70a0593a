"""The click CLI: parse, call one function of api.py, print. Nothing else.

The group and the one place errors become exit codes (:meth:`ReindexGroup.invoke`) are
here; the commands live by family (start, run_verbs, inspection), their options are
generated from the definitions in reindex_fsm.options and reindex_fsm.config (options),
and what they print is in rendering.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

import click

from .. import __version__
from ..config import GROUP_LOG_FLAGS
from ..errors import ExitCode, ReindexFsmError
from ..process import exit_code_of, exit_now
from . import apply, gate, inspection, run_verbs, start
from .lazy import lazy
from .options import configure_logs, with_flags
from .rendering import close_reporter, emit_json, fail, json_mode, usage_error_json

if TYPE_CHECKING:  # imported on first use: see cli/lazy.py
    from ..steps import views
else:
    views = lazy("reindex_fsm.steps.views")

__all__ = ["ReindexGroup", "Terminated", "cli", "interrupted_line", "main"]

EXIT_CODES_HELP = "\n".join(f"  {c.value:>3}  {c.name.lower().replace('_', ' ')}" for c in ExitCode)


def _wants_json(args: list[str]) -> bool:
    """``--json`` among the options (before a ``--``), known before click parses them."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)


class ReindexGroup(click.Group):
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        wants_json = _wants_json(list(args))
        try:
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        except click.ClickException as exc:
            if wants_json:
                usage_error_json(exc)
            raise
        if wants_json:  # also for an error while the command's own options are parsed
            ctx.meta["json"] = True
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if json_mode(ctx):
                close_reporter(ctx)
                usage_error_json(exc)
            raise
        except ReindexFsmError as exc:
            close_reporter(ctx)
            fail(ctx, exc)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
            close_reporter(ctx)
            code = ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED
            line = interrupted_line(exc)
            if json_mode(ctx):
                emit_json({"error": line, "exit_code": int(code)})
            click.echo(line, err=True)
            ctx.exit(code)
        finally:  # a bar left live by anything else (a bug) must still let the terminal go
            close_reporter(ctx)


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, Kubernetes, a timeout): handled like Ctrl-C, exit 143."""


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise Terminated()


def interrupted_line(exc: BaseException) -> str:
    """One line: which signal, the run (its real ID), what keeps running on the server
    (the copy task, the write block), and how to resume or abort."""
    what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
    run = getattr(exc, "run", None)  # set by the api once a run is under way
    batch_id = getattr(exc, "batch_id", None)  # set by reindex_fsm.batch
    if batch_id is not None:
        return (
            f"{what}: batch {batch_id} stopped, its runs under way with it (their copy tasks "
            "keep running on the server, their write blocks stay); `reindex-fsm resume "
            f"{batch_id}` continues them, `reindex-fsm abort {batch_id}` aborts them"
        )
    if run is None:
        return f"{what}: no run was under way; nothing to resume"
    left: list[str] = []
    if run.state.value == "REINDEXING" and run.task_id:
        left.append(f"its _reindex task {run.task_id} keeps copying into {run.target_index}")
    held = run.write_policy or {}
    if views.is_blocked(held):
        left.append(f"writes to {held.get('index')} stay BLOCKED")
    server = "; on the server " + " and ".join(left) if left else ""
    return (
        f"{what}: run {run.id} stopped in {run.state}{server}; `reindex-fsm resume {run.id}` "
        f"continues it, `reindex-fsm abort {run.id}` cancels it"
        + (" and lifts the block" if views.is_blocked(held) else "")
    )


@click.group(
    cls=ReindexGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}",
)
@click.version_option(__version__, prog_name="reindex-fsm")
@with_flags(GROUP_LOG_FLAGS)
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, log_format: str) -> None:
    """Rebuild the index behind a live Elasticsearch/OpenSearch alias, resumably.

    \b
    Example:
      reindex-fsm start --alias documents --verify --rollback-on-failure --force
    """
    ctx.meta.update(verbose=verbose, quiet=quiet, log_format=log_format)
    configure_logs(ctx.meta)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (commands, options, choices).

    \b
    Examples:
      eval "$(reindex-fsm completion bash)"             # this shell only
      reindex-fsm completion bash > ~/.local/share/bash-completion/completions/reindex-fsm
      reindex-fsm completion zsh > "${fpath[1]}/_reindex-fsm"
    """
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None  # the three choices are click's own
    click.echo(completer(cli, {}, "reindex-fsm", "_REINDEX_FSM_COMPLETE").source())


for _command in (
    start.start,
    apply.apply,
    run_verbs.resume,
    run_verbs.abort,
    run_verbs.undo,
    run_verbs.cleanup,
    run_verbs.rethrottle,
    gate.swap,
    inspection.show,
    inspection.history,
):
    cli.add_command(_command)


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cli(prog_name="reindex-fsm")
    except SystemExit as exc:  # how click's standalone mode always ends
        exit_now(exit_code_of(exc))  # without the interpreter's teardown (process.py)
