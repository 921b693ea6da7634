"""What the benchmarks share: machine facts, other processes' load, git state, timed subprocesses,
atomic JSON results and the image pair.

Importable without torch; ``machine()`` asks a child process for torch's version unless torch is loaded.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
EXAMPLES = REPO / "src" / "dreamstyle" / "examples"
OTHER_LOAD_WARN = 0.25  # cores kept busy by other processes that make a timing suspect
_FLAGS = ("amx_bf16", "amx_tile", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")


def log(msg: str = "") -> None:
    print(msg, flush=True)


def _cpu() -> tuple[str | None, set[str]]:
    """(model name, flags) from /proc/cpuinfo, else lscpu."""
    model, flags = None, set()
    for source in ("/proc/cpuinfo", "lscpu"):
        try:
            lines = (Path(source).read_text() if source.startswith("/") else subprocess.run(
                [source], check=False, capture_output=True, text=True, timeout=10,
                env={**os.environ, "LC_ALL": "C"}).stdout)
        except (OSError, subprocess.SubprocessError):
            continue
        for line in lines.splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "model name" and model is None:
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
        if model and flags:
            break
    return model, flags


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


@functools.cache
def _torch_version() -> str | None:
    """torch.__version__, from the loaded module, else imported in a child (this process stays light),
    else the installed metadata (which may lack the local part, e.g. +cu130)."""
    if "torch" in sys.modules:
        return getattr(sys.modules["torch"], "__version__", None)
    try:
        r = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], check=False,
                           capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        r = None
    if r is not None and r.returncode == 0 and r.stdout.strip():
        return r.stdout.split()[-1]
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return None


def machine() -> dict:
    model, flags = _cpu()
    facts = {"cpu": model or platform.processor() or platform.machine(),
             "amx": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags, "avx512f": "avx512f" in flags,
             "cpu_flags": sorted(f for f in flags if f in _FLAGS),
             "cores": os.cpu_count(), "ram_gib": _ram_gib(), "python": platform.python_version(),
             "torch": _torch_version(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
             "platform": platform.platform(), "loadavg": loadavg(),
             "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    if "torch" in sys.modules:  # only when the caller has loaded it anyway
        facts["torch_threads"] = sys.modules["torch"].get_num_threads()
    return facts


def git(*args: str, cwd: Path = REPO) -> str | None:
    """``git ARGS`` output without the trailing newline (None on failure)."""
    try:
        r = subprocess.run(["git", "--no-optional-locks", *args], check=False, cwd=cwd, capture_output=True,
                           text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.rstrip("\n") if r.returncode == 0 else None  # keep the leading space of ' M path'


def git_state(cwd: Path = REPO) -> dict:
    """Commit, subject, and the uncommitted changes (the benchmarks' own bench/results* ignored)."""
    status = git("status", "--porcelain", cwd=cwd) or ""
    modified = [line[3:] for line in status.splitlines() if line.strip()]
    modified = [p for p in modified if not p.split(" -> ")[-1].strip('"').startswith("bench/results")]
    return {"commit": git("rev-parse", "HEAD", cwd=cwd), "subject": git("log", "-1", "--format=%s", cwd=cwd),
            "dirty": bool(modified), "modified": modified}


def _system_cpu() -> tuple[float, float] | None:
    """(busy, steal) CPU seconds summed over all CPUs since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    except (OSError, ValueError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, (fields[7] if len(fields) > 7 else 0) / tick


def other_load_cores(seconds: float = 1.0) -> float | None:
    """How many cores processes other than this one (and its children) kept busy over ``seconds``."""
    a, own_a = _system_cpu(), os.times()
    time.sleep(seconds)
    b, own_b = _system_cpu(), os.times()
    if a is None or b is None:
        return None
    own = sum(own_b[:4]) - sum(own_a[:4])  # user, system, children's user and system
    return round(max(0.0, (b[0] - a[0] - own) / seconds), 2)


def wait_idle(max_wait: float = 120.0, quiet_seconds: int = 5) -> float | None:
    """Wait until other processes keep under OTHER_LOAD_WARN cores busy for ``quiet_seconds`` seconds
    in a row, at most ``max_wait`` seconds (0: don't wait). Returns the last sample (cores), which is
    >= OTHER_LOAD_WARN if the machine stayed busy; None where /proc/stat cannot be read."""
    if max_wait <= 0:
        return other_load_cores(0.5)
    deadline, quiet, announced = time.monotonic() + max_wait, 0, False
    while True:
        load = other_load_cores(1.0)
        if load is None:
            return None
        quiet = quiet + 1 if load < OTHER_LOAD_WARN else 0
        if quiet >= max(1, quiet_seconds):
            return load
        if time.monotonic() >= deadline:
            log(f"  machine still busy ({load:.2f} cores used by other processes after {max_wait:.0f} s); "
                "timing anyway")
            return load
        if not announced and load >= OTHER_LOAD_WARN:
            log(f"  waiting for other processes to go quiet ({load:.2f} cores busy; up to {max_wait:.0f} s)...")
            announced = True


def timed_subprocess(argv, env: dict | None = None, cwd: Path | str | None = None, stdout: Path | None = None,
                     stderr: Path | None = None, capture: bool = False) -> dict:
    """Run ``argv`` (from the repo root unless ``cwd``) and time it from launch to exit.

    ``env``: variables set on top of os.environ (None as a value removes one). ``stdout``/``stderr``:
    files to write them to (else discarded); ``capture``: also return them as text. Returns rc (negative:
    killed by that signal), wall_s, cpu_s and max_rss_mib of the child (from wait4), and
    other_load_cores / steal_cores: cores other processes kept busy (or the hypervisor stole) meanwhile.
    Linux counts the parent's RSS at launch into the child's peak: keep torch out of the parent.
    """
    full_env = None if env is None else {k: str(v) for k, v in {**os.environ, **env}.items() if v is not None}
    with ExitStack() as stack:
        out, err = (stack.enter_context(open(f, "w+b")) if f else stack.enter_context(tempfile.TemporaryFile())
                    if capture else subprocess.DEVNULL for f in (stdout, stderr))
        sys_a, self_a = _system_cpu(), os.times()
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(a) for a in argv], cwd=cwd or REPO, env=full_env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        sys_b, self_b = _system_cpu(), os.times()
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        result = {"rc": proc.returncode, "wall_s": round(wall, 3), "cpu_s": round(cpu, 2),
                  "max_rss_mib": round(usage.ru_maxrss / 1024, 1)}  # Linux: KiB
        if sys_a and sys_b and wall > 0:
            own = cpu + (self_b.user - self_a.user) + (self_b.system - self_a.system)
            result["other_load_cores"] = round(max(0.0, (sys_b[0] - sys_a[0] - own) / wall), 2)
            result["steal_cores"] = round((sys_b[1] - sys_a[1]) / wall, 2)
        if capture:
            for name, f in (("stdout", out), ("stderr", err)):
                f.seek(0)
                result[name] = f.read().decode(errors="replace")
    return result


def src_env(tree: Path = REPO) -> dict:
    """env for timed_subprocess: PYTHONPATH with ``tree``/src first, so ``python -m dreamstyle`` runs that tree."""
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(tree / "src"), os.environ.get("PYTHONPATH")) if p)}


def write_results(path: Path | str, payload: dict, indent: int = 1) -> Path:
    """Write ``payload`` as JSON, atomically (temp file + os.replace), with machine() merged under
    "machine" (the payload's own keys win) and git_state() as "git" unless the payload has one."""
    data = dict(payload)
    data["machine"] = {**machine(), **(payload.get("machine") or {})}
    data.setdefault("git", git_state())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=indent)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def pair() -> tuple[Path, Path]:
    """shared_pair()'s content and style, with its note (if any) logged for the reader of the run."""
    content, style, note = shared_pair()
    if note:
        log("NOTE: " + note)
    return content, style


def shared_pair() -> tuple[Path, Path, str | None]:
    """(content, style, note): the shared content_tubingen.jpg + style_starry_night.jpg, note None; else
    the bundled astronaut.jpg + starry_night.jpg and a note saying so."""
    content, style = SHARED_IMAGES / "content_tubingen.jpg", SHARED_IMAGES / "style_starry_night.jpg"
    if content.is_file() and style.is_file():
        return content, style, None
    c, s = EXAMPLES / "astronaut.jpg", EXAMPLES / "starry_night.jpg"
    return c, s, (f"{SHARED_IMAGES} has no {content.name} + {style.name}: using the bundled examples "
                  f"{c.name} + {s.name}; numbers are not comparable with shared-pair runs")
