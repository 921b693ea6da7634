"""Benchmark: default ``dreamstyle stylize`` against a naive Gatys/VGG-19/L-BFGS baseline, end to end.

    python bench/bench_stylize.py [--quick] [--out bench/results.json]

Both are timed the same way: as a subprocess, wall time from launching the command until it has
exited with the output image written (Python start, imports, model set-up and saving included).

* dreamstyle: ``dreamstyle stylize CONTENT STYLE -o OUT`` with no other options, i.e. whatever the
  package's defaults are at the time; they are read back afterwards from the output PNG with
  ``dreamstyle --show-params OUT`` and recorded. 3 runs (1 with --quick); median and min.
* baseline: ``bench/naive_gatys.py`` (plain torch/torchvision, see its docstring), VGG-19 with
  random weights (pretrained ones cannot be downloaded here; the timing is the same), fp32, one
  512 px scale, L-BFGS 300 iterations. One run. With --quick it runs 20 iterations and the
  optimization time is scaled up linearly to 300 (marked as extrapolated).

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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SHARED_IMAGES = REPO.parent / "shared" / "images"
CONTENT_NAME = "content_tubingen.jpg"
STYLE_NAME = "style_starry_night.jpg"
BASELINE_ITERATIONS = 300
QUICK_BASELINE_ITERATIONS = 20
BASELINE_SIZE = 512
# Keys of the embedded parameters that describe this run rather than the defaults.
RUN_SPECIFIC = {"content", "styles", "seconds", "final_loss", "interrupted_at", "command", "dreamstyle"}
OTHER_LOAD_WARN = 0.25  # cores kept busy by other processes during a run


def log(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- machine facts

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512_vnni", "avx2"))
                              or f == "avx512f")
    except OSError:
        pass
    return []


def ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return None


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def cpu_jiffies() -> tuple[float, float] | None:
    """(busy, steal) seconds summed over all CPUs since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    steal = fields[7] if len(fields) > 7 else 0
    return (user + nice + system + irq + softirq) / tick, steal / tick


def busy_cores(seconds: float = 1.0) -> float | None:
    """How many cores were busy (all processes) over the next ``seconds``."""
    a = cpu_jiffies()
    time.sleep(seconds)
    b = cpu_jiffies()
    if a is None or b is None:
        return None
    return max(0.0, (b[0] - a[0]) / seconds)


def wait_for_idle(limit: float, quiet_s: int, warnings: list[str], what: str) -> float | None:
    """Wait until other processes use under OTHER_LOAD_WARN cores for ``quiet_s`` seconds in a row,
    at most ``limit`` seconds; returns the last sample (cores busy)."""
    if limit <= 0:
        return busy_cores(0.5)
    deadline = time.monotonic() + limit
    quiet, announced = 0, False
    while True:
        load = busy_cores(1.0)
        if load is None:
            return None
        quiet = quiet + 1 if load < OTHER_LOAD_WARN else 0
        if quiet >= max(1, quiet_s):
            return load
        if time.monotonic() >= deadline:
            warnings.append(f"{what}: the machine was still busy ({load:.2f} cores used by other processes) "
                            f"after waiting {limit:.0f} s; timed anyway")
            log(f"  machine still busy ({load:.2f} cores); timing anyway")
            return load
        if not announced and load >= OTHER_LOAD_WARN:
            log(f"  waiting for other processes to go quiet ({load:.2f} cores busy; up to {limit:.0f} s)...")
            announced = True


def collect(label: str, run_once, want: int, max_attempts: int, args, warnings: list[str]) -> list[dict]:
    """Run ``run_once(attempt)`` until ``want`` runs were clean (other processes kept under
    OTHER_LOAD_WARN cores busy), at most ``max_attempts`` times. Returns every attempt, each marked
    ``clean`` and ``used``; if too few were clean, the least-loaded attempts are used and a warning says so."""
    attempts: list[dict] = []
    while sum(a["clean"] for a in attempts) < want and len(attempts) < max_attempts:
        n = len(attempts) + 1
        idle = wait_for_idle(args.wait_idle, args.quiet_seconds, warnings, f"{label} attempt {n}")
        r = run_once(n)
        r["attempt"] = n
        r["busy_cores_before"] = None if idle is None else round(idle, 2)
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


def git_state() -> dict:
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True,
                               timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.rstrip("\n") if r.returncode == 0 else None  # keep the leading space of ' M path'

    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "HEAD"),
            "modified": [line[3:] for line in status.splitlines() if line.strip()] if status else []}


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
    except Exception:
        return None


# --------------------------------------------------------------------------- running things

def timed(cmd: list[str], stdout: Path, stderr: Path) -> dict:
    """Run ``cmd`` from the repo root; wall time from launch to exit, plus the child's CPU time and peak RSS."""
    before = cpu_jiffies()
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    after = cpu_jiffies()
    cpu = usage.ru_utime + usage.ru_stime
    result = {"rc": proc.returncode, "wall_s": round(wall, 3), "cpu_s": round(cpu, 2),
              "max_rss_mib": round(usage.ru_maxrss / 1024, 1)}
    if before and after:
        result["other_load_cores"] = round(max(0.0, (after[0] - before[0] - cpu) / wall), 2)
        result["steal_cores"] = round((after[1] - before[1]) / wall, 2)
    return result


def killed(r: dict, n: int) -> bool:
    """A run ended by a signal from outside (someone else's kill) is a failed attempt, to be retried."""
    if r["rc"] >= 0:
        return False
    r["failed"] = f"killed by signal {-r['rc']} from outside after {r['wall_s']:.0f} s"
    log(f"  attempt {n}: {r['failed']}")
    return True


def run_attempt(label: str, cmd: list[str], work: Path, stem: str, n: int, output: Path) -> dict:
    """One timed attempt that must write ``output``. A run killed from outside comes back marked
    ``failed`` (to be retried); any other failure ends the benchmark."""
    output.unlink(missing_ok=True)
    r = timed(cmd, work / f"{stem}.stdout", work / f"{stem}.stderr")
    if killed(r, n):
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


def find_images(warnings: list[str]) -> dict:
    content, style = SHARED_IMAGES / CONTENT_NAME, SHARED_IMAGES / STYLE_NAME
    if content.is_file() and style.is_file():
        return {"source": "shared", "content": str(content), "style": str(style)}
    examples = REPO / "src" / "dreamstyle" / "examples"
    try:  # the installed package's copy, wherever it lives
        import importlib.util

        spec = importlib.util.find_spec("dreamstyle")
        if spec and spec.origin:
            examples = Path(spec.origin).parent / "examples"
    except Exception:
        pass
    files = sorted(p for p in examples.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))

    def pick(preferred: list[str], prefix: str) -> Path | None:
        """The first file whose name contains a preferred word, else the first named ``prefix*``."""
        for word in preferred:
            for p in files:
                if word in p.stem:
                    return p
        return next((p for p in files if p.stem.startswith(prefix)), None)

    # The shared pair if bundled under any name; else the closest photo (chelsea: 3:2 landscape, like tubingen).
    c = pick(["tubingen", "chelsea", "astronaut"], "content")
    s = pick(["starry_night", "great_wave", "the_scream"], "style")
    if c is None or s is None:
        sys.exit(f"bench_stylize: {SHARED_IMAGES} is absent and no content/style pair was found in "
                 f"the bundled examples ({examples}); cannot run the benchmark")
    msg = (f"{SHARED_IMAGES} is absent: using the package's bundled examples {c.name} and {s.name} "
           f"instead of the shared {CONTENT_NAME} / {STYLE_NAME}; numbers are not comparable with shared-pair runs")
    warnings.append(msg)
    log("NOTE: " + msg)
    return {"source": "bundled examples", "content": str(c), "style": str(s)}


def image_size(path: str) -> list[int] | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return list(im.size)
    except Exception:
        return None


def show_params(path: Path) -> dict | None:
    r = subprocess.run([*dreamstyle_cmd(), "--show-params", str(path)], cwd=REPO, capture_output=True, text=True)
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


def pyramid_schedule(settings: dict | None) -> list[list[int]] | None:
    """The levels and steps the recorded settings imply, computed by the installed package's own helpers."""
    if not settings or not settings.get("pyramid"):
        return None
    try:
        from dreamstyle.optimize import pyramid_sizes, split_iterations

        sizes = pyramid_sizes(int(settings["size"]))
        return [[s, n] for s, n in zip(sizes, split_iterations(int(settings["iterations"]), sizes))]
    except Exception:
        return None


# --------------------------------------------------------------------------- the benchmark

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"1 dreamstyle run and a {QUICK_BASELINE_ITERATIONS}-iteration baseline, extrapolated")
    ap.add_argument("--out", default=str(BENCH / "results.json"), help="JSON results file (bench/results.json)")
    ap.add_argument("--runs", type=int, help="dreamstyle runs (3; 1 with --quick)")
    ap.add_argument("--wait-idle", type=float, default=120.0, metavar="S",
                    help="before each timed run wait up to S seconds for other processes to go quiet (120; 0: don't)")
    ap.add_argument("--quiet-seconds", type=int, default=5, metavar="N",
                    help="... and count it quiet after N quiet seconds in a row (5)")
    ap.add_argument("--retries", type=int, default=3,
                    help="extra dreamstyle attempts allowed when a run was slowed by other processes (3)")
    ap.add_argument("--baseline-retries", type=int, default=1,
                    help="extra baseline attempts allowed when it was slowed by other processes (1)")
    ap.add_argument("--keep", metavar="DIR", help="keep the output images and logs in DIR (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    base_iters = QUICK_BASELINE_ITERATIONS if args.quick else BASELINE_ITERATIONS
    out_json = Path(args.out)
    warnings: list[str] = []

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dreamstyle-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    import torch
    import torchvision

    started = dt.datetime.now().astimezone()
    images = find_images(warnings)
    images["content_px"], images["style_px"] = image_size(images["content"]), image_size(images["style"])
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "ram_gib": ram_gib(), "cpu_flags": cpu_flags(),
               "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
               "platform": platform.platform(), "loadavg_at_start": loadavg()}
    version = subprocess.run([*dreamstyle_cmd(), "--version"], cwd=REPO, capture_output=True, text=True)
    software = {"python": platform.python_version(), "torch": torch.__version__,
                "torchvision": torchvision.__version__, "dreamstyle": version.stdout.strip() or None,
                "git": git_state()}
    log(f"dreamstyle stylize benchmark  {started:%Y-%m-%d %H:%M %Z}  quick={args.quick}")
    log(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, "
        f"torch {torch.__version__} ({machine['torch_threads']} threads), CUDA {'yes' if machine['cuda'] else 'no'}")
    log(f"images ({images['source']}): {images['content']} {images['content_px']}, "
        f"{images['style']} {images['style_px']}")
    if software["git"]["modified"]:
        log(f"note: the work tree has uncommitted changes: {', '.join(software['git']['modified'])}")

    # Untimed warm-up so that the first timed run doesn't pay for a cold file cache of torch's libraries.
    subprocess.run([sys.executable, "-c", "import torch, torchvision, PIL"], cwd=REPO, check=False)

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
        warnings.append(f"dreamstyle's default settings changed between attempts ({', '.join(sorted(changed_values))}): "
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
    base_label = f"naive VGG-19 L-BFGS {BASELINE_ITERATIONS} it, {BASELINE_SIZE} px, fp32" + (" (extrapolated)" if extrapolated else "")
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
    for w in warnings:
        log("WARNING: " + w)

    result = {
        "benchmark": "dreamstyle stylize vs naive Gatys baseline, end-to-end wall time (subprocess)",
        "date": started.isoformat(timespec="seconds"), "quick": args.quick,
        "machine": {**machine, "loadavg_at_end": loadavg()}, "software": software, "images": images,
        "dreamstyle": dreamstyle, "baseline": baseline, "ratio": ratio, "warnings": warnings,
        "outputs_kept_in": str(work) if args.keep else None,
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    log(f"\nwrote {out_json}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
