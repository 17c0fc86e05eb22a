"""Web links cast as lesson items: from ``classcast cast URL``, from a ``.url`` shortcut and
from the app's «Вставить ссылку» field; library content recognised by the host setting."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from controller.cli import cli
from controller.home import SETTINGS_FILE, Home
from controller.texts import error_text
from controller.webapp.lessons import link_shortcut
from media.lesson import DEFAULT_MULTI_FILE_TITLE, load_lesson, load_sources, web_link_item
from media.weblink import (
    DEFAULT_LIBRARY_HOSTS,
    MAX_LIBRARY_HOSTS,
    MAX_SHORTCUT_BYTES,
    MAX_URL_CHARS,
    library_host,
    library_hosts,
    looks_like_url,
    parse_library_host,
    parse_link,
    shortcut_url,
)
from protocol.codec import decode, encode
from protocol.errors import LessonError
from protocol.messages import Cast
from tests.app_server import RunningApp, lesson_folder, running_app
from tests.helpers import png_bytes
from tests.kiosks import KioskThread
from tests.test_app import begin, client, upload

LIB = "https://lib.myschool.edu.ru/content/5a3b-урок?page=2"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# --------------------------------------------------------------------------- checking a link


def test_a_link_is_normalised_idn_and_all() -> None:
    assert parse_link("  HTTPS://Lib.MySchool.edu.ru/a b?q=да#x \n") == (
        "https://lib.myschool.edu.ru/a%20b?q=%D0%B4%D0%B0#x"
    )
    assert parse_link("http://школа.рф:8080/") == "http://xn--80atdl2c.xn--p1ai:8080/"
    assert parse_link("http://127.0.0.1:8000/x") == "http://127.0.0.1:8000/x"
    assert parse_link("http://[::1]/") == "http://[::1]/"
    assert parse_link("https://a.ru/%D0%B0") == "https://a.ru/%D0%B0"  # kept, not doubled


def test_the_url_limit_holds_at_both_ends() -> None:
    base = "https://a.ru/"
    at_limit = base + "x" * (MAX_URL_CHARS - len(base))
    assert parse_link(at_limit) == at_limit
    with pytest.raises(LessonError) as over:
        parse_link(at_limit + "x")
    assert over.value.reason == "url_too_long"
    assert over.value.values == {"limit": MAX_URL_CHARS}
    assert len(over.value.path or "") <= 80  # the message repeats only the start
    grown = base + "я" * (MAX_URL_CHARS // 2)  # short as typed, too long percent-encoded
    with pytest.raises(LessonError) as encoded:
        parse_link(grown)
    assert encoded.value.reason == "url_too_long"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ftp://files.school.ru/a.pdf", "url_scheme"),
        ("javascript://alert(1)", "url_scheme"),
        ("file:///etc/passwd", "url_scheme"),
        ("data:text/html,<b>x</b>", "url_scheme"),
        ("lib.myschool.edu.ru/content", "url_scheme"),
        ("https:/lib.myschool.edu.ru", "url_scheme"),
        ("https://user:secret@lib.myschool.edu.ru/", "url_credentials"),
        ("https://user@lib.myschool.edu.ru/", "url_credentials"),
        ("https://", "url_host"),
        ("https://a..ru/", "url_host"),
        ("https://-a.ru/", "url_host"),
        ("https://a_b.ru/", "url_host"),
        ("https://a.ru:99999/", "url_host"),
        ("https://[::1/", "url_host"),
        ("https://a.ru/\nhttps://b.ru/", "url_chars"),
        ("https://a.ru/\x00", "url_chars"),
    ],
)
def test_bad_links_are_refused_with_a_reason_and_a_russian_text(text: str, reason: str) -> None:
    with pytest.raises(LessonError) as refused:
        parse_link(text)
    assert refused.value.reason == reason
    message = error_text(refused.value)
    assert any("а" <= c <= "я" for c in message), message
    assert "\n" not in message
    assert "\x00" not in message


def test_refusals_read_as_what_to_do_next() -> None:
    def text(link: str) -> str:
        with pytest.raises(LessonError) as refused:
            parse_link(link)
        return error_text(refused.value)

    assert text("ftp://x.ru/a") == (
        "ftp://x.ru/a: это не адрес веб-страницы: ссылка должна начинаться с http:// или "
        "https://. Скопируйте её из адресной строки браузера и попробуйте снова."
    )
    assert "Удалите часть до @" in text("https://u:p@x.ru/")
    assert text("https://teacher:secret@x.ru/a").startswith("https://…@x.ru/a: ")  # not repeated
    assert f"длиннее {MAX_URL_CHARS} символов" in text("https://x.ru/" + "a" * MAX_URL_CHARS)


def test_only_arguments_with_a_scheme_are_taken_for_links() -> None:
    assert looks_like_url("https://x.ru")
    assert looks_like_url("ftp://x.ru")  # refused later, with the scheme named
    assert not looks_like_url("./урок")
    assert not looks_like_url("C:\\Уроки\\урок.pdf")
    assert not looks_like_url("notes:2.txt")


# --------------------------------------------------------------------------- library hosts


def test_library_hosts_match_themselves_and_hosts_under_them() -> None:
    hosts = library_hosts(DEFAULT_LIBRARY_HOSTS)
    assert library_host(LIB, hosts) == "myschool.edu.ru"
    assert library_host("https://myschool.edu.ru/", hosts) == "myschool.edu.ru"
    assert library_host("https://resh.edu.ru/subject/lesson/1/", hosts) == "resh.edu.ru"
    assert library_host("https://LIB.MYSCHOOL.EDU.RU./x", hosts) == "myschool.edu.ru"
    for other in (
        "https://example.org/quiz",
        "https://evilmyschool.edu.ru/",
        "https://myschool.edu.ru.evil.com/",
        "https://edu.ru/",
        "http://127.0.0.1/",
    ):
        assert library_host(other, hosts) is None, other
    assert (
        library_host("https://школа.рф/x", library_hosts(["ШКОЛА.рф"])) == "xn--80atdl2c.xn--p1ai"
    )


@pytest.mark.parametrize(
    "bad", ["https://lib.myschool.edu.ru", "*.myschool.edu.ru", "a.ru/x", "a.ru:80", "", "a b"]
)
def test_a_library_host_is_a_bare_host_name(bad: str) -> None:
    with pytest.raises(ValueError, match="not a host name"):
        parse_library_host(bad)


def test_the_library_host_list_is_bounded_at_both_ends() -> None:
    many = [f"h{n}.ru" for n in range(MAX_LIBRARY_HOSTS)]
    assert len(library_hosts(many)) == MAX_LIBRARY_HOSTS
    with pytest.raises(ValueError, match="over"):
        library_hosts([*many, "one-more.ru"])


def test_the_setting_is_kept_in_the_home_and_a_damaged_one_reads_as_defaults(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path / "home")
    assert home.library_hosts() == DEFAULT_LIBRARY_HOSTS
    assert home.set_library_hosts(["Uchi.ru", "uchi.ru", "resh.edu.ru"]) == (
        "uchi.ru",
        "resh.edu.ru",
    )
    assert Home(tmp_path / "home").library_hosts() == ("uchi.ru", "resh.edu.ru")
    with pytest.raises(ValueError, match="not a host name"):
        home.set_library_hosts(["https://x.ru/"])
    assert home.library_hosts() == ("uchi.ru", "resh.edu.ru")  # nothing saved
    assert home.set_library_hosts(None) == DEFAULT_LIBRARY_HOSTS
    (home.root / SETTINGS_FILE).write_text('{"library_hosts": ["no/good"]}', encoding="utf-8")
    assert home.library_hosts() == DEFAULT_LIBRARY_HOSTS
    (home.root / SETTINGS_FILE).write_text('{"library_hosts": "x.ru"}', encoding="utf-8")
    assert home.library_hosts() == DEFAULT_LIBRARY_HOSTS


def test_classcast_library_hosts_shows_adds_removes_and_resets() -> None:
    shown = run("library-hosts")
    assert shown.exit_code == 0, shown.output
    assert "Сайты библиотеки цифрового контента:" in shown.output
    assert "  lib.myschool.edu.ru" in shown.output
    added = run("library-hosts", "add", "Uchi.ru", "школа.рф")
    assert added.exit_code == 0, added.output
    listed = json.loads(run("library-hosts", "--json").output)
    assert listed == [*DEFAULT_LIBRARY_HOSTS, "uchi.ru", "xn--80atdl2c.xn--p1ai"]
    removed = run("library-hosts", "remove", "resh.edu.ru", "UCHI.ru")
    assert removed.exit_code == 0, removed.output
    listed = json.loads(run("library-hosts", "--json").output)
    assert listed == ["myschool.edu.ru", "lib.myschool.edu.ru", "xn--80atdl2c.xn--p1ai"]
    missing = run("library-hosts", "remove", "example.org")
    assert missing.exit_code == 1
    assert "example.org нет в списке" in missing.output
    bad = run("library-hosts", "add", "https://uchi.ru/")
    assert bad.exit_code == 1
    assert "https://uchi.ru/ — не имя сайта" in bad.output
    assert "Traceback" not in bad.output
    reset = run("library-hosts", "reset")
    assert reset.exit_code == 0
    assert json.loads(run("library-hosts", "--json").output) == list(DEFAULT_LIBRARY_HOSTS)


def test_the_library_host_list_is_bounded_on_the_command_line_too() -> None:
    many = [f"h{n}.ru" for n in range(MAX_LIBRARY_HOSTS - len(DEFAULT_LIBRARY_HOSTS))]
    assert run("library-hosts", "add", *many).exit_code == 0
    over = run("library-hosts", "add", "one-more.ru")
    assert over.exit_code == 1
    assert f"не больше {MAX_LIBRARY_HOSTS} сайтов" in over.output


# --------------------------------------------------------------------------- lessons with links


def test_a_library_link_is_marked_as_library_content_and_another_is_not() -> None:
    library = web_link_item(LIB)
    assert library.kind == "web"
    assert library.url == parse_link(LIB)
    assert library.source_url == library.url
    assert library.title == "lib.myschool.edu.ru"
    other = web_link_item("https://www.example.org/quiz")
    assert other.source_url is None
    assert other.title == "example.org"
    custom = web_link_item("https://www.example.org/quiz", library_hosts=("example.org",))
    assert custom.source_url == "https://www.example.org/quiz"


def test_links_and_files_mix_in_the_order_given(tmp_path: Path) -> None:
    picture = tmp_path / "лист.png"
    picture.write_bytes(png_bytes(4, 4))
    folder = tmp_path / "урок"
    folder.mkdir()
    (folder / "1.txt").write_text("Первый слайд", encoding="utf-8")
    (folder / "2.txt").write_text("Второй слайд", encoding="utf-8")
    lesson = load_sources(
        [str(picture), "https://example.org/quiz", str(folder), LIB],
        library_hosts=DEFAULT_LIBRARY_HOSTS,
    )
    assert lesson.title == DEFAULT_MULTI_FILE_TITLE
    assert [i.kind for i in lesson.items] == ["image", "web", "text", "text", "web"]
    assert [i.source_url for i in lesson.items] == [None, None, None, None, parse_link(LIB)]
    alone = load_sources([LIB])
    assert alone.title == "lib.myschool.edu.ru"
    assert len(alone.items) == 1
    decoded = decode(encode(Cast(id=1, lesson=lesson.manifest())))  # the codec takes it
    assert isinstance(decoded, Cast)
    assert decoded.lesson.items[4].source_url == parse_link(LIB)
    with pytest.raises(LessonError) as bad:
        load_sources([str(picture), "https://u:p@x.ru/"])
    assert bad.value.reason == "url_credentials"


def test_a_windows_internet_shortcut_in_a_folder_is_a_web_item(tmp_path: Path) -> None:
    folder = tmp_path / "урок"
    folder.mkdir()
    (folder / "1.txt").write_text("Слайд", encoding="utf-8")
    (folder / "2 Фотосинтез.url").write_bytes(
        b"[DEFAULT]\r\nBASEURL=https://x.ru/\r\n[InternetShortcut]\r\nURL=" + LIB.encode() + b"\r\n"
    )
    lesson = load_lesson(folder)
    item = lesson.items[1]
    assert (item.kind, item.title, item.url) == ("web", "2 Фотосинтез", parse_link(LIB))
    assert item.source_url == item.url
    assert shortcut_url(link_shortcut("https://a.ru/")) == "https://a.ru/"
    assert shortcut_url("[InternetShortcut]\nURL=https://школа.рф/".encode("cp1251")) == (
        "https://xn--80atdl2c.xn--p1ai/"
    )


def test_a_shortcut_without_an_address_or_too_large_is_named_in_the_error(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "пусто.url"
    empty.write_bytes(b"[InternetShortcut]\r\nIconIndex=0\r\n")
    with pytest.raises(LessonError) as refused:
        load_lesson(empty)
    assert refused.value.reason == "url_shortcut"
    assert error_text(refused.value).startswith(f"{empty}: в этом интернет-ярлыке нет веб-адреса")
    at_limit = b"[InternetShortcut]\nURL=https://a.ru/\n"
    at_limit += b";" * (MAX_SHORTCUT_BYTES - len(at_limit))
    assert shortcut_url(at_limit) == "https://a.ru/"
    with pytest.raises(LessonError) as large:
        shortcut_url(at_limit + b";")
    assert large.value.reason == "url_shortcut"


def test_a_lesson_toml_url_from_the_library_is_marked_too(tmp_path: Path) -> None:
    toml = tmp_path / "lesson.toml"
    toml.write_text(
        f'title = "Урок"\n[[items]]\nurl = "{parse_link(LIB)}"\n'
        '[[items]]\nurl = "https://example.org/"\n',
        encoding="utf-8",
    )
    items = load_lesson(toml).items
    assert [i.source_url for i in items] == [items[0].url, None]


def test_a_lesson_toml_url_is_checked_as_a_typed_link_is(tmp_path: Path) -> None:
    toml = tmp_path / "lesson.toml"
    toml.write_text(
        'title = "Урок"\n[[items]]\ntext = "Слайд"\n'
        '[[items]]\nurl = "https://teacher:secret@lib.myschool.edu.ru/x"\n',
        encoding="utf-8",
    )
    with pytest.raises(LessonError) as refused:
        load_lesson(toml)
    assert (refused.value.reason, refused.value.item) == ("url_credentials", 2)
    assert error_text(refused.value).startswith(
        f"{toml}, пункт 2: в веб-адресе есть имя пользователя или пароль"
    )


# --------------------------------------------------------------------------- to a real kiosk


@pytest.fixture
def web_server() -> Iterator[str]:
    """A local web server on 127.0.0.1 (no network): its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_classcast_cast_url_shows_web_items_on_a_real_kiosk(
    tmp_path: Path, web_server: str
) -> None:
    with KioskThread(tmp_path / "k", web_allow=("127.0.0.1", "localhost")) as kiosk:
        assert run("pair", kiosk.address, "--pin", kiosk.pin()).exit_code == 0
        assert run("library-hosts", "add", "127.0.0.1").exit_code == 0
        picture = tmp_path / "лист.png"
        picture.write_bytes(png_bytes(4, 4))
        library_page = f"{web_server}/урок.html"
        other_page = web_server.replace("127.0.0.1", "localhost") + "/quiz.html"
        cast = run("cast", library_page, str(picture), other_page, "--to", kiosk.address)
        assert cast.exit_code == 0, cast.output
        assert "Урок «Урок»: элементов — 3" in cast.output
        assert kiosk.app is not None
        service = kiosk.app.service
        lesson = kiosk.sync(lambda: service.player.lesson)
        first, second, third = lesson.items
        assert (first.kind, first.url) == ("web", f"{web_server}/%D1%83%D1%80%D0%BE%D0%BA.html")
        assert first.source_url == first.url  # the library's: marked
        assert second.kind == "image"
        assert (third.kind, third.url, third.source_url) == ("web", other_page, None)
        status = json.loads(run("status", "--json").output)[0]["status"]
        assert (status["item_kind"], status["index"]) == ("web", 0)


def test_classcast_cast_refuses_a_bad_link_in_russian_and_casts_nothing(
    kiosk: KioskThread,
) -> None:
    refused = run("cast", "https://user:pw@lib.myschool.edu.ru/x", "--to", kiosk.address)
    assert refused.exit_code == 1
    assert "в веб-адресе есть имя пользователя или пароль" in refused.output
    assert "Traceback" not in refused.output
    mangled = run("cast", "ftp://lib.myschool.edu.ru/x", "--to", kiosk.address)
    assert mangled.exit_code == 1
    assert "ссылка должна начинаться с http:// или https://" in mangled.output
    assert "lesson path does not exist" not in mangled.output


# --------------------------------------------------------------------------- the teacher's app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[RunningApp]:
    with running_app(tmp_path / "home") as running:
        yield running


def test_the_app_offers_a_paste_field_next_to_the_drop_zone(app: RunningApp) -> None:
    with client(app) as c:
        page = c.get("/").text
    assert 'hx-post="/lessons/link"' in page
    assert "Вставить ссылку" in page
    assert f'maxlength="{MAX_URL_CHARS}"' in page


def test_a_pasted_link_without_a_lesson_makes_a_one_item_lesson(app: RunningApp) -> None:
    with client(app) as c:
        answer = c.post("/lessons/link", data={"url": f"  {LIB}\n"})
        assert answer.status_code == 200
        assert answer.text.count('class="item kind-web"') == 1
        assert "lib.myschool.edu.ru" in answer.text
        assert app.config.state is not None
        key = app.config.state.selected
        assert key is not None
        (item,) = app.config.state.library.load(key).items
        assert (item.url, item.source_url) == (parse_link(LIB), parse_link(LIB))
        assert f"/lessons/{key}/select" in c.get("/").text  # a recent lesson now


def test_a_pasted_link_is_added_to_the_lesson_being_prepared(
    app: RunningApp, tmp_path: Path
) -> None:
    folder = lesson_folder(tmp_path / "drop")
    with client(app) as c:
        key = begin(c, "Фотосинтез")
        for path in sorted(folder.iterdir()):
            assert upload(c, key, path.name, path.read_bytes()).status_code == 204
        assert c.post(f"/lessons/{key}/done").text.count('class="item kind-') == 7
        added = c.post("/lessons/link", data={"url": "https://example.org/quiz"})
        assert added.status_code == 200
        assert added.text.count('class="item kind-') == 8
        assert app.config.state is not None
        assert app.config.state.selected == key
        items = app.config.state.library.load(key).items
        assert items[-1].url == "https://example.org/quiz"
        assert items[-1].source_url is None  # not the library's
        assert [i.kind for i in items[:7]] == [i.kind for i in load_lesson(folder).items]


def test_a_bad_pasted_link_is_refused_in_russian_and_the_lesson_stays(
    app: RunningApp, tmp_path: Path
) -> None:
    with client(app) as c:
        first = c.post("/lessons/link", data={"url": LIB})
        assert first.text.count('class="item kind-') == 1
        assert app.config.state is not None
        key = app.config.state.selected
        for bad, words in (
            ("javascript:alert(1)", "ссылка должна начинаться с http:// или https://"),
            ("https://u:p@x.ru/", "имя пользователя или пароль"),
            ("https://x.ru/" + "a" * MAX_URL_CHARS, f"длиннее {MAX_URL_CHARS} символов"),
        ):
            refused = c.post("/lessons/link", data={"url": bad})
            assert refused.status_code == 200
            assert 'class="msg error"' in refused.text
            assert words in refused.text
            assert refused.text.count('class="item kind-') == 1  # the lesson is still shown
        assert app.config.state.selected == key
        assert len(app.config.state.library.load(key or "").items) == 1


def test_a_pasted_link_into_a_lesson_toml_lesson_goes_at_its_end(
    app: RunningApp, tmp_path: Path
) -> None:
    with client(app) as c:
        key = begin(c, "Урок")
        toml = 'title = "Урок"\n[[items]]\ntext = "Слайд"\n'
        assert upload(c, key, "lesson.toml", toml.encode()).status_code == 204
        c.post(f"/lessons/{key}/done")
        added = c.post("/lessons/link", data={"url": LIB})
        assert added.text.count('class="item kind-') == 2
        assert app.config.state is not None
        items = app.config.state.library.load(key).items
        assert [(i.kind, i.source_url) for i in items] == [
            ("text", None),
            ("web", parse_link(LIB)),
        ]


def test_a_paste_needs_the_apps_secret_and_origin(app: RunningApp) -> None:
    with httpx.Client(base_url=app.base, timeout=10) as plain:
        assert plain.post("/lessons/link", data={"url": LIB}).status_code == 403
    with client(app) as c:
        foreign = c.post(
            "/lessons/link", data={"url": LIB}, headers={"origin": "http://evil.example"}
        )
        assert foreign.status_code == 403
    assert app.config.state is not None
    assert app.config.state.selected is None
