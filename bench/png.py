"""Tiny charts as PNG files in pure Python (zlib + struct): horizontal bars and log-log lines.

The project has no plotting library, and the benchmark report needs two or three simple charts,
so this draws them on an RGB canvas with a built-in 5×7 pixel font (upper case, digits and a few
signs; lower case is drawn as upper case).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
GREY: Color = (200, 200, 200)
DARK_GREY: Color = (110, 110, 110)
PALETTE: tuple[Color, ...] = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189))

# 5×7 glyphs: seven rows of five bits, the leftmost pixel the highest bit.
_FONT_ROWS = {
    "0": "0E 11 13 15 19 11 0E",
    "1": "04 0C 04 04 04 04 0E",
    "2": "0E 11 01 02 04 08 1F",
    "3": "1F 02 04 02 01 11 0E",
    "4": "02 06 0A 12 1F 02 02",
    "5": "1F 10 1E 01 01 11 0E",
    "6": "06 08 10 1E 11 11 0E",
    "7": "1F 01 02 04 08 08 08",
    "8": "0E 11 11 0E 11 11 0E",
    "9": "0E 11 11 0F 01 02 0C",
    "A": "0E 11 11 1F 11 11 11",
    "B": "1E 11 11 1E 11 11 1E",
    "C": "0E 11 10 10 10 11 0E",
    "D": "1C 12 11 11 11 12 1C",
    "E": "1F 10 10 1E 10 10 1F",
    "F": "1F 10 10 1E 10 10 10",
    "G": "0E 11 10 17 11 11 0F",
    "H": "11 11 11 1F 11 11 11",
    "I": "0E 04 04 04 04 04 0E",
    "J": "07 02 02 02 02 12 0C",
    "K": "11 12 14 18 14 12 11",
    "L": "10 10 10 10 10 10 1F",
    "M": "11 1B 15 15 11 11 11",
    "N": "11 11 19 15 13 11 11",
    "O": "0E 11 11 11 11 11 0E",
    "P": "1E 11 11 1E 10 10 10",
    "Q": "0E 11 11 11 15 12 0D",
    "R": "1E 11 11 1E 14 12 11",
    "S": "0F 10 10 0E 01 01 1E",
    "T": "1F 04 04 04 04 04 04",
    "U": "11 11 11 11 11 11 0E",
    "V": "11 11 11 11 11 0A 04",
    "W": "11 11 11 15 15 15 0A",
    "X": "11 11 0A 04 0A 11 11",
    "Y": "11 11 11 0A 04 04 04",
    "Z": "1F 01 02 04 08 10 1F",
    " ": "00 00 00 00 00 00 00",
    ".": "00 00 00 00 00 0C 0C",
    ",": "00 00 00 00 0C 04 08",
    "-": "00 00 00 1F 00 00 00",
    "_": "00 00 00 00 00 00 1F",
    ":": "00 0C 0C 00 0C 0C 00",
    "/": "00 01 02 04 08 10 00",
    "(": "02 04 08 08 08 04 02",
    ")": "08 04 02 02 02 04 08",
    "[": "0E 08 08 08 08 08 0E",
    "]": "0E 02 02 02 02 02 0E",
    "%": "18 19 02 04 08 13 03",
    "×": "00 11 0A 04 0A 11 00",
    "<": "02 04 08 10 08 04 02",
    ">": "08 04 02 01 02 04 08",
    "=": "00 00 1F 00 1F 00 00",
    "+": "00 04 04 1F 04 04 00",
    "?": "0E 11 01 02 04 00 04",
    "'": "04 04 08 00 00 00 00",
}
FONT = {ch: [int(row, 16) for row in rows.split()] for ch, rows in _FONT_ROWS.items()}
GLYPH_W, GLYPH_H = 6, 8  # a glyph's cell, spacing included


class Canvas:
    """An RGB image to draw on, saved as PNG."""

    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        """A ``width`` × ``height`` image filled with ``background``."""
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def dot(self, x: int, y: int, color: Color) -> None:
        """Set one pixel (outside the image: ignored)."""
        if 0 <= x < self.width and 0 <= y < self.height:
            i = 3 * (y * self.width + x)
            self.pixels[i : i + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        """Fill the rectangle between two corners (inclusive)."""
        for y in range(max(0, min(y0, y1)), min(self.height, max(y0, y1) + 1)):
            for x in range(max(0, min(x0, x1)), min(self.width, max(x0, x1) + 1)):
                self.dot(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 1) -> None:
        """A straight line (Bresenham), ``width`` pixels thick."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        half = width // 2
        while True:
            self.rect(x0 - half, y0 - half, x0 - half + width - 1, y0 - half + width - 1, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def dashed(self, x0: int, y0: int, x1: int, y1: int, color: Color, dash: int = 6) -> None:
        """A vertical or horizontal dashed line."""
        length = max(abs(x1 - x0), abs(y1 - y0))
        for i in range(0, length + 1, 2 * dash):
            a, b = i / max(length, 1), min(i + dash, length) / max(length, 1)
            self.line(
                round(x0 + (x1 - x0) * a), round(y0 + (y1 - y0) * a),
                round(x0 + (x1 - x0) * b), round(y0 + (y1 - y0) * b),
                color,
            )  # fmt: skip

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 2) -> int:
        """Write ``text`` with its top left at (x, y); returns the x after it."""
        for ch in text.upper():
            rows = FONT.get(ch, FONT["?"])
            for row, bits in enumerate(rows):
                for col in range(5):
                    if bits & (0x10 >> col):
                        self.rect(
                            x + col * scale,
                            y + row * scale,
                            x + col * scale + scale - 1,
                            y + row * scale + scale - 1,
                            color,
                        )
            x += GLYPH_W * scale
        return x

    def save(self, path: Path) -> None:
        """Write the image as an 8-bit RGB PNG."""
        stride = 3 * self.width
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def text_width(text: str, scale: int = 2) -> int:
    """Width in pixels of ``text`` at ``scale``."""
    return len(text) * GLYPH_W * scale


def number(value: float) -> str:
    """A short label for ``value``: 3 significant digits, k/M/G suffixes for large values."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def bar_chart(path: Path, title: str, bars: Sequence[tuple[str, float]], unit: str = "") -> None:
    """Horizontal bars, one per ``(label, value)``, the value written at the end of each bar."""
    scale, bar_h, gap = 2, 26, 12
    label_w = max((text_width(label, scale) for label, _ in bars), default=0) + 20
    width = max(900, label_w + 560)
    plot_w = width - label_w - 160
    height = 70 + len(bars) * (bar_h + gap) + 30
    canvas = Canvas(width, height)
    canvas.text(20, 20, title, scale=scale)
    top = max((v for _, v in bars), default=1) or 1
    for i, (label, value) in enumerate(bars):
        y = 70 + i * (bar_h + gap)
        canvas.text(20, y + (bar_h - 7 * scale) // 2, label, scale=scale)
        length = max(1, round(plot_w * value / top))
        canvas.rect(label_w, y, label_w + length, y + bar_h, PALETTE[i % len(PALETTE)])
        canvas.text(label_w + length + 8, y + (bar_h - 7 * scale) // 2, f"{number(value)}{unit}", scale=scale)
    canvas.line(label_w, 60, label_w, height - 20, DARK_GREY)
    canvas.save(path)


def _log_ticks(low: float, high: float) -> list[float]:
    return [10.0**e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]


def loglog_chart(
    path: Path,
    title: str,
    series: dict[str, Sequence[tuple[float, float]]],
    *,
    x_label: str,
    y_label: str,
    markers: Sequence[tuple[str, float]] = (),
) -> None:
    """Lines of ``(x, y)`` points on log-log axes, with a legend and labelled vertical markers."""
    scale = 2
    width, height = 960, 620
    left, right, top, bottom = 110, 40, 70, 90
    canvas = Canvas(width, height)
    canvas.text(20, 12, title, scale=scale)
    points = [p for line in series.values() for p in line if p[0] > 0 and p[1] > 0]
    xs = [p[0] for p in points] + [x for _, x in markers if x > 0]
    ys = [p[1] for p in points]
    if not xs or not ys:
        canvas.text(left, height // 2, "NO DATA", scale=scale)
        canvas.save(path)
        return
    x_ticks, y_ticks = _log_ticks(min(xs), max(xs)), _log_ticks(min(ys), max(ys))
    lx0, lx1 = (
        math.log10(x_ticks[0]),
        math.log10(x_ticks[-1]) if len(x_ticks) > 1 else math.log10(x_ticks[0]) + 1,
    )
    ly0, ly1 = (
        math.log10(y_ticks[0]),
        math.log10(y_ticks[-1]) if len(y_ticks) > 1 else math.log10(y_ticks[0]) + 1,
    )

    def px(x: float) -> int:
        return round(left + (math.log10(x) - lx0) / (lx1 - lx0) * (width - left - right))

    def py(y: float) -> int:
        return round(height - bottom - (math.log10(y) - ly0) / (ly1 - ly0) * (height - top - bottom))

    for x in x_ticks:
        canvas.line(px(x), top, px(x), height - bottom, GREY)
        label = number(x)
        canvas.text(px(x) - text_width(label) // 2, height - bottom + 10, label)
    for y in y_ticks:
        canvas.line(left, py(y), width - right, py(y), GREY)
        label = number(y)
        canvas.text(left - 10 - text_width(label), py(y) - 7, label)
    canvas.line(left, top, left, height - bottom, BLACK)
    canvas.line(left, height - bottom, width - right, height - bottom, BLACK)
    canvas.text((width - text_width(x_label)) // 2, height - 40, x_label)
    canvas.text(10, top - 30, y_label)
    for i, (label, x) in enumerate(markers):
        if x > 0:
            canvas.dashed(px(x), top, px(x), height - bottom, DARK_GREY)
            # the label right of the line, or left of it when it would leave the plot
            at = px(x) + 6 if px(x) + 6 + text_width(label) < width - right else px(x) - 6 - text_width(label)
            canvas.text(at, height - bottom - 24 - 20 * i, label, DARK_GREY)
    legend_y = top + 6
    for i, (name, line) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        shown = sorted(p for p in line if p[0] > 0 and p[1] > 0)
        for (x0, y0), (x1, y1) in pairwise(shown):
            canvas.line(px(x0), py(y0), px(x1), py(y1), color, width=3)
        for x, y in shown:
            canvas.rect(px(x) - 4, py(y) - 4, px(x) + 4, py(y) + 4, color)
        canvas.rect(left + 12, legend_y + 4, left + 32, legend_y + 10, color)
        canvas.text(left + 40, legend_y, name)
        legend_y += 22
    canvas.save(path)
