"""click in the current language, for the commands of both programs.

Two kinds of text are translated here:

- a program's own help (docstrings, ``help=``), English in the code and translated when
  shown, not when the commands are defined, so that a ``--lang`` given on the command
  line applies. Each program subclasses the classes below with its catalogue::

      class TranslatedCommand(cli.TranslatedCommand):
          messages = MESSAGES

- click's own words: ``Error: …``, ``Try '… --help' for help.``, ``Missing argument``,
  ``Aborted!``, ``Usage:``, ``Options``… click writes them in English through the stdlib
  :func:`gettext.gettext` and :func:`gettext.ngettext`, which each of its modules binds
  to a module-level name (``_``, ``ngettext``) when imported. Importing this module binds
  those names to :data:`CLICK_MESSAGES` in the current language instead: one catalogue,
  ``i18n/locale/ru/LC_MESSAGES/classcast-click.po``, for both programs. A click message
  missing from it stays English; ``tests/test_messages_ru.py`` walks the error paths
  the commands can reach.
"""

from __future__ import annotations

import gettext
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click

from i18n import Messages, language, translate_help

__all__ = [
    "CLICK_MESSAGES",
    "CLICK_MODULES",
    "TranslatedCommand",
    "TranslatedGroup",
    "TranslatedOption",
    "option_maker",
]

_F = TypeVar("_F", bound=Callable[..., Any])

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
"""Where the catalogue of click's own words is: package data, like the programs' ones."""

CLICK_MESSAGES = Messages("classcast-click", LOCALE_DIR)
"""click's own words (msgids as click writes them), shared by both programs."""

CLICK_MODULES = ("core", "decorators", "exceptions", "formatting", "parser", "termui", "types")
"""The click modules whose messages can reach a user of ClassCast's commands."""


def _click_gettext(message: str) -> str:
    return CLICK_MESSAGES.catalogue(language()).gettext(message) if message else message


def _click_ngettext(singular: str, plural: str, n: int) -> str:
    return CLICK_MESSAGES.catalogue(language()).ngettext(singular, plural, n)


def _install_click_translation() -> None:
    """Make click's messages follow :func:`i18n.language` (idempotent).

    Raises:
        RuntimeError: a click module no longer binds the stdlib ``gettext`` as ``_``
            (a click release that translates otherwise: adapt this module).
    """
    for name in CLICK_MODULES:
        module = importlib.import_module(f"click.{name}")
        if getattr(module, "_", None) not in (gettext.gettext, _click_gettext):
            raise RuntimeError(f"click.{name} does not use gettext.gettext as _")
        setattr(module, "_", _click_gettext)  # noqa: B010 - click's name, not ours
        if hasattr(module, "ngettext"):
            setattr(module, "ngettext", _click_ngettext)  # noqa: B010


_install_click_translation()


class TranslatedOption(click.Option):
    """An option whose ``help`` is the English text in code and shown translated."""

    messages: ClassVar[Messages | None] = None
    """The program's catalogues; subclasses set theirs (``None``: English)."""

    help_msgid: str | None = None

    @property
    def help(self) -> str | None:
        if self.help_msgid is None or self.messages is None:
            return self.help_msgid
        return self.messages.t(self.help_msgid)

    @help.setter
    def help(self, value: str | None) -> None:
        self.help_msgid = value


def option_maker(cls: type[TranslatedOption]) -> Callable[..., Callable[[_F], _F]]:
    """A ``click.option`` making options of ``cls`` (a program's :class:`TranslatedOption`)."""

    def option(*param_decls: str, **attrs: Any) -> Callable[[_F], _F]:
        return click.option(*param_decls, cls=cls, **attrs)

    return option


class TranslatedCommand(click.Command):
    """A command whose help (its docstring) is the English text, shown translated.

    Subcommands of a translated group are of the program's subclass. The text of its
    ``--help`` option, which click makes once, follows the current language too.
    """

    messages: ClassVar[Messages | None] = None
    """The program's catalogues; subclasses set theirs (``None``: English)."""

    help_msgid: str | None = None

    @property
    def help(self) -> str | None:
        if self.help_msgid is None or self.messages is None:
            return self.help_msgid
        return translate_help(self.messages.catalogue(language()), self.help_msgid)

    @help.setter
    def help(self, value: str | None) -> None:
        self.help_msgid = value

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        help_option = super().get_help_option(ctx)
        if help_option is not None:  # made by click once, in the language of that moment
            help_option.help = CLICK_MESSAGES.t("Show this message and exit.")
        return help_option


class TranslatedGroup(TranslatedCommand, click.Group):
    """A group of translated commands (``@group.command()``, ``@group.group()``).

    A program's subclass sets ``command_class`` to its :class:`TranslatedCommand` and
    ``group_class = type`` (subgroups of its own class).
    """
