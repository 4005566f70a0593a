"""Where a recompute run reads its documents: a JSONL file, or the source index itself.

Both readers cut their input into numbered batches that are the same on every read of
an unchanged input (a JSONL batch is ``batch_size`` physical lines; an index batch is
``batch_size`` hits in ``_id`` order), and each batch carries the position just after
it (``{"line", "offset"}`` or ``{"after"}``). A run stores that position when the
batch is acknowledged and a resume reads on from there.

A JSONL file is checked whole at plan time (:func:`inspect_jsonl`), before anything is
written: malformed JSON, a missing ID or text and a duplicate ID are errors naming the
file and line, or, with ``--skip-invalid FILE``, lines set aside in FILE with their reason.
Duplicate IDs are found through a temporary SQLite table, so memory does not grow with
the file.

Memory is bounded per line and per batch: a line longer than ``max_line_bytes``
(``--max-line-bytes``, default :data:`MAX_LINE_BYTES`) is never held whole: it is an
error naming file and line (or a line set aside), read past in blocks; a JSONL batch
ends early once its lines hold :data:`BATCH_BYTES`, so a batch holds at most that plus
one line, whatever ``--batch-size`` says.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ...engine.base import Engine
from ...errors import EngineError, InputError

MAX_ID_BYTES = 512  # the engines' limit on _id
MAX_LINE_BYTES = 4 * 2**20  # default --max-line-bytes: a JSONL line, its end of line included
BATCH_BYTES = 16 * 2**20  # a JSONL batch ends once its lines hold this many bytes
_SKIP_BLOCK = 2**20  # an overlong line is read past in blocks of this size
REJECT_TEXT_BYTES = 1024  # of an overlong line, what the --skip-invalid file shows
PIT_KEEP_ALIVE = "10m"
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")  # {field} or {dotted.path} in a text template


@dataclass(frozen=True)
class Fields:
    """Which field is the ID, which the text (a name, a dotted path, or a template such
    as ``"{title}\\n{body}"``) and where the vector goes."""

    id: str
    text: str
    vector: str

    @property
    def is_template(self) -> bool:
        return "{" in self.text

    def template_fields(self) -> list[str]:
        return _PLACEHOLDER.findall(self.text)

    def text_of(self, doc: dict[str, Any]) -> tuple[str | None, str]:
        """The text to embed, or None and why not."""
        if not self.is_template:
            value = lookup(doc, self.text)
            if value is None:
                return None, f"missing text field {self.text!r}"
            if not isinstance(value, str):
                return None, f"text field {self.text!r} is {type(value).__name__}, not a string"
            return value, ""
        values: dict[str, Any] = {}
        for name in self.template_fields():
            value = lookup(doc, name)
            if value is None:
                return None, f"missing field {name!r} of the text template"
            values[name] = value
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.text), ""

    def id_of(self, doc: dict[str, Any]) -> tuple[str | None, str]:
        value = lookup(doc, self.id)
        if value is None or value == "":
            return None, f"missing ID field {self.id!r}"
        if isinstance(value, bool) or not isinstance(value, str | int):
            return None, f"ID field {self.id!r} is {type(value).__name__}, not a string or integer"
        doc_id = str(value)
        if len(doc_id.encode()) > MAX_ID_BYTES:
            return None, f"ID is longer than {MAX_ID_BYTES} bytes"
        return doc_id, ""


def lookup(doc: dict[str, Any], path: str) -> Any:
    """``doc[path]``, or the dotted path through nested objects; None if absent."""
    if path in doc:
        return doc[path]
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def parse_line(raw: bytes, fields: Fields) -> tuple[tuple[str, str, dict[str, Any]] | None, str]:
    """One JSONL line as (id, text, document), or None and the reason it is rejected."""
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"malformed JSON: {exc}"
    if not isinstance(doc, dict):
        return None, f"not a JSON object but {type(doc).__name__}"
    doc_id, why = fields.id_of(doc)
    if doc_id is None:
        return None, why
    text, why = fields.text_of(doc)
    if text is None:
        return None, why
    return (doc_id, text, doc), ""


@dataclass(frozen=True)
class Batch:
    number: int
    docs: list[tuple[str, str, dict[str, Any]]]  # (id, text, document without the vector)
    rejected: list[dict[str, Any]]  # {"where", "reason"}: only when skipping invalid input
    end: dict[str, Any]  # the position just after this batch

    @property
    def texts(self) -> list[str]:
        return [text for _, text, _ in self.docs]


# -- JSONL ---------------------------------------------------------------------------------


@dataclass
class JsonlSummary:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    lines: int = 0  # physical lines, blank ones included
    documents: int = 0  # valid documents: what the target will hold
    rejected: int = 0
    duplicate_lines: list[int] = field(default_factory=list)
    first_rejects: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "sha256": self.sha256,
            "lines": self.lines,
            "documents": self.documents,
            "rejected": self.rejected,
            "duplicate_lines": self.duplicate_lines,
            "first_rejects": self.first_rejects,
        }


def _open(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")  # the caller closes it
    except OSError as exc:
        raise InputError(
            path, f"cannot be read: {exc.strerror or exc}", hint="check the path and permissions"
        ) from exc


def inspect_jsonl(
    path: str,
    fields: Fields,
    skip_file: str | None,
    write: bool,
    max_line_bytes: int | None = MAX_LINE_BYTES,
) -> JsonlSummary:
    """Check every line of ``path``. Without ``skip_file`` the first bad line is an
    InputError; with it, bad lines are counted (and written to it when ``write``). A line
    longer than ``max_line_bytes`` is a bad line, and is never held whole in memory."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise InputError(path, "is a directory, not a JSONL file")
    with _open(path) as fh:
        stat = os.fstat(fh.fileno())
        summary = JsonlSummary(path, stat.st_size, stat.st_mtime_ns, "")
        digest = hashlib.sha256()
        rejects_out: IO[str] | None = None
        if skip_file and write:
            try:
                rejects_out = open(skip_file, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise InputError(skip_file, f"cannot be written: {exc.strerror or exc}") from exc
        with tempfile.TemporaryDirectory(prefix="reindex-fsm-ids-") as tmp:
            ids = sqlite3.connect(os.path.join(tmp, "ids.sqlite"), isolation_level=None)
            try:
                ids.execute("PRAGMA journal_mode=OFF")
                ids.execute("PRAGMA synchronous=OFF")
                ids.execute("CREATE TABLE ids (id TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")
                ids.execute("BEGIN")
                offset = 0
                lines = _read_lines(fh, path, max_line_bytes, digest)
                for number, (raw, length, whole) in enumerate(lines, start=1):
                    summary.lines = number
                    this_offset, offset = offset, offset + length
                    if whole and not raw.strip():
                        continue
                    if whole:
                        parsed, why = parse_line(raw, fields)
                    else:
                        parsed, why = None, too_long(length, max_line_bytes or 0)
                    if parsed is not None:
                        cur = ids.execute(
                            "INSERT OR IGNORE INTO ids VALUES (?, ?)", (parsed[0], number)
                        )
                        if cur.rowcount == 0:
                            first = ids.execute(
                                "SELECT line FROM ids WHERE id = ?", (parsed[0],)
                            ).fetchone()[0]
                            why = f"duplicate ID {parsed[0]!r} (first on line {first})"
                            summary.duplicate_lines.append(number)
                            parsed = None
                    if parsed is not None:
                        summary.documents += 1
                        continue
                    if skip_file is None:
                        raise InputError(
                            path,
                            why,
                            number,
                            hint=(
                                "fix the line, or pass --skip-invalid FILE to set such lines aside"
                                if whole
                                else "raise --max-line-bytes (memory grows with it), or "
                                "pass --skip-invalid FILE to set such lines aside"
                            ),
                        )
                    summary.rejected += 1
                    reject = {"line": number, "offset": this_offset, "reason": why}
                    if len(summary.first_rejects) < 5:
                        summary.first_rejects.append(reject)
                    if rejects_out is not None:
                        shown = raw[: len(raw) if whole else REJECT_TEXT_BYTES]
                        text = shown.decode("utf-8", "replace").rstrip("\r\n")
                        rejects_out.write(json.dumps({**reject, "text": text}) + "\n")
            finally:
                ids.close()
                if rejects_out is not None:
                    rejects_out.close()
        summary.sha256 = digest.hexdigest()
    if summary.documents == 0:
        if summary.rejected:
            raise InputError(
                path,
                f"has no valid document: all {summary.rejected} non-blank lines were rejected"
                + (f" (see {skip_file})" if write else ""),
            )
        raise InputError(path, "is empty: no documents to index")
    return summary


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with _open(path) as fh:
        try:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        except OSError as exc:
            raise InputError(path, f"cannot be read: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _read_lines(
    fh: IO[bytes], path: str, max_bytes: int | None = None, digest: Any = None
) -> Iterator[tuple[bytes, int, bool]]:
    """Each line as ``(bytes, length, whole)``. A line longer than ``max_bytes`` is not
    held: its first ``max_bytes + 1`` bytes come with ``whole`` False, and its ``length``
    is that of the whole line (read past in blocks). ``digest`` gets every byte."""
    try:
        while True:
            raw = fh.readline(max_bytes + 1) if max_bytes else fh.readline()
            if not raw:
                return
            if digest is not None:
                digest.update(raw)
            if not max_bytes or len(raw) <= max_bytes:
                yield raw, len(raw), True
                continue
            length = len(raw)
            tail = raw
            while not tail.endswith(b"\n"):
                tail = fh.readline(_SKIP_BLOCK)
                if not tail:
                    break
                if digest is not None:
                    digest.update(tail)
                length += len(tail)
            yield raw, length, False
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror or exc}") from exc


def too_long(length: int, max_bytes: int) -> str:
    return f"line of {length} bytes, longer than the limit of {max_bytes} bytes (--max-line-bytes)"


class JsonlReader:
    """Batches of a JSONL file checked at plan time; refuses a file changed since."""

    def __init__(self, plan: dict[str, Any], fields: Fields, batch_size: int) -> None:
        self.path = plan["path"]
        self.fields = fields
        self.batch_size = batch_size
        self.skipping = plan.get("skip_file") is not None
        self.duplicates = set(plan.get("duplicate_lines") or ())
        self.expected = (plan["size"], plan["mtime_ns"])
        # stored with the plan (absent: planned before there were bounds), so that every
        # read of the file cuts the same batches
        self.max_line_bytes: int | None = plan.get("max_line_bytes")
        self.batch_bytes: int | None = plan.get("batch_bytes")

    def _check_unchanged(self, fh: IO[bytes]) -> None:
        stat = os.fstat(fh.fileno())
        if (stat.st_size, stat.st_mtime_ns) != self.expected:
            raise InputError(
                self.path,
                f"changed since the run was planned (size {stat.st_size}, was {self.expected[0]})",
                hint="put the planned file back, or abort this run and start a new one",
            )

    def batches(self, first: int, position: dict[str, Any] | None) -> Iterator[Batch]:
        """Batches from number ``first``, which starts at ``position`` (None: the start)."""
        line = int((position or {}).get("line", 0))
        offset = int((position or {}).get("offset", 0))
        with _open(self.path) as fh:
            self._check_unchanged(fh)
            fh.seek(offset)
            number = first
            docs: list[tuple[str, str, dict[str, Any]]] = []
            rejected: list[dict[str, Any]] = []
            in_batch = bytes_in_batch = 0
            for raw, length, whole in _read_lines(fh, self.path, self.max_line_bytes):
                line += 1
                offset += length
                in_batch += 1
                bytes_in_batch += length if whole else 0  # an overlong line is not held
                if not whole or raw.strip():
                    parsed, why = (
                        parse_line(raw, self.fields)
                        if whole
                        else (None, too_long(length, self.max_line_bytes or 0))
                    )
                    if parsed is not None and line in self.duplicates:
                        parsed, why = None, "duplicate ID"
                    if parsed is not None:
                        docs.append(parsed)
                    elif self.skipping:
                        rejected.append({"where": f"{self.path}:{line}", "reason": why})
                    else:  # checked at plan time: only a changed file gets here
                        raise InputError(self.path, why, line)
                full = self.batch_bytes is not None and bytes_in_batch >= self.batch_bytes
                if in_batch == self.batch_size or full:
                    yield Batch(number, docs, rejected, {"line": line, "offset": offset})
                    number, docs, rejected, in_batch, bytes_in_batch = number + 1, [], [], 0, 0
            if in_batch:
                yield Batch(number, docs, rejected, {"line": line, "offset": offset})


# -- the source index --------------------------------------------------------------------------


class PositionLost(Exception):
    """The stored position belongs to a point in time that is gone and cannot be carried
    over to a new one: the copy has to read from the start again."""


class IndexReader:
    """Batches of the source index through a point in time and ``search_after``.

    OpenSearch sorts on ``_id``: stable across points in time, so a resume after the PIT
    expired reads on from the stored key. Elasticsearch 8 refuses to sort on ``_id``
    (no fielddata on it by default), so there the sort is ``_shard_doc``, whose keys hold
    only within one PIT: the position keeps the PIT's ID, and a resume whose PIT expired
    raises :class:`PositionLost`. Where the engine has no PIT API: a scroll, sorted on
    ``_id`` (OpenSearch; a resume skips up to the stored key) or unsorted (Elasticsearch;
    a resume reads everything again)."""

    SORT = [{"_id": "asc"}]
    SHARD_DOC_SORT = [{"_shard_doc": "asc"}]

    def __init__(
        self, engine: Engine, index: str, fields: Fields, batch_size: int, skipping: bool
    ) -> None:
        self.by_id = engine.info().flavor != "elasticsearch"
        self.engine = engine
        self.index = index
        self.fields = fields
        self.batch_size = batch_size
        self.skipping = skipping
        self.pit_id: str | None = None

    def _batch(self, number: int, hits: list[dict[str, Any]]) -> Batch:
        docs, rejected = [], []
        for hit in hits:
            source = hit.get("_source") or {}
            text, why = self.fields.text_of(source)
            if text is not None:
                docs.append((hit["_id"], text, source))
            elif self.skipping:
                rejected.append({"where": f"{self.index}/_doc/{hit['_id']}", "reason": why})
            else:
                raise InputError(
                    f"{self.index}/_doc/{hit['_id']}",
                    why,
                    hint="fix the document, choose --text-field, or pass --skip-invalid FILE",
                )
        end: dict[str, Any] = {"after": hits[-1]["sort"]}
        if not self.by_id:
            end["pit"] = self.pit_id
        return Batch(number, docs, rejected, end)

    def batches(self, first: int, position: dict[str, Any] | None) -> Iterator[Batch]:
        after = (position or {}).get("after")
        kept_pit = (position or {}).get("pit")
        if kept_pit and not self.by_id:
            self.pit_id = kept_pit  # _shard_doc keys: only this PIT can go on from them
        else:
            self.pit_id = self.engine.open_pit(self.index, PIT_KEEP_ALIVE)
        if self.pit_id is None:
            yield from self._scroll_batches(first, after)
            return
        number = first
        while True:
            body: dict[str, Any] = {
                "size": self.batch_size,
                "sort": self.SORT if self.by_id else self.SHARD_DOC_SORT,
                "pit": {"id": self.pit_id, "keep_alive": PIT_KEEP_ALIVE},
                "track_total_hits": False,
            }
            if after is not None:
                body["search_after"] = after
            try:
                response = self.engine.search(None, body)
            except EngineError as exc:
                if exc.status != 404:
                    raise
                if not self.by_id and after is not None:
                    self.pit_id = None
                    raise PositionLost(
                        f"the point in time on {self.index} expired; its positions do not "
                        "carry over to a new one"
                    ) from exc
                # The PIT expired (a long pause): a new one reads on from the same _id.
                self.pit_id = self.engine.open_pit(self.index, PIT_KEEP_ALIVE)
                continue
            self.pit_id = response.get("pit_id", self.pit_id)
            hits = response["hits"]["hits"]
            if not hits:
                return
            batch = self._batch(number, hits)
            after = batch.end["after"]
            yield batch
            number += 1

    def _scroll_batches(self, first: int, after: list[Any] | None) -> Iterator[Batch]:
        if not self.by_id and after is not None:
            raise PositionLost("a scroll on Elasticsearch (sorted on _doc) cannot resume")
        number, page = first, []
        query: dict[str, Any] = {
            "query": {"match_all": {}},
            "sort": self.SORT if self.by_id else ["_doc"],
        }
        for hit in self.engine.scan(self.index, query, preserve_order=self.by_id):
            hit.setdefault("sort", [hit["_id"]])
            if after is not None and hit["_id"] <= after[0]:
                continue
            page.append(hit)
            if len(page) == self.batch_size:
                yield self._batch(number, page)
                number, page = number + 1, []
        if page:
            yield self._batch(number, page)

    def close(self) -> None:
        if self.pit_id is not None:
            with contextlib.suppress(EngineError):  # else it expires on its own
                self.engine.close_pit(self.pit_id)
            self.pit_id = None
