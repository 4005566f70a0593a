"""How the CLI's results reach the operator's screen: the one place text meets rich.

Every value that comes from the engine, the user or the state database is made a
:class:`rich.text.Text` (:func:`text`) before it is put in a table, so rich markup never
reads a ``[...]`` in an error, a document ID or an index name. Output to a terminal is
rich's; output to a pipe or a file is the same tables unwrapped, with no padding after
the last character of a line (:func:`print_out`).
"""

from __future__ import annotations

import math
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from .steps.templates import own_name

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


# -- the confirmation before a start --------------------------------------------------------
# What the estimate of the write block assumes when the copy is not throttled: a rough,
# deliberately low figure for a server-side _reindex on a small cluster (documents/s).
# A throttled copy is estimated at its --requests-per-second (the _reindex throttle is a
# rate of documents). The README gives the same figures.
ASSUMED_COPY_DOCS_PER_S = 5000.0
ENGINE_BATCH = 1000  # the engines' own _reindex scroll batch: not worth a confirmation line
ASSUMED_MINILM_DOCS_PER_S = 180.0  # per worker; README, "Recomputing embeddings"


def copy_rate(options: Any) -> tuple[float, str]:
    """The documents/s a copy is estimated at, and where the figure comes from."""
    if getattr(options, "recompute_embeddings", False) and options.embedder == "minilm":
        rate = ASSUMED_MINILM_DOCS_PER_S * max(1, options.workers)
        return rate, f"minilm at ~{ASSUMED_MINILM_DOCS_PER_S:g} documents/s per worker"
    if options.requests_per_second:
        return float(options.requests_per_second), "the --requests-per-second throttle"
    return ASSUMED_COPY_DOCS_PER_S, f"an assumed ~{ASSUMED_COPY_DOCS_PER_S:,.0f} documents/s"


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))}s"
    minutes = round(seconds / 60)
    return f"{minutes}min" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}min"


def confirmation(p: Any, options: Any) -> list[str]:
    """The few lines shown before ``start`` asks: what moves where, how many documents,
    whether and for about how long writers are kept out, and the plan's warnings (no
    verification, a much smaller target). The full plan is --dry-run's (or -v's)."""
    lines = [
        f"alias:      {p.alias}",
        f"copy:       {p.source_index} -> {p.target_index}",
        f"documents:  {p.source_count:,}",
    ]
    rate, basis = copy_rate(options)
    estimate = human_duration(p.source_count / rate) if rate > 0 else "unknown"
    if options.write_policy == "catch-up":
        lines.append(
            f"writes:     go on during the copy; BLOCKED on {p.source_index} only for the last "
            "catch-up pass and the swap"
        )
    else:
        lines.append(
            f"writes:     BLOCKED on {p.source_index} from the copy until the swap: about "
            f"{estimate} (estimated from {basis})"
        )
    lines.extend(f"templates:  {t}" for t in template_lines(p))
    lines.extend(f"tuning:     {t}" for t in tuning_lines(p))
    lines.extend(f"warning:    {w}" for w in plan_warnings(p, options))
    # lifecycle policies handed over after the swap (steps/lifecycle.py)
    lines.extend(
        f"lifecycle:  {note}" for note in (getattr(p, "lifecycle", None) or {}).get("notes", [])
    )
    return lines


def tuning_lines(p: Any) -> list[str]:
    """The copy tuning the tool chose at plan time (steps/copy/tuning.py), with its reason,
    when it is not the engines' default batch of 1,000 (--dry-run shows it always)."""
    tuned = getattr(p, "copy_tuning", None)
    if not tuned or tuned.get("batch_size") in (None, ENGINE_BATCH):
        return []
    return [f"_reindex batches of {tuned['batch_size']:,} documents ({tuned['batch_size_from']})"]


def template_lines(p: Any) -> list[str]:
    """The index templates matching the target (each with what it would add), and what
    the run does about them (steps/templates.py)."""
    found = getattr(p, "templates", None) or []
    if not found:
        return []
    return [t["summary"] for t in found] + [
        f"none of them applies: the run's own template {own_name(p.run_id)} keeps them off "
        "the target"
    ]


def plan_warnings(p: Any, options: Any) -> list[str]:
    """The facts of a plan an operator must not miss, as the plan and options state them."""
    out = []
    verify = getattr(options, "verify", True)
    if verify is None or verify is False or verify == "off":
        out.append("verification is OFF: the target's count is not compared before the swap")
    shrink = getattr(p, "shrink", None) or (p.get("shrink") if isinstance(p, dict) else None)
    if shrink or getattr(options, "allow_shrink", False):
        detail = f" ({shrink})" if isinstance(shrink, str) else ""
        out.append(
            "the target may hold far fewer documents than the source (--allow-shrink)" + detail
        )
    return out
