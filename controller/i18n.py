"""Language of what the ``classcast`` command prints: Russian by default, English on request.

Messages are written in English in the code and looked up in the Russian catalogue
below, gettext style: ``t("Cast to {room}", room=...)``. The language is chosen by
``--lang`` or ``CLASSCAST_LANG`` (``ru`` or ``en``). A message missing from the
catalogue is printed in English; tests check that every message the CLI uses, and
every paragraph of its ``--help``, has a Russian text.

``--help`` is translated when it is shown, not when the commands are defined: the
commands, groups and options of the CLI are the classes below, whose ``help`` holds the
English text and reads it in the current language (see :mod:`protocol.i18n`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    "number_text",
    "option",
    "size_text",
    "t",
]

_F = TypeVar("_F", bound=Callable[..., Any])

RU: dict[str, str] = {
    "Cast to {room}: {sent} of {total} sent": "Показ в «{room}»: передано {sent} из {total}",
    "{room}: {action}": "{room}: {action}",
    "{target}: error: {message}": "{target}: ошибка: {message}",
    "Sending media": "Передача материалов",
    "No panel given: use --to PANEL or --all, or cast first.": (
        "Панель не указана: используйте --to ПАНЕЛЬ или --all либо сначала начните показ."
    ),
    "No saved panels: add one with `classcast panels add HOST[:PORT]`.": (
        "Нет сохранённых панелей: добавьте панель командой `classcast panels add АДРЕС[:ПОРТ]`."
    ),
    "Panel not found: {name}. Saved panels are listed by `classcast panels`.": (
        "Панель не найдена: {name}. Список сохранённых панелей: `classcast panels`."
    ),
    "Panel name is ambiguous: {detail}. Use the kiosk id or the address.": (
        "Неоднозначное имя панели: {detail}. Укажите идентификатор киоска или адрес."
    ),
    "Saved {room} ({address}, id {kiosk_id}).": "Сохранено: {room} ({address}, id {kiosk_id}).",
    "Saved {address}; the panel did not answer: {message}": (
        "Сохранено: {address}; панель не ответила: {message}"
    ),
    "Removed {address}.": "Удалено: {address}.",
    "Discovery is not available here: {message}": "Поиск панелей здесь недоступен: {message}",
    "No panels found: add one with `classcast panels add HOST[:PORT]`.": (
        "Панели не найдены: добавьте панель командой `classcast panels add АДРЕС[:ПОРТ]`."
    ),
    "Paired": "Сопряжена",
    "not seen": "не видна",
    "Online": "На связи",
    "Showing": "Показывает",
    "Last seen": "Последний ответ",
    "Cache": "Кэш",
    "Version": "Версия",
    "{seconds} s ago": "{seconds} с назад",
    "{room}: {added} new records ({duplicates} already stored).": (
        "{room}: новых записей — {added} (уже было — {duplicates})."
    ),
    "Give either --week or --from/--to.": "Укажите либо --week, либо --from/--to.",
    "--to is before --from.": "--to раньше, чем --from.",
    "{n} problems found.": "Найдено нарушений: {n}.",
    "All {n} records verified.": "Все записи проверены ({n}): подделок нет.",
    "Written to {path}.": "Записано в {path}.",
    "Show what panels display: PANEL, or every panel (saved or on the network).": (
        "Что показывают панели: панель PANEL или все панели (сохранённые и найденные в сети)."
    ),
    (
        "With --watch: online or offline, what each shows, who presents, when it last "
        "answered, cache use and version, kept current until Ctrl+C."
    ): (
        "С --watch: на связи ли панель, что показывает, кто ведёт показ, когда отвечала "
        "в последний раз, заполнение кэша и версия; обновляется до Ctrl+C."
    ),
    "Keep watching every panel and redraw on each change.": (
        "Следить за всеми панелями и обновлять таблицу при каждом изменении."
    ),
    "Collect the panels' usage logs and report on them (admins).": (
        "Сбор журналов использования с панелей и отчёты по ним (для администраторов)."
    ),
    "Pull new usage records from every panel into the school database.": (
        "Забрать новые записи журнала со всех панелей в школьную базу данных."
    ),
    (
        "Panels are the saved ones and those found on the network. Each needs this "
        "computer paired as admin (classcast pair PANEL --admin). Running it again, or "
        "after an interruption, loses nothing and stores nothing twice."
    ): (
        "Опрашиваются сохранённые панели и найденные в сети. Этот компьютер должен быть "
        "сопряжён с каждой как администратор (classcast pair ПАНЕЛЬ --admin). Повторный "
        "запуск, в том числе после обрыва, ничего не теряет и ничего не записывает дважды."
    ),
    "The school usage database (default: school.sqlite in CLASSCAST_HOME).": (
        "Школьная база данных использования (по умолчанию school.sqlite в CLASSCAST_HOME)."
    ),
    "Who showed what, where and for how long: lessons, display time, items.": (
        "Кто, что, где и сколько показывал: уроки, время показа, материалы."
    ),
    "ISO week such as 2026-W48 (default: this week).": (
        "Неделя ISO, например 2026-W48 (по умолчанию текущая)."
    ),
    "First day, YYYY-MM-DD.": "Первый день, ГГГГ-ММ-ДД.",
    "Last day, YYYY-MM-DD.": "Последний день, ГГГГ-ММ-ДД.",
    "What to group by.": "Как группировать.",
    "Output format; html is a self-contained page with charts.": (
        "Формат вывода; html — самостоятельная страница с диаграммами."
    ),
    "Write to this file instead of the terminal.": "Записать в этот файл, а не на экран.",
    "Which teachers gave enough lessons with digital content in a week.": (
        "Кто из учителей провёл за неделю достаточно уроков с цифровым контентом."
    ),
    (
        "A lesson counts when one teacher showed content on one panel for at least "
        "--min-minutes, with at least one item from a content source (docs/admin.md)."
    ): (
        "Урок засчитывается, если один учитель показывал материалы на одной панели не "
        "меньше --min-minutes и хотя бы один материал взят из библиотеки контента "
        "(docs/admin.md)."
    ),
    "Lessons with digital content each teacher should give in the week.": (
        "Сколько уроков с цифровым контентом учитель должен провести за неделю."
    ),
    "Display time a lesson needs to count.": "Сколько минут показа нужно, чтобы урок засчитался.",
    "Count lessons without a content-library source too.": (
        "Засчитывать и уроки без материалов из библиотеки контента."
    ),
    "Output format.": "Формат вывода.",
    "Check that no usage record in the school database was edited, deleted or inserted.": (
        "Проверить, что ни одна запись в школьной базе не изменена, не удалена и не вставлена."
    ),
    "Every record is signed by its panel and chained to the one before it.": (
        "Каждая запись подписана своей панелью и связана с предыдущей."
    ),
    "Collected {n} records into the school database; signatures and chain: {result}.": (
        "В школьную базу собрано записей: {n}; подписи и цепочка: {result}."
    ),
    "intact": "в порядке",
    "broken": "нарушены",
    "Report by teacher:": "Отчёт по учителям:",
    "Report by content:": "Отчёт по материалам:",
    "--thumbnail needs a PANEL.": "Для --thumbnail укажите панель.",
    "Save a PNG thumbnail of what PANEL shows to this file.": (
        "Сохранить в этот файл снимок (PNG) того, что показывает панель."
    ),
    "With --thumbnail FILE: a PNG thumbnail of what PANEL shows.": (
        "С --thumbnail ФАЙЛ: снимок (PNG) того, что показывает панель."
    ),
    "Give the TEXT to announce, or --clear.": "Укажите ТЕКСТ объявления или --clear.",
    "announcement removed": "объявление снято",
    "announced": "объявление показано",
    "Show an announcement over what panels show, or remove it (--clear).": (
        "Показать объявление поверх изображения на панелях или снять его (--clear)."
    ),
    "Over another teacher's lesson this needs the admin role.": (
        "Поверх урока другого учителя — только с правами администратора."
    ),
    "info: a banner at the bottom; alert: the whole screen.": (
        "info — полоса внизу экрана; alert — на весь экран."
    ),
    "Remove it after this many seconds (default: until cleared).": (
        "Снять через столько секунд (по умолчанию — пока не снимут)."
    ),
    "Remove the announcement instead.": "Снять объявление.",
    "Room": "Кабинет",
    "School": "Школа",
    "Address": "Адрес",
    "Kiosk id": "ID киоска",
    "State": "Состояние",
    "Lesson": "Урок",
    "Item": "Элемент",
    "Presenter": "Ведёт",
    "Blanked": "Экран погашен",
    "idle": "ожидание",
    "loading": "загрузка",
    "playing": "показ",
    "paused": "пауза",
    "yes": "да",
    "no": "нет",
    "next": "вперёд",
    "prev": "назад",
    "goto": "переход",
    "pause": "пауза",
    "play": "продолжить",
    "seek": "перемотка",
    "blank": "экран погашен",
    "unblank": "экран включён",
    "stop": "показ остановлен",
    "{done} of {count} panels failed.": "Не выполнено на {done} из {count} панелей.",
    "Lesson «{title}»: {items} items, {size}; sent {sent} ({percent} %) to {room}.": (
        "Урок «{title}»: элементов — {items}, {size}; передано {sent} ({percent} %) в «{room}»."
    ),
    "Bad time {value!r}: use SECONDS, MM:SS or HH:MM:SS.": (
        "Неверное время {value!r}: укажите СЕКУНДЫ, ММ:СС или ЧЧ:ММ:СС."
    ),
    "Item numbers start at 1.": "Номера элементов начинаются с 1.",
    "This computer is not paired with the panel: run `classcast pair {panel}`.": (
        "Этот компьютер не сопряжён с панелью: выполните `classcast pair {panel}`."
    ),
    "This needs the admin role: pair with `classcast pair {panel} --admin`.": (
        "Нужны права администратора: выполните `classcast pair {panel} --admin`."
    ),
    "Another teacher is presenting on this panel: {message}": (
        "На этой панели ведёт показ другой учитель: {message}"
    ),
    "Wrong PIN. Check the PIN shown on the panel and try again.": (
        "Неверный PIN. Проверьте PIN на экране панели и попробуйте снова."
    ),
    "Too many wrong PINs: pairing is locked for a while. {message}": (
        "Слишком много неверных PIN: сопряжение временно заблокировано. {message}"
    ),
    "The panel's certificate changed since pairing: {message}": (
        "Сертификат панели изменился после сопряжения: {message}"
    ),
    "Admin secret of the panel": "Секрет администратора панели",
    "PIN shown on the panel": "PIN с экрана панели",
    "The PIN has 6 digits.": "PIN состоит из 6 цифр.",
    "Paired with {room} as {role}.": "Сопряжено с «{room}», роль: {role}.",
    "teacher": "учитель",
    "admin": "администратор",
    "The panel did not answer ({message}); the pairing is forgotten here only.": (
        "Панель не ответила ({message}); сопряжение удалено только на этом компьютере."
    ),
    "Unpaired from {panel}.": "Сопряжение с «{panel}» удалено.",
    # demo
    "Starting a kiosk on {url} (state in {state_dir})": (
        "Запуск киоска на {url} (данные в {state_dir})"
    ),
    "Added the panel {room} at {address}.": "Панель «{room}» добавлена по адресу {address}.",
    "Found the panel {room} by mDNS at {address}, {seconds} s after the kiosk started.": (
        "Панель «{room}» найдена через mDNS по адресу {address} через {seconds} с после запуска."
    ),
    "The panel {room} shows the pairing PIN {pin}.": "Панель «{room}» показывает PIN {pin}.",
    "Casting the sample lesson «{title}» ({items} items, {size})...": (
        "Показ учебного урока «{title}» (элементов — {items}, {size})..."
    ),
    "Sent {sent} of {total}; the panel shows item {index} of {count}: {title}": (
        "Передано {sent} из {total}; на панели элемент {index} из {count}: {title}"
    ),
    "Casting again: sent {sent} (the panel keeps its copy).": (
        "Повторный показ: передано {sent} (материалы уже на панели)."
    ),
    "→ {action}: item {index} of {count}: {kind} «{title}»": (
        "→ {action}: элемент {index} из {count}: {kind} «{title}»"
    ),
    "Stopped; the panel shows its idle screen.": "Показ остановлен; на панели экран ожидания.",
    "Usage log of the panel ({n} records):": "Журнал использования панели (записей — {n}):",
    "#": "№",
    "Start (UTC)": "Начало (UTC)",
    "Duration, s": "Длит., с",
    "Kind": "Тип",
    "Content": "Материал",
    "Teacher": "Учитель",
    "End": "Окончание",
    "Demo finished.": "Демонстрация завершена.",
    "image": "изображение",
    "pdf": "PDF",
    "video": "видео",
    "web": "веб-страница",
    "text": "текст",
    "auto": "авто",
    "replaced": "заменён",
    "end": "конец урока",
    "power_loss": "сбой питания",
    "shutdown": "выключение",
    "error": "ошибка",
    # --help: click's own words
    "Usage:": "Использование:",
    "Options": "Параметры",
    "Commands": "Команды",
    "Show this message and exit.": "Показать эту справку и выйти.",
    "Show the version and exit.": "Показать версию и выйти.",
    "default: {default}": "по умолчанию: {default}",
    "required": "обязательно",
    "env var: {var}": "переменная окружения: {var}",
    "Example:": "Пример:",
    # --help: classcast
    "Cast lessons to classroom panels and control them.": (
        "Показ уроков на панелях в классах и управление ими."
    ),
    "Your name as panels log it.": "Ваше имя для журнала панелей.",
    "Language of the output.": "Язык сообщений.",
    "Seconds to wait for a panel's answer.": "Сколько секунд ждать ответа панели.",
    "Every saved panel.": "Все сохранённые панели.",
    "Room name, kiosk id or HOST:PORT (default: the panels of the last cast).": (
        "Кабинет, ID киоска или АДРЕС:ПОРТ (по умолчанию — панели последнего показа)."
    ),
    # cast
    "Show a lesson on panels: a folder, a lesson.toml, or files.": (
        "Показать урок на панелях: папка, lesson.toml или файлы."
    ),
    "Only media the panel does not have yet is sent. With several panels the lesson starts "
    "on all of them at the same moment.": (
        "Передаются только материалы, которых ещё нет на панели. Если панелей несколько, "
        "урок начинается на всех одновременно."
    ),
    "Item number to start at (1 = first).": "С какого элемента начать (1 — с первого).",
    # control
    "Go to the next item.": "Перейти к следующему элементу.",
    "Go back to the previous item.": "Вернуться к предыдущему элементу.",
    "Pause (a video stops; a timed slide stops counting).": (
        "Пауза: видео и слайды с таймером останавливаются."
    ),
    "Continue after pause.": "Продолжить после паузы.",
    "Black out the screen; the lesson stays loaded.": (
        "Погасить экран; урок остаётся загруженным."
    ),
    "Show the lesson again after blank.": "Снова показать урок после blank.",
    "End the lesson; the panel shows its idle screen.": (
        "Завершить урок; панель покажет экран ожидания."
    ),
    "Jump to item NUMBER (1 = first).": "Перейти к элементу номер NUMBER (1 — первый).",
    "Move within the current item (a video) to TIME: SECONDS, MM:SS or HH:MM:SS.": (
        "Перемотать текущее видео на TIME: СЕКУНДЫ, ММ:СС или ЧЧ:ММ:СС."
    ),
    # status, panels
    "Machine-readable output (see docs/cli.md).": (
        "Вывод в формате JSON для программ (см. docs/cli.md)."
    ),
    "Machine-readable output.": "Вывод в формате JSON для программ.",
    "Show what panels display: PANEL, or every saved panel.": (
        "Что показывают панели: панель PANEL или все сохранённые."
    ),
    "Seconds to look for panels on the network (mDNS).": (
        "Сколько секунд искать панели в сети (mDNS)."
    ),
    "List the panels on the network (mDNS) and the saved ones; add or remove saved ones.": (
        "Панели в сети (mDNS) и сохранённые: список, добавление, удаление."
    ),
    "Shows room, school, state, address, and whether this computer is paired with it. "
    "Where mDNS does not work, add a panel by the address shown on its screen.": (
        "Для каждой панели — кабинет, школа, состояние, адрес и сопряжён ли с ней этот "
        "компьютер. Если mDNS в сети не работает, добавьте панель по адресу, который "
        "показан на её экране."
    ),
    "Save a panel by address (for networks where discovery does not work).": (
        "Сохранить панель по адресу (если поиск в сети не работает)."
    ),
    "The panel's room and id are read from it when it answers.": (
        "Кабинет и ID панели запрашиваются у неё самой, когда она отвечает."
    ),
    "Forget a saved panel (room name, kiosk id or address).": (
        "Удалить сохранённую панель (по кабинету, ID киоска или адресу)."
    ),
    # pair, unpair
    "Pair this computer with a panel, using the PIN the panel shows.": (
        "Сопрячь этот компьютер с панелью по PIN-коду, который она показывает."
    ),
    "Nobody can control a panel without pairing. The PIN never travels over the network, "
    "and the panel's certificate is pinned so that later connections go to the same panel.": (
        "Без сопряжения управлять панелью нельзя. PIN-код не передаётся по сети, а "
        "сертификат панели запоминается, чтобы следующие подключения шли к той же панели."
    ),
    "The 6-digit PIN shown on the panel (asked for when omitted).": (
        "PIN-код из 6 цифр с экрана панели (если не указан, будет запрошен)."
    ),
    "Pair as admin with the panel's admin secret instead of the PIN.": (
        "Сопрячь с правами администратора: по секрету администратора панели вместо PIN-кода."
    ),
    "Forget a pairing here and revoke its token on the panel.": (
        "Отменить сопряжение: здесь и на самой панели."
    ),
    # demo
    "Start a kiosk on this machine, cast the sample lesson, step through it, print the log.": (
        "Запустить киоск на этом компьютере, показать на нём учебный урок, пройти его по "
        "шагам и вывести журнал."
    ),
    "Keep the kiosk's state in this folder (default: a temporary one).": (
        "Хранить данные киоска в этой папке (по умолчанию — во временной)."
    ),
    "Everything stays on 127.0.0.1; nothing is installed or sent elsewhere.": (
        "Всё происходит только на 127.0.0.1: ничего не устанавливается и никуда не отправляется."
    ),
}


def t(msgid: str, /, **values: object) -> str:
    """Translate ``msgid`` into the current language and fill in ``values``."""
    return translate(RU, msgid, **values)


def number_text(value: float, digits: int = 2) -> str:
    """A decimal number for people: ``1,25`` in Russian, ``1.25`` in English."""
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if language() == "ru" else text


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows (the first is the header) as left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def size_text(size_bytes: int) -> str:
    """A byte count for people: ``1.5 МБ`` / ``1.5 MB``."""
    ru = language() == "ru"
    units = ["Б", "КБ", "МБ", "ГБ"] if ru else ["B", "KB", "MB", "GB"]
    value = float(size_bytes)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            text = f"{value:.0f} {unit}" if unit == units[0] else f"{value:.1f} {unit}"
            return text.replace(".", ",") if ru else text
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- --help
#
# The same few classes are in kiosk/i18n.py with the kiosk's catalogue: the kiosk does
# not depend on the controller, and protocol/ (shared by both) knows nothing of click.


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
