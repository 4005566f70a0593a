"""A command-line flag as data (:class:`Flag`), the metadata a RunOptions field carries
(:func:`meta`, :func:`opt`), and the flags of the verbs that take no RunOptions (show,
history, undo, cleanup; resume's own). ``reindex_fsm.cli.options`` makes the click
options of all of them; reindex_fsm.options defines start's, reindex_fsm.config the
engine, state-database and logging flags every command shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Flag:
    """One command-line flag as data; ``reindex_fsm.cli.options`` makes the click option.

    ``field``: the RunOptions field it sets (its default is the field's, unless ``default``
    is given); ``invert``: a ``--no-X`` flag that sets the field to False; ``hook``: a CLI
    callback by name (``alias_name``, ``rate``, ``client_option``, ``log_option``, ``json``);
    ``before``: for a flag that is not a field's own, the field whose flags it precedes in
    ``--help``."""

    decls: tuple[str, ...]
    help: str
    name: str | None = None  # the parameter name, when it is not the flag's own
    kind: str = "text"  # text | int | float | path | datetime | bool | count | choice
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    default: Any = None
    show_default: bool | str = False
    metavar: str | None = None
    multiple: bool = False
    required: bool = False
    flag_value: Any = None
    envvar: str | None = None
    hook: str | None = None
    expose_value: bool = True
    field: str | None = None
    invert: bool = False
    before: str | None = None

    @property
    def flag(self) -> str:
        return next(d for d in self.decls if d.startswith("--"))

    @property
    def param(self) -> str:
        """The parameter name: ``name``, else a bare name among ``decls``, else the flag's."""
        bare = [d for d in self.decls if not d.startswith("-")]
        return self.name or (bare[0] if bare else self.flag[2:].replace("-", "_"))


def meta(*flags: Flag, **rules: Any) -> dict[str, Any]:
    """A RunOptions field's metadata: the flags that set it and its rules (``needs``,
    ``min``, ``max``, ``min_open``: checked by RunOptions.validate)."""
    return {"flags": flags, **rules}


def opt(default: Any, *flags: Flag, **rules: Any) -> Any:
    """A RunOptions field of an immutable default, with its flags and rules (:func:`meta`)."""
    return field(default=default, metadata=meta(*flags, **rules))


# -- the other verbs' flags ---------------------------------------------------------------
FORCE_UNLOCK_RESUME = Flag(
    ("--force-unlock",),
    "Take the engine lease on the run's alias even if another run holds it "
    "(a warning names that run).",
    kind="bool",
)
SHOW_FLAGS = (
    Flag(
        ("--report", "report_file"),
        "Also write the run as one self-contained HTML page (timeline, error, state "
        "diagram) to FILE.",
        kind="path",
        metavar="FILE",
    ),
    Flag(
        ("--diagram",),
        "Also print the state diagram as Mermaid source (the path taken and the current "
        "state highlighted); --json always has it.",
        kind="bool",
    ),
)
HISTORY_LIMIT = 50
HISTORY_FLAGS = (
    Flag(("--alias",), "Only runs on this alias.", hook="alias_name"),
    Flag(("--state",), "Only runs in this state (e.g. FAILED)."),
    Flag(("--since",), "Only runs started at or after (UTC).", kind="datetime"),
    Flag(
        ("--limit",),
        "At most this many runs.",
        kind="int",
        min=1,
        default=HISTORY_LIMIT,
        show_default=True,
    ),
    Flag(("--batches", "list_batches"), "List batches instead of runs.", kind="bool"),
)
UNDO_FLAGS = (
    Flag(
        ("--force",),
        "Undo even though the target received documents since the swap (they are not in "
        "the previous index). Does not ask either.",
        kind="bool",
    ),
    Flag(("--yes", "-y", "yes"), "Do not ask for confirmation.", kind="bool"),
)
CLEANUP_FLAGS = (
    Flag(
        ("--alias",),
        "The alias whose earlier indices to delete.",
        required=True,
        hook="alias_name",
    ),
    Flag(
        ("--keep",),
        "How many of the newest earlier indices to keep (for undo).",
        kind="int",
        min=0,
        metavar="N",
    ),
    Flag(
        ("--older-than",),
        "Delete only indices created longer ago than AGE (30m, 12h, 14d, 2w); with --keep, "
        "only those beyond the newest N and older than AGE.",
        metavar="AGE",
    ),
    Flag(("--dry-run",), "List what would be deleted; delete nothing.", kind="bool"),
    Flag(
        ("--force",),
        "Do not ask for confirmation; also delete the index undo of the newest swapped run "
        "needs (kept otherwise).",
        kind="bool",
    ),
)


# -- metrics and notifications: the flag of the verbs that end runs (start, resume, abort,
# undo), for Config.notify_url; not a RunOptions field: the URL may carry a token, and is
# never stored --
NOTIFY_URL_FLAG = Flag(
    ("--notify-url", "notify_url"),
    "POST one JSON event to URL when the run ends (success, failure, rollback), retried on "
    "errors; never fails the run. Not stored: give it to resume again "
    "[env REINDEX_FSM_NOTIFY_URL].",
    metavar="URL",
    hook="notify_url",
    expose_value=False,
)
# resume's outputs: the metrics file (kept with the run) and the notification URL.
RESUME_FLAGS = (
    Flag(
        ("--metrics-file",),
        "Write the run's figures to FILE (*.prom) from now on, and keep it with the run "
        "[default: the file it was started with, if any].",
        kind="path",
        metavar="FILE",
    ),
    NOTIFY_URL_FLAG,
)
