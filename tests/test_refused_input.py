"""Input the engine would refuse is refused before anything is written: one line, exit 2
(or the documented code), and no run row holding the alias, no lease, no target, no write
block, nothing else on the fake engine. The engine's own refusal of the target's settings
or mappings (only the create itself truly validates them) ends the run CANCELLED, the
alias free, with the engine's reason as the one line."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from reindex_fsm import api
from reindex_fsm.api import Config
from reindex_fsm.cli import cli
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import EngineError, ExitCode, TargetRefused, UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.steps.planning import check_alias_name, name_problem

from .conftest import ALIAS, SOURCE, TARGET, db_rows

NOT_UTF8 = b'{"index": {"number_of_replicas": "\xff"}}'


def invoke(cfg: Config, *args: str):
    return CliRunner().invoke(cli, list(args), obj=cfg, catch_exceptions=False)


def _files(tmp_path: Path) -> None:
    for name in ("settings.json", "mappings.json", "script.painless", "queries.txt"):
        (tmp_path / name).write_bytes(NOT_UTF8)


def _query_refused(fake, tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_text('{"match": {"title": "x"}}\n{"nosuchquery": {}}\n')
    fake.fail_on(
        "search",
        nth=2,
        error=EngineError(
            f"POST /{SOURCE}/_search failed (HTTP 400): parsing_exception: unknown query "
            "[nosuchquery]",
            status=400,
        ),
    )


START = ["start", "--alias", ALIAS, "--force"]
# (id, setup, arguments, exit code, text of the one error line)
REFUSED = [
    ("rps 0", None, [*START, "--requests-per-second", "0"], 2, "'0' is not a positive number"),
    ("rps -5", None, [*START, "--requests-per-second", "-5"], 2, "'-5' is not a positive number"),
    ("rps nan", None, [*START, "--requests-per-second", "nan"], 2, "is not a positive number"),
    ("slices 0", None, [*START, "--slices", "0"], 2, "--slices 0 is not a positive number"),
    (
        "slices 100000",
        None,
        [*START, "--slices", "100000"],
        2,
        f"--slices 100000 is more than 12 for {SOURCE} (3 primary shard(s))",
    ),
    ("empty alias", None, ["start", "--alias", "", "--force"], 2, "'' is not an alias name"),
    ("alias pattern", None, ["start", "--alias", "docu*", "--force"], 2, "contains '*'"),
    ("alias list", None, ["start", "--alias", f"{ALIAS},x", "--force"], 2, "contains ','"),
    ("alias ?", None, ["start", "--alias", "docu?ents", "--dry-run"], 2, "contains '?'"),
    ("cleanup pattern", None, ["cleanup", "--alias", "docu*", "--keep", "1"], 2, "contains '*'"),
    ("history pattern", None, ["history", "--alias", "docu*"], 2, "contains '*'"),
    ("target /", None, [*START, "--target-index", "a/b"], 2, "contains '/'"),
    ("target space", None, [*START, "--target-index", "a b"], 2, "contains space"),
    ("target ..", None, [*START, "--target-index", ".."], 2, "it is '..'"),
    ("target upper", None, [*START, "--target-index", "Docs"], 2, "uppercase"),
    ("target #", None, [*START, "--target-index", "a#b"], 2, "contains '#'"),
    ("target :", None, [*START, "--target-index", "c:x"], 2, "contains ':'"),
    ("target -", None, [*START, "--target-index", "-x"], 2, "starts with '-'"),
    ("target long", None, [*START, "--target-index", "é" * 128], 2, "longer than 255 bytes"),
    (
        "final refresh interval",
        None,
        [*START, "--set", "index.refresh_interval=5"],
        2,
        "setting index.refresh_interval=5 is not a time value such as 1s or 500ms, or -1",
    ),
    (
        "final replicas",
        None,
        [*START, "--set", "index.number_of_replicas=-1"],
        2,
        "setting index.number_of_replicas=-1 is not a whole number from 0",
    ),
    (
        "settings not utf-8",
        _files,
        [*START, "--settings", "{tmp}/settings.json"],
        2,
        "--settings file {tmp}/settings.json is not UTF-8 text: byte 0xff at line 1",
    ),
    (
        "mappings not utf-8",
        _files,
        [*START, "--mappings", "{tmp}/mappings.json"],
        2,
        "--mappings file {tmp}/mappings.json is not UTF-8 text",
    ),
    (
        "script not utf-8",
        _files,
        [*START, "--script", "{tmp}/script.painless"],
        2,
        "--script file {tmp}/script.painless is not UTF-8 text",
    ),
    (
        "queries not utf-8",
        _files,
        [*START, "--verify", "deep", "--verify-queries", "{tmp}/queries.txt"],
        2,
        "--verify-queries file {tmp}/queries.txt is not UTF-8 text",
    ),
    (
        "query the engine refuses",
        _query_refused,
        [*START, "--verify", "deep", "--verify-queries", "{tmp}/q.txt"],
        2,
        "{tmp}/q.txt:2: the engine refuses this query on documents-v1: POST /documents-v1/"
        "_search failed (HTTP 400): parsing_exception: unknown query [nosuchquery]",
    ),
]


@pytest.mark.parametrize(
    ("name", "setup", "args", "code", "message"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_refused_before_anything_is_written(
    cfg, fake, state_db, tmp_path, name, setup, args, code, message
):
    if setup:
        setup(fake, tmp_path) if setup is _query_refused else setup(tmp_path)
    args = [a.format(tmp=tmp_path) for a in args]
    engine_before, db_before = fake.snapshot(), db_rows(state_db)
    result = invoke(cfg, *args)
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message.format(tmp=tmp_path) in lines[0]
    assert fake.snapshot() == engine_before
    assert fake.call_names(mutating_only=True) == []
    assert fake.leases == {}
    assert db_rows(state_db) == db_before


def test_the_library_refuses_the_same_options(cfg, fake):
    for options, message in (
        (RunOptions(requests_per_second=0), "--requests-per-second 0 is not a positive"),
        (RunOptions(requests_per_second=-5.0), "--requests-per-second -5 is not a positive"),
        (RunOptions(slices=0), "--slices 0 is not a positive number or auto"),
        (RunOptions(slices=13), "--slices 13 is more than 12"),
        (RunOptions(target_index="a,b"), "contains ','"),
    ):
        with pytest.raises(UsageError, match=message):
            api.start(cfg, ALIAS, options)
    with pytest.raises(UsageError, match="not an alias name"):
        api.start(cfg, "docu*", RunOptions())
    assert cfg.repo().list() == [] and fake.leases == {}
    assert fake.call_names(mutating_only=True) == []


def test_slices_within_the_bound_and_auto_are_accepted(cfg, fake):
    assert api.plan(cfg, ALIAS, RunOptions(slices=12)).reindex
    assert api.plan(cfg, ALIAS, RunOptions(slices="auto")).reindex
    fake.indices[SOURCE].settings["index.max_slices_per_scroll"] = "5"
    with pytest.raises(UsageError, match="more than 5"):
        api.plan(cfg, ALIAS, RunOptions(slices=6))


def test_final_values_the_copy_overrides_are_checked(cfg, fake):
    """They reach the engine only after the copy; the create carries the copy-time values."""
    for key, good in (
        ("index.refresh_interval", ("-1", "0", "30s", " 5S", "1d", "500ms")),
        ("index.number_of_replicas", ("0", "2", 1)),
    ):
        for value in good:
            api.plan(cfg, ALIAS, RunOptions(settings_overrides={key: value}))
    for key, bad in (
        ("index.refresh_interval", ("5", "1.5s", "-5s", "banana", True)),
        ("index.number_of_replicas", ("-1", "a", 1.5, "0-all")),
    ):
        for value in bad:
            with pytest.raises(UsageError, match=f"setting {key}="):
                api.plan(cfg, ALIAS, RunOptions(settings_overrides={key: value}))
    # without the bulk-load tuning the create carries them: the engine decides there
    untuned = RunOptions(bulk_tuning=False, settings_overrides={"index.refresh_interval": "5"})
    api.plan(cfg, ALIAS, untuned)


def test_a_default_target_name_too_long_is_refused(cfg, fake):
    long_alias = "a" * 250
    fake.indices[SOURCE].aliases[long_alias] = {}
    with pytest.raises(UsageError, match=r"made from the alias.*longer than 255 bytes") as caught:
        api.plan(cfg, long_alias, RunOptions())
    assert caught.value.hint == "give --target-index NAME"


def test_name_rules():
    assert name_problem("documents-2026", index=True) is None
    assert name_problem("Documents", index=False) is None  # an alias may have capitals
    assert name_problem(".hidden-index", index=True) is None
    assert name_problem("é" * 127, index=True) is None  # 254 bytes
    for bad in ("", "*", "a?b", "a,b", "a b", "a|b", 'a"b', "a<b", "a>b", "a\\b", "_x", "+x"):
        assert name_problem(bad, index=False), bad
    assert check_alias_name(ALIAS) == ALIAS


def _refuse_create(fake, reason: str) -> None:
    fake.fail_on(
        "create_index",
        error=EngineError(f"PUT /{TARGET} failed (HTTP 400): {reason}", status=400),
    )


ENGINE_REASONS = [
    "illegal_argument_exception: unknown setting [index.no_such_setting] please check that "
    "any required plugins are installed",
    "illegal_argument_exception: Failed to parse value [0] for setting "
    "[index.number_of_shards] must be >= 1",
    "mapper_parsing_exception: Failed to parse mapping [_doc]: No handler for type "
    "[nosuchtype] declared on field [title]",
]


@pytest.mark.parametrize("reason", ENGINE_REASONS)
def test_target_the_engine_refuses_ends_cancelled_with_the_alias_free(cfg, fake, state_db, reason):
    _refuse_create(fake, reason)
    result = invoke(cfg, *START, "--set", "index.no_such_setting=1")
    assert result.exit_code == ExitCode.USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: the engine refused to create the target index '{TARGET}'")
    assert reason in lines[0]  # verbatim, brackets and all
    (run,) = cfg.repo().list()
    assert run.state is State.CANCELLED and run.error_kind == "TargetRefused"
    assert f"run {run.id} is CANCELLED" in lines[0]
    assert cfg.repo().active_run_for(ALIAS) is None  # the alias lock is released
    assert fake.leases == {}  # and the engine lease
    assert sorted(fake.indices) == [SOURCE]  # no target
    assert not fake.write_blocked(SOURCE)
    writes = [c for c in fake.call_names(mutating_only=True) if "lease" not in c]
    assert writes == ["create_index"]  # its only write, besides taking and giving up the lease
    # nothing to resume; the alias takes a new run at once
    assert invoke(cfg, "resume", run.id).exit_code == ExitCode.USAGE
    assert api.start(cfg, ALIAS, RunOptions()).record.state is State.SWAPPED


def test_target_refused_in_json_mode_is_one_object(cfg, fake):
    _refuse_create(fake, ENGINE_REASONS[0])
    result = invoke(cfg, *START, "--json")
    assert result.exit_code == ExitCode.USAGE
    out = json.loads(result.stdout)
    assert out["exit_code"] == 2 and "unknown setting [index.no_such_setting]" in out["error"]


def test_target_refused_on_resume_of_a_planned_run(cfg, fake):
    """A run killed after it was stored, resumed: the same refusal ends it the same way."""

    class Killed(Exception):
        pass

    def kill(name: str) -> None:
        raise Killed(name)

    crashing = replace(cfg, crash=lambda: Crashpoints(at="commit.PLANNED", action=kill))
    with pytest.raises(Killed):
        api.start(crashing, ALIAS, RunOptions())
    (run,) = cfg.repo().list()
    _refuse_create(fake, ENGINE_REASONS[0])
    with pytest.raises(TargetRefused):
        api.resume(cfg, run.id)
    assert cfg.repo().get(run.id).state is State.CANCELLED
    assert fake.leases == {} and cfg.repo().active_run_for(ALIAS) is None


def test_an_already_exists_refusal_is_not_an_option_error(cfg, fake):
    """A 400 whose index exists afterwards (a retried create, a race) is not the options'
    fault: it takes the usual way (TargetExists for an index that is not the run's)."""
    original = fake.create_index

    def racing(index, settings, mappings):
        fake.add_index(index, {})  # someone else's, made just before ours
        original(index, settings, mappings)

    fake.create_index = racing  # type: ignore[method-assign]
    outcome = api.start(cfg, ALIAS, RunOptions())
    assert outcome.record.state is State.FAILED
    assert outcome.record.error_kind == "EngineError"


def test_a_state_database_of_a_newer_version_is_one_line(tmp_path, fake):
    db = tmp_path / "state.db"
    cfg = Config(state_db=str(db), engine_factory=lambda *a, **k: fake)
    cfg.repo()  # a command that may write creates and migrates it (history creates nothing)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999_from_the_future'")
    before = db.read_bytes()
    for args in (["history"], [*START], ["show", "0000deadbeef"]):
        result = invoke(Config(state_db=str(db), engine_factory=lambda *a, **k: fake), *args)
        assert result.exit_code == ExitCode.STATE_DB, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "was written by a newer reindex-fsm" in lines[0]
        assert "'0999_from_the_future'" in lines[0] and "upgrade reindex-fsm" in lines[0]
    assert db.read_bytes() == before
    assert fake.call_names(mutating_only=True) == []


def test_what_is_not_an_engine_names_the_url():
    from reindex_fsm.engine.connect import detect_flavor
    from reindex_fsm.errors import UnsupportedEngine

    for body in ("<html>proxy</html>", {"status": "ok"}, {"version": {"number": "1.0"}}):
        with pytest.raises(UnsupportedEngine) as caught:
            detect_flavor(body, "http://proxy:8080/es")
        assert "the server at http://proxy:8080/es is not Elasticsearch or OpenSearch" in str(
            caught.value
        )
