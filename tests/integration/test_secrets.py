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


# -- the same under TLS and basic auth, on the secured engine ------------------------------------


@pytest.mark.slow
def test_no_secret_under_tls_and_basic_auth(secured_engine, tmp_path):
    """The secured engine's own users (random passwords, bcrypt-hashed there): a run as the
    least-privilege user with the password in the URL, in REINDEX_FSM_PASSWORD and as
    --password, with -vv JSON logs and an HTML report; no password anywhere."""
    from devtools.engine import security
    from reindex_fsm.engine.connect import connect
    from reindex_fsm.testing import sample

    ca = str(secured_engine.ca_certs)
    password = secured_engine.users[security.RUN_USER]
    admin = connect(
        secured_engine.url,
        ca_certs=ca,
        username=security.ADMIN_USER,
        password=secured_engine.users[security.ADMIN_USER],
    )
    alias = f"itest-{os.urandom(5).hex()}"
    sample.create_sample(admin, f"{alias}-src", alias, 300)
    db = tmp_path / "state.db"
    report = tmp_path / "report.html"
    outputs: list[str] = []

    def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        tls = ["--ca-certs", ca] if args[0] == "start" else []  # show/history: no engine
        result = run(["-vv", "--log-format", "json", *args, *tls], env)
        outputs.extend([result.stdout, result.stderr])
        return result

    def start(target: str, url: str, *extra: str, env: dict[str, str] | None = None) -> dict:
        result = cli(
            "start",
            "--alias",
            alias,
            "--target-index",
            f"{alias}-{target}",
            "--engine-url",
            url,
            "--state-db",
            str(db),
            "--force",
            "--verify",
            *extra,
            "--json",
            env=env,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout)

    user = security.RUN_USER
    try:
        runs = [
            start("a", with_credentials(secured_engine.url, user, password)),
            start(
                "b",
                secured_engine.url,
                "--username",
                user,
                env={"REINDEX_FSM_PASSWORD": password},
            ),
            start("c", secured_engine.url, "--username", user, "--password", password),
        ]
        assert [r["state"] for r in runs] == ["SWAPPED"] * 3
        assert {r["engine_url"] for r in runs} == {secured_engine.url}
        for r in runs:
            shown = cli("show", r["run_id"], "--state-db", str(db), "--report", str(report))
            assert shown.returncode == 0, shown.stderr
            outputs.append(report.read_text())
            outputs.append(cli("show", r["run_id"], "--state-db", str(db), "--json").stdout)
        outputs.append(cli("history", "--state-db", str(db)).stdout)
        # refused answers carry no password either: a wrong one, and a user without a privilege
        wrong = f"{password}-wrong"
        refused = cli(
            "start",
            "--alias",
            alias,
            "--engine-url",
            with_credentials(secured_engine.url, user, wrong),
            "--state-db",
            str(db),
            "--force",
        )
        assert refused.returncode == 11
        noalias = secured_engine.users[security.NO_ALIAS_USER]
        denied = cli(
            "start",
            "--alias",
            alias,
            "--engine-url",
            with_credentials(secured_engine.url, security.NO_ALIAS_USER, noalias),
            "--state-db",
            str(db),
            "--force",
        )
        assert denied.returncode == 13

        stored = b"".join(
            (tmp_path / n).read_bytes() for n in os.listdir(tmp_path) if n.startswith("state.db")
        )
        engine_side = json.dumps(admin.request("GET", f"/{alias}*/_mapping")) + json.dumps(
            admin.request("POST", "/reindex-fsm-leases/_search", body={"size": 100})
        )
        for secret in (password, wrong, noalias):
            for i, text in enumerate(outputs):
                assert secret not in text, f"a password printed (output {i})"
            assert secret.encode() not in stored, "a password in the state database"
            assert secret not in engine_side, "a password written to the engine"
        assert any('"level"' in o or '"message"' in o for o in outputs), "no JSON log lines"
    finally:
        for index in admin.describe_indices(f"{alias}*"):
            admin.delete_index(index.name)
        admin.close()
