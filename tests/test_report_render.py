"""The `show --report` page renders in a real browser: headless Chromium (Debian's package
`chromium`; .ci/run installs it) takes a screenshot, which is decoded here (PNG, stdlib
zlib + numpy) and checked for its size and for the diagram's colours: the current state's
box and the path taken are drawn, not just text."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from reindex_fsm import report

from .conftest import NOW
from .test_report import EVENTS, _record

WIDTH, HEIGHT = 1200, 2000
ACTIVE_FILL = (0xF4, 0xA5, 0x82)  # svg .state.active rect (report._CSS)
TAKEN_STROKE = (0x1D, 0x4E, 0xD8)  # svg .edge.taken, the path taken


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def decode_png(data: bytes) -> np.ndarray:
    """8-bit RGB or RGBA, non-interlaced PNG -> array (height, width, channels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    assert header is not None, "no IHDR chunk"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(idat)
    assert len(raw) == height * (stride + 1)
    rows = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1)
        if kind == 0:
            out = line.copy()
        elif kind == 2:
            out = line + prev
        elif kind == 1:  # Sub: a running sum per channel
            out = np.cumsum(line.reshape(-1, bpp).astype(np.int64), axis=0).astype(np.uint8).ravel()
        else:  # Average, Paeth: each byte depends on the one to its left
            cur, up, filt = bytearray(stride), prev.tobytes(), line.tobytes()
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                if kind == 3:
                    cur[i] = (filt[i] + ((left + up[i]) >> 1)) & 0xFF
                else:
                    upleft = up[i - bpp] if i >= bpp else 0
                    cur[i] = (filt[i] + _paeth(left, up[i], upleft)) & 0xFF
            out = np.frombuffer(bytes(cur), np.uint8)
        rows[y], prev = out, out
    return rows.reshape(height, width, bpp)[:, :, :3]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(
            "chromium is not installed: this test needs a headless Chromium "
            "(Debian: `apt-get install -y chromium`; .ci/run installs it)"
        )
    return found


def _pixels_of(image: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int(np.all(image == np.array(rgb, dtype=np.uint8), axis=2).sum())


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path: Path):
    page = tmp_path / "run.html"
    page.write_text(
        report.html_report(_record(), EVENTS, NOW + timedelta(seconds=1000)), encoding="utf-8"
    )
    shot = tmp_path / "run.png"
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            f"--window-size={WIDTH},{HEIGHT}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    image = decode_png(shot.read_bytes())
    assert image.shape == (HEIGHT, WIDTH, 3)
    # Not blank: many colours, and the page is mostly (but not only) white.
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    white = _pixels_of(image, (255, 255, 255)) / (WIDTH * HEIGHT)
    assert 0.5 < white < 0.99
    # The diagram is drawn: the current state's box (150 x 40 px, filled) and the path taken.
    assert _pixels_of(image, ACTIVE_FILL) > 150 * 40 * 0.6
    assert _pixels_of(image, TAKEN_STROKE) > 300
