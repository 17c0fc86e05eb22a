"""The teacher's app before its server starts: its socket and its launch address.

Kept apart from :mod:`controller.webapp.app` (Starlette, Jinja2, uvicorn) so that
``classcast app`` can bind, print the address and open the browser first, and import
the server while the browser starts: the browser's first request waits in the socket's
backlog until the server takes it.
"""

from __future__ import annotations

import secrets
import socket

__all__ = ["bind", "launch_url", "loopback_hosts", "new_launch_token"]


def new_launch_token() -> str:
    """A one-time launch token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def launch_url(sock: socket.socket, token: str) -> str:
    """The address ``classcast app`` opens: the bound socket's, with the one-time token
    (``127.0.0.1`` for a socket bound to every address)."""
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def loopback_hosts(host: str, port: int) -> frozenset[str]:
    """The ``Host`` values the app answers to when bound to ``host``:``port``: the
    loopback names, and the bound address itself (an IPv6 one in brackets)."""
    names = {"127.0.0.1", "localhost"}
    if host in ("::1", "::"):
        names.add("[::1]")
    if host not in ("0.0.0.0", "::"):
        names.add(f"[{host}]" if ":" in host else host)
    return frozenset(f"{name}:{port}" for name in names)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (``0``: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, so that asyncio sets TCP_NODELAY on each accepted connection
    # (it checks ``sock.proto``); set on the listener too, which they inherit. Without
    # it every answer written in two parts waits 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
