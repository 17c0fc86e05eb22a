"""The phone remote end to end: a phone's POST on the LAN listener moves a real kiosk,
through the teacher's own connection; after revoke it moves nothing."""

from __future__ import annotations

import re
import time

import httpx

from controller.client import KioskClient
from controller.remote import GrantBook
from controller.webapp.remote import RemoteView, remote_lan_app, serve_remote
from protocol.messages import ControlAction
from tests.conftest import TEACHER
from tests.helpers import text_lesson
from tests.kiosks import KioskThread, teacher


class KioskCast:
    """A RemoteTarget over one real kiosk connection (the teacher's app keeps one such
    object for its current cast)."""

    def __init__(self, client: KioskClient, titles: tuple[str, ...]) -> None:
        self.client = client
        self.titles = titles

    def remote_view(self) -> RemoteView | None:
        status = self.client.last_status
        if status is None or status.lesson_id is None:
            return None
        return RemoteView(
            panels=(status.room,),
            lesson_title=status.lesson_title or "",
            index=status.index,
            count=status.count,
            item_titles=self.titles,
            paused=status.state == "paused",
            blanked=status.blanked,
            panel_ids=frozenset({status.kiosk_id}),
        )

    async def remote_control(self, action: ControlAction, number: int | None = None) -> None:
        index = None if number is None else number - 1
        await self.client.control(action, index=index)


async def test_a_phone_moves_a_real_kiosk_until_revoked(kiosk: KioskThread) -> None:
    lesson = text_lesson("Первый", "Второй", "Третий", title="Фотосинтез")
    async with await teacher(kiosk) as client:
        await client.cast(lesson)
        status = await client.wait_for_status(lambda s: s.state == "playing")
        cast = KioskCast(client, tuple(item.title for item in lesson.items))
        book = GrantBook()
        server = await serve_remote(remote_lan_app(book, cast), "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.port}"
        phone = httpx.AsyncClient(base_url=base, headers={"Origin": base})
        try:
            view = cast.remote_view()
            assert view is not None
            issued = book.issue(view.scope, now=time.monotonic())
            assert (await phone.post(f"/p/{issued.code}")).status_code == 303
            page = await phone.get("/")
            assert "Слайд 1 из 3" in page.text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf is not None

            moved = await phone.post(
                "/control/next", data={"csrf": csrf.group(1)}, headers={"HX-Request": "true"}
            )
            assert moved.status_code == 200
            status = await client.status()
            assert status.index == 1
            assert status.presenter == TEACHER.name  # the teacher's credentials, not the phone's

            book.revoke_all(now=time.monotonic())
            refused = await phone.post(
                "/control/next", data={"csrf": csrf.group(1)}, headers={"HX-Request": "true"}
            )
            assert refused.status_code == 403
            assert (await client.status()).index == 1  # the kiosk stayed
            assert "Доступ к пульту закрыт" in (await phone.get("/")).text
        finally:
            await phone.aclose()
            await server.close()
