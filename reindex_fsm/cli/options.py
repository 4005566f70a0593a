"""The click options, generated from the flag definitions of reindex_fsm.options (the
verbs' options) and reindex_fsm.config (engine, credentials, state database, logging),
and the callbacks those definitions name; :func:`config_for` turns the parsed
configuration flags into a :class:`~reindex_fsm.config.Config`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import logs
from ..config import COMMON_FLAGS, ENGINE_FLAGS, Config, resolve_notify_url
from ..errors import UsageError
from ..events import SilentReporter
from ..flags import Flag
from ..options import parse_rate
from .lazy import lazy
from .rendering import make_reporter, warn

if TYPE_CHECKING:  # imported on first use: see cli/lazy.py
    from .. import notify
    from ..steps import planning
else:
    notify = lazy("reindex_fsm.notify")
    planning = lazy("reindex_fsm.steps.planning")

Decorator = Callable[[Any], Any]


# -- the callbacks a flag definition names (Flag.hook) --------------------------------------
def _alias_name(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    """--alias is one alias name (no pattern, no list), refused before anything is opened;
    a repeatable --alias: each of its values."""
    if isinstance(value, tuple):
        return tuple(planning.check_alias_name(v) for v in value)
    return None if value is None else planning.check_alias_name(value)


def _rate(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    return None if value is None else parse_rate(value, param.opts[0])


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
    configure_logs(meta)


def configure_logs(meta: dict[str, Any]) -> None:
    verbose, quiet = meta.get("verbose", 0), bool(meta.get("quiet"))
    if verbose and quiet:
        raise UsageError("-v and -q contradict each other", hint="give one of them")
    logs.configure(verbose=verbose, quiet=quiet, fmt=meta.get("log_format", "text"))


def _set_client_option(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Connection options go to the client factory (Config.client_options), not to the
    command functions: every command that talks to the engine takes them alike."""
    if value is None or value is False:
        return
    options = ctx.find_root().meta.setdefault("client_options", {})
    if param.name == "insecure":
        options["verify_certs"] = False
        warn("--insecure: the engine's TLS certificate is NOT verified")
        return
    if param.name == "ca_certs" and not Path(value).is_file():
        raise click.BadParameter(f"{value} is not a readable file", ctx=ctx, param=param)
    if param.name == "password" and (
        ctx.get_parameter_source("password") is click.core.ParameterSource.COMMANDLINE
    ):
        warn("--password on the command line is visible to `ps`: prefer REINDEX_FSM_PASSWORD")
    options[str(param.name)] = value


def _set_notify_url(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """--notify-url: checked now, kept for Config.notify_url (config_for)."""
    if value:
        ctx.find_root().meta["notify_url"] = notify.check_url(value)


# -- another cluster as the source: its credentials go to Config.source_client_options --
def _set_source_client_option(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is None or value is False:
        return
    options = ctx.find_root().meta.setdefault("source_client_options", {})
    name = str(param.name).removeprefix("source_")
    if name == "insecure":
        options["verify_certs"] = False
        warn("--source-insecure: the source cluster's TLS certificate is NOT verified")
        return
    if name == "ca_certs" and not Path(value).is_file():
        raise click.BadParameter(f"{value} is not a readable file", ctx=ctx, param=param)
    if name == "password" and (
        ctx.get_parameter_source(str(param.name)) is click.core.ParameterSource.COMMANDLINE
    ):
        warn(
            "--source-password on the command line is visible to `ps`: prefer "
            "REINDEX_FSM_SOURCE_PASSWORD"
        )
    options[name] = value


HOOKS: dict[str, Callable[..., Any]] = {
    "alias_name": _alias_name,
    "rate": _rate,
    "json": _set_json,
    "log_option": _set_log_option,
    "client_option": _set_client_option,
    "notify_url": _set_notify_url,
    "source_client_option": _set_source_client_option,
}


# -- generation ---------------------------------------------------------------------------
def _click_type(flag: Flag) -> Any:
    if flag.kind == "choice":
        return click.Choice(flag.choices)
    if flag.kind == "int":
        if flag.min is None and flag.max is None:
            return int
        low = None if flag.min is None else int(flag.min)
        high = None if flag.max is None else int(flag.max)
        return click.IntRange(min=low, max=high)
    if flag.kind == "float":
        if flag.min is None and flag.max is None:
            return float
        return click.FloatRange(min=flag.min, max=flag.max, min_open=flag.min_open)
    if flag.kind == "path":
        return click.Path(dir_okay=False)
    if flag.kind == "datetime":
        return click.DateTime()
    return None


def click_option(flag: Flag) -> Decorator:
    """The click option of one flag definition."""
    kwargs: dict[str, Any] = {"help": flag.help}
    if flag.kind == "bool":
        kwargs["is_flag"] = True
    elif flag.kind == "count":
        kwargs["count"] = True
    else:
        kind = _click_type(flag)
        if kind is not None:
            kwargs["type"] = kind
    if flag.flag_value is not None:
        kwargs.update(is_flag=False, flag_value=flag.flag_value)
    if flag.default is not None:
        kwargs["default"] = flag.default
    elif flag.flag_value is not None:
        kwargs["default"] = None
    for key in ("show_default", "metavar", "multiple", "required", "envvar"):
        value = getattr(flag, key)
        if value:
            kwargs[key] = value
    if not flag.expose_value:
        kwargs["expose_value"] = False
    if flag.hook:
        kwargs["callback"] = HOOKS[flag.hook]
    return click.option(*flag.decls, **kwargs)


def with_flags(*groups: Iterable[Flag]) -> Decorator:
    """Add the flags of ``groups`` to a command, in this order in --help."""
    flags = [flag for group in groups for flag in group]

    def apply(f: Any) -> Any:
        for flag in reversed(flags):  # click lists the last decorator applied first
            f = click_option(flag)(f)
        return f

    return apply


def engine_flags(f: Any) -> Any:
    return with_flags(ENGINE_FLAGS)(f)


def common_flags(f: Any) -> Any:
    return with_flags(COMMON_FLAGS)(f)


def config_for(
    ctx: click.Context,
    state_db: str | None = None,
    engine_url: str | None = None,
    engine_kind: str | None = None,
    *,
    progress: bool = True,
) -> Config:
    """The Config of a command: the one the CLI was given (tests, embedding programs) or
    a new one, with the flags given over it; REINDEX_FSM_ENGINE_URL and
    REINDEX_FSM_STATE_DB are reindex_fsm.config's to read (a run's stored URL wins over
    the first). ``progress=False``: no progress display (show and history report none)."""
    root = ctx.find_root()
    base = root.obj if isinstance(root.obj, Config) else Config()
    cfg = replace(base)
    if state_db:
        cfg.state_db = state_db
    if engine_url:
        cfg.engine_url = engine_url
    if engine_kind:
        cfg.engine_kind = engine_kind
    given = root.meta.get("client_options")
    if given:
        cfg.client_options = {**cfg.client_options, **given}
    if any(p.name == "notify_url" for p in ctx.command.params):  # the verbs that end runs
        notify_url = resolve_notify_url(root.meta.get("notify_url") or cfg.notify_url)
        cfg.notify_url = None if notify_url is None else notify.check_url(notify_url)
    given_source = root.meta.get("source_client_options")
    if given_source:
        cfg.source_client_options = {**cfg.source_client_options, **given_source}
    if progress and isinstance(cfg.reporter, SilentReporter):  # not for a verb that only reads
        cfg.reporter = make_reporter(ctx)
    cfg.warn = warn
    return cfg
