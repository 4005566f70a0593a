"""--pipeline NAME and --script FILE: transforms the ``_reindex`` copy applies to every
document (``dest.pipeline``, ``script``). Checked before anything is written."""

from __future__ import annotations

import json
from typing import Any

from ..engine.base import Engine
from ..errors import UsageError
from ..inputfiles import read_text
from ..options import RunOptions

SCRIPT_KEYS = {"source", "lang", "params", "id"}


def load_script(path: str) -> dict[str, Any]:
    """The script object of ``--script FILE``: the file holds painless source, or a JSON
    object with ``source`` (or a stored script's ``id``) and optional ``lang``, ``params``."""
    text = read_text(path, "--script file")
    if not text.strip():
        raise UsageError(f"--script file {path} is empty", hint="put painless source in it")
    stripped = text.strip()
    if not stripped.startswith("{"):
        return {"source": text, "lang": "painless"}
    try:
        script = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--script file {path} starts with {{ but is not a JSON object (line {exc.lineno}): "
            f"{exc.msg}",
            hint='give painless source, or {"source": ..., "lang": ..., "params": {...}}',
        ) from exc
    unknown = set(script) - SCRIPT_KEYS
    has_code = isinstance(script.get("source"), str) and script["source"].strip()
    if unknown or not (has_code or isinstance(script.get("id"), str)):
        raise UsageError(
            f"--script file {path}: a script object has a non-empty source (or an id) and "
            f"only {sorted(SCRIPT_KEYS)}" + (f", not {sorted(unknown)}" if unknown else ""),
        )
    if "params" in script and not isinstance(script["params"], dict):
        raise UsageError(f"--script file {path}: params must be a JSON object")
    return script


def check(engine: Engine, options: RunOptions) -> None:
    """Refuse, before any write, transforms that cannot work."""
    # A blank pipeline name RunOptions.validate() has refused.
    if options.pipeline is not None and not engine.pipeline_exists(options.pipeline):
        raise UsageError(
            f"ingest pipeline {options.pipeline!r} does not exist",
            hint="create it (PUT _ingest/pipeline/NAME) or fix the name; nothing was done",
        )
