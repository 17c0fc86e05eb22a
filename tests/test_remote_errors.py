"""Errors across the wire: each code a kiosk sends has its class and a text for the user.

The kiosk answers a refused request with ``error`` and a code; the controller raises the
class :data:`protocol.errors.REMOTE_ERRORS` names for it, and
:func:`controller.texts.error_text` matches on that class. The codes a kiosk can send are
read from the kiosk's own sources (literal ``code="..."`` and the ``code`` of every error
class kiosk/, media/ and protocol/ define), so a new code fails here until it has both.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from controller.client import KioskClient
from controller.texts import error_text
from protocol.errors import (
    REMOTE_ERRORS,
    BusyError,
    NoLessonError,
    RemoteError,
    UnauthorizedError,
    remote_error,
)
from tests.conftest import TEACHER
from tests.kiosks import KioskThread

ROOT = Path(__file__).resolve().parent.parent

NOT_SENT_BY_A_KIOSK = {
    "protocol": "the base of protocol errors; every one raised has its own code",
    "remote": "the controller's class for a reply code it does not know",
    "connection_failed": "the controller's: the kiosk cannot be reached",
    "certificate_changed": "the controller's: nothing is sent to such a kiosk",
    "bad_lesson": "the controller's check of a lesson folder or file",
    "unknown_content": "a file the controller cannot recognise (on the kiosk: a fallback slide)",
    "corrupt_content": "a file that cannot be decoded (on the kiosk: a fallback slide)",
    "picture_too_large": "a picture over the pixel limit (on the kiosk: a fallback slide)",
    "address_not_allowed": "a web item's address the kiosk will not load (a fallback slide)",
    "config": "kiosk.toml at start-up: the kiosk does not start",
}


def codes_a_kiosk_can_send() -> set[str]:
    """Every error code written in the kiosk's, media's and protocol's sources: each
    ``code="..."`` argument and each ``code = "..."`` of a class body."""
    codes: set[str] = set()
    for package in ("kiosk", "media", "protocol"):
        for path in sorted((ROOT / package).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                value: ast.expr | None = None
                if isinstance(node, ast.keyword) and node.arg == "code":
                    value = node.value
                elif isinstance(node, ast.ClassDef):
                    for stmt in node.body:
                        if isinstance(stmt, ast.Assign) and [
                            t.id for t in stmt.targets if isinstance(t, ast.Name)
                        ] == ["code"]:
                            value = stmt.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    codes.add(value.value)
    return codes - set(NOT_SENT_BY_A_KIOSK)


def test_the_kiosk_sources_are_read() -> None:
    codes = codes_a_kiosk_can_send()
    assert {"busy", "bad_index", "no_screen", "clock_offset", "bad_pin", "tokens"} <= codes


@pytest.mark.parametrize("code", sorted(codes_a_kiosk_can_send()))
def test_every_code_a_kiosk_sends_has_a_class_and_a_russian_text(code: str) -> None:
    assert code in REMOTE_ERRORS, f"no class for {code!r} in protocol.errors.REMOTE_ERRORS"
    exc = remote_error(code, "Каб. 12: in English")
    assert type(exc) is REMOTE_ERRORS[code]
    assert isinstance(exc, RemoteError)
    assert exc.code == code
    text = error_text(exc, "Каб. 12")
    assert "in English" not in text or text != str(exc)
    assert re.search("[а-яА-Я]{4}", text.replace("Каб. 12", "")), text


@pytest.mark.parametrize("code", sorted(REMOTE_ERRORS))
def test_every_class_of_the_table_has_an_english_text_of_its_own(
    code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLASSCAST_LANG", "en")
    exc = remote_error(code, "Каб. 12: raw")
    assert error_text(exc, "Каб. 12") != str(exc)


def test_the_table_names_each_class_by_its_own_code() -> None:
    assert all(cls.code == code for code, cls in REMOTE_ERRORS.items())
    assert len(set(REMOTE_ERRORS.values())) == len(REMOTE_ERRORS)


def test_a_code_the_controller_does_not_know_stays_a_remote_error() -> None:
    exc = remote_error("from_the_future", "Каб. 12: something new")
    assert type(exc) is RemoteError
    assert exc.code == "from_the_future"
    text = error_text(exc, "Каб. 12")
    assert "something new" not in text  # the panel's English is for the journal
    assert "from_the_future" in text
    assert "Повторите" in text


async def test_a_real_kiosk_refusal_arrives_as_its_class(tmp_path: Path) -> None:
    with KioskThread(tmp_path / "k") as k:
        async with await KioskClient.connect(k.address, TEACHER) as client:
            with pytest.raises(UnauthorizedError):
                await client.control("next")
            creds = await client.pair(k.pin())
        async with await KioskClient.connect(k.address, TEACHER, credentials=creds) as client:
            with pytest.raises(NoLessonError) as info:
                await client.control("stop")
    assert info.value.code == "no_lesson"
    assert "ничего не показывается" in error_text(info.value, "Каб. 12")
    assert not isinstance(info.value, BusyError)
