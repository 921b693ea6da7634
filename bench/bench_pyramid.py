"""Coarse-to-fine against single scale: time to reach a final full-resolution loss.

For each network, runs (1) single-scale L-BFGS for 300 steps at 512 px and (2) dreamstyle's default
pyramid, in the same process, and reports the final full-resolution loss and the wall time of each.
Both runs minimize the same objective at the final size (same targets, same weights), so their final
losses compare directly. Steps are projected onto [0, 1], so a final loss is that of the image returned.
VGG-19 runs with random weights (no download here); that is fine for timing.

    python bench/bench_pyramid.py [--models vgg19 efficientnet_lite0] [--single-steps 300] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import dreamstyle
import harness

ROOT = harness.REPO


def pair() -> tuple[Path, Path]:
    content, style, _ = harness.shared_pair()
    return content, style


def timed(**kwargs) -> tuple[float, float]:
    start = time.perf_counter()
    image = dreamstyle.stylize(*pair(), size=512, progress=False, **kwargs)
    return time.perf_counter() - start, image.info["dreamstyle"]["final_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "vgg19"])
    parser.add_argument("--single-steps", type=int, default=300)
    parser.add_argument("--pyramid-steps", type=int, nargs="+", default=[180, 300],
                        help="pyramid step totals to try (180 is the default)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results_pyramid.json"))
    args = parser.parse_args()
    note = harness.shared_pair()[2]
    if note:
        harness.log("NOTE: " + note)
    rows = []
    for model in args.models:
        weights = None if get_offline(model) else "random"
        single_t, single_loss = timed(model=model, weights=weights, pyramid=False, iterations=args.single_steps)
        for steps in args.pyramid_steps:
            pyr_t, pyr_loss = timed(model=model, weights=weights, iterations=steps)
            row = {"model": model, "weights": weights or "pretrained", "single": {"steps": args.single_steps,
                   "seconds": round(single_t, 1), "final_loss": round(single_loss, 3)},
                   "pyramid": {"steps": steps, "seconds": round(pyr_t, 1), "final_loss": round(pyr_loss, 3)},
                   "time_ratio": round(pyr_t / single_t, 3), "loss_ratio": round(pyr_loss / single_loss, 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"benchmark": "pyramid vs single-scale L-BFGS at 512 px", "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": {"threads": torch.get_num_threads()},
              "torch": torch.__version__, "pair": [str(p) for p in pair()], "rows": rows}
    if note:
        result["note"] = note
    harness.write_results(args.out, result)
    print(f"| network | single-scale {args.single_steps} steps | pyramid | time ratio | loss ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} ({r['weights']}) | {r['single']['seconds']} s, loss {r['single']['final_loss']} | "
              f"{r['pyramid']['steps']} steps: {r['pyramid']['seconds']} s, loss {r['pyramid']['final_loss']} | "
              f"{r['time_ratio']} | {r['loss_ratio']} |")


def get_offline(model: str) -> bool:
    from dreamstyle.backbones import get_spec

    return get_spec(model).offline


if __name__ == "__main__":
    main()
