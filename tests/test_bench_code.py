"""The benchmarks still load against the package as it is: their imports, their command
lines, and the list of modules a recompute benchmark records the hashes of (a module that
moved would otherwise fail a long benchmark run only at its end)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from click.testing import CliRunner

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(autouse=True)
def bench_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


@pytest.mark.parametrize(
    "name", ["bench_reindex", "bench_recompute", "bench_verify", "bench_startup"]
)
def test_a_benchmark_imports_and_prints_its_help(name: str) -> None:
    module = importlib.import_module(name)
    result = CliRunner().invoke(module.main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_the_recompute_benchmark_hashes_modules_that_exist() -> None:
    module = importlib.import_module("bench_recompute")
    version = module._code_version()
    assert version["sha256"], version
    for path in version["sha256"]:
        assert (BENCH.parent / path).is_file(), path
    assert "reindex_fsm/steps/copy/recompute.py" in version["sha256"]
