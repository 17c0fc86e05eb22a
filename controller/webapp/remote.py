"""The phone remote's web faces: the phone's page on a LAN listener, the teacher's QR code.

Two Starlette pieces over one :class:`controller.remote.GrantBook`:

* :func:`remote_lan_app` is the whole of what the LAN listener serves (the phone's
  page, its state, its controls, three static files). Nothing else of the teacher's
  app is reachable there: the teacher's app stays on loopback. The phone never talks to
  a panel; the teacher's computer carries out its controls through
  :class:`RemoteTarget`, with the teacher's own credentials.
* :func:`grant_routes` are mounted in the teacher's loopback app: show a QR code, list
  the phone remotes, revoke them.

:func:`serve_remote` runs the LAN listener (uvicorn) with the limits of
:class:`LanLimits`. What a listener on the school's Wi-Fi exposes, and why that is
acceptable, is in docs/security.md ("The phone remote").
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import segno
import uvicorn
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from controller.i18n import language
from controller.remote import (
    CastScope,
    ControlRateError,
    GrantBook,
    GrantClosedError,
    GrantInfo,
    GrantLimitError,
    PhoneRemoteError,
    SourceLockedError,
    phone_error_text,
    phone_texts,
    teacher_texts,
)
from controller.texts import error_text
from protocol.errors import (
    ClassCastError,
)
from protocol.messages import ControlAction
from protocol.sources import LogLimiter, source_of

__all__ = [
    "BODY_TIMEOUT_S",
    "CONTROL_TIMEOUT_S",
    "COOKIE_NAME",
    "HEAD_TIMEOUT_S",
    "IDLE_CHECK_S",
    "KEEP_ALIVE_S",
    "MAX_BODY_BYTES",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_SOURCE",
    "MAX_HEAD_BYTES",
    "REMOTE_HOST_ENV",
    "STATE_POLL_S",
    "LanLimits",
    "RemoteListener",
    "RemoteServer",
    "RemoteTarget",
    "RemoteView",
    "grant_routes",
    "lan_address",
    "remote_lan_app",
    "serve_remote",
]

logger = logging.getLogger(__name__)


class _OncePerCause(logging.Filter):
    """At most one line per message per LOG_INTERVAL_S (kiosk.connections' LogLimiter);
    the next line that passes says how many were held back. Whoever floods the LAN
    listener with bad requests cannot flood the journal."""

    def __init__(self) -> None:
        super().__init__()
        self.limiter = LogLimiter()

    def filter(self, record: logging.LogRecord) -> bool:
        held = self.limiter.allow(str(record.msg), time.monotonic())
        if held is None:
            return False
        if held:
            record.msg = f"{record.msg} (and {held} more like it)"
        return True


logger.addFilter(_OncePerCause())
_http_logger = logging.getLogger(f"{__name__}.http")
"""What uvicorn's protocol logs for the LAN listener (invalid requests and the like)."""
_http_logger.addFilter(_OncePerCause())

MAX_CONNECTIONS: Final = 64
"""Open connections to the LAN listener; past it the one idle longest is closed."""

MAX_CONNECTIONS_PER_SOURCE: Final = 16
"""Open connections from one address (IPv6: one /64); a phone's browser opens about 6."""

HEAD_TIMEOUT_S: Final = 10.0
"""Time for a connection to send a whole request head (slow senders are closed)."""

BODY_TIMEOUT_S: Final = 10.0
"""Time for a request to send its whole body (408 past it)."""

MAX_HEAD_BYTES: Final = 8 * 1024
"""Largest request head (line and headers); larger gets 400 and the connection closed."""

MAX_BODY_BYTES: Final = 1024
"""Largest request body: a control is a few bytes of form (413 past it)."""

KEEP_ALIVE_S: Final = 15.0
"""After a response, the next request head must be whole within this, or the connection
is closed (the phone polls every 2 s and keeps its connection)."""

CONTROL_TIMEOUT_S: Final = 15.0
"""Longest wait for the teacher's cast to carry out a phone's control (502 past it)."""

STATE_POLL_S: Final = 2
"""How often the phone's page asks whether the cast changed (204 when it did not)."""

COOKIE_NAME: Final = "classcast_remote"
"""The phone's session cookie: HttpOnly, SameSite=Strict, path /."""

CSRF_HEADER: Final = "x-classcast-csrf"
"""The header (or form field ``csrf``) carrying the session's CSRF token on every POST."""

_CLOSED_REASONS: Final = frozenset({"code_expired", "expired", "revoked", "recast"})

_HERE = Path(__file__).resolve().parent
_STATIC = _HERE / "static"
_STATIC_FILES: Final = {
    "remote.css": "text/css",
    "remote.js": "text/javascript",
    "htmx.min.js": "text/javascript",
}

_SECURITY_HEADERS: Final = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


@dataclass(frozen=True, slots=True)
class RemoteView:
    """What the phone shows of the teacher's current cast.

    ``index`` is 0-based (as in the protocol's status); ``panel_ids`` are the kiosk ids
    of the cast's panels, the scope of a grant (a cast to other panels ends it).
    """

    panels: tuple[str, ...]
    """The rooms of the cast's panels."""
    lesson_title: str
    index: int
    count: int
    item_titles: tuple[str, ...]
    paused: bool
    blanked: bool
    panel_ids: frozenset[str]

    @property
    def scope(self) -> CastScope:
        return CastScope(self.panel_ids)


class RemoteTarget(Protocol):
    """The teacher's current cast, as the phone remote sees it (the teacher's app)."""

    def remote_view(self) -> RemoteView | None:
        """The current cast, or None when the teacher casts nothing."""
        ...

    async def remote_control(self, action: ControlAction, number: int | None = None) -> None:
        """Carry out ``action`` on every panel of the current cast.

        ``number`` is the 1-based item number for ``goto`` (as ``classcast goto N``).

        Raises:
            ClassCastError: a subclass saying what went wrong (its ``str`` is shown on
                the phone, so it should be in the teacher's language).
        """
        ...


@dataclass(frozen=True, slots=True)
class LanLimits:
    """The LAN listener's limits (the module's constants; tests shrink them)."""

    max_connections: int = MAX_CONNECTIONS
    max_connections_per_source: int = MAX_CONNECTIONS_PER_SOURCE
    head_timeout_s: float = HEAD_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    max_head_bytes: int = MAX_HEAD_BYTES
    max_body_bytes: int = MAX_BODY_BYTES
    keep_alive_s: float = KEEP_ALIVE_S
    control_timeout_s: float = CONTROL_TIMEOUT_S


# ------------------------------------------------------------------------ templates


def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


_ENV = _templates()


def _render(
    name: str, status: int = 200, headers: Mapping[str, str] | None = None, **ctx: Any
) -> HTMLResponse:
    html = _ENV.get_template(name).render(lang=language(), tx=phone_texts(), **ctx)
    return HTMLResponse(html, status_code=status, headers=dict(headers or {}))


def _message(status: int, heading: str, text: str, *, close: bool = False) -> HTMLResponse:
    headers = {"Connection": "close"} if close else None
    return _render("remote_message.html", status, headers, heading=heading, text=text)


# ------------------------------------------------------------------------ LAN app


def _host_ok(host: str, allowed: str | None) -> bool:
    """``Host`` must be the LAN address the QR code names; without one, an IP literal.

    A name in ``Host`` would let a page elsewhere rebind its name to this listener (DNS
    rebinding); an IP literal cannot be rebound.
    """
    host = host.strip().lower()
    if allowed is not None:
        return host == allowed.lower()
    if host.startswith("["):
        name = host[1:].partition("]")[0]
    else:
        name = host.rpartition(":")[0] if ":" in host else host
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class _Guard:
    """The outermost layer of the LAN app: Host, Origin, body limits, headers, no traceback."""

    def __init__(
        self, app: ASGIApp, lan_base_url: Callable[[], str] | None, limits: LanLimits
    ) -> None:
        self.app = app
        self.lan_base_url = lan_base_url
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan, no websockets here
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {name for name, _ in _SECURITY_HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + _SECURITY_HEADERS}
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is None:
                body, refusal = await self._read_body(scope, receive)
            if refusal is not None:
                await refusal(scope, receive, send_with_headers)
                return
            await self.app(scope, _replay(body), send_with_headers)
        except Exception:
            # The one broad catch of this adapter: a phone never sees a traceback.
            logger.exception("phone remote: a request failed")
            if not started:
                tx = phone_texts()
                page = _message(500, tx["went_wrong"], tx["reload"])
                await page(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope) -> ASGIApp | None:
        tx = phone_texts()
        # The head's size as sent ("GET /path?query HTTP/1.1", "name: value" lines).
        query = scope["query_string"]
        head_bytes = len(scope["method"]) + len(scope["raw_path"]) + 14
        head_bytes += len(query) + 1 if query else 0
        head_bytes += sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if head_bytes > self.limits.max_head_bytes:
            return _message(431, tx["not_allowed"], tx["too_large"], close=True)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        allowed = urlsplit(self.lan_base_url()).netloc if self.lan_base_url else None
        if not _host_ok(host, allowed):
            return _message(421, tx["wrong_address"], tx["from_qr"])
        if scope["method"] not in ("GET", "HEAD", "POST"):
            return _message(405, tx["not_allowed"], tx["from_qr"])
        origin = headers.get("origin", "").lower()
        if scope["method"] == "POST" and origin != f"http://{host.strip().lower()}":
            return _message(403, tx["not_allowed"], tx["from_qr"])
        return None

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, ASGIApp | None]:
        tx = phone_texts()
        too_large = _message(413, tx["not_allowed"], tx["too_large"], close=True)
        for name, value in scope["headers"]:
            if name.lower() == b"content-length" and (
                not value.isdigit() or int(value) > self.limits.max_body_bytes
            ):
                return b"", too_large
        if scope["method"] != "POST":
            return b"", None
        body = bytearray()
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        break
                    body += message.get("body", b"")
                    if len(body) > self.limits.max_body_bytes:
                        return b"", too_large
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            return b"", _message(408, tx["not_allowed"], tx["too_slow"], close=True)
        return bytes(body), None


def _replay(body: bytes) -> Receive:
    """A ``receive`` that gives the body read already, then waits like a live request."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")  # pragma: no cover

    return receive


def remote_lan_app(
    book: GrantBook,
    target: RemoteTarget,
    lan_base_url: Callable[[], str] | None = None,
    *,
    limits: LanLimits = LanLimits(),
    clock: Callable[[], float] = time.monotonic,
) -> ASGIApp:
    """The phone's app, for the LAN listener (:func:`serve_remote`); nothing else is there.

    Paths: ``/p/<code>`` (the QR code's link: a page that redeems it with a POST, so a
    link previewer that fetches the link does not use it up), ``/`` (the remote),
    ``/state`` (polled), ``/control/<action>`` (POST with the CSRF token), three static
    files. Anything else is a 404 page.

    Args:
        book: the teacher's grants (the same book as :func:`grant_routes`).
        target: the teacher's current cast.
        lan_base_url: the listener's URL as the QR code names it (``http://IP:PORT``);
            requests naming any other ``Host`` are refused (421). None: any IP literal.
        limits: body size and time, the control timeout.
        clock: monotonic seconds, the ``now`` of the book.

    Returns:
        An ASGI app: pass it to :func:`serve_remote`.
    """

    def source(request: Request) -> str:
        return source_of(request.client.host if request.client else "")

    def refused(request: Request, error: PhoneRemoteError) -> Response:
        heading, text = phone_error_text(error)
        htmx = request.headers.get("hx-request") == "true"
        headers: dict[str, str] = {}
        status = 403
        if isinstance(error, SourceLockedError | ControlRateError):
            status = 429
            headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
        if htmx and isinstance(error, GrantClosedError):
            headers["HX-Redirect"] = f"/?closed={error.reason}"  # the page reloads, says why
        response: Response
        if htmx:
            response = _render("remote_flash.html", status, headers, text=text)
        else:
            response = _render("remote_message.html", status, headers, heading=heading, text=text)
        if isinstance(error, GrantClosedError):
            response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    def session(request: Request) -> str:
        cookie = request.cookies.get(COOKIE_NAME)
        if not cookie:
            # After a reload that says why the remote closed (the cookie is gone by then).
            reason = request.query_params.get("closed", "")
            known = reason if reason in _CLOSED_REASONS else "none"
            raise GrantClosedError("no session cookie", reason=known)
        return cookie

    def current() -> tuple[RemoteView | None, CastScope | None]:
        view = target.remote_view()
        return view, None if view is None else view.scope

    def version_of(view: RemoteView | None) -> str:
        return hashlib.sha256(repr(view).encode()).hexdigest()[:16]

    def state_page(name: str, view: RemoteView | None, **ctx: Any) -> Response:
        return _render(name, view=view, version=version_of(view), poll_s=STATE_POLL_S, **ctx)

    async def home(request: Request) -> Response:
        try:
            view, scope = current()
            grant_id = book.authorize(
                session(request), source=source(request), now=clock(), scope=scope
            )
        except PhoneRemoteError as error:
            return refused(request, error)
        return state_page("remote_phone.html", view, csrf=book.csrf_token(grant_id))

    async def open_page(request: Request) -> Response:
        return _render("remote_open.html", code=request.path_params["code"])

    async def redeem(request: Request) -> Response:
        try:
            issued = book.redeem(request.path_params["code"], source=source(request), now=clock())
        except PhoneRemoteError as error:
            return refused(request, error)
        logger.info("phone remote: a phone connected from %s", source(request))
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            issued.secret,
            max_age=max(1, int(issued.expires_at - clock())),
            path="/",
            httponly=True,
            samesite="strict",
        )
        return response

    async def state(request: Request) -> Response:
        try:
            view, scope = current()
            grant_id = book.authorize(
                session(request), source=source(request), now=clock(), scope=scope
            )
        except PhoneRemoteError as error:
            return refused(request, error)
        if request.query_params.get("v") == version_of(view):
            return Response(status_code=204)  # nothing changed: htmx swaps nothing
        return state_page("remote_state.html", view, csrf=book.csrf_token(grant_id))

    async def control(request: Request) -> Response:
        tx = phone_texts()
        action = request.path_params["action"]
        form = await request.form()
        csrf = request.headers.get(CSRF_HEADER) or str(form.get("csrf") or "")
        try:
            view, scope = current()
            book.authorize_control(  # refuses any action but ALLOWED_ACTIONS
                session(request),
                action,
                csrf_token=csrf,
                source=source(request),
                now=clock(),
                scope=scope,
            )
        except PhoneRemoteError as error:
            return refused(request, error)
        if view is None:
            return _render("remote_flash.html", 409, text=tx["nothing"])
        number: int | None = None
        if action == "goto":
            raw = str(form.get("number", ""))
            number = int(raw) if raw.isdigit() and len(raw) < 7 else 0
            if not 1 <= number <= view.count:
                return _render("remote_flash.html", 400, text=tx["no_item"])
        try:
            async with asyncio.timeout(limits.control_timeout_s):
                await target.remote_control(action, number)
        except TimeoutError:
            return _render("remote_flash.html", 502, text=tx["no_answer"])
        except ClassCastError as error:
            text = tx["failed"].format(reason=error_text(error, ", ".join(view.panels)))
            return _render("remote_flash.html", 502, text=text)
        if request.headers.get("hx-request") != "true":
            return RedirectResponse("/", status_code=303)  # the page without scripts
        view, _ = current()
        return state_page("remote_state.html", view, csrf=csrf)

    def static(name: str) -> Route:
        async def serve(request: Request) -> Response:
            return FileResponse(_STATIC / name, media_type=_STATIC_FILES[name])

        return Route(f"/static/{name}", serve, methods=["GET"])

    async def not_found(request: Request, exc: Exception) -> Response:
        tx = phone_texts()
        return _message(404, tx["nothing_here"], tx["from_qr"])

    routes: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        Route("/p/{code}", open_page, methods=["GET"]),
        Route("/p/{code}", redeem, methods=["POST"]),
        Route("/state", state, methods=["GET"]),
        Route("/control/{action}", control, methods=["POST"]),
        *(static(name) for name in _STATIC_FILES),
    ]

    async def failed(request: Request, exc: Exception) -> Response:
        tx = phone_texts()  # Starlette re-raises after this; _Guard logs it
        return _message(500, tx["went_wrong"], tx["reload"])

    handlers = {404: not_found, 405: not_found, Exception: failed}
    app = Starlette(routes=routes, exception_handlers=handlers)
    return _Guard(app, lan_base_url, limits)


# ------------------------------------------------------------------ teacher's side


def grant_routes(
    book: GrantBook,
    target: RemoteTarget,
    lan_base_url: Callable[[], str] | RemoteListener,
    *,
    prefix: str = "/remote",
    clock: Callable[[], float] = time.monotonic,
) -> list[BaseRoute]:
    """Routes of the teacher's loopback app: QR code, list of phone remotes, revoke.

    ``GET {prefix}`` is the whole part for a page: a button for a new QR code, its
    place, the list. ``POST {prefix}/grants`` issues a grant for the current cast and
    answers a fragment with the QR code (inline SVG) and its link; that fragment polls
    ``GET {prefix}/grants/{id}`` (204 while no phone scanned it, then a fragment without
    the QR code). ``GET {prefix}/grants`` is the list (a fragment that refreshes itself
    every few seconds); ``POST {prefix}/grants/{id}/revoke`` and ``POST
    {prefix}/grants/revoke`` close one or all and answer the list. Every answer is 200
    with a fragment (errors included, in words), so htmx swaps it in as it is.

    The teacher's app must protect these routes as the rest of its own pages (loopback,
    its Host and Origin checks): whoever can POST here can hand out control of the cast.

    Args:
        lan_base_url: a :class:`RemoteListener` (best: the LAN port is open only while
            a phone remote may be used), or a function giving ``http://IP:PORT`` of a
            listener the caller runs; "" when the computer has no LAN address (the
            fragment then says so).
    """

    def teacher(name: str, **ctx: Any) -> HTMLResponse:
        html = _ENV.get_template(name).render(
            lang=language(), tt=teacher_texts(), prefix=prefix, **ctx
        )
        return HTMLResponse(html)

    def listing() -> HTMLResponse:
        now = clock()
        view = target.remote_view()
        book.observe_cast(None if view is None else view.scope, now)
        rows = [(g, _minutes_left(g, now)) for g in book.grants(now)]
        return teacher("remote_grants.html", rows=rows)

    async def create(request: Request) -> Response:
        tt = teacher_texts()
        view = target.remote_view()
        if view is None:  # no port opens on the LAN for nothing to control
            return teacher("remote_grant.html", error=tt["nothing_cast"])
        if isinstance(lan_base_url, RemoteListener):
            base = await lan_base_url.start()
        else:
            base = lan_base_url()
        if not base:
            return teacher("remote_grant.html", error=tt["no_lan"])
        now = clock()
        book.observe_cast(view.scope, now)
        label = f"{', '.join(view.panels)} — {view.lesson_title}"
        try:
            issued = book.issue(view.scope, now, label=label)
        except GrantLimitError as error:
            heading, text = phone_error_text(error)
            return teacher("remote_grant.html", error=f"{heading}. {text}")
        url = f"{base.rstrip('/')}/p/{issued.code}"
        qr = segno.make(url, error="m", micro=False)
        svg = qr.svg_inline(scale=6, border=4, dark="#000", light="#fff")
        minutes = max(1, round((issued.code_expires_at - now) / 60))
        return teacher(
            "remote_grant.html",
            error=None,
            grant_id=issued.grant_id,
            url=url,
            svg=Markup(svg),
            minutes=minutes,
        )

    async def grants(request: Request) -> Response:
        return listing()

    async def panel(request: Request) -> Response:
        listed = bytes(listing().body).decode()
        return teacher("remote_panel.html", listed=Markup(listed))

    async def grant_status(request: Request) -> Response:
        grant_id = request.path_params["grant_id"]
        now = clock()
        live = {g.grant_id: g for g in book.grants(now)}
        grant = live.get(grant_id)
        if grant is not None and grant.state == "waiting":
            return Response(status_code=204)  # still waiting: the QR code stays
        return teacher("remote_grant.html", error=None)

    async def revoke(request: Request) -> Response:
        book.revoke(request.path_params["grant_id"], clock())
        return listing()

    async def revoke_all(request: Request) -> Response:
        book.revoke_all(clock())
        return listing()

    return [
        Route(prefix, panel, methods=["GET"]),
        Route(f"{prefix}/grants/{{grant_id}}", grant_status, methods=["GET"]),
        Route(f"{prefix}/grants", create, methods=["POST"]),
        Route(f"{prefix}/grants", grants, methods=["GET"]),
        Route(f"{prefix}/grants/revoke", revoke_all, methods=["POST"]),
        Route(f"{prefix}/grants/{{grant_id}}/revoke", revoke, methods=["POST"]),
    ]


def _minutes_left(grant: GrantInfo, now: float) -> int:
    return max(0, round((grant.expires_at - now) / 60))


def lan_address() -> str | None:
    """This computer's address on its default route (no packet is sent), or None.

    A UDP socket "connected" to an outside address makes the kernel pick the source
    address it would use; nothing goes on the wire.
    """
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
        address = str(s.getsockname()[0])
        return None if ipaddress.ip_address(address).is_loopback else address
    return None


# ------------------------------------------------------------------------ listener


_TOO_LARGE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with connection caps and a request-head timeout.

    uvicorn alone lets a connection dribble its head forever and keeps any number of
    them. Here a connection that has not sent a whole head within ``head_timeout_s`` of
    its accept (``keep_alive_s`` of its last response) is closed; past the caps, the
    connection waiting longest for its head (of the same address, when that address is
    at its cap) is closed to make room. A connection with a request in flight is never
    closed to make room.
    """

    limits: LanLimits = LanLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.logger = _http_logger  # not uvicorn's: a line per bad request is held back
        super().connection_made(transport)
        raw_socket = transport.get_extra_info("socket")
        if raw_socket is not None:  # headers and body go out at once (no Nagle wait)
            with contextlib.suppress(OSError):
                raw_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._waiting_since: float | None = None
        self._unparsed_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._source = source_of(self.client[0] if self.client else "")
        self._wait_for_head()
        self._make_room()

    def data_received(self, data: bytes) -> None:
        if self._waiting_since is not None:
            # Bytes before a request is parsed: a head and a small body at most.
            self._unparsed_bytes += len(data)
            if self._unparsed_bytes > self.limits.max_head_bytes + self.limits.max_body_bytes:
                self._stop_waiting()
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
        super().data_received(data)
        if self._in_flight():
            self._stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._in_flight():
            # uvicorn closes an idle kept connection after keep_alive_s, but forgets
            # that once a byte arrives: the next head must be whole within that time.
            self._wait_for_head(self.limits.keep_alive_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _in_flight(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _wait_for_head(self, timeout_s: float | None = None) -> None:
        self._stop_waiting()
        self._waiting_since = self.loop.time()
        self._unparsed_bytes = 0
        wait_s = self.limits.head_timeout_s if timeout_s is None else timeout_s
        self._head_timer = self.loop.call_later(wait_s, self._too_slow)

    def _stop_waiting(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = None
        self._waiting_since = None

    def _too_slow(self) -> None:
        self._head_timer = None
        self.transport.abort()

    def _make_room(self) -> None:
        peers = [c for c in self.connections if isinstance(c, _GuardedH11Protocol)]
        same = [c for c in peers if c._source == self._source]
        if len(same) > self.limits.max_connections_per_source:
            self._drop_one(same)
        elif len(peers) > self.limits.max_connections:
            self._drop_one(peers)

    def _drop_one(self, among: list[_GuardedH11Protocol]) -> None:
        waiting = [c for c in among if c is not self and c._waiting_since is not None]
        victim = min(waiting, key=lambda c: c._waiting_since or 0.0) if waiting else self
        victim._stop_waiting()
        victim.connections.discard(victim)
        victim.transport.abort()


@dataclass(slots=True)
class RemoteServer:
    """A running LAN listener: ``port`` is the port bound; ``await close()`` stops it."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int

    async def close(self) -> None:
        """Stop accepting, close every connection (in-flight requests get
        SHUTDOWN_TIMEOUT_S to finish), return when done."""
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


SHUTDOWN_TIMEOUT_S: Final = 2
"""On close, how long requests in flight may take to finish before they are cancelled."""


async def serve_remote(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    limits: LanLimits = LanLimits(),
) -> RemoteServer:
    """Start the LAN listener for :func:`remote_lan_app` on ``host:port`` (0: any port).

    Plain HTTP (see docs/security.md for why); no access log (a QR code's link must not
    land in a journal). uvicorn runs as a task of the running loop; on the main thread
    it takes SIGINT and SIGTERM while it runs and passes them on when it stops, as a
    second uvicorn server in the same process does.

    Returns:
        The running server: read its ``port``, and ``await close()`` on exit.

    Raises:
        OSError: the address cannot be bound (in use, not this computer's).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP given, or asyncio would not set TCP_NODELAY on accepted connections:
    # each response would then wait ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    protocol = type("_Limited", (_GuardedH11Protocol,), {"limits": limits})
    config = uvicorn.Config(
        app,
        http=protocol,
        ws="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        date_header=False,
        proxy_headers=False,
        timeout_keep_alive=int(max(1, limits.keep_alive_s)),
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S,
        h11_max_incomplete_event_size=limits.max_head_bytes,
        backlog=256,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="phone remote listener")
    while not server.started:
        if task.done():
            sock.close()
            task.result()  # raises what stopped it
            raise OSError(f"cannot serve the phone remote on {host}:{port}")
        await asyncio.sleep(0.01)
    return RemoteServer(server, task, host, int(sock.getsockname()[1]))


REMOTE_HOST_ENV: Final = "CLASSCAST_REMOTE_HOST"
"""The address the LAN listener binds when none is given (default: this computer's LAN
address, :func:`lan_address`). Tests set 127.0.0.1: nothing of theirs listens on a real
network."""

IDLE_CHECK_S: Final = 30.0
"""How often a running RemoteListener checks whether any grant is still held."""


class RemoteListener:
    """The LAN listener, open only while a phone remote may be used.

    :meth:`start` (called when the teacher asks for a QR code) opens it on ``host``,
    else on ``$CLASSCAST_REMOTE_HOST``, else on this computer's LAN address; it closes
    by itself once the book holds no grant, live or remembered (so a revoked phone is
    still told why before the port closes). Most of
    the time, then, the teacher's computer has no port open on the school's network.
    Call :meth:`close` when the app exits.
    """

    def __init__(
        self,
        book: GrantBook,
        target: RemoteTarget,
        *,
        host: str | None = None,
        port: int = 0,
        limits: LanLimits = LanLimits(),
        clock: Callable[[], float] = time.monotonic,
        idle_check_s: float = IDLE_CHECK_S,
    ) -> None:
        self.book = book
        self.target = target
        self.host = host
        self.port = port
        self.limits = limits
        self.clock = clock
        self.idle_check_s = idle_check_s
        self._server: RemoteServer | None = None
        self._watch: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def base_url(self) -> str:
        """``http://IP:PORT`` while open, else ""."""
        server = self._server
        if server is None:
            return ""
        host = f"[{server.host}]" if ":" in server.host else server.host
        return f"http://{host}:{server.port}"

    async def start(self) -> str:
        """Open the listener unless it is open; returns :attr:`base_url` ("" when this
        computer has no LAN address or the port cannot be bound: logged)."""
        async with self._lock:
            if self._server is not None:
                return self.base_url
            host = self.host or os.environ.get(REMOTE_HOST_ENV) or lan_address()
            if host is None:
                return ""
            app = remote_lan_app(
                self.book, self.target, lambda: self.base_url, limits=self.limits, clock=self.clock
            )
            try:
                self._server = await serve_remote(app, host, self.port, limits=self.limits)
            except OSError as error:
                logger.warning("phone remote: cannot listen on %s:%s: %s", host, self.port, error)
                return ""
            self._watch = asyncio.create_task(self._close_when_idle(), name="phone remote idle")
            logger.info("phone remote: listening on %s", self.base_url)
            return self.base_url

    async def close(self) -> None:
        """Close the listener (if open) and stop watching."""
        async with self._lock:
            watch, self._watch = self._watch, None
            if watch is not None and watch is not asyncio.current_task():
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
            if self._server is not None:
                await self._server.close()
                self._server = None  # base_url is "" once the port is closed
                logger.info("phone remote: closed")

    async def _close_when_idle(self) -> None:
        while True:
            await asyncio.sleep(self.idle_check_s)
            if self.book.held(self.clock()) == 0:
                self._watch = None  # close() must not cancel the task running it
                await self.close()
                return
