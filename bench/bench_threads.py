"""The default stylize on an idle and on a busy machine, in one run (issue 6: degrade gracefully).

Times ``python -m dreamstyle stylize CONTENT STYLE -o OUT`` (the shared 512-px pair) as a subprocess in
four conditions, alternating over --runs rounds:

* idle:            the default (the thread governor, both cores)
* idle, 1 thread:  OMP_NUM_THREADS=1 (the one-thread time the busy case is measured against)
* busy:            the default, beside one single-threaded busy loop (a stand-in for a browser tab)
* busy, fixed:     DREAMSTYLE_THREADS=fixed (2 threads whatever happens, as before the governor),
                   beside the same loop; once only (--skip-fixed to leave it out: it is slow)

Target: busy <= 1.2 x (idle, 1 thread), while idle still uses both cores (idle < idle, 1 thread).

    python bench/bench_threads.py [--runs 2] [--skip-fixed] [--out bench/results_threads.json]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import harness
from harness import REPO, log

TARGET = 1.2


def stylize(content: Path, style: Path, out: Path, env: dict) -> dict:
    argv = [sys.executable, "-m", "dreamstyle", "stylize", content, style, "-o", out, "--quiet"]
    result = harness.timed_subprocess(argv, env={**harness.src_env(REPO), **env})
    if result["rc"] != 0:
        sys.exit(f"bench_threads: the stylize run failed with exit code {result['rc']}")
    return result


def busy_loop() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--skip-fixed", action="store_true", help="leave out the slow fixed-2-threads busy run")
    ap.add_argument("--out", default=str(REPO / "bench" / "results_threads.json"))
    args = ap.parse_args()
    content, style, note = harness.shared_pair()
    if note:
        log(note)
    harness.wait_idle(120, 5)
    conditions = {"idle": ({}, False), "idle, 1 thread": ({"OMP_NUM_THREADS": "1"}, False),
                  "busy": ({}, True)}
    times: dict[str, list[float]] = {name: [] for name in conditions}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        for round_ in range(args.runs):
            for name, (env, busy) in conditions.items():
                loop = busy_loop() if busy else None
                try:
                    result = stylize(content, style, out, env)
                finally:
                    if loop is not None:
                        loop.kill()
                        loop.wait()
                times[name].append(result["wall_s"])
                log(f"  round {round_ + 1} {name:<16} {result['wall_s']:7.2f} s  "
                    f"(other load {result.get('other_load_cores', '?')} cores)")
        if not args.skip_fixed:
            loop = busy_loop()
            try:
                result = stylize(content, style, out, {"DREAMSTYLE_THREADS": "fixed"})
            finally:
                loop.kill()
                loop.wait()
            times["busy, fixed 2 threads"] = [result["wall_s"]]
            log(f"  once     busy, fixed 2 threads {result['wall_s']:7.2f} s")
    medians = {name: statistics.median(v) for name, v in times.items()}
    ratio = medians["busy"] / medians["idle, 1 thread"]
    payload = {"benchmark": "default stylize, idle and beside one busy single-threaded process",
               "pair": [str(content), str(style)], "note": note, "runs": args.runs,
               "wall_s": times, "median_s": medians,
               "busy_over_one_thread": round(ratio, 3), "target": TARGET, "met": ratio <= TARGET,
               "idle_uses_both_cores": medians["idle"] < medians["idle, 1 thread"]}
    log("\ncondition               median s")
    for name, value in medians.items():
        log(f"{name:<22} {value:8.2f}")
    log(f"\nbusy / (idle, 1 thread) = {ratio:.2f} (target <= {TARGET}: {'met' if ratio <= TARGET else 'missed'})")
    harness.write_results(args.out, payload)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
