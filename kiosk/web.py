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
  window draws a card underneath (“Открыта веб-страница «…»”). The scene is
  :attr:`~WebWindowScene.ready` only once Chromium has painted the page
  (:class:`FirstPaint`, over the DevTools pipe) and its window, held under the panel
  window meanwhile (:class:`~kiosk.x11.WindowHold`), was raised: until then the
  previous item stays on screen, never the card or a blank window. Leaving stops
  Chromium without waiting (SIGTERM now; a thread reaps it and deletes its profile).
  Should Chromium keep
  dying at once, the scene gives up and falls back to the screenshot. While an
  announcement is on screen, or the screen is blanked, Chromium's window would hide
  it: the scene closes the window, shows a screenshot of the page under the
  announcement, and opens the window again afterwards.

What a page can reach (docs/security.md, “Web items”):

* Every Chromium goes through the kiosk's :class:`~kiosk.webguard.WebGuard` (a proxy
  on 127.0.0.1): the panel's own addresses and ports are refused to every request, and
  so are hosts outside the district's allowlist (``web_allow``).
* Lesson HTML is never opened from ``file://``: the guard serves each page's blob at a
  private ``http://<token>.classcast.localhost/`` origin of its own; an HTML5 lesson (a
  zip blob) is served there file by file, straight from the zip.
* Every showing of a page gets a fresh browser profile (a temporary
  ``--user-data-dir``, deleted when the item is left), so nothing one cast stores is
  seen by the next; every screenshot gets one too. Downloads are off in each profile
  (:data:`PROFILE_PREFERENCES`).
* An item whose address is outside the allowlist is not opened at all: the panel shows
  :class:`AddressNotAllowedScene`, which says whom to ask.

Pages that fail: before a URL item is shown, the loader asks the guard to open its
page (:meth:`~kiosk.webguard.WebGuard.check_page`: the name resolved, the host
reached, the status of the top-level document read, https included). A page that does
not open (no network or no such host, a host that does not answer, an HTTP error
status, too slow, the panel's own address) gets :class:`PageFailedScene`, a card saying
why and what to do, and Chromium is not started. Both cards report the failure when they
come on screen (``SceneContext.item_failed``): the usage log then records the item as
``failed`` with no display time, and the kiosk's status tells the controllers why.
"""

from __future__ import annotations

import contextlib
import json
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
from typing import Any, Final
from urllib.parse import urlsplit

import pyglet

from kiosk.effects import WindowMode
from kiosk.i18n import tr
from kiosk.scenes import (
    BLACK,
    ERROR_BACKGROUND,
    MUTED_TEXT,
    PLACEHOLDER_BACKGROUND,
    WHITE,
    Card,
    ErrorScene,
    PictureScene,
    Pixels,
    Scene,
    SceneBuilder,
    SceneContext,
    SceneRequest,
    decode_image,
)
from kiosk.webguard import PageFailure, WebGuard
from media.html5zip import ZIP_MAGIC, is_zip
from protocol.errors import MediaError
from protocol.messages import ItemFailure, ManifestItem
from protocol.text import clean_name

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
    "--disable-backgrounding-occluded-windows",
    "--disable-session-crashed-bubble",
    "--disable-infobars",
    "--disable-translate",
    "--autoplay-policy=no-user-gesture-required",
)
"""Flags of the panel's Chromium window: nothing but the page (which renders even while
held under the panel window)."""

FIRST_PAINT_WAIT_S: Final = 10.0
"""Longest the previous item stays on screen while a page's Chromium window starts and
paints; after that the window shows as it is."""

PIPE_FDS: Final = (3, 4)
"""The descriptors Chromium reads and writes the DevTools protocol on
(``--remote-debugging-pipe``): a pipe only the kiosk holds, no listening port."""

FIRST_PAINT_SCRIPT: Final = (
    "new Promise(done => { const frame = () => requestAnimationFrame("
    "() => requestAnimationFrame(() => done(true)));"
    " if (document.readyState === 'complete' && location.href !== 'about:blank') frame();"
    " else addEventListener('load', frame, {once: true}); })"
)
"""Evaluated in the page: resolves once it has loaded and two frames were drawn since."""

MAX_PAINT_PROBES: Final = 20
"""Times the first-paint script is evaluated again when its page navigated meanwhile."""

PROFILE_PREFIX: Final = "profile-"
"""Name prefix of the temporary profiles made under the loader's ``profiles_dir``."""

DOWNLOADS_BLOCKED: Final = 3
"""Chromium's ``download_restrictions`` value that blocks every download (the value of
the DownloadRestrictions policy, honoured from the profile's own preferences too)."""

PROFILE_PREFERENCES: Final[dict[str, Any]] = {
    "download_restrictions": DOWNLOADS_BLOCKED,
    "download": {"prompt_for_download": False},
    "webrtc": {"ip_handling_policy": "disable_non_proxied_udp"},
    "profile": {"default_content_setting_values": {"automatic_downloads": 2}},
    "credentials_enable_service": False,
    "autofill": {"profile_enabled": False, "credit_card_enabled": False},
}
"""What each fresh profile starts with: no downloads (should one slip through anyway,
its directory is inside the profile, deleted with it), WebRTC only through the proxy,
no saved passwords or form data."""


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


def new_profile(parent: Path | None = None) -> Path:
    """A fresh Chromium profile (``--user-data-dir``) in a new temporary directory.

    Its preferences are :data:`PROFILE_PREFERENCES`, downloads pointed inside it.
    Delete it with :func:`remove_profile` once its Chromium has exited.

    Raises:
        OSError: the directory cannot be made or written.
    """
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(prefix=PROFILE_PREFIX, dir=parent))
    try:
        prefs = json.loads(json.dumps(PROFILE_PREFERENCES))
        prefs["download"]["default_directory"] = str(profile / "downloads")
        (profile / "Default").mkdir()
        (profile / "Default" / "Preferences").write_text(json.dumps(prefs))
    except BaseException:
        remove_profile(profile)
        raise
    return profile


def remove_profile(profile: Path) -> None:
    """Delete a profile made by :func:`new_profile` (best effort; never raises)."""
    shutil.rmtree(profile, ignore_errors=True)


def sweep_profiles(parent: Path) -> None:
    """Delete profiles left in ``parent`` by a kiosk that did not stop cleanly."""
    with contextlib.suppress(OSError):
        for child in parent.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to ``proc``'s process group (Chromium's helpers included)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# --------------------------------------------------------------------------- screenshot


def screenshot_command(
    chromium: str,
    url: str,
    out: Path,
    width: int,
    height: int,
    profile: Path,
    guard_flags: Sequence[str] = (),
) -> list[str]:
    """The command line of a headless screenshot of ``url`` at ``width``×``height``.

    ``guard_flags`` are :meth:`WebGuard.chromium_flags` (every request through it).
    """
    return [
        chromium,
        "--headless",
        *_sandbox_flags(),
        *COMMON_FLAGS,
        *guard_flags,
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
    guard_flags: Sequence[str] = (),
) -> Pixels:
    """A screenshot of ``url``, fitted in the box.

    Runs Chromium headless with a fresh profile (:func:`new_profile`) in a temporary
    directory, deleted afterwards; blocks up to ``timeout_s`` (call it from the loader
    thread). ``guard_flags``: see :func:`screenshot_command`.

    Raises:
        MediaError: the page did not load (or Chromium timed out).
        OSError: Chromium cannot be run; the screenshot cannot be read.
    """
    with tempfile.TemporaryDirectory(prefix="classcast-web-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        shot = root / "page.png"
        log = root / "chromium.log"
        profile = new_profile(root)
        argv = screenshot_command(chromium, url, shot, width, height, profile, guard_flags)
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


class FirstPaint:
    """Tells when the page of a Chromium window has painted, over the DevTools pipe.

    Chromium is run with ``--remote-debugging-pipe`` and two pipes of this object's
    on its descriptors 3 and 4 (:meth:`command` wraps the command line; give
    :meth:`pass_fds` to ``Popen``, then call :meth:`started`). A thread of its own
    finds the page, evaluates :data:`FIRST_PAINT_SCRIPT` in it and calls ``painted``
    (on that thread) once it resolved. Nothing listens: only the kiosk holds the
    pipes. A program that does not speak the protocol (a stand-in in tests) never
    paints; :meth:`close` ends the thread.
    """

    def __init__(self, painted: Callable[[], None]) -> None:
        self._painted = painted
        self._to_chromium = os.pipe()
        self._from_chromium = os.pipe()
        self._next_id = 0
        self._probes = 0
        self._session: str | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.done = False

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run with the pipes on descriptors 3 and 4 and the DevTools pipe on."""
        read_fd, write_fd = self._to_chromium[0], self._from_chromium[1]
        script = (
            f'exec "$@" {PIPE_FDS[0]}<&{read_fd} {PIPE_FDS[1]}>&{write_fd} '
            f"{read_fd}<&- {write_fd}>&-"
        )
        # bash: dash takes no descriptor above 9 in a redirection.
        return ["/bin/bash", "-c", script, "bash", *argv, "--remote-debugging-pipe"]

    def pass_fds(self) -> tuple[int, int]:
        return self._to_chromium[0], self._from_chromium[1]

    def started(self) -> None:
        """The process runs: close its ends here and start reading."""
        for fd in self.pass_fds():
            os.close(fd)
        self._thread = threading.Thread(target=self._read, name="web-first-paint", daemon=True)
        self._thread.start()
        self._send("Target.setDiscoverTargets", {"discover": True})

    def close(self) -> None:
        """Stop asking Chromium anything; after :meth:`started`, or instead of it. The
        thread ends, and closes the pipe it reads, when Chromium has exited."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            ends = [self._to_chromium[1]]
            if self._thread is None:  # never started: nobody reads
                ends += [self._from_chromium[0], *self.pass_fds()]
            for fd in ends:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _send(self, method: str, params: dict[str, Any], session: str | None = None) -> None:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        with self._lock, contextlib.suppress(OSError):
            if not self._closed:  # else the descriptor may be another file's by now
                os.write(self._to_chromium[1], json.dumps(message).encode() + b"\0")

    def _read(self) -> None:
        buffer = b""
        fd = self._from_chromium[0]
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    self._handle(json.loads(raw))
        except (OSError, ValueError, LookupError, TypeError, AttributeError):
            return  # not the protocol: the page never reports a paint
        finally:
            os.close(fd)

    def _handle(self, message: dict[str, Any]) -> None:
        if self.done:
            return
        method = message.get("method")
        if method == "Target.targetCreated" and self._session is None:
            info = message["params"]["targetInfo"]
            if info.get("type") == "page":
                self._session = ""  # attaching
                self._send("Target.attachToTarget", {"targetId": info["targetId"], "flatten": True})
        elif method == "Target.attachedToTarget" and not self._session:
            self._session = message["params"]["sessionId"]
            self._probe()
        elif "id" in message and message.get("sessionId") and self._session:
            value = message.get("result", {}).get("result", {}).get("value")
            if value is True:
                self.done = True
                self._send("Target.setDiscoverTargets", {"discover": False})
                self._painted()
            elif self._probes < MAX_PAINT_PROBES:
                self._probe()  # the page navigated meanwhile: ask the new one

    def _probe(self) -> None:
        self._probes += 1
        params = {"expression": FIRST_PAINT_SCRIPT, "awaitPromise": True}
        self._send("Runtime.evaluate", params, self._session)


def _reap(proc: subprocess.Popen[bytes], timeout_s: float, then: Callable[[], None]) -> None:
    """Wait for ``proc`` (SIGKILL after ``timeout_s``), then call ``then``."""
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("the browser window ignored SIGTERM; killing it")
    _kill_group(proc, signal.SIGKILL)
    proc.wait()
    then()


class BrowserProcess:
    """One Chromium process (in a session of its own), started and stopped on demand.

    Main thread only. ``argv`` is run as is: any executable works (tests use a
    stand-in script). :meth:`stop` never blocks: the process is reaped on a thread.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.starts = 0
        self.paint: FirstPaint | None = None
        """Watches the page's first paint (:meth:`start` with ``painted``)."""
        self.reapers: list[threading.Thread] = []
        """Threads still waiting for stopped processes (tests join them)."""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self, painted: Callable[[], None] | None = None) -> None:
        """Start the process (stopping a previous one first); with ``painted``, Chromium
        reports its page's first paint over the DevTools pipe (:class:`FirstPaint`)
        and ``painted`` is called then, on a thread of its own.

        Raises:
            OSError: the executable cannot be run.
        """
        self.stop()
        if painted is not None and (not self.argv or shutil.which(self.argv[0]) is None):
            # Run through bash (FirstPaint.command): see that it can run, as Popen would.
            raise FileNotFoundError(f"cannot run {self.argv[:1]}")
        paint = None if painted is None else FirstPaint(painted)
        try:
            self.proc = subprocess.Popen(
                self.argv if paint is None else paint.command(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=() if paint is None else paint.pass_fds(),
            )
        except BaseException:
            if paint is not None:
                paint.close()
            raise
        if paint is not None:
            paint.started()
        self.paint = paint
        self.started_at = time.monotonic()
        self.starts += 1
        logger.info("started the browser window (pid %d)", self.proc.pid)

    def stop(
        self, timeout_s: float = STOP_TIMEOUT_S, then: Callable[[], None] = lambda: None
    ) -> None:
        """Terminate the process and its helpers: SIGTERM now, SIGKILL after
        ``timeout_s``; returns at once. ``then`` is called (on the reaping thread, or
        at once when nothing ran) once the process has exited, e.g. to delete its
        profile."""
        proc, self.proc = self.proc, None
        paint, self.paint = self.paint, None
        if paint is not None:
            paint.close()
        if proc is None:
            then()
            return
        if proc.poll() is None:
            _kill_group(proc, signal.SIGTERM)
        self.reapers = [t for t in self.reapers if t.is_alive()]
        reaper = threading.Thread(
            target=_reap, args=(proc, timeout_s, then), name="browser-reaper", daemon=True
        )
        reaper.start()
        self.reapers.append(reaper)

    def wait_stopped(self, timeout_s: float = STOP_TIMEOUT_S + 1.0) -> None:
        """Wait until the processes stopped so far have exited (tests; shutdown)."""
        for reaper in self.reapers:
            reaper.join(timeout_s)
        self.reapers = [t for t in self.reapers if t.is_alive()]


class WebPageCard(Card):
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


class AddressNotAllowedError(MediaError):
    """A web item's address is outside the panel's allowlist (the teacher's input)."""

    code = "address_not_allowed"

    def __init__(self, title: str, host: str) -> None:
        super().__init__(f"item {title!r}: {host} is not in this panel's web_allow list")
        self.title = title
        self.host = host


class _FailedItemCard(Card):
    """An error card that reports its item's failure each time it comes on screen."""

    def __init__(
        self,
        ctx: SceneContext,
        lines: list[str],
        index: int | None,
        failure: PageFailure,
    ) -> None:
        size = ctx.height / 22
        self.lines = lines
        self.index = index
        self.failure = failure
        super().__init__(
            ctx,
            [
                (lines[0], size, WHITE),
                (lines[1], size * 0.7, WHITE),
                (lines[2], size * 0.6, MUTED_TEXT),
            ],
            ERROR_BACKGROUND,
        )
        self._ctx = ctx

    def enter(self) -> None:
        if self.index is not None:
            self._ctx.item_failed(self.index, self.failure.reason, self.failure.status)


class AddressNotAllowedScene(_FailedItemCard):
    """The error slide of a web item whose host the panel may not open, and whom to ask.

    ``index``: the item's index, reported as failed (``not_allowed``) when shown.
    """

    def __init__(self, ctx: SceneContext, title: str, host: str, index: int | None = None) -> None:
        lines = [
            tr(ctx.lang, "Could not show «{title}»", title=title),
            tr(ctx.lang, "The address {host} is not allowed on this panel.", host=host),
            tr(
                ctx.lang,
                "Ask the school's administrator to add it to the panel's list of allowed sites.",
            ),
        ]
        super().__init__(ctx, lines, index, PageFailure("not_allowed", host))


def page_failure_lines(lang: str, title: str, failure: PageFailure) -> list[str]:
    """The three lines of :class:`PageFailedScene`: what, why, and what to do."""
    host = failure.host
    why: dict[ItemFailure, str] = {
        "no_network": tr(
            lang,
            "The panel cannot find the site {host}: there is no internet connection, "
            "or the address is wrong.",
            host=host,
        ),
        "unreachable": tr(lang, "The site {host} does not answer.", host=host),
        "timeout": tr(lang, "The site {host} took too long to answer.", host=host),
        "http_error": tr(
            lang,
            "The site {host} answered with error {status}: there is no such page, or it is closed.",
            host=host,
            status=failure.status or 0,
        ),
        "panel": tr(lang, "Pages shown on the panel cannot open the panel's own addresses."),
        "not_allowed": tr(lang, "The address {host} is not allowed on this panel.", host=host),
    }
    network = tr(
        lang,
        "Check the panel's network connection, or save the page as a file (or an HTML5 "
        "zip) and cast that. The lesson goes on.",
    )
    todo: dict[ItemFailure, str] = {
        "no_network": network,
        "unreachable": network,
        "timeout": network,
        "http_error": tr(lang, "Check the link. The lesson goes on."),
        "panel": tr(lang, "Cast the page as a file instead. The lesson goes on."),
        "not_allowed": tr(
            lang,
            "Ask the school's administrator to add it to the panel's list of allowed sites.",
        ),
    }
    return [
        tr(lang, "Could not open the page «{title}»", title=clean_name(title)),
        why[failure.reason],
        todo[failure.reason],
    ]


class PageFailedScene(_FailedItemCard):
    """ "Не удалось открыть страницу «…»": a web page that did not open, why, what to do.

    ``index``: the item's index, reported as failed when the card is shown.
    """

    def __init__(
        self, ctx: SceneContext, title: str, failure: PageFailure, index: int | None = None
    ) -> None:
        super().__init__(ctx, page_failure_lines(ctx.lang, title, failure), index, failure)


class OpenedPictureScene(PictureScene):
    """A web page's screenshot (no window can be opened): it reports item ``index``
    opened each time it comes on screen, its page having answered the check."""

    def __init__(self, ctx: SceneContext, pixels: Pixels, index: int) -> None:
        super().__init__(ctx, pixels, background=BLACK)
        self._ctx = ctx
        self.index = index

    def enter(self) -> None:
        self._ctx.item_opened(self.index)


class WebWindowScene(Scene):
    """A web page in a supervised Chromium window over the panel window.

    Chromium runs only while the scene is current: started by :meth:`enter`, stopped
    by :meth:`leave` (and :meth:`delete`), restarted by a check every
    :data:`SUPERVISE_INTERVAL_S` if it died meanwhile. After :data:`MAX_QUICK_DEATHS`
    quick deaths in a row (or when it cannot be started at all) the scene gives up and
    shows ``fallback()``'s screenshot instead, rendered on a thread of its own; the
    error slide if that fails too.

    Each showing (from :meth:`enter` to :meth:`leave`) runs Chromium in a fresh profile
    (:func:`new_profile`), kept across restarts and announcements within the showing,
    and deleted when the scene is left.

    Args:
        ctx: the window's context.
        title: the item's title, for the card.
        command: Chromium's command line for a profile directory
            (:meth:`WebLoader.window_command`).
        fallback: renders the screenshot (blocking; called off the main thread).
        cleanup: called once by :meth:`delete` (e.g. withdraws the published page).
        profiles_dir: where the temporary profiles are made (None: the system's
            temporary directory).
        index: the item's index, reported opened (``SceneContext.item_opened``) each
            time the scene comes on screen: its page answered the check.
    """

    def __init__(
        self,
        ctx: SceneContext,
        title: str,
        command: Callable[[Path], Sequence[str]],
        fallback: Callable[[], Pixels],
        cleanup: Callable[[], None] = lambda: None,
        profiles_dir: Path | None = None,
        index: int | None = None,
    ) -> None:
        self.ctx = ctx
        self.index = index
        self.title = title
        self.browser = BrowserProcess(())
        self._command = command
        self._profiles_dir = profiles_dir
        self.profile: Path | None = None
        """The current showing's profile directory, or None between showings."""
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
        self._hold = ctx.window_hold
        self._up = False
        """Chromium's window painted and is over the panel window (set on a thread)."""
        self.first_picture_wait_s = FIRST_PAINT_WAIT_S

    @property
    def ready(self) -> bool:
        """Once Chromium's window has painted its page and is up (held under the panel
        window until then); at once when no window will show (covered, given up)."""
        return self._up or self.covered or self.gave_up

    def shown(self) -> None:
        # On screen without a first paint (the wait is over): show the window as it is.
        if not self._up and self._hold is not None:
            self._hold.release()

    # ----------------------------------------------------------------- Scene

    def enter(self) -> None:
        self._active = True
        if self.index is not None:
            self.ctx.item_opened(self.index)  # its page was checked before it was built
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
            self._stop_browser(keep_profile=True)
            self._render_page()
        else:
            self._start()  # the page's screenshot stays under the window as it opens

    def leave(self) -> None:
        self._active = False
        pyglet.clock.unschedule(self._supervise)
        self._stop_browser(keep_profile=False)

    def draw(self) -> None:
        self._apply_page()
        if self._page is not None and not self.fallback_shown:
            self._page.draw()
        else:
            self._content.draw()

    def delete(self) -> None:
        self.leave()
        # Deleted long after it left, as a rule: its Chromium is gone by now; at
        # shutdown, wait for it (SIGKILL after STOP_TIMEOUT_S).
        self.browser.wait_stopped()
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
        """Start Chromium, its window held under the panel window until it painted."""
        self._up = False
        held = self._hold is not None and self._hold.hold()
        try:
            if self.profile is None:
                self.profile = new_profile(self._profiles_dir)
                self.browser.argv = list(self._command(self.profile))
            self.browser.start(painted=self._painted if held else self._raised)
        except OSError as exc:
            logger.warning("cannot start the browser window for %r: %s", self.title, exc)
            if self._hold is not None:
                self._hold.release(raise_=False)
            self._give_up()

    def _painted(self) -> None:
        """Chromium painted its page (its pipe's thread): raise its window."""
        assert self._hold is not None
        self._hold.release(self._raised)

    def _raised(self) -> None:
        """Chromium's window is up, painted (any thread): the switch may complete."""
        self._up = True
        self.ctx.request_redraw()

    def _stop_browser(self, *, keep_profile: bool) -> None:
        """Stop Chromium (without waiting); its profile goes once it exited, unless kept."""
        self._up = False
        if self._hold is not None:
            self._hold.release(raise_=False)
        profile = self.profile
        if keep_profile or profile is None:
            self.browser.stop()
            return
        self.profile = None
        self.browser.stop(then=lambda: remove_profile(profile))

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
            self._stop_browser(keep_profile=False)
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

    Every Chromium it starts goes through ``guard`` (started on first use). Call
    :meth:`close` when done: it stops the guard if the loader made it.

    Args:
        mode: the window's mode; ``headless`` always takes screenshots.
        chromium_path: the browser to run (default: :func:`default_chromium`).
        profiles_dir: where the window's temporary profiles are made (per kiosk, e.g.
            under the state directory; emptied now of what a previous run left); the
            system's temporary directory when None.
        guard: the proxy and private origin (default: one allowing every host).
        render_timeout_s: limit of a headless screenshot.
        display_available: whether a Chromium window can be shown (default:
            :func:`has_display`).
    """

    def __init__(
        self,
        mode: WindowMode,
        *,
        chromium_path: str | None = None,
        profiles_dir: Path | None = None,
        guard: WebGuard | None = None,
        render_timeout_s: float = RENDER_TIMEOUT_S,
        display_available: Callable[[], bool] = has_display,
    ) -> None:
        self.mode = mode
        self.chromium = chromium_path if chromium_path is not None else default_chromium()
        self.profiles_dir = profiles_dir
        if profiles_dir is not None:
            sweep_profiles(profiles_dir)
        self._own_guard = guard is None
        self.guard = guard if guard is not None else WebGuard()
        self.render_timeout_s = render_timeout_s
        self.display_available = display_available

    def close(self) -> None:
        """Stop the guard if this loader made it (shown pages stop loading)."""
        if self._own_guard:
            self.guard.close()

    def can_open_window(self) -> bool:
        """Whether items get a Chromium window (not headless, a display, Chromium there)."""
        return (
            self.mode != "headless"
            and self.display_available()
            and shutil.which(self.chromium) is not None
        )

    def window_command(self, url: str, width: int, height: int, profile: Path) -> list[str]:
        """Chromium's command line for ``url`` in the profile directory ``profile``: an
        app window of the panel window's size, in kiosk mode when fullscreen, every
        request through the guard."""
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
            *self.guard.chromium_flags(),
            f"--user-data-dir={profile}",
            *placement,
            f"--app={url}",
        ]

    def __call__(self, request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
        item = request.item
        try:
            self.check(item)
        except AddressNotAllowedError as exc:
            host = exc.host
            logger.warning("not showing %r: %s is not allowed on this panel", item.title, host)
            return lambda: AddressNotAllowedScene(ctx, item.title, host, request.index)
        failure = None if item.url is None else self.guard.check_page(_checked_url(item))
        if failure is not None:
            logger.warning(
                "not showing %r: its page does not open (%s %s%s)",
                item.title,
                failure.reason,
                failure.host,
                f" {failure.status}" if failure.status else "",
            )
            return lambda: PageFailedScene(ctx, item.title, failure, request.index)
        if not self.can_open_window():
            pixels = self.render(item, ctx)
            return lambda: OpenedPictureScene(ctx, pixels, request.index)
        url, cleanup = self._open(item, ctx)

        def command(profile: Path) -> list[str]:
            return self.window_command(url, ctx.width, ctx.height, profile)

        return lambda: WebWindowScene(
            ctx,
            item.title,
            command,
            lambda: self.render(item, ctx),
            cleanup,
            self.profiles_dir,
            request.index,
        )

    def check(self, item: ManifestItem) -> None:
        """Whether ``item`` may be shown on this panel.

        Raises:
            MediaError: it has neither an http(s) URL nor a file.
            AddressNotAllowedError: its URL's host is outside the guard's allowlist.
        """
        if item.url is None:
            _blob_sha(item)
            return
        host = urlsplit(_checked_url(item)).hostname or ""
        if not self.guard.allow.allows(host):
            raise AddressNotAllowedError(item.title, host)

    def render(self, item: ManifestItem, ctx: SceneContext) -> Pixels:
        """The screenshot of ``item`` at the window's size (blocking).

        Raises:
            MediaError: no page, or it did not load in time.
            OSError: Chromium cannot be run.
        """
        url, cleanup = self._open(item, ctx)
        try:
            return render_page(
                url,
                ctx.width,
                ctx.height,
                chromium=self.chromium,
                timeout_s=self.render_timeout_s,
                guard_flags=self.guard.chromium_flags(),
            )
        finally:
            cleanup()

    def _open(self, item: ManifestItem, ctx: SceneContext) -> tuple[str, Callable[[], None]]:
        """The URL to open, and what withdraws it afterwards (a published page)."""
        if item.url is not None:
            return _checked_url(item), lambda: None
        blob = ctx.store.path(_blob_sha(item))
        with blob.open("rb") as head:
            zipped = is_zip(head.read(len(ZIP_MAGIC)))
        url = self.guard.publish_site(blob) if zipped else self.guard.publish(blob)
        return url, lambda: self.guard.withdraw(url)


def _blob_sha(item: ManifestItem) -> str:
    if item.sha256 is None:
        raise MediaError(f"item {item.title!r} has neither a URL nor a file")
    return item.sha256


def _checked_url(item: ManifestItem) -> str:
    url = item.url or ""
    if not url.startswith(("http://", "https://")):
        raise MediaError(f"item {item.title!r} has no http(s) URL")
    return url
