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
    "Discovery is not available here: {message}": "Поиск панелей здесь недоступен: {message}",
    "No panels found: add one with `classcast panels add HOST[:PORT]`.": (
        "Панели не найдены: добавьте панель командой `classcast panels add АДРЕС[:ПОРТ]`."
    ),
    "Paired": "Сопряжена",
    "not seen": "не видна",
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
}


def language() -> str:
    """``ru`` unless ``CLASSCAST_LANG`` says ``en``."""
    return "en" if os.environ.get("CLASSCAST_LANG", "ru").lower().startswith("en") else "ru"


def t(msgid: str, /, **values: object) -> str:
    """Translate ``msgid`` into the current language and fill in ``values``."""
    text = RU.get(msgid, msgid) if language() == "ru" else msgid
    return text.format(**values) if values else text


def number_text(value: float, digits: int = 2) -> str:
    """A decimal number for people: ``1,25`` in Russian, ``1.25`` in English."""
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if language() == "ru" else text


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
