"""``dreamstyle sheet``: a labelled contact sheet of a parameter sweep, to see what each setting does."""

from __future__ import annotations

import itertools
import os
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont

from .errors import UserError
from .images import check_output_path, save_image

# Sweepable stylize() parameters and how to read their values.
_FLOAT = ("content_weight", "style_weight", "tv_weight", "style_scale", "lr", "ema")
_INT = ("size", "iterations", "seed")
_TEXT = ("model", "style_loss", "smooth", "pooling", "preserve_color", "optimizer", "init", "precision",
         "dream")  # dream=auto=1,auto=3 (no channel lists: the values are split at commas)
SWEEPABLE = _FLOAT + _INT + _TEXT
MAX_CELLS = 64


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``'style-weight=1e2,1e3'`` -> ``('style_weight', [100.0, 1000.0])``."""
    name, sep, values = text.partition("=")
    key = name.strip().lstrip("-").replace("-", "_")
    if not sep or not values.strip():
        raise UserError(f"bad --sweep '{text}': write NAME=V1,V2,... as in style-weight=1e2,1e3")
    if key not in SWEEPABLE:
        raise UserError(f"cannot sweep '{name}'; choose one of: {', '.join(k.replace('_', '-') for k in SWEEPABLE)}")
    parsed = []
    for raw in (v.strip() for v in values.split(",")):
        try:
            parsed.append(float(raw) if key in _FLOAT else int(raw) if key in _INT else raw)
        except ValueError:
            raise UserError(f"bad value '{raw}' for {name} in --sweep; it must be a number") from None
    return key, parsed


def _label(overrides: dict[str, Any]) -> str:
    """One line per swept parameter."""
    return "\n".join(f"{k.replace('_', '-')}={v:g}" if isinstance(v, float) else f"{k.replace('_', '-')}={v}"
                     for k, v in overrides.items())


def make_sheet(content, styles, sweeps: Sequence[str], output: str | os.PathLike, progress: bool = True,
               **base: Any) -> Image.Image:
    """Stylize once per combination of the sweeps and lay the results out in a labelled grid.

    With two sweeps the first runs down the rows and the second across the columns; with one,
    the results form a single row; with more, the combinations wrap into a near-square grid.
    """
    from .api import stylize

    out_path = check_output_path(output)
    parsed = [parse_sweep(s) for s in sweeps]
    if not parsed:
        raise UserError("give at least one --sweep NAME=V1,V2,...")
    keys = [k for k, _ in parsed]
    if len(set(keys)) != len(keys):
        raise UserError("each parameter may be swept only once")
    combos = [dict(zip(keys, values)) for values in itertools.product(*(v for _, v in parsed))]
    if len(combos) > MAX_CELLS:
        raise UserError(f"the sweep makes {len(combos)} images; keep it to {MAX_CELLS} or fewer")
    cells = []
    for i, overrides in enumerate(combos, 1):
        if progress:
            print(f"[{i}/{len(combos)}] {', '.join(_label(overrides).splitlines())}", flush=True)
        cells.append((stylize(content, styles, **{**base, **overrides, "progress": progress}), _label(overrides)))
    columns = len(parsed[-1][1]) if len(parsed) == 2 else len(combos) if len(parsed) == 1 else \
        max(1, round(len(combos) ** 0.5))
    sheet = _grid(cells, columns)
    params = {"command": "sheet", "sweeps": list(sweeps), "cells": [label.split("\n") for _, label in cells],
              **{k: v for k, v in base.items() if isinstance(v, (str, int, float, bool, type(None)))}}
    save_image(sheet, out_path, params)
    return sheet


def _grid(cells: list[tuple[Image.Image, str]], columns: int) -> Image.Image:
    font = ImageFont.load_default()
    cell_w = max(im.width for im, _ in cells)
    cell_h = max(im.height for im, _ in cells)
    label_h = 4 + 12 * max(label.count("\n") + 1 for _, label in cells)
    rows = -(-len(cells) // columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * (cell_h + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (im, label) in enumerate(cells):
        x, y = (i % columns) * cell_w, (i // columns) * (cell_h + label_h)
        draw.multiline_text((x + 4, y + 2), label, fill="black", font=font, spacing=2)
        sheet.paste(im, (x + (cell_w - im.width) // 2, y + label_h))
    return sheet
