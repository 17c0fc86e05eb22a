"""HTML5 lessons as zips: media.html5zip's checks, the controller's refusals in Russian,
the guard serving a zip's files (attacked with plain HTTP clients), and the lesson
playing on a real kiosk through the command line, with no network."""

from __future__ import annotations

import asyncio
import http.client
import io
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from controller.cli import cli
from controller.client import KioskClient
from controller.problems import media_error_text
from kiosk.webguard import WebGuard
from media import html5zip
from media.html5zip import MAX_ENTRIES, MAX_RATIO, RATIO_FREE_BYTES, open_site
from media.lesson import load_lesson
from protocol.errors import LessonError, RemoteError
from tests.conftest import TEACHER
from tests.kiosks import ADMIN_SECRET, kiosk_process

PAGE_BACKGROUND = (0x7B, 0x1F, 0xA2)  # style.css: body { background: #7b1fa2 }
DOT = (0xFF, 0xC1, 0x07)  # img/dot.png

INDEX = b"""<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="style.css"></head>
<body><img src="img/dot.png" width="200" height="200"></body></html>"""
STYLE = b"html, body { margin: 0; background: #7b1fa2; } img { display: block; }"


def png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 20), color).save(out, "PNG")
    return out.getvalue()


def make_zip(path: Path, entries: dict[str, bytes], *, top: str = "") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(top + name, data)
    return path


def lesson_zip(path: Path, *, top: str = "") -> Path:
    return make_zip(
        path,
        {"index.html": INDEX, "style.css": STYLE, "img/dot.png": png(DOT)},
        top=top,
    )


def refused(path: Path) -> LessonError:
    with pytest.raises(LessonError) as info:
        open_site(path)
    assert info.value.path == str(path)
    return info.value


# --------------------------------------------------------------------------- checks


def test_index_at_the_root_or_in_one_top_folder(tmp_path: Path) -> None:
    site = open_site(lesson_zip(tmp_path / "a.zip"))
    assert set(site.files) == {"index.html", "style.css", "img/dot.png"}
    top = make_zip(
        tmp_path / "b.zip",
        {
            "Урок/index.html": INDEX,
            "Урок/style.css": STYLE,
            "__MACOSX/Урок/._index.html": b"junk",
            "Урок/.DS_Store": b"junk",
        },
    )
    assert set(open_site(top).files) == {"index.html", "style.css"}


def test_zip_without_index_is_refused(tmp_path: Path) -> None:
    two_tops = make_zip(tmp_path / "c.zip", {"a/index.html": INDEX, "b/x.css": STYLE})
    assert refused(two_tops).reason == "zip_no_index"
    assert refused(make_zip(tmp_path / "d.zip", {"page.html": INDEX})).reason == "zip_no_index"


def test_damaged_zip_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(html5zip.ZIP_MAGIC + b"\0" * 100)
    assert refused(bad).reason == "zip_damaged"


def test_entry_count_is_limited_at_both_ends(tmp_path: Path) -> None:
    names = {f"f/{n}.txt": b"" for n in range(MAX_ENTRIES - 1)}
    ok = make_zip(tmp_path / "ok.zip", {"index.html": INDEX, **names})
    assert len(open_site(ok).files) == MAX_ENTRIES
    over = make_zip(tmp_path / "over.zip", {"index.html": INDEX, **names, "one-more": b""})
    error = refused(over)
    assert error.reason == "zip_too_many_entries"
    assert error.values == {"limit": MAX_ENTRIES}


def test_zip_bomb_ratio_is_limited_at_both_ends(tmp_path: Path) -> None:
    free = make_zip(tmp_path / "free.zip", {"index.html": INDEX, "z": b"\0" * RATIO_FREE_BYTES})
    assert "z" in open_site(free).files  # small enough not to count
    bomb = make_zip(
        tmp_path / "bomb.zip", {"index.html": INDEX, "z": b"\0" * (RATIO_FREE_BYTES + 1)}
    )
    error = refused(bomb)
    assert error.reason == "zip_bomb"
    assert error.values["ratio"] == MAX_RATIO


def test_total_size_is_limited_at_both_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_zip(tmp_path / "big.zip", {"index.html": b"x" * 600, "a.js": b"y" * 400})
    monkeypatch.setattr(html5zip, "MAX_UNCOMPRESSED_BYTES", 1000)
    assert len(open_site(path).files) == 2
    monkeypatch.setattr(html5zip, "MAX_UNCOMPRESSED_BYTES", 999)
    assert refused(path).reason == "zip_bomb"


@pytest.mark.parametrize(
    "name",
    [
        "../evil.html",
        "/etc/evil.html",
        "a/../../evil.html",
        "..\\evil.html",
        "C:/evil.html",
        "a//b.html",
        "./a.html",
        "a/\x01.html",
    ],
)
def test_names_that_leave_the_site_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "t.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("index.html", INDEX)
        archive.writestr(zipfile.ZipInfo(name), b"x")
    error = refused(path)
    assert error.reason == "zip_unsafe_name"


def test_symlinks_encrypted_and_duplicate_entries_are_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("img/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("index.html", INDEX)
        archive.writestr(link, b"/etc/passwd")
    assert refused(path).reason == "zip_unsafe_name"
    locked = make_zip(tmp_path / "locked.zip", {"index.html": INDEX, "secret.html": b"x"})
    data = bytearray(locked.read_bytes())
    header = data.rindex(b"secret.html") - 46  # its central directory header
    assert data[header : header + 4] == b"PK\x01\x02"
    data[header + 8] |= 0x1  # "encrypted"
    locked.write_bytes(bytes(data))
    assert refused(locked).reason == "zip_unsafe_name"
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(twice, "w") as archive:
        archive.writestr("index.html", INDEX)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("index.html", b"<html>other")
    assert refused(twice).reason == "zip_unsafe_name"


# --------------------------------------------------------------------------- controller


def test_a_zip_in_a_lesson_folder_is_one_web_item(tmp_path: Path) -> None:
    folder = tmp_path / "Опыт"
    folder.mkdir()
    lesson_zip(folder / "лаборатория.zip")
    (lesson,) = load_lesson(folder).items
    assert (lesson.kind, lesson.title) == ("web", "лаборатория")
    assert lesson.sha256 is not None


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ({"index.html": INDEX, "../x.js": b"x"}, "../x.js — путь за пределы урока"),
        ({"index.html": INDEX, "z": b"\0" * (RATIO_FREE_BYTES * 4)}, "распаковывается в слишком"),
        ({"page.html": INDEX}, "нет index.html"),
    ],
)
def test_cli_refuses_a_bad_zip_in_russian_naming_it(
    tmp_path: Path, entries: dict[str, bytes], words: str
) -> None:
    path = make_zip(tmp_path / "урок.zip", entries)
    with pytest.raises(LessonError) as info:
        load_lesson(path)
    text = media_error_text(info.value)
    assert text is not None
    assert text.startswith(f"{path}: ")
    assert words in text
    result = CliRunner().invoke(cli, ["cast", str(path), "--to", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert str(path) in result.output
    assert words in result.output


def test_cli_refuses_a_zip_with_too_many_entries(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "много.zip", {f"{n}.txt": b"" for n in range(MAX_ENTRIES + 1)})
    result = CliRunner().invoke(cli, ["cast", str(path), "--to", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert f"{path}: в zip-архиве больше {MAX_ENTRIES} файлов" in result.output


# --------------------------------------------------------------------------- the guard


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[WebGuard, str]]:
    guard = WebGuard()
    url = guard.publish_site(lesson_zip(tmp_path / "site.zip", top="lesson/"))
    yield guard, url.removeprefix("http://").rstrip("/")
    guard.close()


def get(guard: WebGuard, host: str, path: str, method: str = "GET") -> http.client.HTTPResponse:
    """A plain request through the guard as a browser sends it (absolute form)."""
    conn = http.client.HTTPConnection("127.0.0.1", guard.port, timeout=5)
    conn.putrequest(method, f"http://{host}{path}", skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host)
    conn.endheaders()
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_the_guard_serves_the_zips_files_with_their_types(site: tuple[WebGuard, str]) -> None:
    guard, host = site
    conn = http.client.HTTPConnection("127.0.0.1", guard.port, timeout=5)
    for path, body, kind in [
        ("/", INDEX, "text/html; charset=utf-8"),
        ("/index.html", INDEX, "text/html; charset=utf-8"),
        ("/style.css?v=2", STYLE, "text/css; charset=utf-8"),
        ("/img/dot.png", png(DOT), "image/png"),
        ("/img/%64ot.png", png(DOT), "image/png"),
    ]:
        conn = http.client.HTTPConnection("127.0.0.1", guard.port, timeout=5)
        conn.request("GET", f"http://{host}{path}")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, body), path
        assert response.getheader("Content-Type") == kind
        assert response.getheader("X-Content-Type-Options") == "nosniff"
        assert "sandbox" in (response.getheader("Content-Security-Policy") or "")
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/../site.zip",
        "/%2e%2e/site.zip",
        "/%2E%2E%2Fsite.zip",
        "/img/..%2f..%2fsite.zip",
        "/..%5c..%5csite.zip",
        "/img/",
        "/img",
        "/lesson/index.html",
        "/%00",
        "/%ff.html",
        "//etc/passwd",
        "/etc/passwd",
        "/nothing.html",
    ],
)
def test_the_guard_serves_nothing_outside_the_zip_and_lists_no_folder(
    site: tuple[WebGuard, str], path: str
) -> None:
    guard, host = site
    assert get(guard, host, path).status == 404


def test_the_zips_origin_is_read_only_and_goes_when_withdrawn(site: tuple[WebGuard, str]) -> None:
    guard, host = site
    assert get(guard, host, "/", "POST").status == 405
    assert get(guard, host, "/", "HEAD").status == 200
    guard.withdraw(f"http://{host}/")
    assert get(guard, host, "/").status == 404


# --------------------------------------------------------------------------- a real kiosk


@pytest.mark.slow
async def test_an_html5_zip_plays_on_a_kiosk_with_no_network(tmp_path: Path) -> None:
    """Cast with the command line; the kiosk's page may reach no host at all (an
    allowlist naming a host that does not exist), yet the lesson shows: its CSS
    background and its picture come from the zip."""
    folder = tmp_path / "HTML5"
    folder.mkdir()
    lesson_zip(folder / "лаборатория.zip", top="Лаборатория/")
    config = 'web_allow = ["nothing.invalid"]\n'
    with kiosk_process(tmp_path / "state", config=config) as (_, address):
        runner = CliRunner()

        def run(*args: str) -> Result:
            return runner.invoke(cli, list(args), catch_exceptions=False)

        paired = await asyncio.to_thread(run, "pair", address, "--admin", "--pin", ADMIN_SECRET)
        assert paired.exit_code == 0, paired.output
        cast = await asyncio.to_thread(run, "cast", str(folder), "--to", address)
        assert cast.exit_code == 0, cast.output
        async with await KioskClient.connect(address, TEACHER) as admin:
            await admin.pair(ADMIN_SECRET, role="admin")
            shot = None
            for _ in range(200):
                try:
                    data = await admin.screenshot(max_width=640)
                except RemoteError as exc:
                    pytest.skip(f"this machine renders without a window: {exc}")
                shot = Image.open(io.BytesIO(data)).convert("RGB")
                if shot.getpixel((shot.width - 5, shot.height - 5)) == PAGE_BACKGROUND:
                    break
                await asyncio.sleep(0.1)
            assert shot is not None
            assert shot.getpixel((shot.width - 5, shot.height - 5)) == PAGE_BACKGROUND
            colors = shot.getcolors(shot.width * shot.height) or []
            assert any(color == DOT and count > 100 for count, color in colors)
            status = await admin.status()
            assert status.item_kind == "web"
            assert status.item_failure is None
