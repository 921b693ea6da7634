"""Peak memory (RSS) of a VGG-19 stylize at high resolution, next to dreamstyle's up-front estimate.

Each size runs in a fresh subprocess (a few single-scale steps; the top level is the peak of a
pyramid run too) and reports that child's own peak RSS (from wait4).

    python bench/bench_memory.py [--sizes 1024 2048] [--model vgg19] [--steps 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import harness

CHILD = r"""
import json, sys, time
import dreamstyle
from dreamstyle.backbones import Backbone
from dreamstyle.images import load_image, resized_tensor
from dreamstyle.optimize.memory import PROBE, estimate_peak_bytes
content, style, size, model, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
b = Backbone(model, weights="random")
spec = b.spec
ex = b.extractor([*spec.style_taps, *spec.content_taps])
img = load_image(content)
scale = size / max(img.size)
probe = resized_tensor(img, PROBE, b.device)
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
    parser.add_argument("--out", default=str(harness.REPO / "bench" / "results_memory.json"))
    args = parser.parse_args()
    content = harness.SHARED_IMAGES / "content_tubingen_1024.jpg"
    if not content.exists():
        content = harness.EXAMPLES / "astronaut.jpg"
    style = harness.EXAMPLES / "starry_night.jpg"
    rows = []
    for size in args.sizes:
        run = harness.timed_subprocess([sys.executable, "-c", CHILD, str(content), str(style), str(size),
                                        args.model, str(args.steps)], capture=True)
        if run["rc"] != 0:
            print(run["stderr"][-2000:], file=sys.stderr)
            lines = run["stderr"].strip().splitlines()
            rows.append({"size": size, "error": lines[-1] if lines else f"exit {run['rc']}"})
            continue
        info = json.loads(run["stdout"].strip().splitlines()[-1])
        row = {"size": size, "model": args.model, "peak_rss_gib": round(run["max_rss_mib"] / 1024, 2),
               "estimate_gib": round(info["estimate_gib"], 2), "seconds": round(info["seconds"], 1),
               "other_load_cores": run.get("other_load_cores")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    harness.write_results(args.out, {"date": time.strftime("%Y-%m-%d %H:%M"), "content": str(content),
                                     "style": str(style), "rows": rows})


if __name__ == "__main__":
    main()
