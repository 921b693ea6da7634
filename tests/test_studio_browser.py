"""The studio end to end in a real headless browser: Debian's Chromium driven by Playwright.

Skipped where Chromium or Playwright is missing (`.ci/run` installs both). It uploads a photo, picks
an example painting, runs a short job and watches the preview update, downloads the result, runs
the webcam mode on Chromium's fake camera, and saves screenshots of the page (desktop and phone) to
``docs/`` when DREAMSTYLE_SCREENSHOTS is set.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from dreamstyle.frontends.serve import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(tmp_path_factory.mktemp("studio"), warm=False, preview_every=2)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the studio did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=30)


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
    expect(page.locator("#gallery img")).to_have_count(1)
    if shots:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(DOCS / "studio_desktop.png"))
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(DOCS / "studio_phone.png"), full_page=True)
    assert not errors, errors


def test_a_bad_upload_shows_a_readable_message(server, browser, tmp_path):
    page = browser.new_page()
    page.goto(server)
    expect(page.locator("body[data-ready='1']")).to_have_count(1)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page.set_input_files("#content-file", str(bad))
    expect(page.locator("#message")).to_contain_text("is not an image")


def test_live_mode_stylizes_the_fake_camera(server, browser):
    from dreamstyle.fastnet import bundled_styles

    if not bundled_styles():
        pytest.skip("no bundled styles")
    page = browser.new_page()
    page.goto(server)
    expect(page.locator("body[data-ready='1']")).to_have_count(1)
    page.get_by_role("tab", name="Live").click()
    page.click("#start")
    page.wait_for_function("Number(document.body.dataset.liveFrames || 0) >= 5", timeout=60_000)
    expect(page.locator("#live-out")).to_be_visible()
    shot = Image.open(io.BytesIO(page.locator("#live-out").screenshot()))
    assert shot.size[0] > 100
    expect(page.locator("#status")).to_contain_text("frames/s")
    page.click("#cancel")
