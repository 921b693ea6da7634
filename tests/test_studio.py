"""The web studio's HTTP API (dreamstyle serve): uploads, jobs, progress events, previews, cancel,
downloads, the queue, and the bad-upload cases. The browser test is tests/test_studio_browser.py."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import png, upload
from dreamstyle.frontends.serve import create_app

FAST = {"size": 64, "iterations": 6}


@pytest.fixture()
def client(tmp_path):
    app = create_app(tmp_path / "studio", warm=False, max_upload_bytes=200_000, max_pixels=300 * 300,
                     preview_every=2)
    with TestClient(app) as c:
        yield c
    assert not (tmp_path / "studio" / "jobs").exists()  # the jobs' files go when the server stops


def wait_done(client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_info_describes_every_mode_from_the_settings(client):
    from dreamstyle import settings as S

    info = client.get("/api/info").json()
    assert set(info["modes"]) == {"stylize", "dream", "explore", "apply"}
    names = [f["name"] for f in info["modes"]["stylize"]]
    assert names == [f.name for f, _ in S.options(S.StylizeSettings)]
    size = next(f for f in info["modes"]["stylize"] if f["name"] == "size")
    assert size["default"] == 512 and size["flag"] == "--size" and size["main"] is True
    assert "chelsea" in info["examples"] and "efficientnet_lite0" in info["networks"]
    page = client.get("/")
    assert page.status_code == 200 and "dreamstyle studio" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_upload_stores_under_a_random_name(client, tmp_path):
    r = upload(client, png(), name="../../etc/passwd.png")  # a name with a path in it is never a path
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["kind"] == "image" and (up["width"], up["height"]) == (64, 48)
    assert "/" not in up["id"] and "passwd" not in up["id"]
    assert (tmp_path / "studio" / "uploads" / up["id"]).is_file()
    assert not list(tmp_path.glob("**/passwd*"))
    assert client.get(f"/api/uploads/{up['id']}").content[:4] == b"\x89PNG"


@pytest.mark.parametrize("data, name, status, words", [
    (b"hello, not an image", "notes.png", 400, "is not an image"),
    (b"", "empty.png", 400, "empty"),
    (png((400, 400)), "big.png", 413, "megapixels"),  # 160,000 pixels over a 90,000 limit
    (b"\x89PNG" + bytes(300_000), "huge.png", 413, "the limit is"),  # over the byte limit
])
def test_bad_uploads_get_a_clear_message(client, data, name, status, words):
    r = upload(client, data, name)
    assert r.status_code == status and words in r.json()["error"], r.text


def test_the_page_cannot_name_files_on_the_server(client):
    up = upload(client, png()).json()
    for settings, words in (({"init": "/etc/passwd"}, "upload it again"), ({"masks": "/etc/passwd"}, "upload it again"),
                            ({"weights": "/etc/passwd"}, "a weights file is for the command line")):
        r = client.post("/api/jobs", json={"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
                                           "settings": settings})
        assert r.status_code == 400 and words in r.json()["error"], (settings, r.text)
    r = client.post("/api/jobs", json={"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
                                       "settings": {"init": "noise", **FAST}})  # a named choice is fine
    assert wait_done(client, r.json()["id"])["state"] == "done"


def test_bad_jobs_get_a_clear_message(client):
    up = upload(client, png()).json()
    cases = [({"mode": "paint"}, "unknown mode"),
             ({"mode": "stylize", "content": up["id"], "styles": []}, "at least one style"),
             ({"mode": "stylize", "content": "../../etc/passwd", "styles": ["example:great_wave"]}, "upload it again"),
             ({"mode": "stylize", "content": up["id"], "styles": ["example:nope"]}, "not an example"),
             ({"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
               "settings": {"style_weight": "inf"}}, "style_weight must be a finite number"),
             ({"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
               "settings": {"size": "big"}}, "size must be a whole number")]
    for body, words in cases:
        r = client.post("/api/jobs", json=body)
        assert r.status_code == 400 and words in r.json()["error"], (body, r.text)
    assert client.get("/api/jobs").json() == []


def test_a_job_streams_progress_and_previews_and_downloads_with_its_parameters(client):
    up = upload(client, png()).json()
    job = client.post("/api/jobs", json={"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
                                         "settings": FAST}).json()
    assert job["state"] in ("queued", "running")
    seen = []
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if seen[-1]["state"] in ("done", "failed", "cancelled"):
                    break
    assert seen[-1]["state"] == "done", seen[-1]
    steps = [e["step"] for e in seen if e["state"] == "running" and e["step"]]
    assert steps and steps == sorted(steps) and max(steps) <= 6
    assert any(e["preview_step"] for e in seen)  # previews arrived while it ran
    assert any(e["parts"].get("style") is not None for e in seen)  # the loss terms
    preview = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/preview").content))
    assert preview.size == (64, 48)
    result = client.get(f"/api/jobs/{job['id']}/result")
    assert result.status_code == 200 and "attachment" in result.headers["content-disposition"]
    params = json.loads(Image.open(io.BytesIO(result.content)).info["dreamstyle"])
    assert params["command"] == "stylize" and params["size"] == 64 and params["iterations"] == 6
    command = client.get(f"/api/jobs/{job['id']}/command").json()["command"]
    assert command.startswith("dreamstyle stylize photo.png great_wave.jpg -o result.png")  # the user's names
    assert "--size 64" in command and "--iterations 6" in command
    # dropping the result back on the page gives its settings
    back = client.post("/api/params", files={"file": ("r.png", result.content, "image/png")}).json()
    assert back["size"] == 64 and back["command"] == "stylize"
    assert [j["id"] for j in client.get("/api/jobs").json()] == [job["id"]]


def test_cancel_keeps_the_best_image_so_far(client):
    up = upload(client, png()).json()
    job = client.post("/api/jobs", json={"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
                                         "settings": {"size": 64, "iterations": 5000}}).json()
    deadline = time.monotonic() + 60
    while client.get(f"/api/jobs/{job['id']}").json()["step"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.post(f"/api/jobs/{job['id']}/cancel")
    done = wait_done(client, job["id"])
    assert done["state"] == "cancelled" and done["has_result"] and done["step"] < 5000
    params = json.loads(Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/result").content)).info["dreamstyle"])
    assert params["interrupted_at"] >= 3


def test_one_optimization_at_a_time_in_order_and_apply_is_not_stuck_behind(client):
    up = upload(client, png()).json()
    body = {"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
            "settings": {"size": 64, "iterations": 5000}}
    first = client.post("/api/jobs", json=body).json()
    second = client.post("/api/jobs", json={**body, "settings": {"size": 64, "iterations": 4999}}).json()
    third = client.post("/api/jobs", json={**body, "settings": FAST}).json()
    deadline = time.monotonic() + 60
    while client.get(f"/api/jobs/{first['id']}").json()["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    views = {j["id"]: j for j in client.get("/api/jobs").json()}
    assert [views[j["id"]]["position"] for j in (first, second, third)] == [0, 1, 2]
    # a fast apply runs beside the long optimization
    fast = client.post("/api/jobs", json={"mode": "apply", "content": up["id"],
                                          "settings": {"model": "starry_night"} if _bundled() else {}}).json()
    if _bundled():
        assert wait_done(client, fast["id"], timeout=60)["state"] == "done"
        assert client.get(f"/api/jobs/{first['id']}").json()["state"] == "running"
    client.post(f"/api/jobs/{second['id']}/cancel")  # cancelled while waiting: never runs
    assert client.get(f"/api/jobs/{second['id']}").json()["state"] == "cancelled"
    assert client.get(f"/api/jobs/{third['id']}").json()["position"] == 1
    client.post(f"/api/jobs/{first['id']}/cancel")
    assert wait_done(client, third["id"])["state"] == "done"
    assert client.get(f"/api/jobs/{second['id']}").json()["step"] == 0


def _bundled() -> bool:
    from dreamstyle.fastnet import bundled_styles

    return bool(bundled_styles())


def test_live_frames_and_a_failed_job_do_not_take_the_server_down(client):
    if _bundled():
        buf = io.BytesIO()
        Image.fromarray((np.random.default_rng(0).random((240, 320, 3)) * 255).astype(np.uint8)).save(buf, "JPEG")
        r = client.post("/api/live?model=starry_night&size=160", content=buf.getvalue(),
                        headers={"content-type": "image/jpeg"})
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (160, 120)
    r = client.post("/api/live?model=nope", content=png(), headers={"content-type": "image/png"})
    assert r.status_code == 400 and "the model must be a bundled style" in r.json()["error"]
    up = upload(client, png()).json()  # two blend weights for one style: the job fails, readably
    job = client.post("/api/jobs", json={"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
                                         "settings": {"style_blend": "1 2", **FAST}}).json()
    failed = wait_done(client, job["id"])
    assert failed["state"] == "failed" and "style_blend has 2 values for 1 style" in failed["error"], failed
    assert "Traceback" not in failed["error"]
    assert client.get("/api/info").status_code == 200


# --- the first job after launch, the queue, file names ---------------------------------------------

def test_tracing_is_safe_while_other_threads_trace_and_run_networks():
    """torch.fx patches nn.Module for the whole process while it traces: a second trace, or another thread's
    forward pass, used to be recorded into the first (the studio's warm-up racing the first job)."""
    import threading

    import torch

    from dreamstyle.backbones import get_spec, list_taps
    from dreamstyle.backbones.discover import prepare
    from dreamstyle.backbones.tracing import extract

    torch.manual_seed(0)
    model = prepare(get_spec("efficientnet_lite0").build())
    taps = [t.node for t in list_taps(get_spec("efficientnet_lite0"))][:12]
    runner = extract(model, taps)
    errors: list[str] = []
    stop = threading.Event()

    def trace_many(n: int) -> None:
        try:
            for _ in range(n):
                assert set(extract(model, taps)(torch.rand(1, 3, 32, 32))) == set(taps)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(f"trace: {e!r}")
        finally:
            stop.set()

    def run_forever() -> None:
        try:
            while not stop.is_set():
                with torch.no_grad():
                    out = runner(torch.rand(1, 3, 32, 32))
                assert all(isinstance(v, torch.Tensor) for v in out.values())
        except Exception as e:  # noqa: BLE001
            errors.append(f"run: {e!r}")

    def trace_forever() -> None:
        try:
            while not stop.is_set():
                extract(model, taps)
        except Exception as e:  # noqa: BLE001
            errors.append(f"second trace: {e!r}")

    for other in (run_forever, trace_forever):
        stop.clear()
        threads = [threading.Thread(target=trace_many, args=(8,)), threading.Thread(target=other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
    assert torch.nn.Module.__call__ is torch.fx._symbolic_trace._orig_module_call  # every patch undone


def test_a_job_started_the_moment_the_server_answers_runs_beside_the_warm_up(tmp_path):
    app = create_app(tmp_path / "studio", warm=True, preview_every=2)
    with TestClient(app) as client:
        assert client.get("/api/info").json()["warm"] in ("warming", "ready")
        body = {"mode": "stylize", "content": "example:chelsea", "styles": ["example:great_wave"]}
        jobs = []
        for i in range(4):  # the warm-up starts half a second after the server: jobs before, during and after
            jobs.append(client.post("/api/jobs", json={**body, "settings": {"size": 64, "iterations": 3 + i}}).json())
            time.sleep(0.25)
        for job in jobs:
            done = wait_done(client, job["id"])
            assert done["state"] == "done", done
        deadline = time.monotonic() + 120
        while client.get("/api/info").json()["warm"] == "warming":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.get("/api/info").json()["warm"] == "ready"


def _blocking_job(studio, **params):
    """A job that holds its lane until released, without any CPU work."""
    import threading

    release = threading.Event()

    def call(job):
        while not (release.is_set() or job.cancel.cancelled):
            time.sleep(0.01)

    return studio.queue.submit("stylize", call, params), release


def test_jobs_compare_by_identity_and_a_lane_outlives_a_job_that_raises(tmp_path):
    from dreamstyle.jobs import UNEXPECTED, Job, JobQueue

    a, b = (Job("x", "stylize", tmp_path, lambda job: None) for _ in range(2))
    assert a != b and a == a and len({a, b}) == 2  # noqa: PLR0124 - identity, not field by field
    queue = JobQueue(tmp_path / "jobs")
    try:
        def raises(exc):
            def call(job):
                raise exc
            return call

        failed = [queue.submit("stylize", raises(e), {}) for e in (RuntimeError(), SystemExit(3), ValueError("x"))]
        last = queue.submit("stylize", lambda job: None, {})
        deadline = time.monotonic() + 30
        while last.state != "done":
            assert time.monotonic() < deadline, [j.state for j in (*failed, last)]
            time.sleep(0.02)
        assert [j.state for j in failed] == ["failed"] * 3
        # Plain words in the page, no Python exception names (the traceback goes to the server's log)
        assert {j.error for j in failed} == {UNEXPECTED} and "Error" not in UNEXPECTED
        assert all(t.is_alive() for t in queue.threads)
    finally:
        queue.close()


def test_position_is_read_under_the_lock_while_jobs_come_and_go(tmp_path):
    import threading

    from dreamstyle.jobs import JobQueue

    queue = JobQueue(tmp_path / "jobs", max_waiting=10**6, same_seconds=0)
    hold = threading.Event()
    first = queue.submit("stylize", lambda job: hold.wait(60), {})
    watched = queue.submit("stylize", lambda job: None, {})
    while first.state != "running":
        time.sleep(0.01)
    errors: list[str] = []
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            jobs = [queue.submit("stylize", lambda job: None, {}) for _ in range(20)]
            for job in jobs:
                queue.cancel(job)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(3000):
            try:
                assert queue.position(watched) == 1
            except Exception as e:  # noqa: BLE001 - "deque mutated during iteration" before the fix
                errors.append(repr(e))
                break
    finally:
        stop.set()
        thread.join()
        hold.set()
        queue.close()
    assert not errors, errors[:3]


def test_old_jobs_expire_on_a_timer_without_new_submissions(tmp_path):
    from dreamstyle.jobs import JobQueue

    queue = JobQueue(tmp_path / "jobs", keep_seconds=0.2, sweep_seconds=0.1)
    try:
        job = queue.submit("apply", lambda job: (job.folder / "result.png").write_bytes(b"x"), {})
        deadline = time.monotonic() + 30
        while job.id in queue.jobs or job.folder.exists():
            assert time.monotonic() < deadline, job.state
            time.sleep(0.05)
    finally:
        queue.close()


def test_shutdown_cancels_and_waits_for_a_running_job_before_deleting_its_files(tmp_path):
    import threading

    from dreamstyle.jobs import JobQueue

    queue = JobQueue(tmp_path / "jobs")
    wrote = threading.Event()

    def slow_to_stop(job):
        while not job.cancel.cancelled:
            time.sleep(0.01)
        time.sleep(1.0)  # saving the best image so far takes a while
        (job.folder / "result.png").write_bytes(b"best so far")
        wrote.set()

    running = queue.submit("stylize", slow_to_stop, {})
    waiting = queue.submit("stylize", lambda job: None, {})
    while running.state != "running":
        time.sleep(0.01)
    assert queue.close(timeout=0.2) is False  # gave up waiting: the running job's files are left to it
    assert running.folder.exists() and not waiting.folder.exists() and waiting.state == "cancelled"
    assert wrote.wait(30)  # it could still write its result...
    deadline = time.monotonic() + 30
    while running.folder.exists():  # ...and its lane deleted the files once it stopped
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert running.state == "cancelled" and running.error is None

    queue = JobQueue(tmp_path / "jobs2")
    running = queue.submit("stylize", slow_to_stop, {})
    while running.state != "running":
        time.sleep(0.01)
    assert queue.close() is True and running.state == "cancelled"  # waited for it, then cleaned up
    assert not (tmp_path / "jobs2").exists()


def test_the_same_job_sent_twice_at_once_is_one_job(client):
    up = upload(client, png()).json()
    body = {"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
            "settings": {"size": 64, "iterations": 5000}}
    first = client.post("/api/jobs", json=body).json()
    again = client.post("/api/jobs", json=body).json()  # a double click
    other = client.post("/api/jobs", json={**body, "settings": {"size": 64, "iterations": 4999}}).json()
    assert again["id"] == first["id"] and other["id"] != first["id"]
    assert len(client.get("/api/jobs").json()) == 2
    for job in (other, first):
        client.post(f"/api/jobs/{job['id']}/cancel")


def test_results_and_commands_carry_the_users_file_names_never_a_server_path(client, tmp_path):
    photo = upload(client, png(), name="My Photo.png").json()
    start = upload(client, png(color=(10, 200, 30)), name="C:\\Users\\me\\start.png").json()  # a Windows path
    assert photo["name"] == "My Photo.png" and start["name"] == "start.png"
    job = client.post("/api/jobs", json={"mode": "stylize", "content": photo["id"],
                                         "styles": ["example:great_wave", "example:THE_SCREAM"],
                                         "settings": {**FAST, "init": start["id"]}}).json()
    done = wait_done(client, job["id"])
    assert done["state"] == "done", done
    command = client.get(f"/api/jobs/{job['id']}/command").json()["command"]
    assert command.startswith("dreamstyle stylize 'My Photo.png' great_wave.jpg the_scream.jpg -o result.png")
    assert "--init start.png" in command
    result = client.get(f"/api/jobs/{job['id']}/result").content
    embedded = json.loads(Image.open(io.BytesIO(result)).info["dreamstyle"])
    assert embedded["content"] == "My Photo.png" and embedded["styles"] == ["great_wave.jpg", "the_scream.jpg"]
    assert embedded["init"] == "start.png"
    assert Image.open(io.BytesIO(result)).size == (64, 48)
    seen = json.dumps([embedded, client.get(f"/api/jobs/{job['id']}").json()])
    assert str(tmp_path) not in seen and "/tmp" not in seen and "src/dreamstyle" not in seen
    if _bundled():  # apply names its photo the same way
        job = client.post("/api/jobs", json={"mode": "apply", "content": "example:chelsea",
                                             "settings": {"model": "Starry_Night"}}).json()
        assert wait_done(client, job["id"])["state"] == "done"
        embedded = json.loads(Image.open(io.BytesIO(
            client.get(f"/api/jobs/{job['id']}/result").content)).info["dreamstyle"])
        assert embedded["content"] == "chelsea.jpg"
        command = client.get(f"/api/jobs/{job['id']}/command").json()["command"]
        assert command == "dreamstyle apply chelsea.jpg -o result.png"  # the default style, spelled as the CLI does


def test_live_stylers_are_a_small_lru_and_the_page_is_told_frames_wait_in_one_line(client, monkeypatch):
    from dreamstyle.fastnet import bundled_styles
    from dreamstyle.frontends import studio as studio_module

    info = client.get("/api/info").json()
    assert "one line" in info["live"]
    names = list(bundled_styles())
    if len(names) < 3:
        pytest.skip("needs three bundled styles")
    monkeypatch.setattr(studio_module, "STYLERS_KEPT", 2)
    for name in names[:3]:
        r = client.post(f"/api/live?model={name}&size=64", content=png(), headers={"content-type": "image/png"})
        assert r.status_code == 200 and float(r.headers["x-live-waited"]) >= 0
    assert list(client.app.state.studio.stylers) == [n for n in names[1:3]]


def test_a_painting_becomes_a_fast_style_in_the_slow_lane_then_serves_apply_and_live(client, tmp_path, monkeypatch):
    from dreamstyle.tasks import faststyle

    monkeypatch.setenv("DREAMSTYLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(faststyle, "CROP_SIZE", 64)
    monkeypatch.setattr(faststyle, "BATCH_SIZE", 1)
    up = upload(client, png()).json()
    painting = upload(client, png((80, 60), color=(30, 60, 160)), name="my painting.png").json()
    assert client.get("/api/info").json()["fast_styles"] == {}
    body = {"mode": "apply", "content": up["id"], "settings": {"style_image": painting["id"], "style_steps": 2}}
    first = client.post("/api/jobs", json=body).json()
    assert client.app.state.studio.queue.jobs[first["id"]].slow  # it fine-tunes first: behind the optimizations
    job = wait_done(client, first["id"])
    assert job["state"] == "done", job
    fast = client.get("/api/info").json()["fast_styles"]
    assert list(fast.values()) == ["my painting.png"]
    key = next(iter(fast))
    again = client.post("/api/jobs", json={**body, "settings": {**body["settings"], "size": 48}}).json()
    assert not client.app.state.studio.queue.jobs[again["id"]].slow  # cached now: the fast lane
    assert wait_done(client, again["id"])["state"] == "done"
    by_key = client.post("/api/jobs", json={"mode": "apply", "content": up["id"], "settings": {"model": key}}).json()
    assert wait_done(client, by_key["id"])["state"] == "done"
    r = client.post(f"/api/live?model={key}&size=64", content=png(), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    command = client.get(f"/api/jobs/{first['id']}/command").json()["command"]
    assert "--style 'my painting.png'" in command and str(tmp_path) not in command
    for settings, words in (({"style_image": "/etc/passwd"}, "upload it again"),
                            ({"style_image": painting["id"], "style_data": "/etc"}, "for the command line")):
        r = client.post("/api/jobs", json={"mode": "apply", "content": up["id"], "settings": settings})
        assert r.status_code == 400 and words in r.json()["error"], r.text


def test_the_job_panel_can_remove_a_finished_job_and_use_its_result_as_the_next_photo(client):
    job = client.post("/api/jobs", json={"mode": "stylize", "content": "example:chelsea",
                                         "styles": ["example:great_wave"],
                                         "settings": {"size": 64, "iterations": 100000}}).json()
    refused = client.post(f"/api/jobs/{job['id']}/remove", json={})
    assert refused.status_code == 409 and "cancel it first" in refused.json()["error"]  # not while it runs
    assert client.post(f"/api/jobs/{job['id']}/as-photo", json={}).status_code == 404  # no picture yet
    client.post(f"/api/jobs/{job['id']}/cancel", json={})
    job = wait_done(client, job["id"])
    if not job["has_result"]:  # cancelled before its first step: run a finished one instead
        job = client.post("/api/jobs", json={"mode": "stylize", "content": "example:chelsea",
                                             "styles": ["example:great_wave"], "settings": FAST}).json()
        job = wait_done(client, job["id"])
    photo = client.post(f"/api/jobs/{job['id']}/as-photo", json={}).json()
    assert photo["kind"] == "image" and photo["name"] == f"stylize-{job['id']}.png"
    assert client.get(f"/api/uploads/{photo['id']}").content == client.get(f"/api/jobs/{job['id']}/result").content
    nxt = client.post("/api/jobs", json={"mode": "apply", "content": photo["id"], "settings": {"size": 64}})
    assert nxt.status_code == 200, nxt.text  # the result is a photo like any upload
    assert client.post(f"/api/jobs/{job['id']}/remove", json={}).json() == {"removed": job["id"]}
    assert job["id"] not in {j["id"] for j in client.get("/api/jobs").json()}
    assert client.get(f"/api/jobs/{job['id']}/result").status_code == 404
    wait_done(client, nxt.json()["id"])


def test_a_dropped_png_names_its_photo_and_paintings_found_again_on_this_server(client):
    from PIL.PngImagePlugin import PngInfo

    up = upload(client, png(), name="my cat.png").json()
    info = PngInfo()
    info.add_text("dreamstyle", json.dumps({"command": "stylize", "content": "my cat.png",
                                            "styles": ["great_wave.jpg", "lost.jpg"], "size": 64}))
    r = client.post("/api/params", files={"file": ("result.png", png(info=info), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["restore"] == {"content": up["id"], "styles": ["example:great_wave"], "missing": ["lost.jpg"]}


def test_info_marks_the_networks_that_need_a_download_and_splits_the_examples(client, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty cache: only shipped weights run offline
    info = client.get("/api/info").json()
    assert info["network_needs"]["efficientnet_lite0"] is None  # its weights ship with dreamstyle
    assert "download" in info["network_needs"]["vgg19"] and set(info["network_needs"]) == set(info["networks"])
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth").write_bytes(b"")
    (tmp_path / "torch" / "hub" / "checkpoints" / "vgg16_bn-6c64b313.pth").write_bytes(b"")  # another network's
    needs = client.get("/api/info").json()["network_needs"]
    assert needs["vgg19"] is None and needs["vgg16"] is not None
    kinds = info["example_kinds"]
    assert kinds["chelsea"]["kind"] == "photo" and kinds["great_wave"]["kind"] == "painting"


def test_dream_and_explore_send_previews_while_they_run():
    from dreamstyle import api
    from dreamstyle.events import Preview
    from dreamstyle.frontends.studio import EXAMPLES

    for run in (lambda cb: api.dream(EXAMPLES / "chelsea.jpg", size=64, octaves=2, iterations=4, progress=False,
                                     on_event=cb, preview_every=2),
                lambda cb: api.explore(tap="blocks.3", channels=[1, 2], size=32, iterations=4, progress=False,
                                       on_event=cb, preview_every=2)):
        previews: list = []
        run(lambda e, seen=previews: seen.append(e.image) if isinstance(e, Preview) else None)
        assert len(previews) >= 2, previews
        assert np.asarray(previews[0]).std() > 1  # a picture, not a blank


def test_time_left_is_timed_from_the_first_step_not_the_set_up(tmp_path, monkeypatch):
    """A cold start spends seconds before the first step; the estimate must not count them as steps' cost."""
    from types import SimpleNamespace

    from dreamstyle import jobs
    from dreamstyle.events import Step

    clock = [100.0]
    fake = SimpleNamespace(time=lambda: clock[0], monotonic=time.monotonic)
    monkeypatch.setattr(jobs, "time", fake)  # the jobs module's clock only
    job = jobs.Job("x", "stylize", tmp_path, lambda job: None, state="running", started=100.0)
    queue = jobs.JobQueue(tmp_path / "jobs")
    try:
        handle = queue.on_event(job)
        clock[0] = 140.0  # 40 s of set-up
        handle(Step("stylize", 1, 21, "", 1.0, {}))
        assert job.eta is None  # one step tells no rate yet
        clock[0] = 150.0
        handle(Step("stylize", 11, 21, "", 1.0, {}))
        assert job.eta == 10.0  # 10 steps in 10 s, 10 to go (counting the set-up would say 126 s)
    finally:
        queue.close()
