"""The teacher's side of a screen share: pacing, H.264 encoding, one encoder for many panels."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from controller.client import KioskClient
from controller.share import (
    KEYFRAME_MIN_INTERVAL_S,
    H264Encoder,
    MssCapture,
    Picture,
    ScreenShare,
    SharePacer,
    encoded_size,
)
from protocol import limits
from protocol.codec import StreamFrame
from tests.conftest import TEACHER
from tests.kiosks import ADMIN_SECRET, KioskThread


def solid(width: int, height: int, bgr: tuple[int, int, int]) -> Picture:
    b, g, r = bgr
    return Picture(width, height, bytes((b, g, r, 255)) * (width * height))


class PatternCapture:
    """A screen in memory: the test sets the picture the next grab returns."""

    def __init__(self, picture: Picture) -> None:
        self.picture = picture
        self.grabs = 0
        self.closed = False

    @property
    def size(self) -> tuple[int, int]:
        return self.picture.width, self.picture.height

    def grab(self) -> Picture:
        self.grabs += 1
        return self.picture

    def changed(self) -> bool:
        return True  # no damage reports: every look grabs

    def close(self) -> None:
        self.closed = True


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("screen", "sent"),
    [
        ((1920, 1080), (1920, 1080)),
        ((1366, 768), (1366, 768)),
        ((2560, 1440), (1920, 1080)),
        ((3840, 1600), (1920, 800)),
        ((1025, 767), (1024, 766)),
        ((8, 8), (limits.MIN_SHARE_SIDE, limits.MIN_SHARE_SIDE)),
    ],
)
def test_encoded_size_fits_the_share_limits(screen: tuple[int, int], sent: tuple[int, int]) -> None:
    assert encoded_size(*screen) == sent


def test_pacer_encodes_changes_keepalives_and_keyframes() -> None:
    pacer = SharePacer()
    assert pacer.decide(changed=True, now=0.0) == (True, True)  # the first is a keyframe
    assert pacer.next_capture_s() == pytest.approx(1 / 30)
    assert pacer.decide(changed=False, now=0.1) == (False, False)  # a still screen
    assert pacer.decide(changed=True, now=0.2) == (True, False)
    keepalive = 0.2 + limits.SHARE_KEEPALIVE_S
    assert pacer.decide(changed=False, now=keepalive - 0.01) == (False, False)
    assert pacer.decide(changed=False, now=keepalive) == (True, False)
    pacer.want_keyframe()
    assert pacer.decide(changed=False, now=keepalive + 0.05) == (True, True)
    pacer.want_keyframe()  # asked again at once: held back until the interval passed
    assert pacer.decide(changed=True, now=keepalive + 0.1) == (True, False)
    later = keepalive + 0.05 + KEYFRAME_MIN_INTERVAL_S
    assert pacer.decide(changed=False, now=later) == (True, True)


def test_encoder_output_decodes_to_the_picture() -> None:
    encoder = H264Encoder(320, 240)
    red = solid(320, 240, (0, 0, 255))
    out = encoder.encode(red, keyframe=True, capture_us=5)
    out += encoder.encode(red, keyframe=False, capture_us=6)
    out += encoder.encode(solid(320, 240, (255, 0, 0)), keyframe=True, capture_us=7)
    assert [(e.keyframe, e.capture_us) for e in out] == [(True, 5), (False, 6), (True, 7)]
    assert len(out[1].data) < 200  # nothing moved: a few bytes
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for e in out for f in decoder.decode(av.Packet(e.data))]
    assert len(frames) == 3
    rgb = frames[0].reformat(format="rgb24")
    pixel = bytes(rgb.planes[0])[:3]
    assert pixel[0] > 230
    assert pixel[1] < 30
    assert pixel[2] < 30
    last = bytes(frames[2].reformat(format="rgb24").planes[0])[:3]
    assert last[2] > 230
    assert last[0] < 30
    encoder.close()


def test_encoder_scales_a_larger_screen() -> None:
    encoder = H264Encoder(640, 360)
    out = encoder.encode(solid(1280, 720, (0, 255, 0)), keyframe=True, capture_us=0)
    decoder = av.CodecContext.create("h264", "r")
    [frame] = [f for e in out for f in decoder.decode(av.Packet(e.data))]
    assert (frame.width, frame.height) == (640, 360)


# --------------------------------------------------------------------------- to real kiosks


class FlakySink:
    """A kiosk's decoder that refuses the ``fail_at``-th picture (then asks for a keyframe)."""

    def __init__(self, fail_at: int) -> None:
        self.fed: list[StreamFrame] = []
        self.fail_at = fail_at

    def start(self, stream_id: int, width: int, height: int) -> None:
        self.fed.clear()

    def feed(self, frame: StreamFrame) -> bool:
        self.fed.append(StreamFrame(frame.stream_id, frame.seq, frame.keyframe, 0, b""))
        return len(self.fed) != self.fail_at

    def stop(self) -> None:
        pass


async def paired(kiosk: KioskThread) -> KioskClient:
    client = await KioskClient.connect(kiosk.address, TEACHER)
    await client.pair(ADMIN_SECRET, role="admin")
    return client


async def until(check: object, timeout_s: float = 10.0) -> None:
    assert callable(check)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_one_encoder_feeds_two_panels_and_a_keyframe_request_is_answered(
    tmp_path: object,
) -> None:
    from pathlib import Path

    base = Path(str(tmp_path))
    with KioskThread(base / "a", room="Каб. 1") as a, KioskThread(base / "b", room="Каб. 2") as b:
        sinks = [FlakySink(fail_at=3), FlakySink(fail_at=0)]
        for kiosk, sink in zip((a, b), sinks, strict=True):
            kiosk.sync(lambda k=kiosk, s=sink: setattr(k.app.service, "screen", s))
        clients = [await paired(a), await paired(b)]
        capture = PatternCapture(solid(64, 48, (0, 0, 255)))
        share = ScreenShare(capture, clients, title="Экран")
        assert await share.start() == []
        stop = asyncio.Event()
        runner = asyncio.create_task(share.run(stop))
        try:
            # Four changes: four pictures; the still screen in between costs no encode.
            for colour in [(0, 255, 0), (255, 0, 0), (255, 255, 0), (0, 255, 255)]:
                grabs = capture.grabs
                await until(lambda g=grabs: capture.grabs >= g + 3)
                encoded = share.stats.encoded
                capture.picture = solid(64, 48, colour)
                await until(lambda e=encoded: share.stats.encoded > e)
            await until(lambda: len(sinks[1].fed) == share.stats.encoded)
            await until(lambda: share.stats.keyframes >= 2)  # panel a's decoder asked
        finally:
            stop.set()
            await runner
        assert share.stats.captured > share.stats.encoded
        assert [f.seq for f in sinks[1].fed] == list(range(share.stats.encoded))
        assert sinks[0].fed[0].keyframe
        assert share.stats.sent == {"Каб. 1": share.stats.encoded, "Каб. 2": share.stats.encoded}
        await share.stop()
        assert capture.closed
        for client in clients:
            assert (await client.status()).state == "idle"
            await client.close()


@pytest.mark.slow
async def test_a_share_stopped_on_the_panel_ends_for_the_teacher(kiosk: KioskThread) -> None:
    client = await paired(kiosk)
    share = ScreenShare(PatternCapture(solid(64, 48, (9, 9, 9))), [client], title="Экран")
    await share.start()
    stop = asyncio.Event()
    runner = asyncio.create_task(share.run(stop))
    await until(lambda: share.stats.encoded > 0)
    kiosk.sync(lambda: kiosk.app.panel_control("stop"))  # type: ignore[union-attr]
    await asyncio.wait_for(runner, 10)  # every panel stopped: the share ends by itself
    assert [(c.name, why) for c, why in share.stopped_panels()] == [
        ("Каб. 12", "stopped on the panel")
    ]
    await share.stop()
    await client.close()


# --------------------------------------------------------------------------- command line


def test_share_without_a_screen_says_so_in_russian(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from controller.cli import cli

    monkeypatch.setenv("DISPLAY", ":4242")  # no X server there
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = CliRunner().invoke(cli, ["share", "--to", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert "Не удалось захватить экран этого компьютера" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_share_to_an_unreachable_panel_shares_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from controller.cli import cli
    from tests.xvfb import xvfb

    with xvfb(320, 240) as display:
        monkeypatch.setenv("DISPLAY", display)
        result = CliRunner().invoke(cli, ["share", "--to", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert "Ни одна панель не отвечает: экран не показывается." in result.output


# --------------------------------------------------------------------------- X damage


@pytest.mark.slow
def test_a_still_x_screen_is_not_captured_and_drawing_or_the_pointer_is_seen() -> None:
    from controller.share import MssCapture
    from tests.screen_painter import ScreenPainter
    from tests.xvfb import tap, xvfb

    with xvfb(320, 240) as display:
        capture = MssCapture(display)
        painter = ScreenPainter(display)
        try:
            # the first looks: the pointer's place and the screen's first paint are news
            assert _eventually(lambda: not capture.changed())
            painter.fill(10, 10, 50, 50, 0xFF0000)
            painter.sync()
            assert _eventually(capture.changed)
            assert capture.changed() is False  # reported once
            tap(display, 100, 100)  # the pointer moves
            assert capture.changed() is True
            assert capture.changed() is False
        finally:
            painter.close()
            capture.close()


def _eventually(check: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


# --------------------------------------------------------------------------- a slow panel


class PausableRelay:
    """A TCP relay to a kiosk that can stop reading from the controller (a slow panel)."""

    def __init__(self, target: str) -> None:
        self.host, port = target.rsplit(":", 1)
        self.port = int(port)
        self.reading = asyncio.Event()
        self.reading.set()
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, gated: bool) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(16 * 1024):
                    if gated:
                        await self.reading.wait()
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (pump(reader, up_writer, True), pump(up_reader, writer, False)):
            t = asyncio.create_task(task)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.server is not None:
            self.server.close()


class NoiseCapture(PatternCapture):
    """A screen whose every pixel changes every time (incompressible pictures)."""

    def grab(self) -> Picture:
        self.grabs += 1
        w, h = self.picture.width, self.picture.height
        return Picture(w, h, os.urandom(w * h * 4))


@pytest.mark.slow
async def test_a_slow_panel_misses_pictures_and_never_holds_back_the_others(
    tmp_path: Path,
) -> None:
    with (
        KioskThread(tmp_path / "a", room="Каб. 1") as a,
        KioskThread(tmp_path / "b", room="Каб. 2") as b,
    ):
        relay = PausableRelay(b.address)
        slow_address = await relay.start()
        fast = await paired(a)
        slow = await KioskClient.connect(slow_address, TEACHER)
        await slow.pair(ADMIN_SECRET, role="admin")
        share = ScreenShare(NoiseCapture(solid(320, 240, (0, 0, 0))), [fast, slow], title="Экран")
        await share.start()
        stop = asyncio.Event()
        runner = asyncio.create_task(share.run(stop))
        try:
            await until(lambda: share.stats.sent.get("Каб. 2", 0) >= 2)
            relay.reading.clear()  # panel b stops reading
            await until(lambda: share.stats.skipped.get("Каб. 2", 0) >= 20, timeout_s=20)
            # Panel a got every picture meanwhile: nothing waits behind panel b.
            assert share.stats.sent["Каб. 1"] == share.stats.encoded
            assert share.stats.skipped.get("Каб. 1", 0) == 0
            # Panel b holds at most the picture in flight: no queue builds up.
            assert share.stats.sent["Каб. 2"] + share.stats.skipped["Каб. 2"] == share.stats.encoded
            print(
                "paused: sent",
                share.stats.sent,
                "skipped",
                share.stats.skipped,
                "bytes",
                share.stats.bytes_encoded / share.stats.encoded,
            )
            relay.reading.set()
            sent_b = share.stats.sent["Каб. 2"]
            await until(lambda: share.stats.sent["Каб. 2"] >= sent_b + 5, timeout_s=20)
            # After the gap panel b decodes again: a keyframe came (asked or sent at once).
            receiver = b.sync(lambda: b.app.service.share.active.receiver)  # type: ignore[union-attr]
            await until(lambda: b.sync(lambda: receiver.state) == "in_sync", timeout_s=20)
        finally:
            stop.set()
            await runner
            await share.stop()
            await fast.close()
            await slow.close()
            await relay.close()
        assert share.stats.keyframes >= 2


@pytest.mark.slow
def test_one_window_is_found_by_its_title_and_captured_alone() -> None:
    from controller.share import MssCapture, WindowNotFoundError
    from tests.screen_painter import ScreenPainter
    from tests.xvfb import xvfb

    with xvfb(640, 480) as display:
        painter = ScreenPainter(display)
        try:
            painter.fill(0, 0, 640, 480, 0xFF0000)
            painter.window(100, 50, 300, 200, 0x0000FF, "Презентация — LibreOffice Impress")
            with pytest.raises(WindowNotFoundError):
                MssCapture(display, window="Браузер")
            capture = MssCapture(display, window="презентация")
            try:
                assert capture.size == (300, 200)
                picture = _eventually_picture(capture, lambda p: p.bgra[:3] == b"\xff\x00\x00")
                assert (picture.width, picture.height) == (300, 200)
                corners = range(0, len(picture.bgra), 4000)
                # BGR of blue: all window, no red screen around it
                assert {bytes(picture.bgra[i : i + 3]) for i in corners} == {b"\xff\x00\x00"}
            finally:
                capture.close()
        finally:
            painter.close()


def _eventually_picture(capture: MssCapture, check: Callable[[Picture], bool]) -> Picture:
    deadline = time.monotonic() + 2.0
    while True:
        picture = capture.grab()
        if check(picture) or time.monotonic() > deadline:
            return picture
        time.sleep(0.02)


@pytest.mark.slow
def test_share_of_a_window_that_is_not_open_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from controller.cli import cli
    from tests.xvfb import xvfb

    with xvfb(320, 240) as display:
        monkeypatch.setenv("DISPLAY", display)
        result = CliRunner().invoke(cli, ["share", "--window", "Impress", "--to", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert "Окна с заголовком «Impress» нет." in result.output


@pytest.mark.slow
async def test_whoever_listened_to_the_panel_still_hears_it_during_and_after(
    kiosk: KioskThread,
) -> None:
    client = await paired(kiosk)
    heard: list[str | None] = []
    client.on_status = lambda status: heard.append(status.item_kind)
    share = ScreenShare(PatternCapture(solid(64, 48, (1, 2, 3))), [client], title="Экран")
    await share.start()
    await until(lambda: "screen" in heard)
    await share.stop()
    await until(lambda: heard[-1] is None)  # the panel went idle, and it was heard
    assert client.on_keyframe_request is None
    client.on_status(await client.status())  # the listener is the caller's own again
    assert heard[-1] is None
    await client.close()
