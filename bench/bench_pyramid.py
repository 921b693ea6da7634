"""Coarse-to-fine against single scale: time to reach a final full-resolution loss.

For each network, runs in one process (1) plain single-scale L-BFGS at 512 px from the photo, for 300
steps, and (2) dreamstyle's pyramid under one or more schedules (the network's default, or
``START:POWER:STEPS``: levels from START px up by sqrt(2), steps per level ~ 1 / side ** POWER). It
reports each run's final full-resolution loss, its wall time, and how long single scale took to reach
that loss (from its per-step curve). Both minimize the same objective at the final size (same targets,
same weights), so their losses compare directly. Steps are projected onto [0, 1], so a final loss is
that of the image returned. VGG-19 runs with random weights (no download here), seeded, which is fine
for timing.

    python bench/bench_pyramid.py [--models vgg19 efficientnet_lite0] [--single-steps 300]
        [--schedules default 128:1.5:180] [--baseline-precision fp32] [--out FILE]

Single scale runs at ``--baseline-precision`` (fp32: the plain baseline); the pyramids at the default
precision, which on an AMX Xeon the calibration sets to bf16 for VGG-19. The baseline computes its Gram
matrices the plain way, autograd through ``f @ f.T`` (as ``naive_gatys.py`` and the PyTorch tutorial do),
not with dreamstyle's one-matmul Gram. Each run's returned 8-bit image is also scored with the fp32
objective (``fp32_loss``), so a bf16 run's own loss figures can be checked against the baseline's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

import dreamstyle
import harness

ROOT = harness.REPO


def pair() -> tuple[Path, Path]:
    content, style, _ = harness.shared_pair()
    return content, style


@contextlib.contextmanager
def plain_gram() -> Iterator[None]:
    """Inside: the style statistics' ``f @ f.T`` through plain autograd (two matmuls back, a transposed
    gradient), as a plain implementation has it."""
    from dreamstyle.objectives import style

    fast = style.second_moment
    style.second_moment = lambda f: f @ f.transpose(1, 2)
    try:
        yield
    finally:
        style.second_moment = fast


def fp32_loss(image: Any, model: str, weights: str | None) -> float:
    """The fp32 objective at 512 px (the baseline's) of a returned 8-bit image."""
    from dreamstyle.api import make
    from dreamstyle.events import Run
    from dreamstyle.images import to_tensor
    from dreamstyle.settings import StylizeSettings
    from dreamstyle.tasks import stylize as task

    torch.manual_seed(0)  # the same random weights as the runs' networks (cached per precision)
    p = task.prepare(*pair(), make(StylizeSettings, dict(model=model, weights=weights, size=512,
                                                          precision="fp32")))
    level = task._Pyramid(p, p.content, Run("stylize", 0), None, [], {}, {}).bind(512)
    x = to_tensor(image).to(level.content.device)
    with torch.no_grad():
        return round(float(level.objective(p.extractor(x), x)[0]), 4)


def timed(schedule: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """One stylize at 512 px: seconds, final loss, and (loss, seconds since start) after every step."""
    from dreamstyle.backbones import get_spec

    defaults = get_spec(kwargs["model"]).defaults
    saved = dict(defaults)
    if schedule and schedule != "default":
        start, power, steps = schedule.split(":")
        defaults.update(pyramid_start=int(start), level_power=float(power))
        kwargs["iterations"] = int(steps)
    curve: list[tuple[float, float]] = []
    begin = time.perf_counter()

    def on_event(event: Any) -> None:
        if type(event).__name__ == "Step":
            curve.append((round(event.loss, 4), round(time.perf_counter() - begin, 2)))

    try:
        image = dreamstyle.stylize(*pair(), size=512, progress=False, on_event=on_event, **kwargs)
    finally:
        defaults.clear()
        defaults.update(saved)
    seconds = round(time.perf_counter() - begin, 1)
    info = image.info["dreamstyle"]
    return {"schedule": schedule or "single scale", "steps": info["iterations"], "seconds": seconds,
            "final_loss": round(info["final_loss"], 4), "fp32_loss": fp32_loss(image, kwargs["model"],
                                                                               kwargs.get("weights")),
            "curve": curve}


def reach(single: dict[str, Any], loss: float) -> float | None:
    """Seconds single scale took to reach ``loss`` (None: it never did)."""
    return next((seconds for value, seconds in single["curve"] if value <= loss), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "vgg19"])
    parser.add_argument("--single-steps", type=int, default=300)
    parser.add_argument("--schedules", nargs="+", default=["default"],
                        help="'default' (the network's own) or START:POWER:STEPS")
    parser.add_argument("--baseline-precision", default="fp32",
                        help="single scale's precision (fp32, the plain baseline); the pyramids take the default")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results_pyramid.json"))
    args = parser.parse_args()
    note = harness.shared_pair()[2]
    if note:
        harness.log("NOTE: " + note)
    rows = []
    for model in args.models:
        weights = None if get_offline(model) else "random"
        base = args.baseline_precision
        for precision in ("auto", base):  # warm-up: build and cache the network at each precision, with the
            torch.manual_seed(0)          # same random weights (a network is cached per precision)
            with plain_gram() if precision == base else contextlib.nullcontext():
                timed(model=model, weights=weights, pyramid=False, iterations=1, precision=precision)
        runs = [timed(schedule, model=model, weights=weights) for schedule in args.schedules]
        for run in runs:
            harness.log(json.dumps({k: v for k, v in run.items() if k != "curve"}))
        with plain_gram():
            single = timed(model=model, weights=weights, pyramid=False, init="content",
                           iterations=args.single_steps, precision=base)
        single["precision"] = base
        for run in runs:
            reached = reach(single, run["final_loss"])
            row = {"model": model, "weights": weights or "pretrained",
                   "single": {k: v for k, v in single.items() if k != "curve"}, "pyramid": run,
                   "time_ratio": round(run["seconds"] / single["seconds"], 3),
                   "loss_ratio": round(run["final_loss"] / single["final_loss"], 3),
                   "single_seconds_to_same_loss": reached,
                   "speedup_at_equal_loss": None if reached is None else round(reached / run["seconds"], 2)}
            rows.append(row)
        rows[-1]["single"]["curve"] = single["curve"]
    result = {"benchmark": "pyramid vs single-scale L-BFGS at 512 px", "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": harness.machine(), "torch": torch.__version__, "pair": [str(p) for p in pair()],
              "rows": rows}
    if note:
        result["note"] = note
    harness.write_results(args.out, result)
    print(f"| network | single scale, {args.single_steps} steps | pyramid | time ratio | loss ratio | "
          "speed-up at equal loss | fp32 losses of the 8-bit results (single, pyramid) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["pyramid"]
        print(f"| {r['model']} ({r['weights']}) | {r['single']['seconds']} s, loss {r['single']['final_loss']} | "
              f"{p['schedule']}, {p['steps']} steps: {p['seconds']} s, loss {p['final_loss']} | "
              f"{r['time_ratio']} | {r['loss_ratio']} | {r['speedup_at_equal_loss']} | "
              f"{r['single']['fp32_loss']}, {p['fp32_loss']} |")


def get_offline(model: str) -> bool:
    from dreamstyle.backbones import get_spec

    return get_spec(model).offline


if __name__ == "__main__":
    main()
