"""Language of the ``classcast-kiosk`` command's ``--help``: Russian by default.

The same scheme as ``controller/i18n.py`` (English in the code, looked up in the
Russian catalogue below; ``CLASSCAST_LANG=en`` for English), with the kiosk's own
catalogue: the kiosk does not depend on the controller. ``--lang`` of
``classcast-kiosk`` is the language of the panel, not of this command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from protocol.i18n import help_msgids, language, translate, translate_help

__all__ = [
    "RU",
    "TranslatedCommand",
    "TranslatedGroup",
    "TranslatedOption",
    "help_msgids",
    "language",
    "option",
    "t",
    "tr",
]

_F = TypeVar("_F", bound=Callable[..., Any])

RU: dict[str, str] = {
    "Web page «{title}» is open": "Открыта веб-страница «{title}»",
    # --help: click's own words
    "Usage:": "Использование:",
    "Options": "Параметры",
    "Commands": "Команды",
    "Show this message and exit.": "Показать эту справку и выйти.",
    "default: {default}": "по умолчанию: {default}",
    "required": "обязательно",
    "env var: {var}": "переменная окружения: {var}",
    "Example:": "Пример:",
    # classcast-kiosk
    "Run the kiosk of one classroom panel (or manage it: see the commands).": (
        "Запустить киоск панели в классе (или управлять им: см. команды)."
    ),
    "Settings file (kiosk.toml).": "Файл настроек (kiosk.toml).",
    "Room name shown on the panel and used to find it.": (
        "Название кабинета: показывается на панели, по нему панель находят в сети."
    ),
    "School name shown on the panel.": "Название школы, которое показывается на панели.",
    "Address to listen on (default 0.0.0.0).": (
        "Адрес для входящих подключений (по умолчанию 0.0.0.0)."
    ),
    "Port to listen on (0 = any free port).": "Порт для подключений (0 — любой свободный).",
    "Where media and logs live.": "Папка для материалов и журналов.",
    "Fullscreen window (the default).": "Окно во весь экран (по умолчанию).",
    "A normal window.": "Обычное окно.",
    "No window (servers, tests).": "Без окна (для серверов и тестов).",
    "Language of the panel.": "Язык панели.",
    "Log debug messages.": "Записывать в журнал отладочные сообщения.",
    # tokens
    "List or revoke the controllers paired with this panel.": (
        "Сопряжённые компьютеры учителей: список и отзыв сопряжения."
    ),
    "Machine-readable output.": "Вывод в формате JSON для программ.",
    "Show every paired controller: id, name, role, when it paired.": (
        "Показать все сопряжённые компьютеры: ID, имя, роль и время сопряжения."
    ),
    "Revoke pairings by controller id, teacher name, or token-hash prefix (8+ chars).": (
        "Отозвать сопряжение по ID компьютера, имени учителя или началу хеша токена "
        "(не меньше 8 символов)."
    ),
    "Takes effect at once, also in a running kiosk and on its open connections.": (
        "Действует сразу, в том числе в работающем киоске и на его открытых подключениях."
    ),
    # on the panel's screen (kiosk.scenes, kiosk.window)
    "Could not show «{title}»": "Не удалось показать «{title}»",
    "The file is damaged or missing. The lesson goes on.": (
        "Файл повреждён или отсутствует. Урок продолжается."
    ),
    "Pairing code": "Код для подключения",
    "Video": "Видео",
    "Web page": "Веб-страница",
    "Press Esc again to stop the show": "Нажмите Esc ещё раз, чтобы остановить показ",
}


def t(msgid: str, /, **values: object) -> str:
    """Translate ``msgid`` into the current language and fill in ``values``."""
    return translate(RU, msgid, **values)


def tr(lang: str, msgid: str, /, **values: object) -> str:
    """Translate ``msgid`` into ``lang`` (the panel's ``--lang``: ``ru`` or ``en``).

    Text on the panel's screen follows the kiosk's configured language, not the
    environment of whoever started it.
    """
    text = RU.get(msgid, msgid) if lang == "ru" else msgid
    return text.format(**values) if values else text


# --------------------------------------------------------------------------- --help
#
# The same few classes as in controller/i18n.py, with the kiosk's catalogue: the kiosk
# does not depend on the controller, and protocol/ (shared by both) knows nothing of click.


class _HelpFormatter(click.HelpFormatter):
    """click's formatter with its own words translated: "Usage:", "Options", "Commands"."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, f"{t('Usage:')} " if prefix is None else prefix)

    def write_heading(self, heading: str) -> None:
        super().write_heading(t(heading))  # click's "Options", "Commands"


class _Context(click.Context):
    formatter_class = _HelpFormatter


def _option_extras(text: str) -> str:
    """click's ``[default: 10.0]`` after an option's help, in the current language."""
    head, bracket, tail = text.rpartition("[")
    if not bracket or not tail.endswith("]") or language() != "ru":
        return text
    items = []
    for item in tail[:-1].split("; "):
        label, _, value = item.partition(": ")
        if item == "required":
            items.append(t("required"))
        elif label == "default":
            items.append(t("default: {default}", default=value))
        elif label == "env var":
            items.append(t("env var: {var}", var=value))
        else:  # a range such as "x>=0"
            items.append(item)
    return f"{head}[{'; '.join(items)}]"


class TranslatedOption(click.Option):
    """An option whose ``help`` is the English text in code and shown translated."""

    help_msgid: str | None = None

    @property
    def help(self) -> str | None:
        return None if self.help_msgid is None else t(self.help_msgid)

    @help.setter
    def help(self, value: str | None) -> None:
        self.help_msgid = value

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        return None if record is None else (record[0], _option_extras(record[1]))


def option(*param_decls: str, **attrs: Any) -> Callable[[_F], _F]:
    """``click.option`` making a :class:`TranslatedOption`."""
    return click.option(*param_decls, cls=TranslatedOption, **attrs)


class TranslatedCommand(click.Command):
    """A command whose help (its docstring) is the English text, shown translated.

    Subcommands of a :class:`TranslatedGroup` are of this class. The text of its
    ``--help`` option, which click makes, is translated too.
    """

    context_class = _Context
    help_msgid: str | None = None

    @property
    def help(self) -> str | None:
        return None if self.help_msgid is None else translate_help(RU, self.help_msgid)

    @help.setter
    def help(self, value: str | None) -> None:
        self.help_msgid = value

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        help_option = super().get_help_option(ctx)
        if help_option is not None:  # made by click, with click's English text
            help_option.help = t("Show this message and exit.")
        return help_option


class TranslatedGroup(TranslatedCommand, click.Group):
    """A group of translated commands (``@group.command()``, ``@group.group()``)."""

    command_class = TranslatedCommand
    group_class = type
