"""The web guard: the only way from a page on the panel to the network.

Every Chromium the kiosk starts (the window and the headless screenshot) runs with
:meth:`WebGuard.chromium_flags`: an HTTP proxy on 127.0.0.1 that it must use for every
request, loopback included (``--proxy-bypass-list=<-loopback>``), and no name
resolution of its own. So every request a page makes (the page itself, iframes,
``fetch``, websockets, redirects, navigations) is one of the proxy's decisions:

* **the private origin** — each published lesson page gets a host of its own,
  ``http://<32 hex digits>.classcast.localhost/`` (unguessable; a secure context to
  Chromium, being under ``localhost``). Only ``/`` exists there: that page's blob, with
  a Content-Security-Policy that forbids downloads and framing. Nothing else of the
  blob store, and no file of the panel, can be named. An HTML5 lesson (a zip blob,
  :mod:`media.html5zip`) is served the same way, each of its files read from the zip
  when asked: ``/`` is its ``index.html``, a name that is not one of its files (``..``
  included, however encoded) is a 404, and a folder has no listing;
* **the panel itself is refused** — a host that is, or resolves to, a loopback,
  unspecified, link-local or local address of this machine (the kiosk's websocket port,
  this proxy, any other local service), whatever the port;
* **hosts outside the allowlist are refused** — ``web_allow`` in kiosk.toml; empty:
  every host;
* **everything else is forwarded** to the address the proxy resolved and checked itself
  (plain ``http`` requests, and ``CONNECT`` tunnels for ``https`` and websockets), so a
  name cannot rebind between the check and the connection.

Before a web item's page is shown, :meth:`WebGuard.check_page` opens it the way the
proxy would for Chromium (same allowlist, same name resolution, same refusal of the
panel's addresses) and reads the status line of the top-level document, ``https``
included (which the proxy itself only sees as an opaque tunnel). A page that cannot be
opened gets a :class:`PageFailure` saying why, and the panel shows a card instead of a
browser that would show nothing.

``file://`` is not a request: Chromium itself never lets an ``http`` page load or
navigate to a ``file:`` URL, and no page is opened from ``file://`` any more.

The rules are pure (:class:`HostAllowlist`, :func:`route`, :func:`address_refused`);
:class:`WebGuard` is the asyncio adapter, on a thread of its own (a busy page never
slows the kiosk's network loop).

Exceptions: a bad ``web_allow`` pattern raises :class:`ValueError` (the admin's input,
turned into a ``ConfigError`` by :mod:`kiosk.config`). A peer's bad request is answered
with a 400 and never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import ipaddress
import logging
import re
import secrets
import socket
import ssl
import threading
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import SplitResult, unquote, urlsplit

from kiosk.i18n import tr
from media.html5zip import INDEX, Html5Site, content_type, normalize_name, open_site
from protocol.messages import ItemFailure

logger = logging.getLogger(__name__)

PRIVATE_DOMAIN: Final = "classcast.localhost"
"""Published pages are ``http://<token>.classcast.localhost/``."""

TOKEN_HEX_CHARS: Final = 32
"""A page's token: 128 random bits, the first label of its host."""

MAX_HEAD_BYTES: Final = 64 * 1024
"""Longest request (or upstream response) head the proxy reads, blank line included; a
longer one closes the connection."""

_HEAD_END: Final = b"\r\n\r\n"
_READ_LIMIT: Final = MAX_HEAD_BYTES - len(_HEAD_END)
"""asyncio's stream limit bounds where the separator may start."""

HEAD_TIMEOUT_S: Final = 30.0
"""How long a client may take to send its request head."""

CONNECT_TIMEOUT_S: Final = 10.0
"""How long resolving and connecting to an upstream host may take."""

CHECK_TIMEOUT_S: Final = 10.0
"""Longest :meth:`WebGuard.check_page` may take (resolve, connect, TLS, the status
line); a page slower than that is reported as ``timeout``."""

COPY_CHUNK_BYTES: Final = 64 * 1024
"""Bytes moved per read when relaying or serving a page."""

MAX_LOGGED_REFUSALS: Final = 100
"""Each refused or unreachable (reason, host) is logged once, up to this many distinct
ones; the rest only count in :attr:`WebGuard.refused`."""

PAGE_CSP: Final = (
    "sandbox allow-scripts allow-same-origin allow-forms allow-modals allow-popups"
    " allow-popups-to-escape-sandbox allow-pointer-lock allow-presentation;"
    " frame-ancestors 'none'; base-uri 'self'"
)
"""The lesson page's policy: everything a page does, except downloads (no
``allow-downloads``) and being framed by another page."""

REFUSAL_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors *"
"""The refusal page's policy: no script, nothing loaded."""

_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
    }
)
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_TOKEN = re.compile(rf"[0-9a-f]{{{TOKEN_HEX_CHARS}}}")


# --------------------------------------------------------------------------- hosts


def normalize_host(host: str) -> str:
    """``host`` as compared: lower case, no trailing dot or brackets, IDNA (punycode).

    Raises:
        ValueError: not a host name (e.g. an empty label, or one IDNA cannot encode).
    """
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if not name:
        raise ValueError("empty host")
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(name))
    if not name.isascii():
        name = name.encode("idna").decode("ascii")
    return name


def parse_host_pattern(text: str) -> str:
    """One ``web_allow`` entry, checked and normalised: ``host`` or ``*.domain``.

    ``lib.myschool.edu.ru`` allows that host only; ``*.myschool.edu.ru`` allows every
    host under ``myschool.edu.ru`` (not ``myschool.edu.ru`` itself: list it too).

    Raises:
        ValueError: not such a pattern (a scheme, a path, a port, ``*`` elsewhere).
    """
    raw = text.strip()
    wildcard = raw.startswith("*.")
    name = raw[2:] if wildcard else raw
    if any(c in name for c in "*/:@?# \\"):
        raise ValueError(
            f"{text!r} is not a host name or *.domain (no scheme, port, or path, e.g. "
            '"lib.myschool.edu.ru" or "*.myschool.edu.ru")'
        )
    try:
        host = normalize_host(name)
    except ValueError:
        raise ValueError(f"{text!r} is not a host name") from None
    if not _is_ip(host) and not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise ValueError(f"{text!r} is not a host name")
    return f"*.{host}" if wildcard else host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostAllowlist:
    """The hosts pages may reach (``web_allow``); empty: every host.

    Args:
        patterns: ``host`` or ``*.domain`` entries (see :func:`parse_host_pattern`).

    Raises:
        ValueError: a pattern is malformed.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns: tuple[str, ...] = tuple(parse_host_pattern(p) for p in patterns)

    @property
    def everything(self) -> bool:
        """Whether no allowlist is set (every host is allowed)."""
        return not self.patterns

    def allows(self, host: str) -> bool:
        """Whether ``host`` may be reached (the panel itself is refused separately)."""
        if not self.patterns:
            return True
        try:
            name = normalize_host(host)
        except ValueError:
            return False
        for pattern in self.patterns:
            if pattern.startswith("*."):
                if name.endswith(pattern[1:]) and len(name) > len(pattern) - 1:
                    return True
            elif name == pattern:
                return True
        return False


def is_loopback_name(host: str) -> bool:
    """Whether ``host`` names this machine by itself: ``localhost``, ``*.localhost``."""
    try:
        name = normalize_host(host)
    except ValueError:
        return False
    return name == "localhost" or name.endswith(".localhost")


def address_refused(address: str, is_local: Callable[[str], bool]) -> bool:
    """Whether a page must not reach ``address``: the panel itself, or no real host.

    Refused: loopback, unspecified (``0.0.0.0/8``, ``::``), link-local, multicast, and
    every address ``is_local`` says this machine has.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address) and ip.packed[0] == 0:
        return True  # 0.0.0.0/8: "this host"
    return (
        ip.is_loopback
        or ip.is_unspecified
        or ip.is_link_local
        or ip.is_multicast
        or is_local(str(ip))
    )


def panel_address(address: str) -> bool:
    """Whether ``address`` is the panel itself (or no real host): see :func:`address_refused`."""
    return address_refused(address, is_local_address)


def is_local_address(address: str) -> bool:
    """Whether this machine has ``address`` (it can bind a socket to it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- routing


RefusalReason = Literal["bad_request", "not_allowed", "panel", "not_found", "method"]


@dataclass(frozen=True, slots=True)
class ServePage:
    """The private origin: the page published under ``token`` (``/`` only)."""

    token: str
    path: str


@dataclass(frozen=True, slots=True)
class Forward:
    """A plain ``http`` request to pass on to ``host``:``port`` as ``path``."""

    host: str
    port: int
    path: str


@dataclass(frozen=True, slots=True)
class Tunnel:
    """A ``CONNECT`` tunnel (``https``, ``wss``) to ``host``:``port``."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Refuse:
    """Refused before any connection; ``host`` is what the page asked for."""

    reason: RefusalReason
    host: str = ""


Route = ServePage | Forward | Tunnel | Refuse


@dataclass(frozen=True, slots=True)
class PageFailure:
    """Why a web item's page could not be opened (:meth:`WebGuard.check_page`).

    ``host`` is the page's host; ``status`` the HTTP status of an ``http_error``.
    """

    reason: ItemFailure
    host: str
    status: int | None = None


_REFUSAL_FAILURES: Final[dict[RefusalReason, ItemFailure]] = {
    "not_allowed": "not_allowed",
    "panel": "panel",
    "bad_request": "unreachable",
    "not_found": "unreachable",
    "method": "unreachable",
}


def private_host(token: str) -> str:
    """The host of the page published under ``token``."""
    return f"{token}.{PRIVATE_DOMAIN}"


def route(method: str, target: str, allow: HostAllowlist) -> Route:
    """Decide one proxy request (``method`` and ``target`` of its request line).

    Names of this machine (``localhost``, ``*.localhost``) are refused here; every
    address a host resolves to (an IP literal too) is checked afterwards with
    :func:`panel_address`.
    """
    if method == "CONNECT":
        parts = urlsplit("//" + target)
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            return Refuse("bad_request")
        if not host or port is None or parts.path or parts.username is not None:
            return Refuse("bad_request")
        return _remote(host, allow) or Tunnel(host, port)
    if not target.lower().startswith("http://"):
        return Refuse("bad_request")
    parts = urlsplit(target)
    try:
        host, port = parts.hostname, parts.port or 80
    except ValueError:
        return Refuse("bad_request")
    if not host or parts.username is not None:
        return Refuse("bad_request")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if host.endswith("." + PRIVATE_DOMAIN):
        token = host.removesuffix("." + PRIVATE_DOMAIN)
        if not _TOKEN.fullmatch(token) or port != 80:
            return Refuse("not_found", host)
        if method not in ("GET", "HEAD"):
            return Refuse("method", host)
        return ServePage(token, path)
    return _remote(host, allow) or Forward(host, port, path)


def _remote(host: str, allow: HostAllowlist) -> Refuse | None:
    if is_loopback_name(host):
        return Refuse("panel", host)
    if not allow.allows(host):
        return Refuse("not_allowed", host)
    return None


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A parsed request head: its line and its header fields, in order."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first field ``name`` (any case), or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


def parse_head(head: bytes) -> RequestHead | None:
    """``head`` (up to and including the blank line) as a request, or None if malformed."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return None
        headers.append((name, value.strip()))
    return RequestHead(parts[0], parts[1], tuple(headers))


# --------------------------------------------------------------------------- the proxy


class WebGuard:
    """The proxy and private origin of the panel's Chromium (a thread of its own).

    :meth:`start` it (or let :meth:`chromium_flags` or :meth:`publish` do so), give
    every Chromium :meth:`chromium_flags`, publish each lesson page and withdraw it when
    its scene goes; :meth:`close` at the end.

    Args:
        allow: the hosts pages may reach (``web_allow``).
        lang: the language of the refusal page a page's frame may show.
        is_panel_address: whether a resolved address is the panel's own, refused
            (default :func:`panel_address`; tests of forwarding pass one that lets
            their loopback server through).
    """

    def __init__(
        self,
        allow: HostAllowlist | None = None,
        *,
        lang: str = "ru",
        is_panel_address: Callable[[str], bool] = panel_address,
    ) -> None:
        self.allow = allow if allow is not None else HostAllowlist()
        self.lang = lang
        self.is_panel_address = is_panel_address
        self._pages: dict[str, Path | Html5Site] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._port = 0
        self._logged: set[tuple[str, str]] = set()
        self.refused = 0
        """Requests refused so far (any reason)."""

    # ----------------------------------------------------------------- public

    @property
    def port(self) -> int:
        """The proxy's port on 127.0.0.1 (started on first use)."""
        self.start()
        return self._port

    def chromium_flags(self) -> tuple[str, ...]:
        """Flags that route every request of a Chromium through this guard."""
        return (
            f"--proxy-server=http://127.0.0.1:{self.port}",
            "--proxy-bypass-list=<-loopback>",
            # Nothing resolved or reached past the proxy: no DNS, no direct UDP.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
            "--disable-quic",
        )

    def check_page(self, url: str, timeout_s: float = CHECK_TIMEOUT_S) -> PageFailure | None:
        """Whether the page at ``url`` (http or https) opens: None, or why not.

        Blocking (call it from a loader thread): it runs on the guard's thread and
        decides like the proxy (allowlist, the panel's own addresses), then connects,
        does the TLS handshake of an ``https`` page (without checking its certificate:
        Chromium does that itself) and sends a ``GET``, reading only the status line. A
        status of 400 or more is an ``http_error``; a redirect counts as opened. Pages
        of the private origin are not checked.
        """
        self.start()
        loop = self._loop
        assert loop is not None
        host = urlsplit(url).hostname or ""
        future = asyncio.run_coroutine_threadsafe(self._check_page(url, timeout_s), loop)
        try:
            return future.result(timeout_s + 1)
        except TimeoutError:
            future.cancel()
            return PageFailure("timeout", host)

    def publish(self, page: Path) -> str:
        """Serve the file ``page`` (a lesson page's blob) at a new private URL.

        Returns:
            ``http://<token>.classcast.localhost/``; :meth:`withdraw` it when done.
        """
        self.start()
        token = secrets.token_hex(TOKEN_HEX_CHARS // 2)
        with self._lock:
            self._pages[token] = page
        return f"http://{private_host(token)}/"

    def publish_site(self, zip_path: Path) -> str:
        """Serve the HTML5 zip ``zip_path`` (a lesson's blob) at a new private URL.

        Returns:
            ``http://<token>.classcast.localhost/`` (its ``index.html``); :meth:`withdraw`
            it when done.

        Raises:
            LessonError: the zip is unsafe or has no ``index.html``
                (:func:`media.html5zip.open_site`).
            OSError: it cannot be read.
        """
        site = open_site(zip_path)
        self.start()
        token = secrets.token_hex(TOKEN_HEX_CHARS // 2)
        with self._lock:
            self._pages[token] = site
        return f"http://{private_host(token)}/"

    def withdraw(self, url: str) -> None:
        """Stop serving the page published at ``url`` (unknown URLs are ignored)."""
        host = urlsplit(url).hostname or ""
        with self._lock:
            self._pages.pop(host.removesuffix("." + PRIVATE_DOMAIN), None)

    @property
    def published(self) -> int:
        """How many pages are published now."""
        with self._lock:
            return len(self._pages)

    def start(self) -> None:
        """Listen on 127.0.0.1 (a random port) in a thread of its own; idempotent.

        Raises:
            OSError: the port cannot be opened.
        """
        with self._lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            failure: list[BaseException] = []
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=self._run, args=(loop, ready, failure), name="web-guard", daemon=True
            )
            thread.start()
            ready.wait()
            if failure:
                thread.join()
                loop.close()
                raise failure[0]
            self._loop, self._thread = loop, thread

    def close(self) -> None:
        """Stop listening and drop open connections (waits for the thread)."""
        with self._lock:
            thread, loop, stop = self._thread, self._loop, self._stop
            self._thread = self._loop = self._stop = None
        if thread is None or loop is None or stop is None:
            return
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()

    # ----------------------------------------------------------------- the loop

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        ready: threading.Event,
        failure: list[BaseException],
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(ready, failure))
        except BaseException as exc:  # reported to start() when before ready
            if not ready.is_set():
                failure.append(exc)
                ready.set()
            else:
                logger.exception("the web guard stopped")

    async def _main(self, ready: threading.Event, failure: list[BaseException]) -> None:
        self._stop = asyncio.Event()
        connections: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await self._handle(reader, writer)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass  # the page or the host went away
            except Exception:  # the one broad catch: a connection must not stop the guard
                logger.exception("the web guard failed on a request")
            finally:
                writer.close()
                connections.discard(task)

        try:
            server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=_READ_LIMIT)
        except OSError as exc:
            failure.append(exc)
            ready.set()
            return
        self._port = server.sockets[0].getsockname()[1]
        logger.info("web guard listening on 127.0.0.1:%d", self._port)
        ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                raw = await reader.readuntil(_HEAD_END)
        except (TimeoutError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            return
        head = parse_head(raw)
        decision = (
            Refuse("bad_request") if head is None else route(head.method, head.target, self.allow)
        )
        match decision:
            case Refuse():
                await self._refuse(
                    writer, decision, connect=head is not None and head.method == "CONNECT"
                )
            case ServePage():
                assert head is not None
                await self._serve_page(writer, decision, head.method == "HEAD")
            case Tunnel():
                upstream = await self._open(writer, decision.host, decision.port, connect=True)
                if upstream is not None:
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    await writer.drain()
                    await _relay(reader, writer, *upstream)
            case Forward():
                assert head is not None
                await self._forward(reader, writer, head, decision)

    async def _open(
        self, writer: asyncio.StreamWriter, host: str, port: int, *, connect: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Resolve ``host``, check every address, connect; None if refused or failed.

        A refusal is answered here; a host that cannot be reached gets no answer at all
        (the connection closes), so Chromium reports a failed load as it would direct.
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                addresses = [str(info[4][0]) for info in infos]
                if not addresses or any(self.is_panel_address(a) for a in addresses):
                    await self._refuse(writer, Refuse("panel", host), connect=connect)
                    return None
                last: OSError | None = None
                for address in addresses:
                    try:
                        return await asyncio.open_connection(address, port, limit=_READ_LIMIT)
                    except OSError as exc:
                        last = exc
                self._log_once("unreachable", host, f"web page: cannot reach {host}:{port}: {last}")
        except (OSError, TimeoutError) as exc:
            self._log_once("unreachable", host, f"web page: cannot reach {host}:{port}: {exc!s}")
        return None

    async def _check_page(self, url: str, timeout_s: float) -> PageFailure | None:
        parts = urlsplit(url)
        secure = parts.scheme.lower() == "https"
        try:
            host, port = parts.hostname or "", parts.port or (443 if secure else 80)
        except ValueError:
            return PageFailure("unreachable", parts.netloc)
        decision = (
            route("CONNECT", f"{host}:{port}", self.allow)
            if secure
            else route("GET", url, self.allow)
        )
        if isinstance(decision, ServePage):
            return None
        if isinstance(decision, Refuse):
            return PageFailure(_REFUSAL_FAILURES[decision.reason], host)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                try:
                    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                except (socket.gaierror, UnicodeError):  # not found, or not a name to look up
                    return PageFailure("no_network", host)
                addresses = [str(info[4][0]) for info in infos]
                if not addresses or any(self.is_panel_address(a) for a in addresses):
                    return PageFailure("panel", host)
                status = await _first_status(addresses, host, port, secure, parts)
        except TimeoutError:
            return PageFailure("timeout", host)
        if status is None:
            self._log_once("unreachable", host, f"web page: cannot open {host}:{port}")
            return PageFailure("unreachable", host)
        if status >= 400:
            return PageFailure("http_error", host, status)
        return None

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: RequestHead,
        decision: Forward,
    ) -> None:
        """One plain ``http`` request, passed on with ``Connection: close``."""
        if head.header("Transfer-Encoding") is not None:
            await _respond(writer, 411, "Length Required", b"", "text/plain")
            return
        try:
            length = int(head.header("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0:
            await self._refuse(writer, Refuse("bad_request"), connect=False)
            return
        upstream = await self._open(writer, decision.host, decision.port, connect=False)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        try:
            lines = [f"{head.method} {decision.path} HTTP/1.1"]
            lines += [f"{k}: {v}" for k, v in head.headers if k.lower() not in _HOP_BY_HOP]
            lines += ["Connection: close", "", ""]
            up_writer.write("\r\n".join(lines).encode("latin-1"))
            while length > 0:
                chunk = await reader.read(min(length, COPY_CHUNK_BYTES))
                if not chunk:
                    return
                up_writer.write(chunk)
                length -= len(chunk)
                await up_writer.drain()
            await up_writer.drain()
            response = await up_reader.readuntil(_HEAD_END)
            writer.write(_closing_response_head(response))
            await _copy(up_reader, writer)
        finally:
            up_writer.close()

    async def _serve_page(
        self, writer: asyncio.StreamWriter, decision: ServePage, head_only: bool
    ) -> None:
        with self._lock:
            page = self._pages.get(decision.token)
        if isinstance(page, Html5Site):
            await self._serve_site_file(writer, decision, page, head_only)
            return
        if page is None or decision.path.split("?", 1)[0] != "/":
            await self._refuse(
                writer, Refuse("not_found", private_host(decision.token)), connect=False
            )
            return
        try:
            file = page.open("rb")
        except OSError as exc:
            logger.warning("cannot serve the lesson page %s: %s", page, exc)
            await self._refuse(
                writer, Refuse("not_found", private_host(decision.token)), connect=False
            )
            return
        with file:
            size = file.seek(0, 2)
            file.seek(0)
            writer.write(
                _head(
                    200,
                    "OK",
                    [
                        ("Content-Type", "text/html"),
                        ("Content-Length", str(size)),
                        ("Cache-Control", "no-store"),
                        ("X-Content-Type-Options", "nosniff"),
                        ("Referrer-Policy", "no-referrer"),
                        ("Content-Security-Policy", PAGE_CSP),
                    ],
                )
            )
            if not head_only:
                while chunk := file.read(COPY_CHUNK_BYTES):
                    writer.write(chunk)
                    await writer.drain()
            await writer.drain()

    async def _serve_site_file(
        self, writer: asyncio.StreamWriter, decision: ServePage, site: Html5Site, head_only: bool
    ) -> None:
        """One file of an HTML5 zip, read from the zip (nothing is extracted)."""
        name = site_file_name(decision.path)
        info = None if name is None else site.files.get(name)
        if name is None or info is None:
            await self._refuse(
                writer, Refuse("not_found", private_host(decision.token)), connect=False
            )
            return
        try:
            archive = zipfile.ZipFile(site.path)
        except (OSError, zipfile.BadZipFile) as exc:
            logger.warning("cannot serve the HTML5 lesson %s: %s", site.path, exc)
            archive = None
        try:
            file = None if archive is None else archive.open(info)
        except (OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            # e.g. the local header's name differs from the directory's
            logger.warning("cannot serve %s of the HTML5 lesson %s: %s", name, site.path, exc)
            file = None
        if archive is None or file is None:
            if archive is not None:
                archive.close()
            await self._refuse(
                writer, Refuse("not_found", private_host(decision.token)), connect=False
            )
            return
        with archive, file:
            writer.write(
                _head(
                    200,
                    "OK",
                    [
                        ("Content-Type", content_type(name)),
                        ("Content-Length", str(info.file_size)),
                        ("Cache-Control", "no-store"),
                        ("X-Content-Type-Options", "nosniff"),
                        ("Referrer-Policy", "no-referrer"),
                        ("Content-Security-Policy", PAGE_CSP),
                    ],
                )
            )
            if not head_only:
                try:
                    while chunk := file.read(COPY_CHUNK_BYTES):
                        writer.write(chunk)
                        await writer.drain()
                except (zipfile.BadZipFile, EOFError, ValueError) as exc:
                    # A damaged entry (bad CRC): cut the response short; the browser sees it.
                    logger.warning("HTML5 lesson %s: %s: %s", site.path, name, exc)
                    return
            await writer.drain()

    async def _refuse(
        self, writer: asyncio.StreamWriter, refusal: Refuse, *, connect: bool
    ) -> None:
        self.refused += 1
        key = (refusal.reason, refusal.host)
        if key not in self._logged and len(self._logged) < MAX_LOGGED_REFUSALS:
            self._logged.add(key)
            logger.info(
                "web page: refused %s (%s)", refusal.host or "a bad request", refusal.reason
            )
        status, phrase = {
            "bad_request": (400, "Bad Request"),
            "not_allowed": (403, "Forbidden"),
            "panel": (403, "Forbidden"),
            "not_found": (404, "Not Found"),
            "method": (405, "Method Not Allowed"),
        }[refusal.reason]
        body = b"" if connect else self._refusal_page(refusal)
        await _respond(writer, status, phrase, body, "text/html; charset=utf-8")

    def _log_once(self, reason: str, host: str, line: str) -> None:
        """Log ``line`` the first time (``reason``, ``host``) comes up (a bounded set)."""
        key = (reason, host)
        if key not in self._logged and len(self._logged) < MAX_LOGGED_REFUSALS:
            self._logged.add(key)
            logger.info("%s", line)

    def _refusal_page(self, refusal: Refuse) -> bytes:
        """A short page in the panel's language saying why (shown in the page's frame)."""
        host = html.escape(refusal.host)
        if refusal.reason == "not_allowed":
            text = " ".join(
                [
                    tr(self.lang, "The address {host} is not allowed on this panel.", host=host),
                    tr(
                        self.lang,
                        "Ask the school's administrator to add it to the panel's list of "
                        "allowed sites.",
                    ),
                ]
            )
        elif refusal.reason == "panel":
            text = tr(self.lang, "Pages shown on the panel cannot open the panel's own addresses.")
        else:
            text = tr(self.lang, "This address is not available.")
        return (
            '<!doctype html><html><head><meta charset="utf-8"><style>'
            "body{font-family:sans-serif;background:#fafafa;color:#333;margin:2em}"
            f"</style></head><body><p>{text}</p></body></html>"
        ).encode()


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: |\r\n)")


async def _first_status(
    addresses: list[str], host: str, port: int, secure: bool, parts: SplitResult
) -> int | None:
    """The status of ``GET`` of the page at the first of ``addresses`` that answers
    (None: none connects, or the answer is not HTTP)."""
    context: ssl.SSLContext | None = None
    if secure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if secure else 80
    authority = host if ":" not in host else f"[{host}]"
    if port != default:
        authority += f":{port}"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: ClassCast-panel\r\n"
        "Accept: text/html,*/*\r\nConnection: close\r\n\r\n"
    ).encode("latin-1", "replace")
    for address in addresses:
        try:
            reader, writer = await asyncio.open_connection(
                address,
                port,
                ssl=context,
                server_hostname=host if secure else None,
                limit=_READ_LIMIT,
            )
        except OSError:
            continue
        try:
            writer.write(request)
            await writer.drain()
            line = await reader.readuntil(b"\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return None
        finally:
            writer.close()
        match = _STATUS_LINE.match(line)
        return int(match.group(1)) if match else None
    return None


def site_file_name(path: str) -> str | None:
    """The file of an HTML5 site a request path names (``/`` and ``/dir/``: their
    ``index.html``), or None when it names nothing inside the site (``..``, encoded or
    not, a backslash trick, bad percent-encoding)."""
    raw = path.split("?", 1)[0].split("#", 1)[0]
    if not raw.startswith("/"):
        return None
    try:
        rel = unquote(raw[1:], errors="strict")
    except UnicodeDecodeError:
        return None
    if rel == "" or rel.endswith("/"):
        rel += INDEX
    return normalize_name(rel)


def _head(status: int, phrase: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join([*lines, "Connection: close", "", ""])).encode("latin-1")


async def _respond(
    writer: asyncio.StreamWriter, status: int, phrase: str, body: bytes, content_type: str
) -> None:
    writer.write(
        _head(
            status,
            phrase,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("Content-Security-Policy", REFUSAL_CSP),
            ],
        )
        + body
    )
    await writer.drain()


def _closing_response_head(head: bytes) -> bytes:
    """An upstream response head with its hop-by-hop fields replaced by ``Connection: close``."""
    lines = head.decode("latin-1").split("\r\n")
    kept = [
        line
        for line in lines[1:]
        if line and line.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP
    ]
    return "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1")


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close ``writer``."""
    while chunk := await reader.read(COPY_CHUNK_BYTES):
        writer.write(chunk)
        await writer.drain()
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Both directions of a tunnel, until both ends have finished."""
    try:
        await asyncio.gather(
            _copy(reader, up_writer), _copy(up_reader, writer), return_exceptions=True
        )
    finally:
        up_writer.close()
