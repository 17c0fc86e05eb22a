"""Every error path of ``classcast`` and ``classcast-kiosk``, tried as a new user would.

Each output must be Russian (no run of three English words outside commands, paths,
names and log lines), say what to do next (an imperative: «проверьте», «повторите»…),
never show a traceback, and exit with 1 (the command failed) or 2 (a usage error).
Real panels on 127.0.0.1 (``KioskThread``) answer the commands; the kiosk's command
runs in-process with ``CliRunner`` where it stops before starting, and as a child process
(the entry point a user runs) where it gets further.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.cli import cli
from controller.problems import LESSON_PROBLEMS
from kiosk.cli import main as kiosk_main
from media.lesson import LESSON_ERROR_REASONS
from tests.helpers import png_bytes
from tests.kiosks import ADMIN_SECRET, KioskThread

ROOT = Path(__file__).resolve().parent.parent

_LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: .*$", re.MULTILINE)
_USAGE_LINE = re.compile(r"^Использование: .*$", re.MULTILINE)
_QUOTED = re.compile(r"`[^`]*`|«[^»]*»|'[^']*'|\"[^\"]*\"|\[[^\]]*\]")
_CODE_TOKEN = re.compile(r"\S*(?:[-_/=\\@\d]|[.:](?=\S))\S*")
_ENGLISH_RUN = re.compile(r"\b[A-Za-z]*[a-z][A-Za-z]*(?:\s+[A-Za-z]*[a-z][A-Za-z]*){2,}\b")
"""Three English words in a row, as in prose (a list of settings, with commas, is not)."""
_IMPERATIVE = re.compile(r"(?<![А-Яа-яЁё])[А-Яа-яЁё]+(?:ите|йте|ьте)(?![А-Яа-яЁё])")


def english_runs(text: str) -> list[str]:
    """Runs of three or more English words in ``text``, outside what may stay as written:
    log lines (the journal), the usage line, quoted or bracketed text, paths, options,
    addresses and acronyms (``PDF``)."""
    text = _USAGE_LINE.sub("", _LOG_LINE.sub("", text))
    text = _CODE_TOKEN.sub(" ", _QUOTED.sub(" ", text))
    return _ENGLISH_RUN.findall(text)


def assert_russian_with_a_next_step(result: Result, *, exit_code: int = 1) -> str:
    """The checks every error output passes; returns the output."""
    out = result.output
    assert result.exit_code == exit_code, out
    assert "Traceback" not in out, out
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    assert re.search("[А-Яа-яЁё]", out), out
    assert english_runs(out) == [], out
    assert _IMPERATIVE.search(out), f"says nothing to do: {out}"
    return out


def test_the_checks_catch_what_they_are_for() -> None:
    """English prose, a traceback and a bare statement fail; names and commands pass."""
    assert english_runs("Error: lesson folder has no files: /tmp/x") == [
        "lesson folder has no files"
    ]
    assert (
        english_runs("Ошибка: «Каб. 12»: выполните `classcast pair Kab 12` и проверьте kiosk.toml")
        == []
    )
    assert english_runs("Файлы PDF, PNG, JPEG или MP4: проверьте") == []
    assert english_runs("INFO kiosk.server: listening on ws://x\nОшибка") == []
    assert not _IMPERATIVE.search("Ошибка: урок не найден.")
    assert _IMPERATIVE.search("Проверьте путь.")


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, prog_name="classcast")


def run_kiosk(*args: str) -> Result:
    return CliRunner().invoke(kiosk_main, list(args), prog_name="classcast-kiosk")


# --------------------------------------------------------------------------- classcast


@pytest.mark.parametrize(
    "args",
    [
        ["nosuch"],
        ["cast"],
        ["cast", "--bogus"],
        ["goto", "x"],
        ["goto", "1", "2"],
        ["--lang"],
        ["--lang", "de", "panels"],
        ["volume", "200"],
        ["seek", "xx"],
        ["stop"],
        ["pair", "127.0.0.1:1", "--pin", "12ab"],
        ["panels", "add", "127.0.0.1:99999"],
        ["usage", "report", "--week", "xx"],
        ["usage", "report", "--from", "2026-13-01"],
        ["usage", "compliance", "--week", "xx"],
        ["status", "--thumbnail", "/"],
        ["announce"],
        ["cast", "--start", "0", "lesson"],
        ["usage", "report", "--from", "2026-11-30", "--to", "2026-11-01"],
        ["usage", "report", "--week", "2026-W48", "--from", "2026-11-01"],
    ],
    ids=" ".join,
)
def test_usage_errors_are_russian(args: list[str]) -> None:
    out = assert_russian_with_a_next_step(run(*args), exit_code=2)
    assert "Ошибка: " in out


@pytest.mark.slow
def test_an_unknown_panel_is_russian() -> None:
    """Looked for by mDNS for ``DISCOVERY_WAIT_S`` first: slow."""
    assert "Панель не найдена" in assert_russian_with_a_next_step(run("status", "nosuch"))


def test_click_words_in_usage_errors() -> None:
    assert "Нет такой команды: 'nosuch'." in run("nosuch").output
    assert "Посмотрите справку: «classcast cast --help»." in run("cast").output
    assert "Не указан аргумент 'LESSON...'." in run("cast").output
    assert "PIN — это 6 цифр с экрана панели" in run("pair", "127.0.0.1:1", "--pin", "1").output
    assert "Лишний аргумент: 2" in run("goto", "1", "2").output


def test_aborted_prompt_is_russian(kiosk: KioskThread) -> None:
    """Ctrl-D at the PIN prompt: click's "Aborted!" in Russian, with what to do."""
    out = assert_russian_with_a_next_step(run("pair", kiosk.address, input=""))
    assert "Aborted" not in out


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    missing = tmp_path / "missing_file"
    missing.mkdir()
    (missing / "lesson.toml").write_text('title = "x"\n[[items]]\nfile = "nope.png"\n', "utf-8")
    bad = tmp_path / "bad_toml"
    bad.mkdir()
    (bad / "lesson.toml").write_text('title = "x"\n[[items]\n', "utf-8")
    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    return tmp_path


@pytest.mark.parametrize(
    ("lesson", "expected"),
    [
        ("nope", "не найден"),
        ("empty", "в папке урока нет файлов"),
        ("missing_file", "пункт 1: файла nope.png нет в папке урока"),
        ("bad_toml", "ошибка в lesson.toml в строке 2"),
        ("data.bin", "файлы такого вида панель не показывает"),
        ("photo.png", "файл повреждён"),
    ],
)
def test_a_lesson_that_cannot_be_loaded(folders: Path, lesson: str, expected: str) -> None:
    out = assert_russian_with_a_next_step(run("cast", str(folders / lesson), "--to", "x:1"))
    assert expected in out


def test_every_lesson_problem_has_a_text() -> None:
    assert set(LESSON_PROBLEMS) == LESSON_ERROR_REASONS


def test_an_unreachable_panel_is_named_by_its_room(tmp_path: Path) -> None:
    with KioskThread(tmp_path / "k") as kiosk:
        address = kiosk.address
        assert run("pair", address, "--pin", kiosk.pin()).exit_code == 0
    out = assert_russian_with_a_next_step(run("stop", "--to", "Каб. 12"))
    assert "Не удаётся связаться с панелью Каб. 12" in out
    assert "включена" in out
    assert "Errno" not in out
    assert address not in out
    out = assert_russian_with_a_next_step(run("pair", address, "--pin", "123456"))
    assert f"Не удаётся связаться с панелью {address}" in out


def test_panel_refusals_are_russian(kiosk: KioskThread) -> None:
    address = kiosk.address
    assert run("panels", "add", address).exit_code == 0
    out = assert_russian_with_a_next_step(run("status", "Каб. 12"))
    assert 'не сопряжён с панелью: выполните `classcast pair "Каб. 12"`' in out
    wrong = f"{(int(kiosk.pin()) + 1) % 1_000_000:06d}"
    assert "Неверный PIN" in assert_russian_with_a_next_step(run("pair", "Каб. 12", "--pin", wrong))
    out = assert_russian_with_a_next_step(run("pair", "Каб. 12", "--admin", "--pin", "x" * 20))
    assert "Неверный пароль администратора" in out
    assert "PIN" not in out
    assert run("pair", "Каб. 12", "--pin", kiosk.pin()).exit_code == 0
    out = assert_russian_with_a_next_step(run("stop", "--to", "Каб. 12"))
    assert "сейчас ничего не показывается" in out
    assert "no lesson" not in out


def test_goto_past_the_end_counts_from_one(kiosk: KioskThread, sample_lesson_dir: Path) -> None:
    assert run("pair", kiosk.address, "--pin", kiosk.pin()).exit_code == 0
    assert run("cast", str(sample_lesson_dir), "--to", kiosk.address).exit_code == 0
    out = assert_russian_with_a_next_step(run("goto", "99"))
    assert "нет материала с таким номером" in out
    assert "нумеруются с 1" in out
    assert "98" not in out


def test_another_teachers_panel_is_busy(
    kiosk: KioskThread, sample_lesson_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("--teacher", "Петрова", "pair", kiosk.address, "--pin", kiosk.pin()).exit_code == 0
    assert run("cast", str(sample_lesson_dir), "--to", kiosk.address).exit_code == 0
    monkeypatch.setenv("CLASSCAST_HOME", str(tmp_path / "other"))
    assert run("--teacher", "Иванов", "pair", kiosk.address, "--pin", kiosk.pin()).exit_code == 0
    out = assert_russian_with_a_next_step(run("next", "--to", kiosk.address))
    assert "показ ведёт Петрова" in out
    assert "is presenting" not in out


def test_admin_pairing_not_enabled(tmp_path: Path) -> None:
    with KioskThread(tmp_path / "k", admin_secret=None) as kiosk:
        out = assert_russian_with_a_next_step(
            run("pair", kiosk.address, "--admin", "--pin", ADMIN_SECRET)
        )
    assert "не включено сопряжение администратора" in out


def test_an_unwritable_home_is_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("", "utf-8")
    monkeypatch.setenv("CLASSCAST_HOME", str(blocker / "home"))
    out = assert_russian_with_a_next_step(run("panels", "add", "127.0.0.1:1"))
    assert "CLASSCAST_HOME" in out


def test_bad_mdns_setting_and_bad_school_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("", "utf-8")
    out = assert_russian_with_a_next_step(run("usage", "report", "--db", str(blocker / "x.db")))
    assert "--db" in out
    monkeypatch.setenv("CLASSCAST_MDNS_INTERFACES", "bad")
    out = assert_russian_with_a_next_step(run("stop", "--to", "Каб. 99"))
    assert "CLASSCAST_MDNS_INTERFACES" in out


@pytest.fixture
def sample_lesson_dir(tmp_path: Path) -> Path:
    lesson = tmp_path / "урок"
    lesson.mkdir()
    for n in range(3):
        (lesson / f"{n + 1}.png").write_bytes(png_bytes(8 + n, 8))
    return lesson


# --------------------------------------------------------------------------- classcast-kiosk


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    texts = {
        "bad.toml": "room = \n",
        "unknown.toml": 'colour = "red"\n',
        "type.toml": 'port = "x"\n',
        "video.toml": 'video_output = "x"\n',
        "mdns.toml": 'mdns_interfaces = "x"\n',
        "web.toml": "web_allow = [1]\n",
        "negative.toml": "usage_floor_mb = -1\n",
        "short.toml": 'admin_secret = "short"\n',
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text, "utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["--bogus"], 2, "Нет такого параметра"),
        (["--port", "x"], 2, "не число"),
        (["--lang", "de"], 2, "не подходит"),
        (["--config", "{dir}/none.toml"], 1, "Не удаётся прочитать файл настроек"),
        (["--config", "{dir}/bad.toml"], 1, "ошибка в строке 1"),
        (["--config", "{dir}/unknown.toml"], 1, "неизвестная настройка «colour»"),
        (["--config", "{dir}/type.toml"], 1, "«port» должно быть целым числом"),
        (["--config", "{dir}/video.toml"], 1, "video_output"),
        (["--config", "{dir}/mdns.toml"], 1, "mdns_interfaces"),
        (["--config", "{dir}/web.toml"], 1, "web_allow"),
        (["--config", "{dir}/negative.toml"], 1, "не может быть меньше нуля"),
        (["--config", "{dir}/short.toml"], 1, "не меньше 12 символов"),
        (["--state-dir", "{dir}", "tokens", "revoke", "zzzzzzzz"], 1, "Нет сопряжения"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_kiosk_errors_are_russian(configs: Path, args: list[str], code: int, expected: str) -> None:
    result = run_kiosk(*(a.format(dir=configs) for a in args))
    assert expected in assert_russian_with_a_next_step(result, exit_code=code)


def test_kiosk_refuses_a_bad_mdns_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSCAST_MDNS_INTERFACES", "bad")
    out = assert_russian_with_a_next_step(run_kiosk("--headless"))
    assert "CLASSCAST_MDNS_INTERFACES" in out


def kiosk_command(*args: str) -> subprocess.CompletedProcess[str]:
    """``classcast-kiosk ARGS`` as its own process, as a user or systemd starts it."""
    return subprocess.run(
        [sys.executable, "-c", "from kiosk.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.slow
def test_kiosk_process_stops_in_russian_without_a_traceback(configs: Path) -> None:
    """The two tracebacks a new admin met: a short admin_secret, an unusable state folder."""
    blocker = configs / "a_file"
    blocker.write_text("", "utf-8")
    common = ["--headless", "--host", "127.0.0.1", "--port", "0"]
    short = kiosk_command(*common, "--config", str(configs / "short.toml"))
    state = kiosk_command(*common, "--state-dir", str(blocker / "state"))
    for done in (short, state):
        result = Result(
            runner=CliRunner(),
            stdout_bytes=done.stdout.encode(),
            stderr_bytes=done.stderr.encode(),
            output_bytes=(done.stdout + done.stderr).encode(),
            return_value=None,
            exit_code=done.returncode,
            exception=None,
        )
        assert_russian_with_a_next_step(result)
    assert "admin_secret" in short.stderr
    assert str(blocker / "state") in state.stderr
