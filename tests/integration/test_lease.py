"""The engine lease on a real engine: operators with different state databases cannot
run on one alias at once; a SIGKILLed holder blocks the alias until its lease expires;
--force-unlock takes it over with a warning."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm.crashpoints import ENV_VAR as CRASH_ENV_VAR
from reindex_fsm.engine.base import LEASE_INDEX
from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.errors import ExitCode
from reindex_fsm.lease import Lease

from .conftest import Names, cli_argv, cli_env, indices_under, raw

pytestmark = pytest.mark.integration

N_STARTS = 8
SLOW_COPY = ["--requests-per-second", "200", "--slices", "1"]  # 2,000 docs: about 10 s


def start_argv(names: Names, db: Path, url: str, *extra: str) -> list[str]:
    return cli_argv(
        "start",
        "--alias",
        names.alias,
        "--force",
        "--json",
        "--state-db",
        f"sqlite:///{db}",
        "--engine-url",
        url,
        *extra,
    )


def spawn(argv: list[str], crash_at: str | None = None) -> subprocess.Popen[str]:
    env = cli_env()
    if crash_at:
        env[CRASH_ENV_VAR] = crash_at
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=cli_env(), capture_output=True, text=True, timeout=120)


def lease_of(engine: ClientEngine, alias: str) -> Lease | None:
    stored = engine.get_lease(alias)
    return Lease.from_stored(alias, stored) if stored else None


@pytest.fixture
def contested(engine: ClientEngine, names: Names, make_source: Any) -> Any:
    """A 2,000-document source behind ``names.alias``; no lease is left behind on it."""
    make_source(2_000)
    yield
    stored = engine.get_lease(names.alias)  # a killed holder's lease: not left to expire
    if stored is not None:
        engine.delete_lease(names.alias, stored.seq_no, stored.primary_term)


def test_eight_concurrent_starts_with_their_own_databases_run_exactly_one(
    engine: ClientEngine,
    engine_url: str,
    names: Names,
    tmp_path: Path,
    contested: None,
) -> None:
    procs = [
        spawn(start_argv(names, tmp_path / f"operator-{i}.db", engine_url, *SLOW_COPY))
        for i in range(N_STARTS)
    ]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    winners = [(p, out) for p, out, _err in results if p.returncode == 0]
    assert len(winners) == 1, [(p.returncode, err[-500:]) for p, _o, err in results]
    ((_, winner_out),) = winners
    winner = json.loads(winner_out)
    assert winner["state"] == "SWAPPED"
    for proc, _out, err in results:
        if proc.returncode == 0:
            continue
        assert proc.returncode == ExitCode.LOCK_HELD, err
        (line,) = err.strip().splitlines()  # one error line naming the holder
        assert line.startswith(
            f"error: alias '{names.alias}' is locked by run {winner['run_id']}, "
        )
        assert "expires in" in line
    # the alias is on the one run's target, and no other target was created
    assert set(engine.get_alias(names.alias)) == {winner["target_index"]}
    assert indices_under(engine, names.prefix) == sorted([names.source, winner["target_index"]])
    assert lease_of(engine, names.alias) is None  # released at SWAPPED


def test_a_sigkilled_holder_blocks_the_alias_until_its_lease_expires(
    engine: ClientEngine,
    engine_url: str,
    names: Names,
    tmp_path: Path,
    contested: None,
) -> None:
    ttl = ["--lease-ttl", "6"]
    killed = spawn(  # SIGKILLs itself right after its copy started (its task runs on)
        start_argv(names, tmp_path / "a.db", engine_url, *SLOW_COPY, *ttl),
        crash_at="commit.REINDEXING",
    )
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    held = lease_of(engine, names.alias)
    assert held is not None
    refused_at_least_once = False
    deadline = time.monotonic() + 60
    while True:
        second = run(start_argv(names, tmp_path / "b.db", engine_url, *ttl))
        if second.returncode == 0:
            break
        assert second.returncode == ExitCode.LOCK_HELD, second.stderr
        assert f"is locked by run {held.run_id}, " in second.stderr
        refused_at_least_once = True
        assert time.monotonic() < deadline, "the killed holder's lease never expired"
        time.sleep(1)
    assert refused_at_least_once
    assert datetime.now(UTC) >= held.expires_at  # taken over only once it had expired
    assert '"state": "SWAPPED"' in second.stdout
    assert lease_of(engine, names.alias) is None


def test_force_unlock_takes_over_a_live_lease_with_a_warning(
    engine: ClientEngine,
    engine_url: str,
    names: Names,
    tmp_path: Path,
    contested: None,
) -> None:
    killed = spawn(
        start_argv(names, tmp_path / "a.db", engine_url, *SLOW_COPY),
        crash_at="commit.REINDEXING",
    )
    killed.communicate(timeout=120)
    held = lease_of(engine, names.alias)
    assert held is not None and held.expires_at > datetime.now(UTC)  # 60 s: still live
    blocked = run(start_argv(names, tmp_path / "b.db", engine_url))
    assert blocked.returncode == ExitCode.LOCK_HELD
    assert "--force-unlock" in blocked.stderr
    forced = run(start_argv(names, tmp_path / "b.db", engine_url, "--force-unlock"))
    assert forced.returncode == 0, forced.stderr
    assert (
        f"warning: --force-unlock: took over the lease of alias '{names.alias}' "
        f"from run {held.run_id} (owner {held.owner}"
    ) in forced.stderr
    assert lease_of(engine, names.alias) is None


def test_the_lease_index_is_hidden(engine: ClientEngine, names: Names) -> None:
    lease = engine.put_lease(names.alias, {"run_id": "probe", "owner": "test"})
    try:
        settings = raw(engine, "GET", f"/{LEASE_INDEX}/_settings", flat_settings="true")
        assert settings[LEASE_INDEX]["settings"]["index.hidden"] == "true"
        listed = raw(engine, "GET", "/_cat/indices", format="json")  # hidden: not listed
        assert LEASE_INDEX not in {row["index"] for row in listed}
    finally:
        engine.delete_lease(names.alias, lease.seq_no, lease.primary_term)
