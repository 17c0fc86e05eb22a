"""Text from peers made safe to show: no control characters, escape sequences or bidi tricks.

Room, school, teacher, lesson and item names come from other machines (an mDNS TXT
record anyone on the network can send, a kiosk's ``welcome`` and ``status``, usage
records) and end up on a teacher's terminal, in reports and on the panel. A name
carrying ``"\\x1b]0;pwned\\x07"`` would retitle the teacher's terminal; ``"\\u202e"``
(RIGHT-TO-LEFT OVERRIDE) would show ``"1 .баК"`` as something else; a zero-width space
makes two rooms look alike. :func:`clean_name` is the one rule for all of it:

* ECMA-48 escape sequences are removed whole, in their 7-bit (``ESC [``, ``ESC ]``,
  ``ESC P`` ...) and 8-bit C1 forms (``U+009B``, ``U+009D`` ...): CSI with its
  parameters, OSC/DCS/SOS/PM/APC strings up to their terminator (BEL or ST; an
  unterminated one up to the end, as a terminal would swallow it), two- and
  three-character escapes;
* line breaks, tabs and other whitespace controls become one space each;
* every other character of Unicode category Cc (C0 and C1 controls, DEL), Cf (format:
  bidi embeddings, overrides and isolates, LRM/RLM, zero-width space/joiners, word
  joiner, BOM, soft hyphen, tag characters) and Cs (lone surrogates) is removed.

Nothing else changes: letters of every script, emoji, punctuation and ordinary spaces
stay as they are (an emoji built with ZERO WIDTH JOINER falls apart into its parts).
:func:`clean_lines` is the same rule for multi-line text such as a whole terminal
message: it keeps ``\\n`` and ``\\t``. :func:`json_text` writes JSON whose strings keep
the exact values (JSON is data) but with every such character as a ``\\u`` escape, so
the text itself is safe to print.

The callers clean where text enters (``protocol.discovery.parse_txt``, the controller's
address book) and where it is shown (the ``classcast`` output, reports, the panel's
idle screen). This module is pure: no I/O.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Final

from protocol.limits import MAX_SCHOOL_ID_CHARS

__all__ = ["clean_lines", "clean_name", "is_clean", "json_text", "school_id_problem"]

_SCHOOL_ID: Final = re.compile(r"[a-z0-9][a-z0-9._-]*")


def school_id_problem(text: str) -> str | None:
    """What is wrong with ``text`` as a school id, in English, or None when it is one.

    A school id is stable and plain, so that it can key a district's records for years
    and be typed in a command: 1 to :data:`~protocol.limits.MAX_SCHOOL_ID_CHARS`
    lower-case Latin letters, digits, ``.``, ``_`` or ``-``, starting with a letter or a
    digit (e.g. ``school-17``). The school's name people read is a separate setting.
    """
    if not text:
        return "a school id must not be empty"
    if len(text) > MAX_SCHOOL_ID_CHARS:
        return f"a school id has at most {MAX_SCHOOL_ID_CHARS} characters"
    if _SCHOOL_ID.fullmatch(text) is None:
        return (
            "a school id is lower-case Latin letters, digits, '.', '_' and '-', "
            "starting with a letter or a digit (e.g. school-17)"
        )
    return None


_ESCAPE_SEQUENCE: Final = re.compile(
    # CSI: ESC [ or U+009B, parameters, intermediates, one final byte (or the end).
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*(?:[\x40-\x7e]|\Z)"
    # OSC, DCS, SOS, PM, APC: a string up to BEL or ST (ESC \ or U+009C); another ESC
    # or the end of the text ends it too (a terminal aborts the string there).
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|(?=\x1b)|\Z)"
    # nF escapes (ESC, intermediates, a final byte), then two-character escapes.
    r"|\x1b[\x20-\x2f]+[\x30-\x7e]?"
    r"|\x1b[\x30-\x7e]?",
    re.DOTALL,
)
"""An ECMA-48 escape sequence, 7-bit or 8-bit; a lone ESC at the end included."""

_SPACE_CONTROLS: Final = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029")
"""Characters that break or separate text: each becomes a space in a name."""

_REMOVED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs"})


def _unsafe(ch: str) -> bool:
    return ch in _SPACE_CONTROLS or unicodedata.category(ch) in _REMOVED_CATEGORIES


def _clean(text: str, keep: frozenset[str]) -> str:
    if text.isprintable():
        return text  # the common case (isprintable is false for every Cc, Cf, Cs, Zl, Zp)
    text = _ESCAPE_SEQUENCE.sub("", text.replace("\r\n", "\n"))
    out = []
    for ch in text:
        if ch in keep:
            out.append(ch)
        elif ch in _SPACE_CONTROLS:
            out.append(" ")
        elif unicodedata.category(ch) not in _REMOVED_CATEGORIES:
            out.append(ch)
    return "".join(out)


_NOTHING: Final = frozenset[str]()
_LINES: Final = frozenset("\n\t")


def clean_name(text: str) -> str:
    """``text`` as one safe line: escape sequences and controls removed (module docstring).

    Use it on every name that came from another machine before showing it, and before
    saving it where it will be shown later. It is idempotent and never fails.
    """
    return _clean(text, _NOTHING)


def clean_lines(text: str) -> str:
    """Like :func:`clean_name`, but keeps line breaks (``\\n``, ``\\r\\n`` → ``\\n``) and tabs.

    For whole messages written to a terminal, whose own layout uses several lines.
    """
    return _clean(text, _LINES)


def is_clean(text: str) -> bool:
    """True if :func:`clean_name` would leave ``text`` unchanged."""
    return clean_name(text) == text


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_text(value: object, *, indent: int | None = None) -> str:
    """``json.dumps(value)`` with Cyrillic kept as is and every unsafe character escaped.

    The strings keep their exact values when parsed back (reports and ``--json``
    output are data: they must match the signed usage log), but C1 controls, bidi
    and zero-width characters are written as ``\\uXXXX`` instead of raw, like the C0
    controls ``json`` already escapes. So the text is safe on a terminal.

    Raises:
        TypeError: ``value`` holds something JSON cannot encode.
    """
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    if text.isascii():
        return text
    # Only inside strings can a non-ASCII character be, so escaping it keeps valid JSON.
    return "".join(_escape(ch) if ord(ch) >= 0x80 and _unsafe(ch) else ch for ch in text)
