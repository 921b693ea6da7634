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

from dreamstyle.frontends.serve import create_app

FAST = {"size": 64, "iterations": 6}


@pytest.fixture()
def client(tmp_path):
    app = create_app(tmp_path / "studio", warm=False, max_upload_bytes=200_000, max_pixels=300 * 300,
                     preview_every=2)
    with TestClient(app) as c:
        yield c
    assert not (tmp_path / "studio" / "jobs").exists()  # the jobs' files go when the server stops


def png(size=(64, 48), color=(200, 120, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def upload(client, data: bytes, name: str = "photo.png"):
    return client.post("/api/uploads", files={"file": (name, data, "application/octet-stream")})


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
    for settings in ({"init": "/etc/passwd"}, {"masks": "/etc/passwd"}, {"weights": "/etc/passwd"}):
        r = client.post("/api/jobs", json={"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
                                           "settings": settings})
        assert r.status_code == 400 and "upload" in r.json()["error"], (settings, r.text)
    r = client.post("/api/jobs", json={"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
                                       "settings": {"init": "noise", **FAST}})  # a named choice is fine
    assert wait_done(client, r.json()["id"])["state"] == "done"


def test_bad_jobs_get_a_clear_message(client):
    up = upload(client, png()).json()
    cases = [({"mode": "paint"}, "unknown mode"),
             ({"mode": "stylize", "content": up["id"], "styles": []}, "at least one style"),
             ({"mode": "stylize", "content": "../../etc/passwd", "styles": ["example:great_wave"]}, "upload it again"),
             ({"mode": "stylize", "content": up["id"], "styles": ["example:nope"]}, "no example image"),
             ({"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
               "settings": {"style_weight": "inf"}}, "style_weight must be a finite number"),
             ({"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
               "settings": {"size": "big"}}, "size must be a number")]
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
    assert command.startswith("dreamstyle stylize photo.png src/dreamstyle/examples/great_wave.jpg -o result.png")
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
    second = client.post("/api/jobs", json=body).json()
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
        r = client.post("/api/live?model=starry_night&size=160", content=buf.getvalue())
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (160, 120)
    r = client.post("/api/live?model=nope", content=png())
    assert r.status_code == 400 and "unknown style 'nope'" in r.json()["error"]
    up = upload(client, png()).json()  # two blend weights for one style: the job fails, readably
    job = client.post("/api/jobs", json={"mode": "stylize", "content": up["id"], "styles": ["example:great_wave"],
                                         "settings": {"style_blend": "1 2", **FAST}}).json()
    failed = wait_done(client, job["id"])
    assert failed["state"] == "failed" and "style_blend has 2 values for 1 style" in failed["error"], failed
    assert "Traceback" not in failed["error"]
    assert client.get("/api/info").status_code == 200
