"""Plan files read (reindex_fsm.planfile): start's options from the same definitions as the
flags; every kind of bad file is one line naming file, line and key (exit 2, nothing
written); the README's key reference is the generated one. ``apply``'s dry run and runs:
tests/test_apply.py."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from reindex_fsm import planfile, plankeys
from reindex_fsm.cli import cli
from reindex_fsm.cli import start as start_cli
from reindex_fsm.cli.start import run_options
from reindex_fsm.errors import UsageError
from reindex_fsm.options import RunOptions
from reindex_fsm.store import open_store

from .conftest import ALIAS, ROOT

README = ROOT / "README.md"


def invoke(cfg, *args: str):
    return CliRunner().invoke(cli, list(args), obj=cfg, catch_exceptions=False)


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path) -> planfile.PlanFile:
    return planfile.load(str(path), run_options)


def start_options(*flags: str) -> RunOptions:
    """The RunOptions ``start`` makes of these flags (click's own parsing)."""
    ctx = start_cli.start.make_context("start", ["--alias", ALIAS, *flags])
    return run_options(ctx.params)


def run_count(state_db: str) -> int:
    if not Path(state_db.removeprefix("sqlite:///")).exists():
        return 0
    return len(open_store(state_db).list())


# -- one definition serves flags and plan keys -------------------------------------------------


def test_an_empty_plan_reads_as_start_with_no_flags():
    ctx = start_cli.start.make_context("start", ["--alias", ALIAS])
    parsed = {k: v for k, v in ctx.params.items() if k in planfile.default_given()}
    assert parsed == {**planfile.default_given(), "alias": (ALIAS,)}


def test_plan_keys_give_the_options_the_same_flags_give(tmp_path):
    write(tmp_path, '{"index": {"number_of_replicas": 2}}', "settings.json")
    path = write(
        tmp_path,
        f"""
alias: {ALIAS}
verify: deep
verify-sample: 20
requests-per-second: 250
slices: 4
set:
  index.number_of_shards: 2
  index:
    refresh_interval: 10s
copy-set: [index.translog.durability=async]
settings: settings.json
no-bulk-tuning: true
skip-preflight: disk
lease-ttl: 90
rollback-on-failure: true
""",
    )
    plan = load(path)
    (entry,) = plan.entries
    assert plan.shape == "alias" and entry.alias == ALIAS
    assert entry.options == start_options(
        "--verify",
        "deep",
        "--verify-sample",
        "20",
        "--requests-per-second",
        "250",
        "--slices",
        "4",
        "--set",
        "index.number_of_shards=2",
        "--set",
        "index.refresh_interval=10s",
        "--copy-set",
        "index.translog.durability=async",
        "--settings",
        str(tmp_path / "settings.json"),
        "--no-bulk-tuning",
        "--skip-preflight",
        "disk",
        "--lease-ttl",
        "90",
        "--rollback-on-failure",
    )
    assert entry.options.settings_overrides == {
        "index.number_of_replicas": 2,
        "index.number_of_shards": 2,
        "index.refresh_interval": "10s",
    }


def test_verify_true_is_the_flag_alone_and_minus_one_no_throttle(tmp_path):
    path = write(tmp_path, f"alias: {ALIAS}\nverify: true\nrequests-per-second: -1\n")
    (entry,) = load(path).entries
    assert entry.options == start_options("--verify", "--requests-per-second", "-1")


def test_text_is_as_written_and_null_is_not_given(tmp_path):
    path = write(
        tmp_path,
        "aliases:\n  - a\n  - alias: b\n    pipeline: null\n    target-index: 2027-01-01\n"
        "pipeline: add-fields\nslices: 007\n",
    )
    a, b = load(path).entries
    assert (a.options.pipeline, b.options.pipeline) == ("add-fields", None)
    assert b.options.target_index == "2027-01-01" and a.options.slices == 7


def test_the_hash_is_of_the_bytes_and_the_path_absolute(tmp_path, monkeypatch):
    path = write(tmp_path, f"alias: {ALIAS}\n")
    monkeypatch.chdir(tmp_path)
    plan = planfile.load("plan.yaml", run_options)
    assert plan.path == str(path.resolve())
    assert plan.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_list_with_overrides_merges_set_and_replaces_other_keys(tmp_path):
    path = write(
        tmp_path,
        """
aliases:
  - a
  - alias: b
    set: {index.number_of_replicas: 0}
    requests-per-second: unlimited
set: {index.number_of_shards: 2}
requests-per-second: 100
concurrency: 2
slices-budget: 8
on-failure: continue
""",
    )
    plan = load(path)
    a, b = plan.entries
    assert plan.shape == "batch"
    assert plan.batch == {"concurrency": 2, "slices_budget": 8, "on_failure": "continue"}
    assert a.options.settings_overrides == {"index.number_of_shards": 2}
    assert a.options.requests_per_second == 100
    assert b.options.settings_overrides == {
        "index.number_of_shards": 2,
        "index.number_of_replicas": 0,
    }
    assert b.options.requests_per_second is None and b.overrides == ("set", "requests-per-second")


def test_patterns_with_overrides_resolve_to_named_then_matched(tmp_path):
    path = write(
        tmp_path,
        """
alias-pattern: [logs-*, metrics-*]
aliases:
  - alias: logs-web
    verify: deep
verify: count
""",
    )
    plan = load(path)
    assert [p for p, _ in plan.patterns] == ["logs-*", "metrics-*"]
    entries = plan.resolve([("logs-api", 2), ("logs-web", 2), ("metrics-x", 2)])
    assert [e.alias for e in entries] == ["logs-web", "logs-api", "metrics-x"]
    assert [e.options.verify_level for e in entries] == ["deep", "count", "count"]


def test_connection_keys_are_read_and_credentials_never(tmp_path):
    path = write(
        tmp_path,
        f"alias: {ALIAS}\nengine-url: https://search.internal:9200\nengine: opensearch\n"
        "state-db: state/runs.db\nca-certs: ca.pem\n",
    )
    assert load(path).connection == {
        "engine_url": "https://search.internal:9200",
        "engine_kind": "opensearch",
        "state_db": "state/runs.db",
        "ca_certs": str(tmp_path / "ca.pem"),
    }


# -- every kind of bad file: one line naming file, line and key; exit 2; nothing written ------

BAD = {
    "syntax": (f"alias: {ALIAS}\nset: {{a: 1\n", 3, None, "YAML syntax error"),
    "unsafe tag": (
        f"alias: {ALIAS}\npipeline: !!python/object:os.system x\n",
        2,
        None,
        "YAML error",
    ),
    "recursive alias": (f"alias: {ALIAS}\nset: &a {{index.x: *a}}\n", 2, None, "holds it"),
    "empty": ("# nothing yet\n", 1, None, "the plan file is empty"),
    "not a mapping": ("- documents\n", 1, None, "must be a mapping"),
    "unknown key": (f"alias: {ALIAS}\nverfy: deep\n", 2, "verfy", "did you mean 'verify'"),
    "flag spelled with dashes": (f"alias: {ALIAS}\n--verify: deep\n", 2, "--verify", "without --"),
    "unknown key in an entry": (
        "aliases:\n  - alias: a\n    requests-per-secnd: 5\n",
        3,
        "requests-per-secnd",
        "did you mean 'requests-per-second'",
    ),
    "duplicate key": (f"alias: {ALIAS}\nslices: 2\nslices: 3\n", 3, "slices", "duplicate key"),
    "duplicate key in set": (
        f"alias: {ALIAS}\nset:\n  index.a: 1\n  index.a: 2\n",
        4,
        "index.a",
        "duplicate key",
    ),
    "duplicate alias": ("aliases:\n  - a\n  - alias: a\n", 3, "alias", "named twice"),
    "wrong type: bool": (
        f"alias: {ALIAS}\nallow-shrink: yes please\n",
        2,
        "allow-shrink",
        "true or false",
    ),
    "wrong type: int": (f"alias: {ALIAS}\nlease-ttl: soon\n", 2, "lease-ttl", "must be a number"),
    "wrong type: list for a string": (f"alias: {ALIAS}\nslices: [1]\n", 2, "slices", "not a list"),
    "wrong type: alias": ("alias: 3\n", 1, "alias", "is a string"),
    "wrong type: date for a number": (
        f"alias: {ALIAS}\nlease-ttl: 2027-01-01\n",
        2,
        "lease-ttl",
        "not a date",
    ),
    "a list under alias": ("alias: [a, b]\n", 1, "alias", "go under aliases"),
    "a defaults block": (
        f"alias: {ALIAS}\ndefaults: {{verify: deep}}\n",
        2,
        "defaults",
        "top level",
    ),
    "wrong type: path": (
        f"alias: {ALIAS}\nsettings: {{a: 1}}\n",
        2,
        "settings",
        "inline settings go under set",
    ),
    "bad choice": (
        f"alias: {ALIAS}\nwrite-policy: sometimes\n",
        2,
        "write-policy",
        "not one of block",
    ),
    "bad range": (f"alias: {ALIAS}\nverify-top-k: 0\n", 2, "verify-top-k", "at least 1"),
    "bad value: rate": (
        f"alias: {ALIAS}\nrequests-per-second: 0\n",
        2,
        "requests-per-second",
        "not a positive",
    ),
    "bad value: rule": (
        f"alias: {ALIAS}\n\nverify-sample: 5\n",
        3,
        "verify-sample",
        "needs --verify deep",
    ),
    "bad value: rule in an entry": (
        "aliases:\n  - b\n  - alias: a\n    write-policy: catch-up\n",
        4,
        "write-policy",
        "needs --since-field FIELD (alias a)",
    ),
    "bad value: set form": (f"alias: {ALIAS}\nset: [index.x]\n", 2, "set", "is not key=value"),
    "bad alias name": ("alias: Bad*Name\n", 1, "alias", None),
    "password": (f"alias: {ALIAS}\npassword: hunter2\n", 2, "password", "REINDEX_FSM_PASSWORD"),
    "api key": (f"alias: {ALIAS}\napi-key: abc\n", 2, "api-key", "REINDEX_FSM_API_KEY"),
    "credentials in the URL": (
        f"alias: {ALIAS}\nengine-url: https://admin:hunter2@search:9200\n",
        2,
        "engine-url",
        "without user:password@",
    ),
    "no alias": ("verify: deep\n", 1, None, "names no alias"),
    "alias and aliases": (f"alias: {ALIAS}\naliases: [b]\n", 2, "aliases", "exclude each other"),
    "batch key with one alias": (f"alias: {ALIAS}\nconcurrency: 2\n", 2, "concurrency", "batch"),
    "entry without alias": ("aliases:\n  - verify: deep\n", 2, "aliases", "no alias key"),
    "empty list": ("aliases: []\n", 1, "aliases", "the list is empty"),
    "pattern matching nothing": (
        "aliases: [documents]\nalias-pattern:\n  - docu*\n  - nothing-*\n",
        4,
        "alias-pattern",
        "no alias matches --alias-pattern 'nothing-*'",
    ),
    "not one pattern": (
        "alias-pattern: 'logs-*,metrics-*'\n",
        1,
        "alias-pattern",
        "not one alias pattern",
    ),
    "alias with a pattern": (
        f"alias: {ALIAS}\nalias-pattern: x-*\n",
        2,
        "alias-pattern",
        "exclude",
    ),
    "batch setting: range": (
        "aliases: [documents]\nconcurrency: 0\n",
        2,
        "concurrency",
        "at least 1",
    ),
    "batch setting: choice": (
        "aliases: [documents]\non-failure: shrug\n",
        2,
        "on-failure",
        "not one of stop, continue",
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_plan_file_is_one_line_naming_file_line_and_key(cfg, fake, state_db, tmp_path, case):
    text, line, key, words = BAD[case]
    path = write(tmp_path, text)
    before = fake.snapshot()
    result = invoke(cfg, "apply", str(path), "--force")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (err,) = result.stderr.splitlines()
    head = f"error: {path}:{line}: " + (f"{key}: " if key else "")
    assert err.startswith(head), err
    if words:
        assert words in err
    assert fake.snapshot() == before and fake.call_names(mutating_only=True) == []
    assert run_count(state_db) == 0
    assert "password" not in case or "hunter2" not in err


def test_bad_plan_file_under_json_is_the_error_object(cfg, tmp_path):
    path = write(tmp_path, f"alias: {ALIAS}\nverfy: deep\n")
    result = invoke(cfg, "apply", str(path), "--dry-run", "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["exit_code"] == 2 and data["error"].startswith(f"{path}:2: verfy: ")


def test_a_file_that_is_not_utf8_or_not_there(cfg, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_bytes(b"alias: documents\nverify: \xff\n")
    result = invoke(cfg, "apply", str(path), "--force")
    assert result.exit_code == 2 and f"{path}:2: the plan file is not UTF-8" in result.stderr
    missing = invoke(cfg, "apply", str(tmp_path / "none.yaml"), "--force")
    assert missing.exit_code == 2 and "cannot read plan file" in missing.stderr


def test_a_rule_refusal_reaches_the_library_caller_as_usage_error(tmp_path):
    path = write(tmp_path, f"alias: {ALIAS}\nverify-top-k: 5\n")
    with pytest.raises(UsageError, match=r"plan.yaml:2: verify-top-k: --verify-top-k needs"):
        load(path)


# -- the README's key reference -----------------------------------------------------------------


def test_readme_key_reference_is_the_generated_one():
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- plan-keys:start -->\n(.*?)\n<!-- plan-keys:end -->", text, re.S)
    assert found, "README has no plan-keys block"
    assert found.group(1) == plankeys.key_reference(), (
        "README's plan key reference is out of date; replace the block with:\n"
        + plankeys.key_reference()
    )


def test_every_start_option_is_a_plan_key():
    from reindex_fsm.options import start_flags

    keys = set(plankeys.option_flags())
    for flag in start_flags():
        if flag.flag not in plankeys.APPLY_ONLY:
            assert flag.flag[2:] in keys


def test_an_alias_the_engine_refuses_names_its_line(cfg, fake, state_db, tmp_path):
    path = write(tmp_path, f"aliases:\n  - {ALIAS}\n  - alias: missing\n    verify: deep\n")
    before = fake.snapshot()
    result = invoke(cfg, "apply", str(path), "--dry-run")
    assert result.exit_code == 2
    (err,) = result.stderr.splitlines()
    assert err.startswith(f"error: {path}:3: alias: missing: alias 'missing' does not exist")
    assert fake.snapshot() == before and run_count(state_db) == 0


def test_the_readme_examples_are_valid_plan_files(tmp_path):
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Plan files") : text.index("### Plan file keys")]
    examples = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(examples) == 3
    (tmp_path / "documents-mappings.json").write_text('{"properties": {}}')
    shapes = [load(write(tmp_path, example)).shape for example in examples]
    assert shapes == ["alias", "batch", "batch"]
