"""The admin's dashboard in a real Chromium (Playwright), against a real kiosk on loopback.

An admin's computer (paired with the panel's admin secret) casts a lesson; the
dashboard shows the panel live (its picture, what it shows, who presents, its cache
and version) and follows it when the screen is blanked; the weekly norm of the
hand-built week of tests/test_app_admin.py reads as worked out by hand there; choosing
another week changes it; the CSV downloaded is the command line's CSV of that week;
a room named ``<script>`` stays text.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.reports import CSV_BOM
from tests.app_server import lesson_folder, running_app
from tests.kiosks import ADMIN_SECRET
from tests.test_app import _run, _wait_for_rows, begin, client, upload
from tests.test_app_admin import PAGE_W48, PAGE_W49, SCRIPT_ROOM, W48, W49, build_school
from tests.test_app_browser import CHROMIUM, browser, painting_kiosk

__all__ = ["browser"]  # the module's Chromium, shared with the teacher's page tests

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


def until(page: Any, condition: Callable[[], bool], what: str) -> None:
    """Let the page run until ``condition()`` holds, at most 10 s."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        page.wait_for_timeout(50)


def norm_rows(page: Any) -> list[list[str]]:
    """The first seven cells of each row of the weekly-norm table, as the admin reads them."""
    rows = page.locator("#norm tbody tr")
    return [
        [cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()][:7]
        for i in range(rows.count())
    ]


def test_the_admin_watches_a_panel_and_reads_the_weekly_norm(browser: Any, tmp_path: Path) -> None:
    folder = lesson_folder(tmp_path / "drop")
    with painting_kiosk(tmp_path / "k1", "Каб. 12") as k1, running_app(tmp_path / "home") as app:
        state = app.config.state
        assert state is not None
        db = app.config.home.root / "school.sqlite"
        build_school(db).close()
        with client(app) as c:
            c.post("/panels/add", data={"address": k1.address})
            _wait_for_rows(app, k1.address)
            paired = c.post(
                "/pair", data={"address": k1.address, "pin": ADMIN_SECRET, "admin": "1"}
            )
            assert "роль: администратор" in paired.text
            key = begin(c, "Фотосинтез")
            for path in sorted(folder.iterdir()):
                upload(c, key, path.name, path.read_bytes())
            c.post(f"/lessons/{key}/done")
            c.post("/cast", data={"target": [k1.address], "start": "1"})
            _run(app, state.cast.wait())
            assert state.cast.phase == "showing"

            state.hub.cache_refresh_s = 0.0  # the cache's use with every picture
            context = browser.new_context(
                viewport={"width": 1280, "height": 900},
                locale="ru-RU",
                accept_downloads=True,
                bypass_csp=True,  # for Playwright's own waits; the CSP is tested in test_app.py
            )
            page = context.new_page()
            dialogs: list[str] = []

            def on_dialog(dialog: Any) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(app.url)
            page.click("nav a[href='/admin']")  # the teacher's page links an admin there
            page.wait_for_url(app.base + "/admin")
            page.goto(f"{app.base}/admin?week={W48}")

            # The panel, live.
            card = page.locator(f'#admin-panels article[data-address="{k1.address}"]')
            until(page, lambda: "«Фотосинтез»" in card.inner_text(), "the lesson is not shown")
            text = card.inner_text()
            assert "Каб. 12" in text
            assert "на связи" in text
            assert "Ведёт: Петрова Анна Сергеевна" in text
            link = state.hub.links[k1.address]
            assert link.status is not None
            assert card.locator("dd.version").inner_text() == link.status.version
            assert card.locator("dd.seen").inner_text() == "сейчас"
            cache = card.locator("dd.cache")
            until(page, lambda: " из 20,0 ГБ" in cache.inner_text(), "no cache use")
            until(page, lambda: not cache.inner_text().startswith("0 Б"), "the lesson not counted")
            until(
                page,
                lambda: page.evaluate(
                    "a => { const i = document.querySelector("
                    "`#admin-panels article[data-address='${a}'] img.thumb`);"
                    " return !!i && i.complete && i.naturalWidth > 0 }",
                    k1.address,
                ),
                "no thumbnail",
            )
            c.post("/control", data={"action": "blank"})
            until(page, lambda: "Экран погашен" in card.inner_text(), "the page did not follow")

            # The weekly norm of the hand-built week, as worked out by hand.
            assert page.locator("#report h3.week-title").get_attribute("data-week") == W48
            assert norm_rows(page) == PAGE_W48
            rooms = page.locator("#rooms tbody tr td:first-child").all_inner_texts()
            assert SCRIPT_ROOM in rooms  # text, not a script
            assert page.locator("#report svg.chart").count() == 3

            # Another week in the filter: the report changes in place, the address keeps it.
            page.select_option("#week", W49)
            until(
                page,
                lambda: page.locator("#report h3.week-title").get_attribute("data-week") == W49,
                "the week filter did not change the report",
            )
            assert norm_rows(page) == PAGE_W49
            assert page.url == f"{app.base}/admin?week={W49}"

            # The CSV download is the command line's CSV of the week shown.
            with page.expect_download() as info:
                page.click('#report a[data-what="norm"]')
            download = info.value
            assert download.suggested_filename == f"classcast-norm-{W49}.csv"
            got = Path(download.path()).read_text(encoding="utf-8")
            result = CliRunner().invoke(
                cli, ["usage", "compliance", "--db", str(db), "--week", W49, "--format", "csv"]
            )
            assert result.exit_code == 0, result.output
            assert got == CSV_BOM + result.output
            assert dialogs == []  # no script from a usage record ran
            context.close()
