"""Language of what the ``classcast`` command prints: Russian by default, English on request.

Messages are written in English in the code and looked up in the Russian catalogue
below, gettext style: ``t("Cast to {room}", room=...)``. The language is chosen by
``--lang`` or ``CLASSCAST_LANG`` (``ru`` or ``en``). A message missing from the
catalogue is printed in English; a test checks that every message the CLI uses has a
Russian text.
"""

from __future__ import annotations

import os

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
    # demo
    "Starting a kiosk on {url} (state in {state_dir})": (
        "Запуск киоска на {url} (данные в {state_dir})"
    ),
    "Added the panel {room} at {address}.": "Панель «{room}» добавлена по адресу {address}.",
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
}


def language() -> str:
    """``ru`` unless ``CLASSCAST_LANG`` says ``en``."""
    return "en" if os.environ.get("CLASSCAST_LANG", "ru").lower().startswith("en") else "ru"


def t(msgid: str, /, **values: object) -> str:
    """Translate ``msgid`` into the current language and fill in ``values``."""
    text = RU.get(msgid, msgid) if language() == "ru" else msgid
    return text.format(**values) if values else text


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
