"""``--help`` in the current language, for the click commands of both programs.

``classcast`` and ``classcast-kiosk`` each keep their own gettext catalogue; both use
these classes, subclassed with their own catalogues::

    class TranslatedCommand(cli_help.TranslatedCommand):
        def catalogues(self, lang: str) -> Catalogue:
            return catalogue(lang)

Help texts are English in the code (docstrings, ``help=``) and translated when shown,
not when the commands are defined, so a ``--lang`` given on the command line applies.
click's own words ("Usage:", "Options", "[default: …]") are msgids of the catalogue
too. Nothing here does I/O.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from typing import Any

import click

from protocol.i18n import Catalogue, language, translate, translate_help

Catalogues = Callable[[str], Catalogue]
"""A program's catalogue for a language (``ru``, ``en``)."""


def _t(catalogues: Catalogues, msgid: str, /, **values: object) -> str:
    return translate(catalogues(language()), msgid, **values)


def _untranslated(lang: str) -> Catalogue:
    return gettext.NullTranslations()


class _HelpFormatter(click.HelpFormatter):
    """click's formatter with its own words translated: "Usage:", "Options", "Commands"."""

    def __init__(self, catalogues: Catalogues, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalogues = catalogues

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        usage = f"{_t(self.catalogues, 'Usage:')} " if prefix is None else prefix
        super().write_usage(prog, args, usage)

    def write_heading(self, heading: str) -> None:
        super().write_heading(_t(self.catalogues, heading))  # click's "Options", "Commands"


class _Context(click.Context):
    def make_formatter(self) -> click.HelpFormatter:
        command = self.command
        assert isinstance(command, TranslatedCommand)
        return _HelpFormatter(
            command.catalogues, width=self.terminal_width, max_width=self.max_content_width
        )


def _option_extras(catalogues: Catalogues, text: str) -> str:
    """click's ``[default: 10.0]`` after an option's help, in the current language."""
    head, bracket, tail = text.rpartition("[")
    if not bracket or not tail.endswith("]") or language() != "ru":
        return text
    items = []
    for item in tail[:-1].split("; "):
        label, _, value = item.partition(": ")
        if item == "required":
            items.append(_t(catalogues, "required"))
        elif label == "default":
            items.append(_t(catalogues, "default: {default}", default=value))
        elif label == "env var":
            items.append(_t(catalogues, "env var: {var}", var=value))
        else:  # a range such as "x>=0"
            items.append(item)
    return f"{head}[{'; '.join(items)}]"


class TranslatedOption(click.Option):
    """An option whose ``help`` is the English text in code and shown translated."""

    help_msgid: str | None = None

    def catalogues(self, lang: str) -> Catalogue:
        """The program's catalogue for ``lang`` (subclasses return theirs)."""
        return _untranslated(lang)

    @property
    def help(self) -> str | None:
        return None if self.help_msgid is None else _t(self.catalogues, self.help_msgid)

    @help.setter
    def help(self, value: str | None) -> None:
        self.help_msgid = value

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None:
            return None
        return record[0], _option_extras(self.catalogues, record[1])


class TranslatedCommand(click.Command):
    """A command whose help (its docstring) is the English text, shown translated.

    Subcommands of a translated group are of the program's subclass. The text of its
    ``--help`` option, which click makes, is translated too.
    """

    context_class = _Context
    help_msgid: str | None = None

    def catalogues(self, lang: str) -> Catalogue:
        """The program's catalogue for ``lang`` (subclasses return theirs)."""
        return _untranslated(lang)

    @property
    def help(self) -> str | None:
        if self.help_msgid is None:
            return None
        return translate_help(self.catalogues(language()), self.help_msgid)

    @help.setter
    def help(self, value: str | None) -> None:
        self.help_msgid = value

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        help_option = super().get_help_option(ctx)
        if help_option is not None:  # made by click, with click's English text
            help_option.help = _t(self.catalogues, "Show this message and exit.")
        return help_option
