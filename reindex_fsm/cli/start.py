"""``start``: its flags are generated from RunOptions' fields (reindex_fsm.options); this
module turns the parsed flags into RunOptions (reading the files some of them name),
calls the api, and prints the plan, the question or the outcome."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from ..errors import UsageError
from ..inputfiles import read_text
from ..options import BATCH_FLAGS, RunOptions, start_flags
from . import batches
from .lazy import lazy
from .options import common_flags, config_for, engine_flags, with_flags
from .prompts import confirm, need_terminal
from .rendering import emit_json, out, print_outcome, warn

if TYPE_CHECKING:  # imported on first use: see cli/lazy.py
    from .. import api, render
    from ..steps import deep_verify, planning, transforms, views
    from ..steps.copy import registry
else:
    api = lazy("reindex_fsm.api")
    render = lazy("reindex_fsm.render")
    deep_verify = lazy("reindex_fsm.steps.deep_verify")
    views = lazy("reindex_fsm.steps.views")
    planning = lazy("reindex_fsm.steps.planning")
    transforms = lazy("reindex_fsm.steps.transforms")
    registry = lazy("reindex_fsm.steps.copy.registry")


def load_json_file(path: str | None, what: str) -> dict[str, Any] | None:
    """--settings FILE / --mappings FILE: one JSON object (or one under "settings" /
    "mappings", as GET <index> answers)."""
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


def _settings(given: dict[str, Any]) -> dict[str, Any]:
    overrides = planning.flatten_settings(load_json_file(given["settings_file"], "settings") or {})
    overrides.update(planning.flatten_settings(planning.parse_set(given["set_pairs"])))
    return overrides


def _slices(given: dict[str, Any]) -> int | str:
    slices = given["slices"]
    if slices != "auto" and not slices.isdigit():
        raise UsageError(f"--slices {slices!r} is not a number or auto")
    return slices if slices == "auto" else int(slices)


def _verify_level(given: dict[str, Any]) -> str:
    level, no_verify = given["verify"], given["no_verify"]
    if no_verify and level is not None:
        raise UsageError(f"--verify {level} and --no-verify contradict each other")
    return str(level or "count")


def _vector_mapping(given: dict[str, Any]) -> dict[str, Any] | str | None:
    """--vector-mapping JSON; as given without --recompute-embeddings (which validate()
    then refuses: it needs the flag)."""
    mapping = given["vector_mapping"]
    if mapping is None or not given["recompute_embeddings"]:
        return mapping
    try:
        parsed = json.loads(mapping)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--vector-mapping is not JSON: {exc}") from exc
    if not isinstance(parsed, dict) or "type" not in parsed:
        raise UsageError(
            "--vector-mapping must be a JSON object with a type",
            hint='e.g. \'{"type": "float"}\'',
        )
    return parsed


def _script(given: dict[str, Any]) -> dict[str, Any] | None:
    return transforms.load_script(given["script_file"]) if given["script_file"] else None


def _deep_sample(given: dict[str, Any]) -> int | None:
    """--verify-sample N: the documents the deep comparison checks (and, below, the ones a
    recompute run embeds again); without either check it is refused by validate()."""
    sample = given["verify_sample"]
    if sample is not None and given["verify"] != "deep" and given["recompute_embeddings"]:
        return None
    return sample


# The fields whose flags are not their value as parsed: how each is read, in this order
# (the order the refusals come in). Every other field is its flag's value (or its
# negation, for a --no-X flag).
READERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "settings_overrides": _settings,
    "slices": _slices,
    "verify_level": _verify_level,
    "deep_sample": _deep_sample,
    "mappings_override": lambda given: load_json_file(given["mappings_file"], "mappings"),
    "copy_settings_overrides": lambda given: planning.flatten_settings(
        planning.parse_set(given["copy_set_pairs"])
    ),
    "vector_mapping": _vector_mapping,
    "script": _script,
    "skip_preflight": lambda given: tuple(given["skip_preflight"]),
    # stored: a resume from another working directory writes the same file
    "metrics_file": lambda given: given["metrics_file"] and os.path.abspath(given["metrics_file"]),
}


def run_options(given: dict[str, Any]) -> RunOptions:
    """The RunOptions of ``start``'s parsed flags, validated; the files the flags name are
    read here (the queries file once the rules passed), before anything is opened."""
    values: dict[str, Any] = {name: read(given) for name, read in READERS.items()}
    for flag in start_flags():
        if flag.field and flag.field not in values:
            value = given[flag.param]
            values[flag.field] = (not value) if flag.invert else value
    if given["verify_sample"] is not None and given["recompute_embeddings"]:
        values["verify_sample"] = given["verify_sample"]
    options = RunOptions(**values)
    api.check_options(options)
    if options.verify_queries_file is not None:
        queries = deep_verify.load_queries(options.verify_queries_file)
        options = replace(options, verify_queries=queries)
    return options


def _strategy_warnings(options: RunOptions) -> None:
    """What the copy strategy chosen by the options warns of before it starts."""
    for line in registry.strategy_for_options(options).warnings(options):
        warn(line)


@click.command()
@with_flags(start_flags(), BATCH_FLAGS)
@engine_flags
@common_flags
@click.pass_context
def start(ctx: click.Context, **given: Any) -> None:
    """Plan a run on ALIAS and drive it to the swap (several aliases: a batch of runs).

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
      reindex-fsm start --alias-pattern 'logs-*' --concurrency 3 --on-failure continue --force
    """
    batches.check_aliases_given(given)
    if not batches.wants_batch(given):
        batches.refuse_batch_flags(given)
    options = run_options(given)
    if not options.verify:
        warn("--no-verify: the target's document count is NOT compared with the source's")
    _strategy_warnings(options)
    cfg = config_for(ctx, given["state_db"], given["engine_url"], given["engine_kind"])
    if batches.wants_batch(given):  # several aliases: a batch of runs (cli/batches.py)
        batches.start(ctx, cfg, given, options)
        return
    (alias,) = given["alias"]
    if given["dry_run"]:
        _print_dry_run(cfg, alias, options, given["as_json"])
        return
    planned = None
    if not given["force"]:
        need_terminal("start", hint="pass --force (and try --dry-run first)")
        planned = api.plan(cfg, alias, options)
        if ctx.find_root().meta.get("verbose"):  # the full plan: -v (or --dry-run)
            click.echo(json.dumps({"steps": api.describe(planned, options)}, indent=2), err=True)
        confirm(
            render.confirmation(planned, options) + views.confirmation(options),
            f"Move alias {alias} from {planned.source_index} to {planned.target_index}?",
        )
    outcome = api.start(cfg, alias, options, planned, force_unlock=given["force_unlock"])
    print_outcome(ctx, outcome)


def _print_dry_run(cfg: api.Config, alias: str, options: RunOptions, as_json: bool) -> None:
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
        emit_json(data)
    else:
        out().print_json(json.dumps(data, default=str))
