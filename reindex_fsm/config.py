"""Configuration: the one place a command's flags, the environment, a run's stored values
and the defaults are resolved, and :class:`Config`, what every verb of api.py takes.

The order, per setting:

- state database: ``--state-db`` > ``REINDEX_FSM_STATE_DB`` > ``state/reindex_fsm.db``;
  a bare path (no ``://``) is a SQLite file (:func:`resolve_state_db`, also used by the
  Alembic environment of ``alembic -c alembic.ini upgrade head``);
- engine URL: ``--engine-url`` > the run's stored URL > ``REINDEX_FSM_ENGINE_URL`` >
  ``http://localhost:9200``: a stored run goes to its own cluster whatever the variable
  says (a warning names it, :meth:`Config.run_engine_url`);
- engine kind, credentials, TLS and the log format: the flag > its variable > the default.
  Those variables are named here (:data:`ENV`) and read by the CLI's options
  (``reindex_fsm.cli.options``), which the connection flags belong to.

This module is the only one of the package that reads ``os.environ`` (but for the crash
points, a test mechanism of crashpoints.py, and the sample-data tool of testing/).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .crashpoints import Crashpoints
from .errors import UsageError
from .events import Reporter, SilentReporter
from .flags import Flag
from .logs import FORMATS as LOG_FORMATS
from .store import DEFAULT_STATE_DB, open_store, state_db_url

if TYPE_CHECKING:  # SQLAlchemy is imported where a database is opened
    from .engine.base import Engine
    from .store import RunRepository

DEFAULT_ENGINE_URL = "http://localhost:9200"
ENGINE_KINDS = ("auto", "elasticsearch", "opensearch")

# Every environment variable of reindex-fsm, by what it configures.
ENV = {
    "engine_url": "REINDEX_FSM_ENGINE_URL",
    "state_db": "REINDEX_FSM_STATE_DB",
    "log_format": "REINDEX_FSM_LOG_FORMAT",
    "api_key": "REINDEX_FSM_API_KEY",
    "username": "REINDEX_FSM_USERNAME",
    "password": "REINDEX_FSM_PASSWORD",
    "ca_certs": "REINDEX_FSM_CA_CERTS",
    # -- metrics and notifications: the notify URL may carry a token, so it is not stored --
    "notify_url": "REINDEX_FSM_NOTIFY_URL",
    # -- another cluster as the source (--source-url): its own credentials --
    "source_api_key": "REINDEX_FSM_SOURCE_API_KEY",
    "source_username": "REINDEX_FSM_SOURCE_USERNAME",
    "source_password": "REINDEX_FSM_SOURCE_PASSWORD",
    "source_ca_certs": "REINDEX_FSM_SOURCE_CA_CERTS",
}


def from_env(setting: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of ``setting``'s environment variable (None: unset or empty)."""
    return (os.environ if environ is None else environ).get(ENV[setting]) or None


def resolve_state_db(
    given: str | None,
    environ: Mapping[str, str] | None = None,
    *,
    default: str | None = None,
) -> str:
    """--state-db, else REINDEX_FSM_STATE_DB, else ``default`` (the Alembic environment's
    sqlalchemy.url) or state/reindex_fsm.db, as a SQLAlchemy URL: a bare path is a
    SQLite file."""
    chosen = given or from_env("state_db", environ) or default or DEFAULT_STATE_DB
    return state_db_url(chosen)


def resolve_engine_url(
    given: str | None, stored: str | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """--engine-url, else the run's stored URL, else REINDEX_FSM_ENGINE_URL, else the
    default: a stored run goes to its own cluster (its UUID is checked on top)."""
    return given or stored or from_env("engine_url", environ) or DEFAULT_ENGINE_URL


def ignored_engine_url_env(
    given: str | None, run_id: str, stored: str, environ: Mapping[str, str] | None = None
) -> str | None:
    """The warning when REINDEX_FSM_ENGINE_URL names another engine than a stored run's
    own, which wins (None: nothing to say)."""
    env_url = from_env("engine_url", environ)
    if given or not env_url or env_url.rstrip("/") == stored.rstrip("/"):
        return None
    return (
        f"REINDEX_FSM_ENGINE_URL ({env_url}) is not used: run {run_id} goes to its "
        f"own engine {stored} (give --engine-url to use another node of it)"
    )


def resolve_notify_url(given: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """--notify-url, else REINDEX_FSM_NOTIFY_URL, else none (metrics and notifications)."""
    return given or from_env("notify_url", environ)


def default_engine_factory(url: str, kind: str, **client_options: Any) -> Engine:
    from .engine.connect import connect

    return connect(url, kind, **client_options)


@dataclass
class Config:
    """What every verb takes: where the state database and the engine are, how to reach
    it, and the injected clock, sleep, crash points, reporter and warning line. None:
    resolved from the environment and the defaults (see the module docstring)."""

    state_db: str | None = None
    engine_url: str | None = None
    engine_kind: str = "auto"
    client_options: dict[str, Any] = field(default_factory=dict)
    engine_factory: Callable[..., Engine] = default_engine_factory
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    crash: Callable[[], Crashpoints] = Crashpoints.from_env
    reporter: Reporter = field(default_factory=SilentReporter)
    _repo: RunRepository | None = field(default=None, repr=False)
    # -- another cluster as the source: how to reach it (never stored; reindex_fsm.remote)
    source_client_options: dict[str, Any] = field(default_factory=dict, repr=False)
    warn: Callable[[str], None] = lambda _message: None  # one warning line for the operator
    # -- metrics and notifications: where a run's end is POSTed (reindex_fsm.notify) --
    notify_url: str | None = None

    def state_db_url(self) -> str:
        return resolve_state_db(self.state_db)

    def repo(self, read_only: bool = False) -> RunRepository:
        """The state database; ``read_only`` (show, history): create nothing, and open a
        file this process may not write without migrating it."""
        if self._repo is None:
            self._repo = open_store(self.state_db_url(), read_only=read_only)
        return self._repo

    def resolved_engine_url(self, stored: str | None = None) -> str:
        return resolve_engine_url(self.engine_url, stored)

    def engine(self, stored_url: str | None = None) -> Engine:
        if self.engine_kind not in ENGINE_KINDS:
            raise UsageError(f"--engine {self.engine_kind!r} is not one of {ENGINE_KINDS}")
        return self.engine_factory(
            self.resolved_engine_url(stored_url), self.engine_kind, **self.client_options
        )

    def run_engine(self, run_id: str, stored_url: str) -> Engine:
        """The engine of a stored run: its own URL unless --engine-url is given; a warning
        when REINDEX_FSM_ENGINE_URL names another."""
        warning = ignored_engine_url_env(self.engine_url, run_id, stored_url)
        if warning:
            self.warn(warning)
        return self.engine(stored_url)


# -- the configuration flags every command shares (generated by reindex_fsm.cli.options) ---
def _connection_flag(flag: str, key: str, metavar: str, help: str) -> Flag:
    """An engine credential or TLS flag. Never stored, printed or logged: the state
    database keeps the URL without credentials; they go to the client factory
    (Config.client_options), not to the verbs."""
    return Flag(
        (flag, key),
        f"{help} [env {ENV[key]}]",
        metavar=metavar,
        envvar=ENV[key],
        hook="client_option",
        expose_value=False,
    )


# In --help order.
ENGINE_FLAGS: tuple[Flag, ...] = (
    Flag(
        ("--insecure", "insecure"),
        "Do not verify the engine's TLS certificate (prints a warning). Verification "
        "is on by default.",
        kind="bool",
        hook="client_option",
        expose_value=False,
    ),
    _connection_flag(
        "--ca-certs", "ca_certs", "FILE", "CA bundle (PEM) to verify the engine's certificate with."
    ),
    _connection_flag(
        "--password",
        "password",
        "PASSWORD",
        "Password for basic auth; prefer the environment variable, which `ps` does not show.",
    ),
    _connection_flag(
        "--username", "username", "USER", "User for basic auth (or user:password@ in the URL)."
    ),
    _connection_flag(
        "--api-key",
        "api_key",
        "KEY",
        "API key (Elasticsearch/OpenSearch `ApiKey` header); not with a password.",
    ),
    Flag(
        ("--engine", "engine_kind"),
        "Engine flavour; auto asks GET /.",
        kind="choice",
        choices=ENGINE_KINDS,
        default="auto",
        show_default=True,
    ),
    Flag(
        ("--engine-url",),
        f"Cluster URL [env {ENV['engine_url']}; default "
        f"{DEFAULT_ENGINE_URL}, or the run's stored URL].",
        metavar="URL",
    ),
)


# -- another cluster as the source (--source-url, a start option): its credentials, given
# to every command that reaches the engine, since resume and abort read the source too.
def _source_flag(flag: str, key: str, metavar: str, help: str) -> Flag:
    return Flag(
        (flag, key),
        f"{help} [env {ENV[key]}]",
        metavar=metavar,
        envvar=ENV[key],
        hook="source_client_option",
        expose_value=False,
    )


SOURCE_FLAGS = (
    Flag(
        ("--source-insecure", "source_insecure"),
        "Do not verify the source cluster's TLS certificate (prints a warning).",
        kind="bool",
        hook="source_client_option",
        expose_value=False,
    ),
    _source_flag(
        "--source-ca-certs", "source_ca_certs", "FILE", "CA bundle (PEM) of the source cluster."
    ),
    _source_flag(
        "--source-password",
        "source_password",
        "PASSWORD",
        "Password on the source cluster; prefer the environment variable.",
    ),
    _source_flag("--source-username", "source_username", "USER", "User on the source cluster."),
    _source_flag("--source-api-key", "source_api_key", "KEY", "API key on the source cluster."),
)
ENGINE_FLAGS = (*ENGINE_FLAGS, *SOURCE_FLAGS)
# -v/-q/--log-format: before the command name (the group's) and after it (each command's).
GROUP_LOG_FLAGS = (
    Flag(
        ("-v", "--verbose"),
        "More log lines on stderr: -v the steps and lease renewals (debug), "
        "-vv also the engine client's requests and retries.",
        kind="count",
    ),
    Flag(
        ("-q", "--quiet"),
        "Only warnings, errors and notes (e.g. writes blocked): no progress.",
        kind="bool",
    ),
    Flag(
        ("--log-format",),
        f"Log lines on stderr as text or one JSON object per line [env {ENV['log_format']}].",
        kind="choice",
        choices=LOG_FORMATS,
        default="text",
        show_default=True,
        envvar=ENV["log_format"],
    ),
)
COMMON_FLAGS = (
    Flag(
        ("--state-db",),
        "State database: an SQLAlchemy URL or a file path "
        f"[default: state/reindex_fsm.db; env {ENV['state_db']}].",
        metavar="URL",
    ),
    Flag(("--json", "as_json"), "Print one JSON object on stdout.", kind="bool", hook="json"),
    Flag(
        ("-v", "--verbose"),
        "More log lines on stderr: -v the steps, -vv the client's requests "
        "(also before the command).",
        kind="count",
        hook="log_option",
        expose_value=False,
    ),
    Flag(
        ("-q", "--quiet"),
        "Only warnings, errors and notes: no progress (also before the command).",
        kind="bool",
        hook="log_option",
        expose_value=False,
    ),
    Flag(
        ("--log-format",),
        "Log lines on stderr as text or JSON lines (also before the command) "
        f"[env {ENV['log_format']}].",
        kind="choice",
        choices=LOG_FORMATS,
        hook="log_option",
        expose_value=False,
    ),
)
