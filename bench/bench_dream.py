"""Deep Dream speed (issue 4): a 512-px dream, 3 octaves of 10 steps, on the default backbone.

Times, in one process and alternating, (1) ``dreamstyle.dream()`` with those settings and (2) a
naive baseline: the same algorithm written the way notebooks do it (the whole network run in
fp32, NCHW, a forward hook on the target, BatchNorm not folded, no truncation after the target).
Both start after the weights are loaded; the end-to-end CLI run (Python start-up and imports
included) is timed once as a subprocess. Reports medians and the ratio baseline / dreamstyle.

    python bench/bench_dream.py [--runs 3] [--out bench/results_dream.json]
    python bench/bench_dream.py --memory [--out bench/results_dream_memory.json]

``--memory`` instead measures the peak RSS of a 1-octave, 2-step dream at 1024, 2048 and 4096 px,
tiled (the default 512-px tiles) and, up to 2048, untiled; each run in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import harness

# torch and dreamstyle are imported inside the functions: with --memory this process stays light,
# since a child's peak RSS (from wait4) counts the parent's RSS at launch.
if TYPE_CHECKING:
    import torch

ROOT = harness.REPO
SETTINGS = {"size": 512, "octaves": 3, "iterations": 10}


def photo() -> Path:
    """The shared pair's content photo (content_tubingen.jpg), else the bundled example."""
    return harness.pair()[0]


def naive_dream(model: torch.nn.Module, layer: torch.nn.Module, image: torch.Tensor, mean, std,
                octaves: int = 3, scale: float = 1.4, steps: int = 10, lr: float = 0.02) -> torch.Tensor:
    """Deep Dream as in the tutorials: octaves with detail carry, jitter, gradient / mean |gradient|."""
    import torch
    import torch.nn.functional as F

    store = {}
    hook = layer.register_forward_hook(lambda m, i, o: store.__setitem__("out", o))
    mean, std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    h, w = image.shape[-2:]
    sizes = [(round(h / scale ** k), round(w / scale ** k)) for k in range(octaves - 1, -1, -1)]
    detail = None
    for size in sizes:
        base = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        x = base if detail is None else base + F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
        for _ in range(steps):
            dy, dx = torch.randint(-32, 33, (2,)).tolist()
            x = torch.roll(x, (dy, dx), (-2, -1)).detach().requires_grad_(True)
            model((x - mean) / std)
            store["out"].pow(2).mean().backward()
            g = x.grad
            x = torch.roll((x + lr * g / (g.abs().mean() + 1e-8)).clamp(0, 1), (-dy, -dx), (-2, -1)).detach()
        detail = x - base
    hook.remove()
    return x


MEMORY_RUN = """
import json, sys, time
from dreamstyle import dream
from dreamstyle.backbones import DEFAULT_BACKBONE
dream = dream if callable(dream) else dream.dream
size, tile = int(sys.argv[1]), int(sys.argv[2])
start = time.perf_counter()
dream(sys.argv[3], size=size, tile=tile, octaves=1, iterations=2, progress=False)
print(json.dumps({"model": DEFAULT_BACKBONE, "seconds": time.perf_counter() - start}))
"""


def memory(out: str) -> None:
    """Peak RSS per size, each in a fresh process (the child's own peak, from wait4)."""
    rows, model = [], None
    image = photo()
    for size, tile in [(1024, 512), (1024, 4096), (2048, 512), (2048, 4096), (4096, 512)]:
        run = harness.timed_subprocess([sys.executable, "-c", MEMORY_RUN, str(size), str(tile), str(image)],
                                       capture=True)
        if run["rc"] != 0:
            sys.exit(f"bench_dream: the {size}-px dream failed (exit {run['rc']}):\n{run['stderr'][-2000:]}")
        info = json.loads(run["stdout"].strip().splitlines()[-1])
        model = info["model"]
        rows.append({"size": size, "tiled": tile < size, "tile": tile,
                     "peak_rss_gib": round(run["max_rss_mib"] / 1024, 2),
                     "seconds": round(info["seconds"], 1), "wall_s": round(run["wall_s"], 1),
                     "other_load_cores": run.get("other_load_cores")})
        print(json.dumps(rows[-1]), flush=True)
    harness.write_results(out, {"benchmark": "peak RSS of a 1-octave, 2-step dream", "model": model,
                                "date": time.strftime("%Y-%m-%d %H:%M"), "image": str(image), "rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--memory", action="store_true", help="measure peak memory against size instead")
    args = parser.parse_args()
    if args.memory:
        return memory(args.out or str(ROOT / "bench" / "results_dream_memory.json"))
    args.out = args.out or str(ROOT / "bench" / "results_dream.json")
    import torch

    from dreamstyle import dream
    from dreamstyle.backbones import DEFAULT_BACKBONE, get_spec, load_model
    from dreamstyle.images import load_image, resize_long_side, to_tensor

    if not callable(dream):  # the package before dream() was exported from the top level
        dream = dream.dream
    spec = get_spec(DEFAULT_BACKBONE)
    tap = spec.dream_taps[0]
    image_path = photo()
    img = load_image(image_path)
    dream(img, targets=[tap], size=128, octaves=1, iterations=1, progress=False)  # warm-up: weights, caches
    model = load_model(spec, None)
    layer = model.get_submodule(tap)
    image = to_tensor(resize_long_side(img, 512))
    ours, naive = [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        dream(img, targets=[tap], progress=False, **SETTINGS)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        naive_dream(model, layer, image, spec.mean, spec.std)
        naive.append(time.perf_counter() - start)
        print(f"dreamstyle {ours[-1]:.2f} s, naive {naive[-1]:.2f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cli = harness.timed_subprocess([sys.executable, "-m", "dreamstyle", "dream", str(image_path), "-o",
                                        f"{tmp}/d.png", "--size", "512", "--octaves", "3", "--iterations", "10",
                                        "--quiet"], capture=True)
        if cli["rc"] != 0:
            sys.exit(f"bench_dream: the CLI run failed (exit {cli['rc']}):\n{cli['stderr'][-2000:]}")
    result = {
        "benchmark": "512-px dream, 3 octaves x 10 steps, default backbone", "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"threads": torch.get_num_threads()},
        "torch": torch.__version__, "image": str(image_path), "model": spec.name, "target": tap,
        "dreamstyle_s": [round(t, 2) for t in ours], "naive_s": [round(t, 2) for t in naive],
        "dreamstyle_median_s": round(statistics.median(ours), 2), "naive_median_s": round(statistics.median(naive), 2),
        "ratio": round(statistics.median(naive) / statistics.median(ours), 2),
        "cli_end_to_end_s": round(cli["wall_s"], 2), "cli_other_load_cores": cli.get("other_load_cores"),
    }
    harness.write_results(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
