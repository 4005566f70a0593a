"""Modules the CLI imports on first use, so that building the command tree (``--help``,
every subcommand's ``--help``, shell completion) loads none of what the commands run
with: the state store (SQLAlchemy, Alembic), the engine clients, numpy, rich.

A command module binds ``api = lazy("reindex_fsm.api")`` (under ``TYPE_CHECKING`` it
imports it plainly, for the type checker); the module is loaded by the standard
library's :class:`importlib.util.LazyLoader` when one of its attributes is first read.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy(name: str) -> ModuleType:
    """``name``, loaded when first used (at once if it is loaded already)."""
    if name in sys.modules:
        return sys.modules[name]
    parent, _, child = name.rpartition(".")
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    if parent:  # as the import system does: the package's attribute names its module
        setattr(sys.modules[parent], child, module)
    return module
