"""Batch throughput (issue 23): 16 apply jobs at 512 px and 4 stylize jobs at 256 px, three ways.

* ``sequential``: one process calls ``dreamstyle.apply`` / ``dreamstyle.stylize`` once per photo, in turn
  (the network loaded once, as a loop in a user's script would);
* ``pool``: ``dreamstyle.batch`` on the local process pool (sized to the free cores);
* ``ray``: ``dreamstyle.batch(ray="auto")`` on a local Ray instance started here (its start-up timed apart).

Each way writes to a fresh folder. Reported per mode and way: the wall time, jobs per second, seconds per
job, and the overhead per job: ``wall x slots / jobs - sequential seconds per job``, the extra core-seconds
a job costs on that way (process start-up, imports, network loads, transfers), where ``slots`` is the
number of jobs that run at once. The photos are crops of the bundled examples, resized to the size.

    python bench/bench_batch.py [--ways sequential,pool,ray] [--out bench/results_batch.json]
    python bench/bench_batch.py --apply-jobs 2 --apply-size 64 --stylize-jobs 2 --stylize-size 32 \\
        --stylize-iterations 2 --out /tmp/batch.json          # a quick check that it works
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

import harness

EXAMPLES = ("astronaut.jpg", "chelsea.jpg")  # the bundled photos (the others are paintings)


def photos(folder: Path, count: int, size: int) -> Path:
    """``count`` different photos with a long side of ``size``: shifted crops of the bundled examples."""
    folder.mkdir(parents=True)
    sources = [p for p in (harness.EXAMPLES / name for name in EXAMPLES) if p.is_file()] or \
        sorted(harness.EXAMPLES.glob("*.jpg"))[:1]
    for i in range(count):
        img = Image.open(sources[i % len(sources)]).convert("RGB")
        w, h = img.size
        shift = (i // len(sources)) * 0.02
        crop = img.crop((int(w * shift), int(h * shift), int(w * (0.9 + shift / 2)), int(h * (0.9 + shift / 2))))
        crop.thumbnail((size, size), Image.Resampling.LANCZOS)
        crop.save(folder / f"photo{i:03d}.png")
    return folder


def sequential(mode: str, folder: Path, out: Path, settings: dict) -> float:
    """One process, one call per photo (in-process: the network is cached after the first)."""
    import dreamstyle

    out.mkdir(parents=True)
    started = time.perf_counter()
    for photo in sorted(folder.glob("*.png")):
        if mode == "apply":
            dreamstyle.apply(photo, output=out / photo.name, progress=False, **settings)
        else:
            styles = settings["style_images"]
            rest = {k: v for k, v in settings.items() if k != "style_images"}
            dreamstyle.stylize(photo, styles, output=out / photo.name, progress=False, **rest)
    return time.perf_counter() - started


def batched(mode: str, folder: Path, out: Path, settings: dict, ray: str | None) -> tuple[float, int]:
    """``dreamstyle.batch`` on the pool or on Ray: (wall seconds, jobs that ran at once)."""
    import dreamstyle

    started = time.perf_counter()
    report = dreamstyle.batch(folder, out, mode=mode, ray=ray, progress=False, **settings)
    wall = time.perf_counter() - started
    if report.failed:
        raise SystemExit(f"{len(report.failed)} job(s) failed: {report.failed[0]}")
    return wall, report.workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apply-jobs", type=int, default=16)
    parser.add_argument("--apply-size", type=int, default=512)
    parser.add_argument("--stylize-jobs", type=int, default=4)
    parser.add_argument("--stylize-size", type=int, default=256)
    parser.add_argument("--stylize-iterations", type=int, default=None, help="default: the network's")
    parser.add_argument("--ways", default="sequential,pool,ray")
    parser.add_argument("--out", default=str(harness.REPO / "bench" / "results_batch.json"))
    args = parser.parse_args()
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    painting = str(harness.EXAMPLES / "starry_night.jpg")
    stylize = {"size": args.stylize_size, "style_images": [painting]}
    if args.stylize_iterations:
        stylize["iterations"] = args.stylize_iterations
    modes = {"apply": (args.apply_jobs, args.apply_size, {"model": "starry_night", "size": args.apply_size}),
             "stylize": (args.stylize_jobs, args.stylize_size, stylize)}
    results: dict = {"ways": ways, "modes": {}}
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    ray_start = None
    try:
        if "ray" in ways:
            import ray

            started = time.perf_counter()
            ray.init(address="local", include_dashboard=False, log_to_driver=False)
            ray_start = round(time.perf_counter() - started, 2)
            harness.log(f"ray.init: {ray_start} s")
        for mode, (count, size, settings) in modes.items():
            results["modes"][mode] = run_mode(mode, count, size, settings, ways, work / mode)
    finally:
        if ray_start is not None:
            import ray

            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    results["ray_init_seconds"] = ray_start
    harness.log(f"wrote {harness.write_results(args.out, results)}")


def run_mode(mode: str, count: int, size: int, settings: dict, ways: list[str], work: Path) -> dict:
    folder = photos(work / "photos", count, size)
    row: dict = {"jobs": count, "size": size}
    seq_per_job = None
    for way in ways:
        harness.wait_idle(max_wait=60)
        out = work / f"out_{way}"
        if way == "sequential":
            wall, slots = sequential(mode, folder, out, settings), 1
            seq_per_job = wall / count
        else:
            wall, slots = batched(mode, folder, out, settings, "auto" if way == "ray" else None)
        entry = {"wall_s": round(wall, 2), "jobs_per_s": round(count / wall, 3), "s_per_job": round(wall / count, 3),
                 "slots": slots, "other_load_cores": harness.other_load_cores(0.5)}
        if seq_per_job is not None:
            entry["overhead_per_job_s"] = round(wall * slots / count - seq_per_job, 3)
        row[way] = entry
        harness.log(f"{mode} x{count} at {size} px, {way}: {entry}")
    return row


if __name__ == "__main__":
    main()
