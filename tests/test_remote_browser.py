"""The phone remote in a real browser: Debian's Chromium through Playwright, with a
phone's viewport and touch, against a real kiosk on loopback."""

from __future__ import annotations

import shutil
import time

import pytest

from controller.remote import GrantBook
from controller.webapp.remote import remote_lan_app, serve_remote
from tests.helpers import text_lesson
from tests.kiosks import KioskThread, teacher
from tests.test_remote_e2e import KioskCast

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Chromium is not installed"),
]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


async def test_a_phone_taps_next_then_loses_access_when_revoked(kiosk: KioskThread) -> None:
    from playwright.async_api import async_playwright, expect

    lesson = text_lesson("Первый", "Второй", "Третий", title="Фотосинтез")
    async with await teacher(kiosk) as client:
        await client.cast(lesson)
        await client.wait_for_status(lambda s: s.state == "playing")
        cast = KioskCast(client, tuple(item.title for item in lesson.items))
        book = GrantBook()
        port: list[int] = []
        app = remote_lan_app(book, cast, lambda: f"http://127.0.0.1:{port[0]}")
        server = await serve_remote(app, "127.0.0.1", 0)
        port.append(server.port)
        view = cast.remote_view()
        assert view is not None
        issued = book.issue(view.scope, time.monotonic(), label="Каб. 12")
        errors: list[str] = []
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                phone = await browser.new_context(
                    viewport={"width": 390, "height": 844},
                    device_scale_factor=2,
                    is_mobile=True,
                    has_touch=True,
                    locale="ru-RU",
                )
                page = await phone.new_page()
                # Refused requests (403 after the revoke) are logged as failed loads; any
                # other error (a CSP violation, a script error) fails the test.
                page.on(
                    "console",
                    lambda m: (
                        errors.append(m.text)
                        if m.type == "error" and "Failed to load resource" not in m.text
                        else None
                    ),
                )
                page.on("pageerror", lambda e: errors.append(str(e)))
                # The QR code's link opens the remote by itself (a POST, then the page).
                await page.goto(f"http://127.0.0.1:{server.port}/p/{issued.code}")
                await expect(page.locator("#item-title")).to_have_text("Слайд 1")
                await expect(page.locator("#position")).to_have_text("Слайд 1 из 3")
                assert page.url == f"http://127.0.0.1:{server.port}/"  # the code left the URL

                await page.locator("#next").tap()
                await expect(page.locator("#item-title")).to_have_text("Слайд 2")
                assert (await client.status()).index == 1

                await page.locator("#blank").tap()
                await expect(page.locator("#unblank")).to_be_visible()
                assert (await client.status()).blanked

                # The teacher revokes: the next poll reloads the page to the closed one.
                book.revoke_all(time.monotonic())
                await expect(page.locator("#message h1")).to_have_text(
                    "Доступ к пульту закрыт", timeout=10_000
                )
                await expect(page.locator("#message p")).to_contain_text(
                    "Учитель закрыл этот пульт"
                )
                assert (await client.status()).index == 1
                await page.screenshot(path=str(kiosk.config.state_dir / "closed.png"))
                await browser.close()
        finally:
            await server.close()
        assert errors == []  # no CSP violation, no script error
