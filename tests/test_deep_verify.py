"""--verify deep on the fake engine: the comparison logic (a differing, a missing and an
extra document, a mapping difference, a low-overlap query, sample mode, runs that change
documents by design), what is stored and shown, and bad input at the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from reindex_fsm import api
from reindex_fsm.api import Config
from reindex_fsm.cli import cli
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import ExitCode, UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.steps import deep_verify
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, SOURCE, TARGET, db_rows, make_cluster, make_config

DEEP = {"verify": True, "verify_level": "deep"}
N_DOCS = 600  # two _mget chunks, the second one short


@pytest.fixture
def fake() -> FakeEngine:
    return make_cluster(N_DOCS)


def tamper(fake: FakeEngine, change: Callable[[FakeEngine], None]) -> Callable[[], Crashpoints]:
    """Crash points whose action changes the cluster once the copy is recorded."""
    return lambda: Crashpoints(at="commit.VERIFYING", action=lambda _p: change(fake))


def deep_run(fake: FakeEngine, state_db: str, change=None, **options):
    cfg = make_config(fake, state_db, crash=tamper(fake, change) if change else None)
    outcome = api.start(cfg, ALIAS, RunOptions(**{**DEEP, **options}))
    return cfg, outcome


def test_identical_copy_passes_and_swaps(fake, state_db):
    cfg, outcome = deep_run(fake, state_db)
    rec = outcome.record
    assert rec.state is State.SWAPPED and outcome.exit_code == ExitCode.OK
    v = rec.verification
    assert v["passed"] is True and v["level"] == "deep"
    docs = v["documents"]
    assert docs["compared"] == N_DOCS and docs["hash_compared"] is True
    assert docs["missing_in_target"] == docs["differing"] == {"count": 0, "ids": []}
    assert docs["only_in_target"] == {"checked": False, "count": 0, "ids": []}
    assert v["mappings"]["difference_count"] == 0
    # one mget of the target per chunk; no reverse pass
    mgets = [c.args for c in fake.calls if c.method == "mget"]
    assert mgets == [(TARGET, deep_verify.CHUNK), (TARGET, N_DOCS - deep_verify.CHUNK)]
    triggers = [e.trigger for e in cfg.repo().events(rec.id)]
    assert triggers[-2:] == ["deep verification passed", "verified"]


def test_differing_missing_and_extra_documents_block_the_swap(fake, state_db):
    def change(f: FakeEngine) -> None:
        docs = f.indices[TARGET].docs
        docs["doc-00007"]["title"] = "changed"
        del docs["doc-00011"]
        del docs["doc-00012"]
        docs["zz-extra"] = {"title": "not in the source"}

    _cfg, outcome = deep_run(fake, state_db, change, rollback_on_failure=True)
    rec = outcome.record
    assert rec.state is State.ROLLED_BACK and outcome.exit_code == ExitCode.VERIFICATION_FAILED
    assert fake.indices[SOURCE].aliases and TARGET not in fake.indices  # alias untouched
    docs = rec.verification["documents"]
    assert docs["differing"] == {"count": 1, "ids": ["doc-00007"]}
    assert docs["missing_in_target"] == {"count": 2, "ids": ["doc-00011", "doc-00012"]}
    assert docs["only_in_target"] == {"checked": True, "count": 1, "ids": ["zz-extra"]}
    assert rec.verification["passed"] is False
    assert "1 documents differ from the source (first: doc-00007)" in rec.error
    assert "2 documents missing from the target" in rec.error
    assert "1 documents only in the target (first: zz-extra)" in rec.error
    # two lost, one extra: the count check fails as well, and is stored beside
    assert rec.verification["count"] == {
        "target": N_DOCS - 1,
        "problems": [rec.error.split("verification failed: ")[1].split("; ")[0]],
    }


def test_a_changed_document_with_the_same_count_is_found(fake, state_db):
    def change(f: FakeEngine) -> None:
        f.indices[TARGET].docs["doc-00599"]["tags"] = ["other"]

    _cfg, outcome = deep_run(fake, state_db, change)
    rec = outcome.record
    assert rec.state is State.FAILED and outcome.exit_code == ExitCode.VERIFICATION_FAILED
    assert rec.verification["count"]["problems"] == []  # counts alone would have swapped
    assert rec.verification["documents"]["differing"]["ids"] == ["doc-00599"]
    assert rec.verification["documents"]["only_in_target"]["checked"] is False


def test_listed_ids_are_bounded(fake, state_db):
    def change(f: FakeEngine) -> None:
        for i in range(100):
            f.indices[TARGET].docs[f"doc-{i:05d}"]["title"] = "x"

    _cfg, outcome = deep_run(fake, state_db, change)
    differing = outcome.record.verification["documents"]["differing"]
    assert differing["count"] == 100 and len(differing["ids"]) == deep_verify.MAX_LISTED


def test_a_mapping_difference_blocks_the_swap(fake, state_db):
    def change(f: FakeEngine) -> None:
        f.indices[TARGET].mappings["properties"]["title"] = {"type": "keyword"}

    _cfg, outcome = deep_run(fake, state_db, change)
    rec = outcome.record
    assert rec.state is State.FAILED and outcome.exit_code == ExitCode.VERIFICATION_FAILED
    diffs = rec.verification["mappings"]["differences"]
    assert {"path": "properties.title.type", "planned": "text", "actual": "keyword"} in diffs
    assert "mapping parameters differ (properties.title" in rec.error


def test_compare_mappings_normalises_and_lists_additions():
    planned = {"properties": {"a": {"type": "keyword", "index": "false"}, "b": {"type": "long"}}}
    actual = {
        "properties": {
            "a": {"type": "keyword", "index": False},
            "c": {"type": "text"},  # dynamic mapping
        }
    }
    out = deep_verify.compare_mappings(planned, actual)
    assert out["differences"] == [{"path": "properties.b.type", "planned": "long", "actual": None}]
    assert out["added"] == ["properties.c.type"] and out["added_count"] == 1


def test_low_query_overlap_blocks_the_swap(fake, state_db):
    queries = [
        {"line": 1, "query": {"match_all": {}}},
        {"line": 3, "query": {"ids": {"values": ["doc-00001"]}}},
    ]

    def change(f: FakeEngine) -> None:  # the target's first five documents change position
        docs = f.indices[TARGET].docs
        for i in range(5):
            docs[f"doc-{i:05d}"]["title"] = "moved"
            docs[f"zz-{i}"] = docs.pop(f"doc-{i:05d}")
        # keep the count: every document is there, some under another ID

    _cfg, outcome = deep_run(
        fake, state_db, change, verify_queries=queries, verify_queries_file="q.txt"
    )
    q = outcome.record.verification["queries"]
    assert (q["run"], q["failed"], q["top_k"], q["min_overlap"]) == (2, 2, 10, 0.9)
    assert q["queries"][0] == {
        "line": 1,
        "source_hits": 10,
        "target_hits": 10,
        "overlap": 0.5,
        "passed": False,
    }
    assert q["queries"][1]["overlap"] == 0.0 and q["lowest_overlap"] == 0.0
    assert "2 of 2 queries below top-10 overlap 0.9 (lowest 0.0)" in outcome.record.error


def test_queries_pass_on_an_identical_copy(fake, state_db):
    queries = [{"line": 1, "query": {"match_all": {}}}]
    _cfg, outcome = deep_run(fake, state_db, verify_queries=queries, verify_top_k=25)
    q = outcome.record.verification["queries"]
    assert outcome.record.state is State.SWAPPED
    assert q["queries"] == [
        {"line": 1, "source_hits": 25, "target_hits": 25, "overlap": 1.0, "passed": True}
    ]


def test_top_k_overlap():
    assert deep_verify.top_k_overlap(["a", "b", "c", "d"], ["b", "a", "x", "y"]) == 0.5
    assert deep_verify.top_k_overlap([], []) == 1.0
    assert deep_verify.top_k_overlap([], ["a"]) == 0.0


def test_hits_tied_at_the_cut_off_may_be_other_documents_in_the_target():
    overlap = deep_verify.tied_top_k_overlap
    # a constant-score query: all tie, the copy wrote them in another order
    assert (
        overlap([("a", 1.0), ("b", 1.0), ("c", 1.0)], [("x", 1.0), ("a", 1.0), ("y", 1.0)], 3)
        == 1.0
    )
    # the hits above the cut-off must be there
    src = [("a", 3.0), ("b", 2.0), ("c", 1.0), ("d", 1.0)]
    assert overlap(src, [("x", 3.0), ("b", 2.0), ("c", 1.0), ("y", 1.0)], 4) == 0.75
    assert overlap(src, [("a", 3.1), ("b", 2.2), ("x", 1.1), ("y", 1.1)], 4) == 1.0
    # a tied slot of the target counts once, and only where its own list is full
    assert overlap(src, [("a", 3.0), ("b", 2.0), ("x", 1.0), ("y", 2.5)], 4) == 0.75
    assert overlap(src, [("a", 3.0), ("b", 2.0), ("x", 1.0)], 4) == 0.5
    # a list that is not full has no cut-off: plain overlap
    assert overlap([("a", 1.0), ("b", 1.0)], [("a", 1.0), ("x", 1.0)], 3) == 0.5
    assert overlap([], [], 3) == 1.0 and overlap([("a", None)], [("x", None)], 1) == 0.0


def test_sample_mode_checks_n_random_documents_with_a_recorded_seed(fake, state_db):
    def change(f: FakeEngine) -> None:
        for doc in f.indices[TARGET].docs.values():
            doc["title"] = "every document changed"

    _cfg, outcome = deep_run(fake, state_db, change, deep_sample=30)
    docs = outcome.record.verification["documents"]
    assert docs["mode"] == "sample of 30" and docs["compared"] == 30
    assert docs["differing"]["count"] == 30
    assert docs["seed"] == deep_verify.seed_for(outcome.record.id)
    assert docs["only_in_target"]["checked"] is False
    searches = [c for c in fake.calls if c.method == "search" and c.args == (SOURCE,)]
    assert len(searches) == 1 and "scan" not in fake.call_names()


def test_a_sample_of_an_identical_copy_passes(fake, state_db):
    _cfg, outcome = deep_run(fake, state_db, deep_sample=100)
    assert outcome.record.state is State.SWAPPED
    assert outcome.record.verification["documents"]["compared"] == 100


def test_a_scripted_copy_compares_ids_only_and_says_so(fake, state_db, monkeypatch):
    from reindex_fsm.steps import planning as plan_step

    make_plan = plan_step.make_plan

    def with_script(*args, **kwargs):
        p = make_plan(*args, **kwargs)
        body = {**p.reindex, "script": {"source": "ctx._source.title += '!'"}}
        return type(p)(**{**p.to_dict(), "reindex": body})

    monkeypatch.setattr(api, "make_plan", with_script)

    def change(f: FakeEngine) -> None:  # what the script would have done, and a lost doc
        for doc in f.indices[TARGET].docs.values():
            doc["title"] += "!"
        del f.indices[TARGET].docs["doc-00100"]

    _cfg, outcome = deep_run(fake, state_db, change)
    v = outcome.record.verification
    assert v["documents"]["hash_compared"] is False
    assert v["documents"]["differing"]["count"] == 0  # not compared: not claimed
    assert v["documents"]["missing_in_target"]["ids"] == ["doc-00100"]
    assert any("_source not compared: the copy runs a script" in n for n in v["notes"])


def test_recompute_leaves_the_vector_out_of_the_hash(fake, state_db):
    _cfg, outcome = deep_run(
        fake,
        state_db,
        recompute_embeddings=True,
        text_field="title",
        vector_mapping={"type": "float"},
    )
    rec = outcome.record
    assert rec.state is State.SWAPPED, rec.error
    assert all("embedding" in d for d in fake.indices[TARGET].docs.values())
    v = rec.verification
    assert v["documents"]["compared"] == N_DOCS and v["documents"]["differing"]["count"] == 0
    assert any("field embedding (the recomputed vector)" in n for n in v["notes"])


def test_recompute_from_jsonl_compares_with_the_file(fake, state_db, tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"j{i}", "text": f"t {i}"}) + "\n" for i in range(40))
    )

    def change(f: FakeEngine) -> None:
        f.indices[TARGET].docs["j3"]["text"] = "edited"

    _cfg, outcome = deep_run(
        fake,
        state_db,
        change,
        recompute_embeddings=True,
        documents_path=str(path),
        vector_mapping={"type": "float"},
        allow_shrink=True,  # 40 lines for a 2500-document source: not what is tested
    )
    v = outcome.record.verification
    assert v["documents"]["compared"] == 40
    assert v["documents"]["differing"]["ids"] == ["j3"]
    assert any("compared with the input file" in n for n in v["notes"])


def test_a_resumed_verification_is_done_again(fake, state_db):
    """Killed after the record is stored: the resume compares again and swaps."""

    def die(point: str) -> None:
        raise KeyboardInterrupt(point)

    cfg = make_config(
        fake,
        state_db,
        crash=lambda: Crashpoints(at="checkpoint.deep verification passed", action=die),
    )
    with pytest.raises(KeyboardInterrupt):
        api.start(cfg, ALIAS, RunOptions(**DEEP))
    (run,) = cfg.repo().list()
    assert run.state is State.VERIFYING and run.verification["passed"] is True
    resumed = api.resume(make_config(fake, state_db), run.id)
    assert resumed.record.state is State.SWAPPED
    assert resumed.record.verification["documents"]["compared"] == N_DOCS


# -- the queries file and the CLI -------------------------------------------------------------


def test_load_queries(tmp_path):
    path = tmp_path / "q.txt"
    lines = [
        "# comment",
        "",
        '{"match": {"title": "document"}}',
        "cheap shoes",
        '{"query": {"term": {"tags": "t1"}}}',
    ]
    path.write_text("\n".join(lines) + "\n")
    assert deep_verify.load_queries(str(path)) == [
        {"line": 3, "query": {"match": {"title": "document"}}},
        {"line": 4, "query": {"simple_query_string": {"query": "cheap shoes"}}},
        {"line": 5, "query": {"term": {"tags": "t1"}}},
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"match": ', "q.txt:1: not valid JSON"),
        ("ok\n{}\n", "q.txt:2: a JSON query must be an object with one query type"),
        ('{"match": {}, "term": {}}', "q.txt:1: a JSON query must be an object"),
        ("# only a comment\n\n", "holds no query"),
    ],
)
def test_bad_queries_files(tmp_path, content, message):
    path = tmp_path / "q.txt"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        deep_verify.load_queries(str(path))


def invoke(cfg: Config, *args: str):
    return CliRunner().invoke(cli, list(args), obj=cfg, catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--verify", "deep", "--verify-queries", "missing.txt"], "cannot read --verify-queries"),
        (["--verify", "deep", "--verify-queries", "{bad}"], "not valid JSON"),
        (["--verify", "--verify-queries", "{q}"], "--verify-queries needs --verify deep"),
        (["--verify-sample", "5"], "--verify-sample needs --verify deep"),
        (["--verify", "deep", "--verify-top-k", "3"], "--verify-top-k needs --verify-queries"),
        (["--verify", "shallow"], "'shallow' is not one of 'count', 'deep'"),
        (["--verify", "deep", "--verify-sample", "10001"], "10001 is not in the range"),
    ],
)
def test_bad_verify_options_change_nothing(cfg, fake, state_db, tmp_path, args, message):
    bad = tmp_path / "bad.txt"
    bad.write_text('{"match": \n')
    good = tmp_path / "q.txt"
    good.write_text("document\n")
    args = [str(bad) if a == "{bad}" else str(good) if a == "{q}" else a for a in args]
    if "missing.txt" in args:
        args[args.index("missing.txt")] = str(tmp_path / "missing.txt")
    before_engine, before_db = fake.snapshot(), db_rows(state_db)
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", *args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 or "Usage:" in result.stderr
    assert fake.snapshot() == before_engine and db_rows(state_db) == before_db
    assert fake.call_names(mutating_only=True) == []


def test_verify_flag_alone_still_means_count(cfg, fake):
    result = invoke(cfg, "start", "--alias", ALIAS, "--verify", "--force", "--json")
    assert result.exit_code == 0, result.stderr
    (run,) = cfg.repo().list()
    assert run.options["verify"] is True and run.options["verify_level"] == "count"
    assert run.verification is None and "mget" not in fake.call_names()


def test_cli_deep_run_and_show(cfg, fake, tmp_path: Path):
    queries = tmp_path / "q.txt"
    queries.write_text('{"match_all": {}}\n')
    result = invoke(
        cfg,
        "start",
        "--alias",
        ALIAS,
        "--verify",
        "deep",
        "--verify-queries",
        str(queries),
        "--verify-min-overlap",
        "1",
        "--force",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["verification"]["passed"] is True
    assert data["verification"]["queries"]["file"] == str(queries)
    shown = json.loads(invoke(cfg, "show", data["run_id"], "--json").stdout)
    assert shown["verification"] == data["verification"]
    assert shown["options"]["verify_queries"] == [{"line": 1, "query": {"match_all": {}}}]
    human = invoke(cfg, "show", data["run_id"]).stdout
    assert "verification" in human and "passed" in human
    assert f"{N_DOCS} compared (every document)" in human


def test_show_lists_what_differed(fake, state_db):
    def change(f: FakeEngine) -> None:
        f.indices[TARGET].docs["doc-00042"]["title"] = "x"

    cfg, outcome = deep_run(fake, state_db, change)
    assert outcome.exit_code == ExitCode.VERIFICATION_FAILED
    human = invoke(cfg, "show", outcome.record.id).stdout
    assert "DIFFERENCES" in human and "differing" in human and "doc-00042" in human
    shown = json.loads(invoke(cfg, "show", outcome.record.id, "--json").stdout)
    assert shown["verification"]["documents"]["differing"]["ids"] == ["doc-00042"]


def test_dry_run_describes_the_deep_checks(cfg, fake, tmp_path):
    queries = tmp_path / "q.txt"
    queries.write_text("document\n")
    result = invoke(
        cfg, "start", "--alias", ALIAS, "--dry-run", "--json", "--verify", "deep",
        "--verify-sample", "200", "--verify-queries", str(queries),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (verify_step,) = [s for s in json.loads(result.stdout)["steps"] if s["step"] == "verify"]
    deep = verify_step["deep"]
    assert (
        deep["documents"]
        == f"IDs and _source SHA-256 of 200 random source documents looked up in {TARGET}"
    )
    assert deep["queries"].startswith("1 queries from")
