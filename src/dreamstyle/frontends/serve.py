"""``dreamstyle serve``: the local web studio, a thin HTTP front end over the API, the settings and jobs.

FastAPI serves one hand-written page (``static/``: no CDN, no build step) and a small JSON API. The
page's forms come from :func:`dreamstyle.settings.describe`, so they cannot drift from the CLI. Jobs
run through :mod:`dreamstyle.jobs`; their progress reaches the page as server-sent events (async: an
open stream holds no thread). Every request passes :mod:`.guard` first (Host, Origin, Content-Type,
body size while it arrives); what the page may send, and how it names files, is :mod:`.studio`'s.
Uploads are checked (size, pixels, really an image) and stored under random names in a temporary
folder that is deleted when the server stops.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import UserError
from ..jobs import FINISHED, Job
from ..settings import describe
from .guard import Guard, Route
from .studio import EXAMPLES, JOB_BODY_BYTES, LIVE_NOTE, MODES, MULTIPART_SLACK, Studio, command_line

STATIC = Path(__file__).resolve().parent / "static"


# --- the app ---------------------------------------------------------------------------------------

def create_app(root: Path | None = None, warm: bool = True, hosts: tuple[str, ...] = (), **options: Any) -> FastAPI:
    """The studio's app. ``root``: where jobs and uploads go (a new temporary folder by default, deleted
    at shutdown). ``warm``: import torch and build the default network in the background at start.
    ``hosts``: host names to answer to besides the address a connection comes to (``--host``)."""
    own_root = root is None
    folder = Path(tempfile.mkdtemp(prefix="dreamstyle-studio-")) if root is None else root
    studio = Studio(folder, **options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio

        if warm:  # once the server is listening: the import must not hold up the first page
            import asyncio

            studio.warm = "warming"
            asyncio.get_running_loop().call_later(
                0.5, lambda: threading.Thread(target=_warm_up, args=(studio,), daemon=True).start())
        yield
        studio.queue.close_streams()
        await anyio.to_thread.run_sync(studio.close)  # cancel, wait for the jobs to stop, then delete
        if own_root:
            if studio.stopped_cleanly:
                import shutil

                shutil.rmtree(folder, ignore_errors=True)
            else:
                print(f"dreamstyle: warning: a job did not stop in time; its files stay in {folder}", file=sys.stderr)

    app = FastAPI(title="dreamstyle studio", version=__version__, lifespan=lifespan)
    app.state.studio = studio
    upload_route = Route(("multipart/form-data",), studio.max_upload_bytes + MULTIPART_SLACK, studio.max_upload_bytes)
    app.add_middleware(Guard, hosts=hosts, routes={
        "/api/jobs": Route(("application/json",), JOB_BODY_BYTES), "/api/uploads": upload_route,
        "/api/params": upload_route, "/api/live": Route(("image/",), studio.max_upload_bytes)})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"there is no {request.url.path[:100]} here"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path[:100]}"
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problem = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in problem.get("loc", ())[1:]) or "the request"
        return JSONResponse({"error": f"{where}: {str(problem.get('msg', 'is not valid')).lower()}"}, status_code=400)

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception) -> JSONResponse:  # never a stack trace in the page
        return JSONResponse({"error": f"the server could not do that: {type(exc).__name__}"}, status_code=500)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        from ..backbones import DEFAULT_BACKBONE, SPECS, list_taps
        from ..fastnet import bundled_styles

        return {"version": __version__, "modes": {m: describe(cls) for m, cls in MODES.items()},
                "networks": list(SPECS), "default_network": DEFAULT_BACKBONE, "styles": list(bundled_styles()),
                "taps": {name: [t.name for t in list_taps(spec)] for name, spec in SPECS.items()},
                "examples": list(studio.examples), "warm": studio.warm, "live": LIVE_NOTE,
                "limits": {"bytes": studio.max_upload_bytes, "pixels": studio.max_pixels,
                           "waiting_jobs": studio.queue.max_waiting, "same_job_seconds": studio.queue.same_seconds}}

    @app.get("/api/examples/{name}")
    def example(name: str) -> FileResponse:
        path = studio.examples.get(name.lower())
        if path is None:
            raise HTTPException(404, "there is no such example")
        return FileResponse(path, media_type="image/jpeg")

    async def form_file(request: Request) -> tuple[bytes, str]:
        """The bytes and name of the form field 'file' (the guard stops the body past the size limit)."""
        try:
            form = await request.form(max_files=1, max_fields=8)
        except StarletteHTTPException:  # the guard's 413
            raise
        except Exception:  # noqa: BLE001 - a malformed multipart body
            raise HTTPException(400, "send the file as the multipart form field 'file'") from None
        file = form.get("file")
        if file is None or isinstance(file, str):
            raise HTTPException(400, "send the file as the form field 'file'")
        return await file.read(studio.max_upload_bytes + 1), file.filename or ""

    @app.post("/api/uploads")
    async def upload(request: Request) -> dict[str, Any]:
        import anyio

        data, name = await form_file(request)
        return await anyio.to_thread.run_sync(studio.save_upload, data, name)

    @app.get("/api/uploads/{upload_id}")
    def uploaded(upload_id: str) -> FileResponse:
        found = studio.upload(upload_id, "image")
        if found is None:
            raise HTTPException(404, "there is no such upload (uploads go when the server stops); upload it again")
        return FileResponse(found.path, media_type="image/png")

    @app.post("/api/params")
    async def params_of(request: Request) -> dict[str, Any]:
        """The settings embedded in a dreamstyle PNG, to restore the form from it."""
        data, _ = await form_file(request)
        try:
            with Image.open(io.BytesIO(data)) as im:
                text = im.info.get("dreamstyle")
        except Exception:  # noqa: BLE001 - any file that is not an image
            raise HTTPException(400, "that file is not an image") from None
        if not text:
            raise HTTPException(400, "that image has no dreamstyle settings in it")
        try:
            params = json.loads(text)
        except (ValueError, RecursionError):
            params = None
        if not isinstance(params, dict):
            raise HTTPException(400, "that image's dreamstyle settings are damaged")
        return params

    @app.post("/api/jobs")
    async def start(request: Request) -> dict[str, Any]:
        import anyio

        try:
            body = await request.json()
        except (ValueError, RecursionError):
            raise HTTPException(400, "send the job as JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "send the job as a JSON object")
        job = await anyio.to_thread.run_sync(studio.start, body)
        return job.view(studio.queue.position(job))

    @app.get("/api/jobs")
    def jobs() -> list[dict[str, Any]]:
        return studio.queue.views()

    def find(job_id: str) -> Job:
        job = studio.queue.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job (jobs are forgotten when the server stops)")
        return job

    @app.get("/api/jobs/{job_id}")
    def job_view(job_id: str) -> dict[str, Any]:
        job = find(job_id)
        return job.view(studio.queue.position(job))

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str) -> StreamingResponse:
        job = find(job_id)

        async def stream() -> AsyncIterator[str]:
            seen = -1
            while True:
                seen = await studio.queue.wait_async(job, seen)
                view = job.view(studio.queue.position(job))
                yield f"data: {json.dumps(view)}\n\n"
                if view["state"] in FINISHED or studio.queue.streams_closed:
                    return  # the last message sent is the final state

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        job = find(job_id)
        studio.queue.cancel(job)
        return job.view(studio.queue.position(job))

    @app.get("/api/jobs/{job_id}/preview")
    def preview(job_id: str) -> Response:
        job = find(job_id)
        if job.preview is None:
            raise HTTPException(404, "no preview yet")
        return Response(job.preview, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/result")
    def result(job_id: str) -> FileResponse:
        job = find(job_id)
        if job.result is None or not job.result.is_file():
            raise HTTPException(404, "no result yet")
        return FileResponse(job.result, media_type="image/png", filename=f"dreamstyle-{job.mode}-{job.id}.png")

    @app.get("/api/jobs/{job_id}/command")
    def command(job_id: str) -> dict[str, str]:
        return {"command": command_line(find(job_id))}

    @app.post("/api/live")
    async def live(request: Request, model: str = "starry_night", size: int = 320) -> Response:
        """One frame (the body, an image) styled at once. Frames of every page wait in one line: the
        ``X-Live-Waited`` header says how many seconds this one waited for others."""
        import anyio

        data = bytearray()
        async for chunk in request.stream():  # the guard stops a body past the limit; so does this
            data += chunk
            if len(data) > studio.max_upload_bytes:
                raise HTTPException(413, "the frame is too large")
        out, waited = await anyio.to_thread.run_sync(studio.live, bytes(data), model, max(32, min(size, 1024)))
        return Response(out, media_type="image/jpeg", headers={"X-Live-Waited": f"{waited:.3f}"})

    return app


def _warm_up(studio: Studio) -> None:
    """While the user picks images: import torch, build the default network and run a tiny stylize once.
    A process's first run pays about 5 s of one-time set-up (BENCHMARKS.md); after this the first
    preview of a default job comes in well under a second of optimization. Jobs may start meanwhile:
    the backbone cache and the tracer are safe to share between threads."""
    try:
        from .. import api

        api.stylize(EXAMPLES / "chelsea.jpg", EXAMPLES / "great_wave.jpg", size=256, iterations=2, pyramid=False,
                    progress=False, cancel=studio.warm_cancel)
        studio.warm = "ready"
    except Exception:  # noqa: BLE001 - a warm-up that fails costs only the head start
        studio.warm = "failed"
    except KeyboardInterrupt:  # cancelled at shutdown
        studio.warm = "failed"


def listen(host: str, port: int) -> Any:
    """A socket bound to ``host``:``port``, or a one-line UserError that names the fix."""
    import errno
    import socket

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(f"--port must be a number from 0 to 65535, got {port}; 8000 is the usual one")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        raise UserError(f"cannot serve on '{host}': not an address or a name this machine knows; "
                        "use --host 127.0.0.1") from None
    family, kind, proto, _, address = min(found, key=lambda a: a[0] != socket.AF_INET)  # IPv4 first, as uvicorn
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is in use; pick another with --port, or stop what uses it") from None
        if e.errno == errno.EACCES:
            raise UserError(f"port {port} needs administrator rights; pick one above 1023 with --port") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise UserError(f"cannot serve on {host}: it is not an address of this machine; use --host 127.0.0.1 "
                            "or one of its addresses") from None
        raise UserError(f"cannot serve on {host} port {port}: {e.strerror or e}") from None
    return sock


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the studio until Ctrl-C. Bad options (a port out of range or in use, an unknown host) are refused
    in one line before anything is created."""
    import shutil

    import uvicorn

    sock = listen(host, port)
    root = Path(tempfile.mkdtemp(prefix="dreamstyle-studio-"))
    studio: Studio | None = None
    try:
        if host not in ("127.0.0.1", "localhost", "::1"):
            print(f"dreamstyle: warning: serving on {host}: anyone who can reach this machine can use the studio "
                  "and its CPU; there is no login", file=sys.stderr)
        app = create_app(root, hosts=(host,))
        studio = app.state.studio
        shown = f"[{host}]" if ":" in host else host
        print(f"dreamstyle studio: http://{shown}:{sock.getsockname()[1]}/  (Ctrl-C stops it)", file=sys.stderr,
              flush=True)
        queue = studio.queue

        class Server(uvicorn.Server):
            async def shutdown(self, sockets: Any = None) -> None:
                queue.close_streams()  # end the pages' event streams, or uvicorn waits for them forever
                await super().shutdown(sockets)

        Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
        if studio is None or studio.stopped_cleanly:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"dreamstyle: warning: a job did not stop in time; its files stay in {root}", file=sys.stderr)
