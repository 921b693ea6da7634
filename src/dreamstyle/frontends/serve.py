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

import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from ..errors import UserError
from ..version import __version__
from .guard import Guard, Route
from .routes import add_error_replies, add_jobs, add_live, add_page, add_uploads
from .studio import EXAMPLES, JOB_BODY_BYTES, MULTIPART_SLACK, Studio

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

    add_error_replies(app)
    add_page(app, studio)
    add_uploads(app, studio)
    add_jobs(app, studio)
    add_live(app, studio)
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
