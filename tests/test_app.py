"""The teacher's app's routes and its gate, against a real server on 127.0.0.1.

Every attack is made with a plain HTTP client (httpx, or a raw socket), not the page:
a request without the launch secret, a rebound DNS name in ``Host``, a cross-site form
post, bodies over their limits (declared and streamed), paths that climb out of the
lesson folder, and an internal error that must not show a traceback.
"""

from __future__ import annotations

import asyncio
import html
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.home import Home
from controller.texts import error_text as cli_error_text
from controller.webapp import lessons, security
from controller.webapp.app import loopback_hosts
from controller.webapp.lessons import (
    MAX_NAME_BYTES,
    MAX_PATH_PARTS,
    UploadError,
    safe_relative_path,
)
from controller.webapp.security import COOKIE, MAX_BODY_BYTES
from kiosk.config import kiosk_id
from protocol.errors import BadPinError
from tests.app_server import PaintingDisplay, RunningApp, lesson_folder, running_app
from tests.kiosks import KioskThread

FORBIDDEN = "Эта страница открывается только командой `classcast app`"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[RunningApp]:
    with running_app(tmp_path / "home") as running:
        yield running


def client(app: RunningApp, **kwargs: object) -> httpx.Client:
    """A client holding the launch secret, posting from the app's own origin."""
    return httpx.Client(
        base_url=app.base,
        cookies={COOKIE: app.config.secret},
        headers={"origin": app.base},
        timeout=10,
        **kwargs,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- the launch secret


def test_the_launch_token_is_exchanged_once_for_a_strict_httponly_cookie(app: RunningApp) -> None:
    with httpx.Client(timeout=10) as plain:
        first = plain.get(app.url)
        assert first.status_code == 303
        assert first.headers["location"] == "/"
        cookie = first.headers["set-cookie"]
        assert cookie == f"{COOKIE}={app.config.secret}; Path=/; HttpOnly; SameSite=Strict"
        page = plain.get(app.base + "/")  # the client keeps the cookie, as a browser does
        assert page.status_code == 200
        assert "Приложение учителя" in page.text
    with httpx.Client(timeout=10) as other:  # the same link a second time: refused
        again = other.get(app.url)
        assert again.status_code == 403
        assert FORBIDDEN in again.text
        assert app.config.secret not in again.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/events"),
        ("GET", "/static/app.js"),
        ("GET", "/panels/shot?address=127.0.0.1:1"),
        ("POST", "/control"),
        ("POST", "/lessons"),
        ("GET", "/?token=wrong"),
    ],
)
def test_every_request_needs_the_secret(app: RunningApp, method: str, path: str) -> None:
    with httpx.Client(base_url=app.base, headers={"origin": app.base}, timeout=10) as plain:
        for cookie in ("", f"{COOKIE}=guess", f"{COOKIE}={app.config.secret[:-1]}", 'x="\\'):
            headers = {"cookie": cookie} if cookie else {}
            answer = plain.request(method, path, headers=headers, data={"action": "stop"})
            assert answer.status_code == 403, (path, cookie)
            assert FORBIDDEN in answer.text
            assert "Traceback" not in answer.text


def test_a_rebound_dns_name_is_refused(app: RunningApp) -> None:
    """DNS rebinding: a site's name pointed at 127.0.0.1 sends its own name as Host."""
    port = app.base.rsplit(":", 1)[1]
    with client(app) as c:
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1", f"10.0.0.5:{port}"):
            answer = c.get("/", headers={"host": host})
            assert answer.status_code == 400, host
            assert "Приложение учителя" in answer.text  # a Russian page
            assert "Запрос не понят" in answer.text
        assert c.get("/", headers={"host": f"localhost:{port}"}).status_code == 200
        assert c.get("/", headers={"host": f"127.0.0.1:{port}"}).status_code == 200


def test_a_cross_site_post_is_refused_and_changes_nothing(app: RunningApp) -> None:
    """CSRF: a page on another site posts to the app from the teacher's own browser."""
    with client(app) as c:
        for origin in ("http://evil.example", "null", f"{app.base}.evil.example", None):
            headers = {"origin": origin} if origin else {}
            c.headers.pop("origin", None)
            answer = c.post("/panels/add", data={"address": "127.0.0.1:9"}, headers=headers)
            assert answer.status_code == 403, origin
        assert app.config.home.panels() == []
        c.headers["origin"] = app.base
        answer = c.post("/panels/add", data={"address": "127.0.0.1:9"})
        assert answer.status_code == 200
        assert [p.address for p in app.config.home.panels()] == ["127.0.0.1:9"]


def test_the_answers_forbid_framing_and_foreign_scripts(app: RunningApp) -> None:
    with client(app) as c:
        page = c.get("/")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "server" not in page.headers
    assert "http://" not in page.text.replace(app.base, "")  # nothing from elsewhere


def test_only_loopback_names_of_the_bound_port_are_hosts() -> None:
    assert loopback_hosts("127.0.0.1", 8080) == {"127.0.0.1:8080", "localhost:8080"}
    assert "192.168.1.5:8080" in loopback_hosts("192.168.1.5", 8080)
    assert loopback_hosts("::1", 80) == {"127.0.0.1:80", "localhost:80", "[::1]:80"}
    assert "0.0.0.0:80" not in loopback_hosts("0.0.0.0", 80)


# --------------------------------------------------------------------------- body limits


def test_a_form_body_at_the_limit_is_read_and_one_byte_more_is_refused_unread(
    app: RunningApp,
) -> None:
    with client(app) as c:
        body = b"action=stop&pad=" + b"x" * (MAX_BODY_BYTES - len(b"action=stop&pad="))
        ok = c.post("/control", content=body, headers={"content-type": _FORM})
        assert ok.status_code == 200
        assert "Пока ничего не показывается" in ok.text
        over = c.post("/control", content=body + b"x", headers={"content-type": _FORM})
        assert over.status_code == 413
        assert "Запрос слишком большой" in over.text


_FORM = "application/x-www-form-urlencoded"


def test_a_streamed_body_over_the_limit_is_cut_off(app: RunningApp) -> None:
    """No Content-Length (chunked): the body is counted as it arrives."""
    port = int(app.base.rsplit(":", 1)[1])
    chunk = b"x" * 8192
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            (
                f"POST /control HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {app.base}\r\n"
                f"Cookie: {COOKIE}={app.config.secret}\r\nContent-Type: {_FORM}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        answer = b""
        try:
            for _ in range(MAX_BODY_BYTES // len(chunk) + 4):
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:  # the server answered and closed: fine
            pass
        while b"\r\n\r\n" not in answer:
            data = s.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]


def upload(c: httpx.Client, key: str, path: str, body: bytes) -> httpx.Response:
    return c.put(f"/lessons/{key}/files", params={"path": path}, content=body)


def begin(c: httpx.Client, title: str = "Урок") -> str:
    answer = c.post("/lessons", data={"title": title})
    assert answer.status_code == 200, answer.text
    key = answer.json()["key"]
    assert isinstance(key, str)
    return key


def test_a_lesson_file_at_the_limit_is_stored_and_one_byte_more_is_refused(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "MAX_UPLOAD_BYTES", 1000)
    with client(app) as c:
        key = begin(c)
        assert upload(c, key, "a.txt", b"a" * 1000).status_code == 204
        refused = upload(c, key, "b.txt", b"b" * 1001)  # declared length: refused unread
        assert refused.status_code == 413

        def stream() -> Iterator[bytes]:  # no length declared: counted while stored
            yield b"c" * 600
            yield b"c" * 401

        streamed = c.put(f"/lessons/{key}/files", params={"path": "c.txt"}, content=stream())
        assert streamed.status_code == 413
        assert "c.txt" in streamed.json()["error"]
    folder = app.config.home.root / "lessons" / key / "Урок"
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt"]  # nothing half-written kept


def test_a_lesson_over_its_total_or_its_file_count_is_refused(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lessons, "MAX_LESSON_UPLOAD_BYTES", 1500)
    monkeypatch.setattr(lessons, "MAX_UPLOAD_FILES", 3)
    with client(app) as c:
        too_big = c.post("/lessons", data={"title": "x", "total_bytes": "1501"})
        assert too_big.status_code == 413
        assert "разделите его" in too_big.json()["error"]
        key = begin(c)
        assert upload(c, key, "1.txt", b"1" * 1000).status_code == 204
        assert upload(c, key, "2.txt", b"2" * 500).status_code == 204  # 1500: at the limit
        over = upload(c, key, "3.txt", b"3")
        assert over.status_code == 413
        key = begin(c)
        for n in range(3):
            assert upload(c, key, f"{n}.txt", b"x").status_code == 204
        fourth = upload(c, key, "3.txt", b"x")
        assert fourth.status_code == 400
        assert "не больше 3 файлов" in fourth.json()["error"]


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "raw",
    [
        "../evil.txt",
        "a/../../evil.txt",
        "..\\..\\evil.txt",
        "/etc/passwd",
        "\\\\server\\share\\x",
        "C:\\Windows\\x.txt",
        "c:x.txt",
        ".bashrc",
        "a/.git/config",
        "a/\x00b",
        "",
        "/".join(["d"] * MAX_PATH_PARTS) + "/f",
        "я" * (MAX_NAME_BYTES // 2 + 1),
    ],
)
def test_paths_that_could_leave_the_lesson_folder_are_refused(raw: str) -> None:
    with pytest.raises(UploadError):
        safe_relative_path(raw)


@pytest.mark.parametrize(
    ("raw", "parts"),
    [
        ("slide.png", ("slide.png",)),
        ("sub/dir/file.png", ("sub", "dir", "file.png")),
        ("sub\\file.png", ("sub", "file.png")),
        ("./a//b.png", ("a", "b.png")),
        ("/".join(["d"] * (MAX_PATH_PARTS - 1)) + "/f", (*(["d"] * (MAX_PATH_PARTS - 1)), "f")),
        ("я" * (MAX_NAME_BYTES // 2), ("я" * (MAX_NAME_BYTES // 2),)),
        ("a\u202egnp.exe", ("agnp.exe",)),  # a bidi override is removed, not kept
    ],
)
def test_safe_paths_stay_inside_the_folder(raw: str, parts: tuple[str, ...]) -> None:
    assert safe_relative_path(raw).parts == parts


def test_uploads_with_climbing_paths_write_nothing_outside(app: RunningApp, tmp_path: Path) -> None:
    with client(app) as c:
        key = begin(c)
        for raw in ("../../../escaped.txt", "..%2F..%2Fescaped.txt", "/tmp/escaped.txt"):
            answer = upload(c, key, raw, b"x")
            assert answer.status_code == 400, raw
            assert "недопустимо" in answer.json()["error"]
        assert upload(c, key, "sub/dir/ok.txt", b"x").status_code == 204
        assert upload(c, key, "sub/dir/ok.txt", b"y").status_code == 400  # no overwrite
        assert upload(c, key, "sub/dir/ok.txt/x.txt", b"y").status_code == 400  # a file, not a dir
    root = app.config.home.root / "lessons"
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert written == [f"{key}/.upload", f"{key}/Урок/sub/dir/ok.txt"]  # .upload: unfinished
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not Path("/tmp/escaped.txt").exists()


def test_a_lesson_key_that_is_not_ours_is_not_found(app: RunningApp) -> None:
    with client(app) as c:
        assert upload(c, "0123456789abcdef", "a.txt", b"x").status_code == 404
        assert c.post("/lessons/..%2F..%2Fetc/select").status_code == 404
        assert c.get("/lessons/0123456789abcdef/thumbs/0").status_code == 404


# --------------------------------------------------------------------------- errors


def test_an_internal_error_shows_a_russian_page_and_no_traceback(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controller.webapp.lessons import LessonLibrary

    def broken(self: LessonLibrary) -> list[tuple[str, str]]:
        raise RuntimeError("secret internals /home/teacher")

    monkeypatch.setattr(LessonLibrary, "recent", broken)
    with client(app) as c:
        answer = c.get("/")
    assert answer.status_code == 500
    assert "ошибки в программе" in answer.text
    assert "Traceback" not in answer.text
    assert "secret internals" not in answer.text
    [log] = (app.config.home.root / "logs").glob("classcast-*.log")  # the details are there
    assert "secret internals" in log.read_text("utf-8")


def test_unknown_pages_and_methods_are_russian_too(app: RunningApp) -> None:
    with client(app) as c:
        missing = c.get("/nothing")
        assert missing.status_code == 404
        assert "Здесь ничего нет" in missing.text
        assert c.get("/control").status_code == 405
        assert c.post("/control", data={"action": "explode"}).status_code == 400


# --------------------------------------------------------------------------- with a kiosk


@pytest.mark.slow
def test_pairing_errors_are_the_clis_words(app: RunningApp, kiosk: KioskThread) -> None:
    with client(app) as c:
        added = c.post("/panels/add", data={"address": kiosk.address})
        assert "Каб. 12" in added.text
        _wait_for_rows(app, kiosk.address)
        short = c.post("/pair", data={"address": kiosk.address, "pin": "123"})
        assert "PIN-код состоит из 6 цифр" in short.text or "6 цифр" in short.text
        wrong_pin = "000000" if kiosk.pin() != "000000" else "111111"
        wrong = c.post("/pair", data={"address": kiosk.address, "pin": wrong_pin})
        expected = cli_error_text(BadPinError("x"))
        assert expected in html.unescape(wrong.text)
        wrong_secret = c.post(
            "/pair", data={"address": kiosk.address, "pin": "not-the-secret", "admin": "1"}
        )
        assert "Неверный пароль администратора" in html.unescape(wrong_secret.text)
        right = c.post("/pair", data={"address": kiosk.address, "pin": kiosk.pin()})
        assert "Сопряжено с «Каб. 12», роль: учитель." in right.text
        unknown = c.post("/pair", data={"address": "127.0.0.1:9", "pin": "123456"})
        assert "Панель не найдена" in unknown.text


def test_first_pairing_in_the_app_asks_for_the_teachers_name(
    tmp_path: Path, kiosk: KioskThread
) -> None:
    """No name saved: the form has a name field, pairing without a name is refused (the
    login name is never taken), and the name typed is saved for every later connection."""
    with running_app(tmp_path / "home", teacher=None) as running, client(running) as c:
        assert 'name="teacher"' in c.get("/").text
        c.post("/panels/add", data={"address": kiosk.address})
        _wait_for_rows(running, kiosk.address)
        nameless = c.post("/pair", data={"address": kiosk.address, "pin": kiosk.pin()})
        assert "Введите ваши фамилию, имя и отчество" in html.unescape(nameless.text)
        named = c.post(
            "/pair",
            data={"address": kiosk.address, "pin": kiosk.pin(), "teacher": " Иванова  Мария "},
        )
        assert "Сопряжено с «Каб. 12», роль: учитель." in named.text
        assert 'name="teacher"' not in c.get("/").text
    assert Home(tmp_path / "home").teacher_name() == "Иванова Мария"


def test_a_control_before_any_cast_says_what_to_do(app: RunningApp) -> None:
    with client(app) as c:
        answer = c.post("/control", data={"action": "next"})
    assert answer.status_code == 200
    assert "msg error" in answer.text


def test_the_event_stream_sends_a_fragment_only_when_it_changed(
    app: RunningApp, tmp_path: Path
) -> None:
    with client(app) as c, c.stream("GET", "/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = events.iter_lines()
        names = []
        for line in lines:
            if line.startswith("event: "):
                names.append(line.removeprefix("event: "))
            if names == ["panels", "cast"]:
                break
        # A new panel changes the list, not the cast: only "panels" comes.
        with client(app) as other:
            other.post("/panels/add", data={"address": "127.0.0.1:9"})
        for line in lines:
            if line.startswith("event: "):
                assert line == "event: panels"
                break


@pytest.mark.slow
def test_a_dropped_folder_loads_as_the_clis_lesson_with_thumbnails(
    app: RunningApp, tmp_path: Path
) -> None:
    folder = lesson_folder(tmp_path / "drop")
    with client(app) as c:
        key = begin(c, "Фотосинтез")
        for path in sorted(folder.iterdir()):
            assert upload(c, key, path.name, path.read_bytes()).status_code == 204
        done = c.post(f"/lessons/{key}/done")
        assert done.status_code == 200
        assert "Фотосинтез" in done.text
        assert done.text.count('class="item kind-') == 7
        for index, kind in ((0, "image"), (2, "pdf"), (4, "text"), (5, "video")):
            thumb = c.get(f"/lessons/{key}/thumbs/{index}")
            assert thumb.status_code == 200, kind
            assert thumb.content.startswith(b"\x89PNG")
        assert 'alt="Уравнение фотосинтеза 6 CO₂' in done.text  # the slide's words, no markers
        assert c.get(f"/lessons/{key}/thumbs/6").status_code == 404  # a web page: an icon
        assert c.get(f"/lessons/{key}/thumbs/99").status_code == 404
        page = c.get("/")
        assert f"/lessons/{key}/select" in page.text  # a recent lesson now


def test_an_empty_drop_says_what_the_cli_says(app: RunningApp) -> None:
    with client(app) as c:
        key = begin(c)
        answer = c.post(f"/lessons/{key}/done")
    assert answer.status_code == 200
    assert "msg error" in answer.text
    assert not (app.config.home.root / "lessons" / key).exists()


class CountingDisplay(PaintingDisplay):
    """Counts the screenshots the kiosk is asked for."""

    shots = 0

    def screenshot_png(self, max_width: int) -> bytes | None:
        type(self).shots += 1
        return super().screenshot_png(max_width)


@pytest.mark.slow
def test_pictures_are_taken_only_while_a_page_looks(app: RunningApp, tmp_path: Path) -> None:
    k = KioskThread(tmp_path / "k")
    k.display = CountingDisplay()
    state = app.config.state
    assert state is not None
    with k, client(app) as c:
        c.post("/panels/add", data={"address": k.address})
        _wait_for_rows(app, k.address)
        c.post("/pair", data={"address": k.address, "pin": k.pin()})

        async def online() -> None:
            while (link := state.hub.links.get(k.address)) is None or link.status is None:
                await state.hub.wait_for_change(state.hub.version, 1.0)
            await asyncio.sleep(0)  # the watcher's first turn: no page, no picture

        asyncio.run_coroutine_threadsafe(online(), app.loop).result(5)
        assert CountingDisplay.shots == 0
        with c.stream("GET", "/events") as events:
            for line in events.iter_lines():
                if "/panels/shot?" in line:  # the list now shows the panel's picture
                    break
        assert CountingDisplay.shots >= 1
        link = state.hub.links[k.address]
        assert c.get("/panels/shot", params={"address": k.address}).content == link.shot


def _wait_for_rows(app: RunningApp, address: str) -> None:
    """Wait until the app lists ``address`` (rows are merged on the app's loop)."""
    state = app.config.state
    assert state is not None

    async def listed() -> None:
        while not any(r.address == address for r in state.hub.rows):
            await state.hub.wait_for_change(state.hub.version, 1.0)

    asyncio.run_coroutine_threadsafe(listed(), app.loop).result(5)


# --------------------------------------------------------------------------- the command


@pytest.mark.slow
def test_classcast_app_prints_its_address_in_russian_and_serves_it(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from controller.cli import main; main()", "app", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Приложение учителя открыто по адресу http://127.0.0.1:")
        url = line.split()[-1]
        assert httpx.get(url, timeout=10).status_code == 303
        assert httpx.get(url, timeout=10).status_code == 403  # one time only
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.stderr is not None
    assert "Traceback" not in proc.stderr.read()


def test_classcast_app_on_a_taken_port_says_so(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from controller.cli import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["app", "--no-browser", "--port", str(port)])
    assert result.exit_code == 1
    assert f"Не удалось открыть 127.0.0.1:{port}: этот порт занят другой программой" in (
        result.output
    )
    assert "Address already in use" not in result.output


def _run(app: RunningApp, coro: object) -> object:
    return asyncio.run_coroutine_threadsafe(coro, app.loop).result(20)  # type: ignore[arg-type]


def _pair(c: httpx.Client, app: RunningApp, kiosk: KioskThread) -> None:
    c.post("/panels/add", data={"address": kiosk.address})
    _wait_for_rows(app, kiosk.address)
    answer = c.post("/pair", data={"address": kiosk.address, "pin": kiosk.pin()})
    assert "Сопряжено" in answer.text, answer.text


@pytest.mark.slow
def test_a_cast_shows_each_panels_own_error(app: RunningApp, tmp_path: Path) -> None:
    state = app.config.state
    assert state is not None
    folder = lesson_folder(tmp_path / "drop")
    with KioskThread(tmp_path / "k1", room="Каб. 12") as k1, client(app) as c:
        k2 = KioskThread(tmp_path / "k2", room="Каб. 14")
        with k2:
            _pair(c, app, k1)
            _pair(c, app, k2)
        gone = k2.address  # that panel is switched off now

        async def offline() -> None:
            while (link := state.hub.links.get(gone)) is None or link.online:
                await state.hub.wait_for_change(state.hub.version, 1.0)

        _run(app, offline())
        key = begin(c, "Фотосинтез")
        for path in sorted(folder.iterdir()):
            upload(c, key, path.name, path.read_bytes())
        c.post(f"/lessons/{key}/done")
        started = c.post("/cast", data={"target": [k1.address, gone], "start": "2"})
        assert "msg error" not in started.text
        _run(app, state.cast.wait())
        fragment = c.get("/fragments/cast").text
        assert k1.sync(lambda: k1.display.index) == 1
    done = fragment.split('<li class="done">')[1].split("</li>")[0]
    assert "Каб. 12" in done
    assert 'value="100"' in done
    failed = fragment.split('<li class="failed">')[1].split("</li>")[0]
    assert "Каб. 14" in failed or gone in failed
    assert 'class="why"' in failed
    assert "Traceback" not in fragment


@pytest.mark.slow
def test_only_an_admin_may_announce_to_every_panel(app: RunningApp, tmp_path: Path) -> None:
    from tests.kiosks import ADMIN_SECRET

    with (
        KioskThread(tmp_path / "k1", room="Каб. 12") as k1,
        KioskThread(tmp_path / "k2", room="Каб. 14") as k2,
        client(app) as c,
    ):
        _pair(c, app, k1)
        c.post("/panels/add", data={"address": k2.address})
        _wait_for_rows(app, k2.address)
        assert "на все панели (администратор)" not in c.get("/").text
        teacher = c.post("/announce", data={"text": "Всем!", "scope": "all"})
        assert "msg error" in teacher.text  # a teacher has no token for k2 at all
        admin = c.post("/pair", data={"address": k2.address, "pin": ADMIN_SECRET, "admin": "1"})
        assert "роль: администратор" in admin.text
        c.post("/pair", data={"address": k1.address, "pin": ADMIN_SECRET, "admin": "1"})
        assert "на все панели (администратор)" in c.get("/").text
        answer = c.post("/announce", data={"text": "Эвакуация!", "level": "alert", "scope": "all"})
        assert answer.text.count("объявление показано") == 2, answer.text
    # (the kiosks are stopped; their displays keep what they were told)
    for kiosk in (k1, k2):
        shown = kiosk.display.announcement
        assert shown is not None
        assert (shown.text, shown.level) == ("Эвакуация!", "alert")


@pytest.mark.slow
def test_panels_found_by_mdns_are_listed_live(app: RunningApp, tmp_path: Path) -> None:
    """A panel advertising on loopback shows up without being added, ready to pair."""
    state = app.config.state
    assert state is not None
    with KioskThread(tmp_path / "k", room="Каб. 31", mdns=True) as k, client(app) as c:

        async def found() -> None:
            while not any(r.address == k.address for r in state.hub.rows):
                await state.hub.wait_for_change(state.hub.version, 1.0)

        _run(app, found())
        page = c.get("/fragments/panels").text
        card = page.split(f'data-address="{k.address}"')[1].split("</article>")[0]
        assert "Каб. 31" in card
        assert "на связи" in card
        assert "pair-open" in card


@pytest.mark.slow
def test_the_teachers_cast_is_what_a_phone_remote_drives(app: RunningApp, tmp_path: Path) -> None:
    """``TeacherCast`` as the phone remote's target: the view of the cast, and controls
    carried out on its panels with the teacher's connections."""
    from controller.webapp.live import CastControlError

    state = app.config.state
    assert state is not None
    folder = lesson_folder(tmp_path / "drop")
    with KioskThread(tmp_path / "k1", room="Каб. 12") as k1, client(app) as c:
        assert state.cast.remote_view() is None
        with pytest.raises(CastControlError, match="Пока ничего не показывается"):
            _run(app, state.cast.remote_control("next"))
        _pair(c, app, k1)
        key = begin(c, "Фотосинтез")
        for path in sorted(folder.iterdir()):
            upload(c, key, path.name, path.read_bytes())
        c.post(f"/lessons/{key}/done")
        c.post("/cast", data={"target": [k1.address]})
        _run(app, state.cast.wait())
        _run(app, state.cast.remote_control("goto", 3))
        assert k1.sync(lambda: k1.display.index) == 2

        async def on_item_3() -> None:
            while (view := state.cast.remote_view()) is None or view.index != 2:
                await state.hub.wait_for_change(state.hub.version, 1.0)

        _run(app, on_item_3())
        view = state.cast.remote_view()
        assert view is not None
        assert view.panels == ("Каб. 12",)
        assert view.lesson_title == "Фотосинтез"
        assert (view.index, view.count, view.paused, view.blanked) == (2, 7, False, False)
        assert view.item_titles[2] == "03-shema — с. 1"
        assert view.panel_ids == {kiosk_id(tmp_path / "k1")}
        with pytest.raises(CastControlError, match=r"Каб\. 12"):
            _run(app, state.cast.remote_control("goto", 99))


def test_answers_are_not_held_back_by_nagle() -> None:
    """Each connection the app accepts has TCP_NODELAY: an answer written in two parts
    (head, body) used to wait 40 ms for the client's delayed ACK."""
    from controller.webapp.app import bind

    with bind("127.0.0.1", 0) as listener:
        assert listener.proto == socket.IPPROTO_TCP  # asyncio sets NODELAY on such sockets
        with socket.create_connection(listener.getsockname()[:2]):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_the_app_speaks_english_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``classcast --lang en app`` sets CLASSCAST_LANG, as for every command."""
    monkeypatch.setenv("CLASSCAST_LANG", "en")
    with running_app(tmp_path / "home") as running, client(running) as c:
        page = c.get("/")
        assert '<html lang="en">' in page.text
        assert "Show on the chosen panels" in page.text
        assert "Показать" not in page.text
        refused = httpx.get(running.base + "/", timeout=10)
        assert "This page opens only from `classcast app`" in refused.text


def test_the_phone_remotes_part_of_the_page_is_the_real_one(app: RunningApp) -> None:
    """The page loads the phone remote's part (its button, its list), gated as every
    route of the app; with nothing cast, a QR code is refused in words and no LAN port
    opens."""
    state = app.config.state
    assert state is not None
    with client(app) as c:
        assert 'hx-get="/remote"' in c.get("/").text
        part = c.get("/remote").text
        assert "Показать QR-код для телефона" in part
        assert "Пульт на телефоне не открыт." in part
        refused = html.unescape(c.post("/remote/grants").text)
        assert "Сейчас ничего не показывается: сначала начните показ урока" in refused
        assert state.remote_listener.base_url == ""  # nothing listens on the LAN
    assert httpx.get(app.base + "/remote", timeout=10).status_code == 403  # gated


@pytest.mark.slow
def test_a_qr_code_opens_the_remote_on_the_address_given_with_remote_host(
    tmp_path: Path,
) -> None:
    """``--remote-host`` reaches the LAN listener: the QR code's link names it, it answers
    there, and it closes with the app."""
    folder = lesson_folder(tmp_path / "drop")
    with (
        KioskThread(tmp_path / "k1", room="Каб. 12") as k1,
        running_app(tmp_path / "home", remote_host="127.0.0.2") as running,
        client(running) as c,
    ):
        state = running.config.state
        assert state is not None
        _pair(c, running, k1)
        key = begin(c, "Фотосинтез")
        for path in sorted(folder.iterdir()):
            upload(c, key, path.name, path.read_bytes())
        c.post(f"/lessons/{key}/done")
        c.post("/cast", data={"target": [k1.address]})
        _run(running, state.cast.wait())

        async def shown() -> None:
            while state.cast.remote_view() is None:
                await state.hub.wait_for_change(state.hub.version, 1.0)

        _run(running, shown())
        grant = c.post("/remote/grants").text
        link = grant.split('class="remote-link"><a href="')[1].split('"')[0]
        assert link.startswith("http://127.0.0.2:")
        assert httpx.get(link.split("/p/")[0] + "/", timeout=10).status_code in (200, 403)
        assert state.remote_listener.base_url == link.split("/p/")[0]
    assert state.remote_listener.base_url == ""  # closed with the app


def test_classcast_app_passes_remote_host_to_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from controller.cli import cli
    from controller.webapp import app as webapp

    seen: list[webapp.AppConfig] = []

    async def serve(config: webapp.AppConfig, sock: socket.socket, **kwargs: Any) -> None:
        seen.append(config)
        sock.close()

    monkeypatch.setattr(webapp, "serve", serve)
    result = CliRunner().invoke(cli, ["app", "--no-browser", "--remote-host", "127.0.0.2"])
    assert result.exit_code == 0, result.output
    assert [c.remote_host for c in seen] == ["127.0.0.2"]
    assert "--remote-host ADDR" in CliRunner().invoke(cli, ["app", "--help"]).output


def test_adding_a_panel_says_what_the_cli_says(app: RunningApp) -> None:
    with client(app) as c:
        bad = c.post("/panels/add", data={"address": "not an address:x"})
        assert "not an address:x — не адрес: укажите ХОСТ или ХОСТ:ПОРТ" in html.unescape(bad.text)
        assert "msg error" in bad.text
        silent = c.post("/panels/add", data={"address": "127.0.0.1:9"})
        assert "Сохранено: 127.0.0.1:9; панель не ответила: " in silent.text
        assert "msg ok" in silent.text


@pytest.mark.slow
def test_slow_video_thumbnails_hold_up_neither_the_page_nor_a_drop(
    app: RunningApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Video pictures that take long (here: held until the test lets them go) keep to
    their own threads: meanwhile the page answers and a new drop begins."""
    import threading

    from controller.webapp import lessons as library

    release = threading.Event()
    calls, returned = [], []

    def held_frame(path: Path, *, timeout_s: float) -> bytes | None:
        calls.append(path)
        release.wait(30)
        returned.append(path)
        return None  # as for a broken video: the icon

    monkeypatch.setattr(library, "video_frame_png", held_frame)
    folder = lesson_folder(tmp_path / "drop")
    answers: list[httpx.Response] = []
    with client(app) as c:
        key = begin(c, "Фотосинтез")
        for path in sorted(folder.iterdir()):
            upload(c, key, path.name, path.read_bytes())
        c.post(f"/lessons/{key}/done")

        def fetch() -> None:
            with client(app) as own:
                answers.append(own.get(f"/lessons/{key}/thumbs/5", timeout=60))

        fetchers = [threading.Thread(target=fetch) for _ in range(8)]
        for thread in fetchers:
            thread.start()
        while len(calls) < library.MAX_THUMBNAIL_JOBS:
            release.wait(0.01)
        assert c.get("/fragments/cast").status_code == 200
        assert begin(c, "Ещё один")  # a drop begins (a worker thread of the loop's own)
        assert returned == []  # while every video picture is still held
        assert len(calls) == library.MAX_THUMBNAIL_JOBS  # at most this many at once
        release.set()
        for thread in fetchers:
            thread.join(60)
    assert [a.status_code for a in answers] == [200] * 8
    assert {a.content for a in answers} == {answers[0].content}  # the icon


def test_the_cast_view_says_when_a_panel_could_not_open_a_page(
    app: RunningApp, tmp_path: Path
) -> None:
    """The panel's display reports the current item failed (a web page, as kiosk.web
    does); the pushed status reaches the app, whose cast view says why in Russian."""
    state = app.config.state
    assert state is not None
    folder = lesson_folder(tmp_path / "drop")
    with KioskThread(tmp_path / "k1", room="Каб. 12") as k1, client(app) as c:
        _pair(c, app, k1)
        key = begin(c, "Опыт")
        for path in sorted(folder.iterdir()):
            upload(c, key, path.name, path.read_bytes())
        c.post(f"/lessons/{key}/done")
        c.post("/cast", data={"target": [k1.address]})
        _run(app, state.cast.wait())
        assert k1.app is not None
        kiosk_app = k1.app
        k1.sync(lambda: kiosk_app.item_failed(0, "http_error", 404))

        async def told() -> None:
            while (
                (link := state.hub.links.get(k1.address)) is None
                or link.status is None
                or link.status.item_failure is None
            ):
                await state.hub.wait_for_change(state.hub.version, 1.0)

        _run(app, told())
        fragment = c.get("/fragments/cast").text
    assert (
        "Страница не открылась: сайт ответил ошибкой 404: такой страницы нет или она закрыта."
        in fragment
    )
