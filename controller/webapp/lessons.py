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

import contextlib
import functools
import io
import os
import re
import secrets
import shutil
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from controller.i18n import t
from media.lesson import (
    LESSON_TOML,
    SHORTCUT_SUFFIX,
    Lesson,
    LessonItem,
    is_system_file,
    load_lesson,
)
from media.markdown import (
    BULLET,
    SLIDE_BACKGROUND,
    SLIDE_HEADING,
    SLIDE_TEXT,
    Block,
    parse_markdown,
)
from media.office import OfficeConverter
from media.videoframe import FRAME_TIMEOUT_S, video_frame_png
from media.weblink import DEFAULT_LIBRARY_HOSTS, link_title
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

MAX_LIBRARY_BYTES: Final = 2 * MAX_LESSON_UPLOAD_BYTES
"""Bytes all the lessons dropped on the app may take on disk together (16 GiB): past
it, the oldest recent lessons are deleted, never the one shown or chosen now. A new
drop makes room for the size its page declares before its first byte."""

ABANDONED_UPLOAD_S: Final = 3600.0
"""A drop that has written nothing for this long (its page closed, the laptop slept
through it, the app stopped) is deleted, half-written files and all."""

UPLOAD_SWEEP_S: Final = 600.0
"""How often the app looks for abandoned drops and the library's size (and at start)."""

UPLOAD_MARKER: Final = ".upload"
"""A file in ``lessons/<key>/`` while its drop is not finished; such a folder is never
offered as a lesson, and is deleted once abandoned."""

THUMB_WIDTH: Final = 240
"""Width of an item's thumbnail in the strip (PNG)."""

THUMB_SIZE: Final = (THUMB_WIDTH, THUMB_WIDTH * 9 // 16)
"""Size of a text slide's thumbnail and of a video's icon: a panel's 16:9."""

MAX_CACHED_THUMBS: Final = 512
"""Thumbnails kept in memory (about 30 KB each)."""

MAX_THUMBNAIL_JOBS: Final = 2
"""Thumbnails made at once, in worker threads of their own (a video's is a libVLC child
process): a lesson of many videos starts no more processes than this on the teacher's
laptop, and waiting thumbnails never hold the threads a cast or a drop needs."""

MAX_FRAME_PIXELS: Final = 4096 * 4096
"""Largest picture read back from the frame grabber (it writes 320 pixels wide)."""

VIDEO_ICON_BACKGROUND: Final = (38, 50, 56)
"""The icon of a video without a picture: the panel's placeholder colour."""

TEXT_FONT: Final = "DejaVuSans.ttf"
TEXT_FONT_BOLD: Final = "DejaVuSans-Bold.ttf"
"""The panel's font (Debian fonts-dejavu-core), found by Pillow among the system's."""

KEY_RE: Final = re.compile(r"^[0-9a-f]{16}$")


class UploadError(Exception):
    """A dropped file was refused; ``str(exc)`` says why and what to do (Russian)."""


SYSTEM_FOLDERS: Final = frozenset({"__macosx"})
"""Folders systems add to a folder or a zip (macOS's resource forks), compared
case-insensitively."""


def is_system_path(raw: str) -> bool:
    """Whether a dropped file is one that systems, not teachers, put in folders
    (:func:`media.lesson.is_system_file`, or inside ``__MACOSX/``): the app takes it
    without a word and stores nothing, as ``classcast cast FOLDER`` passes over it."""
    parts = [p for p in raw.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p.startswith("..") for p in parts):
        return False  # a climb, not a system file: safe_relative_path refuses it loudly
    return any(is_system_file(p) or p.casefold() in SYSTEM_FOLDERS for p in parts)


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


def library_full_text() -> str:
    """What to do when the lessons kept by the app leave no room for a new one."""
    return t(
        "The lessons dropped on the app take {limit} already: show another recent "
        "lesson, then drop this one again, or split it into several lessons.",
        limit=_gib(MAX_LIBRARY_BYTES),
    )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _newest_mtime(base: Path) -> float:
    """The newest modification time in the tree under ``base`` (``base`` included)."""
    newest = _mtime(base)
    for folder, dirs, files in os.walk(base):
        for name in dirs + files:
            newest = max(newest, _mtime(Path(folder) / name))
    return newest


def _tree_bytes(base: Path) -> int:
    """Bytes of the files under ``base`` (links not followed)."""
    total = 0
    for folder, _, files in os.walk(base):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(folder) / name).lstat().st_size
    return total


def _gib(size: int) -> str:
    from controller.i18n import size_text

    return size_text(size)


class LessonLibrary:
    """The teacher's lessons under ``root`` (``CLASSCAST_HOME/lessons``); office documents
    in them are made into pages by ``converter`` (see :mod:`media.office`)."""

    def __init__(
        self,
        root: Path,
        library_hosts: Callable[[], Sequence[str]] = lambda: DEFAULT_LIBRARY_HOSTS,
        converter: OfficeConverter | None = None,
    ) -> None:
        self.root = root
        self.library_hosts = library_hosts
        """The recognised content-library hosts, read at each load (the controller's
        setting, :meth:`controller.home.Home.library_hosts`)."""
        self.converter = converter
        self.uploads: dict[str, Upload] = {}
        self._lessons: dict[str, tuple[float, Lesson]] = {}
        self._thumbs: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    # ----------------------------------------------------------------- drops

    def begin(
        self,
        title: str,
        *,
        total_bytes: int = 0,
        now: float | None = None,
        keep: Collection[str] = (),
    ) -> Upload:
        """Start a new lesson folder named ``title`` (sanitised); files go in with
        :meth:`Upload.target`, then call :meth:`finish`.

        Makes room for ``total_bytes`` (the size the page declares) first, deleting the
        oldest recent lessons but those in ``keep`` (see :meth:`prune`).

        Raises:
            UploadError: the lessons in ``keep`` leave no room for ``total_bytes``.
        """
        self.prune(time.time() if now is None else now, keep=keep, room_bytes=total_bytes)
        if self.used_bytes() + total_bytes > MAX_LIBRARY_BYTES:
            raise UploadError(library_full_text())
        name = clean_name(title).strip().replace("/", " ").replace("\\", " ")
        name = name.lstrip(".").strip()[:100] or t("Lesson")
        key = secrets.token_hex(8)
        base = self.root / key
        base.mkdir(parents=True, mode=0o700)
        (base / UPLOAD_MARKER).touch()  # before anything else: never taken for a lesson
        folder = base / name
        folder.mkdir(mode=0o700)
        upload = Upload(key, folder)
        self.uploads[key] = upload
        return upload

    def finish(self, key: str, *, now: float | None = None, keep: Collection[str] = ()) -> Lesson:
        """Close the drop ``key`` and load its lesson; then :meth:`prune` the library
        (keeping this lesson and ``keep``) so that it fits ``MAX_LIBRARY_BYTES``.

        Raises:
            KeyError: no such drop.
            ClassCastError: the lesson does not load (the CLI's error texts apply).
        """
        upload = self.uploads.pop(key)
        (upload.folder.parent / UPLOAD_MARKER).unlink(missing_ok=True)
        try:
            lesson = self.load(key)
        except Exception:
            shutil.rmtree(upload.folder.parent, ignore_errors=True)
            raise
        self.prune(time.time() if now is None else now, keep={key, *keep})
        return lesson

    def abandon(self, key: str) -> None:
        upload = self.uploads.pop(key, None)
        if upload is not None:
            shutil.rmtree(upload.folder.parent, ignore_errors=True)

    # ----------------------------------------------------------------- disk

    def prune(self, now: float, *, keep: Collection[str] = (), room_bytes: int = 0) -> list[str]:
        """Delete abandoned drops, then the oldest lessons until the rest take at most
        ``MAX_LIBRARY_BYTES - room_bytes``; returns the keys deleted.

        A drop is abandoned when nothing in it was written for ``ABANDONED_UPLOAD_S``
        before ``now`` (seconds since the epoch, as file times); one still being written
        is never touched. Lessons go oldest first (the order of :meth:`recent`), never
        one in ``keep`` (the lesson cast and the one chosen now). Blocks on the disk:
        call it from a worker thread.
        """
        deleted: list[str] = []
        lessons: list[tuple[float, str, int]] = []
        total = 0
        for base in self._keyed_folders():
            key = base.name
            if (base / UPLOAD_MARKER).exists():
                if now - _newest_mtime(base) >= ABANDONED_UPLOAD_S:
                    self.uploads.pop(key, None)
                    shutil.rmtree(base, ignore_errors=True)
                    deleted.append(key)
                else:
                    total += _tree_bytes(base)  # being written: counted, never deleted
                continue
            size = _tree_bytes(base)
            lessons.append((_mtime(base), key, size))
            total += size
        for _, key, size in sorted(lessons):
            if total + room_bytes <= MAX_LIBRARY_BYTES:
                break
            if key in keep:
                continue
            shutil.rmtree(self.root / key, ignore_errors=True)
            self._lessons.pop(key, None)
            for cached in [k for k in self._thumbs if k[0] == key]:
                del self._thumbs[cached]
            total -= size
            deleted.append(key)
        return deleted

    def used_bytes(self) -> int:
        """Bytes of every lesson and drop under :attr:`root`."""
        return sum(_tree_bytes(base) for base in self._keyed_folders())

    def _keyed_folders(self) -> list[Path]:
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return []
        return [e for e in entries if KEY_RE.match(e.name) and e.is_dir() and not e.is_symlink()]

    # ----------------------------------------------------------------- lessons

    def folder(self, key: str) -> Path | None:
        """The lesson folder of ``key``, or ``None`` (no such lesson, or a drop not
        finished)."""
        if not KEY_RE.match(key):
            return None
        base = self.root / key
        if (base / UPLOAD_MARKER).exists():
            return None
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
        lesson = load_lesson(folder, library_hosts=self.library_hosts(), converter=self.converter)
        self._lessons[key] = (mtime, lesson)
        os.utime(folder.parent)  # recent first
        return lesson

    # ----------------------------------------------------------------- links

    def add_link(self, url: str, *, key: str | None, keep: Collection[str] = ()) -> str:
        """Add the web address ``url`` (checked: :func:`media.lesson.web_link_item`) to
        the lesson ``key``, or make a one-item lesson of it when ``key`` names none;
        returns the lesson's key. Blocks on the disk: call it from a worker thread.

        The link is kept as the folder would keep it: a ``[[items]]`` table added at the
        end of the lesson's ``lesson.toml``, or else a Windows Internet shortcut
        (:func:`link_shortcut_name`) that takes its place in the folder's name order.

        Raises:
            UploadError: the library has no room for a new lesson.
            ClassCastError: the lesson with the link does not load (the link is taken
                back).
        """
        folder = self.folder(key) if key is not None else None
        if key is None or folder is None:
            upload = self.begin(link_title(url), keep=keep)
            (upload.folder / link_shortcut_name(upload.folder, url)).write_bytes(link_shortcut(url))
            self.finish(upload.key, keep=keep)
            return upload.key
        toml_path = folder / LESSON_TOML
        if toml_path.is_file():
            before = toml_path.read_bytes()
            toml_path.write_bytes(before + f'\n[[items]]\nurl = "{url}"\n'.encode())

            def undo() -> None:
                toml_path.write_bytes(before)

        else:
            shortcut = folder / link_shortcut_name(folder, url)
            shortcut.write_bytes(link_shortcut(url))

            def undo() -> None:
                shortcut.unlink(missing_ok=True)

        for cached in [k for k in self._thumbs if k[0] == key]:
            del self._thumbs[cached]  # the strip's numbers may have moved
        try:
            self.load(key)
        except Exception:
            undo()
            raise
        return key

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


def link_shortcut(url: str) -> bytes:
    """A Windows Internet shortcut (``.url`` file) to ``url``, as Windows writes one."""
    return f"[InternetShortcut]\r\nURL={url}\r\n".encode("ascii")


def link_shortcut_name(folder: Path, url: str) -> str:
    """A free file name in ``folder`` for a shortcut to ``url``: «Ссылка N — host.url»."""
    host = link_title(url).replace("/", " ")[: MAX_NAME_BYTES // 4]
    n = 1
    while True:
        name = t("Link {n} — {host}", n=n, host=host) + SHORTCUT_SUFFIX
        if not (folder / name).exists():
            return name
        n += 1


def render_thumbnail(item: LessonItem) -> bytes | None:
    """A PNG ``THUMB_WIDTH`` wide of an item: an image, a PDF page, a picture of a video
    (its icon when libVLC gives none in ``FRAME_TIMEOUT_S``: a broken video), a text
    slide drawn as the panel lays it out; ``None`` for web pages (an icon in the page).

    Blocks for as long as a video's picture takes: call it from a worker thread.
    """
    if item.kind == "text":
        picture = text_thumbnail(item.text or "", item.title)
    elif item.path is None:
        return None
    elif item.kind == "image":
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
    elif item.kind == "video":
        picture = video_thumbnail(item.path)
    else:
        return None
    out = io.BytesIO()
    picture.save(out, "PNG", optimize=True)
    return out.getvalue()


# --------------------------------------------------------------------------- videos


def video_thumbnail(path: Path, *, timeout_s: float = FRAME_TIMEOUT_S) -> Image.Image:
    """A picture of the video at ``path`` (see :mod:`media.videoframe`), ``THUMB_WIDTH``
    wide; :func:`video_icon` when none came within ``timeout_s`` or it does not decode."""
    png = video_frame_png(path, timeout_s=timeout_s)
    if png is None:
        return video_icon()
    try:
        with Image.open(io.BytesIO(png)) as image:
            if image.format != "PNG" or image.width * image.height > MAX_FRAME_PIXELS:
                return video_icon()
            picture = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return video_icon()
    picture.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 3 // 4))
    return picture


def video_icon() -> Image.Image:
    """A video without a picture: a white ▶ on the panel's dark placeholder colour."""
    width, height = THUMB_SIZE
    image = Image.new("RGB", THUMB_SIZE, VIDEO_ICON_BACKGROUND)
    side = height // 3
    left, top = (width - side) // 2 + side // 8, (height - side) // 2
    ImageDraw.Draw(image).polygon(
        [(left, top), (left, top + side), (left + side * 7 // 8, top + side // 2)],
        fill=(255, 255, 255),
    )
    return image


# --------------------------------------------------------------------------- text slides

TEXT_FIT_STEPS: Final = 8
"""Times a text thumbnail's type is shrunk by 0.85 to fit, as the panel does."""


@functools.lru_cache(maxsize=64)
def _font(bold: bool, size_px: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(TEXT_FONT_BOLD if bold else TEXT_FONT, size_px)
    except OSError:  # no DejaVu (fonts-dejavu-core): Pillow's own font, still legible
        return ImageFont.load_default(size_px)


def text_thumbnail(text: str, title: str) -> Image.Image:
    """A text slide as the panel lays it out, ``THUMB_SIZE``: a light page, headings bold
    and blue, list items with a bullet, ``**bold**`` in bold, the Markdown markers gone,
    the type shrunk until it fits (what does not fit after that is cut at the bottom)."""
    blocks = parse_markdown(text) or [Block("heading", ((title, False),), 1)]
    width, height = THUMB_SIZE
    margin_x, margin_y = width // 14, height // 12
    size = height / 18  # the panel's size, in pixels of this page
    for _ in range(TEXT_FIT_STEPS):
        lines, used = _layout(blocks, size, width - 2 * margin_x)
        if used <= height - 2 * margin_y:
            break
        size *= 0.85
    image = Image.new("RGB", THUMB_SIZE, SLIDE_BACKGROUND[:3])
    draw = ImageDraw.Draw(image)
    for x, y, piece, bold, font_px, colour in lines:
        draw.text((margin_x + x, margin_y + y), piece, font=_font(bold, font_px), fill=colour)
    return image


def slide_text(text: str) -> str:
    """A text slide's words without the Markdown markers (a thumbnail's ``alt``)."""
    return " ".join("".join(piece for piece, _ in b.spans) for b in parse_markdown(text))


_Line = tuple[float, float, str, bool, float, tuple[int, int, int]]


def _layout(blocks: list[Block], size: float, width: float) -> tuple[list[_Line], float]:
    """Pieces of text placed (x, y from the top left of the text area) and the height
    used, wrapped at ``width``: the panel's layout (``kiosk/scenes.py``) in Pillow."""
    placed: list[_Line] = []
    y = 0.0
    for block in blocks:
        heading = block.kind == "heading"
        font_px = size * (1.6 if block.level <= 1 else 1.3) if heading else size
        colour = (SLIDE_HEADING if heading else SLIDE_TEXT)[:3]
        indent = round(size * 0.8) if block.kind == "item" else 0
        words = [
            (word, bold or heading)
            for text, bold in block.spans
            for word in re.split(r"(?<=\s)", text)
            if word
        ]
        if block.kind == "item":
            words.insert(0, (BULLET, False))
        line_height = font_px * 1.3
        x = float(indent)
        for word, bold in words:
            advance = _font(bold, font_px).getlength(word)
            if x > indent and x + advance > width and word.strip():
                x, y = float(indent), y + line_height
            placed.append((x, y, word, bold, font_px, colour))
            x += advance
        y += line_height + font_px * (0.6 if block.kind == "item" else 0.9)
    return placed, y
