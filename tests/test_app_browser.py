"""The teacher's app in a real Chromium (Playwright), against real kiosks on loopback.

A new teacher adds two panels by address, pairs with each (the PIN read from the
kiosk), drops a lesson folder, casts to both, jumps to item 3 by its thumbnail, pauses
the video, blanks and stops; the panel's picture in the page follows every step.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from PIL import Image, ImageColor

from tests.app_server import COLOURS, PaintingDisplay, lesson_folder, running_app
from tests.kiosks import KioskThread

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium"),
]

CENTRE = (160, 90)
CORNER = (20, 20)
"""Where the test kiosks paint the item's colour, and the white square of a paused video."""

VIDEO_NUMBER = 6
"""The sample lesson as a folder: 2 images, a 2-page PDF, a text, the video, a web page."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
            ],
        )
        yield b
        b.close()


def painting_kiosk(path: Path, room: str) -> KioskThread:
    k = KioskThread(path, room=room)
    k.display = PaintingDisplay()
    return k


def live_bytes(page: Any) -> bytes:
    """The bytes of the panel's picture the page shows now (fetched as the page does)."""
    src = page.get_attribute("#live", "src")
    assert src
    response = page.request.get(src if src.startswith("http") else page.url.rstrip("/") + src)
    assert response.ok
    return bytes(response.body())


def pixel(png: bytes, xy: tuple[int, int]) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(png)) as image:
        return cast(tuple[int, int, int], image.convert("RGB").getpixel(xy))


def wait_for_picture(page: Any, xy: tuple[int, int], colour: str) -> bytes:
    """Wait until the page's picture of the panel has ``colour`` at ``xy``; its bytes."""
    want = ImageColor.getrgb(colour)
    deadline = time.monotonic() + 10
    while True:
        png = live_bytes(page) if page.is_visible("#live") else b""
        if png and pixel(png, xy) == want:
            return png
        assert time.monotonic() < deadline, f"the picture did not turn {colour}"
        page.wait_for_timeout(100)


def _video_commands(kiosk: KioskThread) -> list[tuple[str, int]]:
    return list(
        kiosk.sync(lambda: [(c.action, c.position_ms) for c in kiosk.display.video_commands])
    )


def until(page: Any, condition: Callable[[], bool]) -> None:
    """Wait (letting the page run) until ``condition()`` holds, at most 10 s."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        page.wait_for_timeout(50)


def test_a_new_teacher_pairs_drops_casts_and_controls(browser: Any, tmp_path: Path) -> None:
    folder = lesson_folder(tmp_path / "drop")
    with (
        painting_kiosk(tmp_path / "k1", "Каб. 12") as k1,
        painting_kiosk(tmp_path / "k2", "Каб. 14") as k2,
        running_app(tmp_path / "home") as app,
    ):
        context = browser.new_context(
            viewport={"width": 1280, "height": 900},
            locale="ru-RU",
            bypass_csp=True,  # for Playwright's own waits; the CSP is tested in test_app.py
        )
        page = context.new_page()
        page.goto(app.url)
        assert page.url == app.base + "/"  # the token is gone from the address bar

        # Add both panels by address and pair with each.
        for kiosk in (k1, k2):
            if not page.is_visible("input[name=address]"):
                page.click("summary")
            page.fill("input[name=address]", kiosk.address)
            page.click(".add-panel button[type=submit]")
            page.wait_for_selector(f".panel[data-address='{kiosk.address}'] button.pair-open")
            page.click(f".panel[data-address='{kiosk.address}'] button.pair-open")
            page.fill("#pair-pin", "12345")  # one digit short: the CLI's words
            page.click(".pair-form button[type=submit]")
            page.wait_for_selector("#pair-messages .msg.error")
            assert "6 цифр" in page.inner_text("#pair-messages")
            page.fill("#pair-pin", kiosk.pin())
            page.click(".pair-form button[type=submit]")
            page.wait_for_selector("#pair-messages .msg.ok")
            assert "Сопряжено" in page.inner_text("#pair-messages")
            page.click("#pair-close")
            page.wait_for_selector(f"input.target[value='{kiosk.address}']")
            page.check(f"input.target[value='{kiosk.address}']")

        # Drop the lesson folder.
        page.set_input_files("#pick-folder", str(folder))
        page.wait_for_selector(".strip .item >> nth=6")
        assert page.inner_text(".lesson-head h3") == "Фотосинтез"
        assert page.locator(".strip .item").count() == 7

        # Cast to both panels: each gets its progress bar, both start.
        page.click("#cast-button")
        page.wait_for_selector("#live", timeout=15_000)
        page.wait_for_function(
            "document.querySelectorAll('.progress-list li.done').length === 2", timeout=15_000
        )
        for kiosk in (k1, k2):
            assert kiosk.sync(lambda k=kiosk: k.display.index) == 0
        first = wait_for_picture(page, CENTRE, COLOURS[0])

        # Jump to item 3 by its thumbnail: both panels show it, and so does the page.
        page.click(".strip .item[data-number='3']")
        third = wait_for_picture(page, CENTRE, COLOURS[2])
        assert third != first
        for kiosk in (k1, k2):
            assert kiosk.sync(lambda k=kiosk: k.display.index) == 2
        page.wait_for_selector(".strip .item.current[data-number='3']")

        # Go to the video and pause it.
        page.click(f".strip .item[data-number='{VIDEO_NUMBER}']")
        video = wait_for_picture(page, CENTRE, COLOURS[VIDEO_NUMBER - 1])
        assert pixel(video, CORNER) == ImageColor.getrgb(COLOURS[VIDEO_NUMBER - 1])
        page.click("[data-action=pause]")
        paused = wait_for_picture(page, CORNER, "#ffffff")
        page.wait_for_selector("#now[data-state=paused]")
        for kiosk in (k1, k2):
            assert kiosk.sync(lambda k=kiosk: k.display.video_commands[-1].action) == "pause"

        # Seek in the video, set the volume, announce to both panels.
        page.fill("form.seek input[name=position]", "0:01")
        page.click("form.seek button[type=submit]")
        until(page, lambda: all(("seek", 1000) in _video_commands(k) for k in (k1, k2)))
        page.locator("input[name=volume]").fill("40")
        page.wait_for_selector("#now:has-text('Громкость 40 %')")
        page.fill("textarea[name=text]", "Урок окончен, сдайте тетради")
        page.click(".announce-card button[type=submit]:not([name])")
        page.wait_for_selector("#messages .msg.ok")
        assert page.inner_text("#messages").count("объявление показано") == 2
        for kiosk in (k1, k2):
            text = kiosk.sync(lambda k=kiosk: k.display.announcement.text)
            assert text == "Урок окончен, сдайте тетради"

        # Blank with the key B (a presenter remote's blank key), then stop.
        page.keyboard.press("b")
        blanked = wait_for_picture(page, CENTRE, "#000000")
        for kiosk in (k1, k2):
            assert kiosk.sync(lambda k=kiosk: k.display.blanked) is True
        page.click("[data-action=stop]")
        stopped = wait_for_picture(page, CENTRE, "#808080")
        for kiosk in (k1, k2):
            assert kiosk.sync(lambda k=kiosk: k.display.index) is None
        assert len({first, third, video, paused, blanked, stopped}) == 6

        # Hidden (another tab, a closed laptop lid): the page closes its event stream,
        # and the app stops asking the panels for pictures.
        state = app.config.state
        assert state is not None
        assert state.hub.viewers == 1
        page.evaluate(
            "() => { Object.defineProperty(document, 'hidden', {value: true});"
            " document.dispatchEvent(new Event('visibilitychange')); }"
        )
        until(page, lambda: state.hub.viewers == 0)
        context.close()


def test_files_dropped_on_the_page_become_a_lesson(browser: Any, tmp_path: Path) -> None:
    """A drop of loose files (a DataTransfer, as a file manager's drag gives), then
    picking it again among the recent lessons."""
    with running_app(tmp_path / "home") as app:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        page.goto(app.url)
        page.evaluate(
            """() => {
                const dt = new DataTransfer();
                dt.items.add(new File(['# Тема урока'], '1-тема.md', {type: 'text/markdown'}));
                dt.items.add(new File(['Вопросы к уроку'], '2-вопросы.txt', {type: 'text/plain'}));
                document.getElementById('drop').dispatchEvent(
                    new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
            }"""
        )
        page.wait_for_selector(".strip .item >> nth=1")
        assert page.inner_text(".lesson-head h3") == "Урок"
        assert page.locator(".strip .item.kind-text").count() == 2
        # A text slide's thumbnail is drawn as the panel shows it; its words are its alt.
        first = page.locator(".strip .item.kind-text img").first
        assert first.get_attribute("alt") == "Тема урока"
        page.wait_for_function(
            "() => [...document.querySelectorAll('.strip img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        page.reload()
        page.click(".recent .chip")
        page.wait_for_selector(".strip .item >> nth=1")
        context.close()


def test_a_pasted_link_becomes_a_web_item_of_the_lesson(browser: Any, tmp_path: Path) -> None:
    """«Вставить ссылку»: a refused address stays in the field with the Russian reason;
    a good one becomes a one-item lesson, and the next joins it."""
    with running_app(tmp_path / "home") as app:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        page.goto(app.url)
        page.fill("form.paste-link input[name=url]", "ftp://lib.myschool.edu.ru/x")
        page.click("form.paste-link button[type=submit]")
        page.wait_for_selector("#lesson .msg.error")
        assert "http:// или https://" in page.inner_text("#lesson .msg.error")
        assert page.input_value("form.paste-link input[name=url]") == "ftp://lib.myschool.edu.ru/x"
        page.fill("form.paste-link input[name=url]", "https://lib.myschool.edu.ru/content/1")
        page.click("form.paste-link button[type=submit]")
        page.wait_for_selector(".strip .item.kind-web")
        assert page.inner_text(".lesson-head h3") == "lib.myschool.edu.ru"
        until(page, lambda: page.input_value("form.paste-link input[name=url]") == "")
        page.fill("form.paste-link input[name=url]", "https://example.org/quiz")
        page.press("form.paste-link input[name=url]", "Enter")
        page.wait_for_selector(".strip .item.kind-web >> nth=1")
        assert page.locator("#lesson .msg.error").count() == 0
        context.close()


def test_a_phone_remote_from_the_page_drives_the_cast_until_revoked(
    browser: Any, tmp_path: Path
) -> None:
    """The teacher casts from the page and shows the phone remote's QR code; a phone
    (a second context: a phone's viewport and touch) opens its link and taps «Далее»:
    the panel and the teacher's page move on. The teacher closes the remote in the page:
    the phone's next tap is refused with the Russian closed page, and the panel stays."""
    folder = lesson_folder(tmp_path / "drop")
    with painting_kiosk(tmp_path / "k1", "Каб. 12") as k1, running_app(tmp_path / "home") as app:
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, locale="ru-RU", bypass_csp=True
        )
        page = context.new_page()
        page.goto(app.url)
        page.click("summary")
        page.fill("input[name=address]", k1.address)
        page.click(".add-panel button[type=submit]")
        page.click(f".panel[data-address='{k1.address}'] button.pair-open")
        page.fill("#pair-pin", k1.pin())
        page.click(".pair-form button[type=submit]")
        page.wait_for_selector("#pair-messages .msg.ok")
        page.click("#pair-close")
        page.check(f"input.target[value='{k1.address}']")
        page.set_input_files("#pick-folder", str(folder))
        page.wait_for_selector(".strip .item >> nth=6")
        page.click("#cast-button")
        wait_for_picture(page, CENTRE, COLOURS[0])
        assert k1.sync(lambda: k1.display.index) == 0

        # The phone remote's QR code, and its link.
        page.click("text=Показать QR-код для телефона")
        page.wait_for_selector("#remote-grant .remote-qr svg")
        link = page.get_attribute("#remote-grant .remote-link a", "href")
        assert link is not None
        assert link.startswith("http://127.0.0.1:")  # CLASSCAST_REMOTE_HOST, tests/conftest.py
        duplicated = page.evaluate(
            "() => { const ids = [...document.querySelectorAll('[id]')].map(e => e.id);"
            " return ids.filter((id, i) => ids.indexOf(id) !== i); }"
        )
        assert duplicated == []  # the remote's part has ids of its own

        phone_context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="ru-RU",
        )
        phone = phone_context.new_page()
        errors: list[str] = []
        phone.on("pageerror", lambda e: errors.append(str(e)))
        phone.goto(link)
        phone.wait_for_selector("#position:has-text('Слайд 1 из 7')")
        phone.locator("#next").tap()
        phone.wait_for_selector("#position:has-text('Слайд 2 из 7')")
        assert k1.sync(lambda: k1.display.index) == 1
        wait_for_picture(page, CENTRE, COLOURS[1])  # the teacher's page shows it
        page.wait_for_selector(".strip .item.current[data-number='2']")

        # The teacher sees the phone connected and closes its remote in the page. The
        # phone's poll is held back, so that its next tap is what meets the closed grant.
        phone.route("**/state?*", lambda route: route.abort())
        page.wait_for_selector("#remote-list .remote-row:has-text('Телефон подключён')")
        page.click("#remote-list .remote-row button:has-text('Закрыть пульт')")
        page.wait_for_selector("#remote-list:has-text('Пульт на телефоне не открыт.')")
        phone.locator("#next").tap()
        phone.wait_for_selector("#message h1:has-text('Доступ к пульту закрыт')")
        assert "Учитель закрыл этот пульт" in phone.inner_text("#message p")
        assert k1.sync(lambda: k1.display.index) == 1
        assert errors == []
        phone_context.close()
        context.close()
