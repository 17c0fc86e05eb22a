"""A video whose every picture shows its own number, and a kiosk that reads it back.

The independent reading of ``bench.sync``'s video drift: not libVLC's idea of where
the video is, but which picture it actually handed to the panel, and when.

- :func:`make_counter_video`: 320x180, 25 fps, each picture's number in 16 bits as
  black and white squares along its top (PIL draws them into an MJPEG AVI written
  here; libVLC remuxes that into an MKV, a kind of file lessons take). Not H.264: libVLC's
  transcoder drops the first pictures and keeps their time, so the video would start
  at 0.64 s.
- :func:`run_kiosk`: ``classcast-kiosk`` with the bench's probes, set by environment:
  every :data:`PROBE_EVERY`-th picture's number is read from the frame-callback buffer
  as libVLC hands it over and printed with the monotonic time
  (``bench picture N shown at monotonic T``); ``BENCH_VIDEO_LATE_MS`` resumes the
  first video this much late at its instant (as a slow decoder would);
  ``BENCH_VIDEO_NO_RATE=1`` corrects drift by seeks only (no rate nudges).
"""

from __future__ import annotations

import ctypes
import io
import logging
import os
import struct
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

from bench._video720 import run_vlc_output

FPS = 25
FRAME_MS = 1000 // FPS
WIDTH, HEIGHT = 320, 180
BITS = 16
SQUARE = WIDTH // BITS
PROBE_EVERY = 5
MAKE_TIMEOUT_S = 600.0

_log = logging.getLogger("bench.video")  # the kiosk's log: whole lines, one at a time


def _picture(number: int) -> bytes:
    image = Image.new("RGB", (WIDTH, HEIGHT), (90, 90, 90))
    draw = ImageDraw.Draw(image)
    for bit in range(BITS):
        colour = (255, 255, 255) if number >> bit & 1 else (0, 0, 0)
        draw.rectangle([bit * SQUARE, 0, (bit + 1) * SQUARE - 1, SQUARE - 1], fill=colour)
    x = number % (WIDTH - 20)  # something moving, for the eye
    draw.rectangle([x, 100, x + 20, 160], fill=(200, 60, 60))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, data: bytes) -> bytes:
    return _chunk(b"LIST", kind + data)


def write_mjpeg_avi(dst: Path, frames: int) -> None:
    """An MJPEG AVI of ``frames`` numbered pictures at :data:`FPS`."""
    pictures = [_picture(n) for n in range(frames)]
    biggest = max(len(p) for p in pictures)
    avih = struct.pack(
        "<14I", 1_000_000 // FPS, 0, 0, 0x10, frames, 0, 1, biggest, WIDTH, HEIGHT, 0, 0, 0, 0
    )
    strh = b"vidsMJPG" + struct.pack(
        "<IHHIIIIIIIIhhhh", 0, 0, 0, 0, 1, FPS, 0, frames, biggest, 0xFFFFFFFF, 0, 0, 0, WIDTH,
        HEIGHT,
    )  # fmt: skip
    strf = struct.pack("<IiiHH4sIiiII", 40, WIDTH, HEIGHT, 1, 24, b"MJPG", WIDTH * HEIGHT * 3,
                       0, 0, 0, 0)  # fmt: skip
    hdrl = _list(b"hdrl", _chunk(b"avih", avih) + _list(b"strl", _chunk(b"strh", strh)
                                                        + _chunk(b"strf", strf)))  # fmt: skip
    movi = bytearray(b"movi")
    index = bytearray()
    for picture in pictures:
        index += b"00dc" + struct.pack("<III", 0x10, len(movi), len(picture))
        movi += _chunk(b"00dc", picture)
    body = b"AVI " + hdrl + _chunk(b"LIST", bytes(movi)) + _chunk(b"idx1", bytes(index))
    dst.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def make_counter_video(dst: Path, seconds: float) -> Path:
    """Write a numbered MJPEG MKV of ``seconds`` to ``dst`` (and return it)."""
    avi = dst.with_suffix(".avi")
    write_mjpeg_avi(avi, round(seconds * FPS))
    try:
        run_vlc_output(
            avi,
            [f":sout=#std{{access=file,mux=mkv,dst={dst}}}", ":sout-keep"],
            dst,
            "the numbered video",
            MAKE_TIMEOUT_S,
        )
    finally:
        avi.unlink(missing_ok=True)
    return dst


def read_number(address: int, pitch: int) -> int:
    """The number shown by an RV32 picture (B, G, R, X bytes) at ``address``."""
    number = 0
    row = address + (SQUARE // 2) * pitch
    for bit in range(BITS):
        green = ctypes.string_at(row + (bit * SQUARE + SQUARE // 2) * 4 + 1, 1)[0]
        if green > 128:
            number |= 1 << bit
    return number


def _install_probes() -> None:
    from kiosk import video, video_scene
    from kiosk.drift import DriftCorrector

    display = video._FrameSink._display

    def probed(sink: video._FrameSink, opaque: object, picture: int | None) -> None:
        display(sink, opaque, picture)
        now = time.monotonic()
        if sink._width != WIDTH or sink._ready < 0:
            return
        index = sink._ready
        address = ctypes.addressof(sink._buffers[index]) + sink._offsets[index]
        number = read_number(address, sink._pitch)
        if number % PROBE_EVERY == 0:
            _log.info("bench picture %d shown at monotonic %.6f", number, now)

    video._FrameSink._display = probed  # type: ignore[method-assign,assignment]

    late_s = float(os.environ.get("BENCH_VIDEO_LATE_MS", "0")) / 1000
    if late_s > 0:
        play = video.VlcVideo.play
        resumed = [False]

        def late_play(self: video.VlcVideo) -> None:
            if self._started and not resumed[0]:  # the primed video, at its instant
                resumed[0] = True
                until = time.monotonic() + late_s  # not time.sleep: libfaketime breaks it
                while time.monotonic() < until:
                    pass
            play(self)

        video.VlcVideo.play = late_play  # type: ignore[method-assign]

    if os.environ.get("BENCH_VIDEO_NO_RATE") == "1":

        def seeks_only() -> DriftCorrector:
            return DriftCorrector(rate_step=0.0)

        video_scene.DriftCorrector = seeks_only  # type: ignore[attr-defined,assignment]


def run_kiosk() -> None:
    """``classcast-kiosk`` (its options from ``sys.argv``) with the probes installed."""
    if "--headless" in sys.argv:
        os.environ["PYGLET_HEADLESS"] = "true"  # before the probes import pyglet
    _install_probes()
    from kiosk.cli import main

    main()
