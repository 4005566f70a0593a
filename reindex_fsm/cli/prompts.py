"""The questions the CLI asks on a terminal, and the refusal when there is none to ask on."""

from __future__ import annotations

import sys

import click

from ..errors import Declined, UsageError


def confirm(lines: list[str], question: str) -> None:
    """Show ``lines`` and ask ``question`` [y/N] on stderr (stdout keeps the result), or
    on stdout when only stdout is a terminal (``2>log``); Declined (exit 10) unless the
    answer is yes."""
    err = sys.stderr.isatty() or not sys.stdout.isatty()
    for line in lines:
        click.echo(line, err=err)
    if not click.confirm(question, err=err):
        raise Declined("declined at the prompt: nothing was done")


def need_terminal(what: str, flag: str = "--force", hint: str | None = None) -> None:
    """Refuse (exit 2) to do ``what`` unasked when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to {what} without confirmation: no terminal to ask on",
            hint=hint or f"pass {flag} to skip the question",
        )
