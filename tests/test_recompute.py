"""--recompute-embeddings on the fake engine: the strategy's runs, checkpoints, resume,
bad input and verification. The real engine runs it in tests/integration."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.embedders import hashing
from reindex_fsm.errors import BadInput, EmbedderError, InputError, StaleState
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, SOURCE, db_rows, make_cluster, make_config

FLOAT = {"type": "float"}


def write_jsonl(path: Path, n: int, start: int = 0) -> Path:
    with path.open("w") as out:
        for i in range(start, start + n):
            out.write(json.dumps({"id": f"j{i:05d}", "text": f"text number {i}", "n": i}) + "\n")
    return path


def opts(**kw: Any) -> RunOptions:
    base: dict[str, Any] = {
        "recompute_embeddings": True,
        "verify": True,
        "batch_size": 7,
        "vector_mapping": FLOAT,
        "allow_shrink": True,  # the files are far smaller than the fake source
    }
    return RunOptions(**{**base, **kw})


def target_docs(fake: FakeEngine, record: Any) -> dict[str, dict[str, Any]]:
    return fake.indices[record.target_index].docs


def test_jsonl_run_embeds_every_document_and_swaps(fake: FakeEngine, cfg, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", 30)
    out = api.start(cfg, ALIAS, opts(documents_path=str(path)))
    rec = out.record
    assert rec.state is State.SWAPPED, rec.error
    docs = target_docs(fake, rec)
    assert len(docs) == 30
    expected = hashing.compute_embeddings(["text number 12"])[0]
    assert np.allclose(docs["j00012"]["embedding"], expected)
    assert docs["j00012"]["n"] == 12 and docs["j00012"]["id"] == "j00012"
    assert list(fake.get_alias(ALIAS)) == [rec.target_index]
    assert rec.progress["indexed"] == 30 and rec.progress["batches"] == 5
    verified = next(e for e in api.show(cfg, rec.id)[1] if e.to_state == "SWAPPED")
    assert verified.detail["expected_count"] == 30
    assert verified.detail["sample_min_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert verified.detail["mapped_dimension"] is None  # a float array has no dimension


def test_source_index_run_reads_through_a_point_in_time(fake: FakeEngine, cfg) -> None:
    out = api.start(
        cfg, ALIAS, opts(text_field="{title} / {tags}", vector_field="vec", batch_size=300)
    )
    rec = out.record
    assert rec.state is State.SWAPPED, rec.error
    src = fake.indices[SOURCE].docs
    docs = target_docs(fake, rec)
    assert set(docs) == set(src)
    one = next(iter(src))
    assert {k: v for k, v in docs[one].items() if k != "vec"} == src[one]
    text = f"{src[one]['title']} / {src[one]['tags']}"
    assert np.allclose(docs[one]["vec"], hashing.compute_embeddings([text])[0])
    assert "open_pit" in fake.call_names() and "close_pit" in fake.call_names()
    assert not fake.pits


def test_scroll_where_the_engine_has_no_point_in_time(fake: FakeEngine, cfg) -> None:
    fake.pit_supported = False
    out = api.start(cfg, ALIAS, opts(text_field="title", batch_size=300))
    assert out.record.state is State.SWAPPED, out.record.error
    assert set(target_docs(fake, out.record)) == set(fake.indices[SOURCE].docs)


def test_vector_mapping_per_engine(fake: FakeEngine, cfg, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", 3)
    # OpenSearch without k-NN: a clear error naming the alternatives, nothing written.
    before = fake.snapshot()
    with pytest.raises(BadInput) as err:
        api.plan(cfg, ALIAS, opts(documents_path=str(path), vector_mapping=None))
    assert "has no k-NN plugin" in err.value.one_line()
    assert '--vector-mapping \'{"type": "float"}\'' in err.value.one_line()
    assert fake.snapshot() == before
    fake.plugin_names = {"opensearch-knn"}
    p = api.plan(cfg, ALIAS, opts(documents_path=str(path), vector_mapping=None))
    assert p.mappings["properties"]["embedding"] == {
        "type": "knn_vector",
        "dimension": hashing.DIMENSION,
        "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"},
    }
    assert p.settings["index.knn"] == "true"
    given = {"type": "knn_vector", "dimension": hashing.DIMENSION, "method": {"name": "hnsw"}}
    p = api.plan(cfg, ALIAS, opts(documents_path=str(path), vector_mapping=given))
    assert p.mappings["properties"]["embedding"] == given and p.settings["index.knn"] == "true"
    es = FakeEngine(flavor="elasticsearch", version="8.15.0")
    es.indices = fake.indices
    p = api.plan(make_config(es, cfg.state_db), ALIAS, opts(vector_mapping=None))
    assert p.mappings["properties"]["embedding"]["type"] == "dense_vector"
    assert p.mappings["properties"]["embedding"]["dims"] == hashing.DIMENSION
    assert p.mappings["properties"]["embedding"]["index"] is True
    es7 = FakeEngine(flavor="elasticsearch", version="7.17.29")
    es7.indices = fake.indices
    p = api.plan(make_config(es7, cfg.state_db), ALIAS, opts(vector_mapping=None))
    # 7.17 takes neither index nor similarity on a dense_vector
    assert p.mappings["properties"]["embedding"] == {
        "type": "dense_vector",
        "dims": hashing.DIMENSION,
    }


def test_source_vector_of_another_dimension_stops_before_writing(fake: FakeEngine, cfg) -> None:
    props = fake.indices[SOURCE].mappings["properties"]
    props["embedding"] = {"type": "knn_vector", "dimension": 3}
    before, rows = fake.snapshot(), db_rows(cfg.state_db)
    with pytest.raises(BadInput, match="dimension 3"):
        api.start(cfg, ALIAS, opts(vector_mapping=None, text_field="title"))
    assert fake.snapshot() == before and db_rows(cfg.state_db) == rows


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "malformed JSON"),
        ('{"text": "no id"}', "missing ID field 'id'"),
        ('{"id": "x1"}', "missing text field 'text'"),
        ('{"id": "j00001", "text": "again"}', "duplicate ID 'j00001' (first on line 2)"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_bad_line_names_file_and_line_and_writes_nothing(
    fake: FakeEngine, cfg, tmp_path: Path, line: str, reason: str
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", 5)
    lines = path.read_text().splitlines()
    lines.insert(3, line)
    path.write_text("\n".join(lines) + "\n")
    before, rows = fake.snapshot(), db_rows(cfg.state_db)
    with pytest.raises(InputError) as err:
        api.start(cfg, ALIAS, opts(documents_path=str(path)))
    assert f"{path}:4: {reason}" in err.value.one_line()
    assert "--skip-invalid" in err.value.one_line()
    assert fake.snapshot() == before and db_rows(cfg.state_db) == rows


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty"), ("\n\n", "is empty"), (None, "cannot be read")],
)
def test_empty_or_unreadable_file(
    fake: FakeEngine, cfg, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "d.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        api.start(cfg, ALIAS, opts(documents_path=str(path)))
    assert db_rows(cfg.state_db)["runs"] == []


def test_skip_invalid_sets_lines_aside_and_verification_expects_the_rest(
    fake: FakeEngine, cfg, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", 20)
    lines = path.read_text().splitlines()
    lines[3] = "{broken"
    lines[9] = json.dumps({"id": "j00002", "text": "dup"})
    lines[15] = json.dumps({"id": "z"})
    path.write_text("\n".join(lines) + "\n")
    skip = tmp_path / "rejects.jsonl"
    out = api.start(cfg, ALIAS, opts(documents_path=str(path), skip_invalid=str(skip)))
    rec = out.record
    assert rec.state is State.SWAPPED, rec.error
    assert len(target_docs(fake, rec)) == 17
    assert target_docs(fake, rec)["j00002"]["text"] == "text number 2"  # the first one wins
    rejects = [json.loads(x) for x in skip.read_text().splitlines()]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rejects] == [
        (4, "malformed JSON"),
        (10, "duplicate ID 'j00002' (first on line 3)"),
        (16, "missing text field 'text'"),
    ]
    assert rejects[0]["text"] == "{broken"
    assert rec.progress["rejected"] == 3 and rec.progress["indexed"] == 17
    swapped = next(e for e in api.show(cfg, rec.id)[1] if e.to_state == "SWAPPED")
    assert swapped.detail["expected_count"] == 17 and swapped.detail["rejected"] == 3


def test_broken_embedder_is_an_error_before_anything_is_written(
    fake: FakeEngine, cfg, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", 3)
    before, rows = fake.snapshot(), db_rows(cfg.state_db)
    for spec, message in [
        ("nosuch", "unknown embedder"),
        ("nosuchmodule:fn", "cannot be imported"),
        ("json:nosuchfn", "has no attribute"),
        ("tests.support.embedders:raising", "failed on the dimension probe"),
        ("tests.support.embedders:wrong_shape", "expected \\(1, d\\)"),
        ("tests.support.embedders:nan", "non-finite"),
        ("tests.support.embedders:zero", "all-zero"),
        ("tests.support.embedders:ints", "not floats"),
    ]:
        with pytest.raises(EmbedderError, match=message):
            api.start(cfg, ALIAS, opts(documents_path=str(path), embedder=spec))
    assert fake.snapshot() == before and db_rows(cfg.state_db) == rows


def test_embedder_breaking_mid_run_fails_the_run_without_a_swap(
    fake: FakeEngine, cfg, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", 30)
    out = api.start(
        cfg,
        ALIAS,
        opts(
            documents_path=str(path),
            embedder="tests.support.embedders:nan_after_probe",
            rollback_on_failure=True,
        ),
    )
    assert out.record.state is State.ROLLED_BACK
    assert "non-finite" in out.record.error
    assert list(fake.get_alias(ALIAS)) == [SOURCE]
    assert set(fake.indices) == {SOURCE}


def test_zeros_embedder_only_by_name_with_a_warning(fake: FakeEngine, cfg, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", 5)
    out = api.start(cfg, ALIAS, opts(documents_path=str(path), embedder="zeros"))
    assert out.record.state is State.SWAPPED
    assert all(not any(d["embedding"]) for d in target_docs(fake, out.record).values())
    from reindex_fsm import embedders

    with pytest.warns(embedders.ZerosEmbedderWarning):
        embedders.load("zeros")


def test_module_function_embedder(fake: FakeEngine, cfg, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", 5)
    out = api.start(
        cfg, ALIAS, opts(documents_path=str(path), embedder="tests.support.embedders:three_d")
    )
    assert out.record.state is State.SWAPPED
    assert target_docs(fake, out.record)["j00001"]["embedding"] == [1.0, 1.0, 1.0]


class Kill(Exception):
    pass


class KillAt(Crashpoints):
    """Raise at the k-th pass of a named point, like a SIGKILL there (nothing after it runs)."""

    def __init__(self, name: str, k: int) -> None:
        super().__init__()
        self.name, self.k, self.seen = name, k, 0

    def __call__(self, name: str) -> None:
        if name == self.name:
            self.seen += 1
            if self.seen == self.k:
                raise Kill(f"{name}#{self.k}")


@pytest.mark.parametrize(
    ("point", "workers"),
    [
        (("recompute.read", 3), 1),
        (("recompute.embedded", 4), 1),
        (("recompute.indexed", 2), 1),
        (("checkpoint.progress", 3), 1),
        (("commit.REINDEXING", 1), 1),
        # More of the same points (the crash suite kills real processes at all of them).
        pytest.param(("recompute.read", 1), 1, marks=pytest.mark.slow),
        pytest.param(("recompute.embedded", 1), 1, marks=pytest.mark.slow),
        pytest.param(("recompute.indexed", 5), 1, marks=pytest.mark.slow),
        pytest.param(("checkpoint.progress", 1), 1, marks=pytest.mark.slow),
        pytest.param(("commit.VERIFYING", 1), 1, marks=pytest.mark.slow),
        # Two embedding processes, batches acknowledged out of order (slow: they spawn).
        pytest.param(("recompute.indexed", 3), 2, marks=pytest.mark.slow),
        pytest.param(("checkpoint.progress", 4), 2, marks=pytest.mark.slow),
    ],
)
def test_resume_after_a_kill_ends_as_an_uninterrupted_run(
    tmp_path: Path, point: tuple[str, int], workers: int
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", 40)
    options = opts(documents_path=str(path), workers=workers)

    clean = FakeEngineWithCluster()  # the reference: uninterrupted, one embedding thread
    one = replace(options, workers=1)
    ref = api.start(make_config(clean, f"sqlite:///{tmp_path}/a.db"), ALIAS, one).record

    fake = FakeEngineWithCluster()
    state_db = f"sqlite:///{tmp_path}/b.db"
    killed = make_config(fake, state_db, crash=lambda: KillAt(*point))
    with pytest.raises(Kill):
        api.start(killed, ALIAS, options)
    (run,) = api.history(make_config(fake, state_db))
    bulks_before = fake.call_names().count("bulk")
    out = api.resume(make_config(fake, state_db), run.id)
    assert out.record.state is State.SWAPPED, out.record.error
    assert fake.indices[out.record.target_index].docs == clean.indices[ref.target_index].docs
    assert out.record.progress["indexed"] == 40  # each batch counted once, across the kill
    # The resume did not start over: it skipped the acknowledged batches.
    if point[0] in ("checkpoint.progress",) and workers == 1:
        assert fake.call_names().count("bulk") - bulks_before == 6 - point[1]


def FakeEngineWithCluster() -> FakeEngine:
    return make_cluster()


def test_abort_while_copying_stops_the_stream(fake: FakeEngine, cfg, tmp_path: Path) -> None:
    """abort from another process: the driver's next checkpoint fails its compare-and-set."""
    path = write_jsonl(tmp_path / "d.jsonl", 40)
    repo = cfg.repo()

    class AbortAfterTwo(Crashpoints):
        n = 0

        def __call__(self, name: str) -> None:
            if name == "checkpoint.progress":
                self.n += 1
                if self.n == 2:
                    (run,) = repo.list()
                    repo.transition(run.id, State.REINDEXING, State.ABORTING, "request_abort")

    cfg.crash = AbortAfterTwo
    out = api.start(cfg, ALIAS, opts(documents_path=str(path)))
    assert out.record.state is State.ABORTING
    with pytest.raises(StaleState):
        repo.checkpoint(out.record.id, State.REINDEXING, progress={})


def test_elasticsearch_resume_after_the_pit_expired_reads_everything_again(
    tmp_path: Path,
) -> None:
    """ES sorts on _shard_doc, whose keys hold only within one PIT: when the run's PIT is
    gone at resume, the copy starts over (by ID, so nothing is duplicated)."""
    fake = make_cluster()
    fake.set_info(FakeEngine(flavor="elasticsearch", version="8.15.0").info())
    state_db = f"sqlite:///{tmp_path}/s.db"
    options = opts(text_field="title", batch_size=500)
    with pytest.raises(Kill):
        api.start(
            make_config(fake, state_db, crash=lambda: KillAt("checkpoint.progress", 2)),
            ALIAS,
            options,
        )
    (run,) = api.history(make_config(fake, state_db))
    assert run.progress["stripes"][0]["position"]["pit"]
    fake.pits.clear()  # expired while the run was down (a SIGKILL leaves it open till then)
    out = api.resume(make_config(fake, state_db), run.id)
    assert out.record.state is State.SWAPPED, out.record.error
    assert set(target_docs(fake, out.record)) == set(fake.indices[SOURCE].docs)
    assert out.record.progress["indexed"] == len(fake.indices[SOURCE].docs)
    events = [e.trigger for e in api.show(make_config(fake, state_db), run.id)[1]]
    assert "copy_restarted" in events


_embed_started: list[int] = []


def recording_embedder(texts: list[str]) -> np.ndarray:
    """Records which batch (by its first text) started embedding."""
    _embed_started.append(int(texts[0].split()[-1]) // 7)
    return hashing.compute_embeddings(texts)


def test_batch_k_plus_1_is_embedded_while_batch_k_is_indexed(tmp_path: Path) -> None:
    import time

    class WatchingEngine(FakeEngine):
        """bulk of batch k waits (bounded) until the embedding of batch k+1 has started."""

        overlapped: list[bool] = []

        def bulk(self, actions):  # type: ignore[no-untyped-def]
            actions = list(actions)
            k = int(json.loads(actions[0]["_source"])["n"]) // 7
            deadline = time.monotonic() + 5
            while k < 4 and k + 1 not in _embed_started and time.monotonic() < deadline:
                time.sleep(0.01)
            self.overlapped.append(k + 1 in _embed_started)
            return super().bulk(actions)

    fake = WatchingEngine()
    fake.indices = make_cluster().indices
    _embed_started.clear()
    path = write_jsonl(tmp_path / "d.jsonl", 35)  # 5 batches of 7
    with _probe_ok():
        out = api.start(
            make_config(fake, f"sqlite:///{tmp_path}/s.db"),
            ALIAS,
            opts(documents_path=str(path), embedder=f"{__name__}:recording_embedder"),
        )
    assert out.record.state is State.SWAPPED, out.record.error
    # Batches 0-3 were each indexed while the next one was being embedded.
    assert fake.overlapped == [True, True, True, True, False]


class _probe_ok:
    """The probe text has no number: let it through the recorder."""

    def __enter__(self) -> None:
        from reindex_fsm import embedders

        self.saved = embedders.PROBE_TEXT
        embedders.PROBE_TEXT = "probe 0"

    def __exit__(self, *exc: object) -> None:
        from reindex_fsm import embedders

        embedders.PROBE_TEXT = self.saved


def test_a_file_changed_after_planning_is_refused(fake: FakeEngine, cfg, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", 20)
    with pytest.raises(Kill):
        api.start(
            make_config(fake, cfg.state_db, crash=lambda: KillAt("commit.TARGET_CREATED", 1)),
            ALIAS,
            opts(documents_path=str(path), rollback_on_failure=True),
        )
    write_jsonl(path, 20, start=100)  # same size, other documents
    (run,) = api.history(cfg)
    out = api.resume(cfg, run.id)
    assert out.record.state is State.ROLLED_BACK
    assert "changed since the run was planned" in out.record.error
    assert list(fake.get_alias(ALIAS)) == [SOURCE] and set(fake.indices) == {SOURCE}


def test_source_index_documents_without_text(fake: FakeEngine, cfg, tmp_path: Path) -> None:
    docs = fake.indices[SOURCE].docs
    for doc_id in ("doc-00003", "doc-00700"):
        del docs[doc_id]["title"]
    # Without --skip-invalid: the run fails naming the document; nothing swapped.
    out = api.start(cfg, ALIAS, opts(text_field="title", batch_size=500))
    assert out.record.state is State.FAILED
    assert f"{SOURCE}/_doc/doc-00003: missing text field 'title'" in out.record.error
    assert list(fake.get_alias(ALIAS)) == [SOURCE]
    api.abort(cfg, out.record.id)
    # With it: both set aside, the rest copied, verification expects the source less two.
    skip = tmp_path / "rejects.jsonl"
    skip.write_text("left over from an earlier run\n")
    out = api.start(cfg, ALIAS, opts(text_field="title", batch_size=500, skip_invalid=str(skip)))
    assert out.record.state is State.SWAPPED, out.record.error
    assert len(target_docs(fake, out.record)) == len(docs) - 2
    rejects = [json.loads(line) for line in skip.read_text().splitlines()]
    assert [r["where"] for r in rejects] == [f"{SOURCE}/_doc/doc-00003", f"{SOURCE}/_doc/doc-00700"]
    assert out.record.progress["rejected"] == 2
