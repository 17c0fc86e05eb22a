"""Take the README's screenshots of the teacher's app: ``python -m scripts.app_screenshots``.

Two real kiosks (child processes rendering offscreen with EGL, on 127.0.0.1), the app,
and Debian's Chromium driven by Playwright: the teacher pairs with both panels, drops
the sample lesson, casts it, jumps to the PDF page and shows the phone remote's QR code;
a phone (a second browser context: a phone's viewport and touch) opens the remote.
Writes ``docs/img/app-*.png``, reduced to a small palette so that they stay small. The
phone remote listens on 127.0.0.1 here (``CLASSCAST_REMOTE_HOST``), never on the LAN.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"


def small_png(png: bytes, path: Path) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KiB)")


def main() -> int:
    os.environ.setdefault("CLASSCAST_MDNS_INTERFACES", "127.0.0.1")  # never multicast outside
    os.environ.setdefault("CLASSCAST_LANG", "ru")
    os.environ.setdefault("CLASSCAST_REMOTE_HOST", "127.0.0.1")  # the phone remote too
    from playwright.sync_api import sync_playwright

    from tests.app_server import lesson_folder, running_app
    from tests.kiosks import ADMIN_SECRET, kiosk_process

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ["CLASSCAST_HOME"] = str(base / "home")
        folder = lesson_folder(base / "drop")
        with (
            kiosk_process(base / "k1", "--room", "Каб. 12") as (_, a1),
            kiosk_process(base / "k2", "--room", "Каб. 14") as (_, a2),
            running_app(base / "home") as app,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                ],
            )
            page = browser.new_page(
                viewport={"width": 1280, "height": 900}, locale="ru-RU", bypass_csp=True
            )
            page.goto(app.url)
            for address in (a1, a2):
                if not page.is_visible("input[name=address]"):
                    page.click("summary")
                page.fill("input[name=address]", address)
                page.click(".add-panel button[type=submit]")
                page.wait_for_selector(f".panel[data-address='{address}'] button.pair-open")
                page.click(f".panel[data-address='{address}'] button.pair-open")
                page.check(".pair-form input[name=admin]")  # a child kiosk's PIN is on its screen
                page.fill("#pair-pin", ADMIN_SECRET)
                page.click(".pair-form button[type=submit]")
                page.wait_for_selector("#pair-messages .msg.ok")
                page.click("#pair-close")
                page.check(f"input.target[value='{address}']")
            page.set_input_files("#pick-folder", str(folder))
            page.wait_for_selector(".strip .item >> nth=6")
            page.click("#cast-button")
            page.wait_for_function(
                "document.querySelectorAll('.progress-list li.done').length === 2",
                timeout=30_000,
            )
            page.click(".strip .item[data-number='3']")
            page.wait_for_selector(".strip .item.current[data-number='3']")
            page.wait_for_timeout(2500)  # the pictures of both panels refresh
            page.evaluate("document.getElementById('messages').innerHTML = ''")
            page.click("text=Показать QR-код для телефона")
            page.wait_for_selector("#remote-grant .remote-qr svg")
            page.wait_for_selector("#remote-list .remote-row")  # the list's next refresh
            # The strip's end: the text slide, the video's picture and the web page.
            page.wait_for_function(
                "() => [...document.querySelectorAll('.strip img')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            page.evaluate("document.querySelector('.strip').scrollLeft = 10000")
            small_png(page.screenshot(full_page=True), OUT / "app-cast.png")
            link = page.get_attribute("#remote-grant .remote-link a", "href")
            assert link is not None
            page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, upright
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(300)
            small_png(page.screenshot(), OUT / "app-tablet.png")
            phone = browser.new_context(
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                locale="ru-RU",
            ).new_page()
            phone.goto(link)
            phone.wait_for_selector("#next")
            small_png(phone.screenshot(), OUT / "app-phone.png")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
