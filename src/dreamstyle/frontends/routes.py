"""The studio's routes, in groups: error replies, the page and its information, uploads, jobs, live frames.

Each group is added to the app by :func:`serve.create_app`; every route is thin, over :class:`studio.Studio`.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import UserError
from ..images import params_of
from ..jobs import FINISHED, Job
from ..settings import describe
from ..version import __version__
from .studio import EXAMPLE_KINDS, LIVE_NOTE, MODES, Studio, command_line, fast_styles

STATIC = Path(__file__).resolve().parent / "static"
NEEDS_DOWNLOAD = "needs its weights downloaded once (internet), or the command line's --weights"


def add_error_replies(app: FastAPI) -> None:
    """Every error is JSON ``{"error": one line}``, never a stack trace."""
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
        import traceback

        traceback.print_exception(exc)  # to the server's log; plain words to the page
        return JSONResponse({"error": "the server could not do that because of an unexpected error in dreamstyle; "
                                      "its log has the details"}, status_code=500)


def add_page(app: FastAPI, studio: Studio) -> None:
    """The page, its static files, what it needs to know (``/api/info``) and the bundled examples."""
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        from ..backbones import DEFAULT_BACKBONE, SPECS, list_taps, weights_here
        from ..fastnet import bundled_styles

        return {"version": __version__, "modes": {m: describe(cls) for m, cls in MODES.items()},
                "networks": list(SPECS), "default_network": DEFAULT_BACKBONE, "styles": list(bundled_styles()),
                "network_needs": {name: None if weights_here(spec) else NEEDS_DOWNLOAD for name, spec in SPECS.items()},
                "fast_styles": {key: v["painting"] for key, v in fast_styles().items()},
                "taps": {name: [t.name for t in list_taps(spec)] for name, spec in SPECS.items()},
                "examples": list(studio.examples), "warm": studio.warm, "live": LIVE_NOTE,
                "example_kinds": {name: {"kind": kind, "title": title} for name, (kind, title) in EXAMPLE_KINDS.items()
                                  if name in studio.examples},
                "limits": {"bytes": studio.max_upload_bytes, "pixels": studio.max_pixels,
                           "waiting_jobs": studio.queue.max_waiting, "same_job_seconds": studio.queue.same_seconds}}

    @app.get("/api/examples/{name}")
    def example(name: str) -> FileResponse:
        path = studio.examples.get(name.lower())
        if path is None:
            raise HTTPException(404, "there is no such example")
        return FileResponse(path, media_type="image/jpeg")


def add_uploads(app: FastAPI, studio: Studio) -> None:
    """Uploaded images, and the settings embedded in a dropped dreamstyle PNG."""
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
    async def params_in_png(request: Request) -> dict[str, Any]:
        """The settings embedded in a dreamstyle PNG, to restore the form from it."""
        data, _ = await form_file(request)
        try:
            with Image.open(io.BytesIO(data)) as im:
                params = params_of(im, "that image")
            return {**params, "restore": studio.refs_for(params)}  # its photo and paintings, where this server has them
        except UserError as e:
            raise HTTPException(400, str(e)) from None
        except Exception:  # noqa: BLE001 - any file that is not an image
            raise HTTPException(400, "that file is not an image") from None


def _find(studio: Studio, job_id: str) -> Job:
    job = studio.queue.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "no such job (jobs are forgotten when the server stops)")
    return job


def add_jobs(app: FastAPI, studio: Studio) -> None:
    """Jobs: start, list, look at one, follow (server-sent events) and cancel; then their outputs."""
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
        return studio.queue.view(job)

    @app.get("/api/jobs")
    def jobs() -> list[dict[str, Any]]:
        return studio.queue.views()

    @app.get("/api/jobs/{job_id}")
    def job_view(job_id: str) -> dict[str, Any]:
        job = _find(studio, job_id)
        return studio.queue.view(job)

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str) -> StreamingResponse:
        job = _find(studio, job_id)

        async def stream() -> AsyncIterator[str]:
            seen = -1
            while True:
                seen = await studio.queue.wait_async(job, seen)
                view = studio.queue.view(job)
                yield f"data: {json.dumps(view)}\n\n"
                if view["state"] in FINISHED or studio.queue.streams_closed:
                    return  # the last message sent is the final state

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        job = _find(studio, job_id)
        studio.queue.cancel(job)
        return studio.queue.view(job)

    @app.post("/api/jobs/{job_id}/remove")
    def remove(job_id: str) -> dict[str, Any]:
        """Forget a finished job and delete its files (the job panel's remove button)."""
        job = _find(studio, job_id)
        if not studio.queue.remove(job):
            raise HTTPException(409, "the job has not finished: cancel it first")
        return {"removed": job.id}

    @app.post("/api/jobs/{job_id}/as-photo")
    def as_photo(job_id: str) -> dict[str, Any]:
        """The job's result as a new upload, to use it as the next job's photo."""
        return studio.result_as_upload(_find(studio, job_id))

    add_job_outputs(app, studio)


def add_job_outputs(app: FastAPI, studio: Studio) -> None:
    """A job's latest preview, its result and the CLI line that makes the same picture."""
    @app.get("/api/jobs/{job_id}/preview")
    def preview(job_id: str) -> Response:
        job = _find(studio, job_id)
        if job.preview is None:
            raise HTTPException(404, "no preview yet")
        return Response(job.preview, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/result")
    def result(job_id: str) -> FileResponse:
        job = _find(studio, job_id)
        if job.result is None or not job.result.is_file():
            raise HTTPException(404, "no result yet")
        return FileResponse(job.result, media_type="image/png", filename=f"dreamstyle-{job.mode}-{job.id}.png")

    @app.get("/api/jobs/{job_id}/command")
    def command(job_id: str) -> dict[str, str]:
        return {"command": command_line(_find(studio, job_id))}


def add_live(app: FastAPI, studio: Studio) -> None:
    """Live frames: one image in, the styled image out at once."""
    @app.post("/api/live")
    async def live(request: Request, model: str = "starry_night", size: int = 320, snapshot: bool = False) -> Response:
        """One frame (the body, an image) styled at once. Frames of every page wait in one line: the
        ``X-Live-Waited`` header says how many seconds this one waited for others. ``snapshot``: a PNG to keep,
        with the settings embedded."""
        import anyio

        data = bytearray()
        async for chunk in request.stream():  # the guard stops a body past the limit; so does this
            data += chunk
            if len(data) > studio.max_upload_bytes:
                raise HTTPException(413, "the frame is too large")
        out, waited = await anyio.to_thread.run_sync(studio.live, bytes(data), model, max(32, min(size, 1024)),
                                                     snapshot)
        return Response(out, media_type="image/png" if snapshot else "image/jpeg",
                        headers={"X-Live-Waited": f"{waited:.3f}"})
