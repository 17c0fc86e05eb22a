"""The ``classcast`` command against real kiosks, through click's CliRunner."""

from __future__ import annotations

import ast
import io
import json
import os
import sys
import time
import types
import typing
from pathlib import Path

import click
import jinja2.ext
import pytest
from click.testing import CliRunner, Result

from controller import i18n as controller_i18n
from controller.cli import cli, parse_time_ms
from kiosk import i18n as kiosk_i18n
from kiosk.cli import main as kiosk_main
from media.lesson import sample_lesson_path
from protocol import limits
from protocol.messages import ControlAction, EndReason, ItemKind, PlayerState, Role
from tests.helpers import png_bytes
from tests.kiosks import KioskThread


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_add_cast_control_and_status_by_room_name(kiosk: KioskThread) -> None:
    added = run("panels", "add", kiosk.address)
    assert added.exit_code == 0, added.output
    assert "Каб. 12" in added.output
    listed = json.loads(run("panels", "--json", "--wait", "0").output)
    assert listed[0]["room"] == "Каб. 12"
    assert listed[0]["address"] == kiosk.address

    unpaired = run("cast", str(sample_lesson_path()), "--to", "Каб. 12")
    assert unpaired.exit_code == 1
    assert "не сопряжён с панелью" in unpaired.output

    paired = run("--teacher", "Сидоров И. И.", "pair", "Каб. 12", "--pin", kiosk.pin())
    assert paired.exit_code == 0, paired.output
    assert "Сопряжено с «Каб. 12», роль: учитель." in paired.output

    cast = run("--teacher", "Сидоров И. И.", "cast", str(sample_lesson_path()), "--to", "каб. 12")
    assert cast.exit_code == 0, cast.output
    assert "Фотосинтез" in cast.output
    assert "(100 %) в «Каб. 12»" in cast.output

    # Without --to, commands go to the panels of the last cast.
    assert run("next").exit_code == 0
    assert run("goto", "5").exit_code == 0
    status = run("status", "--json")
    assert status.exit_code == 0, status.output
    (entry,) = json.loads(status.output)
    assert entry["online"] is True
    assert entry["status"]["index"] == 4
    assert entry["status"]["item_kind"] == "text"
    assert entry["status"]["presenter"] == "Сидоров И. И."

    assert run("pause").exit_code == 0
    assert run("seek", "0:03").exit_code == 0
    paused = json.loads(run("status", "--json").output)[0]["status"]
    assert paused["state"] == "paused"
    assert paused["position_ms"] == 3000

    volume = run("volume", "60")
    assert volume.exit_code == 0, volume.output
    assert "Каб. 12: громкость" in volume.output
    assert json.loads(run("status", "--json").output)[0]["status"]["volume"] == 60
    too_loud = run("volume", "150")
    assert too_loud.exit_code == 2
    assert "150" in too_loud.output

    human = run("status", "Каб. 12")
    assert "Фотосинтез" in human.output
    assert "5/7" in human.output
    assert "Громкость: 60 %" in human.output

    again = run("cast", str(sample_lesson_path()))
    assert "передано 0 Б (0 %)" in again.output

    assert run("stop").exit_code == 0
    idle = json.loads(run("status", "--json").output)[0]["status"]
    assert idle["state"] == "idle"


def test_english_output_on_request(kiosk: KioskThread) -> None:
    result = run("--lang", "en", "panels", "add", kiosk.address)
    assert result.output.startswith("Saved Каб. 12")


def test_missing_lesson_path_is_a_clear_error(kiosk: KioskThread, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cast", str(tmp_path / "nope"), "--to", kiosk.address])
    assert result.exit_code == 1
    assert "nope: не найден. Проверьте путь к папке или файлу урока" in result.output


def test_file_of_unknown_kind_is_a_clear_error(kiosk: KioskThread, tmp_path: Path) -> None:
    odd = tmp_path / "data.bin"
    odd.write_bytes(bytes(range(256)) * 10)
    result = CliRunner().invoke(cli, ["cast", str(odd), "--to", kiosk.address])
    assert result.exit_code == 1
    assert "data.bin" in result.output


def test_corrupt_image_is_a_clear_error(kiosk: KioskThread, tmp_path: Path) -> None:
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    result = CliRunner().invoke(cli, ["cast", str(bad), "--to", kiosk.address])
    assert result.exit_code == 1
    assert "photo.png" in result.output


def test_what_can_be_shown_is_named_in_full(tmp_path: Path) -> None:
    from media.probe import SUPPORTED_KINDS

    for kind in ("PPTX", "DOCX", "ODP", "GIF", "SVG", "HTML5 lesson zips", "web links"):
        assert kind in SUPPORTED_KINDS
    unknown = tmp_path / "схема.cdr"
    unknown.write_bytes(b"\x00\x01RIFFCDR" + bytes(200))
    out = CliRunner().invoke(cli, ["cast", str(unknown), "--to", "127.0.0.1:9"]).output
    assert "схема.cdr: файлы такого вида панель не показывает." in out
    for named in ("презентацию или документ (PPTX, ODP, DOCX, ODT)", "GIF, SVG", "HTML5"):
        assert named in out
    assert "ссылку на его страницу" in out
    folder = tmp_path / "урок"
    folder.mkdir()
    (folder / "схема.cdr").write_bytes(unknown.read_bytes())
    out = CliRunner().invoke(cli, ["cast", str(folder), "--to", "127.0.0.1:9"]).output
    assert "Сохраните их как презентации или документы (PPTX" in out
    assert "ссылки на их страницы" in out
    helped = CliRunner().invoke(cli, ["--lang", "en", "cast", "--help"]).output
    for named in ("PPTX", "ODP", "DOCX", "GIF", "SVG", "HTML5 lessons", "web pages"):
        assert named in helped


def _bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_2_gb_text_file_is_refused_from_its_size_unread(tmp_path: Path) -> None:
    # Past its text head the file is a sparse hole of NUL bytes: read, it would be
    # refused as "unrecognised content" instead.
    path = tmp_path / "конспект.md"
    with path.open("wb") as f:
        f.write("Фотосинтез — это процесс. ".encode() * 400)
        f.truncate(2_000_000_000)
    before = _bytes_read()
    result = CliRunner().invoke(cli, ["cast", str(path), "--to", "127.0.0.1:9"])
    assert _bytes_read() - before < 1024 * 1024
    assert result.exit_code == 1
    assert "конспект.md: текстовый файл занимает 1,9 ГБ" in result.output
    assert "Разделите текст на несколько файлов или сократите его." in result.output


def test_a_file_over_the_size_limit_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "фильм.mp4"
    with path.open("wb") as f:
        f.truncate(limits.MAX_BLOB_BYTES + 1)
    result = CliRunner().invoke(cli, ["cast", str(path), "--to", "127.0.0.1:9"])
    assert result.exit_code == 1
    # Rounded, both sizes read "2,0 ГБ": the message gives them in bytes instead.
    assert "фильм.mp4: файл занимает 2147483649 Б, а можно не больше 2147483648 Б." in (
        result.output
    )
    assert "Уменьшите его (сожмите видео, разделите документ)" in result.output


def test_a_picture_over_the_pixel_limit_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "плакат.png"
    path.write_bytes(png_bytes(13000, 13000))
    result = CliRunner().invoke(cli, ["cast", str(path), "--to", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert "плакат.png: изображение размером 13000×13000 пикселей" in result.output
    assert "Уменьшите его в графическом редакторе" in result.output


def test_unknown_panel_name_is_a_clear_error() -> None:
    result = CliRunner().invoke(cli, ["next", "--to", "Каб. 404"])
    assert result.exit_code == 1
    assert "Панель не найдена: Каб. 404" in result.output


def test_ambiguous_panel_name_is_a_clear_error(tmp_path: Path) -> None:
    with KioskThread(tmp_path / "a") as a, KioskThread(tmp_path / "b") as b:
        run("panels", "add", a.address)
        run("panels", "add", b.address)
        result = CliRunner().invoke(cli, ["next", "--to", "Каб. 12"])
    assert result.exit_code == 1
    assert "Неоднозначное имя панели" in result.output
    assert a.address in result.output
    assert b.address in result.output


def test_no_target_and_no_previous_cast_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["next"])
    assert result.exit_code == 2
    assert "--to" in result.output


def test_offline_panel_fails_with_exit_1(kiosk: KioskThread) -> None:
    result = CliRunner().invoke(cli, ["--timeout", "2", "next", "--to", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert "127.0.0.1:9" in result.output


def test_panels_add_unreachable_saves_with_a_warning() -> None:
    result = run("--timeout", "2", "panels", "add", "127.0.0.1:9")
    assert result.exit_code == 0
    assert "не ответила" in result.output
    assert json.loads(run("panels", "--json", "--wait", "0").output)[0]["address"] == "127.0.0.1:9"
    removed = run("panels", "remove", "127.0.0.1:9")
    assert removed.exit_code == 0
    assert json.loads(run("panels", "--json", "--wait", "0").output) == []


def test_panels_add_bad_address_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["panels", "add", "host:99999"])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("text", "ms"),
    [("80", 80_000), ("1:20", 80_000), ("0:01:20", 80_000), ("2.5", 2_500), ("0", 0)],
)
def test_seek_times(text: str, ms: int) -> None:
    assert parse_time_ms(text) == ms


@pytest.mark.parametrize("text", ["", "abc", "1:75", "-3", "1::2", "1:2:3:4"])
def test_bad_seek_times(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_time_ms(text)


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        found[prefix + name] = command
        if isinstance(command, click.Group):
            found |= _commands(command, prefix + name + " ")
    return found


def _every_command() -> list[tuple[str, click.Command, types.ModuleType]]:
    """Every command of both CLIs, the top-level ones included, with its i18n module."""
    found: list[tuple[str, click.Command, types.ModuleType]] = []
    for prog, group, package in [
        ("classcast", cli, controller_i18n),
        ("classcast-kiosk", kiosk_main, kiosk_i18n),
    ]:
        assert isinstance(group, click.Group)
        found.append((prog, group, package))
        found += [(f"{prog} {name}", c, package) for name, c in _commands(group).items()]
    return found


@pytest.mark.parametrize(("lang", "example"), [("ru", "Пример:"), ("en", "Example:")])
def test_every_command_has_help_with_an_example(
    lang: str, example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLASSCAST_LANG", lang)
    for name, command, _ in _every_command():
        assert command.help, name
        assert example in command.help, name
        if lang == "ru":
            assert "Example" not in command.help, name


@pytest.mark.parametrize(
    ("args", "heading", "text"),
    [
        (["--help"], "Использование: classcast [OPTIONS]", "Показать эту справку и выйти."),
        (["cast", "--help"], "Параметры:", "Показать урок на панелях"),
        (["--lang", "en", "cast", "--help"], "Options:", "Show a lesson on panels"),
        (["--lang", "en", "--help"], "Commands:", "Show the version and exit."),
    ],
    ids=["ru", "ru-command", "en-command", "en"],
)
def test_help_follows_the_language(args: list[str], heading: str, text: str) -> None:
    result = CliRunner().invoke(cli, args, prog_name="classcast")
    assert result.exit_code == 0, result.output
    assert heading in result.output
    assert text in result.output


def test_kiosk_help_is_russian_by_default() -> None:
    result = CliRunner().invoke(kiosk_main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Название кабинета" in result.output
    assert "Команды:" in result.output


def test_every_command_is_in_the_cli_docs() -> None:
    from scripts.gen_cli_docs import DOC, render

    doc = DOC.read_text(encoding="utf-8")
    for name in _commands(cli):
        assert f"## `classcast {name}`" in doc, name
    assert doc == render(), "docs/cli.md is stale: run python -m scripts.gen_cli_docs"


def _literal_msgids(package: types.ModuleType) -> set[str]:
    """The messages of ``package`` written as literals: ``t("...")``, ``tr(lang, "...")``,
    the reports' ``_t("...", lang)``, ``named_t("...", panel=...)`` and ``N_("...")`` (a
    msgid kept for later)."""
    root = Path(package.__file__ or "").parent
    found = _template_msgids(root)
    for path in root.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        if path.name != "i18n.py" and f"from {root.name}.i18n import" not in source:
            continue  # a ``t`` of its own, if any, is not this catalogue's
        positions = {"t": 0, "tr": 1, "_t": 0, "N_": 0, "named_t": 0}
        for node in ast.walk(ast.parse(source)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            position = positions.get(node.func.id)
            if position is None or len(node.args) <= position:
                continue
            arg = node.args[position]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
    return found


def _template_msgids(root: Path) -> set[str]:
    """The ``{{ t("...") }}`` of the package's Jinja2 templates (the teacher's app)."""
    found = set()
    for path in root.rglob("templates/*.html"):
        with path.open("rb") as f:
            for _, _, message, _ in jinja2.ext.babel_extract(f, ("t",), (), {}):
                msgid = message if isinstance(message, str) else (message or (None,))[0]
                if isinstance(msgid, str):
                    found.add(msgid)
    return found


def _help_msgids(package: types.ModuleType) -> set[str]:
    """Every paragraph of the docstrings and ``help=`` of the package's CLI."""
    found = set()
    for _, command, command_package in _every_command():
        if command_package is package:
            assert isinstance(command, package.TranslatedCommand)
            found |= set(package.help_msgids(command.help_msgid or ""))
            options = [p for p in command.params if isinstance(p, package.TranslatedOption)]
            found |= {p.help_msgid for p in options if p.help_msgid}
    return found


# Messages translated from a variable: in the controller's output, the values of the
# protocol's enumerations (``t(s.state)``...). click's own words are in i18n/cli.py's
# catalogue (tests/test_i18n.py).
_PROTOCOL_WORDS = {
    word
    for literal in (ItemKind, ControlAction, PlayerState, EndReason, Role)
    for word in typing.get_args(literal)
}


@pytest.mark.parametrize("package", [controller_i18n, kiosk_i18n])
def test_every_message_the_cli_prints_has_a_russian_text(package: types.ModuleType) -> None:
    """Every ``t("...")`` and ``tr(lang, "...")`` of controller/ or kiosk/ is in its catalogue."""
    assert _literal_msgids(package)  # the search finds something
    assert sorted(_literal_msgids(package) - package.MESSAGES.catalogue_msgids()) == []


def test_every_word_of_the_protocol_the_cli_prints_has_a_russian_text() -> None:
    """Kinds, states, actions, end reasons and roles: ``t(s.state)`` and the like."""
    assert sorted(_PROTOCOL_WORDS - controller_i18n.MESSAGES.catalogue_msgids()) == []


def test_every_help_text_has_a_russian_text() -> None:
    """Docstrings and ``help=`` of both CLIs: every paragraph is in the catalogue."""
    missing = []
    for name, command, package in _every_command():
        assert isinstance(command, package.TranslatedCommand), name
        texts = [*package.help_msgids(command.help_msgid or "")]
        for param in command.params:
            if isinstance(param, click.Option):
                assert isinstance(param, package.TranslatedOption), f"{name} {param.name}"
                texts += [param.help_msgid] if param.help_msgid else []
        known = package.MESSAGES.catalogue_msgids()
        missing += [f"{name}: {text}" for text in texts if text not in known]
    assert missing == []


@pytest.mark.parametrize(
    ("package", "dynamic"),
    [(controller_i18n, _PROTOCOL_WORDS), (kiosk_i18n, set())],
)
def test_the_catalogue_holds_only_messages_in_use(
    package: types.ModuleType, dynamic: set[str]
) -> None:
    """A message no code uses any more is removed from the .po file, not left to rot."""
    used = _literal_msgids(package) | _help_msgids(package) | dynamic
    assert sorted(package.MESSAGES.catalogue_msgids() - used) == []


@pytest.mark.slow
def test_demo_runs_end_to_end() -> None:
    result = run("demo")
    assert result.exit_code == 0, result.output
    assert "Повторный показ: передано 0 Б" in result.output
    assert "Журнал использования панели (записей — 12)" in result.output  # blank: hidden
    assert "найдена через mDNS" in result.output
    assert "В школьную базу собрано записей: 12; подписи и цепочка: в порядке." in result.output
    assert "Отчёт по учителям:" in result.output
    assert "Демонстрация завершена." in result.output
    # The log and the reports are in one local time, the zone named.
    assert "Начало (Europe/Moscow)" in result.output
    assert "Часовой пояс: Europe/Moscow" in result.output
    assert "(UTC)" not in result.output


def test_pair_with_a_wrong_pin_then_the_right_one(kiosk: KioskThread) -> None:
    run("panels", "add", kiosk.address)
    right = kiosk.pin()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    bad = CliRunner().invoke(cli, ["pair", "Каб. 12", "--pin", wrong])
    assert bad.exit_code == 1
    assert "Неверный PIN" in bad.output
    assert run("pair", "Каб. 12", "--pin", right).exit_code == 0
    assert run("status", "Каб. 12").exit_code == 0


def test_pair_asks_for_the_pin(kiosk: KioskThread) -> None:
    run("panels", "add", kiosk.address)
    result = CliRunner().invoke(cli, ["pair", "Каб. 12"], input=kiosk.pin() + "\n")
    assert result.exit_code == 0, result.output
    assert "PIN с экрана панели" in result.output


def test_pin_must_have_six_digits(kiosk: KioskThread) -> None:
    result = CliRunner().invoke(cli, ["pair", kiosk.address, "--pin", "12ab"])
    assert result.exit_code == 2


def test_unpair_revokes_the_token_on_the_panel(kiosk: KioskThread) -> None:
    run("panels", "add", kiosk.address)
    assert run("pair", "Каб. 12", "--pin", kiosk.pin()).exit_code == 0
    assert run("status", "Каб. 12").exit_code == 0
    assert kiosk.app is not None
    assert len(kiosk.app.tokens.grants()) == 1
    result = run("unpair", "Каб. 12")
    assert result.exit_code == 0
    assert "Сопряжение с «Каб. 12» удалено." in result.output
    assert kiosk.app.tokens.grants() == []
    after = CliRunner().invoke(cli, ["status", "Каб. 12"])
    assert after.exit_code == 1
    assert "не сопряжён" in after.output


def test_pair_as_admin_with_the_admin_secret(kiosk: KioskThread) -> None:
    from tests.kiosks import ADMIN_SECRET

    run("panels", "add", kiosk.address)
    result = CliRunner().invoke(cli, ["pair", "Каб. 12", "--admin"], input=ADMIN_SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert "роль: администратор" in result.output


@pytest.mark.slow
def test_panels_lists_kiosks_found_by_mdns_and_pairs_by_room(tmp_path: Path) -> None:
    # A room name of its own: other kiosks may be advertising on this loopback.
    room = f"Каб. {os.getpid() % 1000}-{time.monotonic_ns() % 10_000}"
    with KioskThread(tmp_path / "k", room=room, mdns=True, mdns_interfaces=("127.0.0.1",)) as k:
        assert k.app is not None
        kiosk_id = k.app.identity.kiosk_id
        listed = run("panels", "--json", "--wait", "1.5")
        assert listed.exit_code == 0, listed.output
        (row,) = [r for r in json.loads(listed.output) if r["kiosk_id"] == kiosk_id]
        assert row["room"] == room
        assert row["address"] == k.address
        assert row["state"] == "idle"
        assert row["paired"] is False
        assert row["source"] == "mdns"
        assert row["fingerprint"] == k.app.tls.fingerprint
        # Nothing saved: the room name is resolved through mDNS.
        paired = run("pair", room.upper(), "--pin", k.pin())
        assert paired.exit_code == 0, paired.output
        cast = run("cast", str(sample_lesson_path()), "--to", room)
        assert cast.exit_code == 0, cast.output
        rows = json.loads(run("panels", "--json", "--wait", "1.5").output)
        (row,) = [r for r in rows if r["kiosk_id"] == kiosk_id]
        assert row["paired"] is True
        assert row["state"] == "playing"  # the TXT record follows the state
        human = run("panels", "--wait", "1.5")
        assert room in human.output


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_and_quiet_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.cli import _progress

    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    with _progress(1000) as make:
        assert make("a") is None
    assert quiet.getvalue() == ""

    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    with _progress(1000) as make:
        for target in ("a", "b"):
            update = make(target)
            assert update is not None
            update(250, 500)
            update(500, 500)
    out = tty.getvalue()
    assert "Передача материалов" in out
    assert "100%" in out
