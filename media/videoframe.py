"""A picture of a video for its thumbnail: libVLC in a child process, bounded in time.

:func:`video_frame_png` runs ``python -m media.videoframe VIDEO OUT.png`` and waits at
most ``timeout_s``: the child plays the video with no sound and no window, and has
libVLC write a snapshot of the picture about ``FRAME_AT_MS`` in (the first picture of
a shorter video) as a PNG ``FRAME_WIDTH_PX`` wide. A child rather than a thread, so
that a video libVLC chokes on (it may hang or crash on a broken or hostile file) costs
a killed process and an icon in the strip, never the caller's process or a stuck
thread. libVLC comes from :mod:`media.libvlc`, the one import of python-vlc.

The caller must treat the PNG as untrusted (decode it with its own limits) and show an
icon when it gets ``None``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

FRAME_TIMEOUT_S: Final = 10.0
"""Longest wait for a video's picture, the child's start included; past it the child
is killed and the video gets an icon."""

FRAME_AT_MS: Final = 1000
"""Where in a video its thumbnail's picture is taken (past a fade from black)."""

FRAME_WIDTH_PX: Final = 320
"""Width of the snapshot libVLC writes (the height keeps the video's proportions)."""

MAX_FRAME_PNG_BYTES: Final = 4 * 1024 * 1024
"""Largest snapshot read back from the child (a 320-pixel-wide PNG is far smaller)."""

FRAME_VLC_ARGS: Final = (
    "--quiet",
    "--no-audio",  # decode no sound at all
    "--aout=dummy",
    "--vout=dummy",  # no window; snapshots still work
    "--avcodec-hw=none",
    "--no-xlib",
    "--no-lua",
    "--no-stats",
    "--no-osd",
    "--no-spu",
    "--no-sub-autodetect-file",
    "--no-video-title-show",
    "--no-snapshot-preview",
)
"""libVLC's arguments in the child: no sound, no window, no scripts, no subtitles."""

_POLL_S: Final = 0.02


def video_frame_png(path: Path, *, timeout_s: float = FRAME_TIMEOUT_S) -> bytes | None:
    """A PNG of a picture of the video at ``path``, or ``None`` when none came in time.

    Blocks up to ``timeout_s`` (call it from a worker thread, never an event loop).
    ``None`` covers every failure alike (libVLC missing, a broken or unreadable file, a
    child that hung and was killed): the caller shows an icon instead.
    """
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # libVLC complains without
    with tempfile.TemporaryDirectory(prefix="classcast-frame-") as tmp:
        out = Path(tmp) / "frame.png"
        command = [sys.executable, "-m", "media.videoframe", str(path), str(out), str(timeout_s)]
        try:
            subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                timeout=timeout_s,
                check=True,
            )
        except (subprocess.SubprocessError, OSError):
            return None  # timed out (killed), failed, or could not start
        try:
            if out.stat().st_size > MAX_FRAME_PNG_BYTES:
                return None
            return out.read_bytes()
        except OSError:
            return None


def grab_frame(path: Path, out: Path, timeout_s: float) -> bool:
    """In the child: have libVLC write a snapshot of ``path`` to ``out``; whether it did.

    Tries ``FRAME_AT_MS`` in first, then the very start (a video shorter than that ends
    before any picture shows past its end).
    """
    from media.libvlc import vlc_module

    vlc = vlc_module()
    instance = vlc.Instance(list(FRAME_VLC_ARGS))
    if instance is None:
        return False
    deadline = time.monotonic() + timeout_s
    for start_ms in (FRAME_AT_MS, 0):
        player = instance.media_player_new()
        media = instance.media_new_path(str(path))
        media.add_option(f":start-time={start_ms / 1000:.3f}")
        player.set_media(media)
        try:
            player.play()
            while time.monotonic() < deadline:
                shot = player.video_take_snapshot(0, str(out), FRAME_WIDTH_PX, 0)
                if shot == 0 and out.is_file() and out.stat().st_size > 0:
                    return True
                if player.get_state() in (vlc.State.Ended, vlc.State.Error):
                    break
                time.sleep(_POLL_S)  # libVLC has no event for "a picture is ready"
        finally:
            player.stop()
            player.release()
            media.release()
    return False


def main(argv: list[str]) -> int:
    """``python -m media.videoframe VIDEO OUT.png TIMEOUT_S``: 0 when OUT.png was written."""
    if len(argv) != 3:
        return 2
    try:
        ok = grab_frame(Path(argv[0]), Path(argv[1]), float(argv[2]))
    except Exception:  # the child's one broad catch: the parent only needs "no picture"
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
