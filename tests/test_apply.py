"""``apply PLAN_FILE`` on the fake engine: --dry-run shows each alias's changes and writes
nothing; a run (or a batch of runs) made from a file stores the file's path and SHA-256,
shown by show and history --json; the confirmation."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from reindex_fsm.cli import cli
from reindex_fsm.store import open_store

from .conftest import ALIAS, SOURCE, TARGET
from .test_planfile import invoke, run_count, write

# -- --dry-run ---------------------------------------------------------------------------------


def test_dry_run_shows_each_change_and_writes_nothing(cfg, fake, state_db, tmp_path):
    write(
        tmp_path,
        '{"properties": {"tags": {"type": "text"}, "added": {"type": "long"}}}',
        "mappings.json",
    )
    fake.add_composable_template(
        "docs",
        {"index_patterns": [f"{ALIAS}-*"], "priority": 10, "template": {"settings": {}}},
    )
    path = write(
        tmp_path,
        f"alias: {ALIAS}\nset: {{index.number_of_shards: 1, index.refresh_interval: null, "
        "index.max_result_window: 5000}\nmappings: mappings.json\n",
    )
    before = fake.snapshot()
    result = invoke(cfg, "apply", str(path), "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dry_run"] is True
    assert data["plan_file"] == {
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    (change,) = data["aliases"]
    assert change["source_index"] == SOURCE and change["target_index"] == TARGET
    assert change["settings"] == {
        "changed": {"index.number_of_shards": ["3", 1]},
        "added": {"index.max_result_window": 5000},
        "removed": {"index.refresh_interval": "5s"},
    }
    assert change["mappings"]["changed"] == {
        "properties.tags": [{"type": "keyword"}, {"type": "text"}]
    }
    assert change["mappings"]["added"] == {"properties.added": {"type": "long"}}
    assert {m["alias"] for m in change["aliases"]} == {ALIAS, "documents-public"}
    assert [t["name"] for t in change["templates"]] == ["docs"]
    assert fake.snapshot() == before
    assert run_count(state_db) == 0

    human = invoke(cfg, "apply", str(path), "--dry-run")
    assert human.exit_code == 0
    text = human.stdout
    assert f"alias {ALIAS}: {SOURCE} -> {TARGET}" in text
    assert "setting  ~ index.number_of_shards: 3 -> 1" in text
    assert "setting  + index.max_result_window: 5000" in text
    assert "setting  - index.refresh_interval (was 5s; the engine's default)" in text
    assert 'mapping  ~ properties.tags: {"type": "keyword"} -> {"type": "text"}' in text
    assert f"alias    documents-public: {SOURCE} -> {TARGET}" in text
    assert "template" in text and "docs" in text
    assert fake.snapshot() == before


def test_dry_run_of_an_unchanged_alias_says_so(cfg, tmp_path):
    path = write(tmp_path, f"alias: {ALIAS}\n")
    result = invoke(cfg, "apply", str(path), "--dry-run")
    assert result.exit_code == 0
    assert "settings and mappings: as the source's" in result.stdout


def test_dry_run_prints_engine_text_as_text(cfg, fake, tmp_path):
    path = write(
        tmp_path, f"alias: {ALIAS}\nset: {{index.routing.allocation.include._name: '[red]x'}}\n"
    )
    result = invoke(cfg, "apply", str(path), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "index.routing.allocation.include._name: [red]x" in result.stdout


# -- runs made from a file ---------------------------------------------------------------------


def test_apply_stores_the_files_path_and_hash_with_the_run(cfg, fake, tmp_path):
    path = write(
        tmp_path, f"# reviewed\nalias: {ALIAS}\nverify: deep\nset: {{index.number_of_shards: 1}}\n"
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    result = invoke(cfg, "apply", str(path), "--force", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["state"] == "SWAPPED"
    assert (data["plan_path"], data["plan_hash"]) == (str(path), digest)
    assert fake.indices[TARGET].settings["index.number_of_shards"] in (1, "1")
    shown = json.loads(invoke(cfg, "show", data["run_id"], "--json").stdout)
    assert (shown["plan_path"], shown["plan_hash"]) == (str(path), digest)
    assert shown["options"]["verify_level"] == "deep"
    (row,) = json.loads(invoke(cfg, "history", "--json").stdout)
    assert (row["plan_path"], row["plan_hash"]) == (str(path), digest)
    human = invoke(cfg, "show", data["run_id"])
    assert f"plan file: {path} (sha256 {digest})" in human.stdout


def test_a_run_started_with_flags_has_no_plan_file(cfg):
    data = json.loads(invoke(cfg, "start", "--alias", ALIAS, "--force", "--json").stdout)
    assert data["plan_path"] is None and data["plan_hash"] is None


def test_apply_without_force_and_no_terminal_refuses(cfg, fake, state_db, tmp_path):
    path = write(tmp_path, f"alias: {ALIAS}\n")
    result = invoke(cfg, "apply", str(path))
    assert result.exit_code == 2 and "pass --force" in result.stderr
    assert run_count(state_db) == 0 and TARGET not in fake.indices


def test_a_command_line_flag_wins_over_the_files_key(cfg, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    path = write(tmp_path, f"alias: {ALIAS}\nstate-db: {tmp_path / 'from-file.db'}\n")
    result = invoke(cfg, "apply", str(path), "--force", "--json", "--state-db", other)
    assert result.exit_code == 0, result.stderr
    assert run_count(other) == 1 and not (tmp_path / "from-file.db").exists()


# -- several aliases: a batch of runs, each storing the file ------------------------------------


def add_tenants(fake, *names: str) -> None:
    for name in names:
        fake.add_index(
            f"{name}-v1",
            {f"{name}-{i}": {"title": f"doc {i}"} for i in range(20)},
            settings={"index.number_of_shards": "1", "index.number_of_replicas": "0"},
            mappings={"properties": {"title": {"type": "text"}}},
            aliases={name: {}},
        )


def test_apply_patterns_with_overrides_makes_one_batch(cfg, fake, tmp_path):
    add_tenants(fake, "logs-api", "logs-web", "logs-db")
    path = write(
        tmp_path,
        """
alias-pattern: logs-*
aliases:
  - alias: logs-web
    set: {index.number_of_shards: 2}
set: {index.number_of_replicas: 1}
concurrency: 2
on-failure: continue
""",
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    dry = invoke(cfg, "apply", str(path), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    data = json.loads(dry.stdout)
    assert [c["alias"] for c in data["aliases"]] == ["logs-web", "logs-api", "logs-db"]
    assert data["batch"] == {"concurrency": 2, "slices_budget": None, "on_failure": "continue"}
    web = data["aliases"][0]["settings"]
    assert web["changed"] == {
        "index.number_of_shards": ["1", 2],
        "index.number_of_replicas": ["0", 1],
    }
    assert not any(name.startswith("logs-") and name.endswith("0000") for name in fake.indices)

    human = invoke(cfg, "apply", str(path), "--dry-run")
    assert "batch of 3 runs: concurrency 2, slices budget no limit, on failure continue" in (
        human.stdout
    )
    assert "setting  ~ index.number_of_shards: 1 -> 2" in human.stdout

    result = invoke(cfg, "apply", str(path), "--force", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["swapped"], out["total"]) == (3, 3)
    assert (out["plan_path"], out["plan_hash"]) == (str(path), digest)
    shown = json.loads(invoke(cfg, "show", out["batch_id"], "--json").stdout)
    assert (shown["plan_path"], shown["plan_hash"]) == (str(path), digest)
    rows = json.loads(invoke(cfg, "history", "--json").stdout)
    assert len(rows) == 3
    assert {(r["plan_path"], r["plan_hash"]) for r in rows} == {(str(path), digest)}
    by_alias = {r["alias"]: r for r in rows}
    web_target = fake.indices[by_alias["logs-web"]["target_index"]]
    api_target = fake.indices[by_alias["logs-api"]["target_index"]]
    assert str(web_target.settings["index.number_of_shards"]) == "2"
    assert str(api_target.settings["index.number_of_shards"]) == "1"
    assert str(api_target.settings["index.number_of_replicas"]) == "1"
    run = json.loads(invoke(cfg, "show", by_alias["logs-db"]["run_id"], "--json").stdout)
    assert open_store(cfg.state_db).get(run["run_id"]).batch_id == out["batch_id"]
    assert (run["plan_path"], run["plan_hash"]) == (str(path), digest)


def test_apply_a_list_is_a_batch_whose_runs_store_the_file(cfg, fake, tmp_path):
    add_tenants(fake, "tenant-a", "tenant-b")
    path = write(tmp_path, "aliases: [tenant-a, tenant-b]\n")
    result = invoke(cfg, "apply", str(path), "--force", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert [r["alias"] for r in out["runs"]] == ["tenant-a", "tenant-b"]
    assert all(r["state"] == "SWAPPED" for r in out["runs"])
    repo = open_store(cfg.state_db)
    assert {(r.batch_id, r.plan_path) for r in repo.list()} == {(out["batch_id"], str(path))}


def test_a_batch_without_force_and_no_terminal_refuses(cfg, fake, state_db, tmp_path):
    add_tenants(fake, "tenant-a", "tenant-b")
    path = write(tmp_path, "aliases: [tenant-a, tenant-b]\n")
    result = invoke(cfg, "apply", str(path))
    assert result.exit_code == 2 and "pass --force" in result.stderr
    assert run_count(state_db) == 0


def test_force_unlock_is_for_one_alias(cfg, fake, state_db, tmp_path):
    add_tenants(fake, "tenant-a", "tenant-b")
    path = write(tmp_path, "aliases: [tenant-a, tenant-b]\n")
    result = invoke(cfg, "apply", str(path), "--force", "--force-unlock")
    assert result.exit_code == 2 and "not for a batch" in result.stderr
    assert run_count(state_db) == 0


@pytest.mark.parametrize("shape", ["alias", "batch"])
def test_apply_asks_and_a_no_writes_nothing(cfg, fake, state_db, tmp_path, monkeypatch, shape):
    from reindex_fsm.cli import apply as apply_cli

    monkeypatch.setattr(apply_cli, "need_terminal", lambda *a, **k: None)
    add_tenants(fake, "tenant-a", "tenant-b")
    text = "alias: tenant-a\n" if shape == "alias" else "aliases: [tenant-a, tenant-b]\n"
    path = write(tmp_path, text)
    before = fake.snapshot()
    declined = CliRunner().invoke(cli, ["apply", str(path)], obj=cfg, input="n\n")
    assert declined.exit_code == 10, declined.output
    assert "tenant-a" in declined.output
    assert fake.snapshot() == before and run_count(state_db) == 0
    accepted = CliRunner().invoke(cli, ["apply", str(path), "--json"], obj=cfg, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert run_count(state_db) == (1 if shape == "alias" else 2)


def test_the_files_ca_certs_wins_over_the_variable_and_the_flag_over_both(
    cfg, tmp_path, monkeypatch
):
    for name in ("env.pem", "file.pem", "flag.pem"):
        (tmp_path / name).write_text("not used: the fake engine takes any options")
    seen: list[dict] = []
    factory = cfg.engine_factory
    cfg.engine_factory = lambda url, kind, **kw: seen.append(kw) or factory(url, kind, **kw)
    monkeypatch.setenv("REINDEX_FSM_CA_CERTS", str(tmp_path / "env.pem"))
    path = write(tmp_path, f"alias: {ALIAS}\nca-certs: file.pem\n")
    assert invoke(cfg, "apply", str(path), "--dry-run", "--json").exit_code == 0
    assert seen[-1]["ca_certs"] == str(tmp_path / "file.pem")
    flag = str(tmp_path / "flag.pem")
    assert invoke(cfg, "apply", str(path), "--dry-run", "--json", "--ca-certs", flag).exit_code == 0
    assert seen[-1]["ca_certs"] == flag


def test_a_warning_is_given_once_for_all_the_aliases(cfg, fake, tmp_path):
    add_tenants(fake, "tenant-a", "tenant-b")
    path = write(tmp_path, "aliases: [tenant-a, tenant-b]\nno-verify: true\n")
    result = invoke(cfg, "apply", str(path), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("no-verify: the target's document count is NOT compared") == 1
    assert result.stdout.count("verification is OFF") == 2  # each alias's plan says it


def test_dry_run_counts_the_lifecycle_settings_put_on_at_the_swap(tmp_path):
    from .conftest import make_config
    from .test_lifecycle import NEXT, es_cluster

    fake = es_cluster()
    cfg = make_config(fake, f"sqlite:///{tmp_path}/s.db")
    path = write(tmp_path, f"alias: {ALIAS}\ntarget-index: {NEXT}\n")  # a rollover name
    result = invoke(cfg, "apply", str(path), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (change,) = data["aliases"]
    assert change["lifecycle"]["after_swap"]["index.lifecycle.name"] == "logs-policy"
    assert not any(k.startswith("index.lifecycle.") for k in change["settings"]["removed"])
    human = invoke(cfg, "apply", str(path), "--dry-run").stdout
    assert "lifecycle ILM policy logs-policy manages the target from" in human
