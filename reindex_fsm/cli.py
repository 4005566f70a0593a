"""The click CLI: parse, call one function of api.py, print. Nothing else.

Errors are mapped to exit codes in one place, :meth:`ReindexGroup.invoke`.
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from . import __version__, api, logs, render, report
from .api import Config, Outcome, summary
from .errors import Declined, ExitCode, ReindexFsmError, UsageError
from .inputfiles import read_text
from .machine import TERMINAL, State
from .options import RunOptions, check_options, check_requests_per_second
from .preflight import CHECKS
from .progress import BarReporter, JsonReporter, LineReporter
from .steps import deep_verify, write_policy
from .steps.context import Reporter, SilentReporter
from .steps.planning import check_alias_name, flatten_settings, parse_set
from .steps.transforms import load_script

EXIT_CODES_HELP = "\n".join(f"  {c.value:>3}  {c.name.lower().replace('_', ' ')}" for c in ExitCode)


def _out() -> Console:
    console = Console(soft_wrap=True)
    if not console.is_terminal:  # piped or logged: don't squeeze tables into 80 columns
        console = Console(soft_wrap=True, width=200)
    return console


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True)


def _json_mode(ctx: click.Context) -> bool:
    return bool(ctx.find_root().meta.get("json"))


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, default=str, sort_keys=False))


def _wants_json(args: list[str]) -> bool:
    """``--json`` among the options (before a ``--``), known before click parses them."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _usage_error_json(exc: click.ClickException) -> NoReturn:
    """A click usage error under --json: the JSON error object on stdout, one line on
    stderr, click's exit code (2), as for every other error."""
    where = getattr(exc, "ctx", None)
    line = exc.format_message().rstrip(".")
    if where is not None:
        line += f"; see `{where.command_path} --help`"
    _emit_json({"error": line, "exit_code": exc.exit_code})
    click.echo(f"error: {line}", err=True)
    raise click.exceptions.Exit(exc.exit_code)


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
                _usage_error_json(exc)
            raise
        if wants_json:  # also for an error while the command's own options are parsed
            ctx.meta["json"] = True
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if _json_mode(ctx):
                _close_reporter(ctx)
                _usage_error_json(exc)
            raise
        except ReindexFsmError as exc:
            _close_reporter(ctx)
            _fail(ctx, exc)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
            _close_reporter(ctx)
            code = ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED
            line = interrupted_line(exc)
            if _json_mode(ctx):
                _emit_json({"error": line, "exit_code": int(code)})
            click.echo(line, err=True)
            ctx.exit(code)
        finally:  # a bar left live by anything else (a bug) must still let the terminal go
            _close_reporter(ctx)


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, Kubernetes, a timeout): handled like Ctrl-C, exit 143."""


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise Terminated()


def interrupted_line(exc: BaseException) -> str:
    """One line: which signal, the run (its real ID), what keeps running on the server
    (the copy task, the write block), and how to resume or abort."""
    what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
    run = getattr(exc, "run", None)  # set by commands once a run is under way
    if run is None:
        return f"{what}: no run was under way; nothing to resume"
    left: list[str] = []
    if run.state.value == "REINDEXING" and run.task_id:
        left.append(f"its _reindex task {run.task_id} keeps copying into {run.target_index}")
    held = run.write_policy or {}
    if write_policy.is_blocked(held):
        left.append(f"writes to {held.get('index')} stay BLOCKED")
    server = "; on the server " + " and ".join(left) if left else ""
    return (
        f"{what}: run {run.id} stopped in {run.state}{server}; `reindex-fsm resume {run.id}` "
        f"continues it, `reindex-fsm abort {run.id}` cancels it"
        + (" and lifts the block" if write_policy.is_blocked(held) else "")
    )


def _fail(ctx: click.Context, exc: ReindexFsmError) -> NoReturn:
    if _json_mode(ctx):
        _emit_json({"error": exc.one_line(), "exit_code": int(exc.exit_code)})
    click.echo(f"error: {exc.one_line()}", err=True)
    ctx.exit(int(exc.exit_code))


# -- shared options --------------------------------------------------------------------
def _set_json(ctx: click.Context, _p: click.Parameter, value: bool) -> bool:
    if value:
        ctx.find_root().meta["json"] = True
    return value


def _set_log_option(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """-v, -q and --log-format given after the command name: the same as before it."""
    if not value:
        return
    meta = ctx.find_root().meta
    if param.name == "verbose":
        meta["verbose"] = meta.get("verbose", 0) + value
    elif param.name == "quiet":
        meta["quiet"] = True
    else:
        meta["log_format"] = value
    _configure_logs(meta)


def _configure_logs(meta: dict[str, Any]) -> None:
    verbose, quiet = meta.get("verbose", 0), bool(meta.get("quiet"))
    if verbose and quiet:
        raise UsageError("-v and -q contradict each other", hint="give one of them")
    logs.configure(verbose=verbose, quiet=quiet, fmt=meta.get("log_format", "text"))


def log_options(f: Any) -> Any:
    """-v/-q/--log-format on each command too (``reindex-fsm history -v``)."""
    f = click.option(
        "--log-format",
        type=click.Choice(logs.FORMATS),
        expose_value=False,
        callback=_set_log_option,
        help="Log lines on stderr as text or JSON lines (also before the command) "
        "[env REINDEX_FSM_LOG_FORMAT].",
    )(f)
    f = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_set_log_option,
        help="Only warnings, errors and notes: no progress (also before the command).",
    )(f)
    f = click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_set_log_option,
        help="More log lines on stderr: -v the steps, -vv the client's requests "
        "(also before the command).",
    )(f)
    return f


def common(f: Any) -> Any:
    f = log_options(f)
    f = click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=True,
        callback=_set_json,
        help="Print one JSON object on stdout.",
    )(f)
    f = click.option(
        "--state-db",
        envvar="REINDEX_FSM_STATE_DB",
        metavar="URL",
        help="State database: an SQLAlchemy URL or a file path "
        "[default: state/reindex_fsm.db; env REINDEX_FSM_STATE_DB].",
    )(f)
    return f


def engine_options(f: Any) -> Any:
    f = click.option(
        "--engine-url",
        envvar="REINDEX_FSM_ENGINE_URL",
        metavar="URL",
        help="Cluster URL [env REINDEX_FSM_ENGINE_URL; default "
        f"{api.DEFAULT_ENGINE_URL}, or the run's stored URL].",
    )(f)
    f = click.option(
        "--engine",
        "engine_kind",
        default="auto",
        show_default=True,
        type=click.Choice(api.ENGINE_KINDS),
        help="Engine flavour; auto asks GET /.",
    )(f)
    for flag, key, env, what in CONNECTION_OPTIONS:
        f = click.option(
            flag,
            key,
            envvar=env,
            metavar=what,
            expose_value=False,
            callback=_set_client_option,
            help=CONNECTION_HELP[key] + f" [env {env}]",
        )(f)
    f = click.option(
        "--insecure",
        "insecure",
        is_flag=True,
        expose_value=False,
        callback=_set_client_option,
        help="Do not verify the engine's TLS certificate (prints a warning). Verification "
        "is on by default.",
    )(f)
    return f


# --flag, client option, environment variable, metavar: the engine's credentials and TLS.
# Never stored, printed or logged: the state database keeps the URL without credentials.
CONNECTION_OPTIONS = (
    ("--api-key", "api_key", "REINDEX_FSM_API_KEY", "KEY"),
    ("--username", "username", "REINDEX_FSM_USERNAME", "USER"),
    ("--password", "password", "REINDEX_FSM_PASSWORD", "PASSWORD"),
    ("--ca-certs", "ca_certs", "REINDEX_FSM_CA_CERTS", "FILE"),
)
CONNECTION_HELP = {
    "api_key": "API key (Elasticsearch/OpenSearch `ApiKey` header); not with a password.",
    "username": "User for basic auth (or user:password@ in the URL).",
    "password": "Password for basic auth; prefer the environment variable, which "
    "`ps` does not show.",
    "ca_certs": "CA bundle (PEM) to verify the engine's certificate with.",
}


def _set_client_option(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Connection options go to the client factory (Config.client_options), not to the
    command functions: every command that talks to the engine takes them alike."""
    if value is None or value is False:
        return
    options = ctx.find_root().meta.setdefault("client_options", {})
    if param.name == "insecure":
        options["verify_certs"] = False
        _warn("--insecure: the engine's TLS certificate is NOT verified")
        return
    if param.name == "ca_certs" and not Path(value).is_file():
        raise click.BadParameter(f"{value} is not a readable file", ctx=ctx, param=param)
    if param.name == "password" and (
        ctx.get_parameter_source("password") is click.core.ParameterSource.COMMANDLINE
    ):
        _warn("--password on the command line is visible to `ps`: prefer REINDEX_FSM_PASSWORD")
    options[str(param.name)] = value


def _config(
    ctx: click.Context,
    state_db: str | None = None,
    engine_url: str | None = None,
    engine_kind: str | None = None,
) -> Config:
    base = ctx.find_root().obj if isinstance(ctx.find_root().obj, Config) else Config()
    cfg = replace(base)
    if state_db:
        cfg.state_db = state_db
    if engine_url and ctx.get_parameter_source("engine_url") is not ParameterSource.ENVIRONMENT:
        cfg.engine_url = engine_url  # the variable is read by Config: a run's URL wins over it
    if engine_kind:
        cfg.engine_kind = engine_kind
    given = ctx.find_root().meta.get("client_options")
    if given:
        cfg.client_options = {**cfg.client_options, **given}
    if isinstance(cfg.reporter, SilentReporter):
        cfg.reporter = _reporter(ctx)
    cfg.warn = _warn
    return cfg


def _reporter(ctx: click.Context) -> Reporter:
    """The progress display: JSON lines with --json, a bar on a terminal, else lines.
    All on stderr; kept in the root context so that it is closed however the command
    ends."""
    meta = ctx.find_root().meta
    quiet = bool(meta.get("quiet"))
    reporter: Reporter
    if _json_mode(ctx):
        reporter = JsonReporter(sys.stderr, quiet=quiet)
    elif (console := _err()).is_terminal:
        reporter = BarReporter(console, quiet=quiet)
    else:
        reporter = LineReporter(sys.stderr, quiet=quiet)
    meta["reporter"] = reporter
    return reporter


def _close_reporter(ctx: click.Context) -> None:
    reporter = ctx.find_root().meta.get("reporter")
    if reporter is not None:
        reporter.close()


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def _print_outcome(ctx: click.Context, outcome: Outcome) -> None:
    _close_reporter(ctx)
    data = summary(outcome.record)
    if outcome.exit_code != ExitCode.OK:  # the summary goes to stdout; the error, here too
        _run_error_line(outcome.record)
    held = outcome.record.write_policy or {}
    if write_policy.is_blocked(held):
        click.echo(
            f"warning: writes to {held.get('index')} are still BLOCKED by run "
            f"{outcome.record.id} ({outcome.record.state}): `reindex-fsm resume "
            f"{outcome.record.id}` or `reindex-fsm abort {outcome.record.id}` lifts the block",
            err=True,
        )
    if _json_mode(ctx):
        _emit_json(data)
    else:
        _print_summary(data)
    ctx.exit(int(outcome.exit_code))


def _confirm(lines: list[str], question: str) -> None:
    """Show ``lines`` and ask ``question`` [y/N] on stderr (stdout keeps the result), or
    on stdout when only stdout is a terminal (``2>log``); Declined (exit 10) unless the
    answer is yes."""
    err = sys.stderr.isatty() or not sys.stdout.isatty()
    for line in lines:
        click.echo(line, err=err)
    if not click.confirm(question, err=err):
        raise Declined("declined at the prompt: nothing was done")


def _need_terminal(what: str, flag: str = "--force") -> None:
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to {what} without confirmation: no terminal to ask on",
            hint=f"pass {flag} to skip the question",
        )


def _run_error_line(record: Any) -> None:
    """The one stderr line of a start/resume/abort whose run did not reach its goal."""
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


def _print_summary(data: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for key in api.KEY_FIELDS:
        if data.get(key) is not None:
            render.add_row(table, render.text(key, "bold"), data[key])
    render.print_out(table)


def _print_verification(v: dict[str, Any]) -> None:
    """What the last verification compared and what differed, one row per check."""
    table = Table(title="verification", show_header=False)
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


def _alias_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """--alias is one alias name (no pattern, no list), refused before anything is opened."""
    return None if value is None else check_alias_name(value)


def _load_json_file(path: str | None, what: str) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        data = json.loads(read_text(path, f"--{what} file"))
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{what} file {path} is not valid JSON (line {exc.lineno}): {exc.msg}",
            hint="fix the file; nothing was done",
        ) from exc
    if not isinstance(data, dict):
        raise UsageError(f"{what} file {path} must hold a JSON object")
    if what == "settings" and isinstance(data.get("settings"), dict):
        data = data["settings"]
    if what == "mappings" and isinstance(data.get("mappings"), dict):
        data = data["mappings"]
    return data


# -- commands ---------------------------------------------------------------------------
@click.group(
    cls=ReindexGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=f"\b\nExit codes:\n{EXIT_CODES_HELP}",
)
@click.version_option(__version__, prog_name="reindex-fsm")
# -- progress and logging (issue 6) --
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More log lines on stderr: -v the steps and lease renewals (debug), "
    "-vv also the engine client's requests and retries.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Only warnings, errors and notes (e.g. writes blocked): no progress.",
)
@click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS),
    default="text",
    show_default=True,
    envvar="REINDEX_FSM_LOG_FORMAT",
    help="Log lines on stderr as text or one JSON object per line [env REINDEX_FSM_LOG_FORMAT].",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, log_format: str) -> None:
    """Rebuild the index behind a live Elasticsearch/OpenSearch alias, resumably.

    \b
    Example:
      reindex-fsm start --alias documents --verify --rollback-on-failure --force
    """
    ctx.meta.update(verbose=verbose, quiet=quiet, log_format=log_format)
    _configure_logs(ctx.meta)


def _recompute_options(enabled: bool, **given: Any) -> dict[str, Any]:
    """The --recompute-embeddings options as RunOptions fields; they need the flag."""
    defaults = RunOptions()
    if not enabled:
        named = [k for k, v in given.items() if v != getattr(defaults, k)]
        if named:
            flag = "--" + named[0].replace("_", "-")
            raise UsageError(f"{flag} needs --recompute-embeddings")
        return {}
    mapping = given.pop("vector_mapping")
    if mapping is not None:
        try:
            parsed = json.loads(mapping)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--vector-mapping is not JSON: {exc}") from exc
        if not isinstance(parsed, dict) or "type" not in parsed:
            raise UsageError(
                "--vector-mapping must be a JSON object with a type",
                hint='e.g. \'{"type": "float"}\'',
            )
        given["vector_mapping"] = parsed
    return {"recompute_embeddings": True, **given}


def _verify_options(
    level: str | None,
    recompute_embeddings: bool,
    sample: int | None,
    queries_file: str | None,
    top_k: int,
    min_overlap: float,
) -> dict[str, Any]:
    """The --verify* options as RunOptions fields; the queries file is read here, before
    anything is written. --verify-sample means "N random documents instead of all" for
    both checks that sample: the deep comparison and a recompute run's re-embedding."""
    deep = level == "deep"
    if sample is not None and not deep and not recompute_embeddings:
        raise UsageError("--verify-sample needs --verify deep (or --recompute-embeddings)")
    defaults = RunOptions()
    query_options = {
        "--verify-queries": queries_file is not None,
        "--verify-top-k": top_k != defaults.verify_top_k,
        "--verify-min-overlap": min_overlap != defaults.verify_min_overlap,
    }
    named = [flag for flag, given in query_options.items() if given]
    if named and not deep:
        raise UsageError(f"{named[0]} needs --verify deep")
    if named and queries_file is None:
        raise UsageError(f"{named[0]} needs --verify-queries FILE")
    out: dict[str, Any] = {
        "verify_level": level or "count",
        "deep_sample": sample if deep else None,
        "verify_top_k": top_k,
        "verify_min_overlap": min_overlap,
    }
    if sample is not None and recompute_embeddings:
        out["verify_sample"] = sample
    if queries_file is not None:
        out["verify_queries"] = deep_verify.load_queries(queries_file)
        out["verify_queries_file"] = queries_file
    return out


@cli.command()
@click.option(
    "--alias", required=True, callback=_alias_name, help="The alias to move to a new index."
)
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing to the engine.")
@click.option(
    "--verify",
    type=click.Choice(["count", "deep"]),
    is_flag=False,
    flag_value="count",
    default=None,
    help="Before the swap, check the target: --verify (= count, the default) requires its "
    "count to equal the source's; --verify deep also compares every document's ID and "
    "_source hash, the mappings and the --verify-queries.",
)
@click.option(
    "--no-verify",
    is_flag=True,
    help="Do not compare the target's count with the source's before the swap (warns).",
)
@click.option(
    "--allow-shrink",
    is_flag=True,
    help="Allow a target that holds under 90% of the source's documents to be swapped in.",
)
@click.option(
    "--verify-sample",
    type=click.IntRange(min=1, max=deep_verify.MAX_SAMPLE),
    metavar="N",
    help="Check N random documents instead of all: with --verify deep, the documents "
    "compared; with --recompute-embeddings, the documents embedded again [default 50].",
)
@click.option(
    "--verify-queries",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="With --verify deep: run each query of FILE (one a line: JSON query DSL, or "
    "text for a simple_query_string) on both indices; require top-k overlap.",
)
@click.option(
    "--verify-top-k",
    type=click.IntRange(min=1, max=deep_verify.MAX_SAMPLE),
    default=10,
    show_default=True,
    help="With --verify-queries: hits compared per query.",
)
@click.option(
    "--verify-min-overlap",
    type=click.FloatRange(min=0.0, max=1.0),
    default=0.9,
    show_default=True,
    help="With --verify-queries: least share of the source's top-k IDs found in the "
    "target's top-k.",
)
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--rollback-on-failure",
    is_flag=True,
    help="On failure, cancel the copy and delete the target (else: FAILED, kept).",
)
@click.option(
    "--keep-block-on-failure",
    is_flag=True,
    help="A FAILED run keeps its write block on the source until resumed or aborted "
    "(default: it comes off; a resume blocks again and copies what changed).",
)
@click.option(
    "--target-index",
    metavar="NAME",
    help="Name of the new index [default: <alias>-<UTC timestamp>].",
)
@click.option(
    "--settings",
    "settings_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="JSON settings to apply over the source's (nested or flat keys).",
)
@click.option(
    "--mappings",
    "mappings_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="JSON mappings: each field and top-level key given replaces the source's.",
)
@click.option(
    "--set",
    "set_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="One setting override, e.g. index.number_of_shards=3 (repeatable).",
)
@click.option(
    "--no-bulk-tuning",
    is_flag=True,
    help="Keep the final replicas and refresh interval during the copy too "
    "(default: 0 replicas and no refresh while copying, restored before verify).",
)
@click.option(
    "--copy-set",
    "copy_set_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A setting the target has only while it is copied into, winning over the "
    "bulk-load tuning, e.g. index.refresh_interval=30s (repeatable); its final value "
    "(the source's, or --set's) is put back before verify.",
)
@click.option(
    "--requests-per-second",
    callback=lambda _c, _p, v: None if v is None else _rate(v, "--requests-per-second"),
    metavar="N",
    help="Throttle the _reindex copy: a positive number (unlimited or -1: no throttle).",
)
@click.option(
    "--slices", default="auto", show_default=True, help="_reindex slices: a number or auto."
)
@click.option(
    "--write-policy",
    type=click.Choice(["block", "catch-up"]),
    default="block",
    show_default=True,
    help="Writes to the source during the run: block = refused (403) from just before the "
    "copy until the swap; catch-up = allowed, copied again afterwards by --since-field, "
    "then a short final block.",
)
@click.option(
    "--since-field",
    metavar="FIELD",
    help="With --write-policy catch-up: the date field writers set on every write.",
)
@click.option(
    "--catch-up-margin",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Each catch-up pass starts this much before the previous one did "
    "(writers' clock skew and refresh delay).",
)
@click.option(
    "--catch-up-max-passes",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="Catch-up passes at most; the last one runs under the final block.",
)
@click.option(
    "--recompute-embeddings",
    is_flag=True,
    help="Copy by embedding each document's text and bulk-indexing it with its vector "
    "(instead of _reindex).",
)
@click.option(
    "--documents-path",
    type=click.Path(dir_okay=False),
    metavar="FILE.jsonl",
    help="With --recompute-embeddings: read documents from this JSONL file "
    "[default: the source index].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Documents embedded and indexed per batch (and per checkpoint).",
)
@click.option(
    "--embedder",
    default="hashing",
    show_default=True,
    metavar="NAME|MODULE:FUNCTION",
    help="hashing, minilm, zeros (tests only), an entry point of group "
    "reindex_fsm.embedders, or module:function.",
)
@click.option(
    "--id-field", metavar="FIELD", help="Document ID field [default: id; the source's _id]."
)
@click.option(
    "--text-field",
    default="text",
    show_default=True,
    metavar="FIELD|TEMPLATE",
    help='Field to embed, or a template of fields such as "{title}. {body}".',
)
@click.option(
    "--vector-field",
    default="embedding",
    show_default=True,
    metavar="FIELD",
    help="Field that receives the vector.",
)
@click.option(
    "--vector-mapping",
    metavar="JSON",
    help='Mapping of the vector field, e.g. \'{"type": "float"}\' [default: dense_vector '
    "on Elasticsearch, knn_vector on OpenSearch with k-NN].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes that embed in parallel (for a CPU-bound embedder).",
)
@click.option(
    "--skip-invalid",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write invalid input lines with their reason to FILE and go on (else: stop).",
)
@click.option(
    "--max-line-bytes",
    type=click.IntRange(min=1),
    default=4 * 2**20,
    show_default=True,
    metavar="BYTES",
    help="With --documents-path: a longer JSONL line is refused (or set aside with "
    "--skip-invalid); memory per line and batch is bounded by it.",
)
@click.option(
    "--lease-ttl",
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    metavar="SECONDS",
    help="The engine lease on the alias expires this long after its last renewal "
    "(renewed every third of it); a killed run's alias is free again after it.",
)
@click.option(
    "--force-unlock",
    is_flag=True,
    help="Take the engine lease on the alias even if another run holds it (a warning "
    "names that run). Only when its process is gone for sure.",
)
@click.option(
    "--skip-preflight",
    multiple=True,
    type=click.Choice(CHECKS),
    metavar="CHECK",
    help=f"Skip one preflight check ({', '.join(CHECKS)}); repeatable.",
)
@click.option(
    "--disk-headroom",
    type=click.FloatRange(min=0, min_open=True),
    default=1.2,
    show_default=True,
    metavar="FACTOR",
    help="The disk check wants the source's primary store x (1 + replicas) x FACTOR free "
    "on the data nodes, below the cluster's low disk watermark.",
)
@click.option(
    "--pipeline",
    metavar="NAME",
    help="Ingest pipeline every copied document goes through (_reindex dest.pipeline); must exist.",
)
@click.option(
    "--script",
    "script_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Script run on every copied document (_reindex script): painless source, or a "
    'JSON object {"source", "lang", "params"}.',
)
@engine_options
@common
@click.pass_context
def start(
    ctx: click.Context,
    alias: str,
    dry_run: bool,
    verify: str | None,
    no_verify: bool,
    allow_shrink: bool,
    verify_sample: int | None,
    verify_queries: str | None,
    verify_top_k: int,
    verify_min_overlap: float,
    force: bool,
    rollback_on_failure: bool,
    keep_block_on_failure: bool,
    target_index: str | None,
    settings_file: str | None,
    mappings_file: str | None,
    set_pairs: tuple[str, ...],
    no_bulk_tuning: bool,
    copy_set_pairs: tuple[str, ...],
    requests_per_second: float | None,
    slices: str,
    write_policy: str,
    since_field: str | None,
    catch_up_margin: float,
    catch_up_max_passes: int,
    recompute_embeddings: bool,
    documents_path: str | None,
    batch_size: int,
    embedder: str,
    id_field: str | None,
    text_field: str,
    vector_field: str,
    vector_mapping: str | None,
    workers: int,
    skip_invalid: str | None,
    max_line_bytes: int,
    lease_ttl: float,
    force_unlock: bool,
    skip_preflight: tuple[str, ...],
    disk_headroom: float,
    pipeline: str | None,
    script_file: str | None,
    engine_url: str | None,
    engine_kind: str,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Plan a run on ALIAS and drive it to the swap.

    Before anything is written, preflight checks (cluster health, source open, _source
    stored, disk space, privileges) refuse a start that cannot succeed (exit 13), and
    an engine lease on the alias keeps out runs of other state databases (exit 7).

    \b
    Examples:
      reindex-fsm start --alias documents --dry-run
      reindex-fsm start --alias documents --verify --rollback-on-failure --force
      reindex-fsm start --alias documents --set index.number_of_shards=3 --verify --force
      reindex-fsm start --alias documents --verify deep --verify-queries queries.txt --force
      reindex-fsm start --alias documents --pipeline add-fields --script fix.painless --force
    """
    overrides = flatten_settings(_load_json_file(settings_file, "settings") or {})
    overrides.update(flatten_settings(parse_set(set_pairs)))
    if slices != "auto" and not slices.isdigit():
        raise UsageError(f"--slices {slices!r} is not a number or auto")
    if no_verify and verify is not None:
        raise UsageError(f"--verify {verify} and --no-verify contradict each other")
    options = RunOptions(
        verify=not no_verify,
        allow_shrink=allow_shrink,
        keep_block_on_failure=keep_block_on_failure,
        **_verify_options(
            verify,
            recompute_embeddings,
            verify_sample,
            verify_queries,
            verify_top_k,
            verify_min_overlap,
        ),
        rollback_on_failure=rollback_on_failure,
        target_index=target_index,
        settings_overrides=overrides,
        mappings_override=_load_json_file(mappings_file, "mappings"),
        requests_per_second=requests_per_second,
        slices=slices if slices == "auto" else int(slices),
        bulk_tuning=not no_bulk_tuning,
        copy_settings_overrides=flatten_settings(parse_set(copy_set_pairs)),
        write_policy=write_policy,
        since_field=since_field,
        catch_up_margin_s=catch_up_margin,
        catch_up_max_passes=catch_up_max_passes,
        **_recompute_options(
            recompute_embeddings,
            documents_path=documents_path,
            batch_size=batch_size,
            embedder=embedder,
            id_field=id_field,
            text_field=text_field,
            vector_field=vector_field,
            vector_mapping=vector_mapping,
            workers=workers,
            skip_invalid=skip_invalid,
            max_line_bytes=max_line_bytes,
        ),
        lease_ttl_s=lease_ttl,
        skip_preflight=tuple(skip_preflight),
        disk_headroom=disk_headroom,
        pipeline=pipeline,
        script=load_script(script_file) if script_file else None,
    )
    check_options(options)  # throttle and slices, before anything is opened
    if no_verify:
        _warn("--no-verify: the target's document count is NOT compared with the source's")
    if options.recompute_embeddings and options.embedder == "zeros":
        click.echo(
            "warning: the zeros embedder writes all-zero vectors: it is for tests only", err=True
        )
    cfg = _config(ctx, state_db, engine_url, engine_kind)
    if dry_run:
        planned = api.plan(cfg, alias, options)
        data = {
            "dry_run": True,
            "run_id": None,
            "state": None,
            "task_id": None,
            "target_count": None,
            "error": None,
            **planned.to_dict(),
            "steps": api.describe(planned, options),
            "lease": api.lease_holder(cfg, alias),
        }
        data["run_id"] = None  # nothing is stored: a real start picks its own ID
        if as_json:
            _emit_json(data)
        else:
            _out().print_json(json.dumps(data, default=str))
        return
    planned = None
    if not force:
        if not sys.stdin.isatty():
            raise UsageError(
                "refusing to start without confirmation: no terminal to ask on",
                hint="pass --force (and try --dry-run first)",
            )
        planned = api.plan(cfg, alias, options)
        if ctx.find_root().meta.get("verbose"):  # the full plan: -v (or --dry-run)
            click.echo(json.dumps({"steps": api.describe(planned, options)}, indent=2), err=True)
        _confirm(
            render.confirmation(planned, options),
            f"Move alias {alias} from {planned.source_index} to {planned.target_index}?",
        )
    _print_outcome(ctx, api.start(cfg, alias, options, planned, force_unlock=force_unlock))


@cli.command()
@click.argument("run_id")
@click.option(
    "--force-unlock",
    is_flag=True,
    help="Take the engine lease on the run's alias even if another run holds it "
    "(a warning names that run).",
)
@engine_options
@common
@click.pass_context
def resume(
    ctx: click.Context,
    run_id: str,
    force_unlock: bool,
    engine_url: str | None,
    engine_kind: str,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Continue RUN_ID from its last checkpoint (after a crash, or to retry a FAILED run).

    \b
    Example:
      reindex-fsm resume 3f2a9c1b7d4e
    """
    cfg = _config(ctx, state_db, engine_url, engine_kind)
    _print_outcome(ctx, api.resume(cfg, run_id, force_unlock=force_unlock))


@cli.command()
@click.argument("run_id")
@engine_options
@common
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

    \b
    Example:
      reindex-fsm abort 3f2a9c1b7d4e
    """
    _print_outcome(ctx, api.abort(_config(ctx, state_db, engine_url, engine_kind), run_id))


@cli.command()
@click.argument("run_id")
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="Also write the run as one self-contained HTML page (timeline, error, state "
    "diagram) to FILE.",
)
@click.option(
    "--diagram",
    is_flag=True,
    help="Also print the state diagram as Mermaid source (the path taken and the current "
    "state highlighted); --json always has it.",
)
@common
@click.pass_context
def show(
    ctx: click.Context,
    run_id: str,
    report_file: str | None,
    diagram: bool,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Show RUN_ID: its state, counts and error first; for an unfinished run whether it
    blocks writes and the commands that end it; then its task status, the timeline of its
    transitions with the time spent in each state, and with --diagram its state diagram
    (Mermaid).

    \b
    Example:
      reindex-fsm show 3f2a9c1b7d4e --report run.html
    """
    record, events, picture = api.show_picture(_config(ctx, state_db), run_id, report_file)
    data = {
        **summary(record),
        "options": record.options,
        "plan": record.plan,
        "events": [e.as_dict() for e in events],
        **picture,
        "report": report_file,
    }
    if as_json:
        _emit_json(data)
        return
    _print_summary(data)
    lines: list[Any] = []
    failure, task = picture["failure"], picture["task"]
    if failure["error"] or failure["error_kind"]:
        lines.append(
            f"cause: {failure['error_kind'] or '-'} (failed from {failure['failed_from'] or '-'})"
        )
    lines.extend(f"next: {step}" for step in picture["next_steps"])
    if task["task_id"]:
        progress = json.dumps(task["progress"], default=str) if task["progress"] else "-"
        lines.append(
            f"task: {task['task_id']}, copy attempts {task['copy_attempts']}, "
            f"last progress {progress}"
        )
    render.print_out(*lines)
    if record.verification:
        _print_verification(record.verification)
    table = render.table(f"timeline of run {record.id}")
    for col in ("at", "from", "to", "trigger", "time in state", "detail"):
        table.add_column(col)
    for step in picture["timeline"]:
        seconds = report.human_seconds(step["seconds"])
        render.add_row(
            table,
            step["at"][:19].replace("T", " "),
            step["from"] or "",
            step["to"],
            step["trigger"],
            seconds + (" (so far)" if step["ongoing"] else ""),
            json.dumps(step["detail"], default=str) if step["detail"] else "",
        )
    lines = [
        table,
        "time in state: "
        + ", ".join(f"{k} {report.human_seconds(v)}" for k, v in picture["time_in_state"].items()),
        "path: " + " -> ".join(picture["path"]),
    ]
    if diagram:
        lines += ["state diagram (Mermaid):", picture["diagram"]]
    if report_file:
        lines.append(f"report written to {report_file}")
    render.print_out(*lines)


@cli.command()
@click.option("--alias", callback=_alias_name, help="Only runs on this alias.")
@click.option("--state", help="Only runs in this state (e.g. FAILED).")
@click.option("--since", type=click.DateTime(), help="Only runs started at or after (UTC).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most this many runs.",
)
@common
@click.pass_context
def history(
    ctx: click.Context,
    alias: str | None,
    state: str | None,
    since: datetime | None,
    limit: int,
    state_db: str | None,
    as_json: bool,
) -> None:
    """List runs, newest first.

    \b
    Example:
      reindex-fsm history --alias documents --state FAILED
    """
    since_utc = since.replace(tzinfo=UTC) if since else None
    rows = api.history_rows(_config(ctx, state_db), alias, state, since_utc, limit)
    if as_json:
        _emit_json(rows)
        return
    table = Table(title="reindex-fsm runs")
    columns = ("run", "alias", "source -> target", "state", "started", "duration")
    for col in (*columns, "documents", "result", "error"):
        table.add_column(col)
    for r in rows:
        unfinished = r["finished_at"] is None and r["state"] not in TERMINAL
        render.add_row(
            table,
            r["run_id"],
            r["alias"],
            f"{r['source_index']} -> {r['target_index']}",
            r["state"],
            r["created_at"][:19].replace("T", " "),
            report.human_seconds(r["duration_s"]) + (" (so far)" if unfinished else ""),
            report.documents_cell(r),
            r["result"],
            r["error"] or "",
        )
    render.print_out(table)


# -- undo, cleanup, rethrottle (issue 5) -------------------------------------------------


@cli.command()
@click.argument("run_id")
@click.option(
    "--force",
    is_flag=True,
    help="Undo even though the target received documents since the swap (they are not in "
    "the previous index). Does not ask either.",
)
@click.option("--yes", "-y", "yes", is_flag=True, help="Do not ask for confirmation.")
@engine_options
@common
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
    cfg = _config(ctx, state_db, engine_url, engine_kind)
    record = cfg.repo().get(run_id)
    if not (yes or force) and record.state is State.SWAPPED:
        _need_terminal("undo", "--yes")
        _confirm(
            [
                f"undo run {record.id}: alias {record.alias} (and the other aliases the swap "
                f"moved) from {record.target_index} back to {record.source_index}",
                f"writes made to {record.target_index} since the swap are not in "
                f"{record.source_index}: undo refuses them without --force",
            ],
            f"Move alias {record.alias} back to {record.source_index}?",
        )
    _print_outcome(ctx, Outcome(api.undo(cfg, run_id, force), undone=True))


@cli.command()
@click.option(
    "--alias",
    required=True,
    callback=_alias_name,
    help="The alias whose earlier indices to delete.",
)
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    required=True,
    help="How many of the newest earlier indices to keep (for undo).",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Do not ask for confirmation; also delete the index undo of the newest swapped run "
    "needs (kept otherwise).",
)
@engine_options
@common
@click.pass_context
def cleanup(
    ctx: click.Context,
    alias: str,
    keep: int,
    dry_run: bool,
    force: bool,
    engine_url: str | None,
    engine_kind: str,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Delete the indices earlier runs of ALIAS created, beyond the newest N.

    Only indices whose mappings' _meta names reindex-fsm, this alias and a run of this
    state database (whose target they are) are considered. Never deleted, nor counted in
    N: an index carrying any alias, and the source or target of an unfinished run. The
    index that `undo` of the newest swapped run moves the alias back to is kept too, unless
    --force. Lists what it would delete and asks first on a terminal (--force: no question).

    \b
    Example:
      reindex-fsm cleanup --alias documents --keep 1 --dry-run
    """
    cfg = _config(ctx, state_db, engine_url, engine_kind)
    only: set[str] | None = None
    if not dry_run and not force:
        listed = api.cleanup(cfg, alias, keep, dry_run=True)
        doomed = [r for r in listed if r.action == "delete"]
        if doomed:
            _need_terminal("delete indices", "--force")
            _confirm(
                [f"delete {r.index} ({r.reason})" for r in doomed]
                + [f"keep   {r.index} ({r.reason})" for r in listed if r.action != "delete"],
                f"Delete {len(doomed)} {'index' if len(doomed) == 1 else 'indices'} of alias "
                f"{alias}?",
            )
        only = {r.index for r in doomed}
    rows = api.cleanup(cfg, alias, keep, dry_run, only=only, delete_undo_index=force)
    if as_json:
        _emit_json({"dry_run": dry_run, "indices": [r.as_dict() for r in rows]})
        return
    title = f"reindex-fsm indices of alias {alias}" + (" (dry run)" if dry_run else "")
    table = render.table(title)
    for col in ("index", "created", "run", "action", "reason"):
        table.add_column(col)
    for r in rows:
        render.add_row(table, r.index, r.created[:19], r.run_id or "", r.action, r.reason)
    render.print_out(table)


def _rate(value: str, what: str = "requests per second") -> float | None:
    """RPS: a positive number; ``unlimited`` or -1 for no throttle (None). The same rule
    for start's --requests-per-second and rethrottle (runplan.check_requests_per_second)."""
    if value.lower() == "unlimited" or value.strip() == "-1":
        return None
    try:
        rate = float(value)
        check_requests_per_second(rate, what)
    except (ValueError, UsageError) as exc:
        raise UsageError(
            f"{what} {value!r} is not a positive number",
            hint="give e.g. 500, or unlimited (or -1) for no throttle",
        ) from exc
    return rate


@cli.command(context_settings={"ignore_unknown_options": True})  # RPS may be -1
@click.argument("run_id")
@click.argument("rps")
@engine_options
@common
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
    rate = _rate(rps)
    data = api.rethrottle(_config(ctx, state_db, engine_url, engine_kind), run_id, rate)
    if as_json:
        _emit_json(data)
    else:
        click.echo(
            f"run {run_id}: copy task {data['task_id']} now at {data['requests_per_second']} "
            "requests per second"
        )


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


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    cli(prog_name="reindex-fsm")


if __name__ == "__main__":
    main()
