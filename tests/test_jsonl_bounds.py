"""Memory per JSONL line and per batch is bounded: a line longer than --max-line-bytes is
refused at plan time naming file:line (exit 12, nothing written), or set aside with
--skip-invalid without ever being held whole; a batch ends once its lines hold
documents.BATCH_BYTES, and every read of the file cuts the same batches."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from reindex_fsm import api
from reindex_fsm.errors import ExitCode, InputError
from reindex_fsm.machine import State
from reindex_fsm.steps.copy import readers as documents
from reindex_fsm.steps.copy.readers import Fields, JsonlReader, inspect_jsonl
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, db_rows
from .test_recompute import opts, target_docs

FIELDS = Fields(id="id", text="text", vector="embedding")


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def doc(i: int, text: str = "") -> str:
    return json.dumps({"id": f"j{i:03d}", "text": text or f"text {i}"})


def test_a_line_longer_than_the_limit_is_refused_at_plan_time_naming_file_and_line(
    fake: FakeEngine, cfg, tmp_path: Path
) -> None:
    path = write(tmp_path / "d.jsonl", [doc(0), doc(1), doc(2, "x" * 5000), doc(3)])
    before, rows = fake.snapshot(), db_rows(cfg.state_db)
    with pytest.raises(InputError) as err:
        api.start(cfg, ALIAS, opts(documents_path=str(path), max_line_bytes=1000))
    line = err.value.one_line()
    size = len(doc(2, "x" * 5000)) + 1
    assert line.startswith(
        f"{path}:3: line of {size} bytes, longer than the limit of 1000 bytes (--max-line-bytes)"
    )
    assert "raise --max-line-bytes" in line and "--skip-invalid" in line
    assert err.value.exit_code == ExitCode.BAD_INPUT
    assert fake.snapshot() == before and db_rows(cfg.state_db) == rows


def test_the_same_file_passes_with_a_higher_limit_and_the_default_is_a_few_mib(
    fake: FakeEngine, cfg, tmp_path: Path
) -> None:
    assert documents.MAX_LINE_BYTES == 4 * 2**20
    path = write(tmp_path / "d.jsonl", [doc(0), doc(1), doc(2, "x" * 5000), doc(3)])
    out = api.start(cfg, ALIAS, opts(documents_path=str(path)))
    assert out.record.state is State.SWAPPED, out.record.error
    assert out.record.plan["recompute"]["max_line_bytes"] == documents.MAX_LINE_BYTES
    assert len(target_docs(fake, out.record)) == 4


def test_an_overlong_line_is_set_aside_with_skip_invalid_and_never_held_whole(
    fake: FakeEngine, cfg, tmp_path: Path
) -> None:
    path = write(tmp_path / "d.jsonl", [doc(0), doc(1, "y" * 50_000), doc(2)])
    skip = tmp_path / "rejects.jsonl"
    out = api.start(
        cfg,
        ALIAS,
        opts(documents_path=str(path), skip_invalid=str(skip), max_line_bytes=1000),
    )
    rec = out.record
    assert rec.state is State.SWAPPED, rec.error
    assert sorted(target_docs(fake, rec)) == ["j000", "j002"]
    (reject,) = [json.loads(x) for x in skip.read_text().splitlines()]
    assert reject["line"] == 2 and reject["reason"].startswith(
        f"line of {len(doc(1, 'y' * 50_000)) + 1} bytes"
    )
    assert reject["text"].startswith('{"id": "j001"')
    assert len(reject["text"]) <= documents.REJECT_TEXT_BYTES  # a prefix, not the line
    assert rec.progress["rejected"] == 1


def test_the_reader_holds_at_most_the_limit_of_an_overlong_line(tmp_path: Path) -> None:
    """The sha256, the byte offsets and the line numbers still count every byte."""
    long_line = doc(1, "z" * (3 * 2**20))
    path = write(tmp_path / "d.jsonl", [doc(0), long_line, doc(2)])
    read = list(documents._read_lines(path.open("rb"), str(path), max_bytes=1000))
    assert [(len(raw), length, whole) for raw, length, whole in read] == [
        (len(doc(0)) + 1, len(doc(0)) + 1, True),
        (1001, len(long_line) + 1, False),
        (len(doc(2)) + 1, len(doc(2)) + 1, True),
    ]
    summary = inspect_jsonl(str(path), FIELDS, str(tmp_path / "r.jsonl"), False, 1000)
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (summary.lines, summary.documents, summary.rejected) == (3, 2, 1)


def test_a_batch_ends_once_its_lines_hold_batch_bytes_the_same_on_every_read(
    tmp_path: Path,
) -> None:
    lines = [doc(i, "w" * 90) for i in range(10)]  # 117 bytes each, end of line included
    assert {len(line) + 1 for line in lines} == {117}
    path = write(tmp_path / "d.jsonl", lines)
    summary = inspect_jsonl(str(path), FIELDS, None, False)
    plan = {**summary.to_dict(), "max_line_bytes": 1000, "batch_bytes": 300}
    reader = JsonlReader(plan, FIELDS, batch_size=500)
    batches = list(reader.batches(0, None))
    assert [len(b.docs) for b in batches] == [3, 3, 3, 1]  # 3 lines reach 300 bytes
    # a resume from a stored position cuts the same batches from there
    again = list(JsonlReader(plan, FIELDS, batch_size=500).batches(2, batches[1].end))
    assert [(b.number, [d[0] for d in b.docs]) for b in again] == [
        (b.number, [d[0] for d in b.docs]) for b in batches[2:]
    ]
    # a run planned before the bounds: batches by count only, as before
    unbounded = {k: v for k, v in plan.items() if k not in ("max_line_bytes", "batch_bytes")}
    assert [len(b.docs) for b in JsonlReader(unbounded, FIELDS, 500).batches(0, None)] == [10]


def test_the_cli_refuses_an_overlong_line_with_one_line_and_exit_12(
    fake: FakeEngine, cfg, tmp_path: Path
) -> None:
    from .test_cli import invoke

    path = write(tmp_path / "d.jsonl", [doc(0), doc(1, "x" * 3000)])
    result = invoke(
        cfg,
        "start",
        "--alias",
        ALIAS,
        "--recompute-embeddings",
        "--documents-path",
        str(path),
        "--max-line-bytes",
        "2048",
        "--vector-mapping",
        '{"type": "float"}',
        "--force",
    )
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    size = len(doc(1, "x" * 3000)) + 1
    assert f"{path}:2: line of {size} bytes, longer than the limit of 2048 bytes" in result.output
