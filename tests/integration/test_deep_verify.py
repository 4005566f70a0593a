"""--verify deep on the real engine: a clean copy passes and swaps; a target changed
after the copy fails with exit 5, the alias untouched and `show --json` naming the
document; a queries file passes on an identical copy and fails when the target answers
differently; routed documents are found on their shards; a recompute run leaves only its
vector out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import ExitCode
from reindex_fsm.machine import State
from reindex_fsm.testing import sample

from .conftest import alias_snapshot, cli_json, make_config, options, vector_type

pytestmark = pytest.mark.integration

QUERIES = [
    '{"match": {"title": "cafe"}}',  # asciifolding: finds the "café" titles
    '{"term": {"tags": "ops"}}',
    "resume checkpoint",  # plain text: a simple_query_string
    '{"query": {"range": {"views": {"gte": 50000}}}}',
]


def queries_file(tmp_path: Path) -> Path:
    path = tmp_path / "queries.txt"
    path.write_text("# one query per line\n" + "\n".join(QUERIES) + "\n")
    return path


def aliases_untouched(engine, names, before: dict) -> bool:
    """Every alias where it was; the kept (FAILED) target has none."""
    now = alias_snapshot(engine, names.prefix)
    return now.pop(names.target) == {"aliases": {}} and now == before


def start_cli(engine_url: str, tmp_path: Path, names, *args: str) -> tuple[int, dict]:
    """`reindex-fsm start --json` on the test's alias and target, with ``args``."""
    return cli_json(
        "start",
        "--alias",
        names.alias,
        "--target-index",
        names.target,
        "--engine-url",
        engine_url,
        "--state-db",
        str(tmp_path / "state.db"),
        "--force",
        *args,
    )


@pytest.mark.needs("analysis_common")
def test_clean_deep_verify_passes_and_swaps(engine, engine_url, tmp_path, names, make_source):
    n_docs = make_source()
    code, out = start_cli(
        engine_url,
        tmp_path,
        names,
        "--verify",
        "deep",
        "--verify-queries",
        str(queries_file(tmp_path)),
    )
    assert code == 0, out
    assert out["state"] == "SWAPPED"
    v = out["verification"]
    assert v["passed"] is True, v
    docs = v["documents"]
    assert docs["compared"] == n_docs and docs["hash_compared"] is True
    assert docs["missing_in_target"]["count"] == docs["differing"]["count"] == 0
    assert docs["only_in_target"] == {"checked": False, "count": 0, "ids": []}
    assert v["mappings"]["difference_count"] == 0, v["mappings"]
    q = v["queries"]
    assert (q["run"], q["failed"]) == (len(QUERIES), 0)
    assert all(line["source_hits"] == 10 and line["overlap"] == 1.0 for line in q["queries"])
    assert engine.get_alias(names.alias).keys() == {names.target}


def test_target_changed_after_the_copy_fails_with_exit_5(
    engine, engine_url, tmp_path, names, make_source
):
    n_docs = make_source()
    aliases_before = alias_snapshot(engine, names.prefix)

    def tamper(_point: str) -> None:  # the copy is done and recorded; verification is next
        engine.bulk(
            [
                {
                    "_op_type": "index",
                    "_index": names.target,
                    "_id": "doc-00000042",
                    "_source": {"title": "tampered"},
                },
                {"_op_type": "delete", "_index": names.target, "_id": "doc-00000007"},
                {"_op_type": "index", "_index": names.target, "_id": "stray", "_source": {}},
            ]
        )

    cfg = make_config(
        tmp_path, engine_url, crash=lambda: Crashpoints(at="commit.VERIFYING", action=tamper)
    )
    outcome = api.start(
        cfg,
        names.alias,
        options(verify=True, verify_level="deep", target_index=names.target),
    )
    rec = outcome.record
    assert outcome.exit_code == ExitCode.VERIFICATION_FAILED == 5
    assert rec.state is State.FAILED and rec.failed_from is State.VERIFYING
    assert aliases_untouched(engine, names, aliases_before)  # the swap did not happen
    assert engine.count(names.alias) == n_docs
    # the count alone matches (one lost, one stray): only the deep check sees it
    assert engine.count(names.target) == n_docs

    code, shown = cli_json("show", rec.id, "--state-db", str(tmp_path / "state.db"))
    assert code == 0
    docs = shown["verification"]["documents"]
    assert docs["differing"] == {"count": 1, "ids": ["doc-00000042"]}
    assert docs["missing_in_target"] == {"count": 1, "ids": ["doc-00000007"]}
    assert docs["only_in_target"] == {"checked": True, "count": 1, "ids": ["stray"]}
    assert shown["verification"]["passed"] is False
    assert "doc-00000042" in shown["error"]
    assert shown["error_kind"] == "VerificationFailed"


@pytest.mark.needs("analysis_common")
def test_queries_fail_when_the_target_answers_differently(
    engine, engine_url, tmp_path, names, make_source
):
    """Same documents, planned mappings in effect, but title analysed without folding:
    "cafe" no longer finds "café". Only the queries can see that."""
    make_source()
    aliases_before = alias_snapshot(engine, names.prefix)
    mappings = tmp_path / "mappings.json"
    mappings.write_text(json.dumps({"properties": {"title": {"type": "text"}}}))
    code, out = start_cli(
        engine_url,
        tmp_path,
        names,
        "--mappings",
        str(mappings),
        "--verify",
        "deep",
        "--verify-queries",
        str(queries_file(tmp_path)),
        "--verify-min-overlap",
        "0.8",
    )
    assert code == ExitCode.VERIFICATION_FAILED, out
    assert aliases_untouched(engine, names, aliases_before)
    code, shown = cli_json("show", out["run_id"], "--state-db", str(tmp_path / "state.db"))
    v = shown["verification"]
    assert v["documents"]["differing"]["count"] == 0
    assert v["mappings"]["difference_count"] == 0
    q = v["queries"]
    cafe = q["queries"][0]
    assert cafe["line"] == 2 and cafe["source_hits"] == 10 and cafe["target_hits"] == 0
    assert cafe["overlap"] == 0.0 and not cafe["passed"]
    assert [line["passed"] for line in q["queries"][1:]] == [True, True, True]
    assert q["failed"] == 1 and "1 of 4 queries below top-10 overlap 0.8" in shown["error"]


def test_sample_and_routed_documents(engine, engine_url, tmp_path, names):
    """Documents indexed with a routing are looked up on their own shard."""
    sample.create_sample(engine, names.source, names.alias, 0)
    routed = list(sample.generate_docs(300))
    ok, errors = engine.bulk(
        {
            "_op_type": "index",
            "_index": names.source,
            "_id": doc_id,
            "_routing": f"tenant-{n % 7}",
            "_source": doc,
        }
        for n, (doc_id, doc) in enumerate(routed)
    )
    assert (ok, errors) == (300, [])
    engine.refresh(names.source)
    cfg = make_config(tmp_path, engine_url)
    full = api.start(
        cfg, names.alias, options(verify=True, verify_level="deep", target_index=names.target)
    ).record
    assert full.state is State.SWAPPED, full.error
    assert full.verification["documents"]["compared"] == 300

    # and back again, on a random sample of 50
    other = names("v3")
    back = api.start(
        cfg,
        names.alias,
        options(verify=True, verify_level="deep", deep_sample=50, target_index=other),
    ).record
    assert back.state is State.SWAPPED, back.error
    docs = back.verification["documents"]
    assert docs["mode"] == "sample of 50" and docs["compared"] == 50 and "seed" in docs


@pytest.mark.needs("vector_field")
def test_recompute_run_compares_all_but_the_vector(
    engine, engine_url, tmp_path, names, make_source
):
    n_docs = make_source(300)
    cfg = make_config(tmp_path, engine_url)
    rec = api.start(
        cfg,
        names.alias,
        options(
            verify=True,
            verify_level="deep",
            target_index=names.target,
            recompute_embeddings=True,
            text_field="title",
            batch_size=100,
            **({"vector_mapping": {"type": "float"}} if vector_type(engine) == "float" else {}),
        ),
    ).record
    assert rec.state is State.SWAPPED, rec.error
    v = rec.verification
    assert v["documents"]["compared"] == n_docs and v["documents"]["differing"]["count"] == 0
    assert v["mappings"]["difference_count"] == 0, v["mappings"]
    assert any("embedding" in note for note in v["notes"])
