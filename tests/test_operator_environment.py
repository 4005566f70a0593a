"""The variables the session removes (the operator's settings) and the ones it keeps (the
suites' own): every kept one is a name reindex-fsm never reads."""

from __future__ import annotations

from pathlib import Path

from .conftest import TEST_VARIABLES, operator_variables

PACKAGE = Path(__file__).resolve().parents[1] / "reindex_fsm"


def test_every_reindex_fsm_variable_but_the_suites_own_is_removed() -> None:
    environ = {
        "REINDEX_FSM_ENGINE_URL": "http://operator:9200",
        "REINDEX_FSM_STATE_DB": "/srv/state.db",
        "REINDEX_FSM_PASSWORD": "secret",
        "REINDEX_FSM_SOMETHING_NEW": "x",
        "REINDEX_FSM_TEST_CRASH_AT": "3",
        "REINDEX_FSM_TEST_ENGINE_URL": "http://127.0.0.1:1",
        "REINDEX_FSM_ENGINE_HOME": "/tmp/e",
        "PATH": "/bin",
    }
    assert operator_variables(environ) == [
        "REINDEX_FSM_ENGINE_URL",
        "REINDEX_FSM_PASSWORD",
        "REINDEX_FSM_SOMETHING_NEW",
        "REINDEX_FSM_STATE_DB",
        "REINDEX_FSM_TEST_CRASH_AT",
    ]


def test_the_tool_reads_none_of_the_kept_variables() -> None:
    sources = {p: p.read_text() for p in PACKAGE.rglob("*.py")}
    read = sorted(
        f"{name} in {path.relative_to(PACKAGE.parent)}"
        for name in TEST_VARIABLES
        for path, text in sources.items()
        if name in text
    )
    assert read == []
