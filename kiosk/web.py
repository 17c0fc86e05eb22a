"""Web pages (kind ``web``): a screenshot by headless Chromium, or a Chromium window.

Two ways to show a page, chosen per item by :class:`WebLoader`:

* **screenshot** (headless mode, and whenever a Chromium window cannot be shown: no
  display, no Chromium): the loader thread runs ``chromium --headless --screenshot``
  at the window's size and the page is shown as a picture, letterboxed like an image.
  A page that does not load (timeout, refused connection, no Chromium) gives the
  error slide; the lesson goes on.
* **window** (fullscreen and windowed mode on a real panel): :class:`WebWindowScene`
  starts Chromium (``--kiosk --app=URL`` in fullscreen) on :meth:`~Scene.enter`, stops
  it on :meth:`~Scene.leave` and restarts it when it dies while the item is shown (a
  ``pyglet.clock`` check every second, only while the scene is current). The pyglet
  window draws a card underneath (“Открыта веб-страница «…»”). Should Chromium keep
  dying at once, the scene gives up and falls back to the screenshot. While an
  announcement is on screen, or the screen is blanked, Chromium's window would hide
  it: the scene closes the window, shows a screenshot of the page under the
  announcement, and opens the window again afterwards.

HTML blobs (stored without an extension) are copied to a temporary ``.html`` file
first, so that Chromium reads them as HTML.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pyglet

from kiosk.i18n import tr
from kiosk.scenes import (
    BLACK,
    MUTED_TEXT,
    PLACEHOLDER_BACKGROUND,
    WHITE,
    ErrorScene,
    PictureScene,
    Pixels,
    Scene,
    SceneBuilder,
    SceneContext,
    SceneRequest,
    _Card,
    decode_image,
)
from protocol.errors import MediaError
from protocol.messages import ManifestItem

if TYPE_CHECKING:
    from kiosk.window import WindowMode

logger = logging.getLogger(__name__)

RENDER_TIMEOUT_S: Final = 15.0
"""Longest a headless screenshot may take (loader thread)."""

SUPERVISE_INTERVAL_S: Final = 1.0
"""How often a shown Chromium window is checked (and restarted if it died)."""

STOP_TIMEOUT_S: Final = 2.0
"""How long Chromium gets to exit on SIGTERM before SIGKILL."""

QUICK_DEATH_S: Final = 10.0
MAX_QUICK_DEATHS: Final = 5
"""A window dying this many times in a row, each within QUICK_DEATH_S of its start,
is given up: the scene falls back to the screenshot."""

COMMON_FLAGS: Final = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--password-store=basic",
)
"""Flags of every Chromium the kiosk starts: no updates, sync, or first-run UI."""

WINDOW_FLAGS: Final = (
    "--noerrdialogs",
    "--disable-session-crashed-bubble",
    "--disable-infobars",
    "--disable-translate",
    "--autoplay-policy=no-user-gesture-required",
)
"""Flags of the panel's Chromium window: nothing but the page."""


def default_chromium() -> str:
    """Chromium on ``PATH`` (Debian: ``chromium``), else ``/usr/bin/chromium``."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium"


def _sandbox_flags() -> tuple[str, ...]:
    """Chromium refuses to run as root with its sandbox (containers, test machines)."""
    return ("--no-sandbox",) if hasattr(os, "geteuid") and os.geteuid() == 0 else ()


def has_display() -> bool:
    """Whether a graphical session is there for a Chromium window (X11 or Wayland)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to ``proc``'s process group (Chromium's helpers included)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# --------------------------------------------------------------------------- screenshot


def screenshot_command(
    chromium: str, url: str, out: Path, width: int, height: int, profile: Path
) -> list[str]:
    """The command line of a headless screenshot of ``url`` at ``width``×``height``."""
    return [
        chromium,
        "--headless",
        *_sandbox_flags(),
        *COMMON_FLAGS,
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
        f"--screenshot={out}",
        url,
    ]


def _load_error(log: Path) -> str:
    """Chromium's reason for a failed load, from its stderr (best effort)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no output"
    for line in reversed(lines):
        if "Page load failed" in line:
            return line.rsplit("]", 1)[-1].strip()
    return "no screenshot was written"


def render_page(
    url: str,
    width: int,
    height: int,
    *,
    chromium: str,
    timeout_s: float = RENDER_TIMEOUT_S,
    html: Path | None = None,
) -> Pixels:
    """A screenshot of ``url`` (or of the HTML file ``html``), fitted in the box.

    Runs Chromium headless with a fresh profile in a temporary directory; blocks up to
    ``timeout_s`` (call it from the loader thread).

    Raises:
        MediaError: the page did not load (or Chromium timed out).
        OSError: Chromium cannot be run; the screenshot cannot be read.
    """
    with tempfile.TemporaryDirectory(prefix="classcast-web-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        if html is not None:
            page = root / "page.html"
            shutil.copyfile(html, page)
            url = page.as_uri()
        shot = root / "page.png"
        log = root / "chromium.log"
        argv = screenshot_command(chromium, url, shot, width, height, root / "profile")
        with log.open("wb") as err:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise MediaError(f"the page did not render within {timeout_s:g} s") from None
        finally:
            _kill_group(proc, signal.SIGKILL)  # helpers left behind, or a hung browser
            proc.wait()
        if not shot.is_file() or shot.stat().st_size == 0:
            raise MediaError(f"the page did not load: {_load_error(log)}")
        return decode_image(str(shot), width, height)


# --------------------------------------------------------------------------- window


class BrowserProcess:
    """One Chromium process (in a session of its own), started and stopped on demand.

    Main thread only. ``argv`` is run as is: any executable works (tests use a
    stand-in script).
    """

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        """Start the process (stopping a previous one first).

        Raises:
            OSError: the executable cannot be run.
        """
        self.stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started_at = time.monotonic()
        self.starts += 1
        logger.info("started the browser window (pid %d)", self.proc.pid)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Terminate the process and its helpers: SIGTERM, then SIGKILL after ``timeout_s``."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            _kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("the browser window ignored SIGTERM; killing it")
        _kill_group(proc, signal.SIGKILL)
        proc.wait()


class WebPageCard(_Card):
    """“Открыта веб-страница «…»”: what the pyglet window shows under Chromium."""

    def __init__(self, ctx: SceneContext, title: str) -> None:
        size = ctx.height / 20
        super().__init__(
            ctx,
            [
                (tr(ctx.lang, "Web page"), size * 0.6, MUTED_TEXT),
                (tr(ctx.lang, "Web page «{title}» is open", title=title), size, WHITE),
            ],
            PLACEHOLDER_BACKGROUND,
        )


class WebWindowScene(Scene):
    """A web page in a supervised Chromium window over the panel window.

    Chromium runs only while the scene is current: started by :meth:`enter`, stopped
    by :meth:`leave` (and :meth:`delete`), restarted by a check every
    :data:`SUPERVISE_INTERVAL_S` if it died meanwhile. After :data:`MAX_QUICK_DEATHS`
    quick deaths in a row (or when it cannot be started at all) the scene gives up and
    shows ``fallback()``'s screenshot instead, rendered on a thread of its own; the
    error slide if that fails too.

    Args:
        ctx: the window's context.
        title: the item's title, for the card.
        argv: Chromium's command line (:meth:`WebLoader.window_command`).
        fallback: renders the screenshot (blocking; called off the main thread).
        cleanup: called once by :meth:`delete` (e.g. removes a temporary HTML copy).
    """

    def __init__(
        self,
        ctx: SceneContext,
        title: str,
        argv: Sequence[str],
        fallback: Callable[[], Pixels],
        cleanup: Callable[[], None] = lambda: None,
    ) -> None:
        self.ctx = ctx
        self.title = title
        self.browser = BrowserProcess(argv)
        self._fallback = fallback
        self._cleanup: Callable[[], None] | None = cleanup
        self._content: Scene = WebPageCard(ctx, title)
        self.background = self._content.background
        self._active = False
        self._quick_deaths = 0
        self.gave_up = False
        """Chromium kept dying (or cannot run): the screenshot is (being) shown instead."""
        self.fallback_shown = False
        self.covered = False
        """An announcement or the blank screen is over the scene: no Chromium window."""
        self._shot: Pixels | Exception | None = None
        """The page's screenshot (rendered at most once, for either use), or its failure."""
        self._shot_thread: threading.Thread | None = None
        self._page: Scene | None = None
        """The screenshot, drawn instead of the card once there is one."""

    # ----------------------------------------------------------------- Scene

    def enter(self) -> None:
        self._active = True
        if self.fallback_shown:
            return  # nothing to watch
        if self.covered:
            self._render_page()
        elif not self.gave_up:
            self._start()
        pyglet.clock.schedule_interval(self._supervise, SUPERVISE_INTERVAL_S)

    @property
    def takes_keyboard(self) -> bool:
        return self._active and not (self.covered or self.gave_up or self.fallback_shown)

    def overlaid(self, covered: bool) -> None:
        if covered == self.covered:
            return
        self.covered = covered
        if not self._active or self.fallback_shown or self.gave_up:
            return
        if covered:
            self.browser.stop()
            self._render_page()
        else:
            self._start()  # the page's screenshot stays under the window as it opens

    def leave(self) -> None:
        self._active = False
        pyglet.clock.unschedule(self._supervise)
        self.browser.stop()

    def draw(self) -> None:
        self._apply_page()
        if self._page is not None and not self.fallback_shown:
            self._page.draw()
        else:
            self._content.draw()

    def delete(self) -> None:
        self.leave()
        self._content.delete()
        if self._page is not None:
            self._page.delete()
            self._page = None
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            with contextlib.suppress(OSError):
                cleanup()

    # ----------------------------------------------------------------- supervision

    def _start(self) -> None:
        try:
            self.browser.start()
        except OSError as exc:
            logger.warning("cannot start the browser window for %r: %s", self.title, exc)
            self._give_up()

    def _supervise(self, dt: float = 0.0) -> None:
        """The 1 s check (main thread): restart a dead window; apply the fallback."""
        if not self._active:
            return
        if self.gave_up:
            self._apply_fallback()
            return
        if self.covered or self.browser.running:
            return
        code = None if self.browser.proc is None else self.browser.proc.returncode
        self._quick_deaths = 1 if self._lived_long() else self._quick_deaths + 1
        if self._quick_deaths >= MAX_QUICK_DEATHS:
            logger.warning(
                "the browser window for %r keeps exiting (code %s); showing a screenshot",
                self.title,
                code,
            )
            self.browser.stop()
            self._give_up()
            return
        logger.warning("the browser window for %r exited (code %s); restarting", self.title, code)
        self._start()

    def _shoot(self, thread_name: str) -> None:
        """Render the page's screenshot on a thread, unless it is (being) rendered."""
        if self._shot_thread is None:
            self._shot_thread = threading.Thread(
                target=self._render_shot, name=thread_name, daemon=True
            )
            self._shot_thread.start()

    def _render_shot(self) -> None:
        try:
            result: Pixels | Exception = self._fallback()
        except Exception as exc:  # the fallback shows the error slide; the card stays
            logger.warning("cannot render %r: %s", self.title, exc)
            result = exc
        self._shot = result
        self.ctx.request_redraw()  # thread-safe; drawing or the next check applies it

    def _render_page(self) -> None:
        """The page's screenshot for under announcements."""
        self._shoot("web-page-shot")

    def _apply_page(self) -> None:
        shot = self._shot
        if self._page is None and not self.fallback_shown and isinstance(shot, Pixels):
            self._page = PictureScene(self.ctx, shot)
            self.background = self._page.background

    def _lived_long(self) -> bool:
        return time.monotonic() - self.browser.started_at >= QUICK_DEATH_S

    def _give_up(self) -> None:
        self.gave_up = True
        self._shoot("web-fallback")

    def _apply_fallback(self) -> None:
        result = self._shot
        if result is None or self.fallback_shown:
            return
        content: Scene = (
            ErrorScene(self.ctx, self.title)
            if isinstance(result, Exception)
            else PictureScene(self.ctx, result)
        )
        self._content.delete()
        self._content = content
        self.background = content.background
        self.fallback_shown = True
        pyglet.clock.unschedule(self._supervise)  # nothing left to watch
        self.ctx.request_redraw()


# --------------------------------------------------------------------------- loader


class WebLoader:
    """The scene loader of ``web`` items (register it with ``SceneFactory.register``).

    Args:
        mode: the window's mode; ``headless`` always takes screenshots.
        chromium_path: the browser to run (default: :func:`default_chromium`).
        profile_dir: the Chromium window's user data directory (per kiosk, e.g. under
            the state directory); a temporary one when None.
        render_timeout_s: limit of a headless screenshot.
        display_available: whether a Chromium window can be shown (default:
            :func:`has_display`).
    """

    def __init__(
        self,
        mode: WindowMode,
        *,
        chromium_path: str | None = None,
        profile_dir: Path | None = None,
        render_timeout_s: float = RENDER_TIMEOUT_S,
        display_available: Callable[[], bool] = has_display,
    ) -> None:
        self.mode = mode
        self.chromium = chromium_path if chromium_path is not None else default_chromium()
        self._profile_dir = profile_dir
        self.render_timeout_s = render_timeout_s
        self.display_available = display_available

    @property
    def profile_dir(self) -> Path:
        """The window's user data directory (made on first use)."""
        if self._profile_dir is None:
            self._profile_dir = Path(tempfile.mkdtemp(prefix="classcast-chromium-"))
        self._profile_dir.mkdir(parents=True, exist_ok=True)
        return self._profile_dir

    def can_open_window(self) -> bool:
        """Whether items get a Chromium window (not headless, a display, Chromium there)."""
        return (
            self.mode != "headless"
            and self.display_available()
            and shutil.which(self.chromium) is not None
        )

    def window_command(self, url: str, width: int, height: int) -> list[str]:
        """Chromium's command line for ``url``: an app window of the panel window's
        size, in kiosk mode when fullscreen."""
        # Position and size too: a kiosk session without a window manager does not
        # stretch a --kiosk window over the screen (seen under Xvfb).
        placement = [
            *(["--kiosk", "--start-fullscreen"] if self.mode == "fullscreen" else []),
            "--window-position=0,0",
            f"--window-size={width},{height}",
        ]
        return [
            self.chromium,
            *_sandbox_flags(),
            *COMMON_FLAGS,
            *WINDOW_FLAGS,
            f"--user-data-dir={self.profile_dir}",
            *placement,
            f"--app={url}",
        ]

    def __call__(self, request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
        item = request.item
        if not self.can_open_window():
            pixels = self.render(item, ctx)
            return lambda: PictureScene(ctx, pixels, background=BLACK)
        url, cleanup = self._window_url(item, ctx)
        argv = self.window_command(url, ctx.width, ctx.height)
        return lambda: WebWindowScene(
            ctx, item.title, argv, lambda: self.render(item, ctx), cleanup
        )

    def render(self, item: ManifestItem, ctx: SceneContext) -> Pixels:
        """The screenshot of ``item`` at the window's size (blocking).

        Raises:
            MediaError: no page, or it did not load in time.
            OSError: Chromium cannot be run.
        """
        if item.url is not None:
            url, html = _checked_url(item), None
        else:
            url, html = "", _blob_path(item, ctx)
        return render_page(
            url,
            ctx.width,
            ctx.height,
            chromium=self.chromium,
            timeout_s=self.render_timeout_s,
            html=html,
        )

    def _window_url(self, item: ManifestItem, ctx: SceneContext) -> tuple[str, Callable[[], None]]:
        """The URL to open, and what removes its temporary file afterwards."""
        if item.url is not None:
            return _checked_url(item), lambda: None
        blob = _blob_path(item, ctx)
        fd, name = tempfile.mkstemp(prefix="classcast-page-", suffix=".html")
        os.close(fd)
        copy = Path(name)
        try:
            shutil.copyfile(blob, copy)
        except BaseException:
            copy.unlink(missing_ok=True)
            raise
        return copy.as_uri(), lambda: copy.unlink(missing_ok=True)


def _blob_path(item: ManifestItem, ctx: SceneContext) -> Path:
    if item.sha256 is None:
        raise MediaError(f"item {item.title!r} has neither a URL nor a file")
    return ctx.store.path(item.sha256)


def _checked_url(item: ManifestItem) -> str:
    url = item.url or ""
    if not url.startswith(("http://", "https://")):
        raise MediaError(f"item {item.title!r} has no http(s) URL")
    return url
