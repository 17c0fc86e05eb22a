"""The teacher's app: a click in the page to the panel, vs the CLI's control round trip.

Run: ``.venv/bin/python -m bench.app [--quick] [--n N] [--starts S]``

A kiosk and ``classcast app --no-browser`` run in child processes; Debian's Chromium is
driven by Playwright (async API) from here, and an observer ``KioskClient`` (paired as
admin) hears the kiosk's pushed ``status``. Figures (bench/README.md says what each
covers):

- baseline: ``KioskClient.control`` next/prev, sequential, from here to the kiosk's
  ``ok`` (the CLI's control round trip, without the process start);
- click → push (the aim): a real mouse click (``page.mouse.click`` at the button's
  middle) from the click event's own time stamp in the page (when the browser took the
  release; the page's wall clock, its offset from this process's measured first) until
  the observer receives the kiosk's status for the new item: the browser's input
  dispatch, the page's script, its controls WebSocket, the app, the kiosk. Playwright's
  delivery of the click is not counted; "Playwright's call → push" counts it;
- click → page: the same click until the page shows the new item (the app heard the
  push and sent the changed fragment over its event stream);
- ``click()`` → push: the button's ``click()`` called by page script (no input events);
- cold start: from starting ``classcast app`` until the page is usable (its launch URL
  loaded in a new tab, the cookie set, htmx loaded, the panel list drawn), with
  Chromium already running as the teacher's browser is; the median of ``--starts`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import (
    BENCH_ADMIN_SECRET,
    LOOPBACK,
    REPO_ROOT,
    ServerProcess,
    add_weak_option,
    cancel_on_sigterm,
    child_env,
    figure,
    heading,
    p50_p99,
    result_line,
    stop_process,
    weak_panel,
)
from controller.client import ControllerIdentity, KioskClient
from protocol.messages import StatusSnapshot

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
APP_CLI = (sys.executable, "-c", "from controller.cli import main; main()", "app", "--no-browser")
PAUSE_S = 0.02
"""Between two clicks (a teacher clicks far less often; keeps the kiosk's rate limits away)."""
IDENTITY = ControllerIdentity("c-bench-observer", "Bench observer")


class AppProcess:
    """``classcast app --no-browser`` in a child process; ``url`` is its launch URL."""

    def __init__(self, home: Path) -> None:
        env = child_env(CLASSCAST_HOME=str(home), CLASSCAST_MDNS_INTERFACES=LOOPBACK)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            APP_CLI,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=REPO_ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.url_s = time.perf_counter() - self.started
        if "http://" not in line:
            self.stop()
            raise RuntimeError(f"classcast app did not start: {line!r}")
        self.url = line.split()[-1]
        self.base = self.url.split("/?")[0]

    def stop(self) -> None:
        stop_process(self.proc, terminate=True)


async def usable(page: Any, url: str) -> None:
    await page.goto(url)
    await page.wait_for_function("() => !!window.htmx && !!document.getElementById('panels')")


async def cold_starts(browser: Any, runs: int, root: Path) -> tuple[float, float]:
    """Start the app ``runs`` times; each time open its address in a new tab of the
    running browser (as ``webbrowser.open`` does) until the page is usable."""
    url_times, usable_times = [], []
    context = await browser.new_context()
    try:
        warm = await context.new_page()  # the teacher's browser has a window open already
        await warm.goto("about:blank")
        for i in range(runs):
            app = AppProcess(root / f"cold-{i}")
            try:
                page = await context.new_page()
                await usable(page, app.url)
                usable_times.append(time.perf_counter() - app.started)
                url_times.append(app.url_s)
                await page.close()
            finally:
                app.stop()
    finally:
        await context.close()
    return statistics.median(url_times), statistics.median(usable_times)


async def post(page: Any, base: str, path: str, **form: Any) -> str:
    answer = await page.request.post(base + path, form=form, headers={"origin": base})
    return str(await answer.text())


async def main_async(n: int, starts: int) -> None:
    cancel_on_sigterm()
    from playwright.async_api import async_playwright

    root = Path(tempfile.mkdtemp(prefix="bench-app-"))
    print(
        f"teacher's app: {n} clicks, {starts} cold starts; kiosk and app in child processes, "
        f"Chromium driven from here; {os.cpu_count()} CPUs"
    )
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                await run(browser, n, starts, root)
            finally:
                await browser.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def run(browser: Any, n: int, starts: int, root: Path) -> None:
    heading("cold start: `classcast app` until the page is usable")
    url_s, usable_s = await cold_starts(browser, starts, root)
    figure("process start → address printed (median)", url_s * 1e3, "ms")
    figure("process start → page usable (median)", usable_s * 1e3, "ms", "aim ≤ 1000 ms")

    folder = root / "lesson" / "Bench"
    folder.mkdir(parents=True)
    (folder / "1.txt").write_text("Первый слайд", encoding="utf-8")
    (folder / "2.txt").write_text("Второй слайд", encoding="utf-8")
    state = root / "kiosk"
    with ServerProcess("kiosk", "--count", "1", "--state-dir", str(state)) as kiosk:
        address = f"{LOOPBACK}:{kiosk.info['ports'][0]}"
        app = AppProcess(root / "home")
        try:
            page = await browser.new_page()
            await usable(page, app.url)
            await post(page, app.base, "/panels/add", address=address)
            await page.wait_for_selector(f".panel[data-address='{address}']")
            paired = await post(
                page,
                app.base,
                "/pair",
                address=address,
                pin=BENCH_ADMIN_SECRET,
                admin="1",
                teacher="Петрова Анна Сергеевна",  # the app asks a teacher's name once
            )
            assert "msg ok" in paired, paired
            await page.reload()
            await page.set_input_files("#pick-folder", str(folder))
            await page.wait_for_selector(".strip .item >> nth=1")
            await page.wait_for_selector(f"input.target[value='{address}']")
            await page.check(f"input.target[value='{address}']")
            await page.click("#cast-button")
            await page.wait_for_selector("#now[data-index='0']", timeout=20_000)

            observer = await KioskClient.connect(address, IDENTITY)
            await observer.pair(BENCH_ADMIN_SECRET, role="admin")
            try:
                heading("baseline: KioskClient.control next/prev until the kiosk's ok")
                base = []
                for i in range(n + 10):
                    t0 = time.perf_counter()
                    await observer.control("next" if i % 2 == 0 else "prev")
                    if i >= 10:
                        base.append(time.perf_counter() - t0)
                    await asyncio.sleep(PAUSE_S)
                if (observer.last_status or _idle()).index != 0:
                    await observer.control("prev")
                await page.wait_for_selector("#now[data-index='0']")
                b50, b99 = p50_p99(base)
                figure("control round trip p50", b50 * 1e3, "ms")
                figure("control round trip p99", b99 * 1e3, "ms")

                heading("a mouse click in the page → the kiosk's status push (the aim)")
                mouse = await clicks(page, observer, n)
                c50, c99 = p50_p99(mouse.push)
                figure("click → status push p50", c50 * 1e3, "ms", f"{c50 / b50:.2f}× baseline")
                figure("click → status push p99", c99 * 1e3, "ms", f"{c99 / b99:.2f}× baseline")
                s50, s99 = p50_p99(mouse.shown)
                figure("click → page shows the item p50", s50 * 1e3, "ms")
                figure("click → page shows the item p99", s99 * 1e3, "ms")
                p50, p99 = p50_p99(mouse.call_push)
                figure("Playwright's mouse.click call → push p50", p50 * 1e3, "ms")
                figure("Playwright's mouse.click call → push p99", p99 * 1e3, "ms")
                heading("the button's click() called by page script → the status push")
                js = await clicks(page, observer, n, in_page=True)
                j50, j99 = p50_p99(js.push)
                figure("click() → status push p50", j50 * 1e3, "ms", f"{j50 / b50:.2f}× baseline")
                figure("click() → status push p99", j99 * 1e3, "ms", f"{j99 / b99:.2f}× baseline")
            finally:
                await observer.close()
        finally:
            app.stop()

    heading("summary")
    result_line(
        "app",
        {
            "n": n,
            "control_p50_ms": b50 * 1e3,
            "control_p99_ms": b99 * 1e3,
            "click_push_p50_ms": c50 * 1e3,
            "click_push_p99_ms": c99 * 1e3,
            "ratio_p50": c50 / b50,
            "ratio_p99": c99 / b99,
            "click_page_p50_ms": s50 * 1e3,
            "playwright_click_push_p50_ms": p50 * 1e3,
            "js_click_push_p50_ms": j50 * 1e3,
            "js_click_push_p99_ms": j99 * 1e3,
            "js_ratio_p50": j50 / b50,
            "js_ratio_p99": j99 / b99,
            "cold_start_ms": usable_s * 1e3,
        },
    )


def _idle() -> StatusSnapshot:
    return StatusSnapshot("", "", "", "idle", False, None, None, 0, 0, None, None, 0, None, "")


CLICK_CLOCK = """() => {
  window.__classcastClickAt = null;
  document.addEventListener("click", (e) => {
    if (e.target.closest && e.target.closest("button[data-action]")) {
      // the click's own time (for a mouse click: when the browser took the button's
      // release), on the wall clock Python's time.time() reads too
      window.__classcastClickAt = performance.timeOrigin + e.timeStamp;
    }
  }, true);
}"""


async def page_clock_offset(page: Any) -> tuple[float, float]:
    """The page's wall clock (``performance.timeOrigin + now()``) minus ``time.time()``,
    in seconds, from the quickest of 30 round trips; and that round trip's half (the
    offset's uncertainty)."""
    best = (float("inf"), 0.0)
    for _ in range(30):
        t0 = time.time()
        page_ms = await page.evaluate("() => performance.timeOrigin + performance.now()")
        t1 = time.time()
        if t1 - t0 < best[0]:
            best = (t1 - t0, page_ms / 1e3 - (t0 + t1) / 2)
    return best[1], best[0] / 2


@dataclass(slots=True)
class Clicks:
    """Seconds per click: from the click's time in the page to the status push and to
    the page showing the item, and from Playwright's call to the push."""

    push: list[float]
    shown: list[float]
    call_push: list[float]


async def clicks(page: Any, observer: KioskClient, n: int, *, in_page: bool = False) -> Clicks:
    """Click «Дальше»/«Назад» ``n`` times (after 10 not counted).

    A real mouse click (``page.mouse.click`` at the button's middle: press and release
    through the DevTools protocol), or with ``in_page`` the button's ``click()`` called
    by page script. Each is timed from the click event's own time stamp in the page (the
    browser's input time for a mouse click), read on the wall clock, to the observer's
    ``status`` push (``time.time()`` in this process), so that Playwright's delivery of
    the click is not counted; ``call_push`` counts it (from Playwright's call).
    """
    loop = asyncio.get_running_loop()
    await page.evaluate(CLICK_CLOCK)
    offset, _ = await page_clock_offset(page)
    out = Clicks([], [], [])
    waiting: list[tuple[int, asyncio.Future[float]]] = []

    def on_status(status: StatusSnapshot) -> None:
        for index, future in waiting:
            if status.index == index and not future.done():
                future.set_result(time.time())

    observer.on_status = on_status
    step: Callable[[int], str] = lambda i: "next" if i % 2 == 0 else "prev"  # noqa: E731
    for i in range(n + 10):
        index = 1 if step(i) == "next" else 0
        selector = f"button[data-action={step(i)}]"
        box = None
        if not in_page:
            button = page.locator(selector)
            await button.scroll_into_view_if_needed()
            box = await button.bounding_box()
        arrived: asyncio.Future[float] = loop.create_future()
        waiting[:] = [(index, arrived)]
        t0 = time.time()
        if box is None:
            await page.evaluate("s => document.querySelector(s).click()", selector)
        else:
            await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        t_push = await asyncio.wait_for(arrived, 10)
        await page.wait_for_selector(f"#now[data-index='{index}']")
        t_shown = time.time()
        clicked = await page.evaluate("() => window.__classcastClickAt")
        if clicked is None:
            raise RuntimeError("the page saw no click")
        t_click = clicked / 1e3 - offset
        if i >= 10:
            out.push.append(t_push - t_click)
            out.shown.append(t_shown - t_click)
            out.call_push.append(t_push - t0)
        await asyncio.sleep(PAUSE_S)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.app", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50 clicks, 2 starts (a smoke run)")
    parser.add_argument("--n", type=int, help="clicks and control requests (default 300)")
    parser.add_argument("--starts", type=int, help="cold starts (default 5)")
    add_weak_option(parser)
    args = parser.parse_args()
    n = args.n or (50 if args.quick else 300)
    starts = args.starts or (2 if args.quick else 5)
    try:
        with weak_panel(args.weak):
            asyncio.run(main_async(n, starts))
    except asyncio.CancelledError:
        raise SystemExit(143) from None


if __name__ == "__main__":
    main()
