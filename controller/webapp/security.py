"""The gate of the teacher's app: every request passes :class:`Guard` first.

The app listens on loopback, but every page the teacher's browser opens (and every
program on the computer) can send it requests. So each request must

1. name the app's own address in ``Host`` (``127.0.0.1:PORT``, ``localhost:PORT``, or
   the address it was started on): a web page whose name is re-pointed at 127.0.0.1
   (DNS rebinding) sends its own name and is refused;
2. carry the launch secret in the ``classcast_app`` cookie. ``classcast app`` opens
   ``/?token=T``: the one-time token ``T`` is exchanged once for that cookie
   (``HttpOnly``, ``SameSite=Strict``), then the address bar no longer holds it;
3. if it changes anything (any method but GET and HEAD), carry an ``Origin`` that is
   the app's own: a form or ``fetch`` from another site open in the same browser
   (cross-site request forgery) is refused even though it cannot read the answer;
4. send a body of at most :data:`MAX_BODY_BYTES`, or :data:`MAX_UPLOAD_BYTES` for a
   lesson file (``PUT /lessons/<key>/files``); a declared ``Content-Length`` over the
   limit is refused unread, and a body that turns out longer is cut off.

A WebSocket handshake (the page's controls, ``/control/socket``) needs 1, 2 and an
``Origin`` that is the app's own, whatever its method: any page may open a WebSocket
to 127.0.0.1. Its messages are bounded by :data:`MAX_SOCKET_MESSAGE_BYTES` (uvicorn).

Refusals are small Russian pages with the status code (403, 400, 413), never a hint of
the secret.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Final
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol.limits import MAX_BLOB_BYTES

logger = logging.getLogger(__name__)

COOKIE: Final = "classcast_app"
"""Name of the cookie that carries the launch secret."""

MAX_BODY_BYTES: Final = 64 * 1024
"""Body of any request but a lesson file: forms are a few hundred bytes."""

MAX_UPLOAD_BYTES: Final = MAX_BLOB_BYTES
"""Body of one lesson file (``PUT /lessons/<key>/files``): the largest blob a lesson may hold."""

MAX_SOCKET_MESSAGE_BYTES: Final = 4 * 1024
"""A message on the controls' WebSocket (``/control/socket``): a control is a few dozen
bytes; a longer message closes the socket (code 1009)."""

MAX_SOCKET_QUEUE: Final = 8
"""Messages of the controls' WebSocket read ahead of the one being carried out."""

UPLOAD_PATH: Final = re.compile(r"^/lessons/[0-9a-f]{16}/files$")

SAFE_METHODS: Final = frozenset({"GET", "HEAD"})


class BodyTooLargeError(HTTPException):
    """The request's body is longer than its limit (the client's fault)."""

    def __init__(self) -> None:
        super().__init__(413)


class Guard:
    """ASGI middleware that lets through only requests from the teacher's own page.

    Args:
        app: the application behind the gate.
        secret: the launch secret the cookie must carry.
        launch_token: the one-time token of the URL ``classcast app`` opens.
        hosts: returns the ``Host`` values allowed (``127.0.0.1:PORT`` ...); read per
            request, because the port is known only once the server is bound.
        refuse: builds the refusal page for a status code.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str,
        launch_token: str,
        hosts: Callable[[], frozenset[str]],
        refuse: Callable[[int], ASGIApp],
    ) -> None:
        self.app = app
        self.secret = secret
        self.launch_token: str | None = launch_token
        self.hosts = hosts
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self._socket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        headers = _headers(scope)
        allowed = self.hosts()
        host = headers.get("host", "")
        if host not in allowed:
            await self.refuse(400)(scope, receive, send)
            return
        method = scope["method"]
        if method not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is None or origin not in {f"http://{h}" for h in allowed}:
                await self.refuse(403)(scope, receive, send)
                return
        if not self._has_secret(headers):
            if await self._exchange(scope, receive, send, host):
                return
            await self.refuse(403)(scope, receive, send)
            return
        upload = UPLOAD_PATH.match(scope["path"])
        limit = MAX_UPLOAD_BYTES if upload else MAX_BODY_BYTES
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self.refuse(413 if declared.isdigit() else 400)(scope, receive, send)
            return
        await self.app(scope, _limited(receive, limit), send)

    async def _socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake passes only with the app's Host, its own Origin (a page
        of another site may open a WebSocket to 127.0.0.1 and the browser would let it)
        and the secret; else it is refused (HTTP 403) before the app sees it."""
        headers = _headers(scope)
        allowed = self.hosts()
        origin = headers.get("origin")
        if (
            headers.get("host", "") not in allowed
            or origin is None
            or origin not in {f"http://{h}" for h in allowed}
            or not self._has_secret(headers)
        ):
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)

    def _has_secret(self, headers: dict[str, str]) -> bool:
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is simply no secret
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and hmac.compare_digest(
            morsel.value.encode(), self.secret.encode()
        )

    async def _exchange(self, scope: Scope, receive: Receive, send: Send, host: str) -> bool:
        """``GET /?token=T`` with the unused launch token: set the cookie, go to ``/``."""
        if scope["method"] != "GET" or scope["path"] != "/" or self.launch_token is None:
            return False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [""])[0]
        if not hmac.compare_digest(given.encode(), self.launch_token.encode()):
            return False
        self.launch_token = None  # one time only
        cookie = f"{COOKIE}={self.secret}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", b"/"),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
        return True


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers, names lower-case; a repeated header keeps its first value."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLargeError` once the body passes ``limit``."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLargeError
        return message

    return wrapped
