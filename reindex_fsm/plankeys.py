"""The keys of a plan file (reindex_fsm.planfile), made from the flag definitions: a run's
options are ``start``'s flags without the ``--`` (reindex_fsm.options), the connection
keys the CLI's own flags (reindex_fsm.config), the batch settings start's batch flags
(``BATCH_FLAGS``, the fields of reindex_fsm.batch.BatchSettings). The
README's key reference is :func:`key_reference` (a test keeps the two the same)."""

from __future__ import annotations

from .config import COMMON_FLAGS, ENGINE_FLAGS, ENV
from .flags import Flag
from .options import BATCH_FLAGS, start_flags

# start's own flags that are not options of a run: apply has them on its command line
# (the notify URL too: it may carry a token, and a plan file is reviewed and kept).
APPLY_ONLY = (
    "--alias",
    "--alias-pattern",
    "--dry-run",
    "--force",
    "--force-unlock",
    "--notify-url",
)
# The keys naming what the file applies to (one of alias / aliases, and patterns).
SHAPE_KEYS = ("alias", "aliases", "alias-pattern")
# Where the engine and the state database are: the CLI's own flags.
CONNECTION_FLAGS = ("--engine-url", "--engine", "--state-db", "--ca-certs", "--insecure")
# Never in a plan file: where each one goes instead.
CREDENTIALS = {
    "password": f"--password or {ENV['password']}",
    "api-key": f"--api-key or {ENV['api_key']}",
    "username": f"--username or {ENV['username']}",
    "source-password": f"--source-password or {ENV['source_password']}",
    "source-api-key": f"--source-api-key or {ENV['source_api_key']}",
    "source-username": f"--source-username or {ENV['source_username']}",
}


def key_of(flag: Flag) -> str:
    return flag.flag[2:]


def option_flags() -> dict[str, Flag]:
    """The plan keys of a run's options: every flag of ``start`` but its own verb flags."""
    return {key_of(f): f for f in start_flags() if f.flag not in APPLY_ONLY}


def connection_flags() -> dict[str, Flag]:
    known = {f.flag: f for f in (*ENGINE_FLAGS, *COMMON_FLAGS)}
    return {key_of(known[name]): known[name] for name in CONNECTION_FLAGS}


def batch_flags() -> dict[str, Flag]:
    return {key_of(f): f for f in BATCH_FLAGS}


def top_level_keys() -> list[str]:
    return [*SHAPE_KEYS, *batch_flags(), *connection_flags(), *option_flags()]


# -- the key reference (README) --------------------------------------------------------------
def _kind(flag: Flag) -> str:
    if flag.kind == "bool":
        return "true or false"
    if flag.multiple and flag.metavar == "KEY=VALUE":
        return "mapping of settings, or list of KEY=VALUE"
    if flag.multiple:
        return "list of " + (", ".join(f"`{c}`" for c in flag.choices) or "strings")
    if flag.kind == "choice":
        return "one of " + ", ".join(f"`{c}`" for c in flag.choices)
    if flag.hook == "rate":
        return "number, or `unlimited`"
    if flag.metavar == "JSON":
        return "mapping"
    if flag.kind == "path" or flag.metavar == "FILE":
        return "path (relative to the plan file)"
    return {"int": "integer", "float": "number"}.get(flag.kind, "string")


def key_reference() -> str:
    """The README's table of plan keys, made from the flag definitions."""
    rows = ["| key | value | meaning |", "|---|---|---|"]
    rows.append("| `alias` | string | The one alias to move (one run). |")
    rows.append(
        "| `aliases` | list of names or of `{alias: NAME, <option>: ...}` | Several aliases "
        "(a batch); an entry's own options override the file's. |"
    )
    rows.append(
        "| `alias-pattern` | string or list | Aliases matching it, resolved once at plan "
        "time (a batch). |"
    )
    groups = (batch_flags(), connection_flags(), option_flags())
    for flags in groups:
        for key, flag in flags.items():
            text = flag.help.replace("|", "\\|").replace("\n", " ")
            rows.append(f"| `{key}` | {_kind(flag)} | {text} |")
    return "\n".join(rows)
