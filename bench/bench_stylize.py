"""Benchmark: default ``dreamstyle stylize`` against a naive Gatys/VGG-19/L-BFGS baseline, end to end.

    python bench/bench_stylize.py [--quick] [--out bench/results.json]
    python bench/bench_stylize.py --compare HEAD~1 [--runs 3] [--out bench/results_compare.json]

Both are timed the same way: as a subprocess, wall time from launching the command until it has
exited with the output image written (Python start, imports, model set-up and saving included).

* dreamstyle: ``dreamstyle stylize CONTENT STYLE -o OUT`` with no other options, i.e. whatever the
  package's defaults are at the time; they are read back afterwards from the output PNG with
  ``dreamstyle --show-params OUT`` and recorded. 3 runs (1 with --quick); median and min.
* baseline: ``bench/naive_gatys.py`` (plain torch/torchvision, see its docstring), VGG-19 with
  random weights (pretrained ones cannot be downloaded here; the timing is the same), fp32, one
  512 px scale, L-BFGS 300 iterations. One run. With --quick it runs 20 iterations and the
  optimization time is scaled up linearly to 300 (marked as extrapolated).

``--compare REV`` instead times the working tree's default stylize against REV's (checked out into a
temporary git worktree, removed afterwards): ``python -m dreamstyle stylize CONTENT STYLE -o OUT``
with PYTHONPATH set to each tree's src/, alternating, --runs times each; medians and the ratio new/old.
No baseline in that mode.

The images are the shared pair ../shared/images/content_tubingen.jpg and style_starry_night.jpg
(relative to the repository root's parent), or the package's bundled examples if ../shared is absent.

The machine may be shared: before each timed run the script waits (up to --wait-idle seconds) for
other processes to go quiet, and it records how many cores other processes kept busy during each
run ("other load"). A run slowed by other processes (other load >= 0.25 cores) is kept in the JSON
but repeated (--retries, --baseline-retries); if no quiet run can be had, the least-loaded one is
used and the output says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import harness
from harness import OTHER_LOAD_WARN, REPO, log

BENCH = REPO / "bench"
BASELINE_ITERATIONS = 300
QUICK_BASELINE_ITERATIONS = 20
BASELINE_SIZE = 512
# Keys of the embedded parameters that describe this run rather than the defaults.
RUN_SPECIFIC = {"content", "styles", "seconds", "final_loss", "interrupted_at", "command", "dreamstyle"}


def wait_idle(args, warnings: list[str], what: str) -> float | None:
    load = harness.wait_idle(args.wait_idle, args.quiet_seconds)
    if load is not None and load >= OTHER_LOAD_WARN and args.wait_idle > 0:
        warnings.append(f"{what}: the machine was still busy ({load:.2f} cores used by other processes) "
                        f"after waiting {args.wait_idle:.0f} s; timed anyway")
    return load


def collect(label: str, run_once, want: int, max_attempts: int, args, warnings: list[str]) -> list[dict]:
    """Run ``run_once(attempt)`` until ``want`` runs were clean (other processes kept under
    OTHER_LOAD_WARN cores busy), at most ``max_attempts`` times. Returns every attempt, each marked
    ``clean`` and ``used``; if too few were clean, the least-loaded attempts are used and a warning says so."""
    attempts: list[dict] = []
    while sum(a["clean"] for a in attempts) < want and len(attempts) < max_attempts:
        n = len(attempts) + 1
        idle = wait_idle(args, warnings, f"{label} attempt {n}")
        r = run_once(n)
        r["attempt"] = n
        r["busy_cores_before"] = idle
        r["clean"] = not r.get("failed") and (r.get("other_load_cores") or 0) < OTHER_LOAD_WARN
        attempts.append(r)
        if not r["clean"] and sum(a["clean"] for a in attempts) < want:
            why = r.get("failed") or f"other processes kept {r['other_load_cores']} cores busy during it"
            log(f"  (attempt {n}: {why}: discarded, " + ("retrying)" if len(attempts) < max_attempts
                                                         else "no attempts left)"))
    clean = [a for a in attempts if a["clean"]]
    used = clean[:want]
    if not any(not a.get("failed") for a in attempts):
        sys.exit(f"bench_stylize: every {label} attempt was killed from outside; no result")
    if len(used) < want:
        rest = sorted((a for a in attempts if not a["clean"] and not a.get("failed")),
                      key=lambda a: a.get("other_load_cores") or 0)
        used += rest[: want - len(used)]
        warnings.append(f"{label}: only {len(clean)} of {len(attempts)} attempts ran on a quiet machine; "
                        f"the result includes {len(used) - len(clean)} run(s) slowed by other processes "
                        f"(other load {', '.join(str(a.get('other_load_cores')) for a in used if not a['clean'])} "
                        f"cores of {os.cpu_count()}), so it overstates the time")
    for a in attempts:
        a["used"] = any(a is u for u in used)
    return attempts


def source_hash() -> str | None:
    """A short hash of the installed dreamstyle sources, to see whether the code changed between runs."""
    try:
        import hashlib
        import importlib.util

        spec = importlib.util.find_spec("dreamstyle")
        root = Path(spec.origin).parent
        h = hashlib.sha256()
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
        return h.hexdigest()[:12]
    except (ImportError, AttributeError, TypeError, ValueError, OSError):
        return None


# --------------------------------------------------------------------------- running things

def run_attempt(label: str, cmd: list[str], work: Path, stem: str, n: int, output: Path,
                env: dict | None = None) -> dict:
    """One timed attempt that must write ``output``. A run killed from outside (by a signal) comes back
    marked ``failed`` (to be retried); any other failure ends the benchmark."""
    output.unlink(missing_ok=True)
    r = harness.timed_subprocess(cmd, env=env, stdout=work / f"{stem}.stdout", stderr=work / f"{stem}.stderr")
    if r["rc"] < 0:
        r["failed"] = f"killed by signal {-r['rc']} from outside after {r['wall_s']:.0f} s"
        log(f"  attempt {n}: {r['failed']}")
        return r
    if r["rc"] != 0 or not output.is_file():
        log(f"  {label} attempt {n} FAILED (exit {r['rc']}); stderr tail:\n{tail(work / f'{stem}.stderr')}")
        sys.exit(1)
    return r


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").replace("\r", "\n")
    except OSError:
        return ""
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def dreamstyle_cmd() -> list[str]:
    exe = shutil.which("dreamstyle")
    return [exe] if exe else [sys.executable, "-m", "dreamstyle"]


def image_size(path: str) -> list[int] | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return list(im.size)
    except (ImportError, OSError, ValueError):
        return None


def show_params(path: Path, cmd: list[str] | None = None, env: dict | None = None) -> dict | None:
    full_env = None if env is None else {**os.environ, **env}
    r = subprocess.run([*(cmd or dreamstyle_cmd()), "--show-params", str(path)], check=False, cwd=REPO,
                       capture_output=True, text=True, env=full_env)
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def settings_of(params: dict | None) -> dict | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if k not in RUN_SPECIFIC}


def child_json(code: str, *args: str) -> dict | list | None:
    """The JSON that ``python -c CODE ARGS`` prints last, or None. Benchmarks use children for anything
    that imports torch: this process stays light, since a child's peak RSS counts the parent's at launch."""
    r = subprocess.run([sys.executable, "-c", code, *args], check=False, cwd=REPO, capture_output=True, text=True)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def torch_facts() -> dict:
    """torch's and torchvision's versions, threads and CUDA, from a child (which also warms the file cache)."""
    facts = child_json("import json, PIL, torch, torchvision; print(json.dumps({'torch': torch.__version__, "
                       "'torchvision': torchvision.__version__, 'torch_threads': torch.get_num_threads(), "
                       "'cuda': torch.cuda.is_available()}))")
    if not isinstance(facts, dict):
        sys.exit(f"bench_stylize: cannot import torch and torchvision with {sys.executable}")
    return facts


def pyramid_schedule(settings: dict | None) -> list[list[int]] | None:
    """The levels and steps the recorded settings imply, computed by the installed package's own helpers."""
    if not settings or not settings.get("pyramid"):
        return None
    code = ("import json, sys; from dreamstyle.optimize import pyramid_sizes, split_iterations; "
            "s = pyramid_sizes(int(sys.argv[1])); "
            "print(json.dumps([[a, n] for a, n in zip(s, split_iterations(int(sys.argv[2]), s))]))")
    return child_json(code, str(settings.get("size")), str(settings.get("iterations")))


# --------------------------------------------------------------------------- --compare REV

def check_tree(tree: Path, env: dict) -> None:
    """Refuse to time a tree whose ``dreamstyle`` does not resolve to its own src/ (found without importing)."""
    code = "import importlib.util as u; s = u.find_spec('dreamstyle'); print(s.origin if s else '')"
    r = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, env={**os.environ, **env},
                       capture_output=True, text=True)
    origin = r.stdout.strip()
    if not origin or not Path(origin).resolve().is_relative_to((tree / "src").resolve()):
        sys.exit(f"bench_stylize: with PYTHONPATH={env['PYTHONPATH']} dreamstyle resolves to {origin or 'nothing'}, "
                 f"not to {tree / 'src'}; cannot compare")
    if not (tree / "src" / "dreamstyle" / "__main__.py").is_file():
        sys.exit(f"bench_stylize: {tree} has no src/dreamstyle/__main__.py; `python -m dreamstyle` cannot run it")


def compare(args, runs: int, work: Path, images: dict, warnings: list[str]) -> dict:
    """Time this tree's default stylize against REV's, alternating; the worktree is removed afterwards."""
    commit = harness.git("rev-parse", "--verify", f"{args.compare}^{{commit}}")
    if not commit:
        sys.exit(f"bench_stylize: --compare {args.compare}: not a commit in {REPO}")
    holder = Path(tempfile.mkdtemp(prefix="dreamstyle-compare-"))
    old_tree = holder / "tree"
    add = subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), commit], check=False,
                         cwd=REPO, capture_output=True, text=True)
    if add.returncode != 0:
        shutil.rmtree(holder, ignore_errors=True)
        sys.exit(f"bench_stylize: git worktree add failed: {add.stderr.strip()}")
    try:
        return compare_trees(args, runs, work, images, warnings, commit, old_tree)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], check=False, cwd=REPO,
                       capture_output=True)
        shutil.rmtree(holder, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], check=False, cwd=REPO, capture_output=True)


def compare_trees(args, runs: int, work: Path, images: dict, warnings: list[str], commit: str,
                  old_tree: Path) -> dict:
    trees = {"new": REPO, "old": old_tree}
    envs = {side: harness.src_env(tree) for side, tree in trees.items()}
    for side, tree in trees.items():
        check_tree(tree, envs[side])
        # Untimed: compile both trees' sources, so that neither first run pays for writing .pyc files.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "src" / "dreamstyle")], cwd=REPO,
                       check=False, stdout=subprocess.DEVNULL)
    subject = harness.git("log", "-1", "--format=%s", commit)
    log(f"\n[compare] working tree vs {args.compare} ({commit[:10]} {subject}): "
        f"python -m dreamstyle stylize CONTENT STYLE -o OUT, alternating, x{runs} each")
    py = [sys.executable, "-m", "dreamstyle"]
    settings: dict[str, dict | None] = {"new": None, "old": None}

    def pair_once(n: int) -> dict:
        order = ("new", "old") if n % 2 else ("old", "new")
        pair: dict = {"order": list(order)}
        for i, side in enumerate(order):
            if i:
                wait_idle(args, warnings, f"compare attempt {n} ({side})")
            out_png = work / f"{side}_{n}.png"
            cmd = [*py, "stylize", images["content"], images["style"], "-o", str(out_png)]
            r = run_attempt(side, cmd, work, f"{side}_{n}", n, out_png, env=envs[side])
            pair[side] = r
            if "failed" in r:
                pair["failed"] = r["failed"]
                break
            params = show_params(out_png, py, envs[side])
            r["internal_seconds"] = params.get("seconds") if params else None
            settings[side] = settings_of(params) or settings[side]
            log(f"  attempt {n} {side}: {r['wall_s']:.1f} s wall (in-process {r['internal_seconds']} s), "
                f"{r['max_rss_mib']:.0f} MiB, other load {r.get('other_load_cores')} cores")
        pair["other_load_cores"] = max((pair[s].get("other_load_cores") or 0) for s in order if s in pair)
        return pair

    attempts = collect("compare", pair_once, runs, runs + args.retries, args, warnings)
    used = [a for a in attempts if a["used"]]
    result: dict = {"rev": args.compare, "commit": commit, "subject": subject,
                    "command": ["python", "-m", "dreamstyle", "stylize", "CONTENT", "STYLE", "-o", "OUT.png"],
                    "runs_used": len(used), "attempts": attempts}
    for side, tree in trees.items():
        walls = [a[side]["wall_s"] for a in used]
        result[side] = {"tree": str(tree) if side == "new" else f"git worktree of {commit}",
                        "pythonpath": envs[side]["PYTHONPATH"], "median_s": round(statistics.median(walls), 2),
                        "min_s": round(min(walls), 2), "default_settings": settings[side]}
    result["ratio_new_over_old_median"] = round(result["new"]["median_s"] / result["old"]["median_s"], 3)
    result["ratio_new_over_old_min"] = round(result["new"]["min_s"] / result["old"]["min_s"], 3)
    if settings["new"] != settings["old"]:
        diff = sorted(k for k in set(settings["new"] or {}) | set(settings["old"] or {})
                      if (settings["new"] or {}).get(k) != (settings["old"] or {}).get(k))
        result["settings_differ"] = diff
        log(f"  note: the default settings differ: {', '.join(diff)}")

    log("\n" + f"{'':<28}  runs  median s     min s")
    for side in ("new", "old"):
        label = "working tree" if side == "new" else f"{args.compare} ({commit[:10]})"
        log(f"{label:<28}  {len(used):>4}  {result[side]['median_s']:>8.2f}  {result[side]['min_s']:>8.2f}")
    log(f"\nratio new/old: {result['ratio_new_over_old_median']:.3f} (median), "
        f"{result['ratio_new_over_old_min']:.3f} (min); below 1 means the working tree is faster")
    return result


# --------------------------------------------------------------------------- the benchmark

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"1 dreamstyle run and a {QUICK_BASELINE_ITERATIONS}-iteration baseline, extrapolated")
    ap.add_argument("--out", help="JSON results file (bench/results.json; bench/results_compare.json with --compare)")
    ap.add_argument("--runs", type=int, help="dreamstyle runs (3; 1 with --quick); with --compare, runs of each")
    ap.add_argument("--compare", metavar="REV",
                    help="time the working tree against git revision REV (e.g. HEAD~1) instead of the baseline")
    ap.add_argument("--wait-idle", type=float, default=120.0, metavar="S",
                    help="before each timed run wait up to S seconds for other processes to go quiet (120; 0: don't)")
    ap.add_argument("--quiet-seconds", type=int, default=5, metavar="N",
                    help="... and count it quiet after N quiet seconds in a row (5)")
    ap.add_argument("--retries", type=int, default=3,
                    help="extra dreamstyle attempts allowed when a run was slowed by other processes (3)")
    ap.add_argument("--baseline-retries", type=int, default=1,
                    help="extra baseline attempts allowed when it was slowed by other processes (1)")
    ap.add_argument("--keep", metavar="DIR",
                    help="keep the output images and logs in DIR (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    base_iters = QUICK_BASELINE_ITERATIONS if args.quick else BASELINE_ITERATIONS
    out_json = Path(args.out or BENCH / ("results_compare.json" if args.compare else "results.json"))
    warnings: list[str] = []

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dreamstyle-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    tfacts = torch_facts()  # untimed, and a warm-up: the first timed run doesn't pay for a cold file cache
    started = dt.datetime.now().astimezone()
    content, style, note = harness.shared_pair()
    images = {"source": "shared" if note is None else "bundled examples", "content": str(content),
              "style": str(style), "content_px": image_size(str(content)), "style_px": image_size(str(style))}
    if note:
        warnings.append(note)
        log("NOTE: " + note)
    machine = {**harness.machine(), "torch_threads": tfacts["torch_threads"], "cuda": tfacts["cuda"],
               "loadavg_at_start": harness.loadavg()}
    version = subprocess.run([*dreamstyle_cmd(), "--version"], check=False, cwd=REPO, capture_output=True,
                             text=True)
    software = {"python": platform.python_version(), "torch": tfacts["torch"],
                "torchvision": tfacts["torchvision"], "dreamstyle": version.stdout.strip() or None,
                "git": harness.git_state()}
    log(f"dreamstyle stylize benchmark  {started:%Y-%m-%d %H:%M %Z}  quick={args.quick}")
    log(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, "
        f"torch {tfacts['torch']} ({machine['torch_threads']} threads), CUDA {'yes' if machine['cuda'] else 'no'}")
    log(f"images ({images['source']}): {images['content']} {images['content_px']}, "
        f"{images['style']} {images['style_px']}")
    if software["git"]["modified"]:
        log(f"note: the work tree has uncommitted changes: {', '.join(software['git']['modified'])}")

    if args.compare:
        result = {
            "benchmark": f"dreamstyle stylize, working tree vs {args.compare}, end-to-end wall time "
                         "(subprocess, alternating)",
            "date": started.isoformat(timespec="seconds"), "quick": args.quick, "machine": machine,
            "software": software, "images": images,
            "compare": compare(args, runs, work, images, warnings), "warnings": warnings,
            "outputs_kept_in": str(work) if args.keep else None,
        }
        return finish(result, out_json, work, args, warnings)

    # --- dreamstyle, defaults
    ds_cmd_base = dreamstyle_cmd()
    log(f"\n[dreamstyle] {' '.join(Path(ds_cmd_base[0]).name if i == 0 else a for i, a in enumerate(ds_cmd_base))} "
        f"stylize CONTENT STYLE -o OUT   x{runs}")
    ds_settings: dict[int, dict | None] = {}

    def dreamstyle_once(n: int) -> dict:
        out_png = work / f"dreamstyle_{n}.png"
        cmd = [*ds_cmd_base, "stylize", images["content"], images["style"], "-o", str(out_png)]
        code = source_hash()
        r = run_attempt("dreamstyle", cmd, work, f"dreamstyle_{n}", n, out_png)
        if "failed" in r:
            return r
        params = show_params(out_png)
        r["internal_seconds"] = params.get("seconds") if params else None
        r["final_loss"] = params.get("final_loss") if params else None
        r["output_px"] = image_size(str(out_png))
        ds_settings[n] = settings_of(params)
        r["source_hash"] = code if code == source_hash() else f"{code} (changed during the run)"
        log(f"  attempt {n}: {r['wall_s']:.1f} s wall (in-process {r['internal_seconds']} s), "
            f"{r['cpu_s']:.0f} CPU s, {r['max_rss_mib']:.0f} MiB, other load {r.get('other_load_cores')} cores")
        return r

    ds_runs = collect("dreamstyle", dreamstyle_once, runs, runs + args.retries, args, warnings)
    used_runs = [r for r in ds_runs if r["used"]]
    walls = [r["wall_s"] for r in used_runs]
    settings = ds_settings[used_runs[-1]["attempt"]]  # the latest: the code may have grown new parameters
    changed_values, added_keys = set(), set()
    known = [v for v in ds_settings.values() if v is not None]
    for a in known:
        for b in known:
            added_keys |= set(b) - set(a)
            changed_values |= {k for k in set(a) & set(b) if a[k] != b[k]}
    changed = bool(changed_values)
    if changed:
        warnings.append("dreamstyle's default settings changed between attempts "
                        f"({', '.join(sorted(changed_values))}): "
                        "someone edited the defaults during the benchmark; each attempt's settings are in "
                        "dreamstyle.settings_per_attempt")
    elif added_keys:
        log(f"  note: new parameters appeared in the output's settings during the benchmark "
            f"({', '.join(sorted(added_keys))}); the values of the others did not change")
    hashes = {r.get("source_hash") for r in used_runs}
    if len(hashes) > 1:
        warnings.append(f"dreamstyle's source code changed between the timed runs (source hashes "
                        f"{sorted(map(str, hashes))}); the runs may not time the same code")
    if settings is None:
        warnings.append("could not read the embedded parameters with `dreamstyle --show-params`")
    dreamstyle = {
        "command": ["dreamstyle", "stylize", "CONTENT", "STYLE", "-o", "OUT.png"],
        "executable": ds_cmd_base, "runs_used": len(used_runs), "attempts": ds_runs,
        "median_s": round(statistics.median(walls), 2), "min_s": round(min(walls), 2),
        "default_settings": settings, "pyramid_schedule": pyramid_schedule(settings),
        "settings_changed_between_attempts": sorted(changed_values),
        "settings_keys_added_during_benchmark": sorted(added_keys),
    }
    if changed or added_keys:
        dreamstyle["settings_per_attempt"] = {str(k): v for k, v in ds_settings.items()}
    if settings:
        log("  defaults (from --show-params): " + ", ".join(
            f"{k}={settings.get(k)}" for k in ("model", "size", "iterations", "optimizer", "precision", "pyramid")))

    # --- naive baseline
    log(f"\n[baseline] bench/naive_gatys.py: VGG-19 (random weights), fp32, {BASELINE_SIZE} px, "
        f"L-BFGS {base_iters} iterations" + (" (extrapolated to 300)" if base_iters != BASELINE_ITERATIONS else ""))

    def baseline_once(n: int) -> dict:
        base_png = work / f"baseline_{n}.png"
        cmd = [sys.executable, str(BENCH / "naive_gatys.py"), images["content"], images["style"], "-o",
               str(base_png), "--size", str(BASELINE_SIZE), "--iterations", str(base_iters)]
        r = run_attempt("baseline", cmd, work, f"baseline_{n}", n, base_png)
        if "failed" in r:
            return r
        try:
            r["internal"] = json.loads((work / f"baseline_{n}.stdout").read_text().strip().splitlines()[-1])
        except (ValueError, IndexError):
            r["internal"] = {}
        log(f"  attempt {n}: {r['wall_s']:.1f} s wall for {base_iters} iterations, {r['cpu_s']:.0f} CPU s, "
            f"{r['max_rss_mib']:.0f} MiB, other load {r.get('other_load_cores')} cores")
        return r

    base_runs = collect("baseline", baseline_once, 1, 1 + args.baseline_retries, args, warnings)
    r = next(a for a in base_runs if a["used"])
    internal = r["internal"]
    opt_s = internal.get("seconds", {}).get("optimize")
    evals = internal.get("closure_evals") or base_iters
    extrapolated = base_iters != BASELINE_ITERATIONS
    if extrapolated:
        if opt_s is None:
            wall_est = r["wall_s"] * BASELINE_ITERATIONS / base_iters
        else:  # fixed start-up/set-up/save costs once, the optimization scaled linearly
            wall_est = r["wall_s"] - opt_s + opt_s * BASELINE_ITERATIONS / base_iters
    else:
        wall_est = r["wall_s"]
    baseline = {
        "description": "naive Gatys et al.: torchvision VGG-19 features[:30] frozen, ImageNet normalization, style "
                       "relu1_1..relu5_1 (1,6,11,20,29), content relu4_2 (22), Gram/(C*H*W), MSE, content 5, "
                       "style 100, TV 1e-3 (L1), fp32, single scale 512 px, LBFGS(max_iter=N, one step, "
                       "tolerances -1, history 100), init from content",
        "weights": "random (torchvision default init): pretrained VGG-19 weights cannot be downloaded on this "
                   "machine; the timing is unaffected but the output is not a real stylization",
        "command": ["python", "bench/naive_gatys.py", "CONTENT", "STYLE", "-o", "OUT.png", "--size",
                    str(BASELINE_SIZE), "--iterations", str(base_iters)],
        "iterations_run": base_iters, "iterations_reported": BASELINE_ITERATIONS, "extrapolated": extrapolated,
        "attempts": base_runs, "used_attempt": r["attempt"],
        "seconds_per_iteration": round(opt_s / evals, 3) if opt_s else None,
        "wall_s": round(wall_est, 2),
    }
    if opt_s:
        log(f"  baseline: {baseline['seconds_per_iteration']} s/iteration"
            + (f"; {wall_est:.1f} s extrapolated to {BASELINE_ITERATIONS} iterations" if extrapolated else ""))

    ratio = {"baseline_over_dreamstyle_median": round(wall_est / dreamstyle["median_s"], 2),
             "baseline_over_dreamstyle_min": round(wall_est / dreamstyle["min_s"], 2)}

    # --- table
    base_label = (f"naive VGG-19 L-BFGS {BASELINE_ITERATIONS} it, {BASELINE_SIZE} px, fp32"
                  + (" (extrapolated)" if extrapolated else ""))
    ds_label = "dreamstyle stylize (defaults)"
    if settings:
        ds_label += f": {settings.get('model')}, {settings.get('iterations')} it, {settings.get('precision')}" \
                    f"{', pyramid' if settings.get('pyramid') else ''}"
    rows = [(ds_label, str(len(used_runs)), f"{dreamstyle['median_s']:.1f}", f"{dreamstyle['min_s']:.1f}"),
            (base_label, "1", f"{wall_est:.1f}", f"{wall_est:.1f}")]
    w0 = max(len(r0[0]) for r0 in rows)
    log("\n" + f"{'':<{w0}}  runs  median s     min s")
    for label, n, med, mn in rows:
        log(f"{label:<{w0}}  {n:>4}  {med:>8}  {mn:>8}")
    log(f"\nratio baseline/dreamstyle: {ratio['baseline_over_dreamstyle_median']:.2f}x (median), "
        f"{ratio['baseline_over_dreamstyle_min']:.2f}x (min)")
    log("baseline uses random VGG-19 weights (pretrained ones cannot be downloaded here); timing only.")
    if extrapolated:
        log(f"baseline ran {base_iters} iterations; its optimization time was scaled linearly to "
            f"{BASELINE_ITERATIONS} (extrapolated).")

    result = {
        "benchmark": "dreamstyle stylize vs naive Gatys baseline, end-to-end wall time (subprocess)",
        "date": started.isoformat(timespec="seconds"), "quick": args.quick,
        "machine": machine, "software": software, "images": images,
        "dreamstyle": dreamstyle, "baseline": baseline, "ratio": ratio, "warnings": warnings,
        "outputs_kept_in": str(work) if args.keep else None,
    }
    return finish(result, out_json, work, args, warnings)


def finish(result: dict, out_json: Path, work: Path, args, warnings: list[str]) -> int:
    for w in warnings:
        log("WARNING: " + w)
    result["machine"]["loadavg_at_end"] = harness.loadavg()
    harness.write_results(out_json, result, indent=2)
    log(f"\nwrote {out_json}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
