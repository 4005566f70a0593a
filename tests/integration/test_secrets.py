"""Credentials are never stored, printed or logged: runs given a password in the URL, in
the environment and as an API key; the secrets are looked for in everything they leave
behind (stdout, stderr, the state database file, show and history, the engine's
_meta and lease documents)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from .conftest import cli_argv, cli_env, raw

pytestmark = pytest.mark.integration

SECRETS = {
    "url": "Url-S3cret-7f3a",
    "env": "Env-S3cret-91c2",
    "api_key": "QXBpLVMzY3JldC0wZDRl",
}


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))


def run(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**cli_env(), **(env_extra or {})}
    return subprocess.run(cli_argv(*args), capture_output=True, text=True, env=env, timeout=300)


def test_no_secret_in_any_output_or_store(engine, engine_url, tmp_path, names, make_source):
    make_source(500)
    db = tmp_path / "state.db"
    base = ["--state-db", str(db), "--force", "--verify"]
    outputs: list[str] = []

    def start(target: str, url: str, *extra: str, env: dict[str, str] | None = None) -> dict:
        result = run(
            [
                "start",
                "--alias",
                names.alias,
                "--target-index",
                names(target),
                "--engine-url",
                url,
                *base,
                *extra,
                "--json",
            ],
            env,
        )
        outputs.extend([result.stdout, result.stderr])
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout)

    first = start("a", with_credentials(engine_url, "opsuser", SECRETS["url"]))
    second = start(
        "b", engine_url, "--username", "opsuser", env={"REINDEX_FSM_PASSWORD": SECRETS["env"]}
    )
    third = start("c", engine_url, env={"REINDEX_FSM_API_KEY": SECRETS["api_key"]})
    assert first["state"] == second["state"] == third["state"] == "SWAPPED"
    assert first["engine_url"] == engine_url  # stored without the credentials

    for run_id in (first["run_id"], second["run_id"], third["run_id"]):
        shown = run(["show", run_id, "--state-db", str(db)])
        outputs.extend([shown.stdout, shown.stderr])
        shown_json = run(["show", run_id, "--state-db", str(db), "--json"])
        outputs.extend([shown_json.stdout, shown_json.stderr])
    listed = run(["history", "--state-db", str(db)])
    outputs.extend([listed.stdout, listed.stderr])
    # an error that names the URL (a refused connection) does not print its credentials
    bad = run(
        [
            "resume",
            first["run_id"],
            "--state-db",
            str(db),
            "--engine-url",
            with_credentials("http://127.0.0.1:9", "opsuser", SECRETS["url"]),
        ]
    )
    outputs.extend([bad.stdout, bad.stderr])

    stored = db.read_bytes()
    for name in os.listdir(tmp_path):  # SQLite's journal files too, if any are left
        if name.startswith("state.db") and name != "state.db":
            stored += (tmp_path / name).read_bytes()
    engine_side = json.dumps(raw(engine, "GET", f"/{names.prefix}*/_mapping")) + json.dumps(
        raw(engine, "POST", "/reindex-fsm-leases/_search", {"size": 100})
    )
    for kind, secret in SECRETS.items():
        for i, text in enumerate(outputs):
            assert secret not in text, f"{kind} secret printed (output {i})"
        assert secret.encode() not in stored, f"{kind} secret in the state database"
        assert secret not in engine_side, f"{kind} secret written to the engine"
    assert stat.S_IMODE(Path(db).stat().st_mode) == 0o600
