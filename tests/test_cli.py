"""The CLI on the fake engine: output shapes, exit codes, and bad input (one clear line,
its exit code, nothing changed in the engine or the state database)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reindex_fsm import api
from reindex_fsm.api import Config
from reindex_fsm.cli import cli
from reindex_fsm.errors import ExitCode
from reindex_fsm.options import RunOptions
from reindex_fsm.store import open_store
from reindex_fsm.testing.fake import TaskScript

from .conftest import ALIAS, SOURCE, STORES, TARGET, db_rows

REQUIRED = {
    "run_id",
    "state",
    "alias",
    "source_index",
    "target_index",
    "task_id",
    "source_count",
    "target_count",
    "error",
}


def invoke(cfg: Config, *args: str):
    return CliRunner().invoke(cli, list(args), obj=cfg, catch_exceptions=False)


def test_start_json_prints_one_object(cfg, fake):
    result = invoke(cfg, "start", "--alias", ALIAS, "--verify", "--force", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= REQUIRED
    assert data["state"] == "SWAPPED" and data["target_index"] == TARGET
    assert data["source_count"] == data["target_count"] == len(fake.indices[SOURCE].docs)


def test_start_human_output_and_progress_lines(cfg):
    result = invoke(cfg, "start", "--alias", ALIAS, "--force")
    assert result.exit_code == 0
    assert "SWAPPED" in result.stdout
    assert "PLANNED -> TARGET_CREATED" in result.stderr


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_history_and_show_json(cfg, fake):
    first = json.loads(invoke(cfg, "start", "--alias", ALIAS, "--force", "--json").stdout)
    fake.add_index("other-v1", {"a": {"x": 1}}, aliases={"other": {}})
    second = json.loads(invoke(cfg, "start", "--alias", "other", "--force", "--json").stdout)
    runs = json.loads(invoke(cfg, "history", "--json").stdout)
    assert [r["run_id"] for r in runs][:2] in (
        [second["run_id"], first["run_id"]],
        [first["run_id"], second["run_id"]],  # same timestamp from the fixed clock: by ID
    )
    assert all(set(r) >= REQUIRED for r in runs)
    only = json.loads(invoke(cfg, "history", "--alias", "other", "--json").stdout)
    assert [r["run_id"] for r in only] == [second["run_id"]]
    assert json.loads(invoke(cfg, "history", "--state", "failed", "--json").stdout) == []
    shown = json.loads(invoke(cfg, "show", first["run_id"], "--json").stdout)
    assert set(shown) >= REQUIRED
    assert [e["to"] for e in shown["events"] if e["trigger"] != "write_block"] == [
        "PLANNED",
        "TARGET_CREATED",
        "REINDEXING",
        "VERIFYING",
        "SWAPPED",
    ]
    assert invoke(cfg, "show", first["run_id"]).exit_code == 0
    assert invoke(cfg, "history").exit_code == 0


def test_dry_run_prints_plan_and_writes_nothing(cfg, fake, state_db):
    before = fake.snapshot()
    result = invoke(
        cfg, "start", "--alias", ALIAS, "--dry-run", "--json", "--set", "index.number_of_shards=6"
    )
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["source_index"] == SOURCE
    assert plan["target_index"] == TARGET
    assert plan["settings"]["index.number_of_shards"] == 6
    assert plan["mappings"]["properties"]["title"]["analyzer"] == "folded"
    assert [next(iter(a)) for a in plan["alias_actions"]] == ["remove", "remove", "add", "add"]
    assert fake.call_names(mutating_only=True) == []
    assert fake.snapshot() == before
    assert db_rows(state_db)["runs"] == []


def test_start_without_force_refuses_without_a_terminal(cfg, fake):
    result = invoke(cfg, "start", "--alias", ALIAS)
    assert result.exit_code == ExitCode.USAGE
    assert "no terminal" in result.stderr and "--force" in result.stderr
    assert fake.call_names(mutating_only=True) == []


@pytest.mark.parametrize(
    ("options", "script", "code", "state"),
    [
        (
            ["--verify", "--rollback-on-failure"],
            TaskScript(fail_after_polls=1),
            ExitCode.ROLLED_BACK,
            "ROLLED_BACK",
        ),
        (["--verify"], TaskScript(fail_after_polls=1), ExitCode.RUN_FAILED, "FAILED"),
    ],
)
def test_failed_runs_exit_codes(cfg, fake, options, script, code, state):
    fake.task_script = script
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", "--json", *options)
    assert result.exit_code == code
    assert json.loads(result.stdout)["state"] == state


def test_verification_failure_exit_code(cfg, fake):
    original = fake.count
    fake.count = lambda index: original(index) - (index == TARGET)
    result = invoke(
        cfg, "start", "--alias", ALIAS, "--force", "--verify", "--rollback-on-failure", "--json"
    )
    assert result.exit_code == ExitCode.VERIFICATION_FAILED
    data = json.loads(result.stdout)
    assert data["state"] == "ROLLED_BACK" and "verification failed" in data["error"]


def test_abort_and_resume_commands(cfg, fake):
    fake.task_script = TaskScript(fail_after_polls=1)
    run_id = json.loads(invoke(cfg, "start", "--alias", ALIAS, "--force", "--json").stdout)[
        "run_id"
    ]
    fake.task_script = TaskScript()
    resumed = invoke(cfg, "resume", run_id, "--json")
    assert resumed.exit_code == 0 and json.loads(resumed.stdout)["state"] == "SWAPPED"
    fake.task_script = TaskScript(fail_after_polls=0)
    fake.add_index("other-v1", {"a": {"x": 1}}, aliases={"other": {}})
    other = json.loads(invoke(cfg, "start", "--alias", "other", "--force", "--json").stdout)
    aborted = invoke(cfg, "abort", other["run_id"], "--json")
    assert aborted.exit_code == 0 and json.loads(aborted.stdout)["state"] == "ROLLED_BACK"


# -- bad input: one clear line, its exit code, nothing changed ------------------------------
def _busy(cfg, fake):
    fake.task_script = TaskScript(fail_after_polls=1)
    api.start(cfg, ALIAS, RunOptions())
    fake.task_script = TaskScript()


def _two_indices(cfg, fake):
    fake.add_index("documents-v0", {"z": {"t": 1}}, aliases={ALIAS: {}})


def _foreign_target(cfg, fake):
    fake.add_index("documents-new", {"z": {"t": 1}})


def _finished(cfg, fake):
    rec = api.start(cfg, ALIAS, RunOptions())
    _finished.run_id = rec.record.id  # type: ignore[attr-defined]


BAD_INPUT = [
    (
        "unknown alias",
        None,
        ["start", "--alias", "nope", "--force"],
        ExitCode.USAGE,
        "alias 'nope' does not exist",
    ),
    (
        "alias on two indices",
        _two_indices,
        ["start", "--alias", ALIAS, "--force"],
        ExitCode.USAGE,
        "points at 2 indices",
    ),
    (
        "concrete index as alias",
        None,
        ["start", "--alias", SOURCE, "--force"],
        ExitCode.USAGE,
        "is a concrete index, not an alias",
    ),
    (
        "foreign index at target name",
        _foreign_target,
        ["start", "--alias", ALIAS, "--force", "--target-index", "documents-new"],
        ExitCode.USAGE,
        "already exists and was created outside reindex-fsm",
    ),
    (
        "unknown run ID",
        None,
        ["resume", "0000deadbeef"],
        ExitCode.RUN_NOT_FOUND,
        "no run with ID '0000deadbeef'",
    ),
    (
        "resume of a finished run",
        _finished,
        ["resume", "{run_id}"],
        ExitCode.USAGE,
        "already finished in state SWAPPED",
    ),
    (
        "second start on a busy alias",
        _busy,
        ["start", "--alias", ALIAS, "--force"],
        ExitCode.LOCK_HELD,
        "is busy: run",
    ),
    (
        "bad --set",
        None,
        ["start", "--alias", ALIAS, "--force", "--set", "oops"],
        ExitCode.USAGE,
        "is not key=value",
    ),
    (
        "bad --settings file",
        "bad_json",
        ["start", "--alias", ALIAS, "--force", "--settings", "{tmp}/bad.json"],
        ExitCode.USAGE,
        "is not valid JSON",
    ),
]


@pytest.mark.parametrize(
    ("name", "setup", "args", "code", "message"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT]
)
def test_bad_input(cfg, fake, state_db, tmp_path, name, setup, args, code, message):
    if setup == "bad_json":
        (tmp_path / "bad.json").write_text('{"index": ')
    elif setup:
        setup(cfg, fake)
    args = [a.format(run_id=getattr(_finished, "run_id", ""), tmp=tmp_path) for a in args]
    engine_before, db_before = fake.snapshot(), db_rows(state_db)
    mutating_before = fake.call_names(mutating_only=True)
    result = invoke(cfg, *args)
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert fake.snapshot() == engine_before
    assert fake.call_names(mutating_only=True) == mutating_before
    assert db_rows(state_db) == db_before


def test_bad_input_json_mode_prints_error_object(cfg):
    result = invoke(cfg, "start", "--alias", "nope", "--force", "--json")
    assert result.exit_code == ExitCode.USAGE
    assert json.loads(result.stdout) == {
        "error": result.stderr.strip()[len("error: ") :],
        "exit_code": 2,
    }


def test_unreachable_engine_url(state_db, fake):
    cfg = Config(state_db=state_db, client_options={"request_timeout": 2, "max_retries": 0})
    db_before = db_rows(state_db)
    result = invoke(
        cfg, "start", "--alias", ALIAS, "--force", "--engine-url", "http://user:s3cret@127.0.0.1:1"
    )
    assert result.exit_code == ExitCode.ENGINE_UNREACHABLE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the engine at http://127.0.0.1:1" in lines[0]
    assert "s3cret" not in result.stderr + result.stdout
    assert db_rows(state_db) == db_before


def test_unwritable_state_database(tmp_path, fake):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = Config(engine_factory=lambda *a, **k: fake)
    result = invoke(
        cfg, "start", "--alias", ALIAS, "--force", "--state-db", str(blocker / "state.db")
    )
    assert result.exit_code == ExitCode.STATE_DB
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create the state database" in lines[0]
    assert fake.calls == []
    assert blocker.read_text() == "not a folder"


def test_every_command_has_help_with_an_example():
    for name, command in cli.commands.items():
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0
        assert command.help and "Example" in command.help, name


def test_state_db_env_var(tmp_path: Path, fake, monkeypatch):
    path = tmp_path / "from-env.db"
    monkeypatch.setenv("REINDEX_FSM_STATE_DB", str(path))
    cfg = Config(engine_factory=lambda *a, **k: fake)
    missing = invoke(cfg, "history", "--json")  # history creates nothing, names the path
    assert missing.exit_code == ExitCode.RUN_NOT_FOUND and str(path) in missing.stderr
    assert invoke(cfg, "start", "--alias", ALIAS, "--dry-run", "--json").exit_code == 0
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
    assert invoke(Config(), "history", "--json").exit_code == 0


# -- --recompute-embeddings ------------------------------------------------------------------


def _jsonl(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = [json.dumps({"id": f"d{i}", "text": f"text {i}"}) for i in range(5)]
# --allow-shrink: the files are far smaller than the fake source (this is about recompute)
RECOMPUTE = (
    "--recompute-embeddings",
    "--vector-mapping",
    '{"type": "float"}',
    "--force",
    "--allow-shrink",
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--documents-path", "x.jsonl"), "--documents-path needs --recompute-embeddings"),
        (("--embedder", "zeros"), "--embedder needs --recompute-embeddings"),
        (("--workers", "2"), "--workers needs --recompute-embeddings"),
        (("--recompute-embeddings", "--vector-mapping", "{nope"), "--vector-mapping is not JSON"),
        (("--recompute-embeddings", "--vector-mapping", "[1]"), "must be a JSON object"),
        (("--recompute-embeddings", "--embedder", "nosuch"), "unknown embedder 'nosuch'"),
    ],
)
def test_recompute_usage_errors(cfg, fake, args, message):
    before, rows = fake.snapshot(), db_rows(cfg.state_db)
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", *args)
    assert result.exit_code in (ExitCode.USAGE, ExitCode.BAD_INPUT), result.stderr
    unknown = message.startswith("unknown embedder")
    assert result.exit_code == (ExitCode.BAD_INPUT if unknown else ExitCode.USAGE)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert fake.snapshot() == before and db_rows(cfg.state_db) == rows


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([*GOOD[:2], "{oops", *GOOD[2:]], ":3: malformed JSON"),
        ([*GOOD, GOOD[1]], ":6: duplicate ID 'd1' (first on line 2)"),
        ([*GOOD[:4], json.dumps({"id": "x"})], ":5: missing text field 'text'"),
        ([], "is empty"),
    ],
)
def test_recompute_bad_input_is_one_line_exit_12(cfg, fake, tmp_path, lines, message):
    path = _jsonl(tmp_path, lines)
    before, rows = fake.snapshot(), db_rows(cfg.state_db)
    result = invoke(cfg, "start", "--alias", ALIAS, "--documents-path", str(path), *RECOMPUTE)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert str(path) in result.stderr and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake.snapshot() == before and db_rows(cfg.state_db) == rows


def test_recompute_dry_run_reports_the_input_and_writes_nothing(cfg, fake, tmp_path):
    path = _jsonl(tmp_path, [*GOOD, "{oops"])
    skip = tmp_path / "rejects.jsonl"
    before, rows = fake.snapshot(), db_rows(cfg.state_db)
    result = invoke(
        cfg,
        "start",
        "--alias",
        ALIAS,
        "--documents-path",
        str(path),
        "--dry-run",
        "--json",
        "--skip-invalid",
        str(skip),
        *RECOMPUTE,
    )
    assert result.exit_code == 0, result.stderr
    copy_step = json.loads(result.stdout)["steps"][2]
    assert copy_step["strategy"] == "recompute embeddings"
    assert copy_step["documents"] == 5 and copy_step["rejected"] == 1
    assert copy_step["dimension"] == 256 and copy_step["embedder"] == "hashing"
    assert copy_step["first_rejects"][0]["line"] == 6
    assert not skip.exists()
    assert fake.snapshot() == before and db_rows(cfg.state_db) == rows


def test_recompute_run_json(cfg, fake, tmp_path):
    path = _jsonl(tmp_path, GOOD)
    result = invoke(
        cfg,
        "start",
        "--alias",
        ALIAS,
        "--documents-path",
        str(path),
        "--verify",
        "--json",
        *RECOMPUTE,
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["state"] == "SWAPPED" and data["target_count"] == 5
    assert data["progress"]["indexed"] == 5


def test_zeros_embedder_warns(cfg, fake, tmp_path):
    path = _jsonl(tmp_path, GOOD)
    result = invoke(
        cfg,
        "start",
        "--alias",
        ALIAS,
        "--documents-path",
        str(path),
        "--embedder",
        "zeros",
        *RECOMPUTE,
    )
    assert result.exit_code == 0, result.stderr
    assert "warning: the zeros embedder writes all-zero vectors: it is for tests only" in (
        result.stderr
    )


# -- connection options -------------------------------------------------------------------


def capturing(cfg: Config, fake) -> list[dict]:
    """Make ``cfg`` record the client options every engine is built with."""
    seen: list[dict] = []

    def factory(url, kind, **options):
        seen.append(options)
        return fake

    cfg.engine_factory = factory
    return seen


def test_connection_options_reach_the_client_and_nothing_else(cfg, fake, tmp_path):
    seen = capturing(cfg, fake)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    result = CliRunner().invoke(
        cli,
        ["start", "--alias", ALIAS, "--force", "--username", "ops", "--ca-certs", str(ca)],
        obj=cfg,
        env={"REINDEX_FSM_PASSWORD": "pw-from-env"},
    )
    assert result.exit_code == 0, result.stderr
    assert seen and all(
        o == {"username": "ops", "password": "pw-from-env", "ca_certs": str(ca)} for o in seen
    )
    assert "pw-from-env" not in result.stdout + result.stderr
    (rec,) = cfg.repo().list()
    assert "pw-from-env" not in json.dumps(rec.as_dict(), default=str)


def test_api_key_from_the_environment(cfg, fake):
    open_store(cfg.state_db)  # history reads an existing database
    seen = capturing(cfg, fake)
    result = CliRunner().invoke(
        cli, ["history", "--json"], obj=cfg, env={"REINDEX_FSM_API_KEY": "k"}
    )
    assert result.exit_code == 0  # history reads the database only: no engine built
    assert seen == []
    result = CliRunner().invoke(
        cli,
        ["start", "--alias", ALIAS, "--dry-run", "--json"],
        obj=cfg,
        env={"REINDEX_FSM_API_KEY": "k"},
    )
    assert result.exit_code == 0, result.stderr
    assert seen[0] == {"api_key": "k"}


def test_insecure_warns_and_a_password_on_the_command_line_warns(cfg, fake):
    seen = capturing(cfg, fake)
    result = CliRunner().invoke(
        cli,
        [
            "start",
            "--alias",
            ALIAS,
            "--dry-run",
            "--insecure",
            "--password",
            "pw",
            "--username",
            "u",
        ],
        obj=cfg,
    )
    assert result.exit_code == 0, result.stderr
    assert seen[0]["verify_certs"] is False
    assert "warning: --insecure: the engine's TLS certificate is NOT verified" in result.stderr
    assert "prefer REINDEX_FSM_PASSWORD" in result.stderr
    assert "pw" not in result.stderr.replace("REINDEX_FSM_PASSWORD", "").replace("--password", "")


def test_a_missing_ca_file_is_one_usage_line(cfg, fake, state_db):
    before, rows = fake.snapshot(), db_rows(state_db)
    result = CliRunner().invoke(
        cli, ["start", "--alias", ALIAS, "--force", "--ca-certs", "/nonexistent.pem"], obj=cfg
    )
    assert result.exit_code == ExitCode.USAGE
    assert "/nonexistent.pem is not a readable file" in result.stderr
    assert fake.snapshot() == before and db_rows(state_db) == rows


def test_every_option_of_every_command_has_help_text():
    for name, command in cli.commands.items():
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert command.help and len(command.help.strip()) > 20, name
        assert "Example" in result.stdout, f"{name} --help has no example"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"{name} {param.opts[0]} has no help text"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell):
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0
    assert "_REINDEX_FSM_COMPLETE" in result.stdout and "reindex-fsm" in result.stdout


def test_completion_completes_commands_and_options(monkeypatch):
    """What the shell gets back when it asks (click's completion protocol)."""
    from click.shell_completion import ShellComplete

    complete = ShellComplete(cli, {}, "reindex-fsm", "_REINDEX_FSM_COMPLETE")
    names = {c.value for c in complete.get_completions([], "")}
    assert {"start", "resume", "abort", "show", "history", "undo", "cleanup"} <= names
    options = {c.value for c in complete.get_completions(["start"], "--write")}
    assert options == {"--write-policy"}
    choices = {c.value for c in complete.get_completions(["start", "--write-policy"], "")}
    assert choices == {"block", "catch-up"}


@pytest.mark.postgres
@pytest.mark.parametrize("state_db", ["postgres"], indirect=True)
def test_postgres_state_db_password_is_never_printed_or_stored(cfg, fake, state_db):
    from sqlalchemy.engine import make_url

    password = make_url(state_db).password
    assert password
    leases = []
    put_lease = fake.put_lease

    def recording_put_lease(key, doc, **kw):
        leases.append(dict(doc))
        return put_lease(key, doc, **kw)

    fake.put_lease = recording_put_lease
    outputs = [
        invoke(cfg, "start", "--alias", ALIAS, "--force", "--state-db", state_db),
        invoke(cfg, "history", "--state-db", state_db),
        invoke(cfg, "history", "--json", "--state-db", state_db),
    ]
    run_id = json.loads(outputs[-1].stdout)[0]["run_id"]
    outputs += [
        invoke(cfg, "show", run_id, "--state-db", state_db),
        invoke(cfg, "show", run_id, "--json", "--state-db", state_db),
    ]
    assert [r.exit_code for r in outputs] == [0] * 5
    wrong = make_url(state_db).set(password="wr0ng-pw").render_as_string(hide_password=False)
    refused = invoke(cfg, "history", "--state-db", wrong)
    assert refused.exit_code == ExitCode.STATE_DB
    assert "password authentication failed" in refused.stderr
    for result in [*outputs, refused]:
        assert password not in result.output and "wr0ng-pw" not in result.output
    assert password not in repr(db_rows(state_db))  # nor in the runs' rows
    assert leases and all("@" not in lease["state_db"] for lease in leases)  # nor in the lease
    assert leases[0]["state_db"].startswith("postgresql+psycopg://127.0.0.1:")
