"""Peak memory (RSS) of a VGG-19 stylize at high resolution, next to dreamstyle's up-front estimate.

Each size runs in a fresh subprocess (a few single-scale steps; the top level is the peak of a
pyramid run too) and reports the child's peak RSS from getrusage.

    python bench/bench_memory.py [--sizes 1024 2048] [--model vgg19] [--steps 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, sys, time
import dreamstyle
from dreamstyle import api
from dreamstyle.backbones import Backbone
from dreamstyle.images import load_image
from dreamstyle.optimize.memory import PROBE, estimate_peak_bytes
content, style, size, model, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
b = Backbone(model, weights="random")
spec = b.spec
ex = b.extractor([*spec.style_taps, *spec.content_taps])
img = load_image(content)
scale = size / max(img.size)
probe = api._resized(img, PROBE, b.device)
estimate = estimate_peak_bytes(ex, probe, round(img.height * scale), round(img.width * scale))
start = time.perf_counter()
dreamstyle.stylize(content, style, model=model, weights="random", size=size, pyramid=False, iterations=steps,
                   progress=False)
print(json.dumps({"estimate_gib": estimate / 2**30, "seconds": time.perf_counter() - start}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--model", default="vgg19")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results_memory.json"))
    args = parser.parse_args()
    shared = ROOT.parent / "shared" / "images"
    content = shared / "content_tubingen_1024.jpg"
    if not content.exists():
        content = ROOT / "src" / "dreamstyle" / "examples" / "astronaut.jpg"
    style = ROOT / "src" / "dreamstyle" / "examples" / "starry_night.jpg"
    rows = []
    for size in args.sizes:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        proc = subprocess.run([sys.executable, "-c", CHILD, str(content), str(style), str(size), args.model,
                               str(args.steps)], capture_output=True, text=True)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            rows.append({"size": size, "error": proc.stderr.strip().splitlines()[-1]})
            continue
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        # ru_maxrss of children is the max over all children so far; sizes run in increasing order.
        row = {"size": size, "model": args.model, "peak_rss_gib": round(max(peak_kib, before) / 2**20, 2),
               "estimate_gib": round(info["estimate_gib"], 2), "seconds": round(info["seconds"], 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
