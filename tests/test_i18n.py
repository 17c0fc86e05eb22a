"""The shared translation package: pure helpers, the catalogue factory, and click's words.

Which messages each program's catalogue must hold is checked against the code in
tests/test_cli.py, the files themselves in tests/test_catalogues.py.
"""

from __future__ import annotations

import ast
import gettext
import importlib
import inspect
import struct

import pytest
from babel.messages.pofile import read_po
from click.testing import CliRunner

from controller.cli import cli
from i18n import help_msgids, language, mo_msgids, translate, translate_help
from i18n.cli import CLICK_MESSAGES, CLICK_MODULES

# --------------------------------------------------------------------------- pure helpers


class Tagged:
    """A catalogue (``i18n.Catalogue``) that knows some messages, tagged ``ru:``."""

    def __init__(self, *known: str) -> None:
        self.known = set(known)

    def gettext(self, message: str, /) -> str:
        return f"ru: {message}" if message in self.known else message


def test_language_is_russian_unless_english_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLASSCAST_LANG", raising=False)
    assert language() == "ru"
    monkeypatch.setenv("CLASSCAST_LANG", "en_GB")
    assert language() == "en"
    monkeypatch.setenv("CLASSCAST_LANG", "de")
    assert language() == "ru"


def test_translate_fills_in_values_and_keeps_what_it_does_not_know() -> None:
    catalogue = Tagged("hi {name}")
    assert translate(catalogue, "hi {name}", name="x") == "ru: hi x"
    assert translate(catalogue, "bye {name}", name="x") == "bye x"
    assert translate(catalogue, "hi {name}") == "ru: hi {name}"  # no values: not formatted
    assert translate(Tagged(""), "") == ""  # gettext("") would be a catalogue's header


HELP = """Show a lesson
    on panels.

    Not known.

    Example:

        classcast cast ./lesson

    \b
    kept
    as is
    """


def test_help_is_translated_paragraph_by_paragraph() -> None:
    assert help_msgids(HELP) == ["Show a lesson on panels.", "Not known.", "Example:"]
    text = translate_help(Tagged("Show a lesson on panels.", "Example:"), HELP)
    assert text.split("\n\n") == [
        "ru: Show a lesson on panels.",
        "Not known.",  # kept as written
        "ru: Example:",
        "\b\n    classcast cast ./lesson",
        "\b\nkept\nas is",
    ]
    assert translate_help(Tagged(), HELP).split("\n\n")[0] == "Show a lesson\non panels."


def mo_file(msgids: list[str], order: str = "<") -> bytes:
    """A GNU .mo file whose translations are the msgids (``order``: struct's byte order)."""
    keys = [m.encode() for m in msgids]
    start = 28 + 16 * len(keys)
    table, data = b"", b""
    for key in keys:
        table += struct.pack(f"{order}2I", len(key), start + len(data))
        data += key + b"\0"
    header = struct.pack(f"{order}7I", 0x950412DE, 0, len(keys), 28, 28 + 8 * len(keys), 0, 0)
    return header + table + table + data


@pytest.mark.parametrize("order", ["<", ">"])
def test_mo_msgids_lists_a_catalogue_without_its_header(order: str) -> None:
    mo = mo_file(["", "Video", "one file\0{n} files"], order)
    assert mo_msgids(mo) == {"Video", "one file"}


@pytest.mark.parametrize(
    ("mo", "error"),
    [
        (b"\0" * 28, "bad magic number"),
        (mo_file(["Video"])[:12], "unpack_from"),
        (mo_file(["Video"])[:-3], "runs past the end"),
    ],
    ids=["magic", "header", "string"],
)
def test_mo_msgids_refuses_what_is_not_a_mo_file(mo: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        mo_msgids(mo)


# --------------------------------------------------------------------------- click's own words


def click_messages() -> set[str]:
    """Every message click writes through ``_()`` or ``ngettext()`` (singular msgids)."""
    found = set()
    for name in CLICK_MODULES:
        tree = ast.parse(inspect.getsource(importlib.import_module(f"click.{name}")))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("_", "ngettext")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return found


def test_click_words_go_through_the_shared_catalogue() -> None:
    for name in CLICK_MODULES:
        module = importlib.import_module(f"click.{name}")
        assert getattr(module, "_") is not gettext.gettext, name  # noqa: B009
        assert getattr(module, "ngettext", None) is not gettext.ngettext, name


def test_the_click_catalogue_holds_only_words_click_writes() -> None:
    """A click release that rewords a message makes this fail: translate the new text."""
    dynamic = {"required"}  # click writes ``_(extra["required"])``
    assert sorted(CLICK_MESSAGES.catalogue_msgids() - click_messages() - dynamic) == []


def test_click_plurals_follow_russian_rules() -> None:
    with CLICK_MESSAGES.mo_path().with_suffix(".po").open("rb") as f:
        plurals = [m for m in read_po(f) if isinstance(m.id, tuple)]
    assert plurals
    ru = CLICK_MESSAGES.catalogue("ru")
    one, many = "Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})"
    assert ru.ngettext(one, many, 1) == "Лишний аргумент: {args}"
    assert ru.ngettext(one, many, 3) == "Лишние аргументы: {args}"


def test_click_errors_are_russian_and_english_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(cli, ["nosuch"], prog_name="classcast")
    assert result.exit_code == 2
    assert "Ошибка: Нет такой команды: 'nosuch'." in result.output
    assert "Посмотрите справку: «classcast --help»." in result.output
    monkeypatch.setenv("CLASSCAST_LANG", "en")
    result = CliRunner().invoke(cli, ["nosuch"], prog_name="classcast")
    assert "Error: No such command 'nosuch'." in result.output
    assert "Try 'classcast --help' for help." in result.output
