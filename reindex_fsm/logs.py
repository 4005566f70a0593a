"""Structured logs: one logger tree ``reindex_fsm.*``, every record carrying the run ID.

The run ID comes from a context variable set by the driver of a run (:func:`bind_run`);
a record may also carry its own (``extra={"run_id": ...}``: the lease heartbeat thread,
which does not share the context). The CLI calls :func:`configure` once per command:
text or JSON lines on stderr, at WARNING (``-q``), INFO (default) or DEBUG (``-v``).
The clients' loggers (elasticsearch/opensearch/elastic_transport: a line per request,
each retried failure at WARNING) are at ERROR by default (a failure the clients gave up
on is reported by the CLI in its own one line), WARNING with ``-v`` (the retries, one
line each), DEBUG with ``-vv`` (every request, and tracebacks); their ``*.trace``
loggers (request bodies) are never shown. Whatever a record says, ``user:password@`` in a URL
is cut out before it is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import warnings
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

ROOT = "reindex_fsm"
WARNINGS_LOGGER = "py.warnings"  # the library warnings (OpenSearchWarning, urllib3's...)
CLIENT_LOGGERS = ("elasticsearch", "elastic_transport", "opensearch", "urllib3", WARNINGS_LOGGER)
TRACE_LOGGERS = ("elasticsearch.trace", "opensearch.trace")
FORMATS = ("text", "json")

_run_id: ContextVar[str | None] = ContextVar("reindex_fsm_run_id", default=None)
_CREDENTIALS = re.compile(r"(?P<scheme>\w+://)[^/\s@]+@")
# LogRecord attributes that are not "extra" fields
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "run_id"}


def get_logger(name: str) -> logging.Logger:
    """The logger of a module of this package (``__name__``)."""
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


def bind_run(run_id: str | None) -> None:
    """Records logged from now on in this context carry ``run_id``."""
    _run_id.set(run_id)


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it removed."""
    return _CREDENTIALS.sub(r"\g<scheme>", text)


class RunIdFilter(logging.Filter):
    """Give every record a ``run_id`` (its own, else the context's, else None). Unless
    ``tracebacks``, a library's record loses its traceback: a retried connection error
    is one line."""

    def __init__(self, tracebacks: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = _run_id.get()
        if not self.tracebacks and not record.name.startswith(ROOT):
            record.exc_info, record.exc_text = None, None
        return True


# "GET http://host/x [status:404 request:0.001s]": a response the tool asked for and handles
# (an existence check, a lease that is free, a task that is gone) or turns into its own
# one-line error; the clients log every 4xx at WARNING.
_HANDLED_STATUS = re.compile(r"\[status:4\d\d\b")


class HandledResponseFilter(logging.Filter):
    """A client's line about a 4xx response is DEBUG (-vv), not WARNING: a 404 from an
    existence check is an answer, not a problem. Retries and 5xx keep their level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno == logging.WARNING
            and not record.name.startswith(ROOT)
            and _HANDLED_STATUS.search(record.getMessage())
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).getEffectiveLevel() <= logging.DEBUG
        return True


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: IO[str] | None = None,
    line: str | None = None,
) -> None:
    """A library's ``warnings.warn`` (OpenSearchWarning: a deprecation header from the
    engine; urllib3's InsecureRequestWarning) as one log line of ``py.warnings``, shown
    with -v, instead of two lines of source code on stderr."""
    logging.getLogger(WARNINGS_LOGGER).warning("%s: %s", category.__name__, message)


class TextFormatter(logging.Formatter):
    """``2026-11-25T23:12:01Z INFO reindex_fsm.runner [run 1a2b3c] message k=v``."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        run_id = getattr(record, "run_id", None)
        run = f" [run {run_id}]" if run_id else ""
        extra = "".join(f" {k}={v}" for k, v in _extra(record).items())
        line = f"{ts} {record.levelname} {record.name}{run} {record.getMessage()}{extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, run_id, message, then extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "run_id": getattr(record, "run_id", None),
            "message": record.getMessage(),
            **_extra(record),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(data, default=str))


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class _Handler(logging.StreamHandler[IO[str]]):
    """Ours, so that configuring again replaces it rather than adding a second one.
    The stream is looked up at each record: sys.stderr may be swapped (tests)."""

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self._fixed if self._fixed is not None else sys.stderr
        super().emit(record)


def level_for(verbose: int, quiet: bool) -> int:
    if quiet:
        return logging.WARNING
    return logging.DEBUG if verbose else logging.INFO


def configure(
    verbose: int = 0, quiet: bool = False, fmt: str = "text", stream: IO[str] | None = None
) -> logging.Handler:
    """Send the logs to ``stream`` (default: the current sys.stderr) in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {FORMATS}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(stream)
    handler.addFilter(RunIdFilter(tracebacks=verbose >= 2))
    handler.addFilter(HandledResponseFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # other libraries (alembic...): warnings only
    logging.getLogger(ROOT).setLevel(level_for(verbose, quiet))
    client_level = {0: logging.ERROR, 1: logging.WARNING}.get(verbose, logging.DEBUG)
    for name in CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(client_level)
    warnings.showwarning = _log_warning
    for name in TRACE_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    return handler
