"""Runs against a real secured OpenSearch: the security plugin on loopback with TLS on
transport and HTTP (a throwaway CA and node certificate made at the engine's start),
internal users with bcrypt hashes and a least-privilege role (``devtools/engine/security.py``).

The engine is the session's ``secured_engine`` (``tests/support/engine.py``): started once,
stopped at the end. Tests set up and clean up as ``admin``; the CLI runs as ``reindexer``
(the role ``reindex_fsm``: exactly the privileges the README's Privileges section lists) or
``noalias`` (the same role less ``indices:admin/aliases``). A wrong password, an unknown CA
and a missing privilege are each one line with their exit code, and nothing is written.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.engine import security
from reindex_fsm.engine.base import LEASE_INDEX
from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.engine.connect import connect
from reindex_fsm.errors import IndexNotFound
from reindex_fsm.testing import sample
from tests.support.engine import LocalEngine

from .conftest import CLI_TIMEOUT_S, cli_argv, cli_env, content_digest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = 1_500


@pytest.fixture(scope="module")
def admin(secured_engine: LocalEngine) -> Iterator[ClientEngine]:
    eng = connect(
        secured_engine.url,
        ca_certs=str(secured_engine.ca_certs),
        username=security.ADMIN_USER,
        password=secured_engine.users[security.ADMIN_USER],
    )
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def alias(admin: ClientEngine) -> Iterator[str]:
    """A source of DOCS documents behind a new alias under ``itest-`` (the role's pattern);
    everything under it is deleted at the end."""
    name = f"itest-{uuid.uuid4().hex[:10]}"
    assert sample.create_sample(admin, f"{name}-src", name, DOCS) == DOCS
    try:
        yield name
    finally:
        for index in admin.describe_indices(f"{name}*"):
            with contextlib.suppress(IndexNotFound):
                admin.delete_index(index.name)


def cli(
    engine: LocalEngine, user: str, *args: str, ca: bool = True, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``reindex-fsm ARGS`` against the secured engine as ``user`` (the password in
    REINDEX_FSM_PASSWORD, --ca-certs the engine's CA unless ``ca`` is false)."""
    argv = [*args, "--engine-url", engine.url, "--username", user]
    if ca:
        argv += ["--ca-certs", str(engine.ca_certs)]
    env = {**cli_env(), "REINDEX_FSM_PASSWORD": password or engine.users[user]}
    return subprocess.run(
        cli_argv(*argv), capture_output=True, text=True, env=env, timeout=CLI_TIMEOUT_S
    )


def cluster_picture(admin: ClientEngine, alias: str) -> dict[str, Any]:
    """What a refused start must leave as it was: the indices under the alias's name, their
    aliases and settings, and the alias's lease document."""
    leases: Any = None
    if admin.index_exists(LEASE_INDEX):
        admin.refresh(LEASE_INDEX)
        leases = admin.request(
            "POST", f"/{LEASE_INDEX}/_search", body={"seq_no_primary_term": True}
        )
        leases = sorted((h["_id"], h["_seq_no"]) for h in leases["hits"]["hits"])
    return {
        "indices": sorted(i.name for i in admin.describe_indices(f"{alias}*")),
        "aliases": admin.request("GET", f"/{alias}*/_alias"),
        "settings": admin.request("GET", f"/{alias}*/_settings", params={"flat_settings": "true"}),
        "leases": leases,
    }


def runs_in(db: Path) -> list[Any]:
    if not db.exists():
        return []
    shown = subprocess.run(
        cli_argv("history", "--state-db", str(db), "--json"),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=CLI_TIMEOUT_S,
    )
    assert shown.returncode == 0, shown.stderr
    return list(json.loads(shown.stdout))


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# -- a run under the least-privilege role ------------------------------------------------------


def test_full_run_under_the_least_privilege_role(
    secured_engine: LocalEngine, admin: ClientEngine, alias: str, tmp_path: Path
) -> None:
    db = tmp_path / "state.db"
    planned = cli(
        secured_engine, security.RUN_USER, "start", "--alias", alias, "--dry-run", "--json"
    )
    assert planned.returncode == 0, planned.stderr
    checks = {c["check"]: c for c in json.loads(planned.stdout)["preflight"]}
    assert checks["privileges"]["status"] == "ok", checks["privileges"]
    assert "user reindexer (roles: reindex_fsm)" in checks["privileges"]["detail"]

    source = f"{alias}-src"
    before = content_digest(admin, source)
    done = cli(
        secured_engine,
        security.RUN_USER,
        "start",
        "--alias",
        alias,
        "--state-db",
        str(db),
        "--verify",
        "deep",
        "--force",
        "--json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(done.stdout)
    assert run["state"] == "SWAPPED"
    assert run["engine_url"] == secured_engine.url
    target = run["target_index"]
    assert set(admin.get_alias(alias)) == {target}
    assert content_digest(admin, target) == before
    # the write block is lifted: the source takes writes again
    assert "index.blocks.write" not in admin.get_index(source).settings
    # and undone under the same role: the alias goes back to the source
    undone = cli(
        secured_engine,
        security.RUN_USER,
        "undo",
        run["run_id"],
        "--state-db",
        str(db),
        "--force",
    )
    assert undone.returncode == 0, undone.stderr[-3000:]
    assert set(admin.get_alias(alias)) == {source}


# -- refused: one line, its exit code, nothing written ----------------------------------------


def assert_refused(
    admin: ClientEngine,
    alias: str,
    db: Path,
    result: subprocess.CompletedProcess[str],
    before: dict[str, Any],
    exit_code: int,
) -> str:
    assert result.returncode == exit_code, result.stderr
    line = one_error_line(result)
    assert cluster_picture(admin, alias) == before
    assert runs_in(db) == []
    return line


def test_tls_verification_is_on_by_default_an_unknown_ca_is_one_line(
    secured_engine: LocalEngine, admin: ClientEngine, alias: str, tmp_path: Path
) -> None:
    db = tmp_path / "state.db"
    before = cluster_picture(admin, alias)
    args = ("start", "--alias", alias, "--state-db", str(db), "--force")
    result = cli(secured_engine, security.RUN_USER, *args, ca=False)
    line = assert_refused(admin, alias, db, result, before, 6)
    assert "TLS certificate verification failed" in line
    assert "--ca-certs" in line


def test_insecure_skips_verification_with_a_warning(
    secured_engine: LocalEngine, alias: str
) -> None:
    args = ("start", "--alias", alias, "--dry-run", "--insecure", "--json")
    result = cli(secured_engine, security.RUN_USER, *args, ca=False)
    assert result.returncode == 0, result.stderr
    assert "TLS certificate is NOT verified" in result.stderr


def test_a_wrong_password_is_one_line(
    secured_engine: LocalEngine, admin: ClientEngine, alias: str, tmp_path: Path
) -> None:
    db = tmp_path / "state.db"
    before = cluster_picture(admin, alias)
    args = ("start", "--alias", alias, "--state-db", str(db), "--force")
    result = cli(secured_engine, security.RUN_USER, *args, password="not-the-password")
    line = assert_refused(admin, alias, db, result, before, 11)
    assert "HTTP 401" in line
    assert "not-the-password" not in result.stderr + result.stdout


def test_a_missing_privilege_is_refused_by_the_preflight(
    secured_engine: LocalEngine, admin: ClientEngine, alias: str, tmp_path: Path
) -> None:
    db = tmp_path / "state.db"
    before = cluster_picture(admin, alias)
    args = ("start", "--alias", alias, "--state-db", str(db), "--force")
    result = cli(secured_engine, security.NO_ALIAS_USER, *args)
    line = assert_refused(admin, alias, db, result, before, 13)
    assert "preflight privileges: user noalias" in line
    assert "lacks indices:admin/aliases on " in line


def test_each_probed_privilege_is_found_missing_on_the_real_engine(
    secured_engine: LocalEngine, admin: ClientEngine, alias: str, tmp_path: Path
) -> None:
    """The role of ``noalias`` made to lack, in turn, each action the preflight probes:
    each is named, and nothing is written (the probes cannot change anything)."""
    before = cluster_picture(admin, alias)
    role_path = f"/_plugins/_security/api/roles/{security.NO_ALIAS_ROLE}"
    probed = (
        "indices:admin/create",
        "indices:admin/delete",
        "indices:admin/settings/update",
        "indices:data/write/reindex",
        "cluster:monitor/tasks/lists",
        "cluster:admin/tasks/cancel",
    )
    try:
        for action in probed:
            role = security.run_role(without=(action,))
            role["cluster_permissions"] = [p for p in role["cluster_permissions"] if p != action]
            admin.request("PUT", role_path, body=role)
            for _attempt in range(5):  # the new role reaches the node within moments
                result = cli(
                    secured_engine, security.NO_ALIAS_USER, "start", "--alias", alias, "--dry-run"
                )
                if f"lacks {action} on " in result.stderr:
                    break
                time.sleep(1)
            assert result.returncode == 13, (action, result.stderr)
            assert f"lacks {action} on " in one_error_line(result)
    finally:
        admin.request("PUT", role_path, body=security.run_role(without=("indices:admin/aliases",)))
    assert cluster_picture(admin, alias) == before


def test_without_the_preflight_the_refused_swap_is_one_line_and_the_alias_stays(
    secured_engine: LocalEngine, admin: ClientEngine, alias: str, tmp_path: Path
) -> None:
    """--skip-preflight privileges: the first refused request (here the swap) fails the run
    in one line naming the action; the alias never moved and the source takes writes."""
    source = f"{alias}-src"
    db = tmp_path / "state.db"
    result = cli(
        secured_engine,
        security.NO_ALIAS_USER,
        "start",
        "--alias",
        alias,
        "--state-db",
        str(db),
        "--skip-preflight",
        "privileges",
        "--force",
    )
    assert result.returncode == 4, result.stderr[-3000:]
    errors = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1, result.stderr  # the run's progress lines come before it
    assert "no permissions for [indices:admin/aliases]" in errors[0]
    assert set(admin.get_alias(alias)) == {source}
    assert "index.blocks.write" not in admin.get_index(source).settings
