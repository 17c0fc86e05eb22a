"""What a web item can reach: nothing of the panel, only allowed hosts (kiosk.webguard).

The rules first (allowlist, routing, addresses, the ``web_allow`` setting), then the
guard on real sockets (what a page's requests get), then the real Chromium: a lesson
page that tries to read the panel's files and ports, in a headless screenshot and in a
window on a private X server (Xvfb), localStorage across casts, a download, a
navigation to the state directory, and an address outside the allowlist.

A probe page reports what it could read by colouring squares (the screenshot) and in its
title (the window's ``_NET_WM_NAME``); a trap server on 127.0.0.1 records every
connection that reaches it.
"""

from __future__ import annotations

import os

os.environ["PYGLET_HEADLESS"] = "true"  # before pyglet's first import

import asyncio
import contextlib
import ctypes
import ctypes.util
import http.client
import logging
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.client import ControllerIdentity
from kiosk import web, webguard
from kiosk.config import ConfigError, load_config
from kiosk.player import Show
from kiosk.scenes import ERROR_BACKGROUND
from kiosk.tls import ensure_identity
from kiosk.web import AddressNotAllowedScene, WebLoader, WebWindowScene
from kiosk.webguard import (
    MAX_HEAD_BYTES,
    MAX_LOGGED_REFUSALS,
    PRIVATE_DOMAIN,
    Forward,
    HostAllowlist,
    PageFailure,
    Refuse,
    ServePage,
    Tunnel,
    WebGuard,
    address_refused,
    is_local_address,
    parse_head,
    parse_host_pattern,
    route,
)
from protocol.messages import LessonManifest, ManifestItem
from tests.helpers import pair
from tests.kiosks import KioskThread
from tests.test_web import CHROMIUM, H, Panel, W, fresh, needs_chromium, proxy_get

GREEN = (0, 255, 0)
RED = (255, 0, 0)
WHITE = (255, 255, 255)
TOKEN = "0123456789abcdef0123456789abcdef"
TEACHER = ControllerIdentity("c-web-teacher", "Петрова Анна Сергеевна")


# --------------------------------------------------------------------------- the rules


def test_allowlist_exact_and_wildcard_hosts() -> None:
    allow = HostAllowlist(["lib.myschool.edu.ru", "*.myschool.edu.ru", "Школа.РФ"])
    assert allow.patterns == ("lib.myschool.edu.ru", "*.myschool.edu.ru", "xn--80atdl2c.xn--p1ai")
    for host in ("lib.myschool.edu.ru", "LIB.myschool.edu.ru.", "a.b.myschool.edu.ru", "школа.рф"):
        assert allow.allows(host), host
    for host in ("myschool.edu.ru", "evilmyschool.edu.ru", "lib.myschool.edu.ru.evil.ru", ""):
        assert not allow.allows(host), host
    assert HostAllowlist().everything
    assert HostAllowlist().allows("anything.example")
    assert HostAllowlist(["192.168.1.10"]).allows("192.168.1.10")
    assert not HostAllowlist(["192.168.1.10"]).allows("192.168.1.11")


@pytest.mark.parametrize(
    "pattern",
    ["https://lib.ru", "lib.ru/path", "lib.ru:443", "*", "*.", "a.*.ru", "", " ", "a..ru", "-a.ru"],
)
def test_bad_allowlist_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="not a host name"):
        parse_host_pattern(pattern)


def test_routing_of_requests() -> None:
    allow = HostAllowlist(["lib.ru"])
    assert route("CONNECT", "lib.ru:443", allow) == Tunnel("lib.ru", 443)
    assert route("GET", "http://lib.ru/a?b=1", allow) == Forward("lib.ru", 80, "/a?b=1")
    assert route("GET", "http://lib.ru:8080", allow) == Forward("lib.ru", 8080, "/")
    assert route("GET", "http://other.ru/", allow) == Refuse("not_allowed", "other.ru")
    assert route("CONNECT", "other.ru:443", allow) == Refuse("not_allowed", "other.ru")
    for target in ("localhost:47810", "x.localhost:443", f"{TOKEN}.{PRIVATE_DOMAIN}:443"):
        assert route("CONNECT", target, HostAllowlist()).reason == "panel"  # type: ignore[union-attr]
    assert route("GET", "http://localhost:47810/", HostAllowlist()).reason == "panel"  # type: ignore[union-attr]
    page = f"http://{TOKEN}.{PRIVATE_DOMAIN}/"
    assert route("GET", page, allow) == ServePage(TOKEN, "/")
    assert route("HEAD", page + "x", allow) == ServePage(TOKEN, "/x")
    assert route("POST", page, allow) == Refuse("method", f"{TOKEN}.{PRIVATE_DOMAIN}")
    assert route("GET", f"http://nothex.{PRIVATE_DOMAIN}/", allow).reason == "not_found"  # type: ignore[union-attr]
    assert route("GET", f"http://{TOKEN}.{PRIVATE_DOMAIN}:81/", allow).reason == "not_found"  # type: ignore[union-attr]
    for target in ("/relative", "https://lib.ru/", "file:///etc/passwd", "http://u@lib.ru/"):
        assert route("GET", target, allow) == Refuse("bad_request"), target
    for target in ("lib.ru", "lib.ru:x", "u@lib.ru:443"):
        assert route("CONNECT", target, allow) == Refuse("bad_request"), target


def test_parse_head() -> None:
    head = parse_head(b"GET http://a/ HTTP/1.1\r\nHost: a\r\nX-Y:  z \r\n\r\n")
    assert head is not None
    assert (head.method, head.target, head.header("x-y"), head.header("nope")) == (
        "GET",
        "http://a/",
        "z",
        None,
    )
    for bad in (
        b"GET http://a/\r\n\r\n",
        b"GET / SPDY/3\r\n\r\n",
        b"GET / HTTP/1.1\r\nnocolon\r\n\r\n",
    ):
        assert parse_head(bad) is None


def test_addresses_of_the_panel_are_refused() -> None:
    def none(address: str) -> bool:
        return False

    for address in ("127.0.0.1", "127.5.6.7", "::1", "::ffff:127.0.0.1", "0.0.0.0", "0.1.2.3"):
        assert address_refused(address, none), address
    for address in ("::", "169.254.169.254", "fe80::1%eth0", "224.0.0.251", "not-an-ip"):
        assert address_refused(address, none), address
    assert not address_refused("93.184.216.34", none)
    assert not address_refused("2001:db8::1", none)
    assert address_refused("10.1.2.3", lambda a: a == "10.1.2.3")  # one of the panel's own
    assert is_local_address("127.0.0.1")
    assert not is_local_address("192.0.2.1")  # TEST-NET-1: never this machine's


def test_web_allow_setting(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text('web_allow = ["lib.myschool.edu.ru", "*.MySchool.edu.ru."]\n')
    assert load_config(path).web_allow == ("lib.myschool.edu.ru", "*.myschool.edu.ru")
    path.write_text('room = "Каб. 1"\n')
    assert load_config(path).web_allow == ()
    for bad, message in [
        ('web_allow = ["https://lib.ru/"]', "web_allow: 'https://lib.ru/' is not a host"),
        ("web_allow = [1]", "web_allow must be a list of host names"),
        ('web_allow = "lib.ru"', "web_allow must be a list"),
    ]:
        path.write_text(bad + "\n")
        with pytest.raises(ConfigError, match=message):
            load_config(path)


# --------------------------------------------------------------------------- the guard


class Trap:
    """A server on 127.0.0.1 that answers any connection with readable “SECRET” (CORS
    open) and records each one: whatever reaches it, a page could have read."""

    def __init__(self) -> None:
        self.hits: list[bytes] = []
        trap = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(2)
                with contextlib.suppress(OSError):
                    trap.hits.append(self.request.recv(4096))
                    body = b"SECRET"
                    self.request.sendall(
                        b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\n"
                        b"Content-Type: text/plain\r\nContent-Length: 6\r\n\r\n" + body
                    )

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    yield t
    t.close()


@pytest.fixture
def guard() -> Iterator[WebGuard]:
    g = WebGuard(HostAllowlist(), lang="ru")
    yield g
    g.close()


def raw_request(guard: WebGuard, head: bytes) -> bytes:
    """Send ``head`` to the guard; everything it answers until it closes."""
    with socket.create_connection(("127.0.0.1", guard.port), timeout=5) as s:
        s.sendall(head)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_guard_refuses_the_panel_itself(guard: WebGuard, trap: Trap, kiosk: KioskThread) -> None:
    """Loopback, the machine's own name and the kiosk's websocket port: a 403, and not one
    connection reaches them."""
    for host in ("127.0.0.1", "[::1]", "localhost", "0.0.0.0"):
        status, body = proxy_get(guard, f"http://{host}:{trap.port}/xhr")
        assert status == 403, host
        assert "адреса самой панели" in body.decode()
        answer = raw_request(guard, f"CONNECT {host}:{trap.port} HTTP/1.1\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 403 "), host
    answer = raw_request(guard, f"CONNECT 127.0.0.1:{kiosk.port} HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert answer.endswith(b"\r\n\r\n")  # no tunnel: nothing of the kiosk's TLS follows
    assert proxy_get(guard, f"http://127.0.0.1:{guard.port}/")[0] == 403  # the guard itself
    name = socket.gethostname()
    try:
        socket.getaddrinfo(name, trap.port)
    except OSError:
        pass  # this machine's name does not resolve here
    else:  # a name that resolves to this machine (loopback or a local address)
        assert proxy_get(guard, f"http://{name}:{trap.port}/")[0] == 403
    assert trap.hits == []


def test_private_origin_serves_only_the_published_page(guard: WebGuard, tmp_path: Path) -> None:
    page = tmp_path / "blob"
    page.write_bytes(b"<p>lesson</p>")
    (tmp_path / "kiosk.json").write_text('{"kiosk_id": "k-1"}')
    url = guard.publish(page)
    host = url.removeprefix("http://").removesuffix("/")
    assert host.endswith("." + PRIVATE_DOMAIN)
    conn = http.client.HTTPConnection("127.0.0.1", guard.port, timeout=5)
    conn.request("GET", url)
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"<p>lesson</p>")
    assert "sandbox" in (response.getheader("Content-Security-Policy") or "")
    assert "allow-downloads" not in (response.getheader("Content-Security-Policy") or "")
    assert response.getheader("Referrer-Policy") == "no-referrer"
    conn.close()
    for other in ("kiosk.json", "blob", "../kiosk.json", "%2e%2e/kiosk.json"):
        assert proxy_get(guard, url + other)[0] == 404, other
    assert proxy_get(guard, f"http://{'f' * 32}.{PRIVATE_DOMAIN}/")[0] == 404  # not published
    answer = raw_request(guard, f"POST {url} HTTP/1.1\r\nContent-Length: 0\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 405 ")
    guard.withdraw(url)
    assert proxy_get(guard, url)[0] == 404
    assert guard.published == 0


def test_guard_refuses_hosts_outside_the_allowlist(tmp_path: Path, trap: Trap) -> None:
    """Reachable, but not allowed: refused before any connection, with the reason."""
    guard = WebGuard(HostAllowlist(["lib.myschool.edu.ru"]), is_panel_address=lambda a: False)
    try:
        status, body = proxy_get(guard, f"http://127.0.0.1:{trap.port}/")
        assert status == 403
        assert "Адрес 127.0.0.1 не разрешён на этой панели" in body.decode()
        assert "администратора школы" in body.decode()
        answer = raw_request(guard, f"CONNECT 127.0.0.1:{trap.port} HTTP/1.1\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 403 ")
        assert trap.hits == []
        guard.allow = HostAllowlist(["127.0.0.1"])  # now allowed: forwarded
        assert proxy_get(guard, f"http://127.0.0.1:{trap.port}/x") == (200, b"SECRET")
        assert trap.hits[0].startswith(b"GET /x HTTP/1.1\r\n")
        assert b"Connection: close" in trap.hits[0]
    finally:
        guard.close()


def test_request_head_limit(guard: WebGuard, tmp_path: Path) -> None:
    """A head of MAX_HEAD_BYTES is read; one byte more and the connection just closes."""
    url = guard.publish(tmp_path)  # a directory: cannot be opened, so 404, but read
    line = f"GET {url} HTTP/1.1\r\nX: ".encode()
    fits = line + b"a" * (MAX_HEAD_BYTES - len(line) - 4) + b"\r\n\r\n"
    assert len(fits) == MAX_HEAD_BYTES
    assert raw_request(guard, fits).startswith(b"HTTP/1.1 404 ")
    over = line + b"a" * (MAX_HEAD_BYTES - len(line) - 3) + b"\r\n\r\n"
    assert raw_request(guard, over) == b""
    assert raw_request(guard, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_request_head_timeout(
    guard: WebGuard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head sent in pieces is read; one never finished is dropped after HEAD_TIMEOUT_S."""
    monkeypatch.setattr(webguard, "HEAD_TIMEOUT_S", 0.2)
    url = guard.publish(tmp_path)
    with socket.create_connection(("127.0.0.1", guard.port), timeout=5) as s:
        s.sendall(f"GET {url} HTTP/1.1\r\n".encode())
        s.sendall(b"Host: x\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 404 ")
    with socket.create_connection(("127.0.0.1", guard.port), timeout=5) as s:
        s.sendall(f"GET {url} HTTP/1.1\r\n".encode())
        assert s.recv(100) == b""  # closed, nothing answered


def test_unreachable_host_gets_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that does not accept within CONNECT_TIMEOUT_S: the page's connection is
    closed without an answer (Chromium reports a failed load), the guard goes on."""
    monkeypatch.setattr(webguard, "CONNECT_TIMEOUT_S", 0.3)
    guard = WebGuard(is_panel_address=lambda a: False)
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)  # never accepts: once its queue is full, connections hang
        port = full.getsockname()[1]
        waiting = [socket.socket() for _ in range(3)]
        try:
            for w in waiting:
                w.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    w.connect(("127.0.0.1", port))
            with pytest.raises(http.client.RemoteDisconnected):
                proxy_get(guard, f"http://127.0.0.1:{port}/")
            assert proxy_get(guard, "http://localhost/")[0] == 403  # still serving
        finally:
            for w in waiting:
                w.close()
            guard.close()


def test_refusals_are_logged_once_each_and_bounded(
    guard: WebGuard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.webguard")
    for _ in range(3):
        proxy_get(guard, "http://localhost:1/")
    assert sum("refused localhost" in r.message for r in caplog.records) == 1
    for n in range(MAX_LOGGED_REFUSALS + 5):
        proxy_get(guard, f"http://h{n}.localhost/")
    assert sum("refused" in r.message for r in caplog.records) == MAX_LOGGED_REFUSALS
    assert guard.refused == 3 + MAX_LOGGED_REFUSALS + 5


# --------------------------------------------------------------------------- Chromium

PROBE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>probing</title><style>
body {{ margin: 0; background: #ffffff; }}
.p {{ position: absolute; top: 0; width: 40px; height: 40px; background: #808080; }}
iframe {{ position: absolute; top: 100px; width: 280px; height: 300px; border: 0; }}
</style></head><body>
{squares}
<iframe id="f0" src="file:///etc/passwd" style="left: 0"></iframe>
<iframe id="f1" src="file://{state}/" style="left: 300px"></iframe>
<iframe src="http://127.0.0.1:{trap}/frame" style="left: 600px; width: 10px"></iframe>
<img src="http://localhost:{trap}/img">
<script>
const results = [];
function mark(i, leaked) {{
  document.getElementById("p" + i).style.background = leaked ? "#ff0000" : "#00ff00";
  results[i] = leaked ? 1 : 0;
}}
function read(url) {{
  try {{
    const x = new XMLHttpRequest(); x.open("GET", url, false); x.send();
    return x.status === 200 ? x.responseText : "";
  }} catch (e) {{ return ""; }}
}}
mark(0, read("file:///etc/passwd").includes("root:"));
mark(1, read("file://{state}/kiosk.json").includes("kiosk_id"));
mark(2, read("file://{state}/tokens.json").length > 0);
mark(3, read("file://{state}/").length > 0);
mark(4, read("http://127.0.0.1:{trap}/xhr").includes("SECRET"));
mark(5, location.protocol === "file:" || read(location.origin + "/kiosk.json").length > 0);
try {{ new WebSocket("ws://127.0.0.1:{trap}/ws"); }} catch (e) {{}}
fetch("http://127.0.0.1:{trap}/fetch", {{ mode: "no-cors" }}).catch(() => {{}});
window.onload = () => {{
  ["f0", "f1"].forEach((id, k) => {{
    let leaked;
    try {{ leaked = document.getElementById(id).contentDocument.body.innerText.length > 0; }}
    catch (e) {{ leaked = true; }}  // a file:// document: not ours, so it loaded
    mark(6 + k, leaked);
  }});
  document.title = "probed:" + results.join("");
}};
</script></body></html>"""
PROBES = 8


def probe_page(state: Path, trap: Trap) -> bytes:
    squares = "\n".join(
        f'<div class="p" id="p{i}" style="left: {i * 50}px"></div>' for i in range(PROBES)
    )
    return PROBE_PAGE.format(squares=squares, state=state, trap=trap.port).encode()


def page_item(panel: Panel, html: bytes, title: str = "Проба") -> ManifestItem:
    sha = panel.store.put_bytes(html)
    return ManifestItem("web", title, sha256=sha)


def make_loader(
    mode: str, root: Path, guard: WebGuard | None = None, chromium: str | None = None
) -> WebLoader:
    """The loader as the kiosk makes it: temporary profiles under root/chromium."""
    return WebLoader(
        mode,  # type: ignore[arg-type]
        chromium_path=chromium,
        profiles_dir=root / "chromium",
        guard=guard,
        display_available=lambda: True,
    )


@pytest.fixture(scope="module")
def module_panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    p = Panel(tmp_path_factory.mktemp("web-hardening"))
    yield p
    p.window.close()


@pytest.fixture
def panel(module_panel: Panel) -> Iterator[Panel]:
    yield from fresh(module_panel)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A real kiosk's state directory (kiosk.json, tokens.json of a paired teacher)."""
    with KioskThread(tmp_path / "state") as k:
        asyncio.run(pair(k.address, k.pin(), TEACHER))
    return tmp_path / "state"


@pytest.mark.slow
@needs_chromium
def test_screenshot_of_a_page_shows_nothing_of_the_panel(
    panel: Panel, state: Path, trap: Trap
) -> None:
    """Files (/etc/passwd, the state directory's listing, kiosk.json, tokens.json) in
    iframes and XHR, loopback ports in XHR, fetch, websocket, iframe and img, and the
    private origin's other paths: every probe green, the iframes blank, the trap unhit."""
    assert (state / "kiosk.json").is_file()
    assert (state / "tokens.json").is_file()
    panel.use(make_loader("headless", panel.root))
    frame = panel.show(page_item(panel, probe_page(state, trap)))
    for i in range(PROBES):
        assert frame.pixel(i * 50 + 20, 20) == GREEN, f"probe {i}"
    for x in range(0, 580, 7):  # the file:// iframes show nothing (no text of passwd)
        for y in range(100, 400, 7):
            assert frame.pixel(x, y) == WHITE, (x, y)
    assert trap.hits == []


def net_wm_names(display: str) -> list[str]:
    """The ``_NET_WM_NAME`` of every window on ``display`` (Chromium's page titles)."""
    x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
    handler = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    ulong_p = ctypes.POINTER(ctypes.c_ulong)
    x11.XSetErrorHandler.argtypes = [handler]
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XQueryTree.argtypes = [
        *(ctypes.c_void_p, ctypes.c_ulong, ulong_p, ulong_p),
        *(ctypes.POINTER(ulong_p), ctypes.POINTER(ctypes.c_uint)),
    ]
    x11.XGetWindowProperty.argtypes = [
        *(ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long, ctypes.c_long),
        *(ctypes.c_int, ctypes.c_ulong, ulong_p, ctypes.POINTER(ctypes.c_int), ulong_p),
        *(ulong_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))),
    ]
    x11.XFree.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    keep = handler(lambda dpy, event: 0)  # windows come and go meanwhile: ignore errors
    x11.XSetErrorHandler(keep)
    dpy = x11.XOpenDisplay(display.encode())
    if not dpy:
        raise ConnectionError(f"cannot open {display}")
    names: list[str] = []
    try:
        atom = x11.XInternAtom(dpy, b"_NET_WM_NAME", False)
        todo = [x11.XDefaultRootWindow(dpy)]
        while todo:
            xid = todo.pop()
            root, parent, count = ctypes.c_ulong(), ctypes.c_ulong(), ctypes.c_uint()
            children = ulong_p()
            if x11.XQueryTree(dpy, xid, root, parent, ctypes.byref(children), count):
                todo += [children[i] for i in range(count.value)]
                if children:
                    x11.XFree(children)
            kind, fmt = ctypes.c_ulong(), ctypes.c_int()
            n, after = ctypes.c_ulong(), ctypes.c_ulong()
            data = ctypes.POINTER(ctypes.c_ubyte)()
            got = x11.XGetWindowProperty(
                dpy, xid, atom, 0, 4096, False, 0, kind, fmt, n, after, ctypes.byref(data)
            )
            if got == 0 and data:
                if fmt.value == 8 and n.value:
                    names.append(ctypes.string_at(data, n.value).decode("utf-8", "replace"))
                x11.XFree(data)
    finally:
        x11.XCloseDisplay(dpy)
    return names


@pytest.fixture(scope="module")
def x_display() -> Iterator[str]:
    if ctypes.util.find_library("X11") is None:
        pytest.skip("no libX11")
    from tests.xvfb import xvfb

    with xvfb(W, H) as display:
        yield display


@pytest.fixture
def window_env(x_display: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Chromium windows on the private X server, with a HOME of the test's own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DISPLAY", x_display)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    return home


def title_of(panel: Panel, display: str, prefix: str, timeout_s: float = 15.0) -> str:
    """The title of the window whose title starts with one of ``prefix`` (``|``-separated)."""
    found: list[str] = []

    def seen() -> bool:
        try:
            names = net_wm_names(display)
        except ConnectionError:  # the X server refused a connection for a moment: poll on
            return False
        found[:] = [n for n in names if n.startswith(tuple(prefix.split("|")))]
        return bool(found)

    panel.wait_until(seen, timeout_s, poll_s=0.1)
    return found[0]


def show_in_window(panel: Panel, item: ManifestItem) -> WebWindowScene:
    panel.show(item)
    scene = panel.window.current
    assert isinstance(scene, WebWindowScene)
    assert scene.browser.running
    return scene


def leave(panel: Panel) -> None:
    """Show another item: the window closes and its profile goes (once Chromium exited:
    the window does not wait for it)."""
    scene = panel.window.current
    panel.show(panel.lesson.items[1])
    if isinstance(scene, WebWindowScene):
        scene.browser.wait_stopped()


@pytest.mark.slow
@needs_chromium
def test_window_page_reaches_nothing_of_the_panel(
    panel: Panel, window_env: Path, x_display: str, state: Path, trap: Trap
) -> None:
    panel.use(make_loader("windowed", panel.root))
    show_in_window(panel, page_item(panel, probe_page(state, trap)))
    assert title_of(panel, x_display, "probed:") == "probed:" + "0" * PROBES
    assert trap.hits == []


NAVIGATE_PAGE = """<!doctype html><html><head><title>nav:start</title></head><body><script>
setTimeout(() => {{ location.href = "file://{state}/"; }}, 50);
setTimeout(() => {{ window.open("file:///etc/passwd"); }}, 100);
setTimeout(() => {{ document.title = "nav:stayed"; }}, 1500);
</script></body></html>"""


@pytest.mark.slow
@needs_chromium
def test_window_page_cannot_navigate_to_the_state_directory(
    panel: Panel, window_env: Path, x_display: str, state: Path
) -> None:
    panel.use(make_loader("windowed", panel.root))
    show_in_window(panel, page_item(panel, NAVIGATE_PAGE.format(state=state).encode()))
    assert title_of(panel, x_display, f"nav:stayed|Index of|{state}") == "nav:stayed"
    names = net_wm_names(x_display)
    assert not any(str(state) in n or "passwd" in n for n in names), names


STORAGE_PAGE = b"""<!doctype html><html><head><title>storing</title></head><body><script>
const before = localStorage.getItem("teacher") || "none";
const cookie = document.cookie || "nocookie";
localStorage.setItem("teacher", "Petrova");
document.cookie = "c=Petrova; max-age=86400";
const open = indexedDB.open("lesson", 1);
open.onupgradeneeded = () => open.result.createObjectStore("s");
open.onsuccess = () => {
  const db = open.result;
  const get = db.transaction("s").objectStore("s").get("teacher");
  get.onsuccess = () => {
    const stored = get.result || "none";
    // A strict transaction is on disk when it completes: the next cast could read it.
    const put = db.transaction("s", "readwrite", { durability: "strict" });
    put.objectStore("s").put("Petrova", "teacher");
    put.oncomplete = () => { document.title = `ls:${before}:${cookie}:${stored}`; };
  };
};
</script></body></html>"""
FIRST_VISIT = "ls:none:nocookie:none"


@pytest.mark.slow
@needs_chromium
def test_each_cast_gets_a_fresh_profile(panel: Panel, window_env: Path, x_display: str) -> None:
    """What one cast's page stores (localStorage, cookies, IndexedDB) the next cast
    cannot see; the profiles are deleted."""
    root = panel.root
    panel.use(make_loader("windowed", root))
    item = page_item(panel, STORAGE_PAGE)
    scene = show_in_window(panel, item)
    assert title_of(panel, x_display, "ls:") == FIRST_VISIT
    first = scene.profile
    assert first is not None
    leave(panel)
    assert not first.exists()
    # Another teacher casts a lesson with the same page.
    panel.window.apply(Show(LessonManifest("l-other-teacher", "Другой урок", [item]), 0, item))
    panel.window.run_pending(timeout_s=web.RENDER_TIMEOUT_S)
    assert isinstance(panel.window.current, WebWindowScene)
    assert title_of(panel, x_display, "ls:") == FIRST_VISIT
    leave(panel)
    assert list((root / "chromium").iterdir()) == []


DOWNLOAD_PAGE = b"""<!doctype html><html><head><title>dl:?</title></head><body><script>
const blob = new Blob([new Uint8Array(4 * 1024 * 1024)], { type: "application/octet-stream" });
const a = document.createElement("a");
a.href = URL.createObjectURL(blob); a.download = "lesson-dump.bin";
document.body.appendChild(a); a.click();
setTimeout(() => { document.title = "dl:clicked"; }, 1500);
</script></body></html>"""


def files_under(*roots: Path) -> set[Path]:
    return {p for root in roots for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
@needs_chromium
def test_downloads_write_nothing(panel: Panel, window_env: Path, x_display: str) -> None:
    """A page's script download: no file under HOME or the state directory, during the
    showing or after (without the guard it lands in HOME/Downloads within a second)."""
    root = panel.root
    panel.use(make_loader("windowed", root))
    item = page_item(panel, DOWNLOAD_PAGE)
    before = files_under(root / "store")
    scene = show_in_window(panel, item)
    assert title_of(panel, x_display, "dl:clicked") == "dl:clicked"
    downloaded = [
        p
        for p in files_under(window_env, root)
        if p.name.startswith(("lesson-dump", "Unconfirmed")) or p.suffix == ".crdownload"
    ]
    assert downloaded == []
    assert scene.profile is not None
    assert not (scene.profile / "downloads").exists()
    leave(panel)
    assert not (window_env / "Downloads").exists()
    assert files_under(root / "store") == before
    assert list((root / "chromium").iterdir()) == []


@pytest.mark.parametrize("mode", ["headless", "windowed"])
def test_address_outside_the_allowlist_gets_the_error_slide(
    panel: Panel, trap: Trap, tmp_path: Path, mode: str
) -> None:
    """Not opened at all (Chromium never runs): the slide says the address is not
    allowed on this panel and whom to ask; allowed hosts still show."""
    ran = tmp_path / "chromium-ran"
    stand_in = tmp_path / "chromium"
    stand_in.write_text(f"#!/bin/sh\ntouch {ran}\n")
    stand_in.chmod(0o755)
    guard = WebGuard(HostAllowlist(["lib.myschool.edu.ru", "*.myschool.edu.ru"]))
    try:
        panel.use(make_loader(mode, tmp_path, guard, chromium=str(stand_in)))
        item = ManifestItem("web", "Игра", url=f"http://evil.example:{trap.port}/game")
        reports: list[tuple[int, str, int | None]] = []
        panel.window.item_failed = lambda index, why, status: reports.append((index, why, status))
        frame = panel.show(item)
        assert reports == [(panel.shown, "not_allowed", None)]  # usage and status told
        scene = panel.window.current
        assert isinstance(scene, AddressNotAllowedScene)
        assert scene.lines == [
            "Не удалось показать «Игра»",
            "Адрес evil.example не разрешён на этой панели.",
            "Попросите администратора школы добавить его в список разрешённых сайтов панели.",
        ]
        assert frame.pixel(3, 3) == ERROR_BACKGROUND[:3]
        assert not ran.exists()
        assert trap.hits == []
    finally:
        guard.close()


REDIRECT_PAGE = b"""<!doctype html><html><head><style>body { margin: 0; background: #00ff00; }
</style></head><body>
<iframe src="http://%s:%d/frame" style="width: 300px; height: 200px; border: 0"></iframe>
<img src="http://%s:%d/img"></body></html>"""


@pytest.mark.slow
@needs_chromium
def test_allowlist_holds_for_every_request_of_an_allowed_page(panel: Panel, trap: Trap) -> None:
    """An allowed page (127.0.0.1, listed) whose iframe and image point at a host that
    is not listed (this machine's name, reachable here): only the allowed page is
    fetched; the iframe shows the refusal."""
    name = socket.gethostname()
    assert CHROMIUM is not None
    guard = WebGuard(HostAllowlist(["127.0.0.1"]), is_panel_address=lambda a: False)

    class Page(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(4096)
            body = REDIRECT_PAGE % (name.encode(), trap.port, name.encode(), trap.port)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
            self.request.sendall(head % len(body) + body)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        panel.use(make_loader("headless", panel.root, guard))
        port = server.server_address[1]
        frame = panel.show(ManifestItem("web", "Разрешённая", url=f"http://127.0.0.1:{port}/"))
        assert frame.pixel(W - 3, H - 3) == GREEN  # the allowed page is shown
        assert frame.pixel(20, 20) == (250, 250, 250)  # the refusal page in the iframe
        assert trap.hits == []
        assert guard.refused >= 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        guard.close()


# --------------------------------------------------------------------------- page checks


class OneAnswer:
    """A server on 127.0.0.1 that answers every connection with ``answer`` (or, with
    None, reads and never answers); TLS with the kiosk's own kind of certificate when
    ``tls`` is given."""

    def __init__(self, answer: bytes | None, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[bytes] = []
        self.release = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = self.request
                if tls is not None:
                    try:
                        conn = tls.wrap_socket(conn, server_side=True)
                    except (OSError, ssl.SSLError):
                        return
                outer.requests.append(conn.recv(65536))
                if answer is None:
                    outer.release.wait(5)
                    return
                conn.sendall(answer)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback_guard() -> Iterator[WebGuard]:
    """A guard that lets the check reach loopback servers (as a LAN host would be)."""
    guard = WebGuard(is_panel_address=lambda address: False)
    yield guard
    guard.close()


@pytest.mark.parametrize(
    ("answer", "failure"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", None),
        (b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\n", None),
        (b"HTTP/1.0 404 Not Found\r\n\r\n", PageFailure("http_error", "127.0.0.1", 404)),
        (b"HTTP/1.1 503 Busy\r\n\r\n", PageFailure("http_error", "127.0.0.1", 503)),
        (b"SSH-2.0-OpenSSH\r\n", PageFailure("unreachable", "127.0.0.1")),
        (b"", PageFailure("unreachable", "127.0.0.1")),
    ],
)
def test_check_page_reads_the_status_of_the_top_document(
    loopback_guard: WebGuard, answer: bytes, failure: PageFailure | None
) -> None:
    server = OneAnswer(answer)
    try:
        got = loopback_guard.check_page(f"http://127.0.0.1:{server.port}/урок?x=1")
        assert got == failure
        assert server.requests[0].startswith(b"GET /")
        assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in server.requests[0]
    finally:
        server.close()


def test_check_page_of_an_https_page_reads_its_status_through_tls(
    loopback_guard: WebGuard, tmp_path: Path
) -> None:
    """The guard sees an https page only as a tunnel; its check does the handshake
    itself (any certificate: Chromium judges it) and reads the status."""
    tls = ensure_identity(tmp_path, "test").server_context()
    server = OneAnswer(b"HTTP/1.1 410 Gone\r\n\r\n", tls)
    try:
        got = loopback_guard.check_page(f"https://127.0.0.1:{server.port}/")
        assert got == PageFailure("http_error", "127.0.0.1", 410)
    finally:
        server.close()


def test_check_page_of_a_silent_host_is_a_timeout(loopback_guard: WebGuard) -> None:
    server = OneAnswer(None)
    try:
        got = loopback_guard.check_page(f"http://127.0.0.1:{server.port}/", timeout_s=0.2)
        assert got == PageFailure("timeout", "127.0.0.1")
    finally:
        server.close()


def test_check_page_refuses_as_the_proxy_does(trap: Trap) -> None:
    """The allowlist and the panel's own addresses hold for the check as for Chromium:
    nothing is connected to."""
    guard = WebGuard(HostAllowlist(["lib.myschool.edu.ru", "127.0.0.1"]))
    try:
        assert guard.check_page(f"http://evil.example:{trap.port}/") == PageFailure(
            "not_allowed", "evil.example"
        )
        assert guard.check_page(f"https://127.0.0.1:{trap.port}/") == PageFailure(
            "panel", "127.0.0.1"
        )
        assert guard.check_page(f"http://localhost:{trap.port}/") == PageFailure(
            "panel", "localhost"
        )
        assert trap.hits == []
    finally:
        guard.close()


def test_check_page_of_a_name_that_cannot_resolve_is_no_network() -> None:
    """A name no resolver can look up (a label over 63 characters: refused before any
    query leaves the machine) reads as "cannot find the site"."""
    guard = WebGuard()
    host = "a" * 64 + ".example"
    try:
        assert guard.check_page(f"http://{host}/") == PageFailure("no_network", host)
    finally:
        guard.close()
