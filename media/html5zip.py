"""HTML5 lessons packed as a zip: ``index.html`` plus its assets, cast as one web item.

A zip comes from anywhere (an exported course, a download), so it is read as hostile,
from its central directory only, and nothing of it is ever extracted to disk:

* at most :data:`MAX_ENTRIES` entries, at most :data:`MAX_UNCOMPRESSED_BYTES` in all
  once uncompressed (as the central directory declares; reading an entry never yields
  more than it declares), and no entry over :data:`RATIO_FREE_BYTES` more than
  :data:`MAX_RATIO` times larger than it is compressed (a zip bomb);
* every name is normalised (``\\`` to ``/``, Unicode NFC) and must stay inside: no
  absolute path, drive letter, ``..`` or ``.`` part, empty part, control character, or
  name over :data:`MAX_NAME_CHARS`; no symbolic link, no encrypted entry, no two entries
  of the same name; only stored and deflated entries;
* ``index.html`` is at the root, or in the one top folder that holds everything
  (archivers often add one); macOS's ``__MACOSX/`` and ``.DS_Store`` entries are left
  out.

:func:`open_site` checks all that and returns an :class:`Html5Site`: the names the site
serves, relative to its root, each with its entry. The controller checks a zip before
it casts it (:func:`media.probe.probe_file`); the kiosk checks the blob again before it
serves it (:mod:`kiosk.webguard`), reading each file from the zip when asked.

Errors: :class:`~protocol.errors.LessonError` with ``path`` and a ``reason`` of
:data:`ZIP_ERROR_REASONS` (the controller words each in Russian, naming the file).
"""

from __future__ import annotations

import posixpath
import stat
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from protocol.errors import LessonError

ZIP_MAGIC: Final = b"PK\x03\x04"
"""How a zip file starts (its first local file header)."""

MAX_ENTRIES: Final = 2000
"""Most entries (files and folders) an HTML5 zip may hold."""

MAX_UNCOMPRESSED_BYTES: Final = 512 * 1024 * 1024
"""Most bytes its files may hold once uncompressed, all together."""

MAX_RATIO: Final = 100
"""Most times an entry (or the whole) may grow when uncompressed (a zip bomb)."""

RATIO_FREE_BYTES: Final = 1024 * 1024
"""Entries up to this size uncompressed are not held to :data:`MAX_RATIO` (a small
text file of spaces compresses well and harms nobody; many of them are bounded by
:data:`MAX_UNCOMPRESSED_BYTES`)."""

MAX_NAME_CHARS: Final = 512
"""Longest entry name, in characters."""

INDEX: Final = "index.html"
"""The page the site opens with."""

ZIP_ERROR_REASONS: Final = frozenset(
    {"zip_damaged", "zip_too_many_entries", "zip_bomb", "zip_unsafe_name", "zip_no_index"}
)
"""Every ``reason`` of the :class:`~protocol.errors.LessonError` this module raises."""

_JUNK_PARTS: Final = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})
_METHODS: Final = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})


@dataclass(frozen=True, slots=True)
class Html5Site:
    """A checked HTML5 zip: ``files`` maps each served name (relative to the site's
    root, e.g. ``css/style.css``) to its entry; ``index.html`` is one of them."""

    path: Path
    files: dict[str, zipfile.ZipInfo]


def is_zip(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a zip."""
    return head.startswith(ZIP_MAGIC)


def normalize_name(raw: str) -> str | None:
    """An entry's name as served (``/``-separated, NFC, no trailing ``/``), or None when
    it would not stay inside the site."""
    name = unicodedata.normalize("NFC", raw.replace("\\", "/"))
    if not name or len(name) > MAX_NAME_CHARS or name.startswith("/"):
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return None
    parts = name.rstrip("/").split("/")
    if ":" in parts[0]:  # C:foo, a drive letter
        return None
    if any(part in ("", ".", "..") for part in parts):
        return None
    return "/".join(parts)


def open_site(path: Path) -> Html5Site:
    """Check the zip at ``path`` (see the module docstring) and list what it serves.

    Reads the central directory only; call it again for a file that may have changed.

    Raises:
        LessonError: the zip is unsafe or not an HTML5 lesson (``reason`` in
            :data:`ZIP_ERROR_REASONS`, ``path`` the file).
        OSError: the file cannot be read.
    """
    where = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise LessonError(
            f"{path}: not a readable zip: {exc}", path=where, reason="zip_damaged"
        ) from None
    if len(infos) > MAX_ENTRIES:
        raise LessonError(
            f"{path}: {len(infos)} entries, over the limit of {MAX_ENTRIES}",
            path=where,
            reason="zip_too_many_entries",
            values={"limit": MAX_ENTRIES},
        )
    files: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = normalize_name(info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if name is None or kind == stat.S_IFLNK or info.flag_bits & 0x1:
            raise LessonError(
                f"{path}: unsafe entry {info.filename!r}",
                path=where,
                reason="zip_unsafe_name",
                values={"name": info.filename[:MAX_NAME_CHARS]},
            )
        if name in seen:
            raise LessonError(
                f"{path}: two entries named {name!r}",
                path=where,
                reason="zip_unsafe_name",
                values={"name": name},
            )
        seen.add(name)
        if info.is_dir() or set(name.split("/")) & _JUNK_PARTS:
            continue
        if info.compress_type not in _METHODS:
            raise LessonError(
                f"{path}: entry {name!r} uses compression method {info.compress_type}",
                path=where,
                reason="zip_damaged",
            )
        size, packed = info.file_size, info.compress_size
        total += size
        bomb = size > RATIO_FREE_BYTES and size > MAX_RATIO * max(packed, 1)
        if bomb or total > MAX_UNCOMPRESSED_BYTES:
            raise LessonError(
                f"{path}: entry {name!r} unpacks to {size} bytes from {packed} "
                f"({total} in all so far)",
                path=where,
                reason="zip_bomb",
                values={"limit_bytes": MAX_UNCOMPRESSED_BYTES, "ratio": MAX_RATIO},
            )
        files[name] = info
    return Html5Site(path, _rooted(path, files))


def _rooted(path: Path, files: dict[str, zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """``files`` relative to the folder that holds ``index.html``: the root, or the one
    top folder that holds everything."""
    if INDEX in files:
        return files
    tops = {name.split("/", 1)[0] for name in files}
    if len(tops) == 1 and "/" in next(iter(files), ""):
        (top,) = tops
        prefix = top + "/"
        if prefix + INDEX in files:
            return {name.removeprefix(prefix): info for name, info in files.items()}
    raise LessonError(
        f"{path}: no index.html at the root or in its one top folder",
        path=str(path),
        reason="zip_no_index",
    )


def content_type(name: str) -> str:
    """The ``Content-Type`` a file of the site is served with (by its suffix)."""
    suffix = posixpath.splitext(name)[1].lower()
    return CONTENT_TYPES.get(suffix, "application/octet-stream")


CONTENT_TYPES: Final[dict[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".ico": "image/x-icon",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".wasm": "application/wasm",
    ".vtt": "text/vtt; charset=utf-8",
}
"""Content types by suffix (fixed here, not the system's mime.types); anything else is
``application/octet-stream``, which the page's ``nosniff`` keeps from running."""
