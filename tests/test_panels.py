"""controller.panels: panel resolution, targets, rows and discovery, as both faces use them.

A real :class:`~controller.home.Home` in a temporary folder, real zeroconf bound to
127.0.0.1 (adverts from child processes, as in tests/test_discovery.py), and real
connections on loopback for the proofs. Room names carry a per-run tag, so kiosks other
test runs advertise on loopback are never mistaken for ours.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.home import (
    AmbiguousPanelError,
    Home,
    PanelCandidate,
    PanelNotFoundError,
    SavedPanel,
)
from controller.panels import (
    BadAddressError,
    DiscoverySettingError,
    DiscoveryUnavailableError,
    NoPanelGivenError,
    NoSavedPanelsError,
    PanelIdClaimedError,
    Panels,
    UsableRows,
)
from controller.texts import added_text, error_text
from protocol.discovery import MDNS_INTERFACES_ENV, Advertisement, KioskFound
from tests.kiosks import KioskThread
from tests.netns import AdvertiserProcess

LOOPBACK = ["127.0.0.1"]
RUN = uuid.uuid4().hex[:6]
FP = "cd" * 32


def panels_in(tmp_path: Path) -> Panels:
    return Panels(Home(tmp_path / "home"), teacher="Петрова А. С.", timeout_s=2.0)


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def advert(kiosk_id: str, room: str, port: int) -> KioskFound:
    return KioskFound(
        name=f"{room}._classcast._tcp.local.",
        kiosk_id=kiosk_id,
        room=room,
        school="Школа № 5",
        host="127.0.0.1",
        port=port,
        fingerprint=FP,
        state="idle",
        proto=1,
    )


# --------------------------------------------------------------------------- names


async def test_saved_panels_resolve_by_room_id_or_address(tmp_path: Path) -> None:
    panels = panels_in(tmp_path)
    panels.home.save_panel(SavedPanel("10.0.0.5:47810", room="Каб. 12", kiosk_id="k-12"))
    assert await panels.resolve("каб. 12") == "10.0.0.5:47810"
    assert await panels.resolve("k-12") == "10.0.0.5:47810"
    assert await panels.resolve("10.0.0.5:47810") == "10.0.0.5:47810"
    assert await panels.resolve("10.0.0.9") == "10.0.0.9"  # an address needs no saving


async def test_an_unknown_name_raises_panel_not_found_with_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MDNS_INTERFACES_ENV, "127.0.0.1")
    panels = panels_in(tmp_path)
    panels.discovery_wait_s = 0.2
    with pytest.raises(PanelNotFoundError) as info:
        await panels.resolve(f"Нет такой {RUN}")
    assert info.value.name == f"Нет такой {RUN}"
    assert "Панель не найдена" in error_text(info.value)


async def test_two_saved_panels_of_one_room_are_ambiguous_with_their_candidates(
    tmp_path: Path,
) -> None:
    panels = panels_in(tmp_path)
    panels.home.save_panel(SavedPanel("10.0.0.5:47810", room="Каб. 12", kiosk_id="k-a"))
    panels.home.save_panel(SavedPanel("10.0.0.6:47810", room="Каб. 12", kiosk_id="k-b"))
    with pytest.raises(AmbiguousPanelError) as info:
        await panels.resolve("Каб. 12")
    assert info.value.candidates == (
        PanelCandidate("Каб. 12", "k-a", "10.0.0.5:47810"),
        PanelCandidate("Каб. 12", "k-b", "10.0.0.6:47810"),
    )
    assert (
        str(info.value) == "«Каб. 12»: Каб. 12 (k-a, 10.0.0.5:47810), Каб. 12 (k-b, 10.0.0.6:47810)"
    )


# --------------------------------------------------------------------------- targets


async def test_targets_all_saved_panels_or_none(tmp_path: Path) -> None:
    panels = panels_in(tmp_path)
    with pytest.raises(NoSavedPanelsError):
        await panels.targets(all_panels=True)
    panels.home.save_panel(SavedPanel("10.0.0.5:47810", room="Каб. 12", kiosk_id="k-12"))
    panels.home.save_panel(SavedPanel("10.0.0.6:47810", room="Каб. 14", kiosk_id="k-14"))
    assert sorted(await panels.targets(["ignored"], all_panels=True)) == [
        "10.0.0.5:47810",
        "10.0.0.6:47810",
    ]


async def test_targets_named_else_the_last_cast_else_an_error(tmp_path: Path) -> None:
    panels = panels_in(tmp_path)
    panels.home.save_panel(SavedPanel("10.0.0.5:47810", room="Каб. 12", kiosk_id="k-12"))
    with pytest.raises(NoPanelGivenError) as info:
        await panels.targets([" ", ""])
    assert "--to" in error_text(info.value)
    assert await panels.targets(["Каб. 12", " 10.0.0.7 "]) == ["10.0.0.5:47810", "10.0.0.7"]
    panels.home.set_last_targets(["10.0.0.5:47810"])
    assert await panels.targets() == ["10.0.0.5:47810"]


# --------------------------------------------------------------------------- rows


async def test_an_unproven_claim_on_a_saved_panel_is_ignored_and_the_address_stays(
    tmp_path: Path,
) -> None:
    panels = panels_in(tmp_path)
    saved = SavedPanel("127.0.0.1:1", room="Каб. 12", kiosk_id="k-12", fingerprint=FP)
    panels.home.save_panel(saved)
    impostor = advert("k-12", "Каб. 12", closed_port())  # refuses: nothing proves it
    stranger = advert(f"k-new-{RUN}", "Каб. 30", closed_port())
    usable = await panels.usable_rows([impostor, stranger])
    assert isinstance(usable, UsableRows)
    assert [r.address for r in usable.rows] == [saved.address, stranger.address]
    assert [(r.address, r.verified, r.conflict) for r in usable.ignored] == [
        (impostor.address, False, True)
    ]
    assert panels.home.panels() == [saved]  # never moved without proof


async def test_panel_rows_merge_an_advert_at_the_saved_address(tmp_path: Path) -> None:
    panels = panels_in(tmp_path)
    port = closed_port()
    panels.home.save_panel(SavedPanel(f"127.0.0.1:{port}", room="Каб. 12", kiosk_id="k-12"))
    (row,) = await panels.panel_rows([advert("k-12", "Каб. 12", port)])
    assert (row.source, row.state, row.verified, row.usable) == ("mdns+saved", "idle", True, True)


# --------------------------------------------------------------------------- discovery


async def test_a_bad_interface_setting_is_a_typed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MDNS_INTERFACES_ENV, "0.0.0.0")
    panels = panels_in(tmp_path)
    with pytest.raises(DiscoverySettingError, match=MDNS_INTERFACES_ENV):
        await panels.discover_all(0.1)
    with pytest.raises(DiscoverySettingError):
        await panels.resolve("Каб. 12")


async def test_discovery_where_mdns_cannot_bind_finds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An address of no interface here: binding fails, nothing is sent anywhere.
    monkeypatch.setenv(MDNS_INTERFACES_ENV, "192.0.2.1")
    panels = panels_in(tmp_path)
    with pytest.raises(DiscoveryUnavailableError) as info:
        await panels.browse(0.1)
    assert error_text(info.value).startswith("В этой сети панели не ищутся")
    assert await panels.discover_all(0.1) == []
    panels.discovery_wait_s = 0.1
    with pytest.raises(PanelNotFoundError):
        await panels.resolve("Каб. 12")


def _ad(kiosk_id: str, room: str, port: int) -> Advertisement:
    return Advertisement(
        kiosk_id=kiosk_id, room=room, school="Школа № 5", port=port, fingerprint=FP, state="idle"
    )


@pytest.fixture(scope="module")
def advertiser() -> Iterator[AdvertiserProcess]:
    """One kiosk advertised on 127.0.0.1 by a child process, shared by the module."""
    with AdvertiserProcess(_ad(f"pa-{RUN}", f"Каб. 40 {RUN}", 47901), LOOPBACK) as child:
        child.start()
        yield child


@pytest.mark.slow
async def test_a_name_is_resolved_through_mdns_by_room_or_kiosk_id(
    tmp_path: Path, advertiser: AdvertiserProcess
) -> None:
    panels = panels_in(tmp_path)
    panels.discovery_wait_s = 8.0  # the look stops at the first match
    assert await panels.resolve(f"КАБ. 40 {RUN}") == "127.0.0.1:47901"
    assert await panels.resolve(f"pa-{RUN}") == "127.0.0.1:47901"
    found = await panels.browse(8.0, stop_when=lambda ks: f"pa-{RUN}" in {k.kiosk_id for k in ks})
    assert f"pa-{RUN}" in {k.kiosk_id for k in found}


@pytest.mark.slow
async def test_an_advert_of_a_saved_kiosk_id_elsewhere_never_resolves_a_name(
    tmp_path: Path, advertiser: AdvertiserProcess
) -> None:
    panels = panels_in(tmp_path)
    panels.discovery_wait_s = 1.0
    panels.home.save_panel(SavedPanel("10.0.0.5:47810", room="Каб. 12", kiosk_id=f"pa-{RUN}"))
    # The advert's room is not the saved one; by the advert alone it would match.
    with pytest.raises(PanelNotFoundError):
        await panels.resolve(f"Каб. 40 {RUN}")


# --------------------------------------------------------------------------- add


async def test_add_saves_a_panel_with_its_room_id_and_certificate(tmp_path: Path) -> None:
    panels = panels_in(tmp_path)
    with KioskThread(tmp_path / "k", room="Каб. 7") as kiosk:
        added = await panels.add(f"  {kiosk.address} ")
    assert added.unreachable is None
    assert added.panel.address == kiosk.address
    assert added.panel.room == "Каб. 7"
    assert added.panel.kiosk_id
    assert added.panel.fingerprint
    assert panels.home.panels() == [added.panel]
    assert added_text(added).startswith("Сохранено: Каб. 7")


async def test_add_keeps_the_address_of_a_panel_that_does_not_answer(tmp_path: Path) -> None:
    panels = panels_in(tmp_path)
    address = f"127.0.0.1:{closed_port()}"
    added = await panels.add(address)
    assert added.panel == SavedPanel(address=address)
    assert added.unreachable is not None
    assert panels.home.panels() == [added.panel]


@pytest.mark.parametrize("address", ["", "host:port", "127.0.0.1:99999", "[::1", "[::1]x"])
async def test_add_refuses_what_is_not_an_address(tmp_path: Path, address: str) -> None:
    panels = panels_in(tmp_path)
    with pytest.raises(BadAddressError) as info:
        await panels.add(address)
    assert panels.home.panels() == []
    assert "не адрес" in error_text(info.value)


async def test_add_refuses_a_machine_claiming_a_saved_panels_id(tmp_path: Path) -> None:
    panels = panels_in(tmp_path)
    with KioskThread(tmp_path / "k") as kiosk:
        kiosk_id = (await panels.add(kiosk.address)).panel.kiosk_id
        # The panel of that id is known with another certificate, at another address:
        # the machine here must not take its place.
        known = SavedPanel(address="10.0.0.9:47810", kiosk_id=kiosk_id, fingerprint=FP)
        panels.home.save_panel(known)
        with pytest.raises(PanelIdClaimedError) as info:
            await panels.add(kiosk.address)
    assert panels.home.panels() == [known]
    assert "ничего не сохранено" in error_text(info.value)
