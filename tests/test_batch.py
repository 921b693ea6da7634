"""``dreamstyle batch``: jobs from a folder or a list, on the local process pool and on a local Ray instance;
outputs equal to direct calls, resume from the manifest, retries after a worker died, bad input refused."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import dreamstyle
from dreamstyle.errors import UserError
from dreamstyle.events import Interrupted
from dreamstyle.images import read_params
from dreamstyle.tasks.batch import MANIFEST
from dreamstyle.tasks.scale import drive, run_job

# tiny stylize jobs: 32 px, 3 steps on one level, explicit taps (as test_stylize's runs)
FAST = dict(size=32, iterations=3, pyramid=False, seed=0, style_layers=["stem", "blocks.1"],
            content_layers=["blocks.1"], style_loss="gram")
JOBS = 8


def crash_once(marker: str, spec, *files):
    """A job function whose first call anywhere kills its own worker process (as a machine going away would);
    every later call runs the job."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return run_job(spec, *files)
    os.close(fd)
    os.kill(os.getpid(), 9)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of 8 small photos (crops of the astronaut) and a painting."""
    folder = tmp_path_factory.mktemp("photos")
    big = Image.fromarray(data.astronaut()).resize((128, 128))
    for i in range(JOBS):
        big.crop((i * 8, i * 4, i * 8 + 48, i * 4 + 40)).save(folder / f"photo{i}.png")
    painting = tmp_path_factory.mktemp("painting") / "rocket.png"
    Image.fromarray(data.rocket()).resize((48, 32)).save(painting)
    return folder, painting


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def local_run(photos, tmp_path_factory):
    """The 8 stylize jobs on the local pool (2 workers)."""
    folder, painting = photos
    out = tmp_path_factory.mktemp("local") / "out"
    seen: list = []
    report = dreamstyle.batch(folder, out, mode="stylize", style_images=[str(painting)], workers=2, progress=False,
                              on_job_event=lambda name, event: seen.append((name, event)), **FAST)
    return report, out, seen


def test_local_pool_runs_every_job_like_a_direct_call(photos, local_run):
    folder, painting = photos
    report, out, seen = local_run
    assert (len(report.written), report.skipped, report.failed, report.workers) == (JOBS, 0, [], 2)
    steps = [(name, event.step) for name, event in seen if isinstance(event, dreamstyle.Step)]
    assert sorted(steps) == sorted((f"photo{i}.png", k) for i in range(JOBS) for k in (1, 2, 3))  # each job's own
    assert sorted(p.name for p in out.glob("*.png")) == [f"photo{i}.png" for i in range(JOBS)]
    direct = dreamstyle.stylize(folder / "photo3.png", painting, progress=False, **FAST)
    assert np.array_equal(pixels(out / "photo3.png"), np.asarray(direct))
    params = read_params(out / "photo3.png")
    assert params["command"] == "stylize" and params["content"] == str(folder / "photo3.png")
    manifest = json.loads((out / MANIFEST).read_text())["jobs"]
    assert sorted(manifest) == sorted(p.name for p in out.glob("*.png"))


def test_local_rerun_skips_finished_jobs(photos, local_run):
    folder, painting = photos
    _, out, _ = local_run
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    again = dreamstyle.batch(folder, out, mode="stylize", style_images=[str(painting)], progress=False, **FAST)
    assert (len(again.written), again.skipped) == (0, JOBS)
    assert before == {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}


def test_list_rerun_redoes_only_the_changed_job(photos, tmp_path):
    folder, _ = photos
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"photo,output,strength\n{folder / 'photo0.png'},a.png,1\n{folder / 'photo1.png'},b.png,0.5\n")
    first = dreamstyle.batch(jobs, tmp_path / "out", workers=1, progress=False)
    assert sorted(p.name for p in first.written) == ["a.png", "b.png"]
    assert read_params(tmp_path / "out" / "b.png")["strength"] == 0.5
    jobs.write_text(f"photo,output,strength\n{folder / 'photo0.png'},a.png,1\n{folder / 'photo1.png'},b.png,0.25\n")
    second = dreamstyle.batch(jobs, tmp_path / "out", workers=1, progress=False)
    assert [p.name for p in second.written] == ["b.png"] and second.skipped == 1
    assert read_params(tmp_path / "out" / "b.png")["strength"] == 0.25


def test_local_worker_killed_mid_job_is_retried(photos, tmp_path):
    folder, _ = photos
    marker = tmp_path / "crashed"
    from dreamstyle.events import Run
    from dreamstyle.settings import make
    from dreamstyle.tasks import batch as task

    bs = make(task.BatchSettings, dict(mode="apply", workers=2))
    report = task.batch(folder, tmp_path / "out", bs, {}, Run("batch", 0), functools.partial(crash_once, str(marker)))
    assert marker.exists()  # a worker did die
    assert (len(report.written), report.failed) == (JOBS, [])


def test_a_failing_job_is_reported_and_the_others_finish(photos, tmp_path, cli):
    folder, _ = photos
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("photo0.png", "photo1.png"):
        (mixed / name).write_bytes((folder / name).read_bytes())
    (mixed / "broken.png").write_text("not a picture")
    proc = cli.run("batch", mixed, "-o", tmp_path / "out", "--retries", "1", "--quiet")
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "broken.png" in lines[0] and "failed" in lines[0], proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["photo0.png", "photo1.png"]
    assert "broken.png" not in json.loads((tmp_path / "out" / MANIFEST).read_text())["jobs"]


def test_a_folder_named_relative_to_the_working_folder(photos, tmp_path, cli):
    """``dreamstyle batch in -o out`` from the folder that holds ``in``: the photos are found where they are."""
    folder, _ = photos
    (tmp_path / "in").mkdir()
    for name in ("photo0.png", "photo1.png"):
        (tmp_path / "in" / name).write_bytes((folder / name).read_bytes())
    proc = cli.run("batch", "in", "-o", "out", "--mode", "apply", "--model", "great_wave", "--size", "32",
                   "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["photo0.png", "photo1.png"]


def test_a_pool_that_broke_between_two_looks_is_restarted_not_fatal():
    """A worker can die after the driver's last look and before its next submit, which then raises
    BrokenProcessPool at once: the driver restarts the pool and the job runs on the new one, not yet charged."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    class Pool:
        slots, restarts, broken = 1, 0, True

        def restart(self) -> None:
            self.restarts, self.broken = self.restarts + 1, False

    pool, landed, failed = Pool(), [], []

    def submit(item: str) -> Future:
        if pool.broken:
            raise BrokenProcessPool("a child process terminated abruptly")
        future: Future = Future()
        future.set_result(item.upper())
        return future

    drive(pool, ["a", "b"], submit, lambda f: (f.result(), None, False), lambda item, result: landed.append(result),
          lambda item, error: failed.append(item), retries=0)
    assert (landed, failed, pool.restarts) == (["A", "B"], [], 1)


def test_a_local_worker_builds_optimizers_without_importing_dynamo():
    """As in the command, a pool worker's L-BFGS does not import torch._dynamo (1.1-1.4 s a worker)."""
    from dreamstyle.tasks.scale import LocalPool

    probe = ("(__import__('torch').optim.LBFGS([__import__('torch').zeros(1, requires_grad=True)]).zero_grad(), "
             "'torch' in __import__('sys').modules, 'torch._dynamo' in __import__('sys').modules)[1:]")
    pool = LocalPool(1, 1)
    try:
        assert pool.executor.submit(eval, probe).result(timeout=120) == (True, False)
    finally:
        pool.close()


def test_cancel_stops_cleanly_and_a_rerun_finishes(photos, tmp_path):
    folder, _ = photos
    token = dreamstyle.CancelToken()
    steps = []

    def stop(event):
        if isinstance(event, dreamstyle.Step):
            steps.append(event.label)
            token.cancel()

    with pytest.raises(Interrupted):
        dreamstyle.batch(folder, tmp_path / "out", workers=1, progress=False, on_event=stop, cancel=token)
    written = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert steps and written and len(written) < JOBS
    assert not list((tmp_path / "out").glob(".ds-*"))  # no half-written file
    for name in written:
        Image.open(tmp_path / "out" / name).load()
    assert sorted(json.loads((tmp_path / "out" / MANIFEST).read_text())["jobs"]) == written
    rest = dreamstyle.batch(folder, tmp_path / "out", workers=1, progress=False)
    assert rest.skipped == len(written) and len(rest.written) == JOBS - len(written)


# --- Ray ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance with 2 CPUs, for this module's Ray tests only (its workers can import this file)."""
    ray = pytest.importorskip("ray")
    path = os.pathsep.join([str(Path(__file__).parent), *filter(None, [os.environ.get("PYTHONPATH")])])
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


def test_ray_runs_the_jobs_bit_identical_to_the_local_pool(photos, local_run, ray_local, tmp_path):
    folder, painting = photos
    _, local_out, _ = local_run
    seen: list = []
    report = dreamstyle.batch(folder, tmp_path / "out", mode="stylize", style_images=[str(painting)], ray="auto",
                              progress=False, on_job_event=lambda name, event: seen.append(name), **FAST)
    assert (len(report.written), report.failed) == (JOBS, [])
    assert sorted(set(seen)) == [f"photo{i}.png" for i in range(JOBS)] and len(seen) == 3 * JOBS
    for i in range(JOBS):
        assert np.array_equal(pixels(tmp_path / "out" / f"photo{i}.png"), pixels(local_out / f"photo{i}.png"))
    params = read_params(tmp_path / "out" / "photo0.png")
    assert params["content"] == str(folder / "photo0.png")  # the driver's names, not the worker's copies
    again = dreamstyle.batch(folder, tmp_path / "out", mode="stylize", style_images=[str(painting)], ray="auto",
                             progress=False, **FAST)
    assert (len(again.written), again.skipped) == (0, JOBS)


def test_ray_worker_killed_mid_job_is_retried(photos, ray_local, tmp_path):
    folder, _ = photos
    marker = tmp_path / "crashed"
    from dreamstyle.events import Run
    from dreamstyle.settings import make
    from dreamstyle.tasks import batch as task

    bs = make(task.BatchSettings, dict(mode="apply", ray="auto"))
    report = task.batch(folder, tmp_path / "out", bs, {}, Run("batch", 0), functools.partial(crash_once, str(marker)))
    assert marker.exists()
    assert (len(report.written), report.failed) == (JOBS, [])


# --- bad input ---------------------------------------------------------------------------------------------------

def test_a_list_with_bad_rows_is_refused_before_any_work(photos, tmp_path, cli):
    folder, painting = photos
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"photo,style,colour\n{folder / 'photo0.png'},{painting},\n{tmp_path / 'gone.png'},{painting},\n"
                    f"{folder / 'photo1.png'},{painting},3\n")
    proc = cli.run("batch", jobs, "-o", tmp_path / "out", "--mode", "stylize")
    line = cli.one_line_error(proc)
    assert proc.returncode == 2
    assert "jobs.csv, line 3" in line and "gone.png" in line and "not found" in line
    assert "jobs.csv, line 4" in line and "unknown setting 'colour'" in line
    assert "line 2" not in line and not (tmp_path / "out").exists()


def test_an_unknown_model_is_refused_before_any_work(photos, tmp_path, cli):
    folder, _ = photos
    proc = cli.run("batch", folder, "-o", tmp_path / "out", "--mode", "apply", "--model", "nosuch")
    line = cli.one_line_error(proc)
    assert proc.returncode == 2 and "unknown style 'nosuch'" in line and "great_wave" in line
    assert not (tmp_path / "out").exists()


def test_a_bad_setting_in_a_row_is_named_with_its_line(photos, tmp_path):
    folder, _ = photos
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"photo": str(folder / "photo0.png")},
                                {"photo": str(folder / "photo1.png"), "strength": 7}], indent=1))
    with pytest.raises(UserError, match=r"jobs\.json, line 5: strength must be <= 1"):
        dreamstyle.batch(jobs, tmp_path / "out", progress=False)


def test_an_output_folder_that_is_a_file_is_refused(photos, tmp_path, cli):
    folder, _ = photos
    (tmp_path / "taken").write_text("a file")
    line = cli.one_line_error(cli.run("batch", folder, "-o", tmp_path / "taken"))
    assert "is a file" in line and "folder" in line


def test_an_unreachable_ray_address_is_one_line(photos, tmp_path, cli):
    folder, _ = photos
    proc = cli.run("batch", folder, "-o", tmp_path / "out", "--ray", "127.0.0.1:9", timeout=60)
    line = cli.one_line_error(proc)
    assert "cannot reach the Ray cluster at '127.0.0.1:9'" in line and "ray start --head" in line


def test_a_cluster_that_wants_its_token_says_how_to_give_it():
    """Ray 2.59+ starts clusters with token authentication; a driver without the token is refused by Ray with an
    AuthenticationError under a ConnectionError, which must not read as 'start a cluster'."""
    from dreamstyle.tasks.scale import connect

    class AuthenticationError(RuntimeError):
        pass

    class Ray:
        @staticmethod
        def is_initialized() -> bool:
            return False

        @staticmethod
        def init(**kwargs: object) -> None:
            try:
                raise AuthenticationError("RPC error: InvalidAuthToken: Authentication token is missing")
            except AuthenticationError as cause:
                raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from cause

    with pytest.raises(UserError, match="asks for its token: set RAY_AUTH_MODE=token") as error:
        connect(Ray, "auto")
    assert "\n" not in str(error.value) and "ray get-auth-token" in str(error.value)


def test_an_address_that_answers_but_not_as_ray_is_one_line(photos, tmp_path, cli):
    """A web server on the port (a wrong port given): refused at once, not after Ray's minutes of retries."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        proc = cli.run("batch", photos[0], "-o", tmp_path / "out", "--ray", address, timeout=60)
    finally:
        server.shutdown()
    line = cli.one_line_error(proc)
    assert f"'{address}' answers, but not as a Ray cluster" in line and not list(tmp_path.glob("out/*.png"))


def test_without_ray_the_error_says_how_to_install_it(photos, tmp_path, monkeypatch):
    folder, _ = photos
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    with pytest.raises(UserError, match=r'pip install "dreamstyle\[scale\]"'):
        dreamstyle.batch(folder, tmp_path / "out", ray="auto", progress=False)


def test_ray_runs_a_videos_chunks(ray_local, tmp_path):
    big = np.asarray(Image.fromarray(data.astronaut()).resize((160, 160)))
    frames = [Image.fromarray(big[30:126, 20 + 2 * i:116 + 2 * i]) for i in range(8)]
    clip = tmp_path / "clip.gif"
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=100, loop=0)
    single = dreamstyle.video(clip, tmp_path / "single", progress=False)
    split = dreamstyle.video(clip, tmp_path / "split", ray="auto", progress=False)
    a, b = sorted(single.glob("*.png")), sorted(split.glob("*.png"))
    assert len(a) == len(b) == 8
    assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(a[:4], b[:4]))  # the first chunk's frames


def test_importing_the_batch_and_the_chunks_leaves_ray_and_torch_out():
    import subprocess

    code = ("import sys, dreamstyle.frontends.cli, dreamstyle.tasks.batch, dreamstyle.tasks.video_chunks; "
            "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_ctrl_c_on_the_command_stops_the_workers_and_keeps_whole_outputs(photos, tmp_path):
    import signal
    import subprocess
    import time

    folder, painting = photos
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dreamstyle", "batch", str(folder), "-o", str(out), "--mode",
                             "stylize", "--style", str(painting), "--workers", "1", "--size", "48", "--iterations",
                             "40", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while not list(out.glob("*.png")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip() == "dreamstyle: interrupted", err
    written = sorted(p.name for p in out.glob("*.png"))
    assert 1 <= len(written) < JOBS and not list(out.glob(".ds-*"))
    assert sorted(json.loads((out / MANIFEST).read_text())["jobs"]) == written
