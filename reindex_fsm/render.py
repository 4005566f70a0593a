"""How the CLI's results reach the operator's screen: the one place text meets rich.

Every value that comes from the engine, the user or the state database is made a
:class:`rich.text.Text` (:func:`text`) before it is put in a table, so rich markup never
reads a ``[...]`` in an error, a document ID or an index name. Output to a terminal is
rich's; output to a pipe or a file is the same tables unwrapped, with no padding after
the last character of a line (:func:`print_out`).
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

# A line of piped output is never wrapped: tools downstream (grep, less -S) see one
# record per line, and its length is the content's, not a fixed width.
PIPE_WIDTH = 10_000


def text(value: Any, style: str = "") -> Text:
    """``value`` as text, never as markup (``None`` is empty)."""
    return Text("" if value is None else str(value), style=style)


def table(title: str | None = None, **kwargs: Any) -> Table:
    """A table whose title is text too (an alias may hold brackets)."""
    kwargs.setdefault("title_justify", "left")
    return Table(title=text(title) if title is not None else None, **kwargs)


def add_row(t: Table, *cells: Any) -> None:
    """One row, each cell as text unless it is a rich Text already (our own styling)."""
    t.add_row(*(c if isinstance(c, Text) else text(c) for c in cells))


def _terminal() -> Console | None:
    console = Console(soft_wrap=True)
    return console if console.is_terminal else None


def print_out(*renderables: RenderableType | str) -> None:
    """Print on stdout: rich's layout on a terminal; on a pipe the same without wrapping
    and without the trailing spaces of padded cells. Strings are printed as text."""
    items = [text(r) if isinstance(r, str) else r for r in renderables]
    console = _terminal()
    if console is not None:
        for item in items:
            console.print(item, highlight=False)
        return
    piped = Console(width=PIPE_WIDTH, no_color=True, color_system=None, soft_wrap=False)
    with piped.capture() as captured:
        for item in items:
            piped.print(item, highlight=False)
    for line in captured.get().splitlines():
        click.echo(line.rstrip())
