"""Kind probing by content: media.probe."""

from __future__ import annotations

import codecs
import struct
from pathlib import Path

import pytest
from PIL import Image

from media import probe as probe_module
from media.lesson import sample_lesson_path
from media.probe import MAX_TEXT_FILE_BYTES, Probe, mp4_picture_size, probe_file
from protocol.errors import (
    CorruptContentError,
    FileTooLargeError,
    LessonError,
    PictureTooLargeError,
    UnknownContentError,
)
from protocol.limits import MAX_BLOB_BYTES, MAX_PICTURE_PIXELS, MAX_TEXT_ITEM_CHARS
from tests.helpers import jpeg_of_size, png_bytes

# --------------------------------------------------------------------------- helpers


def write_image(path: Path, fmt: str, color: str = "#2e7d32") -> Path:
    Image.new("RGB", (64, 48), color).save(path, fmt)
    return path


def write_pdf(path: Path, pages: int) -> Path:
    images = [Image.new("RGB", (80, 60), c) for c in ("red", "green", "blue", "white")[:pages]]
    images[0].save(path, "PDF", save_all=True, append_images=images[1:])
    return path


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


FTYP = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")


def mvhd(version: int, timescale: int, duration: int) -> bytes:
    if version == 1:
        fields = struct.pack(">QQIQ", 1, 2, timescale, duration)
    else:
        fields = struct.pack(">IIII", 1, 2, timescale, duration)
    return box(b"mvhd", bytes([version, 0, 0, 0]) + fields + bytes(80))


def ebml(doctype: bytes) -> bytes:
    version = b"\x42\x86\x81\x01"
    doc = b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype
    body = version + doc
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(body)]) + body + bytes(16)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_images_are_probed_by_content(tmp_path: Path, fmt: str, mime: str) -> None:
    path = write_image(tmp_path / f"picture.{fmt.lower()}", fmt)
    assert probe_file(path) == Probe("image", mime)


def test_png_renamed_to_txt_is_still_an_image(tmp_path: Path) -> None:
    path = write_image(tmp_path / "notes.txt", "PNG")
    assert probe_file(path) == Probe("image", "image/png")


def test_text_named_png_is_text_because_content_wins(tmp_path: Path) -> None:
    path = tmp_path / "slide.png"
    path.write_text("Это не картинка, а текст.\n", encoding="utf-8")
    assert probe_file(path) == Probe("text", "text/plain")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_corrupt_image_names_the_file(tmp_path: Path, fmt: str) -> None:
    good = write_image(tmp_path / "good", fmt).read_bytes()
    path = write(tmp_path / "broken.img", good[:12] + bytes(range(256)) * 2)
    with pytest.raises(CorruptContentError, match=r"broken\.img") as info:
        probe_file(path)
    assert info.value.path == str(path)


# --------------------------------------------------------------------------- PDF


def test_pdf_counts_pages(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "doc.bin", 3)
    assert probe_file(path) == Probe("pdf", "application/pdf", pages=3)


def test_broken_pdf_is_corrupt(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.pdf", b"%PDF-1.4\n" + b"garbage " * 50)
    with pytest.raises(CorruptContentError, match=r"broken\.pdf"):
        probe_file(path)


def pdf_without_pages() -> bytes:
    """A well-formed PDF whose page tree is empty."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{off:010d} 00000 n \n".encode() for off in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return out


def test_pdf_without_pages_is_corrupt(tmp_path: Path) -> None:
    """PDFium itself refuses an empty page tree; either way the file is corrupt."""
    path = write(tmp_path / "empty.pdf", pdf_without_pages())
    with pytest.raises(CorruptContentError, match=r"empty\.pdf"):
        probe_file(path)


# --------------------------------------------------------------------------- MP4 / MOV


def test_sample_video_duration_from_mvhd() -> None:
    result = probe_file(sample_lesson_path() / "05-opyt.mp4")
    assert result == Probe("video", "video/mp4", duration_ms=2000)


@pytest.mark.parametrize("version", [0, 1])
def test_mvhd_versions(tmp_path: Path, version: int) -> None:
    moov = box(b"moov", box(b"udta", b"xx") + mvhd(version, 600, 600 * 95 + 300))
    path = write(tmp_path / "clip.mov", FTYP + box(b"free", b"") + moov)
    assert probe_file(path) == Probe("video", "video/mp4", duration_ms=95_500)


def test_mvhd_unknown_duration_is_none(tmp_path: Path) -> None:
    path = write(tmp_path / "live.mp4", FTYP + box(b"moov", mvhd(0, 1000, 0xFFFFFFFF)))
    assert probe_file(path).duration_ms is None


def test_large_mdat_is_skipped_without_reading_it(tmp_path: Path) -> None:
    """A 64-bit box size is followed; the file is sparse, so reading it would show."""
    mdat_size = 3 * 1024 * 1024 * 1024 // 2  # 1.5 GiB, under MAX_BLOB_BYTES
    path = tmp_path / "big.mp4"
    with path.open("wb") as f:
        f.write(FTYP + struct.pack(">I4sQ", 1, b"mdat", mdat_size))
        f.seek(len(FTYP) + mdat_size)
        f.write(box(b"moov", mvhd(0, 1000, 1234)))
    assert probe_file(path).duration_ms == 1234


def test_box_of_size_zero_runs_to_end_of_file(tmp_path: Path) -> None:
    moov = box(b"moov", mvhd(0, 1000, 777))
    path = write(tmp_path / "tail.mp4", FTYP + struct.pack(">I4s", 0, b"moov") + moov[8:])
    assert probe_file(path).duration_ms == 777


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (FTYP + box(b"mdat", bytes(64)), "no 'moov'"),
        (FTYP + box(b"moov", box(b"trak", bytes(8))), "no 'mvhd'"),
        (FTYP + box(b"moov", box(b"mvhd", b"\x00\x00")), "truncated"),
        (FTYP + box(b"moov", box(b"mvhd", bytes(10))), "truncated"),
        (FTYP + box(b"moov", mvhd(0, 0, 100)), "zero timescale"),
        (FTYP + struct.pack(">I4s", 4, b"moov") + bytes(16), "bad size"),
        (FTYP + struct.pack(">I4s", 500, b"moov") + bytes(16), "bad size"),
        (FTYP + struct.pack(">I4s", 1, b"moov"), "no 'moov'"),
        (FTYP + b"\x00\x00", "no 'moov'"),
    ],
)
def test_broken_mp4_is_corrupt(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path / "broken.mp4", data)
    with pytest.raises(CorruptContentError, match=message):
        probe_file(path)


def test_heif_is_not_taken_for_a_video(tmp_path: Path) -> None:
    path = write(tmp_path / "photo.heic", box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic"))
    with pytest.raises(UnknownContentError, match="HEIF"):
        probe_file(path)


# --------------------------------------------------------------------------- WebM / MKV


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (ebml(b"webm"), "video/webm"),
        (ebml(b"matroska"), "video/x-matroska"),
        (b"\x1a\x45\xdf\xa3\x00" + bytes(20), "video/x-matroska"),  # unreadable size
        (b"\x1a\x45\xdf\xa3", "video/x-matroska"),  # magic only
        (b"\x1a\x45\xdf\xa3\x88\x42\x86\x81\x01" + b"\x42\x82\x84\xffweb", "video/x-matroska"),
        (b"\x1a\x45\xdf\xa3\x84\x42\x86\x81\x01", "video/x-matroska"),  # no DocType
        (b"\x1a\x45\xdf\xa3\x85\x42\x86\x88", "video/x-matroska"),  # truncated vint
        (b"\x1a\x45\xdf\xa3\x88\x42\x82\x84\xffwebm", "video/x-matroska"),  # not ASCII
    ],
)
def test_ebml_doctype(tmp_path: Path, data: bytes, mime: str) -> None:
    path = write(tmp_path / "clip.bin", data)
    assert probe_file(path) == Probe("video", mime)


# --------------------------------------------------------------------------- HTML and text


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html>\n<html><body>Hi</body></html>",
        b"\xef\xbb\xbf \r\n\t<!doctype HTML><p>\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
        b"<HTML lang=ru></HTML>",
    ],
)
def test_html_by_content(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "page.txt", data)
    assert probe_file(path) == Probe("web", "text/html")


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("notes.md", "text/markdown"),
        ("NOTES.MARKDOWN", "text/markdown"),
        ("notes.txt", "text/plain"),
        ("notes", "text/plain"),
    ],
)
def test_text_mime_by_suffix(tmp_path: Path, name: str, mime: str) -> None:
    path = tmp_path / name
    path.write_text("# Фотосинтез\n\nСвет + вода.\n", encoding="utf-8")
    assert probe_file(path) == Probe("text", mime)


def test_multibyte_character_across_the_head_is_still_text(tmp_path: Path) -> None:
    # The first 4 KiB end inside a character: still text, refused only for its size.
    data = b"a" * 4095 + "Ж".encode() + b"b" * MAX_TEXT_FILE_BYTES
    with pytest.raises(FileTooLargeError) as caught:
        probe_file(write(tmp_path / "long.txt", data))
    assert caught.value.what == "text"
    assert probe_file(write(tmp_path / "short.txt", data[:5000])).kind == "text"


def test_text_file_limit_at_both_ends(tmp_path: Path) -> None:
    # The most bytes a slide of MAX_TEXT_ITEM_CHARS characters can take: a BOM, then
    # characters of 4 UTF-8 bytes each.
    longest = codecs.BOM_UTF8 + "😀".encode() * MAX_TEXT_ITEM_CHARS
    assert len(longest) == MAX_TEXT_FILE_BYTES
    assert probe_file(write(tmp_path / "full.md", longest)) == Probe("text", "text/markdown")
    over = write(tmp_path / "over.md", longest + b"!")
    with pytest.raises(FileTooLargeError, match=f"{MAX_TEXT_FILE_BYTES + 1} bytes") as caught:
        probe_file(over)
    assert (caught.value.size_bytes, caught.value.limit_bytes) == (
        MAX_TEXT_FILE_BYTES + 1,
        MAX_TEXT_FILE_BYTES,
    )


def test_big_text_file_is_refused_from_its_size_unread(tmp_path: Path) -> None:
    """A 2 GB file with a text head: refused after its head, never streamed.

    Past its head the file is a hole of NUL bytes, so reading it would end in "unknown
    content" instead; /proc/self/io counts what this process read.
    """
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:
        f.write("Фотосинтез — это процесс. ".encode() * 400)  # > 4 KiB of text
        f.truncate(2_000_000_000)  # sparse: takes no disk space
    before = _bytes_read()
    with pytest.raises(FileTooLargeError, match="2000000000 bytes") as caught:
        probe_file(path)
    assert _bytes_read() - before < 64 * 1024
    assert caught.value.what == "text"


def test_big_binary_file_without_a_known_kind_is_unknown_unread(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    with path.open("wb") as f:
        f.write(bytes(range(256)) * 16)
        f.truncate(500_000_000)
    before = _bytes_read()
    with pytest.raises(UnknownContentError, match="unrecognised"):
        probe_file(path)
    assert _bytes_read() - before < 64 * 1024


def test_file_over_the_blob_limit_is_refused_from_its_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as f:
        f.write(png_bytes(64, 48))
        f.truncate(MAX_BLOB_BYTES + 1)
    before = _bytes_read()
    with pytest.raises(FileTooLargeError, match=f"{MAX_BLOB_BYTES + 1} bytes") as caught:
        probe_file(path)
    assert _bytes_read() - before < 4096
    assert (caught.value.what, caught.value.limit_bytes) == ("file", MAX_BLOB_BYTES)


def _bytes_read() -> int:
    """Bytes this process has read through read() and friends (Linux /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01\x02\x03binary",
        b"plain text with a NUL \x00 inside",
        b"latin-1 caf\xe9 here",
        "обрыв".encode()[:-1],  # ends inside a character
        bytes(range(128, 256)),
    ],
)
def test_unknown_binary(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "mystery.png", data)
    with pytest.raises(UnknownContentError, match=r"mystery\.png.*supported: presentations"):
        probe_file(path)


def test_empty_file_is_unknown(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.png", b"")
    with pytest.raises(UnknownContentError, match="empty"):
        probe_file(path)


def test_file_over_blob_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_module, "MAX_BLOB_BYTES", 10)
    assert probe_file(write(tmp_path / "ten.txt", b"x" * 10)).kind == "text"
    path = write(tmp_path / "big.txt", b"x" * 11)
    with pytest.raises(LessonError, match="over the limit"):
        probe_file(path)


# --------------------------------------------------------------------------- picture size

# 8000×5000 is exactly MAX_PICTURE_PIXELS; the pixel data is cut short, so a decoder would
# fail: these pass or fail on the header alone.
EXACT = (8000, 5000)


def test_picture_pixel_limit_at_both_ends(tmp_path: Path) -> None:
    assert EXACT[0] * EXACT[1] == MAX_PICTURE_PIXELS
    fits = write(tmp_path / "fits.png", png_bytes(*EXACT, decodable=False))
    assert probe_file(fits) == Probe("image", "image/png")
    over = write(tmp_path / "over.png", png_bytes(EXACT[0], EXACT[1] + 1, decodable=False))
    with pytest.raises(PictureTooLargeError, match="8000×5001 pixels") as caught:
        probe_file(over)
    assert (caught.value.width, caught.value.height) == (8000, 5001)


def test_huge_png_is_refused_from_its_header(tmp_path: Path) -> None:
    path = write(tmp_path / "bomb.png", png_bytes(13000, 13000))
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(PictureTooLargeError, match="13000×13000"):
        probe_file(path)


def test_picture_beyond_pillows_own_limit_is_too_large_not_corrupt(tmp_path: Path) -> None:
    path = write(tmp_path / "bomb.png", png_bytes(20000, 20000, decodable=False))
    with pytest.raises(PictureTooLargeError, match="pixels") as caught:
        probe_file(path)
    assert caught.value.width is None


def test_a_jpeg_counts_at_the_scale_a_panel_decodes_it(tmp_path: Path) -> None:
    # A panel decodes a JPEG at down to 1/8 per side (Pillow's draft): a 108 MP phone
    # photo is fine. Past twice Pillow's own limit (179 MP) it refuses to open any file.
    fits = write(tmp_path / "fits.jpg", jpeg_of_size(12000, 9000))
    assert probe_file(fits).kind == "image"
    over = write(tmp_path / "over.jpg", jpeg_of_size(20000, 10000))
    with pytest.raises(PictureTooLargeError):
        probe_file(over)
    png = write(tmp_path / "photo.png", png_bytes(12000, 9000, decodable=False))
    with pytest.raises(PictureTooLargeError):
        probe_file(png)


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(LessonError, match="cannot read"):
        probe_file(tmp_path)
    with pytest.raises(LessonError, match="cannot read"):
        probe_file(tmp_path / "missing.png")


def test_mp4_picture_size_is_the_track_headers() -> None:
    data = Path(__file__).parent / "data"
    assert mp4_picture_size(data / "padded-320x180.mp4") == (320, 180)  # decoded as 320x192
    assert mp4_picture_size(sample_lesson_path() / "05-opyt.mp4") == (320, 240)
    assert mp4_picture_size(sample_lesson_path() / "01-list.png") is None
    assert mp4_picture_size(data / "no-such-file.mp4") is None
