"""``--notify-url URL``: one JSON event POSTed when a run (or a batch) ends.

The event (:func:`run_event`, :func:`batch_event`) holds what a chat channel or an
incident tool needs: the run's ID, alias, source and target, its state and outcome
(``success``, ``failure``, ``rollback``, ``cancelled``, ``undone``), counts, duration,
error text, the tool's version and the host. Never a secret: engine URLs are the stored
ones (without credentials), and the notify URL is not in it.

Delivery (:class:`Notifier`) never fails the run: each attempt has a timeout; a
connection error, a timeout, HTTP 429 or 5xx is tried again after a pause that grows
(the run's one backoff helper, with its injected sleep); any other answer, or the last
failed attempt, is one warning line. The URL may carry a token (in its path or query,
as webhooks do; ``user:password@`` is sent as basic auth, never in the URL): it is never
stored, and shown only as ``scheme://host[:port]/...``. Set it with ``--notify-url`` or
``REINDEX_FSM_NOTIFY_URL``; it is given again to ``resume`` (it is not stored).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from . import __version__, report
from .errors import UsageError
from .machine import State
from .metrics import RunFigures
from .steps.poll import Backoff

ENDS = {
    State.SWAPPED: "success",
    State.FAILED: "failure",
    State.ROLLED_BACK: "rollback",
    State.CANCELLED: "cancelled",
    State.UNDONE: "undone",
}
TIMEOUT_S = 5.0  # one attempt
ATTEMPTS = 4
BACKOFF = Backoff(first=1.0, cap=8.0, growth=2.0)
_RETRIED = {408, 425, 429, 500, 502, 503, 504}


def shown_url(url: str) -> str:
    """The notify URL as printed: its scheme and host only (the rest may be a token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}/..."


def check_url(url: str, flag: str = "--notify-url") -> str:
    """An http(s) URL with a host, else UsageError (one line, exit 2)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises)
    except ValueError as exc:
        raise UsageError(
            f"{flag} is not a URL: {exc}", hint="give e.g. https://hooks.example/run"
        ) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"{flag} {shown_url(url)} is not an http(s) URL with a host",
            hint="give e.g. https://hooks.example/reindex",
        )
    return url


def _host() -> str:
    return socket.gethostname()


def _tool() -> dict[str, str]:
    return {"name": "reindex-fsm", "version": __version__}


def run_summary(figures: RunFigures) -> dict[str, Any]:
    """What an event says of one run."""
    r = figures.record
    return {
        "run_id": r.id,
        "alias": r.alias,
        "source_index": r.source_index,
        "target_index": r.target_index,
        "state": r.state.value,
        "outcome": ENDS.get(r.state, "unfinished"),
        "result": report.result(r),
        "error": r.error,
        "error_kind": r.error_kind,
        "counts": {
            "source": r.source_count,
            "target": r.target_count,
            "done": figures.done,
            "total": figures.total,
            "failed_documents": figures.failed_documents,
            "copy_attempts": r.copy_attempts,
        },
        "duration_s": round(figures.duration_s, 3),
        "started_at": r.created_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "batch_id": r.batch_id,
        "plan_path": r.plan_path,
        "plan_hash": r.plan_hash,
        "engine": {"url": r.engine_url, "flavor": r.engine_flavor, "version": r.engine_version},
    }


def run_event(figures: RunFigures) -> dict[str, Any]:
    """The event of a run that ended (``event``: ``run_ended``)."""
    r = figures.record
    return {
        "event": "run_ended",
        "event_id": f"run:{r.id}:{r.state.value}:{r.updated_at.isoformat()}",
        **run_summary(figures),
        "tool": _tool(),
        "host": _host(),
        "sent_at": figures.now.isoformat(),
    }


def batch_event(
    batch_id: str, state: str, runs: Sequence[RunFigures], now: datetime
) -> dict[str, Any]:
    """The event of a batch that ended (``event``: ``batch_ended``): its state, its runs
    by outcome, and each run's summary."""
    outcomes: dict[str, int] = {}
    for f in runs:
        outcome = ENDS.get(f.record.state, "unfinished")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    starts = [f.record.created_at for f in runs]
    ends = [f.record.finished_at or f.record.updated_at for f in runs]
    return {
        "event": "batch_ended",
        "event_id": f"batch:{batch_id}:{state}:{max(ends).isoformat() if ends else ''}",
        "batch_id": batch_id,
        "state": state,
        "runs_total": len(runs),
        "outcomes": outcomes,
        "counts": {
            "done": sum(f.done for f in runs),
            "total": sum(f.total for f in runs),
            "failed_documents": sum(f.failed_documents for f in runs),
        },
        "duration_s": round((max(ends) - min(starts)).total_seconds(), 3) if runs else 0.0,
        "runs": [run_summary(f) for f in runs],
        "tool": _tool(),
        "host": _host(),
        "sent_at": now.isoformat(),
    }


class Notifier:
    """POSTs events to one URL; ``warn`` gets the one line when an event is not delivered."""

    def __init__(
        self,
        url: str,
        warn: Callable[[str], None],
        sleep: Callable[[float], None],
        timeout_s: float | None = None,
        attempts: int | None = None,
    ) -> None:
        self.url, self.warn, self.sleep = url, warn, sleep
        self.timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
        self.attempts = ATTEMPTS if attempts is None else attempts

    def _scrub(self, text: str) -> str:
        """``text`` without the URL's parts that may be secret (path, query, user info)."""
        try:
            parts = urlsplit(self.url)
            pieces = [self.url, parts.query, parts.password, parts.username]
            pieces.append(parts.path if len(parts.path) > 1 else None)
        except ValueError:
            return "(reason withheld: it may hold the URL)"
        for piece in sorted((p for p in pieces if p), key=len, reverse=True):
            text = text.replace(piece, "...")
        return text

    def _request(self, body: bytes, event_id: str) -> urllib.request.Request:
        parts = urlsplit(self.url)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"reindex-fsm/{__version__}",
            "Idempotency-Key": event_id,  # the same event, tried again, has the same key
        }
        netloc = parts.netloc
        if parts.username is not None:  # user:password@ goes as basic auth, never in a URL
            netloc = netloc.rsplit("@", 1)[1]
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        url = urlunsplit(parts._replace(netloc=netloc))
        return urllib.request.Request(url, data=body, headers=headers, method="POST")

    def send(self, event: dict[str, Any]) -> bool:
        """POST ``event``; True once the receiver answered 2xx. Never raises: a failure is
        one warning line (its last reason), the event's name and the URL's host in it."""
        what = f"notify: {event.get('event')} event to {shown_url(self.url)}"
        try:
            check_url(self.url)
            request = self._request(json.dumps(event, default=str).encode(), event["event_id"])
        except (UsageError, ValueError) as exc:
            self.warn(f"{what} not sent: {self._scrub(_reason(exc))}")
            return False
        delay, reason = BACKOFF.first, ""
        for attempt in range(1, self.attempts + 1):
            retry, reason = self._attempt(request)
            if not reason:
                return True
            if not retry or attempt == self.attempts:
                break
            self.sleep(delay)
            delay = BACKOFF.after(delay)
        tries = f"after {attempt} attempt{'s' if attempt > 1 else ''}"
        reason = self._scrub(reason)
        self.warn(f"{what} not delivered {tries}: {reason}; the run is not affected")
        return False

    def _attempt(self, request: urllib.request.Request) -> tuple[bool, str]:
        """(worth trying again, why it failed); no reason: delivered."""
        try:
            with _OPENER.open(request, timeout=self.timeout_s) as answer:
                answer.read(1024)
            return False, ""
        except urllib.error.HTTPError as exc:
            return exc.code in _RETRIED, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            if isinstance(exc, TimeoutError) or isinstance(
                getattr(exc, "reason", None), TimeoutError
            ):
                return True, f"no answer within {self.timeout_s:g}s"
            return True, _reason(exc)
        except http.client.HTTPException as exc:  # a broken answer (IncompleteRead...)
            return True, type(exc).__name__
        except ValueError as exc:  # http.client refuses the URL (its text may hold it)
            return False, type(exc).__name__


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is not followed (its target would get the event and the auth header):
    it is an answer that was not a success."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


# check_url lets only http(s) URLs through; proxies as the environment says (as curl).
_OPENER = urllib.request.build_opener(_NoRedirect())


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc)
    if isinstance(exc, UsageError):
        text = exc.one_line()
    return text or type(exc).__name__
