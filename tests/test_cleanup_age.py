"""cleanup --older-than AGE beside --keep N, on the fake engine (its indices' creation
dates set by the test): with both, an index goes only if it is beyond the newest N AND
older than AGE."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from reindex_fsm import api
from reindex_fsm.cleanup import parse_age
from reindex_fsm.errors import UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions

from .conftest import ALIAS, NOW
from .test_cli import invoke


def aged_runs(cfg, fake, ages_days: list[float]) -> list[str]:
    """One SWAPPED run per age (oldest first); each target created that many days before
    NOW. Returns the targets; the last is live."""
    targets = []
    for days in ages_days:
        rec = api.start(cfg, ALIAS, RunOptions()).record
        assert rec.state is State.SWAPPED
        created = NOW - timedelta(days=days)
        fake.indices[rec.target_index].settings["index.creation_date"] = str(
            int(created.timestamp() * 1000)
        )
        targets.append(rec.target_index)
    return targets


def verdicts(rows) -> dict[str, str]:
    return {r.index: r.action for r in rows}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("14d", timedelta(days=14)),
        ("2w", timedelta(weeks=2)),
        (" 3D ", timedelta(days=3)),
    ],
)
def test_ages(text, expected):
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["14", "d", "14x", "1.5d", "-3d", "0d", "14 days", ""])
def test_a_bad_age_is_one_line_exit_2(cfg, fake, text):
    with pytest.raises(UsageError, match="is not an age"):
        parse_age(text)
    before = fake.snapshot()
    result = invoke(cfg, "cleanup", "--alias", ALIAS, "--older-than", text, "--force")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--older-than" in lines[0] and "14d" in lines[0], lines
    assert fake.snapshot() == before


def test_neither_keep_nor_age_is_refused(cfg):
    with pytest.raises(UsageError, match="needs --keep N, --older-than AGE, or both"):
        api.cleanup(cfg, ALIAS, None)
    result = invoke(cfg, "cleanup", "--alias", ALIAS, "--force")
    assert result.exit_code == 2 and "--older-than AGE" in result.stderr


def test_older_than_alone_deletes_every_old_index_not_live(cfg, fake):
    # targets: 30d, 20d, 10d, 1d old; the last is live
    t = aged_runs(cfg, fake, [30, 20, 10, 1])
    dry = api.cleanup(cfg, ALIAS, None, dry_run=True, older_than="14d")
    assert verdicts(dry) == {t[3]: "keep", t[2]: "keep", t[1]: "delete", t[0]: "delete"}
    reasons = {r.index: r.reason for r in dry}
    assert reasons[t[2]] == "not older than 14d (created 10d ago)"
    assert reasons[t[1]].startswith("older than 14d (run ")
    done = api.cleanup(cfg, ALIAS, None, older_than="14d")
    assert sorted(r.index for r in done if r.action == "deleted") == sorted(t[:2])
    assert t[0] not in fake.indices and t[1] not in fake.indices and t[2] in fake.indices


def test_keep_and_age_both_must_agree(cfg, fake):
    """--keep N --older-than AGE: of the indices beyond the newest N, only the old go;
    the newest N stay, whatever their age."""
    t = aged_runs(cfg, fake, [40, 30, 10, 5, 1])  # t[4] live
    rows = api.cleanup(cfg, ALIAS, 1, dry_run=True, older_than=timedelta(days=7))
    assert verdicts(rows) == {
        t[4]: "keep",  # live
        t[3]: "keep",  # the newest 1 (5d old)
        t[2]: "delete",  # beyond 1 and 10d old
        t[1]: "delete",
        t[0]: "delete",
    }
    rows = api.cleanup(cfg, ALIAS, 1, dry_run=True, older_than=timedelta(days=14))
    assert verdicts(rows) == {
        t[4]: "keep",
        t[3]: "keep",  # the newest 1
        t[2]: "keep",  # beyond 1, but 10d old: not older than 14d
        t[1]: "delete",
        t[0]: "delete",
    }
    deleted = [r for r in rows if r.action == "delete"]
    assert all(r.reason.startswith("beyond the newest 1 and older than 14d") for r in deleted)
    rows = api.cleanup(cfg, ALIAS, 3, dry_run=True, older_than=timedelta(days=14))
    assert verdicts(rows) == {  # the newest 3 stay though t[1] is 30d old
        t[4]: "keep",
        t[3]: "keep",
        t[2]: "keep",
        t[1]: "keep",
        t[0]: "delete",
    }
    # --keep 1 alone would delete t[2] too
    assert verdicts(api.cleanup(cfg, ALIAS, 1, dry_run=True))[t[2]] == "delete"


def test_an_unknown_creation_date_is_not_old(cfg, fake):
    t = aged_runs(cfg, fake, [30, 1])
    fake.indices[t[0]].settings["index.creation_date"] = "0"
    [row] = [
        r for r in api.cleanup(cfg, ALIAS, None, dry_run=True, older_than="1d") if r.index == t[0]
    ]
    assert row.action == "keep" and "creation date is unknown" in row.reason


def test_cli_cleanup_older_than_json(cfg, fake):
    t = aged_runs(cfg, fake, [30, 20, 1])
    args = ("cleanup", "--alias", ALIAS, "--older-than", "2w", "--keep", "0", "--json")
    result = invoke(cfg, *args, "--dry-run")
    assert result.exit_code == 0, result.stderr
    rows = {r["index"]: r["action"] for r in json.loads(result.stdout)["indices"]}
    assert rows == {t[0]: "delete", t[1]: "keep", t[2]: "keep"}  # t[1]: undo's, t[2]: live
    result = invoke(cfg, *args, "--force")  # also the index undo needs
    assert result.exit_code == 0, result.stderr
    assert t[0] not in fake.indices and t[1] not in fake.indices and t[2] in fake.indices
