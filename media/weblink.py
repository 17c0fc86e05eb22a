"""Web links a teacher casts: checking a typed or pasted URL, and recognising the library.

:func:`parse_link` turns what a teacher typed or pasted (``classcast cast URL``, the
app's «Вставить ссылку» field, a Windows ``.url`` shortcut in a lesson folder) into the
URL a panel opens, or refuses it with a :class:`~protocol.errors.LessonError` whose
``reason`` is one of :data:`LINK_ERROR_REASONS`:

====================  ======================================================
``url_too_long``      over ``MAX_URL_CHARS`` characters (``limit``)
``url_scheme``        not ``http://`` or ``https://`` (``value``)
``url_credentials``   a user name or password in the address (``user:pw@host``)
``url_host``          no host, a host that is not a name or an IP address, or a bad port
``url_chars``         control characters (a line break, a tab) inside the address
``url_shortcut``      a ``.url`` file with no ``URL=`` line, or over ``MAX_SHORTCUT_BYTES``
====================  ======================================================

The error's ``path`` is the link as given, shortened to ``SHOWN_URL_CHARS`` for messages
(a user name and password replaced by ``…``).

An address is kept as typed but for: spaces around it are dropped, the scheme and host
are lowercased, an internationalised host (``школа.рф``) becomes its ASCII form
(``xn--80atdl2c.xn--p1ai``, IDNA), and characters outside ASCII and spaces in the rest
are percent-encoded. What the panel may open is the panel's own decision (its
``web_allow``); nothing here reaches the network.

**Library content.** :func:`library_host` says whether a URL's host is one of the
recognised content-library hosts (a setting of the controller,
:meth:`controller.home.Home.library_hosts`; :data:`DEFAULT_LIBRARY_HOSTS` until an admin
changes it). An entry matches that host and every host under it: ``myschool.edu.ru``
matches ``lib.myschool.edu.ru``. A web item from such a host carries its URL as its
``source_url``: the content source the panel's usage log records.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Final

from protocol.errors import LessonError
from protocol.limits import MAX_STRING_CHARS

MAX_URL_CHARS: Final = MAX_STRING_CHARS
"""Longest web address a lesson may name (1,000), in characters after IDNA and
percent-encoding: what the protocol allows any string. Library pages' addresses
are well under 200; longer ones are tracking parameters or pasted text."""

MAX_HOST_CHARS: Final = 253
"""Longest host name (DNS)."""

MAX_SHORTCUT_BYTES: Final = 64 * 1024
"""Largest Windows Internet shortcut (``.url`` file) read; a real one is under 1 KiB."""

MAX_LIBRARY_HOSTS: Final = 100
"""Entries the library-hosts setting may hold."""

SHOWN_URL_CHARS: Final = 80
"""Characters of a refused link an error message repeats (the rest is cut with «…»)."""

DEFAULT_LIBRARY_HOSTS: Final[tuple[str, ...]] = (
    "myschool.edu.ru",
    "lib.myschool.edu.ru",
    "resh.edu.ru",
)
"""The recognised content-library hosts until an admin changes the setting: the state
platform «Моя школа» (``myschool.edu.ru`` and every host under it, among them the
library of verified digital content, ЦОК, at ``lib.myschool.edu.ru``) and the Russian
Electronic School (``resh.edu.ru``). See docs/admin.md for what is assumed here."""

LINK_ERROR_REASONS: Final = frozenset(
    {"url_too_long", "url_scheme", "url_credentials", "url_host", "url_chars", "url_shortcut"}
)
"""Every ``reason`` of the :class:`~protocol.errors.LessonError` this module raises."""

_SCHEMES: Final = ("http", "https")
_LABEL: Final = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_USERINFO: Final = re.compile(r"//[^/?#]*@")
_SAFE: Final = "!#$%&'()*+,/:;=?@[]~-._"
"""Characters left as they are when the rest of an address is percent-encoded."""


def looks_like_url(text: str) -> bool:
    """Whether a command-line argument is meant as a web address rather than a path:
    it has a scheme (``https://``, ``ftp://``); ``parse_link`` then decides if it may be
    cast."""
    head, sep, _ = text.strip().partition("://")
    return bool(sep) and head.isascii() and head.isalpha()


def parse_link(text: str) -> str:
    """The address a panel opens for ``text``, checked and normalised (module docstring).

    Raises:
        LessonError: ``text`` is not an http(s) address a lesson may name; ``reason`` in
            :data:`LINK_ERROR_REASONS`, ``path`` the shortened input.
    """
    raw = text.strip()
    if len(raw) > MAX_URL_CHARS:
        raise _error(raw, "url_too_long", f"longer than {MAX_URL_CHARS} characters")
    if _CONTROL.search(raw):
        raise _error(raw, "url_chars", "control characters inside")
    try:
        parts = urllib.parse.urlsplit(raw)
    except ValueError:  # an unclosed [ in the host
        raise _error(raw, "url_host", "not a host name or an IP address") from None
    if parts.scheme.lower() not in _SCHEMES or not raw.lower().startswith(
        tuple(f"{s}://" for s in _SCHEMES)
    ):
        raise _error(raw, "url_scheme", "not an http or https address")
    if "@" in parts.netloc:
        raise _error(raw, "url_credentials", "a user name or password in the address")
    host = _host(parts.hostname or "", raw)
    try:
        port = parts.port
    except ValueError:
        raise _error(raw, "url_host", "bad port") from None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    rest = urllib.parse.urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    url = f"{parts.scheme.lower()}://{netloc}{urllib.parse.quote(rest, safe=_SAFE)}"
    if len(url) > MAX_URL_CHARS:
        raise _error(raw, "url_too_long", f"longer than {MAX_URL_CHARS} characters")
    return url


def shortcut_url(data: bytes) -> str:
    """The address in a Windows Internet shortcut (the bytes of a ``.url`` file), checked
    with :func:`parse_link`.

    The file is INI text (``[InternetShortcut]`` then ``URL=https://…``), in UTF-8 or
    the Windows code page.

    Raises:
        LessonError: no ``URL=`` line in the ``[InternetShortcut]`` section
            (``url_shortcut``), or the address is refused (:func:`parse_link`).
    """
    if len(data) > MAX_SHORTCUT_BYTES:
        raise LessonError("Internet shortcut too large", reason="url_shortcut")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1251", errors="replace")
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip().lower()
        elif section == "internetshortcut" and stripped.lower().startswith("url="):
            return parse_link(stripped[4:])
    raise LessonError("Internet shortcut with no URL= line", reason="url_shortcut")


def link_title(url: str) -> str:
    """A title for a web item nobody named: its host, without ``www.``, in Unicode."""
    host = urllib.parse.urlsplit(url).hostname or url
    with contextlib.suppress(UnicodeError):
        host = host.encode("ascii").decode("idna")
    return host.removeprefix("www.")


def parse_library_host(text: str) -> str:
    """One entry of the library-hosts setting, checked and normalised (ASCII, lowercase).

    Raises:
        ValueError: not a host name (a scheme, a path, a port, ``*``).
    """
    name = text.strip().lower().rstrip(".")
    if not name or any(c in name for c in "*/:@?#[] \\"):
        raise ValueError(f"{text!r} is not a host name such as lib.myschool.edu.ru")
    try:
        return _host(name, text)
    except LessonError:
        raise ValueError(f"{text!r} is not a host name such as lib.myschool.edu.ru") from None


def library_hosts(entries: Iterable[str]) -> tuple[str, ...]:
    """The library-hosts setting from ``entries``: each normalised, duplicates dropped.

    Raises:
        ValueError: an entry is not a host name, or there are over ``MAX_LIBRARY_HOSTS``.
    """
    hosts = tuple(dict.fromkeys(parse_library_host(e) for e in entries))
    if len(hosts) > MAX_LIBRARY_HOSTS:
        raise ValueError(f"over {MAX_LIBRARY_HOSTS} library hosts")
    return hosts


def library_host(url: str, hosts: Sequence[str]) -> str | None:
    """The entry of ``hosts`` (normalised, :func:`library_hosts`) that ``url``'s host is
    or is under, or ``None`` when the URL is not library content."""
    try:
        host = _host(urllib.parse.urlsplit(url).hostname or "", url)
    except (LessonError, ValueError):
        return None
    for entry in hosts:
        if host == entry or host.endswith("." + entry):
            return entry
    return None


def _host(name: str, raw: str) -> str:
    """``name`` as an ASCII host name or IP address, or a ``url_host`` error."""
    name = name.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise _error(raw, "url_host", "not a host name or an IP address") from None
    labels = ascii_name.split(".")
    if (
        not ascii_name
        or len(ascii_name) > MAX_HOST_CHARS
        or not all(_LABEL.fullmatch(label) for label in labels)
    ):
        raise _error(raw, "url_host", "not a host name or an IP address")
    return ascii_name


def _error(raw: str, reason: str, what: str) -> LessonError:
    shown = _CONTROL.sub(" ", raw)
    if reason == "url_credentials":  # a password is not repeated back, nor logged
        shown = _USERINFO.sub("//…@", shown, count=1)
    shown = shown if len(shown) <= SHOWN_URL_CHARS else shown[: SHOWN_URL_CHARS - 1] + "…"
    values: dict[str, str | int] = (
        {"value": shown} if reason != "url_too_long" else {"limit": MAX_URL_CHARS}
    )
    return LessonError(f"{shown}: {what}", path=shown, reason=reason, values=values)
