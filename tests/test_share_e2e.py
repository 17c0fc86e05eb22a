"""A teacher's (Xvfb) screen shared to a real kiosk process that draws it (EGL, offscreen).

The proof of screen sharing: a known pattern painted on the teacher's X screen shows on
the panel's screenshot, letterboxed; a change on the teacher's screen reaches the panel;
hostile frames from another connection change nothing on the panel; and the command
line shares until Ctrl+C.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from websockets.exceptions import ConnectionClosed

from controller.cli import cli
from controller.client import ControllerIdentity, KioskClient
from controller.share import MssCapture, ScreenShare
from protocol import limits
from protocol.codec import encode_stream_frame, stream_header
from tests.helpers import RAW, pair, raw_connect, recv_json
from tests.kiosks import ADMIN_SECRET, kiosk_process
from tests.panel_screen import near, pixel
from tests.screen_painter import ScreenPainter
from tests.xvfb import press_key, xvfb

pytestmark = pytest.mark.slow

SCREEN = (640, 480)  # the teacher's; the panel (1280×720) shows it 4:3, letterboxed
RED, BLUE, GREEN, YELLOW = 0xFF0000, 0x0000FF, 0x00FF00, 0xFFFF00
TIMEOUT_S = 20.0
FAILED_PNG = Path("/tmp") / "classcast-share-failed.png"
SHARER = ControllerIdentity("c-share-teacher", "Кузнецова Ольга")


def rgb(value: int) -> tuple[int, int, int]:
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def paint_pattern(painter: ScreenPainter) -> None:
    """Red left half, blue right half, a green square in the middle."""
    w, h = SCREEN
    painter.fill(0, 0, w // 2, h, RED)
    painter.fill(w // 2, 0, w // 2, h, BLUE)
    painter.fill(w // 2 - 60, h // 2 - 60, 120, 120, GREEN)
    painter.sync()


def shows(image: Image.Image, left: int, middle: int, right: int) -> bool:
    """The pattern on a 16:9 screenshot: bars left and right, the three colours between."""
    w, h = image.size
    bar = (w - h * 4 // 3) // 2
    return (
        near(pixel(image, bar // 2, h // 2), (0, 0, 0))
        and near(pixel(image, bar + w // 10, h // 2), rgb(left), 40)
        and near(pixel(image, w // 2, h // 2 + h // 10), rgb(middle), 40)  # beside the pointer
        and near(pixel(image, w - bar - w // 10, h // 2), rgb(right), 40)
    )


async def screen_until(
    client: KioskClient, check: Callable[[Image.Image], bool], what: str
) -> Image.Image:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_S
    while True:
        image = Image.open(io.BytesIO(await client.screenshot(max_width=640))).convert("RGB")
        if check(image):
            return image
        if loop.time() > deadline:
            image.save(FAILED_PNG)
            raise AssertionError(f"the panel never showed {what} (see {FAILED_PNG})")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def teacher_screen() -> Iterator[str]:
    with xvfb(*SCREEN) as display:
        yield display


@pytest.fixture
def panel(tmp_path: Path) -> Iterator[str]:
    with kiosk_process(tmp_path / "kiosk") as (_proc, address):
        yield address


async def test_the_teachers_screen_reaches_the_panel(teacher_screen: str, panel: str) -> None:
    painter = ScreenPainter(teacher_screen)
    paint_pattern(painter)
    client = await KioskClient.connect(panel, SHARER)
    await client.pair(ADMIN_SECRET, role="admin")
    share = ScreenShare(MssCapture(teacher_screen), [client], title="Экран")
    assert await share.start() == []
    stop = asyncio.Event()
    runner = asyncio.create_task(share.run(stop))
    try:
        await screen_until(client, lambda i: shows(i, RED, GREEN, BLUE), "the pattern")
        status = await client.status()
        assert (status.item_kind, status.item_title) == ("screen", "Экран")

        painter.fill(0, 0, *SCREEN, YELLOW)
        painter.sync()
        await screen_until(client, lambda i: shows(i, YELLOW, YELLOW, YELLOW), "the change")

        await hostile_frames_change_nothing(panel, client, share.stream_id)
    finally:
        stop.set()
        await runner
        await share.stop()
        painter.close()
    assert share.stats.keyframes >= 1
    assert share.stats.sent == {"Каб. 7": share.stats.encoded}
    assert (await client.status()).state == "idle"
    await client.close()


async def hostile_frames_change_nothing(panel: str, client: KioskClient, stream_id: int) -> None:
    """Another (admin) connection sends stream frames of its own: refused, then closed."""
    creds = await pair(panel, ADMIN_SECRET, RAW, role="admin")
    ws = await raw_connect(panel, token=creds.token)
    try:
        blue = encode_stream_frame(
            stream_id, 10**6, b"\x00\x00\x00\x01\x65junk", keyframe=True, capture_us=0
        )
        await ws.send(blue)  # the share's stream id, from another connection
        assert (await recv_json(ws))["code"] == "no_share"
        await ws.send(
            stream_header(stream_id, 1, keyframe=True, capture_us=0)
            + bytes(limits.MAX_STREAM_FRAME_BYTES + 1)
        )
        assert (await recv_json(ws))["code"] == "malformed"

        async def flood() -> None:
            for _ in range(limits.MESSAGE_BURST * 3):
                await ws.send(blue)
            while True:
                await ws.recv()

        with pytest.raises(ConnectionClosed) as info:
            await flood()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1008
    finally:
        await ws.close()
    await screen_until(client, lambda i: shows(i, YELLOW, YELLOW, YELLOW), "the share still")


def test_classcast_share_until_ctrl_c(teacher_screen: str, panel: str) -> None:
    assert CliRunner().invoke(cli, ["pair", panel, "--admin", "--pin", ADMIN_SECRET]).exit_code == 0
    painter = ScreenPainter(teacher_screen)
    paint_pattern(painter)
    env = {**os.environ, "DISPLAY": teacher_screen, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from controller.cli import main; main()", "share", "--to", panel],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "Ваш экран показывается на: Каб. 7. Чтобы остановить, нажмите Ctrl+C." in line, (
            line + (proc.stderr.read() if proc.stderr else "")
        )

        async def check() -> None:
            async with await KioskClient.connect(panel, ControllerIdentity("c-w", "W")) as watcher:
                await watcher.pair(ADMIN_SECRET, role="admin")
                await screen_until(watcher, lambda i: shows(i, RED, GREEN, BLUE), "the pattern")

        asyncio.run(check())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        painter.close()
    assert proc.returncode == 0, err
    assert "Показ экрана завершён." in out
    assert "Traceback" not in err


XK_ESCAPE = 0xFF1B
XK_NEXT = 0xFF56  # PageDown, a presenter remote's "next"


async def test_esc_twice_on_the_panel_ends_the_share(teacher_screen: str, tmp_path: Path) -> None:
    """A real panel on X11 (its own Xvfb): its keys, pressed as a keyboard would."""
    painter = ScreenPainter(teacher_screen)
    paint_pattern(painter)
    with xvfb(1280, 720) as panel_display:
        env = {"DISPLAY": panel_display, "PYGLET_HEADLESS": ""}
        with kiosk_process(tmp_path / "state", window="--windowed", env=env) as (_, address):
            client = await KioskClient.connect(address, SHARER)
            await client.pair(ADMIN_SECRET, role="admin")
            share = ScreenShare(MssCapture(teacher_screen), [client], title="Экран")
            await share.start()
            stop = asyncio.Event()
            runner = asyncio.create_task(share.run(stop))
            try:
                await screen_until(client, lambda i: shows(i, RED, GREEN, BLUE), "the pattern")
                await asyncio.to_thread(press_key, panel_display, XK_NEXT)
                await asyncio.to_thread(press_key, panel_display, XK_ESCAPE)
                await asyncio.to_thread(press_key, panel_display, XK_ESCAPE)
                await asyncio.wait_for(runner, TIMEOUT_S)  # every panel stopped: it ends
            finally:
                stop.set()
                await runner
                await share.stop()
                painter.close()
            assert [why for _, why in share.stopped_panels()] == ["stopped on the panel"]
            assert (await client.status()).state == "idle"
            async with await KioskClient.connect(address, RAW) as collector:
                await collector.pair(ADMIN_SECRET, role="admin")
                [record] = (await collector.usage_pull(0)).records
            # "stop", not "end": PageDown (next past the only item) did not end the share
            assert (record.kind, record.teacher_name, record.end_reason) == (
                "screen",
                SHARER.name,
                "stop",
            )
            await client.close()
