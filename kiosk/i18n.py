"""Language of the panel's screen and of the ``classcast-kiosk`` command: Russian by default.

The same gettext scheme as ``controller/i18n.py``, with the kiosk's own domain
(``classcast-kiosk``): the kiosk does not depend on the controller. Messages are written
in English in the code and looked up in ``locale/ru/LC_MESSAGES/classcast-kiosk.mo``,
compiled from the ``.po`` file next to it by ``make catalogues`` (edit the ``.po``, then
compile, and commit both). English needs no catalogue.

Two languages are at play. Text on the panel's screen follows the panel's language, the
``--lang`` of ``classcast-kiosk`` (``tr(lang, ...)``); the command's ``--help`` follows
``CLASSCAST_LANG`` (``t(...)``), like the ``classcast`` command.
"""

from __future__ import annotations

import functools
import gettext
import logging
from collections.abc import Callable
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
    "option",
    "t",
    "tr",
]

_F = TypeVar("_F", bound=Callable[..., Any])

logger = logging.getLogger(__name__)

DOMAIN = "classcast-kiosk"
"""The gettext domain: the catalogue is ``locale/<lang>/LC_MESSAGES/classcast-kiosk.mo``."""

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
"""Where the kiosk's catalogues are: package data, in a checkout and an install alike."""


@functools.cache
def catalogue(lang: str) -> gettext.NullTranslations:
    """The kiosk's messages in ``lang`` (``ru`` or ``en``), loaded once per language.

    English has no catalogue: the msgids are the English texts, and the
    :class:`gettext.NullTranslations` returned passes them through. So does the
    fallback for a language whose ``.mo`` file is missing, with a warning logged.
    """
    found = gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)
    if lang != "en" and not isinstance(found, gettext.GNUTranslations):
        logger.warning("no %s catalogue in %s: showing English", lang, LOCALE_DIR)
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


def tr(lang: str, msgid: str, /, **values: object) -> str:
    """Translate ``msgid`` into ``lang`` (the panel's ``--lang``: ``ru`` or ``en``).

    Text on the panel's screen follows the kiosk's configured language, not the
    environment of whoever started it.
    """
    return translate(catalogue(lang), msgid, **values)


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
