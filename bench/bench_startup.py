"""CLI start-up time: how long ``dreamstyle`` takes for commands that do no real work.

In one run, alternating (the order rotates every round), --runs times each: ``python -c pass``,
``python -m dreamstyle --help``, ``models``, ``--version`` and ``layers``, each a fresh subprocess
with PYTHONPATH set to this tree's src/. Reports the median wall time of each, its difference to
``python -c pass`` (target: at most 0.3 s more for --help and models), and which heavy modules
(torch above all) each command imports, checked in a separate child that runs the command in-process.

Then runs a tiny stylize (64 px, 2 steps) under ``python -X importtime`` and lists the 15 modules with
the largest cumulative import time.

    python bench/bench_startup.py [--runs 10] [--out bench/results_startup.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

import harness
from harness import EXAMPLES, OTHER_LOAD_WARN, REPO, log

COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "--help": ["-m", "dreamstyle", "--help"],
    "models": ["-m", "dreamstyle", "models"],
    "--version": ["-m", "dreamstyle", "--version"],
    "layers": ["-m", "dreamstyle", "layers"],
}
REFERENCE = "python -c pass"
TARGET_S = 0.3  # at most this much slower than `python -c pass`
TARGETED = ("--help", "models")
HEAVY = ("torch", "torchvision", "numpy", "PIL", "tqdm", "av")
MARKER = "BENCH_STARTUP_IMPORTED "
# Runs the command in-process the way `python -m dreamstyle ARGS` does (dreamstyle/__main__.py, wherever
# the CLI's main() lives), then reports which heavy modules got imported (on stderr).
IMPORT_CHECK = f"""
import json, runpy, sys
sys.argv = ["dreamstyle", *sys.argv[1:]]
try:
    runpy.run_module("dreamstyle", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
sys.stdout.flush()
print({MARKER!r} + json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)
"""
IMPORTTIME_LINE = re.compile(r"^import time:\s*(\d+)\s*\|\s*(\d+)\s*\|( *)(\S.*?)\s*$")


def imported_modules(args: list[str], env: dict) -> list[str] | None:
    """The HEAVY modules that ``dreamstyle ARGS`` imports, or None if the check failed."""
    r = harness.timed_subprocess([sys.executable, "-c", IMPORT_CHECK, *args], env=env, capture=True)
    for line in r["stderr"].splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    return None


def importtime(env: dict, top: int, warnings: list[str]) -> dict:
    """``python -X importtime`` of a tiny stylize: the ``top`` modules by cumulative import time."""
    with tempfile.TemporaryDirectory(prefix="dreamstyle-startup-") as tmp:
        cmd = ["-X", "importtime", "-m", "dreamstyle", "stylize", str(EXAMPLES / "astronaut.jpg"),
               str(EXAMPLES / "starry_night.jpg"), "-o", str(Path(tmp) / "out.png"), "--size", "64",
               "--iterations", "2", "--quiet"]
        r = harness.timed_subprocess([sys.executable, *cmd], env=env, capture=True)
    modules, other = [], []
    for line in r["stderr"].splitlines():
        m = IMPORTTIME_LINE.match(line)
        if m:
            modules.append({"module": m.group(4), "self_ms": round(int(m.group(1)) / 1000, 1),
                            "cumulative_ms": round(int(m.group(2)) / 1000, 1), "depth": (len(m.group(3)) - 1) // 2})
        elif not line.startswith("import time:"):
            other.append(line)
    if r["rc"] != 0:
        warnings.append(f"the importtime stylize failed (exit {r['rc']}): " + " | ".join(other[-5:]))
    by_name = {m["module"]: m["cumulative_ms"] for m in modules}
    return {"command": ["python", *cmd[:-6], "TMP.png", *cmd[-5:]], "rc": r["rc"], "wall_s": r["wall_s"],
            "modules_imported": len(modules), "total_import_s": round(sum(m["self_ms"] for m in modules) / 1000, 3),
            "cumulative_ms": {name: by_name.get(name) for name in ("dreamstyle", "torch", "torchvision", "numpy",
                                                                     "PIL")},
            "top": sorted(modules, key=lambda m: -m["cumulative_ms"])[:top]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="timed runs of each command (10)")
    ap.add_argument("--top", type=int, default=15, help="modules to list by cumulative import time (15)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results_startup.json"), help="JSON results file")
    ap.add_argument("--wait-idle", type=float, default=60.0, metavar="S",
                    help="first wait up to S seconds for other processes to go quiet (60; 0: don't)")
    ap.add_argument("--quiet-seconds", type=int, default=3, metavar="N", help="... for N seconds in a row (3)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    env = harness.src_env()
    warnings: list[str] = []
    names = list(COMMANDS)
    log(f"dreamstyle start-up benchmark: {args.runs} rounds of {', '.join(names)}  (PYTHONPATH={env['PYTHONPATH']})")

    for name in names:  # untimed warm-up: file cache, .pyc files
        harness.timed_subprocess([sys.executable, *COMMANDS[name]], env=env)
    idle = harness.wait_idle(args.wait_idle, args.quiet_seconds)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for i in range(args.runs):
        for name in names[i % len(names):] + names[: i % len(names)]:
            runs[name].append(harness.timed_subprocess([sys.executable, *COMMANDS[name]], env=env))
    reference = statistics.median(r["wall_s"] for r in runs[REFERENCE])

    commands = {}
    for name in names:
        walls = [r["wall_s"] for r in runs[name]]
        median = statistics.median(walls)
        row = {"argv": ["python", *COMMANDS[name]], "median_s": round(median, 3), "min_s": round(min(walls), 3),
               "walls_s": walls, "rc": sorted({r["rc"] for r in runs[name]}),
               "over_python_s": round(median - reference, 3),
               # over all runs together: one short run's figure is mostly /proc/stat's 10-ms tick rounding
               "other_load_cores": round(sum((r.get("other_load_cores") or 0) * r["wall_s"] for r in runs[name])
                                         / max(sum(walls), 1e-9), 2)}
        if name != REFERENCE:
            row["heavy_modules"] = imported_modules(COMMANDS[name][2:], env)
            row["torch_imported"] = None if row["heavy_modules"] is None else "torch" in row["heavy_modules"]
        if name in TARGETED:
            row["meets_target"] = row["over_python_s"] <= TARGET_S
        if row["rc"] != [0]:
            warnings.append(f"{name} exited with {row['rc']}")
        if row["other_load_cores"] >= OTHER_LOAD_WARN:
            warnings.append(f"{name}: other processes kept {row['other_load_cores']} cores busy on average "
                            "during its runs; the times are suspect")
        commands[name] = row

    log(f"\n{'command':<16}  {'median s':>8}  {'min s':>6}  {'vs -c pass':>10}  {'torch':>5}  target")
    for name, row in commands.items():
        torch = {None: "-", True: "yes", False: "no"}[row.get("torch_imported")]
        target = ("" if "meets_target" not in row else
                  f"<= +{TARGET_S} s: {'met' if row['meets_target'] else 'NOT met'}")
        log(f"{name:<16}  {row['median_s']:>8.3f}  {row['min_s']:>6.3f}  {row['over_python_s']:>+10.3f}  "
            f"{torch:>5}  {target}")

    log("\n[importtime] python -X importtime -m dreamstyle stylize astronaut.jpg starry_night.jpg --size 64 "
        "--iterations 2")
    imports = importtime(env, args.top, warnings)
    log(f"{imports['modules_imported']} modules, {imports['total_import_s']:.2f} s importing "
        f"(run: {imports['wall_s']:.1f} s wall, exit {imports['rc']})")
    width = max([len(m["module"]) for m in imports["top"]] + [6])
    log(f"{'module':<{width}}  {'cumulative ms':>13}  {'self ms':>8}")
    for m in imports["top"]:
        log(f"{m['module']:<{width}}  {m['cumulative_ms']:>13.1f}  {m['self_ms']:>8.1f}")
    for w in warnings:
        log("WARNING: " + w)

    result = {
        "benchmark": "CLI start-up: wall time of commands that do no real work, and import time of a tiny stylize",
        "runs": args.runs, "python": sys.executable, "pythonpath": env["PYTHONPATH"],
        "other_load_cores_before": idle, "reference": REFERENCE, "reference_median_s": round(reference, 3),
        "target": {"max_over_python_s": TARGET_S, "commands": list(TARGETED),
                   "met": all(commands[n]["meets_target"] for n in TARGETED)},
        "commands": commands, "importtime": imports, "warnings": warnings,
    }
    out = harness.write_results(args.out, result)
    log(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
