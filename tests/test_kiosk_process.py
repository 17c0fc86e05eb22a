"""The kiosk as a real process: a power cut (SIGKILL) and a clean stop (SIGTERM)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
from pathlib import Path

import pytest
from PIL import Image

from controller.client import KioskClient
from protocol.errors import RemoteError
from tests.conftest import TEACHER
from tests.helpers import text_lesson
from tests.kiosks import ADMIN_SECRET, kiosk_process, open_play, wait_for_heartbeats

pytestmark = pytest.mark.slow

HEARTBEAT = "heartbeat_s = 0.05\n"


async def connect_admin(address: str) -> KioskClient:
    """Pair as admin (the process's PIN is on its screen; the admin secret is configured)."""
    client = await KioskClient.connect(address, TEACHER)
    await client.pair(ADMIN_SECRET, role="admin")
    return client


async def pull_all(address: str) -> list:
    async with await connect_admin(address) as client:
        return (await client.usage_pull(0)).records


async def test_sigkill_mid_item_is_closed_as_power_loss_after_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with kiosk_process(state, config=HEARTBEAT) as (proc, address):
        async with await connect_admin(address) as client:
            await client.cast(text_lesson("Первый", "Второй"))
            await client.control("next")
            await wait_for_heartbeats(state, 1, count=3)
            assert (await client.status()).index == 1
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
    play = open_play(state, 1)  # as the power cut left it
    assert play is not None
    start_mono_s, last_seen_at, last_seen_mono_s = play
    assert last_seen_at is not None
    assert last_seen_mono_s is not None
    with kiosk_process(state, config=HEARTBEAT) as (_, address):
        records = await pull_all(address)
    assert [(r.item_index, r.end_reason) for r in records] == [(0, "next"), (1, "power_loss")]
    lost = records[1]
    assert lost.teacher_name == TEACHER.name
    # Closed at the last heartbeat before the cut: its time and the time on screen till then.
    assert lost.ended_at == last_seen_at
    assert lost.duration_ms == round((last_seen_mono_s - start_mono_s) * 1000)
    assert lost.duration_ms > 0
    assert lost.ended_at > lost.started_at


async def test_sigterm_closes_the_open_interval_as_shutdown(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with kiosk_process(state) as (proc, address):
        async with await connect_admin(address) as client:
            await client.cast(text_lesson("Один"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    with kiosk_process(state) as (_, address):
        records = await pull_all(address)
    assert [(r.item_index, r.end_reason) for r in records] == [(0, "shutdown")]


def test_kiosk_refuses_a_bad_config_file(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="unknown setting 'colour'"),
        kiosk_process(tmp_path / "s", config='colour = "red"\n'),
    ):
        pass


def test_kiosk_refuses_an_unknown_video_output(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="video_output must be one of auto, embedded, frames"),
        kiosk_process(tmp_path / "s", config='video_output = "overlay"\n'),
    ):
        pass


async def test_pairing_and_certificate_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with kiosk_process(state) as (_, address):
        async with await KioskClient.connect(address, TEACHER) as client:
            creds = await client.pair(ADMIN_SECRET, role="admin")
    with kiosk_process(state) as (_, address):
        async with await KioskClient.connect(address, TEACHER, credentials=creds) as client:
            assert client.role == "admin"
            assert client.fingerprint == creds.fingerprint


async def test_the_panel_window_shows_the_lesson_in_a_screenshot(tmp_path: Path) -> None:
    """classcast-kiosk --headless renders offscreen: what it shows comes back as a PNG."""
    from media.lesson import load_lesson, sample_lesson_path

    state = tmp_path / "state"
    with kiosk_process(state) as (_, address):
        async with await connect_admin(address) as client:
            try:
                idle = await client.screenshot(max_width=320)
            except RemoteError as exc:
                pytest.skip(f"this machine renders without a window: {exc}")
            await client.cast(load_lesson(sample_lesson_path()))
            # The first slide is drawn once its picture is decoded: ask until it is.
            async with asyncio.timeout(20):
                while True:
                    shown = await client.screenshot(max_width=320)
                    if mostly_green(shown):
                        break
                    await asyncio.sleep(0.05)  # the kiosk is another process: ask again
    assert Image.open(io.BytesIO(idle)).size[0] == 320
    assert not mostly_green(idle)
    assert Image.open(io.BytesIO(shown)).size[0] == 320


def mostly_green(png: bytes) -> bool:
    """The first sample slide is mostly green (#2e7d32); the idle screen is not."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixel = image.getpixel((image.width // 4, image.height // 2))
    assert isinstance(pixel, tuple)
    r, g, b = pixel[:3]
    return g > r + 40 and g > b + 40


async def test_windowed_kiosk_under_xvfb(tmp_path: Path) -> None:
    """A real X11 window (Xvfb): the kiosk starts windowed and its screen is captured."""
    import io
    import shutil
    import subprocess
    import sys

    from PIL import Image

    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        pytest.skip("xvfb-run is not installed (apt-get install xvfb xauth)")
    config = tmp_path / "k.toml"
    config.write_text(f'admin_secret = "{ADMIN_SECRET}"\nmdns = false\n', encoding="utf-8")
    proc = subprocess.Popen(  # noqa: ASYNC220 - a child for the whole test, like kiosk_process
        [
            xvfb_run,
            "-a",
            "-s",
            "-screen 0 1280x720x24",
            sys.executable,
            "-c",
            "from kiosk.cli import main; main()",
            "--windowed",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
            "--config",
            str(config),
            "--room",
            "Каб. 7",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # xvfb-run does not pass SIGTERM on: stop the group
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.startswith("ready "), line
        address = line.split()[1].removeprefix("wss://").removesuffix("/v1")
        async with await connect_admin(address) as client:
            png = await client.screenshot(max_width=640)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    shot = Image.open(io.BytesIO(png)).convert("RGB")
    assert shot.size == (640, 360)
    colours = shot.getcolors(maxcolors=100_000)
    assert colours is not None
    assert len(colours) > 10  # the idle screen: text, a QR code, not one flat colour
