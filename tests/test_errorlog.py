"""An error ClassCast did not foresee: one Russian sentence for the user, the traceback in
the day's log file under CLASSCAST_HOME (stderr when the home cannot be written); Ctrl+C
stays «Прервано»."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from controller import errorlog
from controller.errorlog import MAX_LOG_FILE_BYTES, log_path, write_entry
from controller.schooldb import SchoolDb
from controller.webapp.app import TeacherApp
from controller.webapp.security import COOKIE
from tests.app_server import RunningApp, running_app
from tests.test_messages_ru import assert_russian_with_a_next_step, run


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom in the program")


def _logs(home: Path) -> list[Path]:
    return sorted((home / errorlog.LOG_DIR).glob("classcast-*.log"))


def test_an_unexpected_error_in_a_command_is_one_russian_sentence_and_a_log_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CLASSCAST_HOME", str(home))
    monkeypatch.setattr(SchoolDb, "verify", _boom)
    out = assert_russian_with_a_next_step(run("usage", "verify"))
    assert "ошибки в программе" in out
    assert "boom" not in out
    [log] = _logs(home)
    assert log == log_path(home, datetime.now())
    assert str(log) in out
    assert "администратору" in out
    text = log.read_text("utf-8")
    assert "classcast usage" in text
    assert "Traceback" in text
    assert "RuntimeError: boom in the program" in text
    assert log.stat().st_mode & 0o077 == 0


def test_with_an_unwritable_home_the_details_go_to_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("", "utf-8")
    monkeypatch.setenv("CLASSCAST_HOME", str(blocker / "home"))
    monkeypatch.setattr("controller.cli.Ctx.browse", _boom)
    result = run("panels", "--wait", "0.1")
    assert result.exit_code == 1
    details, sentence = result.output.rsplit("\n\n", 1)[0], result.output.splitlines()[-1]
    assert "RuntimeError: boom in the program" in details  # on stderr: nowhere else to go
    assert sentence.startswith("Ошибка: ClassCast не смог выполнить действие")
    assert "выведены выше" in sentence
    assert "Попробуйте ещё раз" in sentence


def test_ctrl_c_stays_aborted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    home = tmp_path / "home"
    monkeypatch.setenv("CLASSCAST_HOME", str(home))
    monkeypatch.setattr(SchoolDb, "verify", interrupted)
    result = run("usage", "verify")
    assert result.exit_code == 1
    assert "прервана" in result.output  # click's Abort, as before
    assert _logs(home) == []


def test_a_full_log_file_is_not_written_past_its_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime(2026, 12, 1, 10, 0)
    path = log_path(tmp_path, now)
    path.parent.mkdir(parents=True)
    path.write_text("x" * (MAX_LOG_FILE_BYTES - 100), "utf-8")
    assert write_entry(tmp_path, now, "short") == path  # under the limit: written
    assert write_entry(tmp_path, now, "y" * 200) is None  # over it: stderr
    assert path.stat().st_size <= MAX_LOG_FILE_BYTES
    assert "y" * 200 in capsys.readouterr().err


@pytest.fixture
def app(tmp_path: Path) -> Iterator[RunningApp]:
    with running_app(tmp_path / "home") as running:
        yield running


def test_an_unexpected_error_in_the_app_is_a_russian_page_and_one_log_entry(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TeacherApp, "panel_cards", _boom)
    with httpx.Client(base_url=app.base, cookies={COOKIE: app.config.secret}, timeout=10) as client:
        answer = client.get("/fragments/panels")
    assert answer.status_code == 500
    assert "Traceback" not in answer.text
    assert "boom" not in answer.text
    assert "ошибки в программе" in answer.text
    home = app.config.home.root
    [log] = _logs(home)
    assert str(log) in answer.text
    text = log.read_text("utf-8")
    assert "GET /fragments/panels" in text
    assert text.count("RuntimeError: boom in the program") == 1  # not again from uvicorn
