"""On the real engine, through the CLI: the count is verified without --verify, skipping it
takes --no-verify (one warning line), and a recompute from a file of far fewer documents
than the source (21 for 3,000) is refused before anything is written unless
--allow-shrink is given, which the plan then states."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reindex_fsm.errors import ExitCode

from .conftest import cli_json, indices_under, run_cli, vector_type

pytestmark = pytest.mark.integration

# Drops the documents whose ID ends in 7: a tenth of them, a copy that differs by design.
DROP_SOME = "if (ctx._id.endsWith('7')) { ctx.op = 'noop' }"


def _start(names, tmp_path: Path, *args: str):
    return run_cli(
        "start",
        "--alias",
        names.alias,
        "--target-index",
        names.target,
        "--force",
        "--state-db",
        str(tmp_path / "state.db"),
        "--engine-url",
        names.engine_url,
        *args,
    )


@pytest.fixture
def at(names, engine_url):
    names.engine_url = engine_url
    return names


@pytest.mark.needs("painless")
def test_the_count_is_verified_without_being_asked(engine, at, make_source, tmp_path):
    n_docs = make_source()
    script = tmp_path / "drop.painless"
    script.write_text(DROP_SOME)
    result = _start(at, tmp_path, "--script", str(script), "--json")
    assert result.returncode == ExitCode.VERIFICATION_FAILED, result.stderr[-2000:]
    run = json.loads(result.stdout)
    assert run["state"] == "FAILED" and run["error_kind"] == "VerificationFailed"
    assert f"had {n_docs}" in run["error"]
    assert list(engine.get_alias(at.alias)) == [at.source]
    # the failed run does not keep the writers out
    settings = engine.get_index(at.source).settings
    assert str(settings.get("index.blocks.write", "false")).lower() != "true"


@pytest.mark.needs("painless")
def test_no_verify_warns_once_and_swaps(engine, at, make_source, tmp_path):
    make_source()
    script = tmp_path / "drop.painless"
    script.write_text(DROP_SOME)
    result = _start(at, tmp_path, "--script", str(script), "--no-verify")
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: --no-verify: the target's document count is NOT compared with the source's"
    ]
    assert list(engine.get_alias(at.alias)) == [at.target]


def write_jsonl(path: Path, n: int) -> Path:
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps({"id": f"j{i:05d}", "text": f"recomputed text {i}"}) + "\n")
    return path


def test_a_much_smaller_recompute_needs_allow_shrink(engine, at, make_source, tmp_path):
    make_source(3000)
    path = write_jsonl(tmp_path / "docs.jsonl", 21)
    vectors: list[str] = []
    if vector_type(engine) == "float":
        vectors = ["--vector-mapping", '{"type": "float"}']
    recompute = ["--recompute-embeddings", "--documents-path", str(path), *vectors]
    db = str(tmp_path / "state.db")

    refused = _start(at, tmp_path, *recompute)
    assert refused.returncode == ExitCode.USAGE
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: target {at.target} would hold 21 documents, 0.7% of the 3000")
    assert "--allow-shrink" in line
    assert indices_under(engine, at.prefix) == [at.source]  # nothing written
    assert cli_json("history", "--state-db", db) == (0, [])

    code, plan = cli_json(
        "start", "--alias", at.alias, "--dry-run", "--allow-shrink", *recompute,
        "--state-db", db, "--engine-url", at.engine_url,
    )  # fmt: skip
    assert code == 0
    (verify_step,) = [s for s in plan["steps"] if s["step"] == "verify"]
    assert "will hold 21 documents" in verify_step["shrink"]
    assert verify_step["shrink"].endswith("allowed by --allow-shrink")

    swapped = _start(at, tmp_path, *recompute, "--allow-shrink", "--json")
    assert swapped.returncode == 0, swapped.stderr[-2000:]
    run = json.loads(swapped.stdout)
    assert run["state"] == "SWAPPED" and run["target_count"] == 21
    assert list(engine.get_alias(at.alias)) == [at.target]
