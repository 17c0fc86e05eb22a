"""Language of what the ``classcast`` command prints: Russian by default, English on request.

GNU gettext: messages are written in English in the code, ``t("Cast to {room}",
room=...)``, and looked up in the ``classcast`` domain's Russian catalogue,
``locale/ru/LC_MESSAGES/classcast.mo``. That file is compiled from the ``.po`` file
next to it by ``make catalogues``: edit the ``.po``, compile, and commit both. The
language is chosen by ``--lang`` or ``CLASSCAST_LANG`` (``ru`` or ``en``); English needs
no catalogue. A message missing from the catalogue is printed in English; tests check
that every message the CLI uses, and every paragraph of its ``--help``, has a Russian
text, and that the catalogue holds nothing else.

``--help`` is translated when it is shown, not when the commands are defined: the
commands, groups and options of the CLI are the classes below, whose ``help`` holds the
English text and reads it in the current language (see :mod:`protocol.i18n`).
"""

from __future__ import annotations

import functools
import gettext
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from protocol import cli_help
from protocol.i18n import Catalogue, help_msgids, language, mo_msgids, translate

__all__ = [
    "DOMAIN",
    "LOCALE_DIR",
    "TranslatedCommand",
    "TranslatedGroup",
    "TranslatedOption",
    "catalogue",
    "catalogue_msgids",
    "help_msgids",
    "language",
    "number_text",
    "option",
    "size_text",
    "t",
]

_F = TypeVar("_F", bound=Callable[..., Any])

logger = logging.getLogger(__name__)

DOMAIN = "classcast"
"""The gettext domain: the catalogue is ``locale/<lang>/LC_MESSAGES/classcast.mo``."""

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
"""Where the controller's catalogues are: package data, in a checkout and an install alike."""


@functools.cache
def catalogue(lang: str) -> gettext.NullTranslations:
    """The controller's messages in ``lang`` (``ru`` or ``en``), loaded once per language.

    English has no catalogue: the msgids are the English texts, and the
    :class:`gettext.NullTranslations` returned passes them through. So does the
    fallback for a language whose ``.mo`` file is missing, with a warning logged.
    """
    found = gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)
    if lang != "en" and not isinstance(found, gettext.GNUTranslations):
        logger.warning("no %s catalogue in %s: printing English", lang, LOCALE_DIR)
    return found


def catalogue_msgids(lang: str = "ru") -> frozenset[str]:
    """Every msgid the compiled catalogue of ``lang`` translates (for tests and tools).

    Raises:
        OSError: there is no compiled catalogue for ``lang``.
    """
    return mo_msgids((LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo").read_bytes())


def t(msgid: str, /, **values: object) -> str:
    """Translate ``msgid`` into the current language and fill in ``values``."""
    return translate(catalogue(language()), msgid, **values)


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
# The classes of protocol.cli_help, with this program's catalogue.


class TranslatedOption(cli_help.TranslatedOption):
    """An option whose ``help`` is the English text in code and shown translated."""

    def catalogues(self, lang: str) -> Catalogue:
        return catalogue(lang)


def option(*param_decls: str, **attrs: Any) -> Callable[[_F], _F]:
    """``click.option`` making a :class:`TranslatedOption`."""
    return click.option(*param_decls, cls=TranslatedOption, **attrs)


class TranslatedCommand(cli_help.TranslatedCommand):
    """A command whose help (its docstring) is the English text, shown translated."""

    def catalogues(self, lang: str) -> Catalogue:
        return catalogue(lang)


class TranslatedGroup(TranslatedCommand, click.Group):
    """A group of translated commands (``@group.command()``, ``@group.group()``)."""

    command_class = TranslatedCommand
    group_class = type
