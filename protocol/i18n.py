"""Translation machinery shared by the ``classcast`` and ``classcast-kiosk`` commands.

Pure text functions, gettext style: messages are written in English in the code and
looked up in a Russian catalogue (a plain dict) that each program keeps for itself —
``controller/i18n.py``, ``kiosk/i18n.py``. Russian is the default; ``CLASSCAST_LANG=en``
switches to English. Nothing here does I/O: the language is read from the environment
each time, so text built late (``--help``) follows a ``--lang`` given on the command line.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Mapping

LANG_ENV = "CLASSCAST_LANG"

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def language() -> str:
    """``ru`` unless ``CLASSCAST_LANG`` says ``en``."""
    return "en" if os.environ.get(LANG_ENV, "ru").lower().startswith("en") else "ru"


def translate(catalogue: Mapping[str, str], msgid: str, /, **values: object) -> str:
    """``msgid`` in the current language (English when missing), with ``values`` filled in."""
    text = catalogue.get(msgid, msgid) if language() == "ru" else msgid
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


def translate_help(catalogue: Mapping[str, str], text: str) -> str:
    """A help text (docstring or ``help=``) in the current language, for click.

    Each prose paragraph is looked up by its :func:`help_msgids` key (click rewraps
    prose anyway). Indented paragraphs (examples) get click's ``\\b`` marker, so that
    each command of an example stays on a line of its own.
    """
    ru = language() == "ru"
    paragraphs = []
    for paragraph in _paragraphs(text):
        if _is_prose(paragraph):
            paragraphs.append(translate(catalogue, _msgid(paragraph)) if ru else paragraph)
        elif paragraph[:1].isspace():
            paragraphs.append("\b\n" + paragraph)
        else:
            paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)
