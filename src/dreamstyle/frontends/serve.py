"""``dreamstyle serve``: the local web studio, a thin HTTP front end over the API, the settings and jobs.

FastAPI serves one hand-written page (``static/``: no CDN, no build step) and a small JSON API. The
page's forms come from :func:`dreamstyle.settings.describe`, so they cannot drift from the CLI. Jobs
run through :mod:`dreamstyle.jobs`; their progress reaches the page as server-sent events. Uploads
are checked (size, pixels, really an image) and stored under random names in a temporary folder
that is deleted when the server stops; a file's own name is never used as a path.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError

from .. import __version__
from ..errors import DreamstyleError, SettingError
from ..jobs import Job, JobQueue
from ..settings import (
    ApplySettings,
    DreamSettings,
    ExploreSettings,
    StylizeSettings,
    describe,
    flag_of,
    make,
    options,
)

STATIC = Path(__file__).resolve().parent / "static"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODES: dict[str, type] = {"stylize": StylizeSettings, "dream": DreamSettings, "explore": ExploreSettings,
                          "apply": ApplySettings}
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 36_000_000  # a 6000 x 6000 photo; larger ones are refused with a message
MODEL_SUFFIXES = (".pt", ".onnx")


class Studio:
    """The server's state: the job queue, the uploads, the cached stylers for live frames."""

    def __init__(self, root: Path, max_upload_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS,
                 preview_every: int = 8) -> None:
        self.root = root
        self.uploads = root / "uploads"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.queue = JobQueue(root / "jobs", preview_every=preview_every)
        self.max_upload_bytes, self.max_pixels = max_upload_bytes, max_pixels
        self.stylers: dict[str, Any] = {}
        self.styler_lock = threading.Lock()

    # --- inputs -----------------------------------------------------------------------------------

    def forget_old_uploads(self) -> None:
        """Delete uploads older than the jobs are kept."""
        import time

        limit = time.time() - self.queue.keep_seconds
        for path in self.uploads.iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < limit:
                    path.unlink()

    def save_upload(self, data: bytes, filename: str) -> dict[str, Any]:
        """Check an uploaded file and store it under a random name; returns its id and facts."""
        self.forget_old_uploads()
        if len(data) > self.max_upload_bytes:
            raise HTTPException(413, f"the file is {len(data) / 2**20:.1f} MB; the limit is "
                                     f"{self.max_upload_bytes / 2**20:.0f} MB")
        if not data:
            raise HTTPException(400, "the file is empty")
        suffix = Path(filename or "").suffix.lower()
        if suffix in MODEL_SUFFIXES:  # a trained style network for apply
            upload_id = uuid.uuid4().hex + suffix
            (self.uploads / upload_id).write_bytes(data)
            return {"id": upload_id, "kind": "model", "name": Path(filename).name[:100]}
        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if width * height > self.max_pixels:
                    raise HTTPException(413, f"the image is {width} x {height} pixels; the limit is "
                                             f"{self.max_pixels / 1e6:.0f} megapixels")
                im.load()
                image = im.convert("RGB")
        except HTTPException:
            raise
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            raise HTTPException(400, f"'{Path(filename or 'the file').name[:80]}' is not an image that can be "
                                     f"read ({type(e).__name__}); upload a JPEG, PNG or WebP") from None
        upload_id = uuid.uuid4().hex + ".png"
        image.save(self.uploads / upload_id)
        return {"id": upload_id, "kind": "image", "width": width, "height": height,
                "name": Path(filename or "").name[:100]}

    def image_path(self, ref: Any, what: str) -> Path:
        """An upload id or ``example:NAME`` -> a file; a 400 for anything else."""
        if not isinstance(ref, str) or not ref:
            raise HTTPException(400, f"choose a {what} image")
        if ref.startswith("example:"):
            path = EXAMPLES / f"{ref[len('example:'):]}.jpg"
            if path.parent != EXAMPLES or not path.is_file():
                raise HTTPException(400, f"there is no example image '{ref[8:]}'")
            return path
        path = self.uploads / ref
        if path.parent != self.uploads or not path.is_file() or "/" in ref or ref.startswith("."):
            raise HTTPException(400, f"the {what} image is no longer on the server; upload it again")
        return path

    def model_ref(self, ref: str) -> str:
        """A bundled style name stays as it is; an uploaded model id becomes its path."""
        if ref.endswith(MODEL_SUFFIXES):
            return str(self.image_path(ref, "model"))
        return ref

    # --- jobs ---------------------------------------------------------------------------------------

    def start(self, body: dict[str, Any]) -> Job:
        mode = body.get("mode")
        if mode not in MODES:
            raise HTTPException(400, f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")
        values = form_values(MODES[mode], body.get("settings") or {})
        values = self._server_paths(MODES[mode], values)
        try:
            make(MODES[mode], values)  # checked here, so a bad value is a 400 and no job
        except SettingError as e:
            raise HTTPException(400, e.render(lambda name: name)) from None
        except DreamstyleError as e:
            raise HTTPException(400, str(e)) from None
        except TypeError as e:
            raise HTTPException(400, str(e)) from None
        from .. import api

        job_id, folder = self.queue.new_folder()
        output = folder / "result.png"
        params: dict[str, Any] = {"mode": mode, "settings": values}
        if mode == "stylize":
            content = self.image_path(body.get("content"), "content")
            refs = body.get("styles") or []
            styles = [self.image_path(r, "style") for r in (refs if isinstance(refs, list) else [refs])]
            if not styles:
                raise HTTPException(400, "choose at least one style image")
            params.update(content=body.get("content"), styles=refs)

            def call(job: Job) -> Any:
                return api.stylize(content, styles, output=output, **self._run_args(job), **values)
        elif mode in ("dream", "apply"):
            image = self.image_path(body.get("content"), "photo")
            params.update(content=body.get("content"))
            if mode == "apply":
                values["model"] = self.model_ref(str(values.get("model", ApplySettings.model)))

            def call(job: Job) -> Any:
                fn = api.dream if mode == "dream" else api.apply
                return fn(image, output=output, **self._run_args(job), **values)
        else:
            if body.get("content"):
                values["image"] = str(self.image_path(body.get("content"), "photo"))
                params.update(content=body.get("content"))

            def call(job: Job) -> Any:
                return api.explore(output=output, **self._run_args(job), **values)
        return self.queue.submit(mode, call, params, job_id, folder)

    def _server_paths(self, cls: type, values: dict[str, Any]) -> dict[str, Any]:
        """Settings that name files (masks, a guide, an init image) may only name uploads: the page must
        not read files of the server's choosing. Weights files and training data stay on the CLI."""
        from ..settings import INITS

        out = dict(values)
        for f, o in options(cls):
            if f.name not in out:
                continue
            value = out[f.name]
            if f.name == "init" and value in INITS:
                continue
            if f.name in ("weights", "data", "preview"):
                raise HTTPException(400, f"{f.name} names a file on the server; use the command line for it, "
                                         "or upload what the page asks for")
            if o.kind in ("path", "paths") or f.name == "init":
                items = value if isinstance(value, list) else [value]
                paths = [str(self.image_path(str(v), f.name)) for v in items]
                out[f.name] = paths if isinstance(value, list) else paths[0]
        return out

    def _run_args(self, job: Job) -> dict[str, Any]:
        return {"progress": False, "on_event": self.queue.on_event(job), "preview_every": self.queue.preview_every,
                "cancel": job.cancel}

    def live(self, frame: bytes, model: str, size: int) -> bytes:
        """One webcam frame through a trained network, at once (not queued)."""
        from ..images import array_from_image, image_from_array
        from ..tasks.apply import load_styler, stylize_array

        try:
            with Image.open(io.BytesIO(frame)) as im:
                image = im.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError):
            raise HTTPException(400, "the frame is not an image") from None
        image.thumbnail((size, size))
        ref = self.model_ref(model)
        with self.styler_lock:
            if ref not in self.stylers:
                try:
                    self.stylers[ref] = load_styler(ref)[0]
                except DreamstyleError as e:
                    raise HTTPException(400, str(e)) from None
            styler = self.stylers[ref]
            out = stylize_array(styler, array_from_image(image))
        buf = io.BytesIO()
        image_from_array(out).save(buf, format="JPEG", quality=85)
        return buf.getvalue()


def form_values(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """The form's fields -> API keyword values: empty fields mean the default; list kinds split on spaces."""
    known = {f.name: o for f, o in options(cls)}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        o = known.get(name)
        if o is None:
            raise HTTPException(400, f"unknown setting '{name}'")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            if o.kind == "int":
                value = int(value)
            elif o.kind == "float":
                value = float(value)
            elif o.kind == "floats":
                value = [float(v) for v in (value if isinstance(value, list) else str(value).replace(",", " ").split())]
            elif o.kind == "channels":
                value = [int(v) for v in (value if isinstance(value, list) else str(value).split(","))]
            elif o.many and isinstance(value, str):
                value = value.split()
            elif o.kind == "bool" and isinstance(value, str):
                value = value.lower() in ("on", "true", "1", "yes")
        except ValueError:
            raise HTTPException(400, f"{name} must be a number, got '{value}'") from None
        values[name] = value
    return values


def command_line(job: Job) -> str:
    """The ``dreamstyle ...`` command that does what the job did (images by their names on the page)."""
    mode, values = job.mode, dict(job.params.get("settings") or {})
    cls = MODES[mode]
    names = {"content": _file_name(job.params.get("content"), "photo.png")}
    parts = ["dreamstyle", mode]
    if mode == "stylize":
        parts += [names["content"], *[_file_name(s, f"style{i + 1}.png")
                                      for i, s in enumerate(job.params.get("styles") or [])]]
    elif mode in ("dream", "apply"):
        parts.append(names["content"])
    parts += ["-o", "result.png"]
    for f, o in options(cls):
        if f.name not in values or not o.cli or values[f.name] == f.default:
            continue
        value = values[f.name]
        if mode == "explore" and f.name == "image":
            value = names["content"]
        flag = flag_of(cls, f.name)
        if o.kind == "bool" and not o.onoff:
            if value:
                parts.append(flag)
        elif o.kind == "bool":
            parts += [flag, "on" if value else "off"]
        elif isinstance(value, list):
            parts += [flag, *[str(v) for v in value]] if o.kind != "channels" else [flag, ",".join(map(str, value))]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def _file_name(ref: Any, fallback: str) -> str:
    if isinstance(ref, str) and ref.startswith("example:"):
        return f"src/dreamstyle/examples/{ref[8:]}.jpg"
    return fallback


def create_app(root: Path | None = None, warm: bool = True, **options: Any) -> FastAPI:
    """The studio's app. ``root``: where jobs and uploads go (a new temporary folder by default, deleted
    at shutdown). ``warm``: import torch and build the default network in the background at start."""
    own_root = root is None
    folder = Path(tempfile.mkdtemp(prefix="dreamstyle-studio-")) if root is None else root
    studio = Studio(folder, **options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if warm:  # once the server is listening: the import must not hold up the first page
            import asyncio

            asyncio.get_running_loop().call_later(0.5, lambda: threading.Thread(target=_warm_up, daemon=True).start())
        yield
        studio.queue.close()
        if own_root:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)

    app = FastAPI(title="dreamstyle studio", version=__version__, lifespan=lifespan)
    app.state.studio = studio

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

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
                "examples": sorted(p.stem for p in EXAMPLES.glob("*.jpg")),
                "limits": {"bytes": studio.max_upload_bytes, "pixels": studio.max_pixels}}

    @app.get("/api/examples/{name}")
    def example(name: str) -> FileResponse:
        return FileResponse(studio.image_path(f"example:{name}", "example"), media_type="image/jpeg")

    async def form_file(request: Request) -> tuple[bytes, str]:
        """The bytes and name of the form field 'file' (read up to just past the size limit)."""
        form = await request.form()
        file = form.get("file")
        if file is None or isinstance(file, str):
            raise HTTPException(400, "send the file as the form field 'file'")
        return await file.read(studio.max_upload_bytes + 1), file.filename or ""

    @app.post("/api/uploads")
    async def upload(request: Request) -> dict[str, Any]:
        return studio.save_upload(*await form_file(request))

    @app.get("/api/uploads/{upload_id}")
    def uploaded(upload_id: str) -> FileResponse:
        return FileResponse(studio.image_path(upload_id, "uploaded"))

    @app.post("/api/params")
    async def params_of(request: Request) -> dict[str, Any]:
        """The settings embedded in a dreamstyle PNG, to restore the form from it."""
        data, _ = await form_file(request)
        try:
            with Image.open(io.BytesIO(data)) as im:
                text = im.info.get("dreamstyle")
        except (UnidentifiedImageError, OSError, ValueError):
            raise HTTPException(400, "that file is not an image") from None
        if not text:
            raise HTTPException(400, "that image has no dreamstyle settings in it")
        try:
            return dict(json.loads(text))
        except ValueError:
            raise HTTPException(400, "that image's dreamstyle settings are damaged") from None

    @app.post("/api/jobs")
    async def start(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(400, "send the job as JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "send the job as a JSON object")
        job = studio.start(body)
        return job.view(studio.queue.position(job))

    @app.get("/api/jobs")
    def jobs() -> list[dict[str, Any]]:
        return [j.view(studio.queue.position(j)) for j in sorted(studio.queue.jobs.values(), key=lambda j: j.created)]

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
    def job_events(job_id: str) -> StreamingResponse:
        job = find(job_id)

        def stream() -> Iterator[str]:
            seen = -1
            while True:
                seen = studio.queue.wait(job, seen)
                view = job.view(studio.queue.position(job))
                yield f"data: {json.dumps(view)}\n\n"
                if view["state"] in ("done", "failed", "cancelled") or studio.queue.stopping:
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
        data = await request.body()
        if len(data) > studio.max_upload_bytes:
            raise HTTPException(413, "the frame is too large")
        import anyio

        out = await anyio.to_thread.run_sync(studio.live, data, model, max(32, min(size, 1024)))
        return Response(out, media_type="image/jpeg")

    return app


def _warm_up() -> None:
    """While the user picks images: import torch, build the default network and run a tiny stylize once.
    A process's first run pays about 5 s of one-time set-up (BENCHMARKS.md); after this the first
    preview of a default job comes in well under a second of optimization."""
    try:
        from .. import api

        api.stylize(EXAMPLES / "chelsea.jpg", EXAMPLES / "great_wave.jpg", size=256, iterations=2, pyramid=False,
                    progress=False)
    except Exception:  # noqa: BLE001 - a warm-up that fails costs only the head start
        pass


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the studio until Ctrl-C."""
    import sys

    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"dreamstyle: warning: serving on {host}: anyone who can reach this machine can use the studio "
              "and its CPU; there is no login", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"dreamstyle studio: http://{shown}:{port}/  (Ctrl-C stops it)", file=sys.stderr, flush=True)
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
