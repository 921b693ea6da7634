"""The studio end to end in a real headless browser: Debian's Chromium driven by Playwright.

Skipped where Chromium or Playwright is missing (`.ci/run` installs both). It uploads a photo, picks
an example painting, runs a short job and watches the preview update, downloads the result, runs
the webcam mode on Chromium's fake camera, restores every mode's PNG and runs it again, checks the
result buttons, a failed job's message and the Start button's double-click, and saves screenshots of
the page (desktop and phone) to ``docs/`` when DREAMSTYLE_SCREENSHOTS is set.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import real_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "dreamstyle" / "examples"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from dreamstyle.frontends.serve import create_app

    app = create_app(tmp_path_factory.mktemp("studio"), warm=False, preview_every=2)
    with real_server(app, start_timeout=20, stop_timeout=30) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True,
            args=[*FLAGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
            viewport={"width": 1280, "height": 860}, accept_downloads=True)
        yield context
        context.close()


def test_stylize_in_the_page_shows_previews_and_downloads(server, browser, tmp_path, image_files):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    expect(page.locator("body[data-ready='1']")).to_have_count(1)
    shots = bool(os.environ.get("DREAMSTYLE_SCREENSHOTS"))
    photo = Path(__file__).resolve().parents[1] / "src" / "dreamstyle" / "examples" / "chelsea.jpg"
    page.set_input_files("#content-file", str(photo if shots else image_files.content))
    expect(page.locator("#content-thumb")).to_be_visible()
    page.get_by_role("button", name="example great_wave").last.click()  # the style examples come second
    expect(page.locator("#style-thumbs img")).to_have_count(1)
    page.fill("#set-size", "384" if shots else "96")  # a picture worth showing in the README's screenshots
    if not shots:
        page.fill("#set-iterations", "24")
    previews: list[str] = []
    page.on("request", lambda r: previews.append(r.url) if "/preview" in r.url else None)
    page.click("#start")
    expect(page.locator("#status")).to_contain_text("done", timeout=120_000)
    assert len({u for u in previews}) >= 2, previews  # the preview updated while it ran
    expect(page.locator("#preview")).to_be_visible()
    with page.expect_download() as info:
        page.click("#download")
    saved = tmp_path / "result.png"
    info.value.save_as(saved)
    params = json.loads(Image.open(saved).info["dreamstyle"])
    assert params["command"] == "stylize" and params["size"] == (384 if shots else 96)
    assert "style_loss" not in params or params["style_loss"] == "meancov"  # left to the network's default
    page.click("#copy-cli")
    expect(page.locator("#cli")).to_contain_text("dreamstyle stylize")
    assert "--style-loss" not in page.inner_text("#cli") and "--smooth" not in page.inner_text("#cli")
    expect(page.locator("#jobs li[data-state='done'] img")).to_have_count(1)  # the job panel shows it
    assert not errors, errors


def test_a_bad_upload_shows_a_readable_message(server, browser, tmp_path):
    page = browser.new_page()
    page.goto(server)
    expect(page.locator("body[data-ready='1']")).to_have_count(1)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page.set_input_files("#content-file", str(bad))
    expect(page.locator("#message")).to_contain_text("is not an image")
    assert "Error" not in page.inner_text("#message")  # plain words, no Python exception name
    page.set_viewport_size({"width": 390, "height": 844})  # on a phone: seen where the photo goes, at the top
    page.evaluate("window.scrollTo(0, 0)")
    page.set_input_files("#content-file", str(bad))
    expect(page.locator("#content-error")).to_contain_text("is not an image")
    box = page.locator("#content-error").bounding_box()
    assert 0 <= box["y"] and box["y"] + box["height"] <= 844, box


def test_live_mode_stylizes_the_fake_camera(server, browser):
    from dreamstyle.fastnet import bundled_styles

    if not bundled_styles():
        pytest.skip("no bundled styles")
    page = ready(browser, server)
    page.get_by_role("tab", name="Live").click()
    expect(page.locator("#live-note")).to_contain_text("one at a time, in one line")  # every page's frames wait
    page.click("#start")
    page.wait_for_function("Number(document.body.dataset.liveFrames || 0) >= 5", timeout=60_000)
    expect(page.locator("#live-out")).to_be_visible()
    # A paused <video> draws black frames, which come back as a flat grey box: the picture must have detail.
    assert page.evaluate(PIXEL_STD, "#live-out") > 20
    expect(page.locator("#camera")).to_be_visible()  # the camera, small beside the output
    camera, out = page.locator("#camera").bounding_box(), page.locator("#live-out").bounding_box()
    assert camera["width"] < out["width"] and camera["x"] >= out["x"] + out["width"]
    expect(page.locator("#status")).to_contain_text("frames/s")
    expect(page.locator("#start")).to_be_disabled()  # one camera loop at a time
    page.click("#cancel")
    expect(page.locator("#camera")).to_be_hidden()
    expect(page.locator("#start")).to_be_enabled()


# The standard deviation of an <img>'s pixel values (RGB, 0-255) at its natural size.
PIXEL_STD = """(sel) => {
  const img = document.querySelector(sel), c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext("2d"); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let n = 0, s = 0, s2 = 0;
  for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) { n++; s += d[i + k]; s2 += d[i + k] ** 2; }
  return Math.sqrt(s2 / n - (s / n) ** 2);
}"""


def ready(browser, server):
    """A new page of the studio, loaded, with its script errors collected in ``page.errors``."""
    page = browser.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(server)
    expect(page.locator("body[data-ready='1']")).to_have_count(1)
    return page


def tiny_stylize(page, painting: str = "great_wave") -> None:
    """Fill in a seconds-long stylize: the chelsea example, a painting example, 64 px, 2 steps."""
    page.get_by_role("button", name="example chelsea").first.click()
    page.get_by_role("button", name=f"example {painting}").last.click()
    page.fill("#set-size", "64")
    page.fill("#set-iterations", "2")


def jobs(server) -> list[dict]:
    with urllib.request.urlopen(f"{server}/api/jobs", timeout=30) as r:
        return json.loads(r.read())


def drop_png(page, path: Path) -> None:
    """Drop a PNG file onto the page (outside the photo and painting boxes), as a user drags one in."""
    page.evaluate("""([data, name]) => {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type: "image/png" }));
      document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }""", [base64.b64encode(path.read_bytes()).decode(), path.name])


@pytest.fixture(scope="module")
def mode_pngs(tmp_path_factory):
    """One tiny dreamstyle PNG per mode, made with the API (settings a first-time user would not type)."""
    from dreamstyle import api
    from dreamstyle.fastnet import bundled_styles

    folder = tmp_path_factory.mktemp("pngs")
    photo, painting = EXAMPLES / "chelsea.jpg", EXAMPLES / "great_wave.jpg"
    api.stylize(photo, [painting], output=folder / "stylize.png", size=64, iterations=3, pyramid=False,
                style_layers=["blocks.1", "blocks.3:0.5"], content_layers=["blocks.5:2"], progress=False)
    api.dream(photo, output=folder / "dream.png", size=64, octaves=1, iterations=2,
              targets=["blocks.3:5,4=2", "blocks.5"], progress=False)
    api.explore(output=folder / "explore.png", tap="blocks.3", channels=[1, 2], size=32, iterations=2,
                progress=False)
    if bundled_styles():
        api.apply(photo, output=folder / "apply.png", model=sorted(bundled_styles())[0], size=64, strength=0.8,
                  progress=False)
    return folder


# What each mode's restored form must show (in the command line's own syntax), and what its new job must get.
RESTORED = {
    "stylize": ({"#set-style_layers": "blocks.1 blocks.3:0.5", "#set-content_layers": "blocks.5:2",
                 "#set-iterations": "3", "#set-size": "64"},
                {"style_layers": ["blocks.1", "blocks.3:0.5"], "content_layers": ["blocks.5:2"], "iterations": 3}),
    "dream": ({"#set-targets": "blocks.3:5,4=2 blocks.5=1", "#set-octaves": "1"},
              {"targets": ["blocks.3:5,4=2", "blocks.5=1"], "octaves": 1}),
    "explore": ({"#set-tap": "blocks.3", "#set-channels": "1,2", "#set-size": "32"},
                {"tap": "blocks.3", "channels": [1, 2], "size": 32}),
    "apply": ({"#set-strength": "0.8", "#set-size": "64"}, {"strength": 0.8, "size": 64}),
}


@pytest.mark.parametrize("mode", list(RESTORED))
def test_a_dropped_png_restores_its_settings_and_runs_again(server, browser, mode_pngs, mode):
    png = mode_pngs / f"{mode}.png"
    if not png.exists():
        pytest.skip("no bundled styles")
    page = ready(browser, server)
    drop_png(page, png)
    expect(page.locator("#message")).to_contain_text(f"Settings restored ({mode})")
    expect(page.get_by_role("tab", name={"apply": "Fast apply"}.get(mode, mode.title()))).to_have_attribute(
        "aria-selected", "true")
    shown, sent = RESTORED[mode]
    for sel, text in shown.items():
        expect(page.locator(sel)).to_have_value(text)
    values = page.eval_on_selector_all("#settings input, #settings select", "els => els.map((e) => e.value)")
    assert not [v for v in values if "[object" in v], values
    if mode != "explore":
        page.get_by_role("button", name="example chelsea").first.click()
    if mode == "stylize":
        page.get_by_role("button", name="example great_wave").last.click()
    before = {j["id"] for j in jobs(server)}
    page.click("#start")
    expect(page.locator("#status")).to_contain_text("done", timeout=120_000)
    new = [j for j in jobs(server) if j["id"] not in before]
    assert len(new) == 1 and new[0]["state"] == "done", new
    settings = new[0]["params"]["settings"]
    assert {k: settings.get(k) for k in sent} == sent
    expect(page.locator("#message")).to_have_text("")
    # The gallery restores the same settings from the job (lists, not a PNG's dictionaries).
    page.get_by_role("tab", name="Stylize" if mode != "stylize" else "Dream").click()
    page.locator(f"#jobs img[src*='{new[0]['id']}']").click()
    expect(page.locator("#message")).to_contain_text(f"Settings restored ({mode})")
    for sel, text in shown.items():
        expect(page.locator(sel)).to_have_value(text)
    assert not page.errors, page.errors


def test_result_buttons_show_only_for_a_finished_result(server, browser):
    page = ready(browser, server)
    # Before any job there is nothing to download or copy (.actions{display:flex} overrode `hidden`).
    expect(page.locator("#download")).to_be_hidden()
    expect(page.locator("#copy-cli")).to_be_hidden()
    tiny_stylize(page)
    page.click("#start")
    expect(page.locator("#status")).to_contain_text("done", timeout=120_000)
    expect(page.locator("#download")).to_be_visible()
    first = page.get_attribute("#download", "href")
    assert first and first.endswith("/result")
    page.fill("#set-iterations", "100000")  # a job that runs until it is cancelled
    page.click("#start")
    expect(page.locator("#status")).to_contain_text(re.compile(r"step [1-9]"), timeout=60_000)
    # While the new job runs, Download is gone and points at no file (not the last job's).
    expect(page.locator("#download")).to_be_hidden()
    expect(page.locator("#copy-cli")).to_be_hidden()
    assert page.get_attribute("#download", "href") is None
    expect(page.locator("#start")).to_have_text("Queue another")  # while a job runs, Start queues the next
    # The cancel's reply (the job as it was, still running) comes after the stream's "cancelled": the page
    # must not go back to the running state (it did, now and then, in CI).
    replied: list[str] = []

    def late_reply(route) -> None:
        response = route.fetch()
        time.sleep(1.5)
        route.fulfill(response=response)
        replied.append(response.json()["state"])

    page.route("**/cancel", late_reply)
    page.click("#cancel")
    expect(page.locator("#status")).to_contain_text("cancelled", timeout=60_000)
    deadline = time.monotonic() + 30
    while not replied and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.wait_for_timeout(300)  # the late reply has been read by the page
    assert replied == ["running"], replied  # the race really happened
    expect(page.locator("#status")).to_contain_text("cancelled at step")
    expect(page.locator("#download")).to_be_visible()  # the best picture so far is kept
    assert page.get_attribute("#download", "href") not in (None, first)
    expect(page.locator("#start")).to_be_enabled()
    assert not page.errors, page.errors


def test_a_failed_job_says_why_in_the_page(server, browser):
    """A job that fails in the server shows its one-line reason, not only "failed", and the page can go on."""
    page = ready(browser, server)
    tiny_stylize(page)
    if not page.locator("#set-style_blend").is_visible():
        page.click("#settings summary")  # under "Advanced options"
    page.fill("#set-style_blend", "1 2")  # two blend weights for one painting: checked when the styles load
    page.click("#start")
    expect(page.locator("#status")).to_have_text("failed", timeout=120_000)
    expect(page.locator("#message")).to_contain_text("style_blend has 2 values for 1 style")
    expect(page.locator("#download")).to_be_hidden()
    expect(page.locator("#start")).to_be_enabled()
    assert not page.errors, page.errors


def test_a_double_click_on_start_queues_one_job(server, browser):
    page = ready(browser, server)
    tiny_stylize(page, "starry_night")
    before = {j["id"] for j in jobs(server)}
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/api/jobs") else None)
    page.dblclick("#start")
    expect(page.locator("#status")).to_contain_text("done", timeout=120_000)
    page.wait_for_timeout(500)  # a second request would have arrived by now
    new = [j for j in jobs(server) if j["id"] not in before]
    assert len(new) == 1, new
    assert len(posts) == 1, posts  # the page sent it once (the server also folds a double click into one job)
    expect(page.locator("#message")).to_have_text("")  # and no refusal of a second one was shown
    expect(page.locator("#start")).to_be_enabled()
    assert not page.errors, page.errors


def test_a_painting_in_fast_apply_becomes_a_style_for_apply_and_live(server, browser, tmp_path, monkeypatch):
    """Fast apply with a painting: the job fine-tunes its style (here 1 step of small crops), and the style then
    shows in the style lists of Fast apply and Live under the painting's name."""
    from dreamstyle.tasks import faststyle

    monkeypatch.setenv("DREAMSTYLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(faststyle, "CROP_SIZE", 64)
    monkeypatch.setattr(faststyle, "BATCH_SIZE", 1)
    page = ready(browser, server)
    page.get_by_role("tab", name="Fast apply").click()
    expect(page.locator("#style-title")).to_contain_text("Your painting")
    expect(page.locator("#style-note")).to_be_visible()
    page.get_by_role("button", name="example chelsea").first.click()
    page.get_by_role("button", name="example the_scream").last.click()
    page.get_by_role("button", name="example great_wave").last.click()
    page.fill("#set-size", "64")
    page.locator("#settings summary").click()
    page.fill("#set-style_steps", "1")
    page.click("#start")  # two paintings: one fast style at a time
    expect(page.locator("#message")).to_contain_text("Fast apply takes one painting")
    page.get_by_role("button", name="Remove this style").first.click()
    page.click("#start")
    expect(page.locator("#status")).to_contain_text("done", timeout=180_000)
    option = page.locator("#set-model option", has_text="great_wave.jpg (your painting's fast style)")
    expect(option).to_have_count(1, timeout=10_000)
    page.get_by_role("tab", name="Live").click()
    expect(page.locator("#set-model option", has_text="great_wave.jpg (your painting's fast style)")).to_have_count(1)
    assert not page.errors, page.errors


# --- the workbench (issue 22) ----------------------------------------------------------------------------

def job_view(server, job_id: str) -> dict:
    with urllib.request.urlopen(f"{server}/api/jobs/{job_id}", timeout=30) as r:
        return json.loads(r.read())


def start_new_job(page, server) -> dict:
    """Press Start and return the one new job (the server's view of it)."""
    before = {j["id"] for j in jobs(server)}
    page.click("#start")
    deadline = time.monotonic() + 30
    while True:
        new = [j for j in jobs(server) if j["id"] not in before]
        if new:
            assert len(new) == 1, new
            return new[0]
        assert time.monotonic() < deadline, "no job was made"
        page.wait_for_timeout(100)


def wait_state(server, job_id: str, states=("done", "cancelled", "failed"), timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (job := job_view(server, job_id))["state"] not in states:
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


def test_a_job_survives_a_reload_and_is_cancelled_from_the_panel(server, browser):
    page = ready(browser, server)
    tiny_stylize(page)
    page.fill("#set-iterations", "100000")  # runs until it is cancelled
    job = start_new_job(page, server)
    expect(page.locator("#status")).to_contain_text(re.compile(r"step [1-9]"), timeout=60_000)
    page.reload()
    expect(page.locator("body[data-ready='1']")).to_have_count(1)
    card = page.locator(f"#jobs li[data-id='{job['id']}']")
    expect(card).to_have_attribute("data-state", "running")
    expect(page.locator("#status")).to_contain_text(re.compile(r"step [1-9]"))  # the stage follows it again
    expect(page.locator("#content-thumb")).to_have_attribute("src", "/api/examples/chelsea")  # the draft came back
    expect(page.locator("#set-iterations")).to_have_value("100000")
    # A new tab (no draft of its own) takes the running job's photo, painting and settings.
    other = ready(browser, server)
    expect(other.locator("#content-thumb")).to_have_attribute("src", "/api/examples/chelsea")
    expect(other.locator("#style-thumbs img")).to_have_count(1)
    expect(other.locator("#set-size")).to_have_value("64")
    other.close()
    card.get_by_role("button", name=re.compile("^Cancel")).click()
    assert wait_state(server, job["id"])["state"] == "cancelled"
    expect(card).to_have_attribute("data-state", "cancelled")
    expect(page.locator("#status")).to_contain_text("cancelled")
    page.reload()  # the finished job this tab showed is shown again
    expect(page.locator("body[data-ready='1']")).to_have_count(1)
    expect(page.locator("#status")).to_contain_text("cancelled")
    card.get_by_role("button", name=re.compile("^Remove")).click()  # and a finished job can be removed
    expect(card).to_have_count(0)
    assert job["id"] not in {j["id"] for j in jobs(server)}
    assert not page.errors, page.errors


def test_while_a_job_runs_start_queues_the_next_and_the_panel_shows_its_place(server, browser):
    page = ready(browser, server)
    tiny_stylize(page)
    page.fill("#set-iterations", "100000")
    first = start_new_job(page, server)
    expect(page.locator("#start")).to_have_text("Queue another")
    page.fill("#set-iterations", "3")
    second = start_new_job(page, server)
    waiting = page.locator(f"#jobs li[data-id='{second['id']}'] .state")
    expect(waiting).to_contain_text("number 1 in line")
    cancel = page.locator(f"#jobs li[data-id='{first['id']}']").get_by_role("button", name=re.compile("^Cancel"))
    kept = cancel.element_handle()
    page.wait_for_timeout(2500)  # the panel refreshes every second while jobs run
    assert kept.evaluate("b => b.isConnected")  # the same button: a click that spans a refresh is not lost
    cancel.click()
    assert wait_state(server, second["id"])["state"] == "done"  # the next in line ran
    expect(page.locator(f"#jobs li[data-id='{second['id']}']")).to_have_attribute("data-state", "done")
    assert not page.errors, page.errors


def tiny_job_with_an_upload(page, server, image_files, name: str) -> dict:
    """A finished 2-step stylize of an uploaded photo (called ``name``) and the great_wave example."""
    renamed = image_files.content.parent / name
    renamed.write_bytes(image_files.content.read_bytes())
    page.set_input_files("#content-file", str(renamed))
    expect(page.locator("#content-thumb")).to_have_attribute("src", re.compile("/api/uploads/"))
    page.get_by_role("button", name="example great_wave").last.click()
    page.fill("#set-size", "64")
    page.fill("#set-iterations", "2")
    job = start_new_job(page, server)
    expect(page.locator("#status")).to_contain_text("done", timeout=120_000)
    return job


def run_again_with_the_same_images(page, server, job: dict) -> None:
    expect(page.locator("#content-thumb")).to_have_attribute("src", f"/api/uploads/{job['params']['content']}")
    expect(page.locator("#style-thumbs img")).to_have_attribute("src", "/api/examples/great_wave")
    again = start_new_job(page, server)
    assert wait_state(server, again["id"])["state"] == "done"
    assert again["params"]["content"] == job["params"]["content"]
    assert again["params"]["styles"] == ["example:great_wave"]
    assert again["params"]["settings"]["iterations"] == 2


def test_restore_from_the_panel_brings_back_the_images_and_the_next_job_runs(server, browser, image_files):
    page = ready(browser, server)
    job = tiny_job_with_an_upload(page, server, image_files, "from-the-panel.png")
    fresh = ready(browser, server)  # a new tab: nothing chosen
    expect(fresh.locator("#content-thumb")).to_be_hidden()
    fresh.locator(f"#jobs li[data-id='{job['id']}'] .thumb").click()
    expect(fresh.locator("#message")).to_contain_text("Settings restored (stylize)")
    run_again_with_the_same_images(fresh, server, job)
    assert not fresh.errors and not page.errors, fresh.errors + page.errors


def test_a_dropped_result_brings_back_its_photo_and_painting_and_the_next_job_runs(server, browser, image_files,
                                                                                  tmp_path):
    page = ready(browser, server)
    job = tiny_job_with_an_upload(page, server, image_files, "dropped-photo.png")
    result = tmp_path / "result.png"
    with urllib.request.urlopen(f"{server}/api/jobs/{job['id']}/result", timeout=30) as r:
        result.write_bytes(r.read())
    fresh = ready(browser, server)
    fresh.get_by_role("tab", name="Dream").click()
    drop_png(fresh, result)
    expect(fresh.locator("#message")).to_contain_text("Settings restored (stylize)")
    run_again_with_the_same_images(fresh, server, job)
    assert not fresh.errors and not page.errors, fresh.errors + page.errors


def test_use_as_photo_makes_the_result_the_next_photo(server, browser):
    page = ready(browser, server)
    tiny_stylize(page)
    job = start_new_job(page, server)
    expect(page.locator("#status")).to_contain_text("done", timeout=120_000)
    page.click("#use-photo")
    expect(page.locator("#content-thumb")).to_have_attribute("src", re.compile("/api/uploads/"))
    page.get_by_role("tab", name="Dream").click()
    page.fill("#set-size", "64")
    page.fill("#set-octaves", "1")
    dream = start_new_job(page, server)
    assert dream["params"]["names"]["content"] == f"stylize-{job['id']}.png"
    assert wait_state(server, dream["id"])["state"] == "done"
    assert not page.errors, page.errors


@pytest.mark.parametrize("mode", ["dream", "explore"])
def test_dream_and_explore_show_previews_before_the_end(server, browser, mode):
    page = ready(browser, server)
    page.get_by_role("tab", name=mode.title()).click()
    if mode == "dream":
        page.get_by_role("button", name="example chelsea").first.click()
        page.fill("#set-size", "96")
        page.fill("#set-octaves", "2")
    else:
        page.fill("#set-count", "4")
    if not page.locator("#set-iterations").is_visible():
        page.click("#settings summary")
    page.fill("#set-iterations", "8")
    shown: list[str] = []
    page.on("request", lambda r: shown.append(r.url) if "/preview?s=" in r.url else None)
    job = start_new_job(page, server)
    expect(page.locator("#status")).to_contain_text("done", timeout=120_000)
    total = job_view(server, job["id"])["total"]
    steps = [int(m.group(1)) for u in shown if (m := re.search(r"s=(\d+)-running", u))]
    assert [s for s in steps if 0 < s < total], (shown, total)  # a picture while it ran, before its last step
    assert not page.errors, page.errors


@pytest.mark.parametrize("size", [(1366, 900), (390, 844)])
def test_the_stage_is_in_view_after_start(server, browser, size):
    page = ready(browser, server)
    page.set_viewport_size({"width": size[0], "height": size[1]})
    tiny_stylize(page)
    page.fill("#set-iterations", "100000")
    page.click("#settings summary")  # the user is deep in the advanced options
    before = {j["id"] for j in jobs(server)}
    if size[0] > 760:  # on a desktop, at the page's end, Ctrl+Enter (a click would scroll to Start)
        page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        page.keyboard.press("Control+Enter")
    else:  # on a phone, Start comes after the form: tapped as it shows at the screen's bottom edge
        page.evaluate("document.querySelector('#start').scrollIntoView({block: 'end'})")
        box = page.locator("#start").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator("#preview")).to_be_visible(timeout=60_000)
    job = next(j for j in jobs(server) if j["id"] not in before)
    page.wait_for_timeout(300)
    for sel in ("#stage", "#cancel", "#status"):
        box = page.locator(sel).bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= size[1], (sel, box)
    page.click("#cancel")
    assert wait_state(server, job["id"])["state"] == "cancelled"
    assert not page.errors, page.errors


SIDEWAYS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_no_sideways_scroll_at_phone_width_in_any_mode(server, browser, image_files):
    page = ready(browser, server)
    page.set_viewport_size({"width": 390, "height": 844})
    long = image_files.content.parent / ("a_very_long_photo_name_without_any_spaces_" * 3 + ".png")
    long.write_bytes(image_files.content.read_bytes())
    page.set_input_files("#content-file", str(long))
    page.get_by_role("button", name="example great_wave").last.click()
    page.fill("#set-size", "64")
    page.fill("#set-iterations", "2")
    start_new_job(page, server)
    expect(page.locator("#status")).to_contain_text("done", timeout=120_000)
    bad = long.with_name("not_an_image_but_a_long_name_" * 3 + ".png")
    bad.write_text("text")
    page.set_input_files("#content-file", str(bad))  # its error message names it: one long word
    expect(page.locator("#message")).to_contain_text("is not an image")
    assert page.evaluate(SIDEWAYS) <= 0
    for tab in ("Stylize", "Fast apply", "Dream", "Explore", "Live"):
        page.get_by_role("tab", name=tab).click()
        if page.locator("#settings summary").count():
            page.locator("#settings summary").click()  # the advanced options open too
        assert page.evaluate(SIDEWAYS) <= 0, tab
    assert not page.errors, page.errors


def test_the_tabs_take_arrow_keys_and_every_tab_stop_is_visible(server, browser):
    page = ready(browser, server)
    page.get_by_role("tab", name="Stylize").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Fast apply")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab", name="Fast apply")).to_be_focused()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("tab", name="Live")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Home")
    expect(page.get_by_role("tab", name="Stylize")).to_have_attribute("aria-selected", "true")
    for mode in ("Stylize", "Fast apply"):
        page = ready(browser, server)  # a fresh page
        page.get_by_role("tab", name=mode).click()
        seen = []
        for _ in range(60):  # Tab through the page: every stop is something one can see
            page.keyboard.press("Tab")
            stop = page.evaluate("""() => { const e = document.activeElement, r = e.getBoundingClientRect();
              const name = e.getAttribute('aria-label') || e.textContent.trim().slice(0, 20);
              return [e.id || e.tagName + ':' + name, r.width, r.height, getComputedStyle(e).opacity]; }""")
            seen.append(stop[0])
            assert stop[1] > 4 and stop[2] > 4 and stop[3] != "0", (mode, stop)
        tabs = {s for s in seen if s in {"BUTTON:Stylize", "BUTTON:Fast apply", "BUTTON:Dream", "BUTTON:Explore"}}
        assert tabs <= {f"BUTTON:{mode}"}, seen  # the tabs are one stop (the chosen one), not five
        if mode == "Fast apply":
            assert "model-upload" in seen, seen  # the model's box is reached (Enter opens the file picker)
    assert not page.errors, page.errors


def test_labels_are_human_with_the_flag_as_tooltip_and_examples_are_split(server, browser):
    page = ready(browser, server)
    label = page.locator("label[for='set-tv_weight']")
    expect(label).to_contain_text("Smoothing")
    expect(label).to_have_attribute("title", "command line: --tv-weight")
    expect(page.locator("#content-examples").get_by_role("button", name="example chelsea")).to_have_count(1)
    expect(page.locator("#content-examples").get_by_role("button", name="example great_wave")).to_have_count(0)
    expect(page.locator("#style-examples").get_by_role("button", name="example chelsea")).to_have_count(0)
    with urllib.request.urlopen(f"{server}/api/info", timeout=30) as r:
        needs = json.loads(r.read())["network_needs"]
    for name, need in needs.items():  # a network whose weights are not here can't be picked
        expect(page.locator(f"#set-model option[value='{name}']")).to_have_js_property("disabled", need is not None)
    page.get_by_role("tab", name="Explore").click()
    groups = page.eval_on_selector_all("#set-tap optgroup", "gs => gs.map((g) => g.label)")
    assert groups[:3] == ["stem", "blocks 0", "blocks 1"] and len(groups) < 25, groups  # by stage, in order
    labels = dict(page.eval_on_selector_all("#set-tap option", "os => os.map((o) => [o.value, o.textContent])"))
    assert labels["blocks.3.dw.1"] == "depthwise · norm (blocks.3.dw.1)"  # in words, with the name it takes
    assert labels["stem.0"] == "conv (stem.0)" and labels["blocks.3"] == "blocks.3 (whole stage)"
    assert not page.errors, page.errors


def test_compare_slider_and_lightbox(server, browser):
    page = ready(browser, server)
    tiny_stylize(page)
    start_new_job(page, server)
    expect(page.locator("#status")).to_contain_text("done", timeout=120_000)
    expect(page.locator("#before")).to_have_attribute("src", "/api/examples/chelsea")  # the photo under the result
    page.fill("#compare", "40")
    assert page.evaluate("getComputedStyle(document.querySelector('#before')).clipPath") == "inset(0px 60% 0px 0px)"
    stage = page.locator("#preview").bounding_box()
    assert stage["width"] > 300  # a 64 px result is shown large, not at its pixel size
    page.click("#preview", position={"x": stage["width"] * 0.8, "y": stage["height"] / 2})
    expect(page.locator("#lightbox")).to_be_visible()
    big = page.locator("#lightbox-img").bounding_box()
    assert big["height"] > stage["height"]
    page.click("#zoom-2")
    assert page.locator("#lightbox-img").bounding_box()["width"] == 128  # 200% of 64 px
    page.keyboard.press("Escape")
    expect(page.locator("#lightbox")).to_be_hidden()
    assert not page.errors, page.errors


# The mean colour of an <img> (R, G, B, 0-255) at its natural size.
MEAN_RGB = """(sel) => {
  const img = document.querySelector(sel), c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext("2d"); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data, m = [0, 0, 0];
  for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) m[k] += d[i + k];
  return m.map((v) => v / (d.length / 4));
}"""


def test_live_switches_style_while_running_and_saves_a_snapshot_with_its_settings(server, browser, tmp_path):
    from dreamstyle.fastnet import bundled_styles

    styles = sorted(bundled_styles())
    if len(styles) < 2 or "starry_night" not in styles or "the_scream" not in styles:
        pytest.skip("needs the bundled starry_night and the_scream")
    page = ready(browser, server)
    page.get_by_role("tab", name="Live").click()
    page.select_option("#set-model", "starry_night")
    page.click("#start")
    page.wait_for_function("Number(document.body.dataset.liveFrames || 0) >= 3", timeout=60_000)
    assert page.evaluate(PIXEL_STD, "#live-out") > 20  # not flat
    before = page.evaluate(MEAN_RGB, "#live-out")
    page.select_option("#set-model", "the_scream")  # while it runs
    page.wait_for_function("document.body.dataset.liveModel === 'the_scream'", timeout=30_000)
    frames = int(page.evaluate("document.body.dataset.liveFrames"))
    page.wait_for_function(f"Number(document.body.dataset.liveFrames) >= {frames + 2}", timeout=30_000)
    after = page.evaluate(MEAN_RGB, "#live-out")
    assert page.evaluate(PIXEL_STD, "#live-out") > 20
    assert sum(abs(a - b) for a, b in zip(before, after)) > 15, (before, after)  # another style, other colours
    expect(page.locator("#status")).to_contain_text(re.compile(r"frames/s \(last 3 s\) · the scream"))
    with page.expect_download() as info:
        page.click("#snapshot")
    saved = tmp_path / "snapshot.png"
    info.value.save_as(saved)
    params = json.loads(Image.open(saved).info["dreamstyle"])
    assert params["command"] == "apply" and params["model"] == "the_scream"
    page.click("#cancel")
    expect(page.locator("#camera")).to_be_hidden()
    assert not page.errors, page.errors


def test_seed_new_and_reuse_and_saved_settings(server, browser):
    page = ready(browser, server)
    tiny_stylize(page)
    page.fill("#set-seed", "1234")
    job = start_new_job(page, server)
    assert job["params"]["settings"]["seed"] == 1234
    expect(page.locator("#status")).to_contain_text("done", timeout=120_000)
    page.get_by_role("button", name="New", exact=True).click()
    assert page.input_value("#set-seed") != "1234"
    page.click("#seed-reuse")  # the seed of the picture shown
    expect(page.locator("#set-seed")).to_have_value("1234")
    page.click("#params summary")  # the settings embedded in the result, to read
    expect(page.locator("#params-list")).to_contain_text("seed1234")
    expect(page.locator("#params-list")).to_contain_text("contentchelsea.jpg")
    page.fill("#set-size", "80")
    page.once("dialog", lambda d: d.accept("tiny test"))
    page.click("#preset-save")
    page.fill("#set-size", "200")
    page.select_option("#preset-pick", "tiny test")
    expect(page.locator("#set-size")).to_have_value("80")
    expect(page.locator("#set-seed")).to_have_value("1234")
    page.click("#preset-delete")
    expect(page.locator("#preset-pick option", has_text="tiny test")).to_have_count(0)
    assert not page.errors, page.errors


def test_a_slow_upload_shows_its_progress(server, browser, tmp_path):
    page = ready(browser, server)
    noisy = tmp_path / "big.png"  # random pixels: a PNG that does not compress (about 1.9 MB)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)).save(noisy)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": 400_000})  # bytes/s: about 5 s
    page.set_input_files("#content-file", str(noisy))
    expect(page.locator("#upload-progress")).to_be_visible(timeout=10_000)
    expect(page.locator("#content-thumb")).to_be_visible(timeout=60_000)
    expect(page.locator("#upload-progress")).to_be_hidden()
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": -1})
    assert not page.errors, page.errors


@pytest.mark.skipif(not os.environ.get("DREAMSTYLE_SCREENSHOTS"), reason="set DREAMSTYLE_SCREENSHOTS=1 to remake docs/")
def test_screenshots_of_each_mode(server, browser):
    """docs/studio_*.png and .jpg: each mode after a real run, at 1366x900 (and the stylize page on a phone)."""
    page = ready(browser, server)
    page.set_viewport_size({"width": 1366, "height": 900})

    def run(mode: str, fill: dict[str, str], photo: str | None = "chelsea", painting: str | None = None) -> None:
        page.get_by_role("tab", name={"apply": "Fast apply"}.get(mode, mode.title())).click()
        if photo:
            page.get_by_role("button", name=f"example {photo}").first.click()
        if painting:
            page.get_by_role("button", name=f"example {painting}").last.click()
        for sel, value in fill.items():
            if not page.locator(sel).is_visible():
                page.click("#settings summary")
            if page.locator(sel).evaluate("e => e.tagName") == "SELECT":
                page.select_option(sel, value)
            else:
                page.fill(sel, value)
        start_new_job(page, server)
        expect(page.locator("#status")).to_contain_text("done", timeout=300_000)
        page.evaluate("window.scrollTo(0, 0)")

    run("stylize", {"#set-size": "384", "#set-iterations": "150"}, painting="starry_night")
    page.fill("#compare", "35")
    page.screenshot(path=str(DOCS / "studio_desktop.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(DOCS / "studio_phone.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    while page.get_by_role("button", name="Remove this style").count():  # in Fast apply a painting would be
        page.get_by_role("button", name="Remove this style").first.click()  # fine-tuned instead of the style
    run("apply", {"#set-model": "the_scream", "#set-size": "512"})
    page.screenshot(path=str(DOCS / "studio_apply.jpg"), quality=85)
    run("dream", {"#set-size": "384"}, photo="astronaut")
    page.screenshot(path=str(DOCS / "studio_dream.jpg"), quality=85)
    page.click("#content-remove")  # what the channels respond to, without a photo
    run("explore", {"#set-tap": "blocks.5", "#set-count": "9"}, photo=None)
    page.screenshot(path=str(DOCS / "studio_explore.jpg"), quality=85)
    page.get_by_role("tab", name="Live").click()
    page.select_option("#set-model", "great_wave")
    page.click("#start")
    page.wait_for_function("Number(document.body.dataset.liveFrames || 0) >= 10", timeout=60_000)
    page.screenshot(path=str(DOCS / "studio_live.jpg"), quality=85)
    page.click("#cancel")
    assert not page.errors, page.errors


def test_stylize_and_fast_apply_keep_their_own_paintings(server, browser):
    """A painting picked for Stylize must not follow into Fast apply, where it would start a minutes-long fine-tune."""
    page = ready(browser, server)
    page.get_by_role("button", name="example great_wave").last.click()
    page.get_by_role("tab", name="Fast apply").click()
    expect(page.locator("#style-thumbs img")).to_have_count(0)
    page.get_by_role("button", name="example the_scream").last.click()
    page.get_by_role("tab", name="Dream").click()
    page.get_by_role("tab", name="Stylize").click()
    expect(page.locator("#style-thumbs img")).to_have_attribute("src", "/api/examples/great_wave")
    page.get_by_role("tab", name="Fast apply").click()
    expect(page.locator("#style-thumbs img")).to_have_attribute("src", "/api/examples/the_scream")
    page.reload()  # the draft keeps the mode's paintings
    expect(page.locator("body[data-ready='1']")).to_have_count(1)
    expect(page.locator("#style-thumbs img")).to_have_attribute("src", "/api/examples/the_scream")
    assert not page.errors, page.errors
