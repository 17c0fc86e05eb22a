"""The lesson model, and loading a lesson from a folder, a ``lesson.toml`` or files.

A :class:`Lesson` is what the controller casts: a title and an ordered tuple of
:class:`LessonItem`. Items that show a file (images, PDF pages, videos, HTML pages)
name it by ``sha256`` and keep the local ``path`` so the controller can send its
bytes; text slides and web links carry their content inline.

``load_lesson`` accepts:

- a folder without ``lesson.toml``: every visible regular file in natural name order
  (``slide2`` before ``slide10``), as teachers keep folders: system files
  (:func:`is_system_file`: ``Thumbs.db``, ``desktop.ini``, dotfiles, ``~$`` lock files;
  subfolders such as ``__MACOSX/`` are not read) are passed over silently, and a file
  that cannot be shown is left out and listed in :attr:`Lesson.skipped` with its problem
  (the caller warns about each), as long as something else can be shown;
- a folder with ``lesson.toml``, or the path of a ``.toml`` file (format below);
- one file, or a list of files in the order given.

``load_sources`` takes what ``classcast cast`` is given: web addresses (each a web item,
:mod:`media.weblink`), folders, ``lesson.toml`` files and media files, mixed, in the
order given. A web item whose host is a recognised content library (the
``library_hosts`` argument) carries its URL as ``source_url``; so does a Windows Internet
shortcut (``.url`` file) in a folder, which becomes a web item.

``lesson.toml``::

    title = "Фотосинтез"                   # required
    subject = "Биология"                   # optional
    source = "https://lib.example/photo"   # optional content-source URL, inherited by items

    [[items]]
    file = "leaf.png"        # exactly one of file (relative, inside the folder),
    title = "Лист"           #   url (http/https web page) or text (a text slide)
    duration = 5             # optional, seconds; without it the item waits for "next"
    source = "https://..."   # optional, overrides the lesson's source

A PDF becomes one item per page; so does an office document (.pptx, .odp, .docx…),
made into a PDF by the ``converter`` given (:mod:`media.office`), its pages titled by its
slides' titles where it has them. Text files become text slides; HTML files become web
items backed by a blob; an SVG becomes a PNG rendered on this computer
(:func:`media.svg.render_svg`), shown as an image.

Sizes are checked before anything is read: every file of a folder or list is
``stat``-ed first (a file over ``MAX_BLOB_BYTES`` stops the load before the first
file is hashed), a ``lesson.toml`` over ``MAX_LESSON_TOML_BYTES`` is refused unread, and
:func:`media.probe.probe_file` refuses a text file too long for a slide from its size.

Every problem is a :class:`~protocol.errors.LessonError` with a ``reason`` a program
turns into its own words, in its language, with what to do next:

====================  ======================================================
``missing``           the lesson path does not exist (``path``)
``not_a_file``        a named lesson file, or an item's ``file``, is not a file
``empty_folder``      a lesson folder with no files in it
``no_files``          an empty list of lesson files
``unreadable``        a file cannot be read (permissions, I/O)
``bad_toml``          ``lesson.toml`` is not TOML (``values["line"]`` when known)
``not_utf8``          ``lesson.toml`` is not UTF-8
``unknown_key``       a key ``lesson.toml`` does not know (``key``, ``allowed``)
``no_title``          ``lesson.toml`` has no ``title``
``no_item_tables``    ``lesson.toml`` has no ``[[items]]`` table
``not_a_table``       an ``items`` entry is not a table
``content_keys``      an item has not exactly one of ``file``, ``url``, ``text``
``not_a_string``      a setting that must be a string is not (``key``)
``empty``             a title, subject or URL is empty (``key``)
``too_long``          a title, subject or URL is too long (``key``, ``limit``)
``not_a_url``         a ``source`` or ``url`` that is not http(s) (``key``, ``value``)
``bad_duration``      an item's ``duration`` is not in (0, ``limit_s``] seconds
``not_relative``      an item's ``file`` is absolute (``file``)
``outside``           an item's ``file`` leads out of the lesson folder (``file``)
``file_not_found``    an item's ``file`` does not exist (``file``)
``text_too_long``     a text slide over ``MAX_TEXT_ITEM_CHARS`` (``limit``)
``too_many_items``    over ``MAX_ITEMS_PER_LESSON`` items (``limit``)
``too_many_bytes``    over ``MAX_LESSON_BYTES`` of media (``size_bytes``, ``limit_bytes``)
``no_items``          nothing to show (a lesson built from no items)
``nothing_to_show``   no file of a folder can be shown (``files``: the first names)
``no_office``         an office document, and LibreOffice is not installed
``office_failed``     LibreOffice could not convert an office document to PDF, or a
                      file named as one (.pptx, .docx…) is not one
``office_timeout``    converting took over ``limit_s`` seconds
====================  ======================================================

and the reasons of :data:`media.weblink.LINK_ERROR_REASONS` for a refused web address.

``item`` is the 1-based ``[[items]]`` table the problem is in, when it is in one; a
``lesson.toml`` problem has ``path`` set to the ``lesson.toml``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from media.html5zip import ZIP_ERROR_REASONS
from media.office import OFFICE_HEAD_BYTES, Converted, OfficeConverter, office_kind
from media.probe import SVG_MIME, Probe, check_file_size, probe_file
from media.weblink import (
    DEFAULT_LIBRARY_HOSTS,
    LINK_ERROR_REASONS,
    MAX_SHORTCUT_BYTES,
    library_host,
    link_title,
    looks_like_url,
    parse_link,
    shortcut_url,
)
from protocol.errors import FileTooLargeError, LessonError, MediaError
from protocol.limits import (
    MAX_BLOB_BYTES,
    MAX_DURATION_MS,
    MAX_ITEMS_PER_LESSON,
    MAX_LESSON_BYTES,
    MAX_STRING_CHARS,
    MAX_TEXT_FRAME_BYTES,
    MAX_TEXT_ITEM_CHARS,
)
from protocol.messages import ItemKind, LessonManifest, ManifestItem

LESSON_TOML: Final = "lesson.toml"
"""Name of the lesson description file inside a lesson folder."""

DEFAULT_MULTI_FILE_TITLE: Final = "Урок"
"""Title of a lesson made of several loose files."""

SHORTCUT_SUFFIX: Final = ".url"
"""A Windows Internet shortcut in a lesson folder: cast as the web page it names."""

MAX_SHORTCUT_READ_BYTES: Final = MAX_SHORTCUT_BYTES + 1
"""Bytes of a ``.url`` file read: one more than the largest allowed, to tell it is over."""

LESSON_ID_HEX_CHARS: Final = 32
"""Length of a lesson id: the first hex digits of a sha256."""

HASH_READ_BYTES: Final = 1024 * 1024
"""Bytes read at a time while hashing a file."""

MAX_LESSON_TOML_BYTES: Final = 4 * MAX_TEXT_FRAME_BYTES
"""Largest ``lesson.toml`` (4 MiB), refused from its size before it is parsed. A lesson's
manifest, text slides included, must fit one text frame (``MAX_TEXT_FRAME_BYTES``); four
times that leaves room for comments and TOML's longer escapes."""

LESSON_ERROR_REASONS: Final = (
    LINK_ERROR_REASONS
    | ZIP_ERROR_REASONS
    | frozenset(
        {
            "missing",
            "not_a_file",
            "empty_folder",
            "no_files",
            "unreadable",
            "bad_toml",
            "not_utf8",
            "unknown_key",
            "no_title",
            "no_item_tables",
            "not_a_table",
            "content_keys",
            "not_a_string",
            "empty",
            "too_long",
            "not_a_url",
            "bad_duration",
            "not_relative",
            "outside",
            "file_not_found",
            "text_too_long",
            "too_many_items",
            "too_many_bytes",
            "no_items",
            "nothing_to_show",
            "no_office",
            "office_failed",
            "office_timeout",
        }
    )
)
"""Every ``reason`` of the :class:`~protocol.errors.LessonError` this module raises (see the
module docstring): a program has a text for each."""

_TOML_LINE: Final = re.compile(r"\(at line (\d+)")
"""Where tomllib's error message says the mistake is."""

_TOP_KEYS: Final = frozenset({"title", "subject", "source", "items"})
_ITEM_KEYS: Final = frozenset({"file", "url", "text", "title", "duration", "source"})
_CONTENT_KEYS: Final = ("file", "url", "text")
_NATURAL_SPLIT: Final = re.compile(r"(\d+)")
_TEXT_TITLE_CHARS: Final = 80

SYSTEM_FILE_NAMES: Final = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"})
"""Files Windows and macOS leave in folders (compared case-insensitively)."""

OFFICE_SUFFIXES: Final = frozenset({".pptx", ".ppt", ".odp", ".docx", ".doc", ".odt", ".rtf"})
"""Office documents. When nothing else of a folder can be shown, the first office
document's own problem is raised (it says what to do, e.g. install LibreOffice) rather
than ``nothing_to_show`` (see :meth:`_Loader.from_folder`)."""

MAX_SKIPPED_NAMES: Final = 5
"""Files named in a ``nothing_to_show`` error (the rest are counted)."""


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class LessonItem:
    """One thing a lesson shows.

    ``path`` is the local file behind a blob item (``None`` for web links and text
    slides); ``sha256`` (lowercase hex) and ``size_bytes`` name that blob. ``page`` is
    the 0-based page of a PDF item. ``duration_ms`` advances the lesson automatically;
    ``None`` waits for the teacher (or, for a video, for its end).
    """

    kind: ItemKind
    title: str
    path: Path | None = None
    sha256: str | None = None
    size_bytes: int = 0
    page: int | None = None
    url: str | None = None
    text: str | None = None
    duration_ms: int | None = None
    source_url: str | None = None

    def manifest_item(self) -> ManifestItem:
        """Return this item as announced on the wire (without the local path)."""
        return ManifestItem(
            kind=self.kind,
            title=self.title,
            sha256=self.sha256,
            size_bytes=self.size_bytes,
            page=self.page,
            url=self.url,
            text=self.text,
            duration_ms=self.duration_ms,
            source_url=self.source_url,
        )


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file of a lesson folder that is left out: ``problem`` says why (a
    :class:`~protocol.errors.MediaError`, worded by the caller like a load error)."""

    path: Path
    problem: MediaError


@dataclass(frozen=True, slots=True)
class Lesson:
    """A loaded lesson, ready to cast.

    Build one with :func:`load_lesson` or :func:`make_lesson`, which compute
    ``lesson_id`` from the content. ``skipped`` lists the files of a lesson folder that
    cannot be shown and were left out: warn the teacher about each, then cast the rest.
    """

    lesson_id: str
    title: str
    items: tuple[LessonItem, ...]
    subject: str | None = None
    source_url: str | None = None
    skipped: tuple[SkippedFile, ...] = ()

    def manifest(self) -> LessonManifest:
        """Return the manifest sent in ``cast``."""
        return LessonManifest(
            lesson_id=self.lesson_id,
            title=self.title,
            items=[item.manifest_item() for item in self.items],
            subject=self.subject,
            source_url=self.source_url,
        )

    def blob_paths(self) -> dict[str, Path]:
        """Return each distinct blob of the lesson once: sha256 → local file."""
        paths: dict[str, Path] = {}
        for item in self.items:
            if item.sha256 is not None and item.path is not None:
                paths.setdefault(item.sha256, item.path)
        return paths

    @property
    def total_bytes(self) -> int:
        """Sum of the sizes of the lesson's distinct blobs."""
        sizes = {item.sha256: item.size_bytes for item in self.items if item.sha256 is not None}
        return sum(sizes.values())


def lesson_id_for(title: str, items: Iterable[LessonItem]) -> str:
    """Return the content-derived id of a lesson.

    The id is the first 32 hex digits of the sha256 of the canonical JSON of the title
    and the items as announced (local paths excluded), so the same content loaded
    from another folder has the same id.
    """
    canonical = {
        "title": title,
        "items": [_manifest_dict(item.manifest_item()) for item in items],
    }
    data = json.dumps(canonical, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:LESSON_ID_HEX_CHARS]


def _manifest_dict(item: ManifestItem) -> dict[str, object]:
    return {
        "kind": item.kind,
        "title": item.title,
        "sha256": item.sha256,
        "size_bytes": item.size_bytes,
        "page": item.page,
        "url": item.url,
        "text": item.text,
        "duration_ms": item.duration_ms,
        "source_url": item.source_url,
    }


def make_lesson(
    title: str,
    items: Sequence[LessonItem],
    *,
    subject: str | None = None,
    source_url: str | None = None,
) -> Lesson:
    """Build a lesson from items, checking the protocol limits and computing its id.

    Args:
        title: the lesson title (1 to ``MAX_STRING_CHARS`` characters).
        items: 1 to ``MAX_ITEMS_PER_LESSON`` items.
        subject: optional school subject.
        source_url: optional content-source URL.

    Returns:
        The lesson; its ``manifest()`` passes the protocol codec.

    Raises:
        LessonError: a limit is broken (no items, too many, a title too long, too many
            bytes in total).
    """
    if not items:
        raise LessonError(f"lesson {title!r} has no items", reason="no_items")
    if len(items) > MAX_ITEMS_PER_LESSON:
        raise LessonError(
            f"lesson {title!r} has {len(items)} items, over the limit of {MAX_ITEMS_PER_LESSON}"
            " (a PDF counts one item per page)",
            reason="too_many_items",
            values={"limit": MAX_ITEMS_PER_LESSON},
        )
    _check_string(title, "title")
    if subject is not None:
        _check_string(subject, "subject")
    if source_url is not None:
        _check_url(source_url, "source")
    for n, item in enumerate(items, 1):
        _check_string(item.title, "title", n)
    lesson = Lesson(
        lesson_id=lesson_id_for(title, items),
        title=title,
        items=tuple(items),
        subject=subject,
        source_url=source_url,
    )
    if lesson.total_bytes > MAX_LESSON_BYTES:
        raise LessonError(
            f"lesson {title!r} has {lesson.total_bytes} bytes of media, over the limit of "
            f"{MAX_LESSON_BYTES}",
            reason="too_many_bytes",
            values={"size_bytes": lesson.total_bytes, "limit_bytes": MAX_LESSON_BYTES},
        )
    return lesson


def sample_lesson_path() -> Path:
    """Return the folder of the bundled sample lesson (``Фотосинтез``)."""
    return Path(__file__).resolve().parent / "sample_lesson"


# --------------------------------------------------------------------------- loading


def load_lesson(
    source: Path | Sequence[Path],
    *,
    library_hosts: Sequence[str] = DEFAULT_LIBRARY_HOSTS,
    converter: OfficeConverter | None = None,
) -> Lesson:
    """Load a lesson from a folder, a ``lesson.toml``, one file or a list of files.

    Every file is probed by content and hashed; pass the result's ``manifest()`` to
    ``cast`` and serve ``blob_paths()`` to kiosks that need them.

    Args:
        source: a folder, a ``.toml`` file, a media file, or a sequence of media files.
        library_hosts: the recognised content-library hosts (the controller's setting,
            :meth:`controller.home.Home.library_hosts`), for web items.
        converter: makes office documents (.pptx, .odp, .docx…) into PDFs; without
            one, such a document is refused (``no_office``).

    Returns:
        The lesson, items in order; a PDF contributes one item per page.

    Raises:
        LessonError: a path does not exist, a folder is empty, ``lesson.toml`` is
            invalid, a text file is too long, or a protocol limit is broken.
        UnknownContentError: a file is of no supported kind.
        CorruptContentError: a file of a supported kind does not decode.
    """
    loader = _Loader(library_hosts, converter)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        _check_exists(path)
        if path.is_dir():
            toml_path = path / LESSON_TOML
            if toml_path.is_file():
                return loader.from_toml(toml_path)
            return loader.from_folder(path)
        if path.suffix.lower() == ".toml":
            return loader.from_toml(path)
        return loader.from_files([path], title=path.stem)
    paths = [Path(p) for p in source]
    if not paths:
        raise LessonError("no lesson files given", reason="no_files")
    for p in paths:
        _check_exists(p)
        if not p.is_file():
            raise LessonError(
                f"lesson file is not a regular file: {p}", path=str(p), reason="not_a_file"
            )
    title = paths[0].stem if len(paths) == 1 else DEFAULT_MULTI_FILE_TITLE
    return loader.from_files(paths, title=title)


# --------------------------------------------------------------------------- web links


def load_sources(
    sources: Sequence[str],
    *,
    library_hosts: Sequence[str] = DEFAULT_LIBRARY_HOSTS,
    converter: OfficeConverter | None = None,
) -> Lesson:
    """Load a lesson from what ``classcast cast`` is given, in the order given.

    Each source that has a scheme (``https://…``; :func:`media.weblink.looks_like_url`)
    is one web item; any other is a local path: a folder or ``lesson.toml`` gives its
    items, a file its item (a PDF one per page). Without any web address this is
    :func:`load_lesson`, titles and all; one address alone is titled by its host;
    a mix is titled ``DEFAULT_MULTI_FILE_TITLE``.

    Args:
        sources: web addresses and paths, as typed.
        library_hosts: the recognised content-library hosts (normalised,
            :func:`media.weblink.library_hosts`).
        converter: makes office documents into PDFs, as for :func:`load_lesson`.

    Raises:
        LessonError: a web address is refused (``reason`` in
            :data:`media.weblink.LINK_ERROR_REASONS`), or as :func:`load_lesson`.
        UnknownContentError, CorruptContentError: as :func:`load_lesson`.
    """
    if not sources:
        raise LessonError("no lesson files given", reason="no_files")
    if not any(looks_like_url(s) for s in sources):
        paths = [Path(s) for s in sources]
        return load_lesson(
            paths[0] if len(paths) == 1 else paths,
            library_hosts=library_hosts,
            converter=converter,
        )
    loader = _Loader(library_hosts, converter)
    items: list[LessonItem] = []
    for source in sources:
        if looks_like_url(source):
            items.append(web_link_item(source, library_hosts=library_hosts))
        else:
            items.extend(loader.source_items(Path(source)))
        _check_count(items)
    only = items[0].url if len(sources) == 1 else None
    return make_lesson(link_title(only) if only else DEFAULT_MULTI_FILE_TITLE, items)


def web_link_item(
    text: str, *, library_hosts: Sequence[str] = DEFAULT_LIBRARY_HOSTS, title: str | None = None
) -> LessonItem:
    """The web item of an address a teacher typed or pasted, checked
    (:func:`media.weblink.parse_link`); titled ``title``, else by its host.

    Its ``source_url`` is its URL when the host is in ``library_hosts`` (library
    content), else ``None``.

    Raises:
        LessonError: the address is refused (``reason`` in
            :data:`media.weblink.LINK_ERROR_REASONS`).
    """
    url = parse_link(text)
    return LessonItem(
        "web",
        title if title else link_title(url),
        url=url,
        source_url=_library_source(url, library_hosts),
    )


def _toml_link(value: str, item: int) -> str:
    """The ``url`` of the ``item``-th ``[[items]]`` table, checked as a typed link is."""
    try:
        return parse_link(value)
    except LessonError as exc:
        raise LessonError(
            f"item {item}: {exc}", reason=exc.reason, item=item, values=exc.values
        ) from None


def _library_source(url: str, library_hosts: Sequence[str]) -> str | None:
    return url if library_host(url, library_hosts) is not None else None


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting ``slide2`` before ``slide10``, case-insensitively."""
    parts = _NATURAL_SPLIT.split(name.casefold())
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in parts if part)


def is_system_file(name: str) -> bool:
    """Whether a file named ``name`` is one that systems, not teachers, put in folders:
    hidden files (``.DS_Store``, ``._*``), ``Thumbs.db``, ``desktop.ini``, and office
    lock files (``~$deck.pptx``). A lesson folder passes over them silently."""
    return name.startswith((".", "~$")) or name.casefold() in SYSTEM_FILE_NAMES


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise LessonError(f"lesson path does not exist: {path}", path=str(path), reason="missing")


def _where(item: int | None) -> str:
    return "lesson" if item is None else f"item {item}"


def _check_string(value: str, key: str, item: int | None = None) -> None:
    """Check a text setting (``key`` of the lesson, or of its ``item``-th item)."""
    what = f"{_where(item)} {key}"
    if not value.strip():
        raise LessonError(f"{what} is empty", reason="empty", item=item, values={"key": key})
    if len(value) > MAX_STRING_CHARS:
        raise LessonError(
            f"{what} is longer than {MAX_STRING_CHARS} characters",
            reason="too_long",
            item=item,
            values={"key": key, "limit": MAX_STRING_CHARS},
        )


def _check_url(value: str, key: str, item: int | None = None) -> None:
    if not value.startswith(("http://", "https://")):
        raise LessonError(
            f"{_where(item)} {key} must be an http or https URL: {value!r}",
            reason="not_a_url",
            item=item,
            values={"key": key, "value": value},
        )
    _check_string(value, key, item)


@dataclass(frozen=True, slots=True)
class _Hashed:
    sha256: str
    size_bytes: int


class _Loader:
    """Loads one lesson; hashes each distinct file once."""

    def __init__(
        self,
        library_hosts: Sequence[str] = DEFAULT_LIBRARY_HOSTS,
        converter: OfficeConverter | None = None,
    ) -> None:
        self._hashes: dict[Path, _Hashed] = {}
        self.library_hosts = tuple(library_hosts)
        self._converter = converter

    def from_folder(self, folder: Path) -> Lesson:
        """Every file that can be shown; the others in ``Lesson.skipped``."""
        files = sorted(
            (p for p in folder.iterdir() if not is_system_file(p.name) and p.is_file()),
            key=lambda p: (natural_key(p.name), p.name),
        )
        if not files:
            raise LessonError(
                f"lesson folder has no files: {folder}", path=str(folder), reason="empty_folder"
            )
        skipped: dict[Path, MediaError] = {}
        for path in files:  # every size first, as from_files does
            try:
                check_file_size(path)
            except OSError as exc:
                skipped[path] = _unreadable(path, exc)
            except FileTooLargeError as exc:
                skipped[path] = exc
        items: list[LessonItem] = []
        office_problems: list[MediaError] = []
        for path in files:
            if path in skipped:
                continue
            try:
                items.extend(
                    self.file_items(path, title=path.stem, duration_ms=None, source_url=None)
                )
            except MediaError as exc:
                skipped[path] = exc  # left out with a warning naming it
                if path.suffix.lower() in OFFICE_SUFFIXES:
                    office_problems.append(exc)
            _check_count(items)
        if not items:
            if office_problems:
                raise office_problems[0]
            names = [p.name for p in skipped]
            shown = ", ".join(names[:MAX_SKIPPED_NAMES])
            if len(names) > MAX_SKIPPED_NAMES:
                shown += f" (+{len(names) - MAX_SKIPPED_NAMES})"
            raise LessonError(
                f"no file of the lesson folder can be shown: {shown}",
                path=str(folder),
                reason="nothing_to_show",
                values={"files": shown},
            )
        lesson = make_lesson(folder.resolve().name, items)
        return dataclasses.replace(
            lesson,
            skipped=tuple(SkippedFile(path, skipped[path]) for path in files if path in skipped),
        )

    def from_files(self, files: Sequence[Path], *, title: str) -> Lesson:
        for path in files:  # every size first: a huge last file stops the load at once
            try:
                check_file_size(path)
            except OSError as exc:
                raise LessonError(
                    f"cannot read {path}: {exc.strerror or exc}",
                    path=str(path),
                    reason="unreadable",
                ) from None
        items: list[LessonItem] = []
        for path in files:
            items.extend(self.file_items(path, title=path.stem, duration_ms=None, source_url=None))
            _check_count(items)
        return make_lesson(title, items)

    def from_toml(self, toml_path: Path) -> Lesson:
        try:
            size = toml_path.stat().st_size
            if size > MAX_LESSON_TOML_BYTES:
                raise FileTooLargeError(
                    f"{toml_path}: {size} bytes is over the limit of {MAX_LESSON_TOML_BYTES} "
                    "bytes for a lesson.toml",
                    path=str(toml_path),
                    size_bytes=size,
                    limit_bytes=MAX_LESSON_TOML_BYTES,
                    what="lesson.toml",
                )
            with toml_path.open("rb") as f:
                doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            line = _TOML_LINE.search(str(exc))
            raise LessonError(
                f"{toml_path}: invalid TOML: {exc}",
                path=str(toml_path),
                reason="bad_toml",
                values={"line": int(line.group(1))} if line else {},
            ) from None
        except UnicodeDecodeError as exc:
            raise LessonError(
                f"{toml_path}: not UTF-8: {exc}", path=str(toml_path), reason="not_utf8"
            ) from None
        except OSError as exc:
            raise LessonError(
                f"cannot read {toml_path}: {exc}", path=str(toml_path), reason="unreadable"
            ) from None
        try:
            return self._from_doc(doc, toml_path)
        except LessonError as exc:
            if exc.path is not None:
                raise
            raise LessonError(
                f"{toml_path}: {exc}",
                path=str(toml_path),
                reason=exc.reason,
                item=exc.item,
                values=exc.values,
            ) from None

    def _from_doc(self, doc: dict[str, Any], toml_path: Path) -> Lesson:
        for key in doc:
            if key not in _TOP_KEYS:
                allowed = ", ".join(sorted(_TOP_KEYS))
                raise LessonError(
                    f"unknown key {key!r}; allowed: {allowed}",
                    reason="unknown_key",
                    values={"key": key, "allowed": allowed},
                )
        title = _opt_str(doc, "title")
        if title is None:
            raise LessonError("'title' is required", reason="no_title")
        subject = _opt_str(doc, "subject")
        source = _opt_str(doc, "source")
        raw_items = doc.get("items")
        if not isinstance(raw_items, list) or not raw_items:
            raise LessonError("needs at least one [[items]] table", reason="no_item_tables")
        base = toml_path.parent
        items: list[LessonItem] = []
        for n, raw in enumerate(raw_items, 1):
            if not isinstance(raw, dict):
                raise LessonError(
                    f"item {n} must be a table ([[items]])", reason="not_a_table", item=n
                )
            items.extend(self._toml_item(raw, n, base, source))
            _check_count(items)
        return make_lesson(title, items, subject=subject, source_url=source)

    def _toml_item(
        self, raw: dict[str, Any], n: int, base: Path, lesson_source: str | None
    ) -> list[LessonItem]:
        where = f"item {n}"
        for key in raw:
            if key not in _ITEM_KEYS:
                allowed = ", ".join(sorted(_ITEM_KEYS))
                raise LessonError(
                    f"{where}: unknown key {key!r}; allowed: {allowed}",
                    reason="unknown_key",
                    item=n,
                    values={"key": key, "allowed": allowed},
                )
        given = [key for key in _CONTENT_KEYS if key in raw]
        if len(given) != 1:
            raise LessonError(
                f"{where}: needs exactly one of 'file', 'url' or 'text'",
                reason="content_keys",
                item=n,
            )
        title = _opt_str(raw, "title", n)
        source = _opt_str(raw, "source", n)
        if source is not None:
            _check_url(source, "source", n)
        source = source if source is not None else lesson_source
        duration_ms = _duration_ms(raw, n)
        key = given[0]
        value = _opt_str(raw, key, n)
        assert value is not None
        if key == "url":
            _check_url(value, "url", n)
            value = _toml_link(value, n)
            return [
                LessonItem(
                    "web",
                    title if title is not None else value,
                    url=value,
                    duration_ms=duration_ms,
                    source_url=source or _library_source(value, self.library_hosts),
                )
            ]
        if key == "text":
            if len(value) > MAX_TEXT_ITEM_CHARS:
                raise LessonError(
                    f"{where}: text is longer than {MAX_TEXT_ITEM_CHARS} characters",
                    reason="text_too_long",
                    item=n,
                    values={"limit": MAX_TEXT_ITEM_CHARS},
                )
            return [
                LessonItem(
                    "text",
                    title if title is not None else _text_title(value, f"Текст {n}"),
                    text=value,
                    duration_ms=duration_ms,
                    source_url=source,
                )
            ]
        path = _inside(base, value, n)
        return self.file_items(
            path,
            title=title if title is not None else path.stem,
            duration_ms=duration_ms,
            source_url=source,
        )

    def file_items(
        self, path: Path, *, title: str, duration_ms: int | None, source_url: str | None
    ) -> list[LessonItem]:
        if path.suffix.lower() == SHORTCUT_SUFFIX:
            return [self.shortcut_item(path, title=title, duration_ms=duration_ms)]
        page_titles: tuple[str | None, ...] = ()
        converted = self._convert_office(path)
        if converted is not None:
            path, page_titles = converted.pdf, converted.titles
        probe = probe_file(path)
        path = _shown_file(path, probe)
        if probe.kind == "text":
            return [
                LessonItem(
                    "text",
                    title,
                    text=_read_text(path),
                    duration_ms=duration_ms,
                    source_url=source_url,
                )
            ]
        hashed = self._hash(path)
        if probe.kind == "pdf":
            pages = probe.pages or 0
            if len(page_titles) != pages:
                page_titles = ()  # hidden slides, say: page numbers are safer
            return [
                LessonItem(
                    "pdf",
                    (page_titles[page] if page_titles else None) or f"{title} — с. {page + 1}",
                    path=path,
                    sha256=hashed.sha256,
                    size_bytes=hashed.size_bytes,
                    page=page,
                    duration_ms=duration_ms,
                    source_url=source_url,
                )
                for page in range(pages)
            ]
        return [
            LessonItem(
                probe.kind,
                title,
                path=path,
                sha256=hashed.sha256,
                size_bytes=hashed.size_bytes,
                duration_ms=duration_ms,
                source_url=source_url,
            )
        ]

    def shortcut_item(self, path: Path, *, title: str, duration_ms: int | None) -> LessonItem:
        """The web item of a Windows Internet shortcut (``.url`` file)."""
        try:
            with path.open("rb") as f:
                data = f.read(MAX_SHORTCUT_READ_BYTES)
        except OSError as exc:
            raise LessonError(
                f"cannot read {path}: {exc}", path=str(path), reason="unreadable"
            ) from None
        try:
            url = shortcut_url(data)
        except LessonError as exc:
            raise LessonError(
                f"{path}: {exc}", path=str(path), reason=exc.reason, values=exc.values
            ) from None
        item = web_link_item(url, library_hosts=self.library_hosts, title=title)
        return dataclasses.replace(item, duration_ms=duration_ms)

    def source_items(self, path: Path) -> list[LessonItem]:
        """The items of one local argument of :func:`load_sources`: a folder, a
        ``lesson.toml`` or a media file."""
        _check_exists(path)
        if path.is_dir():
            toml_path = path / LESSON_TOML
            lesson = self.from_toml(toml_path) if toml_path.is_file() else self.from_folder(path)
            return list(lesson.items)
        if path.suffix.lower() == ".toml":
            return list(self.from_toml(path).items)
        return list(self.from_files([path], title=path.stem).items)

    def _convert_office(self, path: Path) -> Converted | None:
        """The PDF of an office document (see :mod:`media.office`), or None for other files."""
        try:
            check_file_size(path)
            with path.open("rb") as f:
                head = f.read(OFFICE_HEAD_BYTES)
        except OSError as exc:
            raise LessonError(
                f"cannot read {path}: {exc.strerror or exc}", path=str(path), reason="unreadable"
            ) from None
        if office_kind(path, head) is None:
            if path.suffix.lower() in OFFICE_SUFFIXES:
                # Named as a document but not one (cut short, or another file renamed):
                # said as such, not as whatever the probe would take it for.
                raise LessonError(
                    f"{path}: not a valid {path.suffix.lower()} document",
                    path=str(path),
                    reason="office_failed",
                )
            return None
        if self._converter is None:
            raise LessonError(
                f"{path}: office documents need a converter", path=str(path), reason="no_office"
            )
        return self._converter.to_pdf(path, self._hash(path).sha256)

    def _hash(self, path: Path) -> _Hashed:
        key = path.resolve()
        cached = self._hashes.get(key)
        if cached is not None:
            return cached
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as f:
                while block := f.read(HASH_READ_BYTES):
                    digest.update(block)
                    size += len(block)
        except OSError as exc:
            raise LessonError(
                f"cannot read {path}: {exc}", path=str(path), reason="unreadable"
            ) from None
        if size > MAX_BLOB_BYTES:  # pragma: no cover - probe_file rejects it first
            raise LessonError(
                f"{path}: over {MAX_BLOB_BYTES} bytes", path=str(path), reason="too_many_bytes"
            )
        hashed = _Hashed(digest.hexdigest(), size)
        self._hashes[key] = hashed
        return hashed


def _shown_file(path: Path, probe: Probe) -> Path:
    """The file a panel is sent for ``path``: an SVG's PNG rendering, else ``path``."""
    if probe.mime == SVG_MIME:
        from media.svg import render_svg

        return render_svg(path)
    return path


def _unreadable(path: Path, exc: OSError) -> LessonError:
    return LessonError(
        f"cannot read {path}: {exc.strerror or exc}", path=str(path), reason="unreadable"
    )


def _check_count(items: list[LessonItem]) -> None:
    if len(items) > MAX_ITEMS_PER_LESSON:
        raise LessonError(
            f"lesson has more than {MAX_ITEMS_PER_LESSON} items (a PDF counts one item per page)",
            reason="too_many_items",
            values={"limit": MAX_ITEMS_PER_LESSON},
        )


def _opt_str(table: dict[str, Any], key: str, item: int | None = None) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise LessonError(
            f"{_where(item)}: {key!r} must be a string",
            reason="not_a_string",
            item=item,
            values={"key": key},
        )
    return value


def _duration_ms(raw: dict[str, Any], item: int) -> int | None:
    value = raw.get("duration")
    if value is None:
        return None
    limit_s = MAX_DURATION_MS // 1000
    ms = (
        round(value * 1000)
        if not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
        else None
    )
    if ms is None or not 0 < ms <= MAX_DURATION_MS:
        raise LessonError(
            f"item {item}: 'duration' must be a number of seconds, more than 0 and at most "
            f"{limit_s}",
            reason="bad_duration",
            item=item,
            values={"limit_s": limit_s},
        )
    return ms


def _inside(base: Path, relative: str, item: int) -> Path:
    """Resolve ``relative`` under ``base``, refusing absolute paths and escapes."""
    where = f"item {item}"
    if not relative or Path(relative).is_absolute() or relative.startswith(("/", "\\")):
        raise LessonError(
            f"{where}: 'file' must be a path relative to the lesson folder",
            reason="not_relative",
            item=item,
            values={"file": relative},
        )
    path = base / relative
    root = base.resolve()
    if not path.resolve().is_relative_to(root):
        raise LessonError(
            f"{where}: file {relative!r} is outside the lesson folder",
            reason="outside",
            item=item,
            values={"file": relative},
        )
    if not path.exists():
        raise LessonError(
            f"{where}: file not found: {path}",
            reason="file_not_found",
            item=item,
            values={"file": relative},
        )
    if not path.is_file():
        raise LessonError(
            f"{where}: not a regular file: {path}",
            reason="not_a_file",
            item=item,
            values={"file": relative},
        )
    return path


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:  # pragma: no cover - probe_file read it just before
        raise LessonError(
            f"cannot read {path}: {exc}", path=str(path), reason="unreadable"
        ) from None
    if len(text) > MAX_TEXT_ITEM_CHARS:
        raise LessonError(
            f"{path}: text of {len(text)} characters is over the limit of {MAX_TEXT_ITEM_CHARS}",
            path=str(path),
            reason="text_too_long",
            values={"limit": MAX_TEXT_ITEM_CHARS},
        )
    return text


def _text_title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        stripped = line.strip().lstrip("#").strip()
        if stripped:
            return stripped[:_TEXT_TITLE_CHARS]
    return fallback
