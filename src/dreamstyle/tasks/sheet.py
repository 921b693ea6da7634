"""``dreamstyle sheet``: a labelled contact sheet of a parameter sweep, to see what each setting does.

Every cell is prepared (checked, its network built) before the first one runs, so a bad value in any
sweep fails at once; cells share networks through the backbone cache; Ctrl-C keeps the finished cells.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import SettingError, UserError
from ..events import Child, Run, guarded
from ..images import check_output_path, grid, header, refuse_output_over_inputs, save_image
from ..settings import StylizeSettings, as_params, check, flag_of, parse_text, sweepable
from . import stylize as stylize_task
from .session import keep_image

MAX_CELLS = 64


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``'style-weight=1e2,1e3'`` -> ``('style_weight', [100.0, 1000.0])``; each value is checked."""
    name, sep, values = text.partition("=")
    key = name.strip().lstrip("-").replace("-", "_")
    if not sep or not values.strip():
        raise UserError(f"bad sweep '{text}': write NAME=V1,V2,... as in style-weight=1e2,1e3")
    can = sweepable(StylizeSettings)
    if key not in can:
        raise UserError(f"cannot sweep '{name}'; choose one of: {', '.join(k.replace('_', '-') for k in can)}")
    parsed = []
    for raw in (v.strip() for v in values.split(",")):
        if not raw:
            raise UserError(f"bad sweep '{text}': a value is empty")
        try:
            parsed.append(parse_text(StylizeSettings, key, raw))
        except SettingError as exc:
            raise UserError(f"bad value '{raw}' for {name} in sweep: it {exc.problem}") from None
    return key, parsed


def _label(overrides: dict[str, Any]) -> str:
    """One line per swept parameter."""
    def text(v: Any) -> str:
        if isinstance(v, bool):
            return "on" if v else "off"
        if isinstance(v, float):
            return f"{v:g}"
        return ",".join(map(str, v)) if isinstance(v, list) else str(v)
    return "\n".join(f"{k.replace('_', '-')}={text(v)}" for k, v in overrides.items())


def make_sheet(content: Any, styles: Any, sweeps: Sequence[str], settings: StylizeSettings,
               output: str | os.PathLike, events: Run | None = None) -> Image.Image:
    """Stylize once per combination of the sweeps and lay the results out in a labelled grid.

    With two sweeps the first runs down the rows and the second across the columns; with one,
    the results form a single row; with more, the combinations wrap into a near-square grid.
    """
    out_path = check_output_path(output)
    style_list = [styles] if isinstance(styles, (str, os.PathLike, Image.Image)) else list(styles)
    masks = settings.masks
    mask_list = [] if masks is None else [masks] if isinstance(masks, (str, os.PathLike, Image.Image)) else masks
    refuse_output_over_inputs(out_path, [content, *style_list, settings.init, *mask_list])
    parsed = [parse_sweep(s) for s in sweeps]
    if not parsed:
        raise UserError("give at least one sweep NAME=V1,V2,...")
    keys = [k for k, _ in parsed]
    if len(set(keys)) != len(keys):
        raise UserError("each parameter may be swept only once")
    combos = [dict(zip(keys, values)) for values in itertools.product(*(v for _, v in parsed))]
    if len(combos) > MAX_CELLS:
        raise UserError(f"the sweep makes {len(combos)} images; keep it to {MAX_CELLS} or fewer")
    prepared = []
    for overrides in combos:  # every cell checked (and its network built) before any runs
        cell_settings = dataclasses.replace(settings, **overrides)
        try:
            check(cell_settings)
            prepared.append(stylize_task.prepare(content, styles, cell_settings))
        except SettingError as exc:
            raise UserError(f"sweep cell {', '.join(_label(overrides).splitlines())}: "
                            f"{exc.render(lambda n: flag_of(StylizeSettings, n))}") from None
    events = events or Run("sheet", 0)
    events.expect(sum(sum(p.steps) for p in prepared))
    cells: list[tuple[Image.Image, str]] = []
    columns = len(parsed[-1][1]) if len(parsed) == 2 else len(combos) if len(parsed) == 1 else \
        max(1, round(len(combos) ** 0.5))
    params = header("sheet", sweeps=list(sweeps), **as_params(settings), cells=[])

    def keep() -> tuple[Image.Image | None, Path | None]:
        if not cells:
            return None, None
        return keep_image(events, grid(cells, columns), out_path, params,
                          cells=[label.split("\n") for _, label in cells])

    with guarded(events, keep):
        for i, (overrides, cell) in enumerate(zip(combos, prepared), 1):
            prefix = f"[{i}/{len(combos)}] {' '.join(_label(overrides).splitlines())} "
            cells.append((stylize_task.run(cell, Child(events, prefix)), _label(overrides)))
        sheet = grid(cells, columns)
        params["cells"] = [label.split("\n") for _, label in cells]
        path = save_image(sheet, out_path, params)
    events.finish(sheet, path, params)
    return sheet


__all__ = ["make_sheet", "parse_sweep", "MAX_CELLS"]
