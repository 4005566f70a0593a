"""The shape of the code, checked: no import cycle among the package's modules, no long
module without a stated reason, no comment or name that points at an issue number.

Each test names every offender in its failure message, so that a failure says what to fix.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

import reindex_fsm

PACKAGE = "reindex_fsm"
PACKAGE_DIR = Path(reindex_fsm.__file__).resolve().parent
ROOT = PACKAGE_DIR.parent

# A module longer than this needs a reason in its docstring: a line starting "Length:".
MAX_MODULE_LINES = 600
LENGTH_REASON = re.compile(r"^\s*Length:\s*\S", re.MULTILINE)

# The word issue with a number after it, in prose or in a name (the examples are in
# test_issue_number_pattern): a tracker number where the topic should be named. Addresses
# are left out first, so that a reference to a public project's issue
# (https://github.com/o/r/issues/123) is not one.
ISSUE_NUMBER = re.compile(r"(?<![a-z])issues?[ _#-]?#?\d+(?!\d)", re.IGNORECASE)
ISSUE = "issue"  # the examples below are built from it, so that this file has no mention
URL = re.compile(r"\bhttps?://\S+")
SCANNED_DIRS = ("reindex_fsm", "tests", "scripts", "bench", "devtools")
SCANNED_FILES = ("README.md", "pyproject.toml", "alembic.ini", ".ci/run")
TEXT_SUFFIXES = {".py", ".sh", ".md", ".toml", ".ini", ".cfg", ".txt", ".mako", ".java", ".xml"}
SKIPPED_DIRS = {"__pycache__", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted.

    grimp's graph holds every import it finds in a module's source: at the top, inside
    functions (deferred imports) and under ``if TYPE_CHECKING:``.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return sorted(components)


def describe_cycle(graph: grimp.ImportGraph, component: list[str]) -> str:
    """The component's modules and every import between two of them, with its line."""
    members = set(component)
    lines = [" <-> ".join(component)]
    for importer in component:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                lines.append(
                    f"    {importer}:{detail['line_number']} imports {imported}: "
                    f"{detail['line_contents']}"
                )
    return "\n".join(lines)


def test_import_cycle_finder_sees_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    graph.add_import(importer="pkg.d", imported="pkg.a")
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    graph.remove_import(importer="pkg.c", imported="pkg.a")
    assert import_cycles(graph) == []


def test_no_import_cycle_among_the_package_modules() -> None:
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    cycles = import_cycles(graph)
    if cycles:
        pytest.fail(
            "import cycles:\n" + "\n".join(describe_cycle(graph, c) for c in cycles),
            pytrace=False,
        )


def module_docstring(text: str) -> str:
    return ast.get_docstring(ast.parse(text)) or ""


def test_no_long_module_without_a_reason() -> None:
    too_long = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        count = len(text.splitlines())
        if count > MAX_MODULE_LINES and not LENGTH_REASON.search(module_docstring(text)):
            too_long.append(f"{path.relative_to(ROOT)}: {count} lines")
    if too_long:
        pytest.fail(
            f"modules over {MAX_MODULE_LINES} lines whose docstring gives no reason "
            f"(a line 'Length: why it is one module'): split them by topic or say why not:\n"
            + "\n".join(too_long),
            pytrace=False,
        )


def scanned_files() -> Iterator[Path]:
    for name in SCANNED_DIRS:
        for path in sorted((ROOT / name).rglob("*")):
            if (
                path.is_file()
                and path.suffix in TEXT_SUFFIXES
                and not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts)
            ):
                yield path
    for name in SCANNED_FILES:
        if (ROOT / name).is_file():
            yield ROOT / name


def issue_number_mentions(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if ISSUE_NUMBER.search(URL.sub("", line)):
            yield number, line.strip()


@pytest.mark.parametrize(
    ("line", "found"),
    [
        (f"# -- write policy ({ISSUE} 5) --", True),
        (f'"""{ISSUE.title()} #12 on the fake engine."""', True),
        (f"def _{ISSUE}5_routes(self):", True),
        (f"see {ISSUE}s 5 and 6", True),
        (f"{ISSUE}-7", True),
        ("# -- write policy --", False),
        ("max_passes = 5", False),
        ("tissue 5", False),
        ("# upstream: https://github.com/opensearch-project/OpenSearch/issues/1234", False),
        ("issue the request 5 times", False),
    ],
)
def test_issue_number_pattern(line: str, found: bool) -> None:
    assert bool(list(issue_number_mentions(line))) is found


def test_no_comment_or_name_mentions_an_issue_number() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line}"
        for path in scanned_files()
        for number, line in issue_number_mentions(path.read_text(encoding="utf-8"))
    ]
    if hits:
        pytest.fail(
            f"{len(hits)} mentions of an issue number (name the topic instead):\n"
            + "\n".join(hits),
            pytrace=False,
        )
