"""Where the default stylize's time goes: start-up, network set-up, targets, steps, saving (issue 6).

Runs the default stylize of the shared 512-px pair in a fresh child process (as the command would),
--runs times, and splits its wall time from launch to exit:

* start-up:  launch until ``dreamstyle`` and torch are imported
* set-up:    checks, loading the images, building the network and its extractor (``prepare``)
* targets:   the content and style features at each pyramid level (the time in ``run`` outside steps
             and saving)
* steps:     the optimizer steps (from the run's Step events)
* saving:    writing the PNG
* exit:      the rest (the command skips the interpreter's 0.9 s torch teardown: frontends/cli.run)

    python bench/bench_split.py [--runs 3] [--out bench/results_split.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
from harness import REPO, log

CHILD = r"""
import json, statistics, sys, time
marks = {"imports_start": time.time()}
import dreamstyle, dreamstyle.tasks.stylize as task, dreamstyle.images as images
from dreamstyle.events import Run, Step
from dreamstyle.settings import StylizeSettings, make
from dreamstyle.runtime import defer_dynamo
defer_dynamo()  # as the dreamstyle command does
marks["imports_done"] = time.time()
real_save, saving = task.save_image, []
def timed_save(*args, **kwargs):
    t = time.perf_counter(); out = real_save(*args, **kwargs); saving.append(time.perf_counter() - t); return out
task.save_image = timed_save
steps, last = [], []
def on_event(event):
    if isinstance(event, Step):
        now = time.perf_counter(); steps.append((event.label, now)); last.append(now)
t0 = time.perf_counter()
prepared = task.prepare(sys.argv[1], sys.argv[2], make(StylizeSettings, {}), sys.argv[3])
t1 = time.perf_counter()
run = Run("stylize", 0); run.subscribe(on_event)
task.run(prepared, run)
t2 = time.perf_counter()
# a step's time: from the previous step event (or the end of its level's target computation)
durations, previous_label, previous = [], None, None
levels = {}
for label, at in steps:
    if label == previous_label:
        durations.append(at - previous)
    levels.setdefault(label, []).append(at)
    previous_label, previous = label, at
# the first step of each level has no previous step event: count it at the level's median step time
step_time = sum(durations) + sum(statistics.median([b - a for a, b in zip(v, v[1:])] or [0]) for v in levels.values())
print(json.dumps({"imports_start": marks["imports_start"], "imports_done": marks["imports_done"],
                  "setup": t1 - t0, "run": t2 - t1, "steps": step_time, "saving": sum(saving),
                  "levels": {k: len(v) for k, v in levels.items()}, "end": time.time()}))
import os
sys.stdout.flush()
os._exit(0)  # as the dreamstyle command leaves (frontends/cli.run)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results_split.json"))
    args = ap.parse_args()
    content, style, note = harness.shared_pair()
    if note:
        log(note)
    harness.wait_idle(120, 5)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            env = {**__import__("os").environ, **harness.src_env(REPO)}
            launch = time.time()
            proc = subprocess.run([sys.executable, "-c", CHILD, str(content), str(style), str(Path(tmp) / "o.png")],
                                  capture_output=True, text=True, env=env, cwd=REPO)
            wall = time.time() - launch
            if proc.returncode != 0:
                sys.exit(f"bench_split: the child failed:\n{proc.stderr}")
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            row = {"wall": wall, "start-up": m["imports_done"] - launch, "set-up": m["setup"],
                   "targets": m["run"] - m["steps"] - m["saving"], "steps": m["steps"], "saving": m["saving"],
                   "levels": m["levels"]}
            row["exit"] = wall - row["start-up"] - m["setup"] - m["run"]
            rows.append(row)
            log(f"  run {i + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in row.items() if k != "levels"))
    parts = ["start-up", "set-up", "targets", "steps", "saving", "exit", "wall"]
    medians = {k: round(statistics.median(r[k] for r in rows), 3) for k in parts}
    log("\npart        median s   share")
    for k in parts:
        log(f"{k:<10} {medians[k]:9.2f}   {medians[k] / medians['wall']:6.1%}")
    harness.write_results(args.out, {"benchmark": "time split of the default stylize", "runs": rows,
                                     "median_s": medians, "levels": rows[0]["levels"], "note": note})
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
