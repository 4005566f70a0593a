"""Elasticsearch 7.17 with x-pack security and file-realm users, for real: a cluster of its own
(the Elasticsearch launcher with ``users``, HTTP basic auth, no TLS), the preflight's
``_has_privileges`` check for a user who holds what a run needs and for one who does not, a
whole run under the least-privilege role, and a wrong password.

Selected where the session's engine is Elasticsearch (the Elasticsearch 7.17 job): the
cluster is started beside the session's, from the same launcher cache."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.engine import LauncherError, Settings
from devtools.engine.elasticsearch import ElasticsearchHome, FileUser
from reindex_fsm.engine.base import LEASE_INDEX
from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.engine.connect import connect
from reindex_fsm.errors import ExitCode
from reindex_fsm.testing.sample import create_sample

from .conftest import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.needs("elasticsearch", "local_engines")]

ALIAS = "secure-docs"
SOURCE = f"{ALIAS}-src"
PASSWORD = "s3cret-pw"  # a throwaway cluster's
# The privileges the preflight checks (reindex_fsm/preflight.py) and nothing more.
ROLES_YML = f"""\
reindexer:
  cluster: [monitor, manage]
  indices:
    - names: ["{ALIAS}*"]
      privileges: [read, view_index_metadata, monitor, manage, create_index, write]
    - names: ["{LEASE_INDEX}"]
      privileges: [create_index, read, write, view_index_metadata]
reader:
  cluster: [monitor]
  indices:
    - names: ["{ALIAS}*"]
      privileges: [read, view_index_metadata, monitor]
outsider:
  cluster: [monitor]
blind-to-leases:
  cluster: [monitor, manage]
  indices:
    - names: ["{ALIAS}*"]
      privileges: [read, view_index_metadata, monitor, manage, create_index, write]
    - names: ["{LEASE_INDEX}"]
      privileges: [create_index, read, write]
"""
USERS = {
    "admin": FileUser(PASSWORD, ("superuser",)),  # the launcher's health waits, the setup
    "runner": FileUser(PASSWORD, ("reindexer",)),
    "reader": FileUser(PASSWORD, ("reader",)),
    "outsider": FileUser(PASSWORD, ("outsider",)),
    "blind": FileUser(PASSWORD, ("blind-to-leases",)),
}


@pytest.fixture(scope="module")
def secure_url() -> Iterator[str]:
    """node-1's URL (no credentials) of a secured single-node Elasticsearch 7.17."""
    home = Path(os.environ.get("REINDEX_FSM_ENGINE_HOME") or "/tmp/reindex-fsm-engine")
    settings = Settings.from_env(home=Path(f"{home}-security"), heap="512m")
    engine_home = ElasticsearchHome(settings, users=USERS, roles_yml=ROLES_YML)
    try:
        url = engine_home.start()
    except LauncherError as err:
        pytest.fail(f"the secured Elasticsearch did not start: {err}", pytrace=False)
    try:
        yield url
    finally:
        engine_home.stop()


def as_user(url: str, user: str, password: str = PASSWORD) -> str:
    return url.replace("http://", f"http://{user}:{password}@")


@pytest.fixture(scope="module")
def admin(secure_url: str) -> Iterator[ClientEngine]:
    engine = connect(as_user(secure_url, "admin"))
    create_sample(engine, SOURCE, ALIAS, 300)
    yield engine
    engine.close()


def dry_run(url: str, db: Path) -> Any:
    return run_cli(
        "start", "--alias", ALIAS, "--dry-run", "--json", "--engine-url", url,
        "--state-db", f"sqlite:///{db}",
    )  # fmt: skip


def test_a_user_holding_what_a_run_needs_passes_the_privilege_check(
    admin: ClientEngine, secure_url: str, tmp_path: Path
) -> None:
    result = dry_run(as_user(secure_url, "runner"), tmp_path / "s.db")
    assert result.returncode == 0, result.stderr
    checks = {c["check"]: c for c in json.loads(result.stdout)["preflight"]}
    assert checks["privileges"] == {
        "check": "privileges",
        "status": "ok",
        "detail": "user runner holds every privilege a run needs",
        "hint": None,
    }


def index_names(admin: ClientEngine) -> list[str]:
    rows = admin.request("GET", "/_cat/indices", params={"format": "json", "h": "index"})
    return sorted(row["index"] for row in rows)


def start_as(url: str, user: str, db: Path) -> Any:
    return run_cli(
        "start", "--alias", ALIAS, "--force", "--engine-url", as_user(url, user),
        "--state-db", f"sqlite:///{db}",
    )  # fmt: skip


def test_a_user_missing_privileges_is_refused_in_one_line_and_nothing_is_written(
    admin: ClientEngine, secure_url: str, tmp_path: Path
) -> None:
    before = index_names(admin)
    result = start_as(secure_url, "reader", tmp_path / "s.db")
    assert result.returncode == ExitCode.PREFLIGHT_FAILED, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: preflight privileges: user reader lacks cluster:manage, ")
    assert f"{SOURCE}:manage" in line and f"{LEASE_INDEX}:write" in line
    assert "grant them to the user's role, or --skip-preflight privileges" in line
    assert PASSWORD not in result.stderr + result.stdout
    assert index_names(admin) == before  # no target, no lease index


def test_the_lease_index_metadata_a_run_reads_is_checked(
    admin: ClientEngine, secure_url: str, tmp_path: Path
) -> None:
    """A run reads the lease index's settings: without view_index_metadata on it the run
    would fail after the preflight, so the preflight asks for it."""
    result = start_as(secure_url, "blind", tmp_path / "s.db")
    assert result.returncode == ExitCode.PREFLIGHT_FAILED, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"error: preflight privileges: user blind lacks {LEASE_INDEX}:view_index_metadata"
    ), line


def test_a_user_who_cannot_read_the_source_is_one_line_and_nothing_is_written(
    admin: ClientEngine, secure_url: str, tmp_path: Path
) -> None:
    """Refused by the engine before the preflight can ask (reading the source's stats)."""
    before = index_names(admin)
    result = start_as(secure_url, "outsider", tmp_path / "s.db")
    assert result.returncode == ExitCode.ENGINE_REFUSED, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "(HTTP 403): security_exception" in line and "user [outsider]" in line
    assert "check the credentials" in line and PASSWORD not in result.stderr
    assert index_names(admin) == before


def test_a_whole_run_under_the_least_privilege_role(
    admin: ClientEngine, secure_url: str, tmp_path: Path
) -> None:
    result = run_cli(
        "start", "--alias", ALIAS, "--force", "--json", "--engine-url",
        as_user(secure_url, "runner"), "--state-db", f"sqlite:///{tmp_path / 's.db'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    aliases = admin.request("GET", f"/_alias/{ALIAS}")
    (live,) = aliases
    assert live != SOURCE and live.startswith(f"{ALIAS}-")
    count = admin.request("GET", f"/{live}/_count")["count"]
    assert count == 300


def test_a_wrong_password_is_one_line(admin: ClientEngine, secure_url: str, tmp_path: Path) -> None:
    result = dry_run(as_user(secure_url, "runner", "wrong-pw"), tmp_path / "s.db")
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    assert "wrong-pw" not in result.stderr + result.stdout
