"""Web pages: kiosk.web, on a headless panel window (EGL) with the real Chromium.

Screenshots (the sample lesson's HTML, a page from a local HTTP server, a page that
does not load) and the supervision of the Chromium window, with a stand-in script for
Chromium (no display here). What pages can reach is tested in test_hardening_web.py.
"""

from __future__ import annotations

import os

os.environ["PYGLET_HEADLESS"] = "true"  # before pyglet's first import

import http.client
import http.server
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyglet
import pytest

from kiosk import web
from kiosk.effects import WindowMode
from kiosk.player import SetBlank, Show, ShowIdle
from kiosk.scenes import (
    BLACK,
    ERROR_BACKGROUND,
    PLACEHOLDER_BACKGROUND,
    IdleInfo,
    Pixels,
    SceneRequest,
    load_placeholder,
)
from kiosk.web import WebLoader, WebWindowScene
from kiosk.webguard import PRIVATE_DOMAIN, WebGuard
from kiosk.window import Frame, PygletWindow
from media.lesson import load_lesson, sample_lesson_path
from media.store import BlobStore
from protocol.messages import LessonManifest, ManifestItem

pytestmark = pytest.mark.display

W, H = 640, 480
PAGE_BACKGROUND = (255, 253, 231)  # 06-proverka.html: body { background: #fffde7 }
PAGE_HEADING = (46, 125, 50)  # h1 { color: #2e7d32 }
SERVED_BACKGROUND = (21, 101, 192)  # #1565c0
SERVED_BAND = (255, 111, 0)  # #ff6f00

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")

SERVED_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><style>
body { margin: 0; background: #1565c0; }
div { position: absolute; left: 0; top: 0; width: 100%; height: 100px; background: #ff6f00; }
</style></head><body><div></div></body></html>"""


class Panel:
    """A headless window with the sample lesson in its store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = BlobStore(root / "store", 10**9)
        lesson = load_lesson(sample_lesson_path())
        for path in lesson.blob_paths().values():
            self.store.put_bytes(path.read_bytes())
        self.lesson = lesson.manifest()
        self.window = PygletWindow(
            self.store, IdleInfo("Школа № 5", "Каб. 12"), mode="headless", size=(W, H), lang="ru"
        )
        self.frames: list[Frame] = []
        self.loaders: list[WebLoader] = []
        self.shown = 0
        self.window.frame_hooks.append(lambda: self.frames.append(self.window.read_pixels()))
        self.window.run_pending()

    @property
    def html_item(self) -> ManifestItem:
        return next(item for item in self.lesson.items if item.kind == "web")

    def use(self, loader: WebLoader) -> None:
        self.loaders.append(loader)  # closed after the test (its guard)
        self.window.factory.register("web", loader)

    def show(self, item: ManifestItem) -> Frame:
        """Show ``item`` as a new item (never a scene the window has cached)."""
        self.shown += 1
        lesson = LessonManifest(f"l-web-{self.shown}", "Веб", [item])
        self.window.apply(Show(lesson, self.shown, item))
        self.window.run_pending(timeout_s=web.RENDER_TIMEOUT_S + 5)
        return self.frames[-1]

    def wait_until(
        self, condition: Callable[[], bool], timeout_s: float = 3.0, poll_s: float = 0.02
    ) -> None:
        """Run the pyglet clock (the supervision check) until ``condition`` holds."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            pyglet.app.platform_event_loop.dispatch_posted_events()
            pyglet.clock.tick()
            time.sleep(poll_s)


@pytest.fixture(scope="module")
def module_panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    p = Panel(tmp_path_factory.mktemp("web"))
    yield p
    p.window.close()


@pytest.fixture
def panel(module_panel: Panel) -> Iterator[Panel]:
    yield from fresh(module_panel)


def fresh(panel: Panel) -> Iterator[Panel]:
    """``panel`` for one test, then back to idle with its web loaders closed."""
    panel.frames.clear()
    yield panel
    panel.window.apply(SetBlank(False))
    panel.window.apply(ShowIdle())
    panel.window.run_pending()
    panel.window.factory.register("web", load_placeholder)
    for loader in panel.loaders:
        loader.close()
    panel.loaders.clear()


@pytest.fixture
def open_guard() -> Iterator[WebGuard]:
    """A guard that lets pages reach loopback: for tests of pages from a local server."""
    guard = WebGuard(is_panel_address=lambda address: False)
    yield guard
    guard.close()


def proxy_get(guard: WebGuard, url: str) -> tuple[int, bytes]:
    """GET ``url`` through ``guard`` as Chromium does (absolute form); status and body."""
    conn = http.client.HTTPConnection("127.0.0.1", guard.port, timeout=5)
    try:
        conn.request("GET", url)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def count(frame: Frame, color: tuple[int, int, int]) -> int:
    target = bytes((*color, 255))
    rgba = frame.rgba
    return sum(1 for i in range(0, len(rgba), 4) if rgba[i : i + 4] == target)


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server on 127.0.0.1 serving SERVED_PAGE; yields its URL and the
    paths requested."""
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            if self.path.startswith("/missing"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(SERVED_PAGE)))
            self.end_headers()
            self.wfile.write(SERVED_PAGE)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/page.html", requested
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# --------------------------------------------------------------------------- screenshots


@pytest.mark.slow
@needs_chromium
def test_html_blob_is_rendered_headless(panel: Panel) -> None:
    panel.use(WebLoader("headless"))
    frame = panel.show(panel.html_item)
    # The page fills the window (same size: no letterbox bars).
    for x, y in [(3, 3), (W - 3, 3), (3, H - 3), (W - 3, H - 3), (W - 20, H // 2)]:
        assert frame.pixel(x, y) == PAGE_BACKGROUND
    assert count(frame, PAGE_HEADING) > 100  # the green heading «Проверь себя»
    assert count(frame, PAGE_BACKGROUND) > W * H // 2


@pytest.mark.slow
@needs_chromium
def test_url_from_a_local_server_is_rendered(
    panel: Panel, server: tuple[str, list[str]], open_guard: WebGuard
) -> None:
    """Through the guard (the proxy), which forwards the request to the server."""
    url, requested = server
    panel.use(WebLoader("headless", guard=open_guard))
    frame = panel.show(ManifestItem("web", "Страница", url=url))
    assert requested[0] == "/page.html"
    assert frame.pixel(W // 2, 50) == SERVED_BAND
    assert frame.pixel(W // 2, 99) == SERVED_BAND
    assert frame.pixel(W // 2, 101) == SERVED_BACKGROUND
    assert frame.pixel(3, H - 3) == SERVED_BACKGROUND


def closed_port() -> int:
    """A port of 127.0.0.1 where nothing listens (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def failures_of(panel: Panel) -> list[tuple[int, str, int | None]]:
    """What the window reports as failed items from now on (the kiosk's usage and status)."""
    reports: list[tuple[int, str, int | None]] = []
    panel.window.item_failed = lambda index, why, status: reports.append((index, why, status))
    return reports


@pytest.mark.parametrize("mode", ["headless", "windowed"])
def test_page_on_a_closed_port_gets_the_card_saying_why(
    panel: Panel, open_guard: WebGuard, tmp_path: Path, mode: WindowMode
) -> None:
    """The guard opens the page first: nothing answers, so Chromium is never started, the
    card says the site does not answer and what to do, the failure is reported (the
    usage log and the teacher's status), and the lesson goes on."""
    ran = tmp_path / "chromium-ran"
    chromium = stand_in(tmp_path, f"touch {ran}")
    reports = failures_of(panel)
    panel.use(
        WebLoader(
            mode, guard=open_guard, chromium_path=str(chromium), display_available=lambda: True
        )
    )
    port = closed_port()
    frame = panel.show(ManifestItem("web", "Опыт", url=f"http://127.0.0.1:{port}/"))
    scene = panel.window.current
    assert isinstance(scene, web.PageFailedScene)
    assert scene.lines == [
        "Не удалось открыть страницу «Опыт»",
        "Сайт 127.0.0.1 не отвечает.",
        "Проверьте подключение панели к сети или сохраните страницу файлом (или zip-архивом "
        "HTML5) и покажите его. Урок продолжается.",
    ]
    assert frame.pixel(3, 3) == ERROR_BACKGROUND[:3]
    assert reports == [(panel.shown, "unreachable", None)]
    assert not ran.exists()
    frame = panel.show(panel.lesson.items[1])
    assert frame.pixel(3, 3) != ERROR_BACKGROUND[:3]


def test_page_with_an_http_error_gets_the_card_with_the_status(
    panel: Panel, server: tuple[str, list[str]], open_guard: WebGuard
) -> None:
    url, requested = server
    reports = failures_of(panel)
    panel.use(WebLoader("headless", guard=open_guard))
    frame = panel.show(ManifestItem("web", "Тест", url=url.replace("/page.html", "/missing/1")))
    scene = panel.window.current
    assert isinstance(scene, web.PageFailedScene)
    assert scene.lines[1] == (
        "Сайт 127.0.0.1 ответил ошибкой 404: такой страницы нет или она закрыта."
    )
    assert scene.lines[2] == "Проверьте ссылку. Урок продолжается."
    assert frame.pixel(3, 3) == ERROR_BACKGROUND[:3]
    assert reports == [(panel.shown, "http_error", 404)]
    assert requested == ["/missing/1"]  # checked once; Chromium never asked for it


def test_missing_chromium_gives_the_error_slide(panel: Panel, tmp_path: Path) -> None:
    panel.use(WebLoader("headless", chromium_path=str(tmp_path / "no-chromium")))
    frame = panel.show(panel.html_item)
    assert frame.pixel(3, 3) == ERROR_BACKGROUND[:3]


def test_screenshot_timeout(panel: Panel, tmp_path: Path) -> None:
    hangs = stand_in(tmp_path, "exec sleep 30")
    panel.use(WebLoader("headless", chromium_path=str(hangs), render_timeout_s=0.2))
    started = time.monotonic()
    frame = panel.show(panel.html_item)
    assert time.monotonic() - started < 3
    assert frame.pixel(3, 3) == ERROR_BACKGROUND[:3]


def test_not_a_web_url_is_refused(panel: Panel) -> None:
    panel.use(WebLoader("headless"))
    frame = panel.show(ManifestItem("web", "Файл", url="file:///etc/passwd"))
    assert frame.pixel(3, 3) == ERROR_BACKGROUND[:3]


def test_window_mode_without_a_display_falls_back_to_the_screenshot(tmp_path: Path) -> None:
    loader = WebLoader(
        "fullscreen",
        chromium_path="/bin/sh",
        profiles_dir=tmp_path,
        display_available=lambda: False,
    )
    assert not loader.can_open_window()
    assert WebLoader(
        "windowed", chromium_path="/bin/sh", display_available=lambda: True
    ).can_open_window()
    assert WebLoader(
        "fullscreen", chromium_path="/bin/sh", display_available=lambda: True
    ).can_open_window()
    assert not WebLoader(
        "headless", chromium_path="/bin/sh", display_available=lambda: True
    ).can_open_window()
    assert not WebLoader(
        "fullscreen", chromium_path=str(tmp_path / "none"), display_available=lambda: True
    ).can_open_window()


# --------------------------------------------------------------------------- the window


def stand_in(tmp_path: Path, body: str) -> Path:
    """A harmless stand-in for Chromium: records its arguments, then runs ``body``."""
    script = tmp_path / "chromium-stand-in"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/argv.$$"\n{body}\n')
    script.chmod(0o755)
    return script


DEVTOOLS_STAND_IN = """
import json, os, sys, time
with open(os.path.join({tmp!r}, f"argv.{{os.getpid()}}"), "w") as out:
    out.write("\\n".join(sys.argv[1:]) + "\\n")
def send(message):
    os.write(4, json.dumps(message).encode() + b"\\0")
pending = b""
try:
    while True:
        chunk = os.read(3, 65536)
        if not chunk:
            break
        pending += chunk
        *messages, pending = pending.split(b"\\0")
        for raw in messages:
            m = json.loads(raw)
            if m["method"] == "Target.setDiscoverTargets" and m["params"]["discover"]:
                send({{"id": m["id"], "result": {{}}}})
                info = {{"targetId": "T1", "type": "page", "url": "http://x/"}}
                send({{"method": "Target.targetCreated", "params": {{"targetInfo": info}}}})
            elif m["method"] == "Target.attachToTarget":
                send({{"method": "Target.attachedToTarget", "params": {{"sessionId": "S1"}}}})
                send({{"id": m["id"], "result": {{"sessionId": "S1"}}}})
            elif m["method"] == "Runtime.evaluate" and {paints}:
                while {gate!r} and not os.path.exists({gate!r}):
                    time.sleep(0.01)
                value = {{"result": {{"type": "boolean", "value": True}}}}
                send({{"id": m["id"], "sessionId": m["sessionId"], "result": value}})
            else:
                send({{"id": m["id"], "result": {{}}}})
except OSError:
    pass
time.sleep(30)
"""


def devtools_stand_in(tmp_path: Path, *, paints: bool = True, gate: Path | None = None) -> Path:
    """A stand-in for Chromium that speaks the DevTools pipe: it finds one page, and
    that page reports its first paint (``paints``; once ``gate`` exists, if given) or
    never does."""
    script = tmp_path / "chromium-devtools-stand-in"
    body = DEVTOOLS_STAND_IN.format(
        tmp=str(tmp_path), paints=paints, gate="" if gate is None else str(gate)
    )
    script.write_text(f"#!{sys.executable}\n{body}")
    script.chmod(0o755)
    return script


def test_window_command_line(tmp_path: Path) -> None:
    guard = WebGuard()
    loader = WebLoader("fullscreen", chromium_path="/opt/chromium", guard=guard)
    try:
        argv = loader.window_command("https://example.org/quiz", W, H, tmp_path / "p")
        assert argv[0] == "/opt/chromium"
        assert argv[-1] == "--app=https://example.org/quiz"
        assert "--kiosk" in argv
        assert f"--window-size={W},{H}" in argv
        assert f"--user-data-dir={tmp_path / 'p'}" in argv
        for flag in (
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--noerrdialogs",
            f"--proxy-server=http://127.0.0.1:{guard.port}",
            "--proxy-bypass-list=<-loopback>",
        ):
            assert flag in argv
        assert ("--no-sandbox" in argv) == (os.geteuid() == 0)
        argv = WebLoader("windowed", chromium_path="/opt/chromium", guard=guard).window_command(
            "http://a/", W, H, tmp_path / "p"
        )
        assert "--kiosk" not in argv
        assert f"--window-size={W},{H}" in argv
    finally:
        guard.close()


def test_headless_command_line(tmp_path: Path) -> None:
    flags = ("--proxy-server=http://127.0.0.1:1",)
    argv = web.screenshot_command(
        "chromium", "http://a/", tmp_path / "s.png", W, H, tmp_path, flags
    )
    assert argv[:2] == ["chromium", "--headless"]
    assert f"--screenshot={tmp_path / 's.png'}" in argv
    assert f"--window-size={W},{H}" in argv
    assert f"--user-data-dir={tmp_path}" in argv
    assert flags[0] in argv
    assert argv[-1] == "http://a/"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_window_is_started_on_enter_stopped_on_leave_and_restarted(
    panel: Panel, tmp_path: Path
) -> None:
    script = devtools_stand_in(tmp_path)
    loader = WebLoader(
        "fullscreen",
        chromium_path=str(script),
        profiles_dir=tmp_path / "profiles",
        display_available=lambda: True,
    )
    panel.use(loader)
    panel.show(panel.html_item)
    scene = panel.window.current
    assert isinstance(scene, WebWindowScene)
    panel.wait_until(lambda: scene.ready, timeout_s=10.0)  # its page painted
    panel.window.run_pending()
    frame = panel.frames[-1]
    assert frame.pixel(3, 3) == PLACEHOLDER_BACKGROUND[:3]  # the card under the window
    first = scene.browser.pid
    assert first is not None
    assert scene.browser.running
    # Its command line: the blob at a private origin of the guard, in kiosk mode, in a
    # fresh profile.
    panel.wait_until(lambda: (tmp_path / f"argv.{first}").exists())
    args = (tmp_path / f"argv.{first}").read_text().splitlines()
    assert "--kiosk" in args
    url = next(a for a in args if a.startswith("--app=")).removeprefix("--app=")
    assert url.startswith("http://")
    assert url.endswith(f".{PRIVATE_DOMAIN}/")
    status, body = proxy_get(loader.guard, url)
    assert status == 200
    assert body == panel.store.path(panel.html_item.sha256 or "").read_bytes()
    profile = scene.profile
    assert profile is not None
    assert profile.parent == tmp_path / "profiles"
    assert f"--user-data-dir={profile}" in args
    assert (profile / "Default" / "Preferences").is_file()

    assert "--remote-debugging-pipe" in args  # a pipe, no port: nothing listens
    assert not any(a.startswith("--remote-debugging-port") for a in args)

    # Killed while shown: restarted by the next check (within a second), same profile.
    os.kill(first, signal.SIGKILL)
    panel.wait_until(lambda: scene.browser.pid != first and scene.browser.running)
    second = scene.browser.pid
    assert second is not None
    assert not alive(first)
    assert scene.profile == profile

    # The next item: the window is stopped (without waiting for it), and stays stopped;
    # the profile is gone once it exited.
    frame = panel.show(panel.lesson.items[1])
    assert frame.pixel(3, 3) != PLACEHOLDER_BACKGROUND[:3]
    assert scene.browser.pid is None
    scene.browser.wait_stopped()
    assert not alive(second)
    assert scene.profile is None
    assert not profile.exists()
    deadline = time.monotonic() + 1.3
    while time.monotonic() < deadline:  # a check would have run: nothing restarts
        pyglet.clock.tick()
        time.sleep(0.05)
    assert scene.browser.pid is None
    assert scene.browser.starts == 2

    # Deleted (e.g. evicted from the cache): the page is no longer served.
    scene.delete()
    assert proxy_get(loader.guard, url)[0] == 404


def direct_scene(panel: Panel, argv: list[str], fallback: Callable[[], Pixels]) -> WebWindowScene:
    return WebWindowScene(panel.window.ctx, "Проверь себя", lambda profile: argv, fallback)


@pytest.mark.parametrize("fails", [False, True])
def test_window_that_keeps_dying_falls_back_to_the_screenshot(
    panel: Panel, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    monkeypatch.setattr(web, "SUPERVISE_INTERVAL_S", 0.01)
    calls: list[str] = []

    def fallback() -> Pixels:
        calls.append(threading.current_thread().name)
        if fails:
            raise OSError("no chromium either")
        return Pixels(2, 2, b"\xff\x00\x00\xff" * 4)

    scene = direct_scene(panel, ["/bin/false"], fallback)
    try:
        scene.enter()
        panel.wait_until(lambda: scene.fallback_shown)
        assert scene.browser.starts == web.MAX_QUICK_DEATHS
        assert calls == ["web-fallback"]
        assert scene.background == (ERROR_BACKGROUND if fails else BLACK)
        scene.leave()
        scene.enter()  # shown again: no more attempts
        assert scene.browser.starts == web.MAX_QUICK_DEATHS
    finally:
        scene.delete()


def test_window_that_cannot_start_falls_back(
    panel: Panel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web, "SUPERVISE_INTERVAL_S", 0.01)
    done = threading.Event()

    def fallback() -> Pixels:
        done.set()
        return Pixels(1, 1, b"\x00\x00\x00\xff")

    scene = direct_scene(panel, [str(tmp_path / "missing")], fallback)
    try:
        scene.enter()
        assert scene.gave_up
        assert done.wait(2)
        panel.wait_until(lambda: scene.fallback_shown)
    finally:
        scene.delete()


def test_an_announcement_closes_the_window_over_a_screenshot_of_the_page(
    panel: Panel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chromium's window would hide the announcement: it closes meanwhile, and the page
    shows as a picture under the announcement; afterwards the window opens again."""
    monkeypatch.setattr(web, "SUPERVISE_INTERVAL_S", 0.01)
    renders: list[str] = []

    def screenshot() -> Pixels:
        renders.append(threading.current_thread().name)
        return Pixels(2, 2, bytes((*PAGE_BACKGROUND, 255)) * 4)

    scene = direct_scene(panel, [str(stand_in(tmp_path, "exec sleep 30"))], screenshot)
    try:
        scene.enter()
        first = scene.browser.pid
        assert scene.browser.running
        scene.overlaid(True)
        assert not scene.browser.running
        scene.browser.wait_stopped()
        assert not alive(first)

        def page_drawn() -> bool:
            scene.draw()  # the page's picture replaces the card once it is rendered
            return scene.background == BLACK

        panel.wait_until(page_drawn)
        time.sleep(0.1)
        pyglet.clock.tick()  # checks ran meanwhile: nothing restarted under the banner
        assert not scene.browser.running
        scene.overlaid(False)
        assert scene.browser.running
        assert scene.browser.starts == 2
        scene.leave()
        scene.overlaid(True)  # shown again under an announcement: no window at all
        scene.enter()
        assert not scene.browser.running
        assert renders == ["web-page-shot"]  # rendered once, kept
    finally:
        scene.delete()


def test_request_for_a_blob_without_a_file(panel: Panel) -> None:
    loader = WebLoader("headless")
    item = ManifestItem("web", "Пусто")
    with pytest.raises(Exception, match="neither a URL nor a file"):
        loader(SceneRequest(0, item), panel.window.ctx)


@pytest.mark.slow
@pytest.mark.parametrize("paints", [True, False])
def test_the_previous_item_stays_until_the_page_painted(
    panel: Panel, tmp_path: Path, paints: bool
) -> None:
    """Until Chromium says its page painted, every frame still shows the previous item
    (never the card under the window); then the page's scene comes on screen. A page
    that never paints shows once its wait is over."""
    gate = tmp_path / "paint-now"
    script = devtools_stand_in(tmp_path, paints=paints, gate=gate)
    loader = WebLoader("windowed", chromium_path=str(script), display_available=lambda: True)
    panel.use(loader)
    blue = panel.show(panel.lesson.items[1]).pixel(3, 3)
    panel.show(panel.html_item)
    scene = panel.window.current
    assert isinstance(scene, WebWindowScene)
    panel.wait_until(lambda: (tmp_path / f"argv.{scene.browser.pid}").exists(), 10.0)
    for _ in range(3):  # redraws meanwhile (an expose, a screenshot)
        panel.window.request_redraw()
        panel.window.run_pending()
        assert not scene.ready
        assert panel.frames[-1].pixel(3, 3) == blue
    if paints:
        gate.touch()
        panel.wait_until(lambda: scene.ready, timeout_s=10.0)
    else:
        scene.first_picture_wait_s = 0.0  # the wait is over
    panel.window.request_redraw()
    panel.window.run_pending()
    assert panel.frames[-1].pixel(3, 3) == PLACEHOLDER_BACKGROUND[:3]
    assert scene.browser.running
