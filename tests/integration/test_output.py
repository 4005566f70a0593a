"""What the operator reads on a real engine, in `reindex-fsm` subprocesses: the engine's
bracketed reasons kept, no WARNING for the 404s the tool expects, no library warning
(OpenSearchWarning) on stderr unless -v."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest

from .conftest import cli_env, run_cli

pytestmark = pytest.mark.integration


def test_the_engines_bracketed_reason_reaches_stderr_intact(cfg, names, make_source):
    make_source(50)
    result = run_cli(
        "start", "--alias", names.alias, "--force", "--set", "index.no_such_setting=1",
        "--engine-url", cfg.engine_url, "--state-db", cfg.state_db,
    )  # fmt: skip
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "[index.no_such_setting]" in errors[0]
    shown = run_cli("history", "--state-db", cfg.state_db)
    if shown.returncode == 0 and names.alias in shown.stdout:  # a run was stored: as text too
        assert "[index.no_such_setting]" in shown.stdout


def test_a_verbose_run_logs_no_warning_for_the_404s_it_expects(cfg, names, make_source):
    make_source(50)
    result = run_cli(
        "start", "--alias", names.alias, "--force", "-v",
        "--engine-url", cfg.engine_url, "--state-db", cfg.state_db,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    warned = [line for line in result.stderr.splitlines() if " WARNING " in line]
    assert not [line for line in warned if "[status:404" in line], warned
    assert "DEBUG reindex_fsm" in result.stderr  # -v did show the steps


_DEPRECATED = textwrap.dedent(
    """
    import sys
    from reindex_fsm import logs
    from reindex_fsm.engine.connect import connect

    logs.configure(verbose=int(sys.argv[3]))
    engine = connect(sys.argv[1], "auto")
    # A deprecated setting: the engine answers with a Warning header (once per
    # X-Opaque-Id), which the client turns into an OpenSearchWarning.
    engine.request(
        "PUT", "/" + sys.argv[2],
        body={"settings": {"index.translog.retention.size": "1mb",
                           "index.number_of_replicas": 0}},
        headers={"X-Opaque-Id": "reindex-fsm-test-" + sys.argv[2]},
    )
    engine.delete_index(sys.argv[2])
    print("done")
    """
)


@pytest.mark.parametrize("verbose", [0, 1])
def test_library_warnings_go_to_the_verbose_log(cfg, names, verbose):
    index = names(f"warn-{uuid.uuid4().hex[:6]}")
    result = subprocess.run(
        [sys.executable, "-c", _DEPRECATED, cfg.engine_url, index, str(verbose)],
        capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout == "done\n", result.stderr
    assert "warnings.warn(" not in result.stderr  # no source line of the library
    if verbose:
        (line,) = [x for x in result.stderr.splitlines() if "Warning: " in x]
        assert " WARNING py.warnings " in line and "[index.translog.retention" in line
    else:
        assert "Translog retention" not in result.stderr
