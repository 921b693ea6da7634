"""Shared fixtures: tiny test images on disk, and a runner for the ``dreamstyle`` CLI in a subprocess.

Threads: the suite runs torch with one intra-op thread (``DREAMSTYLE_TEST_THREADS``, default 1), in this
process and in every CLI subprocess. On a small shared machine, two processes that each spin up all
cores make tiny 64 px runs 10-50x slower; one thread each keeps the suite fast and its timing stable.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

THREADS = int(os.environ.get("DREAMSTYLE_TEST_THREADS", "1"))
# What --precision auto means on CPU is measured once per machine and network (calibrate.py); the tests
# fix it to fp32 instead (test_core's calibration tests unset this), in this process and CLI subprocesses.
os.environ["DREAMSTYLE_CPU_PRECISION"] = "fp32"
# No test writes to (or reads) the user's cache of fast styles: the CLI's subprocesses inherit this too.
os.environ["DREAMSTYLE_CACHE"] = tempfile.mkdtemp(prefix="dreamstyle-test-cache-")
atexit.register(shutil.rmtree, os.environ["DREAMSTYLE_CACHE"], ignore_errors=True)
torch.set_num_threads(THREADS)

SMALL = 64  # long side of the test images, in pixels


def small(array: np.ndarray, size: int = SMALL) -> Image.Image:
    """An RGB PIL image from a scikit-image array, its long side resized to ``size``."""
    img = Image.fromarray(np.asarray(array)).convert("RGB")
    w, h = img.size
    scale = size / max(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def astronaut(size: int = 160) -> np.ndarray:
    """scikit-image's astronaut, size x size: the video tests pan a camera across it."""
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.LANCZOS))


def stripes(size: int = SMALL) -> Image.Image:
    """A colourful synthetic style: red vertical, green diagonal and blue horizontal stripes."""
    y, x = np.mgrid[0:size, 0:size]
    r = (np.sin(x / 2.0) > 0) * 255
    g = (np.sin((x + y) / 3.0) > 0) * 200
    b = (np.cos(y / 2.5) > 0) * 255
    return Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8))


def ctrl_c_at_step(monkeypatch, n: int) -> None:
    """Every run's ``n``-th step event is followed by a Ctrl-C (KeyboardInterrupt), as a user would press it."""
    from dreamstyle.events import Run

    real = Run.step

    def step(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if self.done == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(Run, "step", step)


@pytest.fixture(scope="session")
def image_files(tmp_path_factory) -> SimpleNamespace:
    """Paths of small PNGs: content (chelsea), astronaut, coffee, style (rocket) and stripes (synthetic)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("images")
    images = {
        "content": small(data.chelsea()),      # 64 x 43
        "astronaut": small(data.astronaut()),  # 64 x 64
        "coffee": small(data.coffee()),        # 64 x 43
        "style": small(data.rocket()),         # 64 x 43
        "stripes": stripes(),                  # 64 x 64
    }
    paths = {}
    for name, img in images.items():
        paths[name] = folder / f"{name}.png"
        img.save(paths[name])
    return SimpleNamespace(**paths)


# --- the CLI in a subprocess ------------------------------------------------------------------
#
# Every ``python -m dreamstyle`` process spends 3-4 s of CPU importing torch and torchvision before it
# does anything, which for ~25 CLI runs would be most of the suite's time budget. So by default the runs go
# through a fork server: one helper process imports dreamstyle once, then forks a fresh child per run that
# executes ``dreamstyle`` as ``__main__`` exactly like ``python -m dreamstyle`` (runpy), with its own
# cwd, environment, stdout and stderr files, and a real exit status. A few tests also run the real
# ``python -m dreamstyle`` (``real=True``) and check that both give the same result; set
# DREAMSTYLE_TEST_CLI=subprocess to run every CLI test that way.

CLI_MODE = os.environ.get("DREAMSTYLE_TEST_CLI", "forkserver" if hasattr(os, "fork") else "subprocess")

FORK_SERVER = r"""
import json, os, runpy, signal, sys, time, traceback
# the slow imports, once; nothing runs on torch before fork()
import dreamstyle.api, dreamstyle.frontends.cli, dreamstyle.tasks.stylize
reply = sys.stdout
for line in sys.stdin:
    req = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: behave like `python -m dreamstyle ARGS` run in req["cwd"]
        code = 1
        try:
            os.chdir(req["cwd"])
            os.environ.clear(); os.environ.update(req["env"])
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
            os.dup2(os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
            sys.argv = ["dreamstyle", *req["args"]]
            try:
                runpy.run_module("dreamstyle", run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exc:  # what the interpreter does with sys.exit(...)
                if exc.code is None:
                    code = 0
                elif isinstance(exc.code, int):
                    code = exc.code
                else:
                    print(exc.code, file=sys.stderr)
            except BaseException:  # an uncaught exception: traceback on stderr, exit status 1
                traceback.print_exc()
        finally:
            try:
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(code & 0xFF)
    deadline, status = time.monotonic() + req["timeout"], None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0); status = None
            break
        time.sleep(0.005)
    rc = os.waitstatus_to_exitcode(status) if status is not None else None
    reply.write(json.dumps({"rc": rc}) + "\n"); reply.flush()
"""


def cli_env(torch_home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), TORCH_HOME=str(torch_home))
    env.update(extra)
    return env


class CLI:
    """Runs ``dreamstyle ARGS`` in a separate process; ``submit`` runs it in the background."""

    def __init__(self, torch_home: Path, scratch: Path) -> None:
        self.torch_home, self.scratch = torch_home, scratch
        self.pool = ThreadPoolExecutor(max_workers=4)  # fork-server runs take turns; real ones run alongside
        self.lock = threading.Lock()
        self.server: subprocess.Popen | None = None
        self.count = 0

    def run(self, *args, cwd: Path | None = None, timeout: float = 300, real: bool = False,
            **env: str) -> subprocess.CompletedProcess:
        """Run the command; ``real=True`` (or DREAMSTYLE_TEST_CLI=subprocess) uses ``python -m dreamstyle``."""
        argv = [str(a) for a in args]
        if real or CLI_MODE == "subprocess":
            return subprocess.run([sys.executable, "-m", "dreamstyle", *argv], capture_output=True, text=True,
                                  cwd=cwd, env=cli_env(self.torch_home, **env), timeout=timeout)
        with self.lock:
            self.count += 1
            out, err = self.scratch / f"{self.count}.out", self.scratch / f"{self.count}.err"
            if self.server is None or self.server.poll() is not None:
                self.server = subprocess.Popen([sys.executable, "-c", FORK_SERVER], stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE, text=True, env=cli_env(self.torch_home))
            request = {"args": argv, "cwd": str(cwd or Path.cwd()), "env": cli_env(self.torch_home, **env),
                       "stdout": str(out), "stderr": str(err), "timeout": timeout}
            self.server.stdin.write(json.dumps(request) + "\n")
            self.server.stdin.flush()
            reply = self.server.stdout.readline()
        assert reply, "the CLI fork server died"
        rc = json.loads(reply)["rc"]
        if rc is None:
            raise subprocess.TimeoutExpired(argv, timeout)
        return subprocess.CompletedProcess(["dreamstyle", *argv], rc, out.read_text(), err.read_text())

    def submit(self, *args, **kwargs) -> Future:
        return self.pool.submit(self.run, *args, **kwargs)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.server is not None:
            self.server.stdin.close()
            self.server.wait(timeout=30)

    @staticmethod
    def one_line_error(proc: subprocess.CompletedProcess) -> str:
        """Assert a run failed with exactly one line on stderr and no traceback; return that line."""
        assert proc.returncode != 0, proc
        assert "Traceback" not in proc.stderr, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr
        return lines[0]


@pytest.fixture(scope="session")
def cli(tmp_path_factory):
    """The CLI runner; TORCH_HOME is an empty folder, so no run can pick up cached downloaded weights."""
    runner = CLI(tmp_path_factory.mktemp("torch_home"), tmp_path_factory.mktemp("cli_output"))
    yield runner
    runner.close()


@contextlib.contextmanager
def real_server(app, start_timeout: float = 30, stop_timeout: float = 60):
    """The studio ``app`` served by uvicorn on a free port of 127.0.0.1, in a thread; yields the port."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not srv.started:
        assert time.monotonic() < deadline, "the studio did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        app.state.studio.queue.close_streams()
        srv.should_exit = True
        thread.join(timeout=stop_timeout)


def png(size=(64, 48), color=(200, 120, 40), info: PngInfo | None = None) -> bytes:
    """A flat PNG's bytes, optionally with text chunks (``info``), for the studio's uploads."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def upload(client, data: bytes, name: str = "photo.png"):
    """POST ``data`` to the studio's /api/uploads as a file called ``name``."""
    return client.post("/api/uploads", files={"file": (name, data, "application/octet-stream")})
