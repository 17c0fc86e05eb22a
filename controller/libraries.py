"""Content libraries a school database recognises, and which library a record's content is.

A *library* is a named list of hosts (``myschool.edu.ru``: the state platform «Моя
школа» and its library of verified content, ЦОК, at ``lib.myschool.edu.ru``). The school
database keeps the list (:meth:`controller.schooldb.SchoolDb.libraries`, changed with
``classcast usage libraries``) and stores, with every record it collects, which library
the record's content came from (``plays.library``: a library's id, or ``''``).

The rule (``docs/admin.md``, section 3.1, written so that an inspector can apply it by
hand): a record is library content when its ``content_source`` is an ``http``/``https``
address whose host is one of a library's hosts or under one (``myschool.edu.ru`` covers
``lib.myschool.edu.ru``, not ``evilmyschool.edu.ru`` nor ``myschool.edu.ru.evil.com``).
For a web page that address is the page the panel opened (the panel logs it); for a
file, a deck or a text slide it is the source the lesson declared. Nothing else counts:
not a title, not a teacher's own setting.

Pure: no I/O. :class:`LibraryMatcher` caches its answers per source, since a school's
records repeat the same few addresses.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from controller.i18n import N_
from media.weblink import library_host, parse_library_host

__all__ = [
    "DEFAULT_LIBRARIES",
    "MAX_LIBRARIES",
    "MAX_LIBRARY_ID_CHARS",
    "Library",
    "LibraryMatcher",
    "libraries_from_json",
    "libraries_to_json",
    "library_label",
]

MAX_LIBRARIES: Final = 50
"""Libraries a school database may recognise."""
MAX_LIBRARY_ID_CHARS: Final = 40
"""Longest library id (a short name such as ``uchi``)."""
MAX_HOSTS_PER_LIBRARY: Final = 20
"""Hosts one library may list."""

_ID: Final = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Library:
    """One recognised content library: a short id (stored in records) and its hosts."""

    id: str
    hosts: tuple[str, ...]


DEFAULT_LIBRARIES: Final[tuple[Library, ...]] = (
    Library("myschool", ("myschool.edu.ru",)),
    Library("resh", ("resh.edu.ru",)),
)
"""The libraries recognised until an admin changes the list: ФГИС «Моя школа» with its
library of verified digital content (ЦОК, ``lib.myschool.edu.ru``), and the Russian
Electronic School (РЭШ). See ``docs/admin.md`` for what is assumed."""

_LABELS: Final = {
    "myschool": N_("My School (ЦОК)"),
    "resh": N_("Russian Electronic School (РЭШ)"),
    "": N_("not from a library"),
}
"""What people read for a library id; an id an admin added is shown as it is."""


def library_label(library_id: str) -> str:
    """The msgid to show for ``library_id`` (translate it), or the id itself."""
    return _LABELS.get(library_id, library_id)


def library(library_id: str, hosts: Iterable[str]) -> Library:
    """A checked :class:`Library`.

    Raises:
        ValueError: the id is not lowercase letters, digits, ``-`` and ``_`` (at most
            ``MAX_LIBRARY_ID_CHARS``), a host is not a host name, or there are no hosts
            or over ``MAX_HOSTS_PER_LIBRARY``.
    """
    if not _ID.fullmatch(library_id) or len(library_id) > MAX_LIBRARY_ID_CHARS:
        raise ValueError(
            f"a library id is up to {MAX_LIBRARY_ID_CHARS} lowercase Latin letters, digits,"
            f" '-' and '_' (such as uchi), not {library_id[:MAX_LIBRARY_ID_CHARS]!r}"
        )
    checked = tuple(dict.fromkeys(parse_library_host(h) for h in hosts))
    if not checked or len(checked) > MAX_HOSTS_PER_LIBRARY:
        raise ValueError(f"a library lists 1 to {MAX_HOSTS_PER_LIBRARY} hosts")
    return Library(library_id, checked)


def checked_list(libraries: Sequence[Library]) -> tuple[Library, ...]:
    """``libraries`` if their ids are distinct and there are at most ``MAX_LIBRARIES``.

    Raises:
        ValueError: a repeated id, or too many libraries.
    """
    ids = [lib.id for lib in libraries]
    if len(set(ids)) != len(ids):
        raise ValueError("two libraries have the same id")
    if len(ids) > MAX_LIBRARIES:
        raise ValueError(f"over {MAX_LIBRARIES} libraries")
    return tuple(libraries)


def libraries_to_json(libraries: Sequence[Library]) -> str:
    """The setting's stored form: ``[{"id": ..., "hosts": [...]}, ...]``."""
    return json.dumps([{"id": lib.id, "hosts": list(lib.hosts)} for lib in libraries])


def libraries_from_json(text: str) -> tuple[Library, ...]:
    """Parse the stored setting.

    Raises:
        ValueError: not the form :func:`libraries_to_json` writes, or an entry is invalid.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the libraries setting is not JSON: {exc}") from None
    if not isinstance(data, list):
        raise ValueError("the libraries setting is not a list")
    result = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ValueError("a library entry has no id")
        hosts = entry.get("hosts")
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise ValueError(f"library {entry['id']!r} has no list of hosts")
        result.append(library(entry["id"], hosts))
    return checked_list(result)


class LibraryMatcher:
    """Which library a content source belongs to, by the rule of this module."""

    def __init__(self, libraries: Sequence[Library]) -> None:
        self.libraries = tuple(libraries)
        self._by_host = {host: lib.id for lib in self.libraries for host in lib.hosts}
        self._hosts = tuple(self._by_host)
        self._cache: dict[str | None, str] = {None: "", "": ""}

    def library_of(self, source: str | None) -> str:
        """The id of the library ``source`` (a record's ``content_source``) is from, or ``''``."""
        found = self._cache.get(source)
        if found is None:
            assert source is not None
            found = self._match(source)
            if len(self._cache) < 100_000:
                self._cache[source] = found
        return found

    def _match(self, source: str) -> str:
        try:
            scheme = urllib.parse.urlsplit(source).scheme.lower()
        except ValueError:
            return ""
        if scheme not in ("http", "https"):
            return ""
        host = library_host(source, self._hosts)
        return "" if host is None else self._by_host[host]
