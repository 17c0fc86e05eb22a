"""Language of the panel's screen and of the ``classcast-kiosk`` command: Russian by default.

The same scheme as ``controller/i18n.py`` (see :mod:`i18n`), with the kiosk's own domain
(``classcast-kiosk``): the kiosk does not depend on the controller. Messages are written
in English in the code and looked up in ``locale/ru/LC_MESSAGES/classcast-kiosk.mo``,
compiled from the ``.po`` file next to it by ``make catalogues`` (edit the ``.po``, then
compile, and commit both). English needs no catalogue.

Two languages are at play. Text on the panel's screen follows the panel's language, the
``--lang`` of ``classcast-kiosk`` (``tr(lang, ...)``); the command's own output and
``--help`` follow ``CLASSCAST_LANG`` (``t(...)``), like the ``classcast`` command.
"""

from __future__ import annotations

from pathlib import Path

import click

from i18n import Messages, help_msgids, language
from i18n import cli as i18n_cli

__all__ = [
    "MESSAGES",
    "TranslatedCommand",
    "TranslatedGroup",
    "TranslatedOption",
    "help_msgids",
    "language",
    "option",
    "t",
    "tr",
]

MESSAGES = Messages("classcast-kiosk", Path(__file__).resolve().parent / "locale")
"""The kiosk's catalogues: ``locale/<lang>/LC_MESSAGES/classcast-kiosk.mo``."""

t = MESSAGES.t
"""Translate a msgid into the current language (``CLASSCAST_LANG``), values filled in."""

tr = MESSAGES.tr
"""Translate a msgid into a given language (the panel's ``--lang``: ``ru`` or ``en``).

Text on the panel's screen follows the kiosk's configured language, not the environment
of whoever started it."""


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
