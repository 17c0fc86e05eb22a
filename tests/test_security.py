"""Security of a real kiosk over TLS on loopback: pairing, tokens, roles, one presenter.

What ``docs/security.md`` promises, checked against the wire: an unpaired client can
only pair; the PIN is tried online only, with a lockout per source; a relay with its own
certificate gets no token and is caught by the pinned fingerprint; tokens are bound to
their controller, stored hashed, and revocable at once; one teacher presents at a time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import ssl
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from websockets.asyncio.client import ClientConnection

from controller.client import ControllerIdentity, KioskClient
from kiosk.access import Moderation
from kiosk.cli import main as kiosk_cli
from kiosk.tls import ensure_identity
from kiosk.tokens import TokenStore
from media.lesson import Lesson, LessonItem, make_lesson
from protocol.codec import encode
from protocol.errors import BusyError, CertificateChangedError, RemoteError
from protocol.messages import (
    Cast,
    Control,
    GetStatus,
    Message,
    PairConfirm,
    PairStart,
    Prepare,
    Unpair,
    UsagePull,
)
from protocol.pairing import ControllerPairing, token_hash
from tests.conftest import TEACHER
from tests.helpers import (
    RAW,
    hello_json,
    pair,
    raw_connect,
    recv_json,
    text_lesson,
    tls_client_context,
)
from tests.kiosks import ADMIN_SECRET, KioskThread, ManualClock, admin, teacher

OTHER = ControllerIdentity("c-test-other", "Иванов Пётр Ильич")
THIRD = ControllerIdentity("c-test-third", "Сидорова Мария")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wrong(pin: str) -> str:
    """A PIN that is not ``pin``."""
    return f"{(int(pin) + 1) % 1_000_000:06d}"


async def hello(ws: ClientConnection, identity: ControllerIdentity, token: str | None) -> Any:
    """Send hello on a bare websocket; returns the welcome."""
    await ws.send(hello_json(identity, token))
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome", welcome
    return welcome


async def reply_to(ws: ClientConnection, msg: Message) -> dict[str, Any]:
    await ws.send(encode(msg))
    return await recv_json(ws)


def requests(req_id: int) -> list[Message]:
    """One of each request that needs a paired controller."""
    manifest = text_lesson("Слайд").manifest()
    return [
        Cast(id=req_id, lesson=manifest),
        Prepare(id=req_id + 1, lesson=manifest),
        Control(id=req_id + 2, action="next"),
        GetStatus(id=req_id + 3),
        UsagePull(id=req_id + 4, after_seq=0, limit=10),
        Unpair(id=req_id + 5),
    ]


async def assert_unauthorized(ws: ClientConnection, msg: Message) -> None:
    reply = await reply_to(ws, msg)
    assert reply["type"] == "error", (msg.TYPE, reply)
    assert reply["code"] == "unauthorized", (msg.TYPE, reply)
    assert reply["re"] == getattr(msg, "id", None)


async def assert_first_is_unauthorized(ws: ClientConnection, msg: Message) -> None:
    """The next frame ``ws`` gets is the refusal of ``msg``: no pushed event before it."""
    await ws.send(encode(msg))
    reply = await recv_json(ws, skip_events=False)
    assert (reply["type"], reply.get("code")) == ("error", "unauthorized"), reply


# --------------------------------------------------------------------------- unpaired


async def test_unpaired_client_can_only_pair(kiosk: KioskThread) -> None:
    ws = await raw_connect(kiosk.address, hello=False)
    try:
        welcome = await hello(ws, RAW, None)
        assert welcome["role"] is None
        for msg in requests(10):
            await assert_unauthorized(ws, msg)
    finally:
        await ws.close()
    assert kiosk.app is not None
    assert kiosk.app.tokens.grants() == []
    assert kiosk.sync(kiosk.app.service.status).state == "idle"


async def test_unpaired_client_object_is_refused_and_then_pairs(kiosk: KioskThread) -> None:
    async with await KioskClient.connect(kiosk.address, TEACHER) as client:
        assert client.role is None
        with pytest.raises(RemoteError) as info:
            await client.status()
        assert info.value.code == "unauthorized"
        creds = await client.pair(kiosk.pin())
        assert creds.role == "teacher"
        assert client.role == "teacher"
        # The same connection is authorised from now on.
        assert (await client.status()).state == "idle"
        await client.cast(text_lesson("Один"))
        assert (await client.status()).presenter == TEACHER.name


# --------------------------------------------------------------------------- PIN


async def test_pairing_with_the_right_pin(kiosk: KioskThread) -> None:
    assert kiosk.app is not None
    pin = kiosk.pin()
    creds = await pair(kiosk.address, pin, TEACHER)
    assert creds.fingerprint == kiosk.app.tls.fingerprint
    assert creds.role == "teacher"
    # A new PIN after every success.
    assert kiosk.pin() != pin
    [grant] = kiosk.app.tokens.grants()
    assert (grant.controller_id, grant.name, grant.role) == (
        TEACHER.controller_id,
        TEACHER.name,
        "teacher",
    )
    assert grant.token_hash == token_hash(creds.token)
    async with await KioskClient.connect(kiosk.address, TEACHER, credentials=creds) as client:
        assert client.role == "teacher"
        assert client.welcome is not None
        assert client.welcome.role == "teacher"
        assert (await client.status()).state == "idle"


async def test_wrong_pin_is_refused_and_does_not_change_the_pin(kiosk: KioskThread) -> None:
    assert kiosk.app is not None
    pin = kiosk.pin()
    async with await KioskClient.connect(kiosk.address, TEACHER) as client:
        with pytest.raises(RemoteError) as info:
            await client.pair(wrong(pin))
        assert info.value.code == "bad_pin"
        assert client.role is None
        assert kiosk.pin() == pin
        assert kiosk.app.tokens.grants() == []
        # The connection is still unpaired...
        with pytest.raises(RemoteError) as info:
            await client.status()
        assert info.value.code == "unauthorized"
        # ...and may try again with the right PIN.
        await client.pair(pin)
        assert (await client.status()).state == "idle"
    assert kiosk.pin() != pin


async def test_five_wrong_pins_lock_out_their_source(kiosk: KioskThread) -> None:
    """Five wrong PINs lock out the computer that sent them (its address), not pairing
    as a whole, and leave the PIN as it was (tests/test_hardening_pairing.py shows
    that other computers still pair)."""
    first_pin = kiosk.pin()
    async with await KioskClient.connect(kiosk.address, TEACHER) as client:
        for _ in range(5):
            with pytest.raises(RemoteError) as info:
                await client.pair(wrong(kiosk.pin()))
            assert info.value.code == "bad_pin"
        # Wrong PINs never replace the PIN: a teacher who just read it can still use it.
        assert kiosk.pin() == first_pin
        # This computer is locked out for a minute, even with the right PIN.
        with pytest.raises(RemoteError) as info:
            await client.pair(kiosk.pin())
        assert info.value.code == "locked"
        assert "60 seconds" in str(info.value)
    async with await KioskClient.connect(kiosk.address, OTHER) as other:
        with pytest.raises(RemoteError) as info:
            await other.pair(kiosk.pin())
        assert info.value.code == "locked"  # same address: same source
    assert kiosk.app is not None
    assert kiosk.app.tokens.grants() == []


async def test_guesses_in_parallel_get_no_more_tries(kiosk: KioskThread) -> None:
    """Guesses may not be made in parallel: an attacker who starts many pairings at once
    and then sends all their confirmations gets no more tries than one at a time, and a
    right guess among them, once pairing is under attack, pairs only if the panel allows."""
    assert kiosk.app is not None
    app = kiosk.app
    pin = kiosk.pin()
    guesses = ["000000", "111111", "222222", "333333", pin, "555555"]
    assert len(set(guesses)) == len(guesses)
    pending: list[tuple[ClientConnection, bytes]] = []
    sockets: list[ClientConnection] = []
    try:
        for i, guess in enumerate(guesses):
            identity = ControllerIdentity(f"c-guess-{i}", f"Guess {i}")
            ws = await raw_connect(kiosk.address, hello=False)
            sockets.append(ws)
            welcome = await hello(ws, identity, None)
            exchange = ControllerPairing(
                guess,
                controller_id=identity.controller_id,
                kiosk_id=welcome["kiosk_id"],
                fingerprint=app.tls.fingerprint,
            )
            start = PairStart(id=2, role="teacher", spake=b64(exchange.start()))
            offer = await reply_to(ws, start)
            if i < 5:
                assert offer["type"] == "pair_offer", offer
                pending.append((ws, exchange.finish(base64.b64decode(offer["spake"]))))
            else:  # every pair_start counts: five at once from one computer
                assert offer["code"] == "try_later", offer
        codes: list[str] = []
        for ws, confirm in pending[:4]:
            reply = await reply_to(ws, PairConfirm(id=3, confirm=b64(confirm)))
            codes.append(reply.get("code", reply["type"]))
        assert codes == ["bad_pin"] * 4
        # The right PIN, after the guesses: the panel asks; nobody there allows it.
        ws, confirm = pending[4]
        await ws.send(encode(PairConfirm(id=3, confirm=b64(confirm))))
        # A request behind it is answered once the kiosk has handled the confirmation.
        assert (await reply_to(ws, GetStatus(id=4)))["code"] == "unauthorized"
        assert kiosk.sync(lambda: kiosk.display.question) is not None
        kiosk.sync(lambda: app.panel_answer_pairing(False))
        reply = await recv_json(ws)
        assert reply["code"] == "refused", reply
    finally:
        for ws in sockets:
            await ws.close()
    assert app.tokens.grants() == []
    # Whoever sent the right PIN knows it now: the panel shows a new one.
    assert kiosk.pin() != pin


# --------------------------------------------------------------------------- relay


@dataclass
class Relay:
    """A TLS-terminating TCP proxy with its own certificate, in front of a kiosk."""

    address: str
    fingerprint: str
    upstream: list[bytes] = field(default_factory=list)
    """Plaintext bytes the relay read from clients, in order."""


@pytest.fixture
async def relay(kiosk: KioskThread, tmp_path: Path) -> AsyncIterator[Relay]:
    identity = ensure_identity(tmp_path / "relay", "relay")
    onward = tls_client_context()
    tasks: set[asyncio.Task[None]] = set()
    upstream: list[bytes] = []

    async def pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: list[bytes] | None
    ) -> None:
        try:
            while data := await reader.read(65536):
                if log is not None:
                    log.append(data)
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError, ssl.SSLError):
                writer.close()

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        k_reader, k_writer = await asyncio.open_connection(
            "127.0.0.1", kiosk.port, ssl=onward, server_hostname="kiosk"
        )
        for task in (
            asyncio.create_task(pipe(c_reader, k_writer, upstream)),
            asyncio.create_task(pipe(k_reader, c_writer, None)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=identity.server_context())
    port = server.sockets[0].getsockname()[1]
    try:
        yield Relay(f"127.0.0.1:{port}", identity.fingerprint, upstream)
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def test_relay_pipes_an_unpaired_connection(kiosk: KioskThread, relay: Relay) -> None:
    """The relay works: a client through it reaches the kiosk and sees the relay's cert."""
    async with await KioskClient.connect(relay.address, TEACHER) as client:
        assert client.fingerprint == relay.fingerprint
        assert client.welcome is not None
        assert kiosk.app is not None
        assert client.welcome.kiosk_id == kiosk.app.identity.kiosk_id


async def test_pairing_through_a_relay_fails_with_the_right_pin(
    kiosk: KioskThread, relay: Relay
) -> None:
    assert kiosk.app is not None
    assert relay.fingerprint != kiosk.app.tls.fingerprint
    pin = kiosk.pin()
    async with await KioskClient.connect(relay.address, TEACHER) as client:
        with pytest.raises(RemoteError) as info:
            await client.pair(pin)
        assert info.value.code == "bad_pin"
        assert client.role is None
    assert kiosk.app.tokens.grants() == []
    # It counted as a wrong try, not a success: the PIN is unchanged.
    assert kiosk.pin() == pin


async def test_pinned_credentials_refuse_a_relay_before_sending_anything(
    kiosk: KioskThread, relay: Relay
) -> None:
    assert kiosk.app is not None
    creds = await pair(kiosk.address, kiosk.pin(), TEACHER)
    with pytest.raises(CertificateChangedError) as info:
        await KioskClient.connect(relay.address, TEACHER, credentials=creds)
    assert info.value.expected == kiosk.app.tls.fingerprint
    assert info.value.got == relay.fingerprint
    assert info.value.code == "certificate_changed"
    # Through the relay went the websocket upgrade and then only a close frame: no
    # hello, so no token.
    sent = b"".join(relay.upstream)
    head, sep, frames = sent.partition(b"\r\n\r\n")
    assert sep, sent
    assert head.startswith(b"GET /v1 ")
    assert frames == b"" or frames[0] == 0x88, frames[:2]
    assert creds.token.encode() not in sent


async def test_pinned_fingerprint_alone_refuses_a_relay(kiosk: KioskThread, relay: Relay) -> None:
    assert kiosk.app is not None
    with pytest.raises(CertificateChangedError) as info:
        await KioskClient.connect(relay.address, TEACHER, fingerprint=kiosk.app.tls.fingerprint)
    assert info.value.got == relay.fingerprint


# --------------------------------------------------------------------------- tokens


async def test_forged_token_gives_no_role(kiosk: KioskThread) -> None:
    await pair(kiosk.address, kiosk.pin(), RAW)  # RAW has a real token, but sends another
    ws = await raw_connect(kiosk.address, hello=False)
    try:
        welcome = await hello(ws, RAW, os.urandom(32).hex())
        assert welcome["role"] is None
        await assert_unauthorized(ws, requests(10)[0])
    finally:
        await ws.close()


async def test_token_replayed_by_another_controller_gives_no_role(kiosk: KioskThread) -> None:
    creds = await pair(kiosk.address, kiosk.pin(), TEACHER)
    ws = await raw_connect(kiosk.address, hello=False)
    try:
        welcome = await hello(ws, RAW, creds.token)
        assert welcome["role"] is None
        await assert_unauthorized(ws, requests(10)[0])
        await assert_unauthorized(ws, GetStatus(id=30))
    finally:
        await ws.close()


async def test_revoked_token_stops_working_at_once(kiosk: KioskThread) -> None:
    assert kiosk.app is not None
    creds = await pair(kiosk.address, kiosk.pin(), TEACHER)
    ws = await raw_connect(kiosk.address, hello=False)
    try:
        welcome = await hello(ws, TEACHER, creds.token)
        assert welcome["role"] == "teacher"
        assert (await reply_to(ws, GetStatus(id=2)))["type"] == "status"
        # Revoked as `classcast-kiosk tokens revoke` does: another TokenStore on the file.
        gone = TokenStore(kiosk.app.config.state_dir / "tokens.json").revoke(TEACHER.controller_id)
        assert [g.controller_id for g in gone] == [TEACHER.controller_id]
        await assert_unauthorized(ws, GetStatus(id=3))
    finally:
        await ws.close()
    async with await KioskClient.connect(kiosk.address, TEACHER, credentials=creds) as client:
        assert client.role is None
        with pytest.raises(RemoteError) as info:
            await client.status()
        assert info.value.code == "unauthorized"


async def test_a_controller_revoked_by_another_process_gets_no_more_events(
    kiosk: KioskThread,
) -> None:
    assert kiosk.app is not None
    creds = await pair(kiosk.address, kiosk.pin(), TEACHER)
    ws = await raw_connect(kiosk.address, hello=False)
    try:
        assert (await hello(ws, TEACHER, creds.token))["role"] == "teacher"
        # Revoked while it sends nothing, as `classcast-kiosk tokens revoke` does.
        TokenStore(kiosk.app.config.state_dir / "tokens.json").revoke(TEACHER.controller_id)
        async with await admin(kiosk) as other:
            await other.cast(text_lesson("Один"))  # pushes a status to the paired
        await assert_first_is_unauthorized(ws, GetStatus(id=3))
    finally:
        await ws.close()


def two_timed_slides() -> Lesson:
    """Two text slides of 5 s each: the panel moves on by itself (and pushes a status)."""
    slides = [
        LessonItem(kind="text", title=f"Слайд {i}", text="…", duration_ms=5_000) for i in (1, 2)
    ]
    return make_lesson("Урок", slides)


async def test_a_push_made_by_the_panels_clock_skips_a_controller_revoked_meanwhile(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    with KioskThread(tmp_path / "kiosk", clock=clock) as kiosk:
        assert kiosk.app is not None
        creds = await pair(kiosk.address, kiosk.pin(), TEACHER)
        async with await admin(kiosk) as other:
            await other.cast(two_timed_slides())
            ws = await raw_connect(kiosk.address, hello=False)
            try:
                assert (await hello(ws, TEACHER, creds.token))["role"] == "teacher"
                store = TokenStore(kiosk.app.config.state_dir / "tokens.json")
                store.revoke(TEACHER.controller_id)
                clock.advance(5.5)
                kiosk.tick()  # the slide's time is up: the panel moves on and pushes
                status = await other.status()
                assert status.index == 1
                await assert_first_is_unauthorized(ws, GetStatus(id=3))
            finally:
                await ws.close()


async def test_a_damaged_tokens_file_at_a_push_is_logged_and_the_grants_known_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    with KioskThread(tmp_path / "kiosk", clock=clock) as kiosk:
        assert kiosk.app is not None
        async with await admin(kiosk) as client:
            await client.cast(two_timed_slides())
            (kiosk.app.config.state_dir / "tokens.json").write_text("{not json", "utf-8")
            with caplog.at_level(logging.WARNING, logger="kiosk.service"):
                clock.advance(5.5)
                kiosk.tick()  # a push: the file cannot be read
            assert "cannot re-read the paired controllers" in caplog.text
            # The push still came, to the grants known before.
            await client.wait_for_status(lambda status: status.index == 1, timeout_s=5)


async def test_revoked_by_the_kiosks_own_store(kiosk: KioskThread) -> None:
    assert kiosk.app is not None
    app = kiosk.app
    async with await teacher(kiosk) as client:
        kiosk.sync(lambda: app.tokens.revoke(TEACHER.controller_id))
        with pytest.raises(RemoteError) as info:
            await client.control("next")
        assert info.value.code == "unauthorized"


async def test_unpair_over_the_wire_removes_the_grant(kiosk: KioskThread) -> None:
    assert kiosk.app is not None
    other = await pair(kiosk.address, kiosk.pin(), OTHER)
    async with await teacher(kiosk) as client:
        assert {g.controller_id for g in kiosk.app.tokens.grants()} == {
            TEACHER.controller_id,
            OTHER.controller_id,
        }
        await client.unpair()
        assert client.role is None
        with pytest.raises(RemoteError) as info:
            await client.status()
        assert info.value.code == "unauthorized"
    # Only this controller's grant is gone.
    [grant] = kiosk.app.tokens.grants()
    assert grant.token_hash == token_hash(other.token)


async def test_pairing_again_replaces_the_old_token(kiosk: KioskThread) -> None:
    assert kiosk.app is not None
    old = await pair(kiosk.address, kiosk.pin(), TEACHER)
    new = await pair(kiosk.address, kiosk.pin(), TEACHER)
    assert old.token != new.token
    assert [g.token_hash for g in kiosk.app.tokens.grants()] == [token_hash(new.token)]
    async with await KioskClient.connect(kiosk.address, TEACHER, credentials=old) as client:
        assert client.role is None


async def test_tokens_and_key_are_stored_privately(kiosk: KioskThread) -> None:
    assert kiosk.app is not None
    state = kiosk.app.config.state_dir
    creds = [
        await pair(kiosk.address, kiosk.pin(), TEACHER),
        await pair(kiosk.address, ADMIN_SECRET, RAW, role="admin"),
    ]
    text = (state / "tokens.json").read_text(encoding="utf-8")
    for c in creds:
        assert c.token not in text
        assert token_hash(c.token) in text
    assert ADMIN_SECRET not in text
    assert stat.S_IMODE((state / "tokens.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "tls" / "key.pem").stat().st_mode) == 0o600


# --------------------------------------------------------------------------- moderation


async def test_one_teacher_presents_at_a_time(kiosk: KioskThread) -> None:
    async with await teacher(kiosk) as a, await teacher(kiosk, OTHER) as b:
        await a.cast(text_lesson("А1", "А2"))
        with pytest.raises(RemoteError) as info:
            await b.cast(text_lesson("Б1"))
        assert info.value.code == "busy"
        assert TEACHER.name in str(info.value)
        with pytest.raises(RemoteError) as info:
            await b.control("next")
        assert info.value.code == "busy"
        # B may look, and B's prepare does not change what is shown.
        status = await b.status()
        assert (status.item_title, status.presenter) == ("Слайд 1", TEACHER.name)
        await b.prepare(text_lesson("Б1"))
        # The presenter stops: B may cast.
        await a.control("stop")
        assert (await a.status()).state == "idle"
        await b.cast(text_lesson("Б1"))
        status = await b.status()
        assert (status.presenter, status.lesson_title) == (OTHER.name, "Текстовый урок")
        # Now A is the one refused.
        with pytest.raises(RemoteError) as info:
            await a.control("next")
        assert info.value.code == "busy"
        assert OTHER.name in str(info.value)


async def test_presenter_who_left_keeps_the_panel_within_the_grace(kiosk: KioskThread) -> None:
    async with await teacher(kiosk) as a:
        await a.cast(text_lesson("А1"))
    async with await teacher(kiosk, OTHER) as b:
        with pytest.raises(RemoteError) as info:
            await b.cast(text_lesson("Б1"))
        assert info.value.code == "busy"


async def test_presenter_who_left_loses_the_panel_after_the_grace(tmp_path: Path) -> None:
    clock = ManualClock()  # the grace runs on the panel's clock, which only the test moves
    with KioskThread(tmp_path / "kiosk", presenter_grace_s=0.5, clock=clock) as kiosk:
        assert kiosk.app is not None
        app = kiosk.app
        async with await teacher(kiosk, OTHER) as b:
            async with await teacher(kiosk) as a:
                await a.cast(text_lesson("А1"))
            # A has left when B's is the one connection the panel still greets.
            await until(lambda: sum(map(app.service.is_greeted, range(1, 20))) == 1, kiosk)
            clock.advance(0.499)
            with pytest.raises(RemoteError) as info:
                await b.cast(text_lesson("Б1"))
            assert info.value.code == "busy"  # 1 ms before the grace ends
            clock.advance(0.001)
            await b.cast(text_lesson("Б1"))
            assert (await b.status()).presenter == OTHER.name


async def test_presenter_who_comes_back_keeps_the_panel(tmp_path: Path) -> None:
    clock = ManualClock()
    with KioskThread(tmp_path / "kiosk", presenter_grace_s=0.2, clock=clock) as kiosk:
        assert kiosk.app is not None
        app = kiosk.app
        creds = await pair(kiosk.address, kiosk.pin(), TEACHER)
        async with await KioskClient.connect(kiosk.address, TEACHER, credentials=creds) as a:
            await a.cast(text_lesson("А1"))
        await until(lambda: not any(app.service.is_greeted(sid) for sid in range(1, 10)), kiosk)
        # A reconnects (with the saved token) before the grace ends, and stays past it.
        async with await KioskClient.connect(kiosk.address, TEACHER, credentials=creds) as a:
            clock.advance(0.3)
            async with await teacher(kiosk, OTHER) as b:
                with pytest.raises(RemoteError) as info:
                    await b.cast(text_lesson("Б1"))
                assert info.value.code == "busy"
            await a.control("stop")


def test_the_grace_ends_exactly_after_its_length_on_a_clock_hours_from_its_start() -> None:
    left = 84895.93995678604  # monotonic seconds: (left + 0.2) - left rounds to 0.1999…
    moderation = Moderation(0.2)
    moderation.presenter_left(left)

    def check(now: float) -> None:
        moderation.check(
            controller_id="c-other",
            role="teacher",
            presenter_id=TEACHER.controller_id,
            presenter_name=TEACHER.name,
            now=now,
        )

    with pytest.raises(BusyError):
        check(left + 0.1999)
    check(left + 0.2)  # the grace is over


async def take_over_after_grace(kiosk: KioskThread, a: KioskClient) -> KioskClient:
    """A presents and leaves; once the grace has passed, OTHER casts. Returns OTHER's client.

    The kiosk runs on a :class:`ManualClock`: the grace passes when this moves it.
    """
    assert kiosk.app is not None
    assert kiosk.clock is not None
    app = kiosk.app
    await a.cast(text_lesson("А1"))
    await a.close()
    await until(lambda: not any(app.service.is_greeted(sid) for sid in range(1, 20)), kiosk)
    kiosk.clock.advance(app.config.presenter_grace_s)
    b = await teacher(kiosk, OTHER)
    await b.cast(text_lesson("Б1"))
    return b


async def until(predicate: Callable[[], bool], kiosk: KioskThread) -> None:
    """Wait (up to 1 s) until ``predicate`` holds on the kiosk's loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while not kiosk.sync(predicate):
        assert loop.time() < deadline, "the kiosk did not get there"
        await asyncio.sleep(0.01)


async def test_new_presenter_after_a_takeover_is_protected(tmp_path: Path) -> None:
    """After OTHER took over from a teacher who left, OTHER presents and is connected:
    a third teacher must get ``busy``, however long ago the first teacher left."""
    with KioskThread(tmp_path / "kiosk", presenter_grace_s=0.2, clock=ManualClock()) as kiosk:
        b = await take_over_after_grace(kiosk, await teacher(kiosk))
        async with b, await teacher(kiosk, THIRD) as c:
            assert (await c.status()).presenter == OTHER.name
            with pytest.raises(RemoteError) as info:
                await c.cast(text_lesson("В1"))
            assert info.value.code == "busy"
            assert OTHER.name in str(info.value)


async def test_new_presenter_after_an_idle_panel_is_protected(tmp_path: Path) -> None:
    """A teacher left a lesson showing; the panel was stopped; much later OTHER casts.
    A third teacher must get ``busy`` while OTHER presents."""
    clock = ManualClock()
    with KioskThread(tmp_path / "kiosk", presenter_grace_s=0.2, clock=clock) as kiosk:
        assert kiosk.app is not None
        app = kiosk.app
        async with await teacher(kiosk) as a:
            await a.cast(text_lesson("А1"))
        await until(lambda: not any(app.service.is_greeted(sid) for sid in range(1, 10)), kiosk)
        kiosk.sync(lambda: app.service.panel_control("stop"))
        clock.advance(0.25)
        async with await teacher(kiosk, OTHER) as b, await teacher(kiosk, THIRD) as c:
            await b.cast(text_lesson("Б1"))
            with pytest.raises(RemoteError) as info:
                await c.cast(text_lesson("В1"))
            assert info.value.code == "busy"


async def test_admin_overrides_a_presenting_teacher(kiosk: KioskThread) -> None:
    async with await teacher(kiosk) as a, await admin(kiosk) as boss:
        await a.cast(text_lesson("А1", "А2"))
        await boss.control("next")
        assert (await a.status()).index == 1
        await boss.cast(text_lesson("Админ"))
        assert (await boss.status()).presenter == "Админ"


async def test_panel_stop_always_works(kiosk: KioskThread) -> None:
    assert kiosk.app is not None
    app = kiosk.app
    async with await teacher(kiosk) as a:
        await a.cast(text_lesson("А1"))
        assert (await a.status()).state == "playing"
        kiosk.sync(lambda: app.service.panel_control("stop"))
        assert kiosk.sync(app.service.status).state == "idle"
        assert (await a.status()).state == "idle"
    async with await teacher(kiosk, OTHER) as b:
        await b.cast(text_lesson("Б1"))


# --------------------------------------------------------------------------- roles


async def test_teacher_may_not_pull_usage(kiosk: KioskThread) -> None:
    async with await teacher(kiosk) as client:
        await client.cast(text_lesson("А1"))
        await client.control("stop")
        with pytest.raises(RemoteError) as info:
            await client.usage_pull(0)
        assert info.value.code == "forbidden"
    async with await admin(kiosk) as boss:
        batch = await boss.usage_pull(0)
    assert [r.teacher_name for r in batch.records] == [TEACHER.name]


async def test_admin_pairing_is_off_without_a_secret(tmp_path: Path) -> None:
    with KioskThread(tmp_path / "kiosk", admin_secret=None) as kiosk:
        async with await KioskClient.connect(kiosk.address, TEACHER) as client:
            with pytest.raises(RemoteError) as info:
                await client.pair(ADMIN_SECRET, role="admin")
            assert info.value.code == "not_enabled"
            # Teachers still pair.
            creds = await client.pair(kiosk.pin())
            assert creds.role == "teacher"


async def test_wrong_admin_secret_is_refused(kiosk: KioskThread) -> None:
    assert kiosk.app is not None
    async with await KioskClient.connect(kiosk.address, TEACHER) as client:
        with pytest.raises(RemoteError) as info:
            await client.pair(ADMIN_SECRET + "x", role="admin")
        assert info.value.code == "bad_pin"
        # The PIN is not the admin secret either.
        with pytest.raises(RemoteError) as info:
            await client.pair(kiosk.pin(), role="admin")
        assert info.value.code == "bad_pin"
        creds = await client.pair(ADMIN_SECRET, role="admin")
        assert creds.role == "admin"
    assert [g.role for g in kiosk.app.tokens.grants()] == ["admin"]


# --------------------------------------------------------------------------- restart, CLI


async def test_pairing_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "kiosk"
    with KioskThread(state) as kiosk:
        assert kiosk.app is not None
        fingerprint = kiosk.app.tls.fingerprint
        creds = await pair(kiosk.address, kiosk.pin(), TEACHER)
    with KioskThread(state) as kiosk:
        assert kiosk.app is not None
        assert kiosk.app.tls.fingerprint == fingerprint
        async with await KioskClient.connect(kiosk.address, TEACHER, credentials=creds) as client:
            assert client.role == "teacher"
            assert (await client.status()).state == "idle"


def kiosk_cli_run(state: Path, *args: str) -> Any:
    config = state.parent / "empty.toml"
    config.write_text("", encoding="utf-8")
    return CliRunner().invoke(
        kiosk_cli, ["--config", str(config), "--state-dir", str(state), "tokens", *args]
    )


async def test_tokens_cli_lists_and_revokes(kiosk: KioskThread) -> None:
    assert kiosk.app is not None
    state = kiosk.app.config.state_dir
    creds = await pair(kiosk.address, kiosk.pin(), TEACHER)
    await pair(kiosk.address, ADMIN_SECRET, RAW, role="admin")

    result = kiosk_cli_run(state, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert any(
        line.startswith(f"{TEACHER.controller_id}\tteacher\t") and TEACHER.name in line
        for line in lines
    ), result.output
    assert creds.token not in result.output

    result = kiosk_cli_run(state, "list", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert {g["controller_id"] for g in listed} == {TEACHER.controller_id, RAW.controller_id}

    result = kiosk_cli_run(state, "revoke", TEACHER.controller_id)
    assert result.exit_code == 0, result.output
    assert TEACHER.controller_id in result.output
    assert [g.controller_id for g in kiosk.app.tokens.grants()] == [RAW.controller_id]
    async with await KioskClient.connect(kiosk.address, TEACHER, credentials=creds) as client:
        assert client.role is None

    result = kiosk_cli_run(state, "revoke", "c-nobody")
    assert result.exit_code == 1
    assert "c-nobody" in result.output
    assert [g.controller_id for g in kiosk.app.tokens.grants()] == [RAW.controller_id]


def test_tokens_cli_revokes_by_hash_prefix_and_name(tmp_path: Path) -> None:
    state = tmp_path / "kiosk"
    store = TokenStore(state / "tokens.json")
    store.add("a" * 64, "c-one", "Первый", "teacher", 0.0)
    store.add("b" * 64, "c-two", "Второй", "teacher", 0.0)
    prefix = token_hash("a" * 64)[:8]
    result = kiosk_cli_run(state, "revoke", prefix)
    assert result.exit_code == 0, result.output
    result = kiosk_cli_run(state, "revoke", "Второй")
    assert result.exit_code == 0, result.output
    assert TokenStore(state / "tokens.json").grants() == []
    # Shorter than 8 characters, a hash prefix matches nothing.
    store.add("c" * 64, "c-three", "Третий", "teacher", 0.0)
    result = kiosk_cli_run(state, "revoke", token_hash("c" * 64)[:7])
    assert result.exit_code == 1
