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
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dreamstyle.backbones import DEFAULT_BACKBONE, get_spec, load_model
from dreamstyle.dream import dream
from dreamstyle.images import load_image, resize_long_side, to_tensor

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(size=512, octaves=3, iterations=10)


def photo() -> Path:
    shared = ROOT.parent / "shared" / "images" / "content_tubingen.jpg"
    return shared if shared.exists() else ROOT / "src" / "dreamstyle" / "examples" / "chelsea.jpg"


def naive_dream(model: torch.nn.Module, layer: torch.nn.Module, image: torch.Tensor, mean, std,
                octaves: int = 3, scale: float = 1.4, steps: int = 10, lr: float = 0.02) -> torch.Tensor:
    """Deep Dream as in the tutorials: octaves with detail carry, jitter, gradient / mean |gradient|."""
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
import resource, sys, time
from dreamstyle.dream import dream
size, tile = int(sys.argv[1]), int(sys.argv[2])
start = time.perf_counter()
dream(sys.argv[3], size=size, tile=tile, octaves=1, iterations=2, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, time.perf_counter() - start)
"""


def memory(out: str) -> None:
    rows = []
    for size, tile in [(1024, 512), (1024, 4096), (2048, 512), (2048, 4096), (4096, 512)]:
        proc = subprocess.run([sys.executable, "-c", MEMORY_RUN, str(size), str(tile), str(photo())],
                              capture_output=True, text=True, check=True)
        peak, seconds = proc.stdout.split()
        rows.append({"size": size, "tiled": tile < size, "tile": tile, "peak_rss_gib": round(int(peak) / 2**30, 2),
                     "seconds": round(float(seconds), 1)})
        print(json.dumps(rows[-1]), flush=True)
    Path(out).write_text(json.dumps({"benchmark": "peak RSS of a 1-octave, 2-step dream", "model": DEFAULT_BACKBONE,
                                     "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--memory", action="store_true", help="measure peak memory against size instead")
    args = parser.parse_args()
    if args.memory:
        return memory(args.out or str(ROOT / "bench" / "results_dream_memory.json"))
    args.out = args.out or str(ROOT / "bench" / "results_dream.json")
    spec = get_spec(DEFAULT_BACKBONE)
    tap = spec.dream_taps[0]
    img = load_image(photo())
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
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dreamstyle", "dream", str(photo()), "-o", f"{tmp}/d.png", "--size",
                        "512", "--octaves", "3", "--iterations", "10", "--quiet"], check=True)
        cli = time.perf_counter() - start
    result = {
        "benchmark": "512-px dream, 3 octaves x 10 steps, default backbone", "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
        "torch": torch.__version__, "image": str(photo()), "model": spec.name, "target": tap,
        "dreamstyle_s": [round(t, 2) for t in ours], "naive_s": [round(t, 2) for t in naive],
        "dreamstyle_median_s": round(statistics.median(ours), 2), "naive_median_s": round(statistics.median(naive), 2),
        "ratio": round(statistics.median(naive) / statistics.median(ours), 2), "cli_end_to_end_s": round(cli, 2),
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
