"""Options as data: every rule of RunOptions.validate() refuses a library call exactly as
it refuses the CLI, and start's click options are generated from the definitions."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reindex_fsm import api
from reindex_fsm.cli import cli
from reindex_fsm.config import COMMON_FLAGS, ENGINE_FLAGS
from reindex_fsm.errors import ExitCode, UsageError
from reindex_fsm.options import BATCH_FLAGS, START_FLAGS, RunOptions, start_flags

from .conftest import ALIAS, db_rows

# (RunOptions keywords, the same as start's flags, the one line both are refused with)
RULES = [
    (
        {"documents_path": "docs.jsonl"},
        ["--documents-path", "docs.jsonl"],
        "--documents-path needs --recompute-embeddings",
    ),
    ({"batch_size": 10}, ["--batch-size", "10"], "--batch-size needs --recompute-embeddings"),
    ({"embedder": "zeros"}, ["--embedder", "zeros"], "--embedder needs --recompute-embeddings"),
    ({"workers": 2}, ["--workers", "2"], "--workers needs --recompute-embeddings"),
    (
        {"vector_mapping": {"type": "float"}},
        ["--vector-mapping", '{"type": "float"}'],
        "--vector-mapping needs --recompute-embeddings",
    ),
    (
        {"max_line_bytes": 100},
        ["--max-line-bytes", "100"],
        "--max-line-bytes needs --recompute-embeddings",
    ),
    (
        {"deep_sample": 5},
        ["--verify-sample", "5"],
        "--verify-sample needs --verify deep (or --recompute-embeddings)",
    ),
    ({"verify_top_k": 3}, ["--verify-top-k", "3"], "--verify-top-k needs --verify deep"),
    (
        {"verify_min_overlap": 0.5},
        ["--verify-min-overlap", "0.5"],
        "--verify-min-overlap needs --verify deep",
    ),
    (
        {"verify_level": "deep", "verify_top_k": 3},
        ["--verify", "deep", "--verify-top-k", "3"],
        "--verify-top-k needs --verify-queries FILE",
    ),
    (
        {"verify": False, "verify_level": "deep"},
        ["--no-verify", "--verify", "deep"],
        "--verify deep and --no-verify contradict each other",
    ),
    (
        {"since_field": "updated_at"},
        ["--since-field", "updated_at"],
        "--since-field needs --write-policy catch-up",
    ),
    (
        {"write_policy": "catch-up"},
        ["--write-policy", "catch-up"],
        "--write-policy catch-up needs --since-field FIELD",
    ),
    (
        {"write_policy": "catch-up", "since_field": "updated_at", "recompute_embeddings": True},
        ["--write-policy", "catch-up", "--since-field", "updated_at", "--recompute-embeddings"],
        "--write-policy catch-up is not supported with --recompute-embeddings",
    ),
    (
        {"pipeline": "add-fields", "recompute_embeddings": True},
        ["--pipeline", "add-fields", "--recompute-embeddings"],
        "--pipeline and --script apply to the _reindex copy, not to --recompute-embeddings",
    ),
    ({"pipeline": " "}, ["--pipeline", " "], "--pipeline needs a pipeline name"),
    (
        {"recompute_embeddings": True, "documents_path": "d.jsonl", "skip_invalid": "d.jsonl"},
        ["--recompute-embeddings", "--documents-path", "d.jsonl", "--skip-invalid", "d.jsonl"],
        "--skip-invalid must not be the --documents-path file itself",
    ),
    ({"slices": 0}, ["--slices", "0"], "--slices 0 is not a positive number or auto"),
    ({"requests_per_second": 0}, ["--requests-per-second", "0"], "is not a positive number"),
]


@pytest.mark.parametrize(("options", "args", "message"), RULES, ids=[r[2] for r in RULES])
def test_a_rule_refuses_a_library_call_as_it_refuses_the_cli(
    cfg, fake, state_db, options, args, message
):
    before, rows = fake.snapshot(), db_rows(state_db)
    for call in (api.plan, api.start):
        with pytest.raises(UsageError) as refused:
            call(cfg, ALIAS, RunOptions(**options))
        assert message in refused.value.one_line()
        assert refused.value.exit_code == ExitCode.USAGE
    assert fake.calls == [], "refused before the engine was asked anything"
    result = CliRunner().invoke(cli, ["start", "--alias", ALIAS, "--force", *args], obj=cfg)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert fake.snapshot() == before and db_rows(state_db) == rows


@pytest.mark.parametrize(
    ("options", "args", "flag"),
    [
        (
            {"recompute_embeddings": True, "batch_size": 0},
            ["--recompute-embeddings"],
            "--batch-size",
        ),
        ({"recompute_embeddings": True, "workers": 0}, ["--recompute-embeddings"], "--workers"),
        ({"catch_up_max_passes": 1}, [], "--catch-up-max-passes"),
        ({"disk_headroom": 0.0}, [], "--disk-headroom"),
        ({"lease_ttl_s": 0.5}, [], "--lease-ttl"),
        ({"verify_level": "deep", "deep_sample": 0}, ["--verify", "deep"], "--verify-sample"),
        ({"verify_min_overlap": 1.5}, [], "--verify-min-overlap"),
    ],
)
def test_a_range_refuses_a_library_call_and_the_cli(cfg, fake, options, args, flag):
    """A bound is refused from both sides (exit 2, naming the flag); the CLI's click type,
    made from the same definition, says it in click's words."""
    with pytest.raises(UsageError, match=flag) as refused:
        RunOptions(**options).validate()
    assert refused.value.exit_code == ExitCode.USAGE
    value = next(v for k, v in options.items() if k not in ("recompute_embeddings", "verify_level"))
    given = [*args, flag, str(value)]
    result = CliRunner().invoke(cli, ["start", "--alias", ALIAS, "--force", *given], obj=cfg)
    assert result.exit_code == ExitCode.USAGE and flag in result.stderr
    assert fake.calls == []


def test_the_defaults_pass_and_a_stored_run_loads():
    RunOptions().validate()
    stored = {**RunOptions().to_dict(), "an_option_of_a_later_version": 1}
    del stored["disk_headroom"]  # an option an older version did not store
    loaded = RunOptions.from_dict(stored)
    assert loaded.disk_headroom == RunOptions().disk_headroom


def _start() -> click.Command:
    command = cli.commands["start"]
    assert isinstance(command, click.Command)
    return command


def test_start_flags_and_the_definitions_are_the_same_set():
    """A flag in click but not in the definitions (or the other way) fails here."""
    defined = {flag.param for flag in (*start_flags(), *BATCH_FLAGS)}
    shared = {flag.param for flag in (*ENGINE_FLAGS, *COMMON_FLAGS)}
    given = {p.name for p in _start().params if isinstance(p, click.Option)} - {"help"}
    assert given == defined | shared
    assert defined.isdisjoint(shared)
    own = {flag.param for flag in START_FLAGS}
    fields_with_flags = {f.name for f in fields(RunOptions) if f.metadata.get("flags")}
    assert {flag.field for flag in start_flags() if flag.param not in own} == fields_with_flags


def test_a_flag_takes_its_help_default_and_choices_from_the_definition():
    params = {p.name: p for p in _start().params if isinstance(p, click.Option)}
    defaults = RunOptions()
    for flag in start_flags():
        param = params[flag.param]
        assert param.help == flag.help, flag.flag
        assert flag.flag in param.opts
        if isinstance(param.type, click.Choice):
            assert tuple(param.type.choices) == flag.choices, flag.flag
        if flag.field and flag.default is not None:
            field_default = getattr(defaults, flag.field)
            assert param.default == flag.default == field_default, flag.flag  # one default
    assert params["batch_size"].default == RunOptions().batch_size == 500
    assert params["write_policy"].type.choices == ("block", "catch-up")  # type: ignore[attr-defined]


def test_a_flag_definition_makes_its_click_option():
    """Adding a flag is one definition: its click option (type, range, default, help)
    follows from it."""
    from reindex_fsm.cli.options import click_option
    from reindex_fsm.flags import Flag

    flag = Flag(("--example-limit",), "An example.", kind="int", min=1, default=7)
    command = click_option(flag)(click.Command("x", callback=lambda **kw: None))
    option = next(p for p in command.params if p.name == "example_limit")
    assert option.default == 7 and option.help == "An example."
    assert isinstance(option.type, click.IntRange) and option.type.min == 1


def test_the_read_files_keep_their_messages(cfg, tmp_path: Path):
    bad = tmp_path / "settings.json"
    bad.write_text("[1, 2]")
    result = CliRunner().invoke(
        cli, ["start", "--alias", ALIAS, "--force", "--settings", str(bad)], obj=cfg
    )
    assert result.exit_code == ExitCode.USAGE
    assert f"settings file {bad} must hold a JSON object" in result.stderr
    result = CliRunner().invoke(cli, ["start", "--alias", ALIAS, "--force", "--set", "x"], obj=cfg)
    assert result.exit_code == ExitCode.USAGE and "--set 'x' is not key=value" in result.stderr
