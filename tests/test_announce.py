"""Announcements over the protocol and the CLI, with moderation."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.client import ControllerIdentity
from protocol import limits
from protocol.errors import RemoteError
from tests.helpers import text_lesson
from tests.kiosks import KioskThread, admin, teacher


async def test_announce_and_clear(kiosk: KioskThread) -> None:
    async with await teacher(kiosk) as client:
        await client.announce("Урок окончен", duration_s=60)
        shown = kiosk.sync(lambda: kiosk.display.announcement)
        assert shown is not None
        assert (shown.text, shown.level, shown.duration_s) == ("Урок окончен", "info", 60)
        await client.clear_announcement()
        assert kiosk.sync(lambda: kiosk.display.announcement) is None


async def test_another_teacher_cannot_announce_over_a_lesson_but_an_admin_can(
    kiosk: KioskThread,
) -> None:
    async with await teacher(kiosk) as presenter:
        await presenter.cast(text_lesson("Слайд"))
        async with await teacher(kiosk, ControllerIdentity("c-other", "Другой")) as other:
            with pytest.raises(RemoteError) as info:
                await other.announce("Привет")
            assert info.value.code == "busy"
        async with await admin(kiosk) as head:
            await head.announce("Эвакуация", level="alert")
    shown = kiosk.sync(lambda: kiosk.display.announcement)
    assert shown is not None
    assert shown.level == "alert"


def test_announce_from_the_cli(kiosk: KioskThread) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["panels", "add", kiosk.address]).exit_code == 0
    assert runner.invoke(cli, ["pair", kiosk.address, "--pin", kiosk.pin()]).exit_code == 0
    result = runner.invoke(cli, ["announce", "Перемена", "--to", "Каб. 12", "--for", "30"])
    assert result.exit_code == 0, result.output
    assert "объявление показано" in result.output
    shown = kiosk.sync(lambda: kiosk.display.announcement)
    assert shown is not None
    assert shown.duration_s == 30
    cleared = runner.invoke(cli, ["announce", "--clear", "--to", "Каб. 12"])
    assert cleared.exit_code == 0
    assert kiosk.sync(lambda: kiosk.display.announcement) is None
    assert runner.invoke(cli, ["announce"]).exit_code == 2


def test_empty_announcement_is_malformed() -> None:
    from protocol.codec import decode
    from protocol.errors import MalformedMessageError

    with pytest.raises(MalformedMessageError, match="empty"):
        decode('{"type": "announce", "id": 1, "text": "   "}')


@pytest.mark.parametrize(
    ("seconds", "ok"),
    [
        (0, False),
        (1, True),
        (limits.MAX_ANNOUNCEMENT_S, True),
        (limits.MAX_ANNOUNCEMENT_S + 1, False),
    ],
)
def test_announcement_duration_limits(seconds: int, ok: bool) -> None:
    from protocol.codec import decode
    from protocol.errors import MalformedMessageError

    frame = f'{{"type": "announce", "id": 1, "text": "x", "duration_s": {seconds}}}'
    if ok:
        decode(frame)
    else:
        with pytest.raises(MalformedMessageError, match="duration_s"):
            decode(frame)
