"""A panel another teacher presents on names that teacher: the kiosk's ``busy`` error
carries ``presenter``, decoded by the codec (bounded, only with ``busy``), cleaned, and
said by the controller: «Сейчас на панели Каб. 12 показ ведёт Петрова А. С.…»."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.client import ControllerIdentity
from controller.texts import error_text
from protocol import limits
from protocol.codec import decode, encode
from protocol.errors import BusyError, MalformedMessageError
from protocol.messages import Error
from tests.helpers import text_lesson
from tests.kiosks import KioskThread, teacher
from tests.test_messages_ru import assert_russian_with_a_next_step, run, sample_lesson_dir

__all__ = ["sample_lesson_dir"]  # the fixture, used below

PETROVA = ControllerIdentity("c-petrova", "Петрова А. С.")
IVANOV = ControllerIdentity("c-ivanov", "Иванов П. И.")


async def test_the_second_teachers_cast_names_the_first(kiosk: KioskThread) -> None:
    async with await teacher(kiosk, PETROVA) as first, await teacher(kiosk, IVANOV) as second:
        await first.cast(text_lesson("А1", "А2"))
        with pytest.raises(BusyError) as cast:
            await second.cast(text_lesson("Б1"))
        with pytest.raises(BusyError) as control:
            await second.control("next")
    assert cast.value.presenter == control.value.presenter == "Петрова А. С."
    text = error_text(cast.value, "Каб. 12")
    assert text.startswith("Сейчас на панели Каб. 12 показ ведёт Петрова А. С.")


async def test_a_presenters_name_is_cleaned_before_it_is_shown(kiosk: KioskThread) -> None:
    hostile = ControllerIdentity("c-hostile", "\x1b[2JПетрова\x07 А. С.\u202e")
    async with await teacher(kiosk, hostile) as first, await teacher(kiosk, IVANOV) as second:
        await first.cast(text_lesson("А1"))
        with pytest.raises(BusyError) as info:
            await second.control("next")
    assert info.value.presenter is not None
    assert "\x1b" not in info.value.presenter
    assert "\x07" not in info.value.presenter
    assert "\u202e" not in info.value.presenter
    assert "Петрова" in info.value.presenter


def test_classcast_says_who_presents(
    kiosk: KioskThread, sample_lesson_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two controllers (two homes), one real kiosk: the second teacher's cast is refused
    with the first teacher's name."""
    monkeypatch.setenv("CLASSCAST_HOME", str(tmp_path / "petrova"))
    pin = kiosk.pin()
    assert run("--teacher", "Петрова А. С.", "pair", kiosk.address, "--pin", pin).exit_code == 0
    assert (
        run("--teacher", "Петрова А. С.", "cast", str(sample_lesson_dir), "--to", kiosk.address)
    ).exit_code == 0
    monkeypatch.setenv("CLASSCAST_HOME", str(tmp_path / "ivanov"))
    pin = kiosk.pin()
    assert run("--teacher", "Иванов П. И.", "pair", kiosk.address, "--pin", pin).exit_code == 0
    out = assert_russian_with_a_next_step(
        run("--teacher", "Иванов П. И.", "cast", str(sample_lesson_dir), "--to", kiosk.address)
    )
    assert "Сейчас на панели Каб. 12 показ ведёт Петрова А. С." in out


# --------------------------------------------------------------------------- the codec


def test_the_codec_carries_presenter_with_busy_only() -> None:
    msg = Error(re=3, code="busy", message="someone presents", presenter="Петрова А. С.")
    assert decode(encode(msg)) == msg
    old = json.dumps({"type": "error", "re": 3, "code": "busy", "message": "m"})
    assert decode(old) == Error(re=3, code="busy", message="m")  # no presenter: None
    assert "presenter" not in json.loads(encode(Error(3, "no_lesson", "m")))  # as before
    other = json.dumps(
        {"type": "error", "re": 3, "code": "bad_index", "message": "m", "presenter": "X"}
    )
    with pytest.raises(MalformedMessageError, match="only with code 'busy'"):
        decode(other)


def test_a_presenters_name_is_bounded_like_every_string() -> None:
    longest = "я" * limits.MAX_STRING_CHARS
    assert decode(encode(Error(3, "busy", "m", presenter=longest))) == Error(
        3, "busy", "m", longest
    )
    too_long = json.dumps(
        {"type": "error", "re": 3, "code": "busy", "message": "m", "presenter": longest + "я"}
    )
    with pytest.raises(MalformedMessageError, match="presenter: longer than"):
        decode(too_long)
