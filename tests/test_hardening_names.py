"""Names and addresses from a hostile network: spoofed adverts, escape sequences, pixel bombs.

* A saved panel's address moves only when the new address proves the pinned
  certificate over TLS; an advert alone (its ``fp`` is public) changes nothing.
* Every name that reaches a terminal, a report or the panel's screen is cleaned of
  control characters and escape sequences (``protocol.text``).
* An image with more pixels than ``MAX_PICTURE_PIXELS`` is refused from its header, and
  a panel shows an error slide saying so and goes on.

Attackers are plain zeroconf registrations, plain websockets servers and hand-built
lessons; every zeroconf here is bound to 127.0.0.1. Room names carry a per-run tag, so
kiosks that other test runs advertise on this loopback are never mistaken for ours.
"""

from __future__ import annotations

import os

os.environ["PYGLET_HEADLESS"] = "true"  # before pyglet's first import (kiosk.scenes)

import asyncio
import dataclasses
import hashlib
import io
import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from PIL import Image
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol
from zeroconf import IPVersion, ServiceInfo, Zeroconf

from controller.cli import cli
from controller.client import KioskClient
from controller.home import Home, SavedPanel
from controller.monitor import PanelState, render
from controller.report_html import bar_chart
from controller.reports import ComplianceRow, ReportRow, format_csv, format_json, format_table
from kiosk.scenes import (
    ERROR_BACKGROUND,
    decode_image,
    error_slide_lines,
)
from kiosk.tls import ensure_identity
from media.lesson import LessonItem, make_lesson
from media.markdown import SLIDE_BACKGROUND
from protocol.constants import SERVICE_TYPE, SUBPROTOCOL
from protocol.discovery import Advertisement, KioskFound, instance_name
from protocol.errors import PictureTooLargeError
from protocol.limits import MAX_PICTURE_PIXELS
from protocol.messages import StatusSnapshot
from protocol.text import clean_lines, clean_name, is_clean, json_text
from tests.conftest import TEACHER
from tests.helpers import jpeg_of_size, png_bytes
from tests.kiosks import KioskThread, kiosk_process

LOOPBACK = ["127.0.0.1"]
RUN = uuid.uuid4().hex[:6]
OSC_ROOM = "\x1b]0;pwned\x07Каб. 1"
"""A room name that would retitle the teacher's terminal (OSC 0) if printed raw."""
UNSAFE = ("\x1b", "\x07", "\x9b", "\u202e", "\u200b")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_clean(text: str) -> None:
    for ch in UNSAFE:
        assert ch not in text, f"{ch!r} reached the output: {text!r}"
    assert "pwned" not in text


# --------------------------------------------------------------------------- protocol.text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (OSC_ROOM, "Каб. 1"),
        ("\x1b]0;pwned\x1b\\Каб. 1", "Каб. 1"),  # OSC ended by ST
        ("\x9d0;pwned\x9cКаб. 1", "Каб. 1"),  # 8-bit OSC and ST
        ("\x1b]8;;http://evil/\x1b\\Каб. 1\x1b]8;;\x1b\\", "Каб. 1"),  # a hyperlink
        ("\x1b]0;never ends", ""),  # an unterminated string swallows the rest, as a terminal
        ("\x1b[2J\x1b[31;1mКаб. 1\x1b[0m", "Каб. 1"),  # CSI, 7-bit
        ("\x9b2JКаб. 1", "Каб. 1"),  # CSI, 8-bit
        ("\x1bPq#0;2;0;0;0\x1b\\Каб. 1", "Каб. 1"),  # DCS (sixel)
        ("\x1b(0Каб. 1\x1b(B", "Каб. 1"),  # charset switches
        ("\x1bcКаб. 1\x1b", "Каб. 1"),  # reset, and a lone ESC at the end
        ("Каб.\r1", "Каб. 1"),  # a carriage return would overwrite the line
        ("Каб.\n1\t2\x85", "Каб. 1 2 "),
        ("\u202e1 .баК", "1 .баК"),  # RIGHT-TO-LEFT OVERRIDE
        ("Каб.\u2066 1\u2069\u200e", "Каб. 1"),  # isolates, LRM
        ("Каб.\u200b 1\ufeff\u00ad", "Каб. 1"),  # zero-width space, BOM, soft hyphen
        ("\x00Каб.\x7f 1\x08", "Каб. 1"),  # NUL, DEL, backspace
        ("Каб. 1\ud800", "Каб. 1"),  # a lone surrogate (from JSON "\ud800")
        ("Школа № 5 — «Ёлка» 😀 ∑ ǅ", "Школа № 5 — «Ёлка» 😀 ∑ ǅ"),  # untouched
    ],
)
def test_clean_name(raw: str, clean: str) -> None:
    assert clean_name(raw) == clean
    assert clean_name(clean) == clean  # idempotent
    assert is_clean(clean)
    assert is_clean(raw) is (raw == clean)


def test_clean_lines_keeps_the_layout_of_a_message() -> None:
    assert clean_lines("Кабинет: \x1b]0;x\x07Каб. 1\r\n  Адрес:\t1.2.3.4\n") == (
        "Кабинет: Каб. 1\n  Адрес:\t1.2.3.4\n"
    )


def test_json_text_keeps_the_exact_data_and_escapes_what_is_unsafe() -> None:
    value = {"room": OSC_ROOM + "\u202e\x9b\u200b\U000e0041", "n": [1, None]}
    text = json_text(value, indent=2)
    assert json.loads(text) == value  # data: the exact strings
    assert_clean(text.replace("pwned", ""))
    assert "\U000e0041" not in text
    assert "Каб. 1" in text  # Cyrillic stays readable
    assert json_text({"a": "Ж"}) == '{"a": "Ж"}'


# --------------------------------------------------------------------------- adverts


@contextmanager
def advert(kiosk_id: str, room: str, port: int, fingerprint: str, *, label: str) -> Iterator[None]:
    """A plain python-zeroconf registration on 127.0.0.1 (not the kiosk's advertiser)."""
    ad = Advertisement(
        kiosk_id=kiosk_id,
        room=room,
        school="Школа",
        port=port,
        fingerprint=fingerprint,
        state="idle",
    )
    info = ServiceInfo(
        SERVICE_TYPE,
        instance_name(f"{label} {RUN}"),
        port=port,
        properties=ad.txt() | {"room": room},  # exactly the given room, escapes included
        server=f"{label.lower()}-{RUN}.local.",
        parsed_addresses=LOOPBACK,
    )
    zc = Zeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    try:
        zc.register_service(info, allow_name_change=True, cooperating_responders=True)
        yield
        zc.unregister_service(info)
    finally:
        zc.close()


def rows_for(kiosk_id: str, wait_s: float = 3.0) -> list[dict[str, Any]]:
    listed = run("panels", "--json", "--wait", str(wait_s))
    assert listed.exit_code == 0, listed.output
    return [r for r in json.loads(listed.output) if r["kiosk_id"] == kiosk_id]


def shown(kiosk: KioskThread) -> str | None:
    """The title of the lesson ``kiosk`` shows, or None (read on its own loop)."""
    assert kiosk.app is not None
    app = kiosk.app
    status = kiosk.sync(app.service.status)
    return status.lesson_title  # type: ignore[no-any-return]


def impostor_of(real: KioskThread, state: Path) -> KioskThread:
    """A kiosk with ``real``'s id (copied kiosk.json) but a certificate of its own."""
    state.mkdir(parents=True)
    shutil.copy(real.config.state_dir / "kiosk.json", state / "kiosk.json")
    return KioskThread(state, room=real.config.room)


@pytest.mark.slow
def test_a_spoofed_advert_does_not_move_a_paired_panel(tmp_path: Path) -> None:
    room = f"Каб. 1 {RUN}"
    with KioskThread(tmp_path / "real", room=room) as real:
        assert real.app is not None
        kiosk_id, fingerprint = real.app.identity.kiosk_id, real.app.tls.fingerprint
        paired = run("pair", real.address, "--pin", real.pin())
        assert paired.exit_code == 0, paired.output
        with (
            impostor_of(real, tmp_path / "impostor") as impostor,
            # The advert copies the real kiosk's public id and fingerprint.
            advert(kiosk_id, room, impostor.port, fingerprint, label="Spoof"),
        ):
            rows = rows_for(kiosk_id)
            by_address = {r["address"]: r for r in rows}
            assert set(by_address) == {real.address, impostor.address}
            saved, spoof = by_address[real.address], by_address[impostor.address]
            assert (saved["source"], saved["verified"], saved["paired"]) == ("saved", True, True)
            assert (spoof["verified"], spoof["conflict"], spoof["paired"]) == (False, True, False)
            assert [p.address for p in Home().panels()] == [real.address]
            table = run("panels", "--wait", "3").output
            assert f"НЕ ПОДТВЕРЖДЕНА: выдаёт себя за сохранённую панель {real.address}" in table

            lesson = tmp_path / "урок.md"
            lesson.write_text("# Фотосинтез", encoding="utf-8")
            cast = run("cast", str(lesson), "--to", room)
            assert cast.exit_code == 0, cast.output
            assert shown(real) == "урок"  # the real panel shows the lesson
            assert shown(impostor) is None  # the impostor got nothing
            assert Home().panels()[0].address == real.address


@pytest.mark.slow
def test_a_panel_restarted_on_another_port_is_followed(tmp_path: Path) -> None:
    room = f"Каб. 2 {RUN}"
    state = tmp_path / "panel"
    mdns: dict[str, Any] = {"mdns": True, "mdns_interfaces": ("127.0.0.1",)}
    with KioskThread(state, room=room) as first:
        assert first.app is not None
        kiosk_id, old_address = first.app.identity.kiosk_id, first.address
        assert run("pair", first.address, "--pin", first.pin()).exit_code == 0
    with KioskThread(state, room=room, **mdns) as moved:  # same key, a new port
        assert moved.address != old_address
        (row,) = rows_for(kiosk_id)
        assert (row["address"], row["source"], row["verified"]) == (
            moved.address,
            "mdns+saved",
            True,
        )
        assert [p.address for p in Home().panels()] == [moved.address]
        lesson = tmp_path / "урок.md"
        lesson.write_text("# Фотосинтез", encoding="utf-8")
        cast = run("cast", str(lesson), "--to", room)
        assert cast.exit_code == 0, cast.output
        assert shown(moved) == "урок"


def test_panels_add_refuses_an_impostor_of_a_known_panel(tmp_path: Path) -> None:
    with KioskThread(tmp_path / "real") as real:
        assert run("panels", "add", real.address).exit_code == 0
        with impostor_of(real, tmp_path / "impostor") as impostor:
            result = CliRunner().invoke(cli, ["panels", "add", impostor.address])
        assert result.exit_code == 1
        assert "её сертификат не тот" in result.output
        assert [p.address for p in Home().panels()] == [real.address]


def found(kiosk_id: str, address: str, room: str = "Каб. 1") -> KioskFound:
    host, port = address.rsplit(":", 1)
    return KioskFound(f"{room}.x", kiosk_id, room, "Ш", host, int(port), "ab" * 32, "idle", 1)


def test_panel_rows_of_adverts_nothing_can_prove(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.save_panel(SavedPanel("10.0.0.1:47810", "Каб. 1", "k-saved"))  # never answered: no pin
    adverts = [
        found("k-saved", "10.0.0.66:47810"),
        found("k-twice", "10.0.0.7:47810", "Каб. 7"),
        found("k-twice", "10.0.0.8:47810", "Каб. 7"),
        found("k-once", "10.0.0.9:47810", "Каб. 9"),
    ]
    assert home.claims(adverts) == []  # no certificate known: nothing to prove a move with
    rows = {r.address: r for r in home.panel_rows(adverts)}
    assert (rows["10.0.0.1:47810"].verified, rows["10.0.0.1:47810"].usable) == (True, True)
    assert (rows["10.0.0.66:47810"].verified, rows["10.0.0.66:47810"].conflict) == (False, True)
    assert rows["10.0.0.7:47810"].conflict
    assert rows["10.0.0.8:47810"].conflict
    assert not rows["10.0.0.7:47810"].usable
    assert (rows["10.0.0.9:47810"].verified, rows["10.0.0.9:47810"].usable) == (None, True)
    # Looking a panel up by mDNS never yields an advert of a saved id at another address.
    assert [k.address for k in home.unclaimed(adverts)] == [
        "10.0.0.7:47810",
        "10.0.0.8:47810",
        "10.0.0.9:47810",
    ]


# --------------------------------------------------------------------------- escapes


@pytest.mark.slow
def test_an_escape_in_an_advertised_room_never_reaches_the_terminal() -> None:
    kiosk_id = f"k-osc-{RUN}"
    with advert(kiosk_id, f"{OSC_ROOM} {RUN}", 47999, "cd" * 32, label="Osc"):
        (row,) = rows_for(kiosk_id)
        assert row["room"] == f"Каб. 1 {RUN}"  # cleaned where the TXT record is parsed
        table = run("panels", "--wait", "3").output
    assert f"Каб. 1 {RUN}" in table
    assert_clean(table)


class ErrorKiosk:
    """A plain TLS websocket server that answers hello with an error full of escapes."""

    message = "\x1b]0;pwned\x07\x1b[2Jнет\u202e"

    def __init__(self, tmp: Path) -> None:
        self.identity = ensure_identity(tmp, "k-evil")
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handler(self, ws: ServerConnection) -> None:
        async for frame in ws:
            request = json.loads(frame)
            await ws.send(
                json.dumps(
                    {"type": "error", "re": request["id"], "code": "x", "message": self.message}
                )
            )

    async def _start(self) -> Any:
        server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            ssl=self.identity.server_context(),
            subprotocols=[Subprotocol(SUBPROTOCOL)],
        )
        self.port = server.sockets[0].getsockname()[1]
        return server

    def __enter__(self) -> ErrorKiosk:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)
        return self

    async def _stop(self) -> None:
        self._server.close()  # on its own loop, ending its connections' handlers too
        await self._server.wait_closed()

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


def test_a_panels_error_message_is_printed_clean(tmp_path: Path) -> None:
    with ErrorKiosk(tmp_path / "evil") as evil:
        address = f"127.0.0.1:{evil.port}"
        added = run("panels", "add", address)  # printed through echo()
        paired = CliRunner().invoke(cli, ["pair", address, "--pin", "123456"])  # an error
    # The panel's own words are for its journal: the user reads ours, with what to do.
    assert "не приняла подключение" in added.output
    assert "pwned" not in added.output
    assert_clean(added.output)
    assert paired.exit_code == 1
    assert "не приняла подключение" in paired.output
    assert "pwned" not in paired.output
    assert_clean(paired.output)


def test_a_kiosk_whose_room_has_escapes(tmp_path: Path) -> None:
    raw_room = f"{OSC_ROOM}\u202e\x9b2J"
    with KioskThread(tmp_path / "k", room=raw_room) as kiosk:
        added = run("panels", "add", kiosk.address)
        assert run("pair", kiosk.address, "--pin", kiosk.pin()).exit_code == 0
        status = run("status", kiosk.address)
        as_json = run("status", kiosk.address, "--json")
    assert "Каб. 1" in added.output
    assert "Каб. 1" in status.output
    for result in (added, status, as_json):
        assert_clean(result.output.replace("pwned", ""))  # JSON escapes it: \u001b]0;pwned
    assert "\\u001b]0;pwned\\u0007" in as_json.output
    # JSON is data: it parses back to exactly what the panel said.
    assert json.loads(as_json.output)[0]["status"]["room"] == raw_room
    assert Home().panels()[0].room == "Каб. 1"  # saved cleaned
    saved_file = (Home().root / "panels.json").read_text(encoding="utf-8")
    assert "pwned" not in saved_file


def test_an_old_address_book_with_escapes_is_cleaned_on_reading(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.root.mkdir()
    (home.root / "panels.json").write_text(
        json.dumps({"panels": [{"address": "10.0.0.1:47810", "room": OSC_ROOM, "kiosk_id": "k"}]}),
        encoding="utf-8",
    )
    assert home.panels()[0].room == "Каб. 1"


def test_reports_for_people_are_clean_and_json_is_exact() -> None:
    name = OSC_ROOM + "\u202e"
    rows = [
        ReportRow("room", "k", name, 1, 60_000, 1, "2026-01-01T08:00:00Z", "2026-01-01T09:00:00Z")
    ]
    compliance = [ComplianceRow("2026-W01", "c-1", name, 3, True, ("2026-01-01",), 3, 0, 0, 1)]
    for text in (format_table(rows), format_csv(rows), format_table(compliance)):
        assert "Каб. 1" in text
        assert_clean(text)
    chart = bar_chart(name, [(name, 1.0, name)])
    assert "Каб. 1" in chart
    assert_clean(chart)
    as_json = format_json(rows)
    assert_clean(as_json.replace("pwned", ""))
    assert json.loads(as_json)[0]["label"] == name


def test_the_live_monitor_is_clean() -> None:
    status = StatusSnapshot(
        "k", OSC_ROOM, "Ш", "playing", False, "l", "\x1b[2JУрок", 0, 2, "text", "Т", 0,
        "\u202eПетрова", "0.1\x1b]0;x\x07",
    )  # fmt: skip
    table = render([PanelState("10.0.0.1:47810", status=status, online=True)], 0.0)
    assert "Каб. 1" in table
    assert "Урок: 1/2" in table
    assert "Петрова" in table
    assert_clean(table)


# --------------------------------------------------------------------------- pixel bombs


def test_decoding_refuses_a_huge_png_from_its_header(tmp_path: Path) -> None:
    """The pixel data is cut short: had decoding started, Pillow would say "truncated"."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(13000, 13000, decodable=False))
    with pytest.raises(PictureTooLargeError) as caught:
        decode_image(str(bomb), 1920, 1080)
    assert (caught.value.width, caught.value.height) == (13000, 13000)
    # At the limit exactly, the check passes and decoding starts (and fails here).
    edge = tmp_path / "edge.png"
    edge.write_bytes(png_bytes(8000, 5000, decodable=False))
    with pytest.raises(OSError, match="truncated"):
        decode_image(str(edge), 1920, 1080)
    over = tmp_path / "over.png"
    over.write_bytes(png_bytes(8000, 5001, decodable=False))
    with pytest.raises(PictureTooLargeError):
        decode_image(str(over), 1920, 1080)
    # Beyond twice Pillow's own limit the file does not even open: still "too large".
    beyond = tmp_path / "beyond.png"
    beyond.write_bytes(png_bytes(20000, 20000, decodable=False))
    with pytest.raises(PictureTooLargeError):
        decode_image(str(beyond), 1920, 1080)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(tmp_path: Path) -> None:
    # 108 MP in the header, decoded at 1/4 per side for a 1920×1080 screen: 6.75 MP.
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_of_size(12000, 9000))
    pixels = decode_image(str(path), 1920, 1080)
    assert (pixels.width, pixels.height) == (1440, 1080)
    path.write_bytes(png_bytes(12000, 9000, decodable=False))  # a PNG decodes at full size
    with pytest.raises(PictureTooLargeError):
        decode_image(str(path), 1920, 1080)


def test_the_error_slide_says_the_picture_is_too_large() -> None:
    error = PictureTooLargeError("x", path="x", width=13000, height=13000)
    megapixels = MAX_PICTURE_PIXELS // 1_000_000
    assert error_slide_lines("ru", OSC_ROOM, error) == (
        "Не удалось показать «Каб. 1»",
        f"Изображение слишком большое: панель показывает не больше {megapixels} "
        "мегапикселей. Урок продолжается.",
    )
    assert error_slide_lines("en", "Лист", OSError("x"))[1] == (
        "The file is damaged or missing. The lesson goes on."
    )


def picture_lesson(tmp_path: Path) -> Any:
    """A 13000×13000 PNG (~20 KB, 169 MP) then a text slide, built by hand: the
    controller's own probe would refuse the picture before casting."""
    data = png_bytes(13000, 13000)
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    picture = LessonItem(
        "image", "Бомба", path=path, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data)
    )
    return make_lesson("Урок", [picture, LessonItem("text", "Дальше", text="# Дальше")])


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def pixel(png: bytes) -> tuple[int, int, int]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    value = image.getpixel((3, 3))
    assert isinstance(value, tuple)
    return value[0], value[1], value[2]


@pytest.mark.slow
async def test_a_panel_shows_the_error_slide_for_a_pixel_bomb_and_goes_on(
    tmp_path: Path,
) -> None:
    from tests.kiosks import ADMIN_SECRET

    with kiosk_process(tmp_path / "state") as (proc, address):
        async with await KioskClient.connect(address, TEACHER) as client:
            await client.pair(ADMIN_SECRET, role="admin")
            before = peak_rss_bytes(proc.pid)
            await client.cast(picture_lesson(tmp_path))
            shot = b""
            for _ in range(100):  # the loader thread refuses it from the header
                shot = await client.screenshot(max_width=320)
                if pixel(shot) == ERROR_BACKGROUND[:3]:
                    break
                await asyncio.sleep(0.05)
            assert pixel(shot) == ERROR_BACKGROUND[:3]
            await client.control("next")
            status = await client.status()
            assert (status.state, status.index) == ("playing", 1)
            for _ in range(100):
                shot = await client.screenshot(max_width=320)
                if pixel(shot) == SLIDE_BACKGROUND[:3]:
                    break
                await asyncio.sleep(0.05)
            assert pixel(shot) == SLIDE_BACKGROUND[:3]
            grown = peak_rss_bytes(proc.pid) - before
    # Decoding the picture would have taken 169 MB a copy (1.8 GB in all before the cap).
    assert grown < 100 * 1024 * 1024, grown


@pytest.mark.display
def test_the_idle_screen_shows_names_clean(tmp_path: Path) -> None:
    from kiosk.scenes import IdleInfo
    from kiosk.window import PygletWindow
    from media.store import BlobStore

    window = PygletWindow(
        BlobStore(tmp_path / "store", 10**6),
        IdleInfo("Школа\u202e № 5\u200b", OSC_ROOM),
        mode="headless",
        size=(320, 240),
    )
    try:
        window.run_pending()
        assert window.idle._room.text == "Каб. 1"
        assert window.idle._school.text == "Школа № 5"
    finally:
        window.close()


def test_saved_panels_hold_clean_names() -> None:
    panel = SavedPanel("10.0.0.1:1", OSC_ROOM, "k\x1b[0m", "\u202eШ")
    assert dataclasses.astuple(panel) == ("10.0.0.1:1", "Каб. 1", "k", "Ш", None)
