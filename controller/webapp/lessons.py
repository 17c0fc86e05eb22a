"""Lessons the teacher drops into the app: saved as folders under ``CLASSCAST_HOME/lessons``.

A drop becomes one lesson folder, ``lessons/<key>/<title>/``: ``key`` is random (the
app's name for the lesson in URLs), ``title`` the dropped folder's name (the lesson's
title, as ``classcast cast FOLDER`` takes it). Each file arrives in a request of its
own with its relative path (a folder drop carries ``sub/dir/file.png``), and
:func:`safe_relative_path` decides where it goes: never outside the lesson folder.

Limits, checked while the bytes arrive (:class:`Upload`): a file of at most
``MAX_BLOB_BYTES``, a lesson of at most ``MAX_LESSON_UPLOAD_BYTES`` and ``MAX_UPLOAD_FILES``
files, paths of at most ``MAX_PATH_PARTS`` parts of ``MAX_NAME_BYTES`` each — the
media limits a cast would enforce anyway, applied before the disk fills.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

from PIL import Image

from controller.i18n import t
from media.lesson import Lesson, LessonItem, load_lesson
from protocol.limits import MAX_BLOB_BYTES, MAX_ITEMS_PER_LESSON, MAX_LESSON_BYTES
from protocol.text import clean_name

MAX_UPLOAD_FILES: Final = MAX_ITEMS_PER_LESSON + 1
"""Files in one dropped lesson: as many as a lesson has items, plus its ``lesson.toml``."""

MAX_LESSON_UPLOAD_BYTES: Final = MAX_LESSON_BYTES
"""Bytes of one dropped lesson, all files together: as much as a cast may send."""

MAX_PATH_PARTS: Final = 8
"""Folders deep a dropped file may be (``a/b/c/file.png`` has 4 parts)."""

MAX_NAME_BYTES: Final = 255
"""Bytes of one file or folder name in UTF-8 (what Linux file systems take)."""

MAX_RECENT_LESSONS: Final = 20
"""Recent lessons the page offers."""

THUMB_WIDTH: Final = 240
"""Width of an item's thumbnail in the strip (PNG)."""

MAX_CACHED_THUMBS: Final = 512
"""Thumbnails kept in memory (about 30 KB each)."""

KEY_RE: Final = re.compile(r"^[0-9a-f]{16}$")


class UploadError(Exception):
    """A dropped file was refused; ``str(exc)`` says why and what to do (Russian)."""


def safe_relative_path(raw: str) -> PurePosixPath:
    """The relative path of a dropped file, made safe to join to the lesson folder.

    Backslashes count as separators; empty and ``.`` parts are dropped; control and
    format characters are removed from names. Refused: ``..`` anywhere, an absolute
    path or a drive (``C:``), hidden names (starting with ``.``), too many parts or too
    long a name.

    Raises:
        UploadError: the path is refused.
    """
    parts = [p for p in raw.replace("\\", "/").split("/") if p not in ("", ".")]
    if raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", raw):
        raise UploadError(t("The file name {name} is not allowed.", name=clean_name(raw)))
    if not parts or len(parts) > MAX_PATH_PARTS:
        raise UploadError(t("The file name {name} is not allowed.", name=clean_name(raw)))
    cleaned: list[str] = []
    for part in parts:
        name = unicodedata.normalize("NFC", clean_name(part)).strip()
        if (
            name in ("", ".", "..")
            or part == ".."
            or name.startswith(".")
            or "\x00" in part
            or len(name.encode("utf-8")) > MAX_NAME_BYTES
        ):
            raise UploadError(t("The file name {name} is not allowed.", name=clean_name(raw)))
        cleaned.append(name)
    return PurePosixPath(*cleaned)


@dataclass(slots=True)
class Upload:
    """A lesson folder being filled by a drop; the library hands it out by ``key``."""

    key: str
    folder: Path
    files: int = 0
    total_bytes: int = 0

    def target(self, relative: PurePosixPath) -> Path:
        """Where a dropped file goes: inside :attr:`folder`, whatever its path said.

        Raises:
            UploadError: too many files, or the path leaves the folder (a link).
        """
        if self.files >= MAX_UPLOAD_FILES:
            raise UploadError(
                t(
                    "A lesson holds at most {count} files: split it into several lessons.",
                    count=MAX_UPLOAD_FILES,
                )
            )
        path = self.folder.joinpath(*relative.parts)
        if not path.parent.resolve().is_relative_to(self.folder.resolve()):
            raise UploadError(t("The file name {name} is not allowed.", name=str(relative)))
        return path

    def stored(self, size_bytes: int) -> None:
        """Count a file of ``size_bytes`` written in full."""
        self.files += 1
        self.total_bytes += size_bytes


def too_large_file_text(name: str) -> str:
    """What to do about a dropped file over ``MAX_BLOB_BYTES``."""
    return t(
        "{path}: the file is over the limit of {limit} per file. Make it smaller "
        "(compress the video, split the document) or leave it out of the lesson.",
        path=name,
        limit=_gib(MAX_BLOB_BYTES),
    )


def too_large_lesson_text() -> str:
    """What to do about a dropped lesson over ``MAX_LESSON_UPLOAD_BYTES``."""
    return t(
        "The lesson is larger than {limit}: split it into several lessons.",
        limit=_gib(MAX_LESSON_UPLOAD_BYTES),
    )


def _gib(size: int) -> str:
    from controller.i18n import size_text

    return size_text(size)


class LessonLibrary:
    """The teacher's lessons under ``root`` (``CLASSCAST_HOME/lessons``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads: dict[str, Upload] = {}
        self._lessons: dict[str, tuple[float, Lesson]] = {}
        self._thumbs: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    # ----------------------------------------------------------------- drops

    def begin(self, title: str) -> Upload:
        """Start a new lesson folder named ``title`` (sanitised); files go in with
        :meth:`Upload.target`, then call :meth:`finish`."""
        name = clean_name(title).strip().replace("/", " ").replace("\\", " ")
        name = name.lstrip(".").strip()[:100] or t("Lesson")
        key = secrets.token_hex(8)
        folder = self.root / key / name
        folder.mkdir(parents=True, mode=0o700)
        upload = Upload(key, folder)
        self.uploads[key] = upload
        return upload

    def finish(self, key: str) -> Lesson:
        """Close the drop ``key`` and load its lesson.

        Raises:
            KeyError: no such drop.
            ClassCastError: the lesson does not load (the CLI's error texts apply).
        """
        upload = self.uploads.pop(key)
        try:
            return self.load(key)
        except Exception:
            shutil.rmtree(upload.folder.parent, ignore_errors=True)
            raise

    def abandon(self, key: str) -> None:
        upload = self.uploads.pop(key, None)
        if upload is not None:
            shutil.rmtree(upload.folder.parent, ignore_errors=True)

    # ----------------------------------------------------------------- lessons

    def folder(self, key: str) -> Path | None:
        """The lesson folder of ``key``, or ``None``."""
        if not KEY_RE.match(key):
            return None
        base = self.root / key
        try:
            entries = [p for p in base.iterdir() if p.is_dir() and not p.is_symlink()]
        except OSError:
            return None
        return entries[0] if len(entries) == 1 else None

    def recent(self) -> list[tuple[str, str]]:
        """(key, title) of the most recent finished lessons, newest first."""
        found: list[tuple[float, str, str]] = []
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return []
        for entry in entries:
            if entry.name in self.uploads or not KEY_RE.match(entry.name):
                continue
            folder = self.folder(entry.name)
            if folder is not None:
                found.append((entry.stat().st_mtime, entry.name, folder.name))
        found.sort(reverse=True)
        return [(key, title) for _, key, title in found[:MAX_RECENT_LESSONS]]

    def load(self, key: str) -> Lesson:
        """The lesson of ``key`` (cached while its folder is unchanged).

        Raises:
            KeyError: no such lesson.
            ClassCastError: the lesson does not load.
        """
        folder = self.folder(key)
        if folder is None:
            raise KeyError(key)
        mtime = max(
            [folder.stat().st_mtime] + [p.stat().st_mtime for p in folder.iterdir()],
        )
        cached = self._lessons.get(key)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        lesson = load_lesson(folder)
        self._lessons[key] = (mtime, lesson)
        os.utime(folder.parent)  # recent first
        return lesson

    # ----------------------------------------------------------------- thumbnails

    def thumbnail(self, key: str, index: int) -> bytes | None:
        """A small PNG of item ``index`` of lesson ``key`` (images and PDF pages), or
        ``None`` for items shown by an icon (videos, web pages, text slides)."""
        cached = self._thumbs.get((key, index))
        if cached is not None:
            self._thumbs.move_to_end((key, index))
            return cached
        lesson = self.load(key)
        if not 0 <= index < len(lesson.items):
            raise KeyError(index)
        png = render_thumbnail(lesson.items[index])
        if png is not None:
            self._thumbs[(key, index)] = png
            while len(self._thumbs) > MAX_CACHED_THUMBS:
                self._thumbs.popitem(last=False)
        return png


def render_thumbnail(item: LessonItem) -> bytes | None:
    """A PNG ``THUMB_WIDTH`` wide of an image or a PDF page; ``None`` for other kinds."""
    if item.path is None:
        return None
    if item.kind == "image":
        with Image.open(item.path) as image:
            image.draft("RGB", (THUMB_WIDTH, THUMB_WIDTH))  # JPEG: decode small
            picture = image.convert("RGB")
        picture.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 3 // 4))
    elif item.kind == "pdf":
        import pypdfium2 as pdfium  # type: ignore[import-untyped]

        doc = pdfium.PdfDocument(item.path)
        try:
            page = doc[item.page or 0]
            try:
                width, _ = page.get_size()
                bitmap = page.render(scale=THUMB_WIDTH / width, fill_color=(255, 255, 255, 255))
                picture = bitmap.to_pil().convert("RGB")
            finally:
                page.close()
        finally:
            doc.close()
    else:
        return None
    out = io.BytesIO()
    picture.save(out, "PNG", optimize=True)
    return out.getvalue()
