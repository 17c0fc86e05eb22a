"""Discovery: the pure TXT/name/settings code, then real zeroconf between processes.

Every zeroconf here is bound to 127.0.0.1 (IPv4 only) or runs inside network namespaces
the test creates (``tests.netns``), as does the real avahi-daemon the last tests run
against (``tests.avahi``): nothing multicasts on the machine's real interfaces.
Room names carry a per-run tag, so kiosks other test runs advertise on loopback at the
same time are never mistaken for ours.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from zeroconf import DNSQuestionType, IPVersion, Zeroconf
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from controller.discovery import DiscoveryEvent, ZeroconfDiscovery
from kiosk.advertise import REVISION_KEY
from protocol.constants import PROTOCOL_VERSION, SERVICE_TYPE
from protocol.discovery import (
    DOT_LOOKALIKE,
    MAX_INSTANCE_LABEL_BYTES,
    MAX_TXT_STRING_BYTES,
    MDNS_INTERFACES_ENV,
    Advertisement,
    KioskFound,
    KioskLost,
    instance_label,
    instance_name,
    mdns_interfaces,
    parse_txt,
    truncate_utf8,
)
from protocol.errors import MalformedMessageError
from tests.avahi import StaticService, avahi_daemon
from tests.netns import REPO_ROOT, AdvertiserProcess, netns_pair

LOOPBACK = ["127.0.0.1"]
RUN = uuid.uuid4().hex[:6]
FP = "ab" * 32
ROOM = f"Каб. 12 {RUN}"


def make_ad(kiosk_id: str, room: str = ROOM, state: str = "idle") -> Advertisement:
    return Advertisement(
        kiosk_id=kiosk_id, room=room, school="Школа № 5", port=47810, fingerprint=FP, state=state
    )


def wire(txt: dict[str, str]) -> dict[bytes, bytes | None]:
    return {k.encode(): v.encode() for k, v in txt.items()}


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("value", [None, "", "   "])
def test_mdns_interfaces_unset_means_all(value: str | None) -> None:
    assert mdns_interfaces(value) is None


def test_mdns_interfaces_lists() -> None:
    assert mdns_interfaces("127.0.0.1") == ["127.0.0.1"]
    assert mdns_interfaces(" 10.0.0.5 , 127.0.0.1,10.0.0.5") == ["10.0.0.5", "127.0.0.1"]


@pytest.mark.parametrize(
    "value",
    ["localhost", "::1", "127.0.0.1,", "0.0.0.0", "224.0.0.251", "300.1.1.1", "10.0.0.1;10.0.0.2"],
)
def test_mdns_interfaces_rejects(value: str) -> None:
    with pytest.raises(ValueError, match=MDNS_INTERFACES_ENV):
        mdns_interfaces(value)


def test_protocol_discovery_imports_no_io() -> None:
    code = (
        "import sys, protocol.discovery\n"
        "bad = {'asyncio', 'zeroconf', 'socket', '_socket', 'ifaddr', 'selectors'}\n"
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO_ROOT
    ).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- TXT and names


def test_txt_round_trip() -> None:
    ad = make_ad("k-1", state="playing")
    txt = ad.txt()
    assert set(txt) == {"id", "room", "school", "proto", "fp", "state"}
    assert txt["proto"] == str(PROTOCOL_VERSION)
    found = parse_txt("X._classcast._tcp.local.", "10.0.0.7", 47810, wire(txt))
    assert found == KioskFound(
        name="X._classcast._tcp.local.",
        kiosk_id="k-1",
        room=ROOM,
        school="Школа № 5",
        host="10.0.0.7",
        port=47810,
        fingerprint=FP,
        state="playing",
        proto=PROTOCOL_VERSION,
    )
    assert found.address == "10.0.0.7:47810"
    assert dataclasses.replace(found, host="fe80::1").address == "[fe80::1]:47810"


def test_parse_txt_ignores_unknown_keys() -> None:
    props = wire(make_ad("k-1").txt()) | {b"later": b"1", b"flag": None}
    assert parse_txt("n", "h", 1, props).kiosk_id == "k-1"


@pytest.mark.parametrize("length", range(240, 260))
def test_long_cyrillic_room_and_school_truncate_at_char_boundary(length: int) -> None:
    room = ("Кабинет № 12 — " * 30)[:length]
    school = ("Ж" + "Школа ") * 50
    txt = dataclasses.replace(make_ad("k"), room=room, school=school).txt()
    for key in ("room", "school"):
        raw = f"{key}={txt[key]}".encode()
        assert len(raw) <= MAX_TXT_STRING_BYTES
        assert raw.decode("utf-8")  # no broken character at the cut
    assert room.startswith(txt["room"])
    assert school.startswith(txt["school"])
    assert len(txt["room"].encode()) >= MAX_TXT_STRING_BYTES - len("room=") - 1


def test_truncate_utf8() -> None:
    assert truncate_utf8("Каб", 6) == "Каб"
    assert truncate_utf8("Каб", 5) == "Ка"
    assert truncate_utf8("Каб", 1) == ""
    assert truncate_utf8("a😀", 4) == "a"


def test_instance_name_replaces_dots_and_fits_a_label() -> None:
    from zeroconf import BadTypeInNameException  # noqa: F401  (zeroconf validates below)
    from zeroconf._utils.name import service_type_name

    assert instance_name("Каб. 12") == f"Каб{DOT_LOOKALIKE} 12.{SERVICE_TYPE}"
    assert instance_label("a\tb\x7f") == "a b"
    assert instance_label("  ") == instance_label("") == "ClassCast"
    long_room = "Кабинет информатики и вычислительной техники № 12"
    label = instance_label(long_room)
    assert long_room.startswith(label)
    assert "." not in label
    # zeroconf's rename suffix still fits the 63-byte label.
    renamed = f"{label}-999.{SERVICE_TYPE}"
    assert len(f"{label}-999".encode()) <= MAX_INSTANCE_LABEL_BYTES
    assert service_type_name(renamed) == SERVICE_TYPE


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({b"id": None}, "'id'"),
        ({b"room": b"\xff\xfe"}, "UTF-8"),
        ({b"proto": b"one"}, "proto"),
        ({b"proto": b"\xd9\xa1"}, "proto"),  # Arabic-Indic digit one: isdigit() but not ASCII
        ({b"id": b""}, "empty"),
    ],
)
def test_parse_txt_malformed(change: dict[bytes, bytes | None], message: str) -> None:
    props = wire(make_ad("k").txt()) | change
    with pytest.raises(MalformedMessageError, match=message):
        parse_txt("Foreign._classcast._tcp.local.", "10.0.0.1", 80, props)


@pytest.mark.parametrize("key", [b"id", b"room", b"school", b"proto", b"fp", b"state"])
def test_parse_txt_missing_key(key: bytes) -> None:
    props = wire(make_ad("k").txt())
    del props[key]
    with pytest.raises(MalformedMessageError, match=key.decode()):
        parse_txt("n", "h", 80, props)


def test_parse_txt_cleans_every_value() -> None:
    """Anyone can send a TXT record: escapes, controls and bidi tricks never get through."""
    txt = make_ad("k-1").txt() | {
        "room": "\x1b]0;pwned\x07Каб. 1",
        "school": "Школа\u202e 5\x9b2J",
        "state": "idle\x1b[2J",
        "id": "k-1\u200b",
    }
    found = parse_txt("n", "10.0.0.7", 47810, wire(txt))
    assert (found.room, found.school, found.state, found.kiosk_id) == (
        "Каб. 1",
        "Школа 5",
        "idle",
        "k-1",
    )


def test_parse_txt_id_of_controls_only_is_malformed() -> None:
    with pytest.raises(MalformedMessageError, match="empty"):
        parse_txt("n", "h", 80, wire(make_ad("k").txt() | {"id": "\x1b[0m\u200b"}))


def test_instance_label_is_clean() -> None:
    assert instance_label("\x1b]0;x\x07Каб.\u202e 1") == f"Каб{DOT_LOOKALIKE} 1"


def test_parse_txt_bad_port() -> None:
    with pytest.raises(MalformedMessageError, match="port"):
        parse_txt("n", "h", 0, wire(make_ad("k").txt()))


def test_advertisement_validates_our_own_fields() -> None:
    with pytest.raises(ValueError, match="port"):
        dataclasses.replace(make_ad("k"), port=0)
    with pytest.raises(ValueError, match="empty"):
        make_ad("")
    with pytest.raises(ValueError, match="'fp'"):
        dataclasses.replace(make_ad("k"), fingerprint="f" * 300)


# --------------------------------------------------------------------------- real zeroconf


def _has_id(kiosk_id: str) -> object:
    return lambda kiosks: any(k.kiosk_id == kiosk_id for k in kiosks)


@pytest.fixture(scope="module")
def kiosk_child() -> Iterator[AdvertiserProcess]:
    """One advertiser child on 127.0.0.1, registered, shared by the module."""
    with AdvertiserProcess(make_ad(f"k1-{RUN}"), LOOPBACK) as child:
        child.start()
        yield child


@pytest.mark.slow
async def test_loopback_kiosk_found_with_all_fields(kiosk_child: AdvertiserProcess) -> None:
    kiosks = await ZeroconfDiscovery(LOOPBACK).browse(
        8.0, stop_when=lambda ks: any(k.kiosk_id == f"k1-{RUN}" for k in ks)
    )
    [kiosk] = [k for k in kiosks if k.kiosk_id == f"k1-{RUN}"]
    assert kiosk.name == kiosk_child.name == instance_name(ROOM)
    assert (kiosk.room, kiosk.school, kiosk.fingerprint) == (ROOM, "Школа № 5", FP)
    assert (kiosk.host, kiosk.port, kiosk.proto) == ("127.0.0.1", 47810, PROTOCOL_VERSION)
    assert kiosk.address == "127.0.0.1:47810"


@pytest.mark.slow
async def test_state_update_seen_by_browser(kiosk_child: AdvertiserProcess) -> None:
    events: list[DiscoveryEvent] = []
    async with ZeroconfDiscovery(LOOPBACK, on_change=events.append) as discovery:
        mine = f"k1-{RUN}"
        await discovery.wait_for_kiosk(lambda k: k.kiosk_id == mine, timeout_s=8)
        try:
            await asyncio.to_thread(kiosk_child.set_state, "playing")
            kiosk = await discovery.wait_for_kiosk(
                lambda k: k.kiosk_id == mine and k.state == "playing", timeout_s=5
            )
            assert discovery.found[kiosk.name] == kiosk
        finally:
            await asyncio.to_thread(kiosk_child.set_state, "idle")
        await discovery.wait_for(lambda k: k.kiosk_id == mine and k.state == "idle", 5)
    states = [e.state for e in events if isinstance(e, KioskFound) and e.kiosk_id == mine]
    assert states == ["idle", "playing", "idle"]


@pytest.mark.slow
async def test_wait_for_kiosk_times_out(kiosk_child: AdvertiserProcess) -> None:
    async with ZeroconfDiscovery(LOOPBACK) as discovery:
        with pytest.raises(TimeoutError):
            await discovery.wait_for_kiosk(lambda k: k.kiosk_id == "nobody", timeout_s=0.2)


@pytest.mark.slow
async def test_two_kiosks_in_the_same_room_both_found(kiosk_child: AdvertiserProcess) -> None:
    with AdvertiserProcess(make_ad(f"k2-{RUN}"), LOOPBACK) as second:
        # zeroconf renames only once the first kiosk's PTR answer is in its cache. A
        # responder that multicast a record in the last second delays its next answer
        # by ~1 s (RFC 6762 §6), which would land after the ~1.2 s of probing, and the
        # previous tests' browsers just asked. Let that second pass (see kiosk.advertise).
        await asyncio.sleep(1.2)
        second_name = await asyncio.to_thread(second.start)
        assert second_name != kiosk_child.name
        assert second_name.startswith(instance_label(ROOM) + "-")
        ids = {f"k1-{RUN}", f"k2-{RUN}"}
        kiosks = await ZeroconfDiscovery(LOOPBACK).browse(
            8.0, stop_when=lambda ks: ids <= {k.kiosk_id for k in ks}
        )
        mine = {k.kiosk_id: k for k in kiosks if k.kiosk_id in ids}
        assert set(mine) == ids
        assert {k.room for k in mine.values()} == {ROOM}
        assert mine[f"k2-{RUN}"].name == second_name


@pytest.mark.slow
async def test_goodbye_removes_kiosk() -> None:
    events: list[DiscoveryEvent] = []
    room = f"Каб. 7 {RUN}"
    async with ZeroconfDiscovery(LOOPBACK, on_change=events.append) as discovery:
        with AdvertiserProcess(make_ad(f"k3-{RUN}", room=room), LOOPBACK) as child:
            await asyncio.to_thread(child.start)
            kiosk = await discovery.wait_for_kiosk(lambda k: k.kiosk_id == f"k3-{RUN}", 8)
            await asyncio.to_thread(child.stop)
        for _ in range(50):  # goodbyes arrive within ~0.5 s of stop
            if kiosk.name not in discovery.found:
                break
            await asyncio.sleep(0.05)
        assert kiosk.name not in discovery.found
    assert KioskLost(kiosk.name) in events


@pytest.mark.slow
async def test_foreign_service_with_broken_txt_is_skipped(
    kiosk_child: AdvertiserProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="controller.discovery")
    foreign_name = f"Принтер {RUN}.{SERVICE_TYPE}"
    foreign = AsyncServiceInfo(
        SERVICE_TYPE,
        foreign_name,
        port=9100,
        properties={"id": "x", "note": "not a kiosk"},
        parsed_addresses=["127.0.0.1"],
    )
    async with AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only) as zc:
        await zc.async_register_service(foreign, cooperating_responders=True)
        async with ZeroconfDiscovery(LOOPBACK) as discovery:
            await discovery.wait_for_kiosk(lambda k: k.kiosk_id == f"k1-{RUN}", 8)
            for _ in range(100):
                if foreign_name in caplog.text:
                    break
                await asyncio.sleep(0.05)
            assert foreign_name not in discovery.found
        await zc.async_unregister_service(foreign)
    assert f"not a ClassCast kiosk: mDNS service {foreign_name!r}" in caplog.text


@pytest.mark.slow
def test_record_parses_with_a_plain_zeroconf(kiosk_child: AdvertiserProcess) -> None:
    """Fallback for a standard DNS-SD tool: a separate, plain python-zeroconf resolves it."""
    assert kiosk_child.name is not None
    zc = Zeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    try:
        info = zc.get_service_info(
            SERVICE_TYPE, kiosk_child.name, timeout=5000, question_type=DNSQuestionType.QM
        )
    finally:
        zc.close()
    assert info is not None
    assert info.name == kiosk_child.name
    assert info.port == 47810
    assert info.parsed_addresses() == ["127.0.0.1"]
    assert info.server == f"classcast-k1-{RUN}.local."
    props = dict(info.decoded_properties)
    assert (props.pop("rev", None) or "").isdigit()  # the advertiser's update counter
    assert props == make_ad(f"k1-{RUN}").txt()


# --------------------------------------------------------------------------- network namespaces

BROWSER_SCRIPT = """
import asyncio, sys
from controller.discovery import ZeroconfDiscovery

async def main() -> None:
    interface, wanted = sys.argv[1], sys.argv[2]
    kiosks = await ZeroconfDiscovery([interface]).browse(
        10.0, stop_when=lambda ks: any(k.kiosk_id == wanted for k in ks)
    )
    for k in kiosks:
        print("FOUND", k.kiosk_id, k.address, k.room, flush=True)

asyncio.run(main())
"""


@pytest.mark.slow
def test_discovery_between_network_namespaces() -> None:
    with netns_pair() as pair:
        ad = make_ad(f"k4-{RUN}", room=f"Каб. 9 {RUN}")
        with AdvertiserProcess(ad, [pair.addr1], netns=pair.ns1) as child:
            browser = pair.popen_python(pair.ns2, BROWSER_SCRIPT, pair.addr2, ad.kiosk_id)
            try:
                child.start()
                out, err = browser.communicate(timeout=15)
            finally:
                if browser.poll() is None:
                    browser.kill()
                    browser.wait()
        assert browser.returncode == 0, err
        assert f"FOUND {ad.kiosk_id} {pair.addr1}:47810 {ad.room}" in out.splitlines()


# --------------------------------------------------------------------------- avahi


@pytest.mark.slow
def test_avahi_browse_finds_a_kiosk_our_zeroconf_advertises(tmp_path: Path) -> None:
    """A school's Linux machine (avahi) sees a panel: avahi-daemon and avahi-browse in
    one namespace, the panel's advertiser in the other."""
    with netns_pair() as pair, avahi_daemon(pair, tmp_path) as avahi:
        ad = make_ad(f"k5-{RUN}", room=f"Каб. 5 {RUN}")
        with AdvertiserProcess(ad, [pair.addr1], netns=pair.ns1) as child:
            name = child.start()
            found = avahi.browse(SERVICE_TYPE.removesuffix(".local."), f"id={ad.kiosk_id}")
    assert (found.address, found.port) == (pair.addr1, 47810)
    assert found.name == name.removesuffix("." + SERVICE_TYPE)
    assert found.txt == {**ad.txt(), REVISION_KEY: "0"}  # every value as the panel sent it


@pytest.mark.slow
def test_our_discovery_finds_a_service_avahi_publishes(tmp_path: Path) -> None:
    """A panel published by avahi (a static service file) is found by the controller's
    discovery in the other namespace, with every field of its TXT record."""
    ad = make_ad(f"k6-{RUN}", room=f"Каб. 6 {RUN}")
    service = StaticService(
        f"Панель {RUN}", SERVICE_TYPE.removesuffix(".local."), ad.port, ad.txt()
    )
    with netns_pair() as pair, avahi_daemon(pair, tmp_path, service):
        browser = pair.run_python(pair.ns1, BROWSER_SCRIPT, pair.addr1, ad.kiosk_id)
    assert browser.returncode == 0, browser.stderr
    assert f"FOUND {ad.kiosk_id} {pair.addr2}:47810 {ad.room}" in browser.stdout.splitlines()
