"""cage, the Wayland kiosk compositor, run headless for tests, with the kiosk as its child.

cage starts Xwayland and gives its child ``DISPLAY``; the kiosk's window is an X11
window there, as on a panel deployed as in ``docs/deploy.md`` §5b. Headless means
wlroots' ``headless`` backend (one 1280×720 output) and its ``pixman`` renderer: no GPU
or DRM device is needed.

cage refuses to run as root (it checks that it cannot regain root after dropping it).
As root, tests run it in a user namespace where the caller is mapped to ``nobody``:
inside, cage sees an unprivileged user; outside, its files (and the kiosk's) still
belong to root, so the kiosk can read the virtual environment and write its state.

Between cage and the kiosk sits a small shell, because cage 0.1.4 neither forwards its
child's exit status nor survives SIGTERM itself (it aborts: cage issue #339): the shell
records the kiosk's ``DISPLAY``, pid and exit status, and the test stops the kiosk, not
cage, which then exits because its child did.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kiosks import ADMIN_SECRET

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0

HEADLESS_ENV = {
    "WLR_BACKENDS": "headless",
    "WLR_LIBINPUT_NO_DEVICES": "1",
    "WLR_RENDERER": "pixman",
}

# cage's child: "$0" is the directory for the records, "$@" the kiosk's command line.
_WRAPPER = """\
printf '%s\\n' "$DISPLAY" > "$0/display"
"$@" &
kiosk=$!
printf '%s\\n' "$kiosk" > "$0/pid"
wait "$kiosk"
printf '%s\\n' "$?" > "$0/status"
"""

_PROBE = """\
import ctypes, ctypes.util, os, sys
x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
x11.XOpenDisplay.restype = ctypes.c_void_p
x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
ok = bool(x11.XOpenDisplay(None))
print(os.environ.get("DISPLAY", ""), ok)
"""


def _namespace_prefix() -> list[str]:
    """As root: run cage as ``nobody`` in a user namespace (see the module docstring)."""
    if os.geteuid() != 0:
        return []
    return ["unshare", "--user", "--map-user=65534", "--map-group=65534"]


def _environment(runtime_dir: Path, home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY")
    }
    env.update(HEADLESS_ENV)
    env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    env["HOME"] = str(home)
    return env


@functools.cache
def cannot_run_cage() -> str | None:
    """Why cage cannot show an X11 client headless here, or ``None`` if it can.

    Starts cage once (per test session) with a child that opens ``DISPLAY``.
    """
    for tool, package in (("cage", "cage"), ("Xwayland", "xwayland")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    if ctypes.util.find_library("X11") is None:
        return "no libX11"
    prefix = _namespace_prefix()
    if prefix and shutil.which(prefix[0]) is None:
        return "cage refuses root, and there is no unshare to run it as nobody"
    with tempfile.TemporaryDirectory(prefix="cage-probe-") as tmp:
        runtime = Path(tmp) / "run"
        runtime.mkdir(mode=0o700)
        argv = [*prefix, "cage", "-d", "--", sys.executable, "-c", _PROBE]
        try:
            done = subprocess.run(
                argv,
                env=_environment(runtime, Path(tmp)),
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return f"cage did not start headless within {START_TIMEOUT_S:.0f} s"
    words = done.stdout.split()
    if len(words) != 2 or not words[0] or words[1] != "True":
        detail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return f"cage cannot run an X11 client headless here (exit {done.returncode}): {detail}"
    return None


@dataclass
class CageKiosk:
    """A kiosk running as cage's child; ``address`` is its ``host:port``."""

    proc: subprocess.Popen[str]
    """cage (or ``unshare``, which became cage)."""
    address: str
    display: str
    """Xwayland's ``DISPLAY``."""
    records: Path

    @property
    def kiosk_pid(self) -> int:
        return int((self.records / "pid").read_text())

    def stop(self) -> int:
        """SIGTERM to the kiosk; waits for it and for cage. Returns the kiosk's exit status."""
        os.kill(self.kiosk_pid, signal.SIGTERM)
        self.proc.wait(STOP_TIMEOUT_S)
        return int((self.records / "status").read_text())


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The next line of ``proc``'s stdout, or ``""`` at its end or after ``timeout_s``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return ""
    return proc.stdout.readline()


def _wait_for_file(path: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists() or not path.read_text().endswith("\n"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"cage's child did not write {path.name}")
        time.sleep(0.01)
    return path.read_text().strip()


@contextlib.contextmanager
def cage_kiosk(state_dir: Path, *extra: str, config: str = "") -> Iterator[CageKiosk]:
    """Run ``classcast-kiosk --fullscreen`` under headless cage; skips if cage cannot run.

    ``config`` is added to the settings file (the admin secret is set, mDNS is off).
    Leaving the block stops whatever still runs.
    """
    reason = cannot_run_cage()
    if reason is not None:
        pytest.skip(reason)
    state_dir.mkdir(parents=True, exist_ok=True)
    settings = state_dir.parent / f"{state_dir.name}.toml"
    settings.write_text(f'admin_secret = "{ADMIN_SECRET}"\nmdns = false\n' + config, "utf-8")
    kiosk = [
        *(sys.executable, "-c", "from kiosk.cli import main; main()", "--fullscreen"),
        *("--host", "127.0.0.1", "--port", "0", "--state-dir", str(state_dir)),
        *("--room", "Каб. 7", "--config", str(settings), *extra),
    ]
    with tempfile.TemporaryDirectory(prefix="cage-") as tmp:
        # A short path of its own: the Wayland socket's path must fit in sun_path.
        records, runtime, home = Path(tmp), Path(tmp) / "run", Path(tmp) / "home"
        runtime.mkdir(mode=0o700)
        home.mkdir()
        env = _environment(runtime, home)
        env.update(PYTHONUNBUFFERED="1", PYGLET_HEADLESS="")
        argv = [*_namespace_prefix(), "cage", "-d", "--", "sh", "-c", _WRAPPER, str(records)]
        with (records / "stderr").open("w") as stderr:
            proc = subprocess.Popen(
                [*argv, *kiosk], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
            )
        try:
            line = _read_line(proc, START_TIMEOUT_S)
            if not line.startswith("ready "):
                raise RuntimeError(
                    f"the kiosk did not start under cage: {line!r}\n"
                    + (records / "stderr").read_text(errors="replace")[-3000:]
                )
            address = line.split()[1].removeprefix("wss://").removesuffix("/v1")
            display = _wait_for_file(records / "display", 5.0)
            _wait_for_file(records / "pid", 5.0)
            yield CageKiosk(proc, address, display, records)
        finally:
            _stop(proc, records)


def _stop(proc: subprocess.Popen[str], records: Path) -> None:
    """Whatever still runs: the kiosk gets SIGTERM, cage a moment to follow, then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((records / "pid").read_text()), signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()  # not SIGTERM: cage 0.1.4 aborts on it
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


# --------------------------------------------------------------------------- Xlib


_X_ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


def _ignore_x_error(display: int, event: int) -> int:
    """Xlib's default handler exits the process: a window that just went (Chromium's)
    must only fail the call that asked about it."""
    return 0


_IGNORE_X_ERROR = _X_ERROR_HANDLER(_ignore_x_error)  # kept: Xlib holds the pointer


@functools.cache
def _x11() -> ctypes.CDLL:
    x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
    x11.XSetErrorHandler.argtypes = [_X_ERROR_HANDLER]
    x11.XSetErrorHandler.restype = ctypes.c_void_p
    x11.XSetErrorHandler(_IGNORE_X_ERROR)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XGetWindowProperty.argtypes = [
        *(ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long, ctypes.c_long),
        *(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p),
        *(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p),
    ]
    x11.XGetImage.restype = ctypes.c_void_p
    x11.XGetImage.argtypes = [
        *(ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int),
        *(ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_int),
    ]
    x11.XGetPixel.restype = ctypes.c_ulong
    x11.XGetPixel.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    x11.XDestroyImage.argtypes = [ctypes.c_void_p]
    x11.XFree.argtypes = [ctypes.c_void_p]
    return x11


@contextlib.contextmanager
def _open(display: str) -> Iterator[int]:
    x11 = _x11()
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy, f"cannot open {display}"
    try:
        yield dpy
    finally:
        x11.XCloseDisplay(dpy)


def active_window(display: str) -> int | None:
    """The window the compositor focused (the root's ``_NET_ACTIVE_WINDOW``).

    Under cage that is the window on top: a new window is shown over the others and
    focused, and when it goes the previous one is focused again.
    """
    x11 = _x11()
    with _open(display) as dpy:
        atom = x11.XInternAtom(dpy, b"_NET_ACTIVE_WINDOW", True)
        if not atom:
            return None
        actual_type, actual_format = ctypes.c_ulong(), ctypes.c_int()
        count, after = ctypes.c_ulong(), ctypes.c_ulong()
        data = ctypes.POINTER(ctypes.c_ulong)()
        x11.XGetWindowProperty(
            dpy, x11.XDefaultRootWindow(dpy), atom, 0, 1, False, 33,  # XA_WINDOW
            ctypes.byref(actual_type), ctypes.byref(actual_format), ctypes.byref(count),
            ctypes.byref(after), ctypes.byref(data),
        )  # fmt: skip
        try:
            return (int(data[0]) or None) if count.value else None
        finally:
            if data:
                x11.XFree(data)


def window_pixel(display: str, xid: int, x: int, y: int) -> tuple[int, int, int] | None:
    """The colour of the pixel (x, y) of window ``xid`` itself (its own contents, not
    what the compositor shows there); ``None`` if the window cannot be read."""
    x11 = _x11()
    with _open(display) as dpy:
        image = x11.XGetImage(dpy, xid, x, y, 1, 1, 0xFFFFFFFF, 2)  # ZPixmap
        if not image:
            return None
        try:
            pixel = int(x11.XGetPixel(image, 0, 0))
        finally:
            x11.XDestroyImage(image)
    return (pixel >> 16) & 0xFF, (pixel >> 8) & 0xFF, pixel & 0xFF
