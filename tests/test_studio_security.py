"""The studio as a hostile client or another web page would try it: values that name server files, foreign
Hosts and Origins, wrong Content-Types, bodies too big to hold, many open event streams, forged and
wrong-typed settings, and bad options to `dreamstyle serve`. Every refusal is the studio's one-line
``{"error": ...}``, never a 500 or a traceback."""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL.PngImagePlugin import PngInfo

from conftest import png, real_server, upload
from dreamstyle.errors import UserError
from dreamstyle.frontends.serve import create_app, serve


@pytest.fixture()
def client(tmp_path):
    app = create_app(tmp_path / "studio", warm=False, max_upload_bytes=200_000, max_pixels=300 * 300,
                     preview_every=2)
    with TestClient(app) as c:
        yield c


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb, as far as a reader
    that trusts the header knows)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(4096))) + chunk(b"IEND", b""))


def one_line_error(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    error = r.json()["error"]
    assert "\n" not in error and "Traceback" not in error and "could not do that" not in error, error
    return error


# --- 1. a value from the page never names a server file --------------------------------------------

@contextlib.contextmanager
def file_access(monkeypatch):
    """Every path the process opens or looks at (open, stat, access) while the block runs."""
    import io as io_module

    seen: list[str] = []
    with monkeypatch.context() as m:
        for module, name in [(builtins, "open"), (io_module, "open"), (os, "open"), (os, "stat"), (os, "lstat"),
                             (os, "access"), (os.path, "exists"), (os.path, "isfile")]:
            original = getattr(module, name)

            def counted(*args, _original=original, **kwargs):
                if args:
                    seen.append(os.fsdecode(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else "")
                return _original(*args, **kwargs)

            m.setattr(module, name, counted)
        yield seen


def forged_models(tmp_path) -> list[str]:
    """A bundled model copied elsewhere under every spelling the old check missed, and system files."""
    from dreamstyle.fastnet import bundled_styles
    from dreamstyle.fastnet.styles import bundled_onnx

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spellings = ["/etc/passwd", "/etc/shadow", "/proc/self/environ", "/etc/hostname.PT", "/srv/missing.onnx",
                 "/nope/missing.pt", "../../uploads/x.pt", "starry_night.pt", "STARRY_NIGHT.PT", " starry_night"]
    styles = bundled_styles()
    if styles:
        model = next(iter(styles.values()))
        for name in ("x.pth", "x.PT", "x.pt"):
            shutil.copy(model, elsewhere / name)
            spellings.append(str(elsewhere / name))
        onnx = bundled_onnx(next(iter(styles)))
        if onnx is not None:
            shutil.copy(onnx, elsewhere / "x.ONNX")
            spellings.append(str(elsewhere / "x.ONNX"))
    return spellings


def test_a_model_value_is_a_bundled_style_or_an_upload_and_nothing_else(client, tmp_path, monkeypatch):
    spellings = forged_models(tmp_path)
    errors = set()
    with file_access(monkeypatch) as seen:
        for value in spellings:
            r = client.post("/api/jobs", json={"mode": "apply", "content": "example:chelsea",
                                               "settings": {"model": value}})
            errors.add(one_line_error(r, 400))
            r = client.post("/api/live", params={"model": value}, content=png(), headers={"content-type": "image/png"})
            errors.add(one_line_error(r, 400))
    assert len(errors) == 1, errors  # the same refusal for every spelling: nothing to learn about the disk
    assert next(iter(errors)).startswith("the model must be a bundled style (")
    touched = [p for p in seen if any(v.strip() and (v.strip() in p or Path(v).name in Path(p).name)
                                      for v in spellings if "/" in v)]
    assert touched == [], touched
    assert client.get("/api/jobs").json() == []


def test_every_field_that_names_a_file_takes_only_examples_and_uploads(client, tmp_path, monkeypatch):
    photo = upload(client, png()).json()
    shutil.copy(Path(__file__).resolve().parents[1] / "src/dreamstyle/examples/chelsea.jpg", tmp_path / "c.jpg")
    model = upload(client, b"not really a model", name="m.pt").json()
    forged = ["/etc/passwd", str(tmp_path / "c.jpg"), f"../uploads/{photo['id']}", f"./{photo['id']}",
              "example:../../etc/passwd", "EXAMPLE:/etc/passwd", "example:chelsea.jpg", model["id"],
              "/proc/self/environ", "a" * 300]
    stylize = {"mode": "stylize", "content": photo["id"], "styles": ["example:great_wave"]}
    fields = [(lambda v: {**stylize, "content": v}, "content"), (lambda v: {**stylize, "styles": [v]}, "style"),
              (lambda v: {**stylize, "settings": {"masks": v}}, "masks"),
              (lambda v: {**stylize, "settings": {"init": v}}, "init"),
              (lambda v: {"mode": "dream", "content": photo["id"], "settings": {"guide": v}}, "guide"),
              (lambda v: {"mode": "explore", "settings": {"tap": "blocks.5", "image": v}}, "image"),
              (lambda v: {"mode": "dream", "content": v}, "photo")]
    with file_access(monkeypatch) as seen:
        for body, what in fields:
            errors = {one_line_error(client.post("/api/jobs", json=body(v)), 400) for v in forged}
            assert errors == {f"the {what} image is not an example or a file uploaded on this page; pick an example "
                              "or upload it again"}, (what, errors)
        weights = {one_line_error(client.post("/api/jobs", json={**stylize, "settings": {"weights": v}}), 400)
                   for v in ["/etc/passwd", str(tmp_path / "w.pth"), "random.pth"]}
        assert weights == {"weights may only be 'random' here: a weights file is for the command line"}
    assert not [p for p in seen if "passwd" in p or "environ" in p or str(tmp_path / "c.jpg") in p]
    assert client.get("/api/jobs").json() == []
    # the real names pass in any case
    job = client.post("/api/jobs", json={**stylize, "content": photo["id"].upper(), "styles": ["Example:Great_Wave"],
                                         "settings": {"init": "NOISE", "size": 64, "iterations": 2}})
    assert job.status_code == 200, job.text
    client.post(f"/api/jobs/{job.json()['id']}/cancel")


# --- 2. another web page, another host name --------------------------------------------------------

def test_other_pages_hosts_and_content_types_are_refused(client):
    attack = json.dumps({"mode": "apply", "content": "example:chelsea", "settings": {"model": "starry_night"}})
    r = client.post("/api/jobs", content=attack, headers={"content-type": "text/plain", "origin": "http://evil.example"})
    assert one_line_error(r, 403) == "requests from other web pages are refused; use the studio's own page"
    r = client.post("/api/jobs", content=attack, headers={"content-type": "text/plain"})  # no Origin: still JSON only
    assert "application/json" in one_line_error(r, 415)
    r = client.post("/api/jobs", content=attack, headers={"content-type": "application/json",
                                                          "sec-fetch-site": "cross-site"})
    one_line_error(r, 403)
    r = client.post("/api/jobs", content=attack, headers={"content-type": "application/json",
                                                          "origin": "http://testserver.evil.example"})
    one_line_error(r, 403)
    r = client.post("/api/uploads", content=png(), headers={"content-type": "image/png"})
    assert "multipart/form-data" in one_line_error(r, 415)
    r = client.post("/api/live", content=png(), headers={"content-type": "text/plain"})
    assert "image/*" in one_line_error(r, 415)
    r = client.post("/api/jobs/x/cancel", headers={"origin": "null"})
    one_line_error(r, 403)
    for host in ("evil.example", "testserver:8080", "127.0.0.1", ""):  # DNS rebinding: a name the server is not
        r = client.get("/api/info", headers={"host": host})
        assert "does not answer to the address" in one_line_error(r, 400), host
    assert client.get("/api/jobs").json() == []
    # the page's own requests pass: same origin, JSON
    page = {"content-type": "application/json; charset=utf-8", "origin": "http://testserver",
            "sec-fetch-site": "same-origin"}
    r = client.post("/api/jobs", content=attack, headers=page)
    assert r.status_code == 200, r.text


def raw_get(port: int, path: str, host: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_a_real_server_answers_only_to_its_own_address(tmp_path):
    app = create_app(tmp_path / "studio", warm=False)
    with real_server(app) as port:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            assert raw_get(port, "/api/jobs", host).startswith(b"HTTP/1.1 200"), host
        for host in (f"attacker.example:{port}", f"127.0.0.1:{port + 1}", f"[::1]:{port}", "127.0.0.1"):
            answer = raw_get(port, "/api/jobs", host)
            assert answer.startswith(b"HTTP/1.1 400") and b"does not answer to the address" in answer, host
        # A 300-character upload id was a 500 that also dropped the keep-alive connection: one connection
        # now carries the refusal and the next request.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            peers = []
            for path, status in (("/api/uploads/" + "a" * 300, 404), ("/api/jobs", 200)):
                with http.stream("GET", path) as r:
                    peers.append(r.extensions["network_stream"].get_extra_info("client_addr"))
                    r.read()
                assert r.status_code == status, (path, r.text)
            assert peers[0] is not None and peers[0] == peers[1], peers  # the same connection, kept alive


# --- 3. a body too big is refused while it arrives ----------------------------------------------------

SERVER = """
import sys, uvicorn
from dreamstyle.frontends.serve import create_app
uvicorn.run(create_app(warm=False, max_upload_bytes=1_000_000), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
"""


def _proc(pid: int, path: str, field: str) -> int:
    for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * (1024 if path == "status" else 1)
    raise AssertionError(field)


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="reads /proc")
def test_a_100_mb_body_is_refused_without_being_held_or_spooled(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env={**os.environ, "TMPDIR": str(tmp_path)})
    url = f"http://127.0.0.1:{port}"
    size = 100 * 2**20
    boundary = "dreamstyleboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body(prefix: bytes = b"", suffix: bytes = b""):
        yield prefix
        block = bytes(2**20)
        for _ in range(size // len(block)):
            yield block
        yield suffix

    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/api/info").status_code == 200:
                        break
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.1)
            peak, written = _proc(server.pid, "status", "VmHWM"), _proc(server.pid, "io", "wchar")
            multipart = f"multipart/form-data; boundary={boundary}"
            answers = [
                http.post("/api/live", content=body(), headers={"content-type": "image/png"}),  # no Content-Length
                http.post("/api/uploads", content=body(head, tail),
                          headers={"content-type": multipart, "content-length": str(len(head) + size + len(tail))}),
                http.post("/api/uploads", content=body(head, tail), headers={"content-type": multipart}),
            ]
            grew = _proc(server.pid, "status", "VmHWM") - peak
            wrote = _proc(server.pid, "io", "wchar") - written
            assert grew < 30 * 2**20, f"the server's peak memory grew by {grew / 2**20:.0f} MB"
            assert wrote < 5 * 2**20, f"the server wrote {wrote / 2**20:.0f} MB (a spooled upload)"
            assert [a.status_code for a in answers] == [413] * 3, [a.text for a in answers]
            assert answers[1].json()["error"] == "the upload is 100 MB; the limit is 1.0 MB"
            assert all("limit" in a.json()["error"] for a in answers)
            assert http.get("/api/info").status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


def test_bad_uploads_name_the_limit_and_frames_get_the_upload_checks(client):
    for route in ("/api/uploads", "/api/params"):  # a dropped PNG has the upload's limit too
        r = client.post(route, files={"file": ("big.png", b"\x89PNG" + bytes(400_000), "image/png")})
        assert one_line_error(r, 413).startswith("the upload is 0.4 MB; the limit is 0.2 MB"), route
    for data, status, words in [(png_claiming(20000, 20000), 413, "megapixels"),  # a bomb: 400 megapixels
                                (png_claiming(400, 400), 413, "megapixels"),  # over this studio's 90,000 pixels
                                (b"not an image", 400, "is not an image")]:
        r = client.post("/api/live", content=data, headers={"content-type": "image/png"})
        assert words in one_line_error(r, status)
        r = upload(client, data)
        assert words in one_line_error(r, status)


# --- 4. event streams hold no thread -----------------------------------------------------------------

def test_fifty_open_event_streams_leave_the_page_and_the_api_answering(tmp_path):
    app = create_app(tmp_path / "studio", warm=False)
    release = threading.Event()
    job = app.state.studio.queue.submit("stylize", lambda job: release.wait(120), {})
    with real_server(app) as port:
        streams = []
        try:
            for _ in range(50):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(f"GET /api/jobs/{job.id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                streams.append(s)
            for s in streams:  # each has its first message: every stream is open and waiting
                data = b""
                while b"data: " not in data:
                    data += s.recv(65536)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as http:
                began = time.monotonic()
                assert http.get("/").status_code == 200
                page = time.monotonic() - began
                assert [j["id"] for j in http.get("/api/jobs").json()] == [job.id]
                both = time.monotonic() - began
                assert page < 1.0 and both - page < 1.0, (page, both - page)  # each within a second
        finally:
            release.set()
            for s in streams:
                s.close()


# --- the hostile sweep: wrong types, forged settings, bounds, unknown URLs ------------------------------

NESTED = "[" * 100_000
BAD_JOBS = [
    ('{"mode": ["stylize"]}', "unknown mode a list"),
    ('{"mode": "stylize", "settings": [1, 2]}', "settings must be a JSON object"),
    ('{"mode": "stylize", "settings": "size=64"}', "settings must be a JSON object"),
    ('{"mode": "stylize", "settings": {"size": [1, 2]}}', "size must be a whole number, got a list"),
    ('{"mode": "stylize", "settings": {"size": {"x": 1}}}', "size must be a whole number, got an object"),
    ('{"mode": "stylize", "settings": {"size": 1e400}}', "size must be a whole number, got Infinity"),
    ('{"mode": "stylize", "settings": {"size": 64.7}}', "size must be a whole number, got 64.7"),
    ('{"mode": "stylize", "settings": {"size": 1' + "0" * 400 + '}}', "size must be <= 16384, got a huge number"),
    ('{"mode": "stylize", "settings": {"size": true}}', "size must be a whole number, got true"),
    ('{"mode": "stylize", "settings": {"pyramid": "maybe"}}', "pyramid must be on or off"),
    ('{"mode": "stylize", "settings": {"style_weight": [1]}}', "style_weight must be a number, got a list"),
    ('{"mode": "stylize", "settings": {"style_layers": "nope.7"}}', "nope.7"),
    ('{"mode": "stylize", "settings": {"dream": "nope=2"}}', "nope"),
    ('{"mode": "stylize", "settings": {"nope": 1}}', "unknown setting 'nope'"),
    ('{"mode": "dream", "settings": {"targets": "nope.3"}}', "nope.3"),
    ('{"mode": "explore", "settings": {"tap": "nope"}}', "nope"),
    ('{"mode": "apply", "settings": {"preserve_color": 3}}', "preserve_color must be on or off"),
    (NESTED, "send the job as JSON"),
    ("[1, 2]", "send the job as a JSON object"),
]


@pytest.mark.parametrize("body, words", BAD_JOBS, ids=[b[:40] for b, _ in BAD_JOBS])
def test_wrong_typed_and_loose_job_settings_are_a_400_with_the_fix(client, body, words):
    photo = upload(client, png()).json()["id"]
    if body.startswith('{"mode": "') and '"mode": ["' not in body:
        body = body[:-1] + f', "content": "{photo}", "styles": ["example:great_wave"]}}'
    r = client.post("/api/jobs", content=body, headers={"content-type": "application/json"})
    assert words in one_line_error(r, 400)
    assert client.get("/api/jobs").json() == []


def test_a_device_the_machine_lacks_is_refused_at_submission(client):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for mode in ("stylize", "dream", "explore", "apply"):
        settings = {"device": "cuda", **({"tap": "blocks.5"} if mode == "explore" else {})}
        r = client.post("/api/jobs", json={"mode": mode, "content": "example:chelsea", "styles": ["example:great_wave"],
                                           "settings": settings})
        assert "no CUDA GPU is available" in one_line_error(r, 400), mode
    assert client.get("/api/jobs").json() == []


def test_forged_settings_in_a_dropped_png_are_a_400(client):
    for text in ("[1, 2]", NESTED, '"just text"', "{not json"):
        info = PngInfo()
        info.add_text("dreamstyle", text)
        r = client.post("/api/params", files={"file": ("r.png", png(info=info), "image/png")})
        assert one_line_error(r, 400).startswith("that image has damaged dreamstyle parameters")


def test_waiting_jobs_are_bounded_with_a_clear_refusal(tmp_path):
    with TestClient(create_app(tmp_path / "studio", warm=False, max_waiting=3)) as client:
        _bounded(client)


def _bounded(client):
    studio = client.app.state.studio
    release = threading.Event()
    studio.queue.submit("stylize", lambda job: release.wait(60), {})  # holds the lane
    body = {"mode": "stylize", "content": "example:chelsea", "styles": ["example:great_wave"]}
    try:
        waiting = [client.post("/api/jobs", json={**body, "settings": {"size": 64, "iterations": 10 + i}})
                   for i in range(3)]
        assert [r.status_code for r in waiting] == [200] * 3
        r = client.post("/api/jobs", json={**body, "settings": {"size": 64, "iterations": 99}})
        assert one_line_error(r, 429) == "3 jobs are waiting already; wait for some to finish, or cancel some"
        client.post(f"/api/jobs/{waiting[0].json()['id']}/cancel")
        r = client.post("/api/jobs", json={**body, "settings": {"size": 64, "iterations": 99}})
        assert r.status_code == 200, r.text  # a place came free
    finally:
        for job in client.get("/api/jobs").json():
            client.post(f"/api/jobs/{job['id']}/cancel")
        release.set()


def test_unknown_urls_and_bad_query_values_answer_in_the_studios_shape(client):
    assert one_line_error(client.get("/nope"), 404) == "there is no /nope here"
    assert one_line_error(client.get("/api/live"), 405) == "GET is not allowed on /api/live"
    assert "size" in one_line_error(client.post("/api/live?size=big", content=png(),
                                                headers={"content-type": "image/png"}), 400)
    assert "no such job" in one_line_error(client.get("/api/jobs/nope"), 404)
    for name in ("a" * 300, "0" * 32 + ".png", "%2E%2E"):
        r = client.get(f"/api/uploads/{name}")
        assert "no such upload" in one_line_error(r, 404), name
    one_line_error(client.get("/api/uploads/..%2F..%2Fetc%2Fpasswd"), 404)
    assert "no such example" in one_line_error(client.get("/api/examples/" + "b" * 300), 404)
    assert client.get("/api/info").status_code == 200  # and the server is fine


# --- `dreamstyle serve` with bad options -----------------------------------------------------------

def test_serve_refuses_bad_ports_in_one_line_and_leaves_no_folder(tmp_path, monkeypatch, capsys):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(UserError, match=r"^--port must be a number from 0 to 65535, got -1"):
        serve("127.0.0.1", -1)
    with pytest.raises(UserError, match=r"^--port must be a number from 0 to 65535, got 70000"):
        serve("127.0.0.1", 70000)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=rf"^port {port} is in use; pick another with --port"):
            serve("127.0.0.1", port)
    with pytest.raises(UserError, match=r"^cannot serve on 'no-such-host\.invalid'"):
        serve("no-such-host.invalid", 8000)
    from dreamstyle.frontends import cli

    for port in ("-1", "70000"):  # and as the command line says it: one line, exit 2
        assert cli.main(["serve", "--port", port]) == 2
        err = capsys.readouterr().err
        assert err == f"dreamstyle: error: --port must be a number from 0 to 65535, got {port}; 8000 is the usual " \
                      "one\n", err
    assert list(tmp_path.iterdir()) == []


def test_the_cli_stops_the_studio_cleanly_with_an_open_stream(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dreamstyle", "serve", "--port", "0"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert line.startswith("dreamstyle studio: http://127.0.0.1:"), line
        url = line.split()[2].rstrip("/")
        assert list(tmp_path.glob("dreamstyle-studio-*"))
        with httpx.Client(base_url=url, timeout=30) as http:
            job = http.post("/api/jobs", json={"mode": "stylize", "content": "example:chelsea",
                                               "styles": ["example:great_wave"],
                                               "settings": {"size": 64, "iterations": 100000}}).json()
            with http.stream("GET", f"/api/jobs/{job['id']}/events") as events:
                lines = events.iter_lines()  # kept open (a dropped iterator would close the stream)
                assert next(lines).startswith("data: ")
                proc.send_signal(signal.SIGINT)  # Ctrl-C while the page follows a running job
                proc.wait(timeout=60)  # uvicorn used to wait for the stream to end, for ever
                assert [line for line in lines if line][-1].startswith("data: ")  # it ended, with a last message
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 130), proc.stderr.read()
    assert list(tmp_path.glob("dreamstyle-studio-*")) == []
