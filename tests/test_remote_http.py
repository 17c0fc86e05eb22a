"""The phone remote's LAN listener under attack: plain HTTP clients (httpx, raw sockets)
against remote_lan_app served by serve_remote on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import httpx
import pytest

from controller.remote import (
    CONTROL_BURST,
    MAX_FAILURES_PER_SOURCE,
    CastScope,
    GrantBook,
    IssuedGrant,
)
from controller.webapp.remote import (
    COOKIE_NAME,
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    LanLimits,
    RemoteServer,
    RemoteView,
    remote_lan_app,
    serve_remote,
)
from protocol.errors import BusyError, RemoteError
from protocol.messages import ControlAction

PANELS = frozenset({"kiosk-12"})


@dataclass
class FakeCast:
    """A RemoteTarget over a lesson held in memory (the real one is the teacher's app)."""

    titles: tuple[str, ...] = ("Титул", "Хлоропласты", "Итоги")
    index: int = 0
    paused: bool = False
    blanked: bool = False
    casting: bool = True
    panel_ids: frozenset[str] = PANELS
    done: list[tuple[ControlAction, int | None]] = field(default_factory=list)
    fail: Exception | None = None

    def remote_view(self) -> RemoteView | None:
        if not self.casting:
            return None
        return RemoteView(
            panels=("Каб. 12",),
            lesson_title="Фотосинтез",
            index=self.index,
            count=len(self.titles),
            item_titles=self.titles,
            paused=self.paused,
            blanked=self.blanked,
            panel_ids=self.panel_ids,
        )

    async def remote_control(self, action: ControlAction, number: int | None = None) -> None:
        if self.fail is not None:
            raise self.fail
        self.done.append((action, number))
        match action:
            case "next":
                self.index = min(self.index + 1, len(self.titles) - 1)
            case "prev":
                self.index = max(self.index - 1, 0)
            case "goto":
                assert number is not None
                self.index = number - 1
            case "pause" | "play":
                self.paused = action == "pause"
            case "blank" | "unblank":
                self.blanked = action == "blank"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Lan:
    book: GrantBook
    cast: FakeCast
    clock: Clock
    server: RemoteServer

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, headers={"Origin": self.base}, timeout=5)

    def issue(self) -> IssuedGrant:
        return self.book.issue(CastScope(PANELS), self.clock.now, label="Каб. 12")

    async def phone(self) -> tuple[httpx.AsyncClient, str]:
        """A client holding a redeemed session, and its CSRF token from the page."""
        client = self.client()
        issued = self.issue()
        opened = await client.post(f"/p/{issued.code}")
        assert opened.status_code == 303, opened.text
        page = await client.get("/")
        assert page.status_code == 200
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match is not None
        return client, match.group(1)


async def start(limits: LanLimits = LanLimits(), host_check: bool = True) -> Lan:  # noqa: B008
    book, cast, clock = GrantBook(), FakeCast(), Clock()
    port: list[int] = []
    app = remote_lan_app(
        book,
        cast,
        (lambda: f"http://127.0.0.1:{port[0]}") if host_check else None,
        limits=limits,
        clock=clock,
    )
    server = await serve_remote(app, "127.0.0.1", 0, limits=limits)
    port.append(server.port)
    return Lan(book, cast, clock, server)


@pytest.fixture
async def lan() -> AsyncIterator[Lan]:
    lan = await start()
    try:
        yield lan
    finally:
        await lan.server.close()


async def control(client: httpx.AsyncClient, action: str, csrf: str, **form: str) -> httpx.Response:
    return await client.post(
        f"/control/{action}", data={"csrf": csrf, **form}, headers={"HX-Request": "true"}
    )


# ------------------------------------------------------------------ the happy path


async def test_a_phone_opens_the_qr_link_and_moves_the_cast(lan: Lan) -> None:
    client = lan.client()
    issued = lan.issue()
    # The QR link is a page that redeems with a POST: fetching it uses nothing up.
    page = await client.get(f"/p/{issued.code}")
    assert page.status_code == 200
    assert f'action="/p/{issued.code}"' in page.text
    assert lan.book.grants(lan.clock.now)[0].state == "waiting"
    opened = await client.post(f"/p/{issued.code}")
    assert opened.status_code == 303
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    remote = await client.get("/")
    assert remote.status_code == 200
    assert "Далее" in remote.text
    assert "Назад" in remote.text
    assert "Чёрный экран" in remote.text
    assert "Слайд 1 из 3" in remote.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', remote.text)
    assert csrf is not None
    moved = await control(client, "next", csrf.group(1))
    assert moved.status_code == 200
    assert "Хлоропласты" in moved.text
    assert lan.cast.done == [("next", None)]
    goto = await control(client, "goto", csrf.group(1), number="3")
    assert "Итоги" in goto.text
    assert lan.cast.done[-1] == ("goto", 3)
    await client.aclose()


async def test_state_is_polled_cheaply(lan: Lan) -> None:
    client, _ = await lan.phone()
    first = await client.get("/state")
    version = re.search(r"/state\?v=([0-9a-f]+)", first.text)
    assert version is not None
    same = await client.get(f"/state?v={version.group(1)}")
    assert same.status_code == 204
    lan.cast.index = 2
    changed = await client.get(f"/state?v={version.group(1)}")
    assert changed.status_code == 200
    assert "Итоги" in changed.text
    await client.aclose()


async def test_every_response_carries_the_security_headers(lan: Lan) -> None:
    client = lan.client()
    for response in [await client.get("/"), await client.get("/nope"), await client.get("/p/x")]:
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "server" not in response.headers
    await client.aclose()


# ------------------------------------------------------------------ the attacks


async def test_guessing_codes_locks_the_guesser_out(lan: Lan) -> None:
    client = lan.client()
    for i in range(MAX_FAILURES_PER_SOURCE):
        guess = await client.post(f"/p/guess{i:03d}AAAAAAAAAAAAAAA")
        assert guess.status_code == 403
        assert "Доступ к пульту закрыт" in guess.text
    issued = lan.issue()
    locked = await client.post(f"/p/{issued.code}")
    assert locked.status_code == 429
    assert "Слишком много попыток" in locked.text
    assert int(locked.headers["retry-after"]) > 0
    assert lan.book.grants(lan.clock.now)[0].state == "waiting"  # the right code is intact
    await client.aclose()


async def test_replaying_a_used_qr_code_is_refused(lan: Lan) -> None:
    issued = lan.issue()
    teacher = lan.client()
    assert (await teacher.post(f"/p/{issued.code}")).status_code == 303
    student = lan.client()
    replay = await student.post(f"/p/{issued.code}")
    assert replay.status_code == 403
    assert "Этот QR-код уже использован" in replay.text
    assert COOKIE_NAME not in replay.headers.get("set-cookie", "")
    assert (await student.get("/")).status_code == 403
    assert (await teacher.get("/")).status_code == 200
    assert lan.book.grants(lan.clock.now)[0].reused_from == ("127.0.0.1",)
    await teacher.aclose()
    await student.aclose()


async def test_an_expired_grant_shows_the_closed_page(lan: Lan) -> None:
    client, csrf = await lan.phone()
    lan.clock.now += 90 * 60
    page = await client.get("/")
    assert page.status_code == 403
    assert "Доступ к пульту закрыт" in page.text
    assert "Время действия пульта истекло" in page.text
    assert "новый QR-код" in page.text
    refused = await control(client, "next", csrf)
    assert refused.status_code == 403
    assert lan.cast.done == []
    await client.aclose()


async def test_a_revoked_grant_is_refused_and_the_page_reloads_to_say_so(lan: Lan) -> None:
    client, csrf = await lan.phone()
    assert lan.book.revoke_all(lan.clock.now) == 1
    refused = await control(client, "next", csrf)
    assert refused.status_code == 403
    assert refused.headers["hx-redirect"] == "/?closed=revoked"
    assert f'{COOKIE_NAME}=""' in refused.headers["set-cookie"]  # the cookie is deleted
    assert lan.cast.done == []
    page = await client.get("/?closed=revoked")
    assert "Доступ к пульту закрыт" in page.text
    assert "Учитель закрыл этот пульт" in page.text
    odd = await client.get("/?closed=<script>")
    assert "<script>" not in odd.text
    await client.aclose()


async def test_a_cookie_from_another_grant_needs_its_own_csrf_token(lan: Lan) -> None:
    one, csrf_one = await lan.phone()
    two, csrf_two = await lan.phone()
    assert csrf_one != csrf_two
    crossed = await control(two, "next", csrf_one)
    assert crossed.status_code == 403
    assert "Обновите страницу и нажмите снова" in crossed.text
    forged = httpx.AsyncClient(base_url=lan.base, headers={"Origin": lan.base})
    forged.cookies.set(COOKIE_NAME, "A" * 22)
    unknown = await control(forged, "next", csrf_one)
    assert unknown.status_code == 403
    assert lan.cast.done == []
    for client in (one, two, forged):
        await client.aclose()


async def test_a_post_without_the_csrf_token_or_origin_is_refused(lan: Lan) -> None:
    client, csrf = await lan.phone()
    no_token = await client.post("/control/next", data={}, headers={"HX-Request": "true"})
    assert no_token.status_code == 403
    for origin in ("http://evil.example", "null", ""):
        cross = await client.post("/control/next", data={"csrf": csrf}, headers={"Origin": origin})
        assert cross.status_code == 403, origin
    assert lan.cast.done == []
    assert (await control(client, "next", csrf)).status_code == 200
    await client.aclose()


async def test_a_phone_may_not_stop_the_cast(lan: Lan) -> None:
    client, csrf = await lan.phone()
    for action in ("stop", "seek", "volume", "cast", "announce", "../../admin"):
        refused = await control(client, action, csrf)
        assert refused.status_code in (403, 404), action
    assert lan.cast.done == []
    await client.aclose()


async def test_a_wrong_host_is_refused(lan: Lan) -> None:
    client = lan.client()
    for host in ("evil.example", f"rebind.example:{lan.server.port}", "127.0.0.1:1", ""):
        response = await client.get("/", headers={"Host": host})
        assert response.status_code == 421, host
        assert "Неверный адрес" in response.text
    await client.aclose()


async def test_without_a_lan_url_only_ip_literals_are_hosts() -> None:
    lan = await start(host_check=False)
    try:
        client = httpx.AsyncClient(base_url=lan.base)
        assert (await client.get("/", headers={"Host": "10.1.2.3:8"})).status_code == 403
        assert (await client.get("/", headers={"Host": "[fd00::1]:8"})).status_code == 403
        named = await client.get("/", headers={"Host": "teacher.example:8"})
        assert named.status_code == 421
        await client.aclose()
    finally:
        await lan.server.close()


async def test_a_body_up_to_the_limit_passes_and_beyond_is_refused(lan: Lan) -> None:
    client, csrf = await lan.phone()
    base = f"csrf={csrf}&pad="
    ok = base + "x" * (MAX_BODY_BYTES - len(base))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true"}
    fits = await client.post("/control/next", content=ok, headers=headers)
    assert fits.status_code == 200
    over = await client.post("/control/next", content=ok + "x", headers=headers)
    assert over.status_code == 413
    assert "Запрос слишком большой: обновите страницу" in over.text

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read and counted
        for _ in range(4):
            yield b"x" * 512

    chunked = await client.post("/control/next", content=chunks(), headers=headers)
    assert chunked.status_code == 413
    assert lan.cast.done == [("next", None)]
    await client.aclose()


async def test_a_flood_of_controls_gets_429_in_russian(lan: Lan) -> None:
    client, csrf = await lan.phone()
    statuses = [(await control(client, "next", csrf)).status_code for _ in range(CONTROL_BURST + 1)]
    assert statuses == [200] * CONTROL_BURST + [429]
    flood = await control(client, "next", csrf)
    assert flood.status_code == 429
    assert "Слишком много нажатий" in flood.text
    assert flood.headers["retry-after"] == "1"
    assert len(lan.cast.done) == CONTROL_BURST
    lan.clock.now += 1
    assert (await control(client, "next", csrf)).status_code == 200
    await client.aclose()


@pytest.mark.parametrize(
    "path",
    [
        "/remote/grants",
        "/api/panels",
        "/static/htmx-ext-sse.js",
        "/static/../remote.py",
        "/templates/remote_phone.html",
        "/pair",
        "/admin",
        "/docs",
        "/p/",
        "/%2e%2e/%2e%2e/etc/passwd",
    ],
)
async def test_nothing_else_of_the_teachers_app_is_reachable(lan: Lan, path: str) -> None:
    client = lan.client()
    for method in ("GET", "POST"):
        response = await client.request(method, path)
        assert response.status_code in (403, 404), (method, path)
        assert "Traceback" not in response.text
        assert "Здесь ничего нет" in response.text or "Доступ" in response.text
    grants = await client.post("/remote/grants")
    assert lan.book.grants(lan.clock.now) == []  # no grant was made from the LAN
    assert grants.status_code == 404
    await client.aclose()


async def test_the_three_static_files_are_served(lan: Lan) -> None:
    client = lan.client()
    files = [("remote.css", "css"), ("remote.js", "javascript"), ("htmx.min.js", "javascript")]
    for name, kind in files:
        response = await client.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(f"text/{kind}")
    await client.aclose()


async def test_a_failing_cast_is_a_russian_message_not_a_traceback(lan: Lan) -> None:
    client, csrf = await lan.phone()
    lan.cast.fail = RemoteError("Панель не отвечает")
    failed = await control(client, "next", csrf)
    assert failed.status_code == 502
    assert "Панель не выполнила команду: Панель " in failed.text
    assert "Панель не отвечает" not in failed.text  # a panel's own words are for the journal
    lan.cast.fail = BusyError("Сидоров И. И.")
    busy = await control(client, "next", csrf)
    assert "Панель не выполнила команду: " in busy.text
    assert "другой учитель" in busy.text  # controller.texts' words for each error class
    lan.cast.fail = RuntimeError("a bug")
    crashed = await control(client, "next", csrf)
    assert crashed.status_code == 500
    assert "Что-то пошло не так" in crashed.text
    assert "Traceback" not in crashed.text
    assert "a bug" not in crashed.text
    lan.cast.casting = False
    nothing = await control(client, "next", csrf)
    assert nothing.status_code == 409
    assert "ничего не показывается" in nothing.text
    await client.aclose()


async def test_a_cast_to_other_panels_closes_the_remote(lan: Lan) -> None:
    client, _csrf = await lan.phone()
    lan.cast.titles = ("Другой урок",)
    assert (await client.get("/")).status_code == 200  # same panels, new lesson: still open
    lan.cast.panel_ids = frozenset({"kiosk-14"})
    page = await client.get("/")
    assert page.status_code == 403
    assert "на других панелях" in page.text
    await client.aclose()


# ------------------------------------------------------------------ the listener


async def raw(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def status_line(port: int, data: bytes) -> bytes:
    reader, writer = await raw(port, data)
    try:
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


async def test_a_head_over_the_limit_is_refused(lan: Lan) -> None:
    port = lan.server.port
    head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Pad: " % port
    pad = MAX_HEAD_BYTES - len(head) - 4  # the whole head is MAX_HEAD_BYTES
    fits = await status_line(port, head + b"x" * pad + b"\r\n\r\n")
    assert fits.startswith(b"HTTP/1.1 403")  # a request like any other (no cookie)
    over = await status_line(port, head + b"x" * (pad + 1) + b"\r\n\r\n")
    assert over.startswith(b"HTTP/1.1 431")
    # A head that never ends is cut at the limit, in the kernel's chunks or not.
    endless = await status_line(port, head + b"x" * (MAX_HEAD_BYTES + MAX_BODY_BYTES))
    assert endless.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431"))


async def test_a_slow_head_or_body_is_cut_off() -> None:
    limits = replace(LanLimits(), head_timeout_s=0.2, body_timeout_s=0.2)
    lan = await start(limits)
    try:
        reader, writer = await raw(lan.server.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, no answer
        writer.close()
        head = (
            b"POST /control/next HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: http://127.0.0.1:%d\r\n"
            b"Content-Length: 100\r\n\r\nab" % (lan.server.port, lan.server.port)
        )
        reader, writer = await raw(lan.server.port, head)
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 408")
        writer.close()
    finally:
        await lan.server.close()


async def test_a_kept_connection_serves_requests_until_it_idles_too_long() -> None:
    lan = await start(replace(LanLimits(), keep_alive_s=0.3))
    try:
        port = lan.server.port
        request = b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
        reader, writer = await raw(port, request)
        for _ in range(2):  # two requests on one connection, each within the limit
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 404")
            length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            writer.write(request)
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(b"GET / HTTP/1.1\r\n")  # a head begun and never finished
        rest = await asyncio.wait_for(reader.read(), 5)
        assert rest.count(b"HTTP/1.1") == 0  # closed without another answer
        writer.close()
    finally:
        await lan.server.close()


async def test_a_control_the_panel_does_not_carry_out_in_time_is_a_502() -> None:
    lan = await start(replace(LanLimits(), control_timeout_s=0.05))
    try:
        client, csrf = await lan.phone()

        async def stuck(action: ControlAction, number: int | None = None) -> None:
            await asyncio.sleep(5)

        lan.cast.remote_control = stuck  # type: ignore[method-assign]
        late = await control(client, "next", csrf)
        assert late.status_code == 502
        assert "Панель не ответила вовремя" in late.text
        await client.aclose()
    finally:
        await lan.server.close()


async def test_idle_connections_make_room_for_the_phone() -> None:
    limits = replace(LanLimits(), max_connections=6, max_connections_per_source=4)
    lan = await start(limits)
    try:
        idle = [await raw(lan.server.port, b"") for _ in range(10)]
        await asyncio.sleep(0.05)
        open_now = [c for c in lan.server.server.server_state.connections]
        assert len(open_now) <= limits.max_connections_per_source
        # The newest connection of that address is served; the oldest idle ones went.
        client, csrf = await lan.phone()
        assert (await control(client, "next", csrf)).status_code == 200
        dropped = [await asyncio.wait_for(r.read(), 5) for r, _ in idle[:6]]
        assert dropped == [b""] * 6
        await client.aclose()
        for _, writer in idle:
            writer.close()
    finally:
        await lan.server.close()


# ------------------------------------------------------------------ the teacher's side


async def test_the_teachers_app_shows_a_qr_code_lists_and_revokes(lan: Lan) -> None:
    import segno
    from starlette.applications import Starlette

    from controller.webapp.remote import grant_routes

    app = Starlette(routes=grant_routes(lan.book, lan.cast, lambda: lan.base, clock=lan.clock))
    teacher = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    panel = await teacher.get("/remote")
    assert "Показать QR-код для телефона" in panel.text
    assert "Пульт на телефоне не открыт" in panel.text

    made = await teacher.post("/remote/grants")
    assert made.status_code == 200
    link = re.search(r'href="(http://127\.0\.0\.1:\d+/p/[A-Za-z0-9_-]+)"', made.text)
    assert link is not None
    assert "действует 5 мин" in made.text
    # The inline SVG is the QR code of exactly that link.
    svg = segno.make(link.group(1), error="m", micro=False).svg_inline(
        scale=6, border=4, dark="#000", light="#fff"
    )
    assert svg in made.text
    [row] = lan.book.grants(lan.clock.now)
    assert "Каб. 12 — Фотосинтез" in (await teacher.get("/remote/grants")).text
    assert (await teacher.get(f"/remote/grants/{row.grant_id}")).status_code == 204  # waiting

    phone = lan.client()
    assert (await phone.post(link.group(1).removeprefix(lan.base))).status_code == 303
    scanned = await teacher.get(f"/remote/grants/{row.grant_id}")
    assert scanned.status_code == 200
    assert "<svg" not in scanned.text  # the QR code leaves the teacher's screen
    listed = await teacher.get("/remote/grants")
    assert "Телефон подключён (127.0.0.1)" in listed.text
    assert "осталось 90 мин" in listed.text

    revoked = await teacher.post(f"/remote/grants/{row.grant_id}/revoke")
    assert "Пульт на телефоне не открыт" in revoked.text
    assert (await phone.get("/")).status_code == 403
    await phone.aclose()
    await teacher.aclose()


async def test_no_qr_code_without_a_cast_or_a_lan_address(lan: Lan) -> None:
    from starlette.applications import Starlette

    from controller.webapp.remote import grant_routes

    base = [lan.base]
    app = Starlette(routes=grant_routes(lan.book, lan.cast, lambda: base[0], clock=lan.clock))
    teacher = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    lan.cast.casting = False
    nothing = await teacher.post("/remote/grants")
    assert "сначала начните показ урока" in nothing.text
    lan.cast.casting = True
    base[0] = ""
    no_lan = await teacher.post("/remote/grants")
    assert "нет адреса в сети" in no_lan.text
    assert lan.book.grants(lan.clock.now) == []
    await teacher.aclose()


async def test_a_reused_qr_code_warns_the_teacher(lan: Lan) -> None:
    from starlette.applications import Starlette

    from controller.webapp.remote import grant_routes

    app = Starlette(routes=grant_routes(lan.book, lan.cast, lambda: lan.base, clock=lan.clock))
    teacher = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    issued = lan.issue()
    phone, student = lan.client(), lan.client()
    await phone.post(f"/p/{issued.code}")
    await student.post(f"/p/{issued.code}")
    listed = await teacher.get("/remote/grants")
    assert "QR-код отсканировали ещё раз с адреса 127.0.0.1" in listed.text
    for client in (phone, student, teacher):
        await client.aclose()


@pytest.mark.slow
async def test_the_lan_port_is_open_only_while_a_remote_may_be_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLASSCAST_REMOTE_HOST", "127.0.0.1")
    from starlette.applications import Starlette

    from controller.remote import ENDED_KEEP_S
    from controller.webapp.remote import RemoteListener, grant_routes

    book, cast, clock = GrantBook(), FakeCast(), Clock()
    listener = RemoteListener(book, cast, clock=clock, idle_check_s=0.02)  # $CLASSCAST_REMOTE_HOST
    app = Starlette(routes=grant_routes(book, cast, listener, clock=clock))
    teacher = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    try:
        assert listener.base_url == ""  # nothing listens before a QR code is asked for
        made = await teacher.post("/remote/grants")
        base = listener.base_url
        assert base.startswith("http://127.0.0.1:")
        assert f'href="{base}/p/' in made.text
        link = re.search(r'href="http://[^"]+(/p/[^"]+)"', made.text)
        assert link is not None
        phone = httpx.AsyncClient(base_url=base, headers={"Origin": base})
        assert (await phone.post(link.group(1))).status_code == 303
        await teacher.post("/remote/grants/revoke")  # in effect when it answers
        closed = await phone.get("/")  # still open: the phone is told why
        assert "Учитель закрыл этот пульт" in (await phone.get("/?closed=revoked")).text
        assert closed.status_code == 403
        clock.now += ENDED_KEEP_S  # the ended grant is forgotten: the port closes
        for _ in range(100):
            if listener.base_url == "":
                break
            await asyncio.sleep(0.02)
        assert listener.base_url == ""
        async with httpx.AsyncClient() as late:
            with pytest.raises(httpx.ConnectError):
                await late.get(base)
        await phone.aclose()
    finally:
        await listener.close()
        await teacher.aclose()


def test_the_lan_address_is_a_non_loopback_ip_or_none() -> None:
    import ipaddress

    from controller.webapp.remote import lan_address

    address = lan_address()  # no packet is sent: a UDP socket only picks its source
    assert address is None or not ipaddress.ip_address(address).is_loopback


async def test_a_flood_of_bad_requests_is_logged_once(
    lan: Lan, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for _ in range(20):
        line = await status_line(lan.server.port, b"NOT HTTP AT ALL\r\n\r\n")
        assert line.startswith(b"HTTP/1.1 400")
    lines = [r for r in caplog.records if "Invalid HTTP request" in r.getMessage()]
    assert len(lines) == 1


async def test_responses_are_not_held_back_by_nagle(lan: Lan) -> None:
    """Headers and body are two writes: without TCP_NODELAY the body waits for the
    phone's delayed ACK (~40 ms on every press)."""
    import socket

    _, writer = await raw(lan.server.port, b"")
    for _ in range(100):
        if lan.server.server.server_state.connections:
            break
        await asyncio.sleep(0.005)
    [connection] = lan.server.server.server_state.connections
    accepted = connection.transport.get_extra_info("socket")
    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    writer.close()
