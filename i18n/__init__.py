"""Translation shared by the ``classcast`` and ``classcast-kiosk`` commands.

GNU gettext: messages are written in English in the code and looked up in a compiled
Russian catalogue (``.mo``). Each program keeps its own, one gettext domain each —
``controller/locale/ru/LC_MESSAGES/classcast.mo``,
``kiosk/locale/ru/LC_MESSAGES/classcast-kiosk.mo`` — and click's own words (``Error:``,
``Usage:``, ``Missing argument``…) are in ``i18n/locale/ru/LC_MESSAGES/classcast-click.mo``
(see :mod:`i18n.cli`). The ``.po`` file next to each is the one to edit; ``make
catalogues`` compiles it, and both are committed. Russian is the default;
``CLASSCAST_LANG=en`` switches to English, which needs no catalogue (the msgid is the
text).

A program makes its catalogues with :class:`Messages` (the domain and the folder) and
translates with its :meth:`Messages.t` (the language of :func:`language`, read from the
environment each time, so text built late such as ``--help`` follows a ``--lang`` given
on the command line) or :meth:`Messages.tr` (a language chosen by the caller, such as a
panel's own). The functions below :class:`Messages` do no I/O.
"""

from __future__ import annotations

import functools
import gettext
import inspect
import logging
import os
import re
import struct
from pathlib import Path
from typing import Protocol

__all__ = [
    "LANG_ENV",
    "N_",
    "Catalogue",
    "Messages",
    "help_msgids",
    "language",
    "mo_msgids",
    "translate",
    "translate_help",
]

logger = logging.getLogger(__name__)

LANG_ENV = "CLASSCAST_LANG"
"""The environment variable that chooses the language: ``ru`` (the default) or ``en``."""

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")

# The first 4 bytes of a GNU .mo file, by byte order (struct's "<" or ">").
_MO_MAGIC = {b"\xde\x12\x04\x95": "<", b"\x95\x04\x12\xde": ">"}


class Catalogue(Protocol):
    """The messages of one program in one language.

    :class:`gettext.GNUTranslations` (a compiled catalogue) and
    :class:`gettext.NullTranslations` (English: every msgid is its own text) are both
    catalogues.
    """

    def gettext(self, message: str, /) -> str:
        """``message`` translated, or ``message`` itself when the catalogue lacks it."""
        ...


def language() -> str:
    """``ru`` unless ``CLASSCAST_LANG`` says ``en``."""
    return "en" if os.environ.get(LANG_ENV, "ru").lower().startswith("en") else "ru"


class Messages:
    """The gettext catalogues of one domain, loaded once per language.

    ``Messages("classcast", Path(__file__).parent / "locale")`` reads
    ``locale/<lang>/LC_MESSAGES/classcast.mo``. English has no catalogue: the msgids
    are the English texts, and the :class:`gettext.NullTranslations` used passes them
    through. So does the fallback for a language whose ``.mo`` file is missing, with a
    warning logged once.
    """

    def __init__(self, domain: str, locale_dir: Path) -> None:
        self.domain = domain
        self.locale_dir = locale_dir

    @functools.cache  # noqa: B019 - a few Messages per process, each lives as long
    def catalogue(self, lang: str) -> gettext.NullTranslations:
        """The messages in ``lang`` (``ru`` or ``en``); call :meth:`forget` after moving files."""
        found = gettext.translation(self.domain, self.locale_dir, languages=[lang], fallback=True)
        if lang != "en" and not isinstance(found, gettext.GNUTranslations):
            logger.warning("no %s catalogue in %s: printing English", lang, self.locale_dir)
        return found

    def forget(self) -> None:
        """Drop the loaded catalogues (tests that point :attr:`locale_dir` elsewhere)."""
        Messages.catalogue.cache_clear()

    def mo_path(self, lang: str = "ru") -> Path:
        """The compiled catalogue of ``lang``."""
        return self.locale_dir / lang / "LC_MESSAGES" / f"{self.domain}.mo"

    def catalogue_msgids(self, lang: str = "ru") -> frozenset[str]:
        """Every msgid the compiled catalogue of ``lang`` translates (for tests and tools).

        Raises:
            OSError: there is no compiled catalogue for ``lang``.
        """
        return mo_msgids(self.mo_path(lang).read_bytes())

    def t(self, msgid: str, /, **values: object) -> str:
        """``msgid`` in the current language (:func:`language`), ``values`` filled in."""
        return translate(self.catalogue(language()), msgid, **values)

    def tr(self, lang: str, msgid: str, /, **values: object) -> str:
        """``msgid`` in ``lang`` (``ru`` or ``en``), ``values`` filled in."""
        return translate(self.catalogue(lang), msgid, **values)


def N_(msgid: str, /) -> str:
    """Mark ``msgid`` as a message translated later (``t(heading)``); returns it unchanged.

    The catalogue tests find the msgids of ``t("...")`` calls; text kept in a table
    first (column headings, chart titles) is found through this mark.
    """
    return msgid


def translate(catalogue: Catalogue, msgid: str, /, **values: object) -> str:
    """``msgid`` as ``catalogue`` has it (English when missing), with ``values`` filled in.

    The caller picks the catalogue of the language wanted (usually of :func:`language`).
    An empty ``msgid`` stays empty: gettext would answer with the catalogue's header.
    """
    text = catalogue.gettext(msgid) if msgid else msgid
    return text.format(**values) if values else text


def _paragraphs(text: str) -> list[str]:
    return _PARAGRAPH_BREAK.split(inspect.cleandoc(text))


def _is_prose(paragraph: str) -> bool:
    """Indented paragraphs (examples) and click's ``\\b`` blocks are kept as written."""
    return not paragraph[:1].isspace() and not paragraph.startswith("\b")


def _msgid(paragraph: str) -> str:
    return " ".join(paragraph.split())


def help_msgids(text: str) -> list[str]:
    """The messages of a help text: its prose paragraphs, each on one line.

    ``"Show a lesson.\\n\\n    Example:\\n..."`` style docstrings are translated paragraph by
    paragraph, so a catalogue holds sentences, not whole docstrings; examples (indented)
    are not messages and stay as written.
    """
    return [_msgid(p) for p in _paragraphs(text) if _is_prose(p)]


def translate_help(catalogue: Catalogue, text: str) -> str:
    """A help text (docstring or ``help=``) as ``catalogue`` has it, for click.

    Each prose paragraph is looked up by its :func:`help_msgids` key (click rewraps
    prose anyway); one the catalogue lacks (all of them, in English) stays as written.
    Indented paragraphs (examples) get click's ``\\b`` marker, so that each command of
    an example stays on a line of its own.
    """
    paragraphs = []
    for paragraph in _paragraphs(text):
        if _is_prose(paragraph):
            msgid = _msgid(paragraph)
            translated = catalogue.gettext(msgid)
            paragraphs.append(paragraph if translated == msgid else translated)
        elif paragraph[:1].isspace():
            paragraphs.append("\b\n" + paragraph)
        else:
            paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def mo_msgids(mo: bytes) -> frozenset[str]:
    """The msgids of a compiled catalogue (the bytes of a UTF-8 GNU ``.mo`` file).

    For tests and tools that list what a catalogue translates; the programs look
    messages up through :mod:`gettext`. The header entry (msgid ``""``) is left out,
    and a plural entry is listed by its singular msgid.

    Raises:
        ValueError: ``mo`` is not a GNU ``.mo`` file, or is cut short.
    """
    order = _MO_MAGIC.get(mo[:4])
    if order is None:
        raise ValueError("not a GNU .mo file: bad magic number")
    try:
        count, originals = struct.unpack_from(f"{order}2I", mo, 8)
        msgids = set()
        for i in range(count):
            length, offset = struct.unpack_from(f"{order}2I", mo, originals + 8 * i)
            if offset + length > len(mo):
                raise ValueError("not a GNU .mo file: a msgid runs past the end")
            msgids.add(mo[offset : offset + length].decode("utf-8").partition("\0")[0])
    except struct.error as exc:
        raise ValueError(f"not a GNU .mo file: {exc}") from exc
    return frozenset(msgids - {""})
