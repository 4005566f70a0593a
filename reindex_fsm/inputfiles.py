"""Reading the operator's option files (--settings, --mappings, --script, --verify-queries):
UTF-8 text, or one usage line saying what is wrong with the file."""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError


def read_text(path: str, what: str) -> str:
    """The text of ``path`` (UTF-8; a BOM is dropped). ``what`` names the file in the error,
    e.g. ``"--settings file"``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read {what} {path}: {exc.strerror or exc}",
            hint="fix the path; nothing was done",
        ) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"{what} {path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} "
            f"(offset {exc.start})",
            hint="save the file as UTF-8; nothing was done",
        ) from exc
