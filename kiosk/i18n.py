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

from protocol.i18n import help_msgids, language, mo_msgids, translate, translate_help

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
        if self.help_msgid is None:
            return None
        return translate_help(catalogue(language()), self.help_msgid)

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
