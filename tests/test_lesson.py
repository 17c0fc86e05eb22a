"""The lesson model and loading: media.lesson."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from media.lesson import (
    DEFAULT_MULTI_FILE_TITLE,
    MAX_LESSON_TOML_BYTES,
    Lesson,
    LessonItem,
    lesson_id_for,
    load_lesson,
    make_lesson,
    natural_key,
    sample_lesson_path,
)
from protocol.codec import decode, encode
from protocol.errors import FileTooLargeError, LessonError, UnknownContentError
from protocol.limits import MAX_BLOB_BYTES, MAX_ITEMS_PER_LESSON, MAX_TEXT_ITEM_CHARS
from protocol.messages import Cast

# --------------------------------------------------------------------------- helpers


def png(path: Path, color: str = "#2e7d32") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), color).save(path, "PNG")
    return path


def pdf(path: Path, pages: int) -> Path:
    images = [Image.new("RGB", (40, 30), c) for c in ("red", "green", "blue", "white")[:pages]]
    images[0].save(path, "PDF", save_all=True, append_images=images[1:])
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def round_trip(lesson: Lesson) -> None:
    msg = Cast(id=7, lesson=lesson.manifest())
    assert decode(encode(msg)) == msg


def toml(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lesson.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- folders


def test_folder_in_natural_order(tmp_path: Path) -> None:
    folder = tmp_path / "Клетка"
    for name in ("slide10.png", "slide2.png", "Slide1.png", "slide2b.png"):
        png(folder / name)
    (folder / ".hidden.png").write_bytes(b"ignored")
    (folder / "sub").mkdir()
    png(folder / "sub" / "inner.png")

    lesson = load_lesson(folder)

    assert lesson.title == "Клетка"
    assert [item.title for item in lesson.items] == ["Slide1", "slide2", "slide2b", "slide10"]
    assert all(item.kind == "image" for item in lesson.items)
    assert lesson.items[0].path == folder / "Slide1.png"
    assert lesson.items[0].duration_ms is None
    round_trip(lesson)


def test_natural_key() -> None:
    names = ["b", "A10", "a2", "a1b", "10", "2"]
    assert sorted(names, key=natural_key) == ["2", "10", "a1b", "a2", "A10", "b"]


def test_every_kind_of_file(tmp_path: Path) -> None:
    folder = tmp_path / "mix"
    png(folder / "1-image.png")
    pdf(folder / "2-doc.pdf", 3)
    (folder / "3-notes.md").write_text("# Заголовок\n\nТекст.\n", encoding="utf-8")
    (folder / "4-page.html").write_text("<!doctype html><p>Привет</p>", encoding="utf-8")
    shutil.copy(sample_lesson_path() / "05-opyt.mp4", folder / "5-clip.mp4")

    lesson = load_lesson(folder)

    kinds = [(item.kind, item.title, item.page) for item in lesson.items]
    assert kinds == [
        ("image", "1-image", None),
        ("pdf", "2-doc — с. 1", 0),
        ("pdf", "2-doc — с. 2", 1),
        ("pdf", "2-doc — с. 3", 2),
        ("text", "3-notes", None),
        ("web", "4-page", None),
        ("video", "5-clip", None),
    ]
    pages = lesson.items[1:4]
    assert {item.sha256 for item in pages} == {sha(folder / "2-doc.pdf")}
    text = lesson.items[4]
    assert text.text == "# Заголовок\n\nТекст.\n"
    assert (text.path, text.sha256, text.size_bytes) == (None, None, 0)
    web = lesson.items[5]
    assert web.url is None
    assert web.sha256 == sha(folder / "4-page.html")
    assert web.size_bytes == (folder / "4-page.html").stat().st_size
    video = lesson.items[6]
    assert video.duration_ms is None
    assert video.sha256 == sha(folder / "5-clip.mp4")
    round_trip(lesson)


def test_blob_paths_and_total_bytes_count_each_blob_once(tmp_path: Path) -> None:
    folder = tmp_path / "dup"
    a = png(folder / "a.png", "red")
    png(folder / "b.png", "red")  # same bytes as a.png
    doc = pdf(folder / "c.pdf", 2)

    lesson = load_lesson(folder)

    assert lesson.blob_paths() == {sha(a): a, sha(doc): doc}
    assert lesson.total_bytes == a.stat().st_size + doc.stat().st_size
    assert len(lesson.items) == 4


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / ".only-hidden").write_text("x")
    with pytest.raises(LessonError, match="no files"):
        load_lesson(tmp_path)


def test_missing_path() -> None:
    with pytest.raises(LessonError, match="lesson path does not exist: /no/such/lesson"):
        load_lesson(Path("/no/such/lesson"))


def test_a_folder_of_nothing_that_can_be_shown_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(LessonError, match=r"data\.bin") as caught:
        load_lesson(tmp_path)
    assert caught.value.reason == "nothing_to_show"
    assert caught.value.values == {"files": "data.bin"}


def test_an_unknown_file_named_on_its_own_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(UnknownContentError, match=r"data\.bin"):
        load_lesson([tmp_path / "data.bin"])


def test_text_file_too_long(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("я" * (MAX_TEXT_ITEM_CHARS + 1), encoding="utf-8")
    with pytest.raises(LessonError, match="over the limit"):
        load_lesson(path)


def bytes_read() -> int:
    """Bytes this process has read so far (Linux /proc/self/io ``rchar``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_file_over_the_limit_stops_the_load_before_any_file_is_read(tmp_path: Path) -> None:
    noise = Image.frombytes("RGB", (600, 600), os.urandom(600 * 600 * 3))
    noise.save(tmp_path / "01-noise.png", "PNG")  # 1 MB that probing and hashing would read
    assert (tmp_path / "01-noise.png").stat().st_size > 1_000_000
    with (tmp_path / "02-huge.mp4").open("wb") as f:
        f.truncate(MAX_BLOB_BYTES + 1)  # sparse: no disk space
    before = bytes_read()
    with pytest.raises(FileTooLargeError, match=r"02-huge\.mp4") as caught:
        load_lesson([tmp_path / "01-noise.png", tmp_path / "02-huge.mp4"])
    assert bytes_read() - before < 64 * 1024
    assert caught.value.size_bytes == MAX_BLOB_BYTES + 1
    # In a folder, the file is left out unread and the rest is shown.
    lesson = load_lesson(tmp_path)
    assert [item.title for item in lesson.items] == ["01-noise"]
    [skipped] = lesson.skipped
    assert skipped.path.name == "02-huge.mp4"
    assert isinstance(skipped.problem, FileTooLargeError)


def test_lesson_toml_size_limit_at_both_ends(tmp_path: Path) -> None:
    head = 'title = "Урок"\n[[items]]\ntext = "Привет"\n#'
    padding = MAX_LESSON_TOML_BYTES - len(head.encode()) - 1
    path = toml(tmp_path / "fits", head + "x" * padding + "\n")
    assert path.stat().st_size == MAX_LESSON_TOML_BYTES
    assert load_lesson(path).items[0].text == "Привет"
    over = tmp_path / "over" / "lesson.toml"
    over.parent.mkdir()
    with over.open("wb") as f:  # a hole of NUL bytes: invalid TOML, were it read
        f.write(head.encode())
        f.truncate(MAX_LESSON_TOML_BYTES + 1)
    before = bytes_read()
    with pytest.raises(FileTooLargeError, match=r"lesson\.toml") as caught:
        load_lesson(over.parent)
    assert bytes_read() - before < 64 * 1024
    assert caught.value.what == "lesson.toml"


def test_text_file_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffПривет".encode())
    assert load_lesson(path).items[0].text == "Привет"


def test_too_many_items_from_pdf_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import media.lesson as lesson_module

    monkeypatch.setattr(lesson_module, "MAX_ITEMS_PER_LESSON", 3)
    pdf(tmp_path / "doc.pdf", 4)
    with pytest.raises(LessonError, match="more than 3 items"):
        load_lesson(tmp_path / "doc.pdf")


# --------------------------------------------------------------------------- files


def test_single_file(tmp_path: Path) -> None:
    path = png(tmp_path / "Лист.png")
    lesson = load_lesson(path)
    assert lesson.title == "Лист"
    assert [item.title for item in lesson.items] == ["Лист"]
    round_trip(lesson)


def test_list_of_files_keeps_order(tmp_path: Path) -> None:
    b = png(tmp_path / "b.png", "blue")
    a = png(tmp_path / "a.png", "red")
    lesson = load_lesson([b, a])
    assert lesson.title == DEFAULT_MULTI_FILE_TITLE
    assert [item.path for item in lesson.items] == [b, a]
    assert load_lesson([a]).title == "a"


def test_list_of_files_errors(tmp_path: Path) -> None:
    with pytest.raises(LessonError, match="no lesson files"):
        load_lesson([])
    with pytest.raises(LessonError, match="does not exist"):
        load_lesson([tmp_path / "missing.png"])
    with pytest.raises(LessonError, match="not a regular file"):
        load_lesson([tmp_path])


# --------------------------------------------------------------------------- lesson.toml

FULL_TOML = """\
title = "Фотосинтез"
subject = "Биология"
source = "https://lib.example.ru/content/photosynthesis"

[[items]]
file = "img/leaf.png"
title = "Лист"
duration = 2.5

[[items]]
file = "doc.pdf"
source = "https://lib.example.ru/content/scheme"

[[items]]
url = "https://example.ru/quiz"
duration = 30

[[items]]
url = "http://example.ru/plain"
title = "Ссылка"

[[items]]
text = "\\n## Вывод\\nРастения дают кислород."

[[items]]
text = "   "
"""


def test_toml_all_fields(tmp_path: Path) -> None:
    folder = tmp_path / "lesson"
    leaf = png(folder / "img" / "leaf.png")
    doc = pdf(folder / "doc.pdf", 2)
    toml(folder, FULL_TOML)

    lesson = load_lesson(folder)

    assert (lesson.title, lesson.subject, lesson.source_url) == (
        "Фотосинтез",
        "Биология",
        "https://lib.example.ru/content/photosynthesis",
    )
    lib = "https://lib.example.ru/content/photosynthesis"
    assert lesson.items == (
        LessonItem(
            "image",
            "Лист",
            path=leaf,
            sha256=sha(leaf),
            size_bytes=leaf.stat().st_size,
            duration_ms=2500,
            source_url=lib,
        ),
        *(
            LessonItem(
                "pdf",
                f"doc — с. {n + 1}",
                path=doc,
                sha256=sha(doc),
                size_bytes=doc.stat().st_size,
                page=n,
                source_url="https://lib.example.ru/content/scheme",
            )
            for n in range(2)
        ),
        LessonItem(
            "web",
            "https://example.ru/quiz",
            url="https://example.ru/quiz",
            duration_ms=30_000,
            source_url=lib,
        ),
        LessonItem("web", "Ссылка", url="http://example.ru/plain", source_url=lib),
        LessonItem(
            "text",
            "Вывод",
            text="\n## Вывод\nРастения дают кислород.",
            source_url=lib,
        ),
        LessonItem("text", "Текст 6", text="   ", source_url=lib),
    )
    round_trip(lesson)


def test_toml_path_given_directly(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    path = tmp_path / "other.toml"
    path.write_text('title = "T"\n[[items]]\nfile = "a.png"\n', encoding="utf-8")
    lesson = load_lesson(path)
    assert lesson.title == "T"
    assert lesson.items[0].title == "a"
    assert lesson.subject is None
    assert lesson.items[0].source_url is None


def test_toml_same_file_twice_is_hashed_once(tmp_path: Path) -> None:
    a = png(tmp_path / "a.png")
    toml(tmp_path, 'title = "T"\n[[items]]\nfile = "a.png"\n[[items]]\nfile = "./a.png"\n')
    lesson = load_lesson(tmp_path)
    assert len(lesson.items) == 2
    assert lesson.blob_paths() == {sha(a): a}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[items]]\nfile = "../outside.png"\n', "outside the lesson folder"),
        ('[[items]]\nfile = "sub/../../outside.png"\n', "outside the lesson folder"),
        ('[[items]]\nfile = "/etc/passwd"\n', "relative"),
        ('[[items]]\nfile = ""\n', "relative"),
        ('[[items]]\nfile = "missing.png"\n', "file not found"),
        ('[[items]]\nfile = "sub"\n', "not a regular file"),
        ('[[items]]\nfile = "a.png"\ncolour = "red"\n', "item 1: unknown key 'colour'"),
        ('[[items]]\ntext = "a"\n[[items]]\nfile = "a.png"\nurl = "https://x.ru"\n', "item 2"),
        ('[[items]]\ntitle = "nothing"\n', "exactly one of"),
        ('[[items]]\nurl = "ftp://example.ru/file"\n', "http or https"),
        ("[[items]]\nurl = 5\n", "'url' must be a string"),
        ('[[items]]\ntext = "a"\nduration = 0\n', "duration"),
        ('[[items]]\ntext = "a"\nduration = -1.5\n', "duration"),
        ('[[items]]\ntext = "a"\nduration = true\n', "duration"),
        ('[[items]]\ntext = "a"\nduration = "5"\n', "duration"),
        ('[[items]]\ntext = "a"\nduration = nan\n', "duration"),
        ('[[items]]\ntext = "a"\nduration = 90000\n', "duration"),
        ('[[items]]\ntext = "a"\nsource = "lib"\n', "item 1 source must be an http"),
        ('[[items]]\ntext = "a"\ntitle = ""\n', "item 1 title is empty"),
        ('[[items]]\ntext = "a"\ntitle = "' + "x" * 1001 + '"\n', "longer than 1000"),
        (f'[[items]]\ntext = "{"я" * (MAX_TEXT_ITEM_CHARS + 1)}"\n', "text is longer"),
        ("items = [1]\n", "item 1 must be a table"),
        ("items = []\n", "at least one"),
        ("", "at least one"),
    ],
)
def test_toml_item_errors(tmp_path: Path, body: str, message: str) -> None:
    png(tmp_path / "outside.png")
    folder = tmp_path / "lesson"
    png(folder / "a.png")
    (folder / "sub").mkdir()
    toml(folder, 'title = "T"\n' + body)
    with pytest.raises(LessonError, match=message):
        load_lesson(folder)


def test_toml_symlink_escaping_the_folder_is_rejected(tmp_path: Path) -> None:
    outside = png(tmp_path / "outside.png")
    folder = tmp_path / "lesson"
    folder.mkdir()
    (folder / "link.png").symlink_to(outside)
    toml(folder, 'title = "T"\n[[items]]\nfile = "link.png"\n')
    with pytest.raises(LessonError, match="outside the lesson folder"):
        load_lesson(folder)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('subject = "S"\n[[items]]\ntext = "a"\n', "'title' is required"),
        ('title = 5\n[[items]]\ntext = "a"\n', "'title' must be a string"),
        ('title = "T"\nauthor = "X"\n[[items]]\ntext = "a"\n', "unknown key 'author'"),
        ('title = "T"\nsource = "nope"\n[[items]]\ntext = "a"\n', "lesson source must be"),
        ('title = "T"\nsubject = " "\n[[items]]\ntext = "a"\n', "lesson subject is empty"),
        ('title = "T\n', "invalid TOML"),
        ('title = "T"\ntitle = "U"\n', "invalid TOML"),
    ],
)
def test_toml_top_level_errors(tmp_path: Path, text: str, message: str) -> None:
    path = toml(tmp_path, text)
    with pytest.raises(LessonError, match=message) as info:
        load_lesson(tmp_path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)


def test_toml_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "lesson.toml").write_bytes(b'title = "\xff"\n')
    with pytest.raises(LessonError, match=r"lesson\.toml: not UTF-8"):
        load_lesson(tmp_path)


def test_folder_named_like_toml_is_a_folder(tmp_path: Path) -> None:
    png(tmp_path / "x.toml" / "a.png")
    assert load_lesson(tmp_path / "x.toml").title == "x.toml"


def test_too_many_items(tmp_path: Path) -> None:
    items = '[[items]]\ntext = "a"\n' * (MAX_ITEMS_PER_LESSON + 1)
    toml(tmp_path, 'title = "T"\n' + items)
    with pytest.raises(LessonError, match=f"more than {MAX_ITEMS_PER_LESSON} items"):
        load_lesson(tmp_path)


def test_max_items_is_fine(tmp_path: Path) -> None:
    items = '[[items]]\ntext = "a"\n' * MAX_ITEMS_PER_LESSON
    toml(tmp_path, 'title = "T"\n' + items)
    lesson = load_lesson(tmp_path)
    assert len(lesson.items) == MAX_ITEMS_PER_LESSON
    round_trip(lesson)


# --------------------------------------------------------------------------- identity


def test_lesson_id_is_stable_and_follows_content(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    png(one / "a.png", "red")
    png(two / "a.png", "red")
    toml(one, 'title = "T"\n[[items]]\nfile = "a.png"\n')
    toml(two, 'title = "T"\n[[items]]\nfile = "a.png"\n')

    first = load_lesson(one)
    assert len(first.lesson_id) == 32
    assert int(first.lesson_id, 16) >= 0
    assert load_lesson(one).lesson_id == first.lesson_id
    assert load_lesson(two).lesson_id == first.lesson_id  # paths do not count

    png(two / "a.png", "blue")
    assert load_lesson(two).lesson_id != first.lesson_id
    toml(one, 'title = "U"\n[[items]]\nfile = "a.png"\n')
    assert load_lesson(one).lesson_id != first.lesson_id
    toml(one, 'title = "T"\n[[items]]\nfile = "a.png"\nduration = 3\n')
    assert load_lesson(one).lesson_id != first.lesson_id


def test_lesson_id_ignores_paths() -> None:
    a = LessonItem("image", "x", path=Path("/a"), sha256="0" * 64, size_bytes=1)
    b = LessonItem("image", "x", path=Path("/b"), sha256="0" * 64, size_bytes=1)
    assert lesson_id_for("T", [a]) == lesson_id_for("T", [b])


def test_make_lesson_limits() -> None:
    with pytest.raises(LessonError, match="no items"):
        make_lesson("T", [])
    with pytest.raises(LessonError, match="lesson title is empty"):
        make_lesson("", [LessonItem("text", "t", text="x")])
    too_many = [LessonItem("text", "t", text="x")] * (MAX_ITEMS_PER_LESSON + 1)
    with pytest.raises(LessonError, match=f"{MAX_ITEMS_PER_LESSON + 1} items, over the limit"):
        make_lesson("T", too_many)


def test_make_lesson_total_bytes_limit() -> None:
    big = [
        LessonItem("video", f"v{n}", sha256=f"{n:064x}", size_bytes=2 * 1024**3) for n in range(5)
    ]
    with pytest.raises(LessonError, match="bytes of media"):
        make_lesson("T", big)


# --------------------------------------------------------------------------- sample lesson


def test_sample_lesson() -> None:
    lesson = load_lesson(sample_lesson_path())
    assert lesson.title == "Фотосинтез"
    assert lesson.subject == "Биология"
    assert lesson.source_url is not None
    assert lesson.source_url.startswith("https://")
    assert [item.kind for item in lesson.items] == [
        "image",
        "image",
        "pdf",
        "pdf",
        "text",
        "video",
        "web",
    ]
    video = lesson.items[5]
    assert video.duration_ms is None
    assert lesson.items[0].duration_ms == 5000
    assert len(lesson.blob_paths()) == 5
    assert all(item.source_url for item in lesson.items)
    assert lesson.total_bytes < 200_000
    round_trip(lesson)
