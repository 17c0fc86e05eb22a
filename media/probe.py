"""Decide what a file is by its content, not by its name.

``probe_file`` reads the first bytes of a file and recognises, in this order:

==========================  =======  ====================================================
content                     kind     check
==========================  =======  ====================================================
PNG, JPEG, WebP, GIF, BMP,  image    Pillow's plugin for that type alone: ``verify()``
TIFF, AVIF (first bytes)             passes (PNG, JPEG, WebP) or the first picture decodes
``%PDF-``                   pdf      pypdfium2 must open it and count at least one page
``ftyp`` box at offset 4    video    ``moov/mvhd`` is read for the duration (MP4, MOV);
                                     brand ``avif``: an image; HEIC: refused
EBML magic                  video    docType ``webm`` or Matroska; no duration
``<!doctype html``/<html>   web      after an optional BOM and whitespace
``<svg`` root element       image    ``image/svg+xml``: :mod:`media.svg` renders it to PNG
a zip (``PK`` magic)        web      an HTML5 lesson: :func:`media.html5zip.open_site`
valid UTF-8 without NUL     text     ``text/markdown`` for ``.md``, else ``text/plain``
==========================  =======  ====================================================

Anything else raises ``UnknownContentError``. Only the bytes needed are read: a 2 GB
video costs a few box headers, not 2 GB of memory.

Sizes are checked from the file's metadata before anything is read: a file over
``MAX_BLOB_BYTES``, or a text file over ``MAX_TEXT_FILE_BYTES`` (more than the longest
text slide can take), raises ``FileTooLargeError`` after at most the first 4 KiB were
looked at. An image whose header gives more than ``MAX_PICTURE_PIXELS`` (counted at the
scale a panel decodes it at) raises ``PictureTooLargeError`` without decoding it.
"""

from __future__ import annotations

import codecs
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from media.html5zip import is_zip, open_site
from protocol.errors import (
    CorruptContentError,
    FileTooLargeError,
    LessonError,
    PictureTooLargeError,
    UnknownContentError,
)
from protocol.limits import MAX_BLOB_BYTES, MAX_PICTURE_PIXELS, MAX_TEXT_ITEM_CHARS
from protocol.messages import ItemKind

SUPPORTED_KINDS: Final = (
    "presentations and documents (PPTX, PPT, ODP, DOCX, DOC, ODT, RTF), PDF documents, "
    "PNG, JPEG, WebP, GIF (animated too), BMP, TIFF, AVIF or SVG images, "
    "MP4, MOV, WebM or MKV videos, HTML pages, HTML5 lesson zips, UTF-8 text or Markdown, "
    "and web links (http:// or https:// addresses, .url shortcuts)"
)
"""What ``probe_file`` recognises, in words for error messages."""

MARKDOWN_SUFFIXES: Final = frozenset({".md", ".markdown"})
"""Suffixes that turn a UTF-8 text file into ``text/markdown``."""

MAX_TEXT_FILE_BYTES: Final = 4 * MAX_TEXT_ITEM_CHARS + len(codecs.BOM_UTF8)
"""Largest text or Markdown file: ``MAX_TEXT_ITEM_CHARS`` characters of up to 4 UTF-8
bytes each, after an optional BOM. A larger file cannot be one text slide, so it is
refused from its size, unread."""

JPEG_MAX_REDUCTION: Final = 8
"""A JPEG can be decoded at 1/2, 1/4 or 1/8 of its size per side (Pillow ``draft``):
the panel does so to fit its screen, so a JPEG's pixels are counted at 1/8."""

# Pillow warns about images over 89 MP, which MAX_PICTURE_PIXELS refuses anyway (or, for
# a JPEG, decodes at a reduced scale): its warning would only alarm a teacher. Matched by
# Pillow's words, so that Pillow (and pypdfium2) are imported only once a file needs them.
warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit")

_HEAD_BYTES: Final = 4096
_READ_BYTES: Final = 1024 * 1024
_HEIF_BRANDS: Final = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"})
"""HEIC: Pillow opens it only with the pillow-heif plugin (libheif and an HEVC decoder),
which ClassCast does not depend on; such a photo is refused with a hint to save it as
JPEG. AVIF (``_AVIF_BRANDS``) Pillow opens itself."""
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
_IMAGE_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
"""First bytes of the raster images ``probe_file`` recognises (WebP and AVIF apart)."""
_EBML_MAGIC: Final = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE_ID: Final = 0x4282
_MVHD_UNKNOWN_DURATION: Final = frozenset({0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF})


@dataclass(frozen=True, slots=True)
class Probe:
    """What a file is.

    ``pages`` is set for a PDF; ``duration_ms`` for an MP4/MOV video whose header
    states it (``None`` when unknown).
    """

    kind: ItemKind
    mime: str
    pages: int | None = None
    duration_ms: int | None = None


def probe_file(path: Path) -> Probe:
    """Recognise the kind of ``path`` from its content.

    The caller decides what to do with the kind (see :func:`media.lesson.load_lesson`).

    Args:
        path: a regular file.

    Returns:
        The kind, MIME type and, where cheap to know, page count or duration.

    Raises:
        LessonError: the file cannot be read or is larger than ``MAX_BLOB_BYTES``.
        UnknownContentError: the file is empty or of no supported kind.
        CorruptContentError: the file looks like a supported kind but does not decode.
    """
    try:
        check_file_size(path)
        with path.open("rb") as f:
            size = _file_size(f)
            check_file_size(path, size)  # the file may have grown since
            if size == 0:
                raise UnknownContentError(
                    f"{path}: the file is empty; supported: {SUPPORTED_KINDS}", path=str(path)
                )
            head = f.read(_HEAD_BYTES)
            return _probe_open(path, f, head, size)
    except OSError as exc:
        raise LessonError(
            f"cannot read {path}: {exc.strerror or exc}", path=str(path), reason="unreadable"
        ) from None


def check_file_size(path: Path, size_bytes: int | None = None) -> int:
    """Refuse a lesson file over ``MAX_BLOB_BYTES`` from its size alone; return the size.

    Call it before reading a file (``size_bytes`` defaults to what ``stat`` says).

    Raises:
        FileTooLargeError: the file is larger than ``MAX_BLOB_BYTES``.
        OSError: the file cannot be looked at.
    """
    size = path.stat().st_size if size_bytes is None else size_bytes
    if size > MAX_BLOB_BYTES:
        raise FileTooLargeError(
            f"{path}: {size} bytes is over the limit of {MAX_BLOB_BYTES} bytes per file",
            path=str(path),
            size_bytes=size,
            limit_bytes=MAX_BLOB_BYTES,
            what="file",
        )
    return size


def _file_size(f: BinaryIO) -> int:
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    return size


def _probe_open(path: Path, f: BinaryIO, head: bytes, size: int) -> Probe:
    mime = _image_mime(head)
    if mime is not None:
        return _image(path, mime)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _image(path, "image/webp")
    if head.startswith(b"%PDF-"):
        return _pdf(path)
    if head[4:8] == b"ftyp":
        if head[8:12] in _AVIF_BRANDS:
            return _image(path, "image/avif")
        if head[8:12] in _HEIF_BRANDS:
            raise UnknownContentError(
                f"{path}: HEIF/AVIF images are not supported; supported: {SUPPORTED_KINDS}",
                path=str(path),
            )
        return Probe("video", "video/mp4", duration_ms=_mp4_duration_ms(path, f, size))
    if head.startswith(_EBML_MAGIC):
        doctype = _ebml_doctype(head)
        mime = "video/webm" if doctype == "webm" else "video/x-matroska"
        return Probe("video", mime)
    if _looks_like_html(head):
        return Probe("web", "text/html")
    if looks_like_svg(head):
        return Probe("image", SVG_MIME)
    if is_zip(head):
        return _html5_zip(path)
    if size > MAX_TEXT_FILE_BYTES:
        # Only text is left, and no text slide is this long: decide from the head alone.
        if _head_is_text(head):
            raise FileTooLargeError(
                f"{path}: {size} bytes is over the limit of {MAX_TEXT_FILE_BYTES} bytes for "
                f"a text slide ({MAX_TEXT_ITEM_CHARS} characters)",
                path=str(path),
                size_bytes=size,
                limit_bytes=MAX_TEXT_FILE_BYTES,
                what="text",
            )
        raise UnknownContentError(
            f"{path}: unrecognised content; supported: {SUPPORTED_KINDS}", path=str(path)
        )
    if _is_utf8_text(f):
        is_markdown = path.suffix.lower() in MARKDOWN_SUFFIXES
        return Probe("text", "text/markdown" if is_markdown else "text/plain")
    raise UnknownContentError(
        f"{path}: unrecognised content; supported: {SUPPORTED_KINDS}", path=str(path)
    )


def _html5_zip(path: Path) -> Probe:
    """A zip is an HTML5 lesson (one web item) if :func:`media.html5zip.open_site`
    finds it safe and with an ``index.html``; it raises LessonError otherwise."""
    open_site(path)
    return Probe("web", "application/zip")


# --------------------------------------------------------------------------- images and PDF


def _image_mime(head: bytes) -> str | None:
    for magic, mime in _IMAGE_MAGIC:
        if head.startswith(magic):
            if mime == "image/bmp" and len(head) >= 18 and head[6:10] != b"\0\0\0\0":
                return None  # "BM" then reserved zeros: else a text that starts with BM
            return mime
    return None


SVG_MIME: Final = "image/svg+xml"
"""An SVG picture: the controller renders it to PNG (:mod:`media.svg`); a panel never
parses SVG."""

_SVG_PROLOGUE: Final = re.compile(
    rb"\A(?:\s+|<\?xml[^>]*\?>|<!--.*?-->|<!DOCTYPE\s+svg\b(?:[^\[>]|\[.*?\])*>)*<svg[\s>/]",
    re.DOTALL | re.IGNORECASE,
)
"""What may come before the root ``<svg`` element: whitespace, the XML declaration,
comments and an ``svg`` DOCTYPE (its internal subset included)."""


def looks_like_svg(head: bytes) -> bool:
    """Whether the first bytes of a file start an SVG document (after an optional BOM)."""
    return _SVG_PROLOGUE.match(head.removeprefix(codecs.BOM_UTF8)) is not None


PILLOW_FORMATS: Final = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "image/avif": "AVIF",
}
"""The Pillow plugin of each raster type a lesson may hold. Pillow is told which one to
use, on the controller and on the panel (``kiosk.scenes``), so no other of its plugins
(EPS through Ghostscript, say) ever reads a lesson's file."""

_VERIFIED: Final = frozenset({"image/png", "image/jpeg", "image/webp"})
"""Types whose structure ``verify()`` checks cheaply; the first picture of the others
(GIF, BMP, TIFF, AVIF) is decoded instead, within ``MAX_PICTURE_PIXELS``."""


def _image(path: Path, mime: str) -> Probe:
    from PIL import Image

    try:
        with Image.open(path, formats=[PILLOW_FORMATS[mime]]) as img:
            check_picture_size(path, *img.size, reducible=mime == "image/jpeg")
            if mime in _VERIFIED:
                img.verify()
            else:
                img.load()
    except PictureTooLargeError:
        raise
    except Image.DecompressionBombError as exc:  # over twice Pillow's own limit
        raise PictureTooLargeError(
            f"{path}: over {MAX_PICTURE_PIXELS} pixels ({exc})", path=str(path)
        ) from None
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ...)
        raise CorruptContentError(
            f"{path}: {mime} image does not decode: {exc}", path=str(path)
        ) from None
    return Probe("image", mime)


def check_picture_size(path: Path | str, width: int, height: int, *, reducible: bool) -> None:
    """Refuse an image of ``width``×``height`` (from its header) over ``MAX_PICTURE_PIXELS``.

    Args:
        path: for the message.
        width: pixels, as the header says.
        height: pixels, as the header says.
        reducible: a JPEG, which a panel decodes at up to 1/``JPEG_MAX_REDUCTION``
            per side; its pixels are counted at that scale.

    Raises:
        PictureTooLargeError: too many pixels to decode.
    """
    scale = JPEG_MAX_REDUCTION if reducible else 1
    pixels = -(-width // scale) * -(-height // scale)
    if pixels > MAX_PICTURE_PIXELS:
        raise PictureTooLargeError(
            f"{path}: {width}×{height} pixels is over the limit of {MAX_PICTURE_PIXELS} "
            "pixels a panel decodes",
            path=str(path),
            width=width,
            height=height,
        )


def _pdf(path: Path) -> Probe:
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    try:
        doc = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        raise CorruptContentError(f"{path}: PDF does not open: {exc}", path=str(path)) from None
    try:
        pages = len(doc)
    finally:
        doc.close()
    if pages < 1:
        raise CorruptContentError(f"{path}: PDF has no pages", path=str(path))
    return Probe("pdf", "application/pdf", pages=pages)


# --------------------------------------------------------------------------- MP4 / MOV


def _mp4_duration_ms(path: Path, f: BinaryIO, size: int) -> int | None:
    """Walk the top-level boxes to ``moov``, then its children to ``mvhd``."""
    moov = _find_box(path, f, b"moov", 0, size)
    if moov is None:
        raise CorruptContentError(f"{path}: MP4/MOV file has no 'moov' box", path=str(path))
    mvhd = _find_box(path, f, b"mvhd", moov[0], moov[1])
    if mvhd is None:
        raise CorruptContentError(f"{path}: MP4/MOV 'moov' box has no 'mvhd'", path=str(path))
    start, end = mvhd
    f.seek(start)
    body = f.read(min(end - start, 32))
    if len(body) < 4:
        raise CorruptContentError(f"{path}: MP4/MOV 'mvhd' box is truncated", path=str(path))
    version = body[0]
    if version == 1:
        layout, need = ">QQIQ", 4 + 28
    else:
        layout, need = ">IIII", 4 + 16
    if len(body) < need:
        raise CorruptContentError(f"{path}: MP4/MOV 'mvhd' box is truncated", path=str(path))
    _created, _modified, timescale, duration = struct.unpack_from(layout, body, 4)
    if timescale == 0:
        raise CorruptContentError(f"{path}: MP4/MOV 'mvhd' has a zero timescale", path=str(path))
    if duration in _MVHD_UNKNOWN_DURATION:
        return None
    return int(duration * 1000 // timescale)


def mp4_picture_size(path: Path) -> tuple[int, int] | None:
    """The display size of an MP4/MOV file's first video track (its ``tkhd`` box).

    Decoders work in whole macroblocks and report 1920x1088 for a 1080p H.264 video;
    the track header holds the size to show. ``None`` when ``path`` is not an MP4/MOV
    file with a sized track, or cannot be read.
    """
    try:
        with path.open("rb") as f:
            size = _file_size(f)
            moov = _find_box(path, f, b"moov", 0, size)
            if moov is None:
                return None
            pos, end = moov
            while (trak := _find_box(path, f, b"trak", pos, end)) is not None:
                tkhd = _find_box(path, f, b"tkhd", trak[0], trak[1])
                if tkhd is not None and tkhd[1] - tkhd[0] >= 84:
                    f.seek(tkhd[1] - 8)  # width and height close the box, 16.16 fixed
                    width, height = struct.unpack(">II", f.read(8))
                    if width >> 16 and height >> 16:
                        return width >> 16, height >> 16
                pos = trak[1]
    except (OSError, CorruptContentError, struct.error):
        return None
    return None


def _find_box(path: Path, f: BinaryIO, want: bytes, start: int, end: int) -> tuple[int, int] | None:
    """Return the (body start, body end) of the first box ``want`` in [start, end)."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(16)  # at least 8 bytes: pos + 8 <= end <= file size
        box_size, box_type = struct.unpack_from(">I4s", header)
        header_len = 8
        if box_size == 1:
            if len(header) < 16:
                break
            (box_size,) = struct.unpack_from(">Q", header, 8)
            header_len = 16
        elif box_size == 0:
            box_size = end - pos
        if box_size < header_len or pos + box_size > end:
            raise CorruptContentError(
                f"{path}: MP4/MOV box {box_type!r} at byte {pos} has a bad size {box_size}",
                path=str(path),
            )
        if box_type == want:
            return pos + header_len, pos + box_size
        pos += box_size
    return None


# --------------------------------------------------------------------------- WebM / MKV


def _read_vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int]:
    """Read an EBML variable-length integer; return (value, next position)."""
    if pos >= len(data):
        raise ValueError("truncated EBML")
    first = data[pos]
    length = 1
    mask = 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8 or pos + length > len(data):
        raise ValueError("bad EBML vint")
    value = first if keep_marker else first & (mask - 1)
    for b in data[pos + 1 : pos + length]:
        value = (value << 8) | b
    return value, pos + length


def _ebml_doctype(head: bytes) -> str | None:
    """Return the DocType of the EBML header in ``head``, or None if it cannot be read."""
    try:
        pos = len(_EBML_MAGIC)
        header_size, pos = _read_vint(head, pos, keep_marker=False)
        end = min(len(head), pos + header_size)
        while pos < end:
            element_id, pos = _read_vint(head, pos, keep_marker=True)
            element_size, pos = _read_vint(head, pos, keep_marker=False)
            if element_id == _EBML_DOCTYPE_ID:
                return head[pos : pos + element_size].rstrip(b"\0").decode("ascii")
            pos += element_size
    except (ValueError, UnicodeDecodeError):
        return None
    return None


# --------------------------------------------------------------------------- HTML and text


def _looks_like_html(head: bytes) -> bool:
    text = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n\f").lower()
    return text.startswith((b"<!doctype html", b"<html"))


def _head_is_text(head: bytes) -> bool:
    """The first bytes of a file could start a UTF-8 text: no NUL, no invalid sequence
    (a character cut at the end of ``head`` is fine)."""
    if b"\0" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return False
    return True


def _is_utf8_text(f: BinaryIO) -> bool:
    """Stream the whole file: valid UTF-8 and no NUL byte anywhere."""
    f.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    while block := f.read(_READ_BYTES):
        if b"\0" in block:
            return False
        try:
            decoder.decode(block)
        except UnicodeDecodeError:
            return False
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True
