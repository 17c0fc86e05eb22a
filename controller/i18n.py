"""Language of what the ``classcast`` command prints: Russian by default, English on request.

Messages are written in English in the code, ``t("Cast to {room}", room=...)``, and
looked up in the ``classcast`` domain's Russian catalogue,
``locale/ru/LC_MESSAGES/classcast.mo`` (see :mod:`i18n` for the scheme, and
:mod:`i18n.cli` for ``--help`` and click's own words). Edit the ``.po`` file next to
it, run ``make catalogues``, and commit both. The language is chosen by ``--lang`` or
``CLASSCAST_LANG`` (``ru`` or ``en``). A message missing from the catalogue is printed
in English; tests check that every message the CLI uses, and every paragraph of its
``--help``, has a Russian text, and that the catalogue holds nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from i18n import N_, Messages, help_msgids, language
from i18n import cli as i18n_cli

__all__ = [
    "MESSAGES",
    "N_",
    "TranslatedCommand",
    "TranslatedGroup",
    "TranslatedOption",
    "help_msgids",
    "language",
    "number_text",
    "option",
    "size_text",
    "t",
    "text_table",
]

MESSAGES = Messages("classcast", Path(__file__).resolve().parent / "locale")
"""The controller's catalogues: ``locale/<lang>/LC_MESSAGES/classcast.mo``."""

t = MESSAGES.t
"""Translate a msgid into the current language and fill in its values."""


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


class TranslatedOption(i18n_cli.TranslatedOption):
    """An option whose ``help`` is the English text in code and shown translated."""

    messages = MESSAGES


option = i18n_cli.option_maker(TranslatedOption)
"""``click.option`` making a :class:`TranslatedOption`."""


class TranslatedCommand(i18n_cli.TranslatedCommand):
    """A command whose help (its docstring) is the English text, shown translated."""

    messages = MESSAGES


class TranslatedGroup(TranslatedCommand, click.Group):
    """A group of translated commands (``@group.command()``, ``@group.group()``)."""

    command_class = TranslatedCommand
    group_class = type
