"""Screenshots through the protocol and `classcast status PANEL --thumbnail`."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from controller.cli import cli
from kiosk.headless import HeadlessDisplay
from protocol import limits
from protocol.errors import RemoteError
from tests.kiosks import KioskThread, teacher


class PictureDisplay(HeadlessDisplay):
    """A display whose screen is a known picture (the pyglet window is tested apart)."""

    def screenshot_png(self, max_width: int) -> bytes | None:
        out = io.BytesIO()
        Image.new("RGB", (min(max_width, 640), 360), "#1565c0").save(out, "PNG")
        return out.getvalue()


def test_screenshot_over_the_protocol_and_the_cli(tmp_path: Path) -> None:
    k = KioskThread(tmp_path / "k")
    k.display = PictureDisplay()
    with k:
        import asyncio

        async def grab() -> bytes:
            async with await teacher(k) as client:
                return await client.screenshot(max_width=320)

        png = asyncio.run(grab())
        image = Image.open(io.BytesIO(png))
        assert image.size == (320, 360)
        assert image.getpixel((10, 10)) == (0x15, 0x65, 0xC0)

        runner = CliRunner()
        assert runner.invoke(cli, ["panels", "add", k.address]).exit_code == 0
        assert runner.invoke(cli, ["pair", k.address, "--pin", k.pin()]).exit_code == 0
        out = tmp_path / "thumb.png"
        result = runner.invoke(cli, ["status", "Каб. 12", "--thumbnail", str(out)])
        assert result.exit_code == 0, result.output
        assert Image.open(out).size == (480, 360)


async def test_a_kiosk_without_a_screen_says_so(kiosk: KioskThread) -> None:
    async with await teacher(kiosk) as client:
        with pytest.raises(RemoteError) as info:
            await client.screenshot()
    assert info.value.code == "no_screen"


def test_thumbnail_needs_a_panel() -> None:
    result = CliRunner().invoke(cli, ["status", "--thumbnail", "x.png"])
    assert result.exit_code == 2


def test_screenshot_width_is_limited() -> None:
    from protocol.codec import decode
    from protocol.errors import MalformedMessageError

    frame = (
        f'{{"type": "take_screenshot", "id": 1, "max_width": {limits.MAX_SCREENSHOT_WIDTH + 1}}}'
    )
    with pytest.raises(MalformedMessageError, match="max_width"):
        decode(frame)


@pytest.mark.parametrize(
    ("width", "ok"),
    [
        (limits.MIN_SCREENSHOT_WIDTH - 1, False),
        (limits.MIN_SCREENSHOT_WIDTH, True),
        (limits.MAX_SCREENSHOT_WIDTH, True),
    ],
)
def test_screenshot_width_limits_at_both_ends(width: int, ok: bool) -> None:
    from protocol.codec import decode
    from protocol.errors import MalformedMessageError

    frame = f'{{"type": "take_screenshot", "id": 1, "max_width": {width}}}'
    if ok:
        decode(frame)
    else:
        with pytest.raises(MalformedMessageError):
            decode(frame)


class HugeDisplay(HeadlessDisplay):
    """A screen whose PNG is over the limit (random pixels do not compress)."""

    def screenshot_png(self, max_width: int) -> bytes | None:
        return b"\x89PNG" + os.urandom(limits.MAX_SCREENSHOT_BYTES)


def test_a_screenshot_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    import asyncio

    k = KioskThread(tmp_path / "k")
    k.display = HugeDisplay()
    with k:

        async def grab() -> None:
            async with await teacher(k) as client:
                with pytest.raises(RemoteError) as info:
                    await client.screenshot()
                assert info.value.code == "too_large"
                assert (await client.status()).state == "idle"  # the panel carries on

        asyncio.run(grab())
