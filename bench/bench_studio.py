"""The studio's speed (issue 8): start-up, the first preview, and live frames.

Starts ``dreamstyle serve`` as a command on a free port and measures, over HTTP:
* ready: from launch until ``/api/info`` answers (target: within 2 s);
* first preview: a default stylize job of the bundled 512-px pair, from the POST until its first
  preview is there (target: within 3 s), and the whole job;
* live: frames per second of 320-px webcam-sized JPEG frames through ``/api/live`` with a bundled
  style, one after another as the page sends them, against calling the same styler in this process
  (the added latency is the server's).

    python bench/bench_studio.py [--frames 40] [--out bench/results_studio.json]
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import harness

ROOT = harness.REPO


def call(url: str, data: bytes | None = None, content_type: str = "application/json") -> bytes:
    req = urllib.request.Request(url, data=data, headers={"content-type": content_type} if data else {})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results_studio.json")
    args = parser.parse_args()
    harness.wait_idle()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dreamstyle", "serve", "--port", str(port)],
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    results: dict = {}
    try:
        while True:
            try:
                call(f"{base}/api/info")
                break
            except OSError:
                if time.perf_counter() - t0 > 30:
                    raise SystemExit("the studio did not start in 30 s") from None
                time.sleep(0.02)
        results["ready_s"] = round(time.perf_counter() - t0, 3)
        harness.log(f"ready {results['ready_s']:.2f} s after launch")
        time.sleep(8)  # what a user spends choosing images: the server warms the network meanwhile
        content, style = harness.pair()
        ids = []
        for path in (content, style):
            boundary = "dreamstyle-bench"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
                    f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + \
                f"\r\n--{boundary}--\r\n".encode()
            ids.append(json.loads(call(f"{base}/api/uploads", body, f"multipart/form-data; boundary={boundary}"))["id"])
        t1 = time.perf_counter()
        job = json.loads(call(f"{base}/api/jobs", json.dumps({"mode": "stylize", "content": ids[0],
                                                                 "styles": [ids[1]], "settings": {}}).encode()))
        first = None
        with urllib.request.urlopen(f"{base}/api/jobs/{job['id']}/events", timeout=300) as stream:  # as the page
            for raw in stream:
                line = raw.decode().strip()
                if not line.startswith("data: "):
                    continue
                view = json.loads(line[6:])
                if first is None and view["preview_step"]:
                    first = time.perf_counter() - t1
                if view["state"] in ("done", "failed", "cancelled"):
                    break
        results["first_preview_s"] = round(first or -1, 3)
        results["stylize_job_s"] = round(time.perf_counter() - t1, 2)
        harness.log(f"first preview {results['first_preview_s']:.2f} s after start; whole job "
                    f"{results['stylize_job_s']:.1f} s ({view['state']})")
        # live frames
        import numpy as np
        from PIL import Image

        from dreamstyle.tasks.apply import load_styler, stylize_array

        frame = Image.open(harness.EXAMPLES / "chelsea.jpg").convert("RGB")
        frame.thumbnail((320, 320))
        buf = io.BytesIO()
        frame.save(buf, format="JPEG", quality=85)
        jpeg = buf.getvalue()
        call(f"{base}/api/live?model=starry_night&size=320", jpeg, "image/jpeg")  # loads the model
        times = []
        for _ in range(args.frames):
            t = time.perf_counter()
            call(f"{base}/api/live?model=starry_night&size=320", jpeg, "image/jpeg")
            times.append(time.perf_counter() - t)
        styler = load_styler("starry_night")[0]
        array = np.asarray(frame, dtype=np.float32) / 255
        stylize_array(styler, array)
        local = []
        for _ in range(args.frames):
            t = time.perf_counter()
            stylize_array(styler, array)
            local.append(time.perf_counter() - t)
        served, direct = statistics.median(times), statistics.median(local)
        results["live"] = {"frame": list(frame.size), "served_ms": round(served * 1000, 1),
                           "in_process_ms": round(direct * 1000, 1), "fps": round(1 / served, 1),
                           "added_ms": round((served - direct) * 1000, 1)}
        harness.log(f"live {frame.size[0]}x{frame.size[1]}: {1 / served:.1f} frames/s through the server "
                    f"({served * 1000:.0f} ms; in process {direct * 1000:.0f} ms)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    harness.log(f"wrote {harness.write_results(args.out, results)}")


if __name__ == "__main__":
    main()
