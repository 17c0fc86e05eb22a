"""A 720p H.264 + AAC video made at run time with libVLC's own transcoder.

The machine has no ffmpeg, but libVLC (``vlc-plugin-base``) carries x264 and an AAC
encoder: the sample lesson's 2-second clip is looped ``repeat`` times, put on a
1280x720 canvas and muxed with a sine tone (a WAV written here) into an MP4.
"""

from __future__ import annotations

import math
import os
import struct
import time
import wave
from pathlib import Path

import vlc

from media.lesson import sample_lesson_path

WIDTH, HEIGHT = 1280, 720
VIDEO_KBPS = 2500
AUDIO_RATE = 44100
MAKE_TIMEOUT_S = 300.0


def _tone(path: Path, seconds: float, hz: float = 440.0) -> None:
    """A mono 16-bit sine tone (quiet), ``seconds`` long."""
    frames = int(seconds * AUDIO_RATE)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(AUDIO_RATE)
        step = 2 * math.pi * hz / AUDIO_RATE
        out.writeframes(
            b"".join(struct.pack("<h", int(3000 * math.sin(n * step))) for n in range(frames))
        )


def make_video_720p(
    dst: Path, *, repeat: int = 30, size: tuple[int, int] = (WIDTH, HEIGHT)
) -> Path:
    """Write a ~``2 * repeat``-second 1280x720 (or ``size``) H.264 + AAC MP4 to ``dst``."""
    width, height = size
    source = next(sample_lesson_path().glob("*.mp4"))
    tone = dst.with_suffix(".wav")
    _tone(tone, 2.0 * repeat + 1)
    sout = (
        "#transcode{vcodec=h264,venc=x264{preset=veryfast},"
        f"vb={VIDEO_KBPS},vfilter=canvas{{width={width},height={height},aspect=16:9}},"
        f"acodec=mp4a,ab=128,channels=2,samplerate={AUDIO_RATE}}}"
        f":std{{access=file,mux=mp4,dst={dst}}}"
    )
    try:
        run_vlc_output(
            source,
            [
                f":sout={sout}",
                ":sout-keep",
                f":input-repeat={repeat - 1}",
                f":input-slave=file://{tone}",
            ],
            dst,
            "the 720p video (vlc-plugin-base?)",
        )
    finally:
        tone.unlink(missing_ok=True)
    return dst


def run_vlc_output(
    source: Path, options: list[str], dst: Path, what: str, timeout_s: float = MAKE_TIMEOUT_S
) -> None:
    """Play ``source`` with ``options`` (a ``:sout`` chain writing ``dst``) through
    libVLC's own transcoder until it ends; ``what`` names the file in errors.

    Raises:
        RuntimeError: libVLC failed, or did not finish within ``timeout_s``.
    """
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    instance = vlc.Instance("--quiet", "--no-xlib", "--aout=dummy", "--vout=dummy")
    player = instance.media_player_new()
    media = instance.media_new(str(source))
    for option in options:
        media.add_option(option)
    player.set_media(media)
    player.play()
    deadline = time.monotonic() + timeout_s
    try:
        while player.get_state() not in (vlc.State.Ended, vlc.State.Error):
            if time.monotonic() > deadline:
                raise RuntimeError(f"libVLC did not finish making {what}")
            time.sleep(0.1)
        if player.get_state() == vlc.State.Error or not dst.exists():
            raise RuntimeError(f"libVLC could not make {what}")
    finally:
        player.stop()
        player.release()
        instance.release()


if __name__ == "__main__":
    import sys

    out = make_video_720p(Path(sys.argv[1] if len(sys.argv) > 1 else "video-720p.mp4"))
    print(out, out.stat().st_size, "bytes")
