"""The lessons dropped on the teacher's app, on disk: drops never finished are deleted
once abandoned (at start and on a timer, by age), and the library keeps within
``MAX_LIBRARY_BYTES``, oldest lessons first, never the one cast or chosen.

Ages are file times set with ``os.utime`` and a ``now`` passed in: no test waits.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from controller.webapp import lessons
from controller.webapp.lessons import (
    ABANDONED_UPLOAD_S,
    UPLOAD_MARKER,
    LessonLibrary,
    UploadError,
)
from controller.webapp.security import COOKIE
from tests.app_server import running_app

T0 = float(int(time.time()))
"""The tests' "now" (seconds since the epoch, as file times): the start of the run, so
that the folders ``begin`` creates are as young as they really are."""


def _age(path: Path, mtime: float) -> None:
    """Set every file time under ``path`` (``path`` included) to ``mtime``."""
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            os.utime(Path(folder) / name, (mtime, mtime))
    os.utime(path, (mtime, mtime))


def _lesson(root: Path, key: str, size: int, mtime: float) -> None:
    """A finished lesson ``key`` of ``size`` bytes, last used at ``mtime``."""
    folder = root / key / "Урок"
    folder.mkdir(parents=True)
    (folder / "01.txt").write_bytes(b"x" * size)
    _age(root / key, mtime)


def _keys(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()} if root.exists() else set()


# --------------------------------------------------------------------------- abandoned drops


def test_a_drop_never_finished_is_deleted_once_abandoned(tmp_path: Path) -> None:
    library = LessonLibrary(tmp_path / "lessons")
    upload = library.begin("Фотосинтез", now=T0)
    part = upload.target(lessons.safe_relative_path("01-list.png"))
    part.write_bytes(b"half a file")
    upload.stored(11)
    _age(tmp_path / "lessons" / upload.key, T0)

    assert library.prune(T0 + ABANDONED_UPLOAD_S - 1) == []  # a minute ago: still coming
    assert upload.key in library.uploads
    assert library.prune(T0 + ABANDONED_UPLOAD_S) == [upload.key]
    assert not (tmp_path / "lessons" / upload.key).exists()
    assert upload.key not in library.uploads  # its next file is refused (404)


def test_a_drop_being_written_is_not_abandoned(tmp_path: Path) -> None:
    """Age counts from the newest byte written: a long file still arriving is fresh."""
    library = LessonLibrary(tmp_path / "lessons")
    upload = library.begin("Видео", now=T0)
    big = upload.target(lessons.safe_relative_path("05-opyt.mp4"))
    big.write_bytes(b"frames")
    _age(tmp_path / "lessons" / upload.key, T0)
    os.utime(big, (T0 + ABANDONED_UPLOAD_S, T0 + ABANDONED_UPLOAD_S))  # written to just now
    assert library.prune(T0 + ABANDONED_UPLOAD_S) == []


def test_an_unfinished_drop_is_never_offered_and_a_restart_cleans_it(tmp_path: Path) -> None:
    root = tmp_path / "lessons"
    library = LessonLibrary(root)
    upload = library.begin("Незаконченный", now=T0)
    upload.target(lessons.safe_relative_path("a.png")).write_bytes(b"png")
    _lesson(root, "0" * 16, 10, T0)
    _age(root / upload.key, T0)
    assert (root / upload.key / UPLOAD_MARKER).exists()

    restarted = LessonLibrary(root)  # the app stopped mid-drop: nothing in memory
    assert restarted.recent() == [("0" * 16, "Урок")]
    assert restarted.folder(upload.key) is None
    assert restarted.prune(T0 + ABANDONED_UPLOAD_S) == [upload.key]
    assert _keys(root) == {"0" * 16}  # a finished lesson, however old, stays


def test_a_finished_drop_loses_its_marker(tmp_path: Path) -> None:
    library = LessonLibrary(tmp_path / "lessons")
    upload = library.begin("Тема", now=T0)
    upload.target(lessons.safe_relative_path("1-тема.md")).write_text("# Тема", "utf-8")
    upload.stored(8)
    library.finish(upload.key, now=T0)
    assert not (tmp_path / "lessons" / upload.key / UPLOAD_MARKER).exists()
    assert library.recent() == [(upload.key, "Тема")]
    assert library.prune(T0 + 10 * ABANDONED_UPLOAD_S) == []


# --------------------------------------------------------------------------- the library's size


@pytest.fixture
def small_library(monkeypatch: pytest.MonkeyPatch) -> int:
    """MAX_LIBRARY_BYTES shrunk to 3000 bytes (the rule is the same at 16 GiB)."""
    monkeypatch.setattr(lessons, "MAX_LIBRARY_BYTES", 3000)
    return 3000


def test_the_library_keeps_within_its_limit_oldest_first(
    tmp_path: Path, small_library: int
) -> None:
    root = tmp_path / "lessons"
    old, mid, new = "a" * 16, "b" * 16, "c" * 16
    _lesson(root, old, 1000, T0)
    _lesson(root, mid, 1000, T0 + 60)
    _lesson(root, new, 1000, T0 + 120)
    library = LessonLibrary(root)
    assert library.used_bytes() == small_library
    assert library.prune(T0 + 180) == []  # exactly at the limit: nothing goes
    assert library.prune(T0 + 180, room_bytes=1) == [old]  # one byte over: the oldest
    assert _keys(root) == {mid, new}


def test_the_lesson_cast_or_chosen_is_never_deleted(tmp_path: Path, small_library: int) -> None:
    root = tmp_path / "lessons"
    old, mid, new = "a" * 16, "b" * 16, "c" * 16
    _lesson(root, old, 1000, T0)
    _lesson(root, mid, 1000, T0 + 60)
    _lesson(root, new, 1000, T0 + 120)
    library = LessonLibrary(root)
    upload = library.begin("Новый", total_bytes=1000, now=T0 + 180, keep={old})
    assert _keys(root) == {old, new, upload.key}  # the oldest is cast: the next one went
    bigger = library.begin("Больше", total_bytes=2000, now=T0 + 240, keep={old})
    assert _keys(root) == {old, upload.key, bigger.key}  # then the next; drops stay
    assert library.used_bytes() + 2000 <= small_library


def test_a_new_drop_is_refused_when_the_kept_lessons_leave_no_room(
    tmp_path: Path, small_library: int
) -> None:
    root = tmp_path / "lessons"
    _lesson(root, "a" * 16, 2000, T0)
    library = LessonLibrary(root)
    with pytest.raises(UploadError, match="Уроки, загруженные в приложение, уже занимают"):
        library.begin("Большой", total_bytes=1001, now=T0, keep={"a" * 16})
    assert _keys(root) == {"a" * 16}  # nothing created, nothing deleted
    library.begin("Помещается", total_bytes=1000, now=T0, keep={"a" * 16})


def test_finishing_a_drop_makes_room_for_it(tmp_path: Path, small_library: int) -> None:
    """A page may declare less than it sends: the library is pruned again at the end."""
    root = tmp_path / "lessons"
    _lesson(root, "a" * 16, 1500, T0)
    library = LessonLibrary(root)
    upload = library.begin("Тема", total_bytes=0, now=T0 + 60)
    upload.target(lessons.safe_relative_path("1.md")).write_text("т" * 1000, "utf-8")
    library.finish(upload.key, now=T0 + 60)
    assert _keys(root) == {upload.key}


# --------------------------------------------------------------------------- in the app


def test_the_app_cleans_abandoned_drops_when_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "home" / "lessons"
    stale = root / ("d" * 16)
    (stale / "Урок").mkdir(parents=True)
    (stale / "Урок" / "01.png").write_bytes(b"half")
    (stale / UPLOAD_MARKER).touch()
    _age(stale, 0.0)  # 1970: long abandoned
    with running_app(tmp_path / "home") as app:
        state = app.config.state
        assert state is not None
        asyncio.run_coroutine_threadsafe(state.lessons_swept.wait(), app.loop).result(10)
        assert not stale.exists()


def test_a_drop_past_the_library_limit_is_refused_in_words(
    tmp_path: Path, small_library: int
) -> None:
    with running_app(tmp_path / "home") as app:
        _lesson(tmp_path / "home" / "lessons", "a" * 16, 2000, T0)
        with httpx.Client(
            base_url=app.base,
            cookies={COOKIE: app.config.secret},
            headers={"origin": app.base},
            timeout=10,
        ) as c:
            c.post(f"/lessons/{'a' * 16}/select")  # chosen: kept
            refused = c.post("/lessons", data={"title": "Большой", "total_bytes": "1001"})
            assert refused.status_code == 413
            assert "уже занимают" in refused.json()["error"]
            accepted = c.post("/lessons", data={"title": "Малый", "total_bytes": "1000"})
            assert accepted.status_code == 200


# ---------------------------------------------------------------- folders as teachers keep them


def test_a_dropped_folder_skips_the_junk_silently_and_warns_about_the_broken_file(
    tmp_path: Path,
) -> None:
    import io

    from PIL import Image

    good = io.BytesIO()
    Image.new("RGB", (32, 24), (255, 0, 0)).save(good, "PNG")
    files = {
        "Урок/01-red.png": good.getvalue(),
        "Урок/02-broken.png": good.getvalue()[:40] + b"\0" * 40,
        "Урок/Thumbs.db": b"\xd0\xcf\x11\xe0" + b"\0" * 60,
        "Урок/desktop.ini": b"[.ShellClassInfo]\r\n",
        "Урок/.DS_Store": b"\0\0\0\1Bud1" + b"\0" * 60,
        "Урок/~$deck.pptx": b"\x0bteacher" + b"\0" * 60,
        "Урок/__MACOSX/Урок/._01-red.png": b"\0\5\26\7" + b"\0" * 60,
    }
    with (
        running_app(tmp_path / "home") as app,
        httpx.Client(
            base_url=app.base,
            cookies={COOKIE: app.config.secret},
            headers={"origin": app.base},
            timeout=10,
        ) as c,
    ):
        total = sum(len(data) for data in files.values())
        key = c.post("/lessons", data={"title": "Урок", "total_bytes": str(total)}).json()["key"]
        for path, data in files.items():
            relative = path.removeprefix("Урок/")
            answer = c.put(f"/lessons/{key}/files", params={"path": relative}, content=data)
            assert answer.status_code == 204, (path, answer.text)
        page = c.post(f"/lessons/{key}/done").text
    stored = {p.name for p in (tmp_path / "home" / "lessons" / key).rglob("*") if p.is_file()}
    assert stored == {"01-red.png", "02-broken.png"}  # the junk was never written
    assert "01-red" in page
    assert 'class="msg warn"' in page
    assert page.count("Не вошёл в урок") == 1
    assert "02-broken.png: файл повреждён" in page
    for junk in ("Thumbs", "desktop.ini", "DS_Store", "~$", "MACOSX"):
        assert junk not in page
