"""Modules the CLI imports on first use, so that building the command tree (``--help``,
every subcommand's ``--help``, shell completion) loads none of what the commands run
with: the state store (SQLAlchemy, Alembic), the engine clients, numpy, rich.

A command module binds ``api = lazy("reindex_fsm.api")`` (under ``TYPE_CHECKING`` it
imports it plainly, for the type checker): a stand-in that imports the module when one of
its attributes is first read, with the ordinary (thread-safe) import machinery. Nothing
is put in ``sys.modules`` before that, so other modules importing it (a batch's threads)
always get the real, fully loaded module.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _Lazy:
    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> Any:
    """A stand-in for the module ``name``, imported when first used."""
    return _Lazy(name)
