"""The studio's request guard: one ASGI middleware in front of every route (torch-free).

It refuses, before any route runs, with the studio's one-line ``{"error": ...}``:

- a ``Host`` that is not the address the connection came to (the server's own address and port, or
  ``localhost`` on a loopback address, or a name given to ``dreamstyle serve --host``): DNS rebinding;
- a state-changing request (POST, ...) whose ``Origin`` is not the page's own, or that a browser marks
  ``Sec-Fetch-Site: cross-site``: another web page driving the studio (403);
- a body of the wrong kind for its route (415): jobs are ``application/json``, uploads
  ``multipart/form-data``, live frames ``image/*`` (so a cross-site form cannot send them without the
  browser asking first);
- a body over its route's limit (413): by ``Content-Length`` before anything is read, and, for a body
  without one, as soon as the bytes read pass the limit (the rest is never read into memory or a file).

Requests without ``Origin`` (command-line clients, tests) are let through the Origin check: browsers always
send it on cross-origin POSTs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
DEFAULT_BODY_LIMIT = 1024 * 1024  # any other request body (a job's JSON)


@dataclass(frozen=True)
class Route:
    """What a state-changing route accepts: its body's media types (a prefix ending in '/' matches a family),
    the most bytes it may send, and the limit to name in a refusal (a file's, where the body wraps it)."""

    types: tuple[str, ...]
    limit: int
    shown: int | None = None

    @property
    def named(self) -> int:
        return self.limit if self.shown is None else self.shown


class BodyTooLarge(HTTPException):
    """Raised by the guarded ``receive`` as soon as a body passes its limit (turned into a 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the upload is larger than the limit of {megabytes(limit)}")


def megabytes(n: float) -> str:
    return f"{n / 2**20:.1f} MB" if n < 10 * 2**20 else f"{n / 2**20:.0f} MB"


class Guard:
    """The middleware. ``routes``: path -> :class:`Route` for the routes that take a body; ``hosts``:
    extra host names to accept (the ``--host`` the server was started with)."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, Route], hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.routes = dict(routes)
        self.hosts = {h.strip("[]").lower() for h in hosts if h}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            status, message = refusal
            await JSONResponse({"error": message}, status_code=status)(scope, receive, send)
            return
        route = self.routes.get(scope["path"])
        limit = route.limit if route is not None else DEFAULT_BODY_LIMIT
        named = route.named if route is not None else DEFAULT_BODY_LIMIT
        received = 0

        async def guarded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(named)  # nothing past the limit is read
            return message

        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracked_send)
        except BodyTooLarge as exc:  # raised outside a route's exception handling
            if started:
                raise
            await JSONResponse({"error": exc.detail}, status_code=413)(scope, receive, send)

    def refusal(self, scope: Scope, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """(status, one-line message) for a request to refuse, or None."""
        host = headers.get("host", "")
        if not self.host_allowed(scope, host):
            return 400, (f"this studio does not answer to the address '{host[:100]}'; open it at the address "
                         "`dreamstyle serve` printed")
        if scope["method"].upper() in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        own = f"{scope.get('scheme', 'http')}://{host}".lower()
        if (origin is not None and origin.lower() != own) or headers.get("sec-fetch-site") in ("cross-site",
                                                                                             "same-site"):
            return 403, "requests from other web pages are refused; use the studio's own page"
        route = self.routes.get(scope["path"])
        limit, named = (route.limit, route.named) if route is not None else (DEFAULT_BODY_LIMIT, DEFAULT_BODY_LIMIT)
        if route is not None:
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if not any(kind == t or (t.endswith("/") and kind.startswith(t)) for t in route.types):
                wanted = " or ".join(t + "*" if t.endswith("/") else t for t in route.types)
                return 415, f"send this as {wanted} (the Content-Type header), not {kind or 'no type'}"
        length_text = headers.get("content-length")
        if length_text is not None:
            length = _number(length_text)
            if length is None:
                return 400, "the Content-Length header is not a number"
            if length > limit:
                return 413, f"the upload is {megabytes(length)}; the limit is {megabytes(named)}"
        return None

    def host_allowed(self, scope: Scope, host: str) -> bool:
        """The Host header names the address the connection came to, with its port."""
        if not host:
            return False
        name, _, port_text = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not name or (name.count(":") and not name.startswith("[")):  # no port, or a bare IPv6 address
            name, port_text = host, ""
        name = name.strip("[]").lower()
        server: Any = scope.get("server")
        scheme = scope.get("scheme", "http")
        port = _number(port_text) if port_text else (443 if scheme == "https" else 80)
        if server is None:  # a server that does not say its address (a Unix socket): names only
            return name in self.hosts or name == "localhost"
        server_host, server_port = str(server[0]).lower(), server[1]
        if port != server_port:
            return False
        return name == server_host or name in self.hosts or (name == "localhost" and _loopback(server_host))


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 19 else None


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
