"""``Panels``: the panels of a school as the controller's faces see them.

The one API under the ``classcast`` command and the teacher's web app: which panels
there are (saved in :class:`~controller.home.Home` and found by mDNS), which one a
name means, where a command goes, and a :class:`~controller.group.Group` connected to
them. Every method is a coroutine, for the web app's event loop; the command line runs
each with :func:`asyncio.run`. Usage::

    panels = Panels(Home(), teacher="Петрова А. С.")
    targets = await panels.targets(["Каб. 12"])       # or all_panels=True, or last cast
    group = await panels.group(targets)
    try:
        outcomes = await group.control("next")
    finally:
        await group.close()

    usable = await panels.usable_rows(await panels.discover_all())
    for row in usable.ignored:  # adverts that claim a saved panel without proof
        ...

Results are frozen dataclasses (:class:`~controller.home.PanelRow`,
:class:`UsableRows`); failures are exceptions of the one tree
(:mod:`protocol.errors`), never a face's own: :class:`~controller.home.PanelNotFoundError`,
:class:`~controller.home.AmbiguousPanelError` (with its candidates),
:class:`NoPanelGivenError`, :class:`NoSavedPanelsError`, :class:`DiscoveryUnavailableError`,
:class:`DiscoverySettingError`. Each face turns them into its words with
:func:`controller.texts.error_text`.

Saved addresses move only on proof (:mod:`controller.home`): :meth:`Panels.panel_rows`
proves the adverts that put a saved panel elsewhere before it lists them, and a name
is never resolved through such an advert.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from controller.client import DEFAULT_TIMEOUT_S, ControllerIdentity, KioskClient, split_host_port
from controller.discovery import ZeroconfDiscovery
from controller.group import Group
from controller.home import (
    PROOF_TIMEOUT_S,
    AmbiguousPanelError,
    Home,
    PanelCandidate,
    PanelNotFoundError,
    PanelRow,
    SavedPanel,
    prove_claims,
)
from protocol.discovery import MDNS_INTERFACES_ENV, KioskFound, mdns_interfaces
from protocol.errors import ClassCastError
from protocol.messages import Role, Welcome

DISCOVERY_WAIT_S: Final = 2.0
"""How long a name is looked for by mDNS (the look stops as soon as the panel answers)."""

DISCOVER_ALL_WAIT_S: Final = 1.5
"""How long :meth:`Panels.discover_all` listens for every panel by default."""


class NoPanelGivenError(ClassCastError):
    """A command names no panel and there was no cast before to take them from (the
    user's input): ask for a panel, or for all of them."""

    code = "no_panel_given"

    def __init__(self) -> None:
        super().__init__("no panel given and no previous cast")


class NoSavedPanelsError(ClassCastError):
    """A command for every panel found none (the user's input): add a panel first."""

    code = "no_saved_panels"

    def __init__(self) -> None:
        super().__init__("no saved panels")


class BadAddressError(ClassCastError):
    """``panels add`` was given something that is not HOST or HOST:PORT (the user's input)."""

    code = "bad_address"

    def __init__(self, address: str) -> None:
        super().__init__(f"not an address: {address!r}")
        self.address = address


class PanelIdClaimedError(ClassCastError):
    """A machine at ``address`` claims a saved panel's id with another certificate (the
    other machine's doing): nothing was saved."""

    code = "panel_id_claimed"

    def __init__(self, address: str, room: str, kiosk_id: str) -> None:
        super().__init__(f"{address} claims panel {kiosk_id} with another certificate")
        self.address = address
        self.room = room
        self.kiosk_id = kiosk_id


class DiscoveryUnavailableError(ClassCastError):
    """mDNS cannot run here: no usable network interface (this computer's network)."""

    code = "discovery_unavailable"


class DiscoverySettingError(ClassCastError):
    """``CLASSCAST_MDNS_INTERFACES`` is not a list of IPv4 addresses (the user's setting)."""

    code = "discovery_setting"


@dataclass(frozen=True, slots=True)
class AddedPanel:
    """What :meth:`Panels.add` saved: the panel, and why it was saved without its room
    and id when the panel did not answer (``unreachable``)."""

    panel: SavedPanel
    unreachable: ClassCastError | None = None


@dataclass(frozen=True, slots=True)
class UsableRows:
    """The panels a command may send to, and the adverts left out.

    ``ignored`` are adverts that claim a saved panel's kiosk id without proving it, or
    whose kiosk id several addresses claim: tell the user about each, never send to it.
    """

    rows: tuple[PanelRow, ...]
    ignored: tuple[PanelRow, ...]


class Panels:
    """The school's panels for one controller: resolution, targets, discovery, groups.

    Args:
        home: the controller's files (saved panels, pairings, last targets).
        teacher: the name panels log (``--teacher``); ``None`` keeps the saved one.
        timeout_s: how long a panel's answer is awaited.
        discovery_wait_s: how long a name is looked for by mDNS.
    """

    def __init__(
        self,
        home: Home,
        *,
        teacher: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        discovery_wait_s: float = DISCOVERY_WAIT_S,
    ) -> None:
        self.home = home
        self.teacher = teacher
        self.timeout_s = timeout_s
        self.discovery_wait_s = discovery_wait_s

    def identity(self) -> ControllerIdentity:
        """This controller as panels see it (created on first use)."""
        return self.home.identity(self.teacher)

    # ----------------------------------------------------------------- discovery

    def discovery(self) -> ZeroconfDiscovery:
        """An mDNS browser on the interfaces ``CLASSCAST_MDNS_INTERFACES`` names (all if
        unset); use it with ``async with`` to follow panels for a while.

        Raises:
            DiscoverySettingError: the variable is not a list of IPv4 addresses.
        """
        try:
            interfaces = mdns_interfaces(os.environ.get(MDNS_INTERFACES_ENV))
        except ValueError as exc:
            raise DiscoverySettingError(str(exc)) from None
        return ZeroconfDiscovery(interfaces)

    async def browse(
        self, wait_s: float, *, stop_when: Callable[[list[KioskFound]], bool] | None = None
    ) -> list[KioskFound]:
        """The panels mDNS finds within ``wait_s``, or as soon as ``stop_when(found)`` holds.

        Adverts are not proven: give them to :meth:`panel_rows` or :meth:`usable_rows`
        before sending anything to one.

        Raises:
            DiscoveryUnavailableError: mDNS cannot run here (no usable interface).
            DiscoverySettingError: ``CLASSCAST_MDNS_INTERFACES`` is wrong.
        """
        discovery = self.discovery()
        try:
            return await discovery.browse(wait_s, stop_when=stop_when)
        except OSError as exc:
            raise DiscoveryUnavailableError(str(exc)) from None

    async def discover_all(self, wait_s: float = DISCOVER_ALL_WAIT_S) -> list[KioskFound]:
        """Every panel mDNS finds within ``wait_s``; none where mDNS is unavailable.

        Raises:
            DiscoverySettingError: ``CLASSCAST_MDNS_INTERFACES`` is wrong.
        """
        try:
            return await self.browse(wait_s)
        except DiscoveryUnavailableError:
            return []

    async def find(self, name: str) -> list[KioskFound]:
        """Panels found by mDNS whose room (case-insensitive) or kiosk id is ``name``.

        Stops looking at the first match (at most :attr:`discovery_wait_s`). An advert
        that puts a saved panel's kiosk id at another address is left out: only
        :meth:`panel_rows` may move a saved panel, after a proof.

        Raises:
            DiscoverySettingError: ``CLASSCAST_MDNS_INTERFACES`` is wrong.
        """
        folded = name.casefold()

        def matches(kiosks: list[KioskFound]) -> list[KioskFound]:
            return [
                k
                for k in self.home.unclaimed(kiosks)
                if k.kiosk_id == name or k.room.casefold() == folded
            ]

        try:
            found = await self.browse(self.discovery_wait_s, stop_when=lambda ks: bool(matches(ks)))
        except DiscoveryUnavailableError:
            return []
        return matches(found)

    # ----------------------------------------------------------------- names

    async def resolve(self, name: str) -> str:
        """A PANEL name (room, kiosk id or HOST[:PORT]) → its address: saved panels
        first, then the panels found by mDNS.

        Raises:
            PanelNotFoundError: no saved or found panel has that name, and it is not an
                address.
            AmbiguousPanelError: several panels have that room name (``candidates``):
                ask for the kiosk id or the address.
            DiscoverySettingError: ``CLASSCAST_MDNS_INTERFACES`` is wrong.
        """
        try:
            return self.home.resolve(name)
        except PanelNotFoundError:
            found = await self.find(name)
        if len(found) == 1:
            return found[0].address
        if len(found) > 1:
            candidates = [PanelCandidate(k.room, k.kiosk_id, k.address) for k in found]
            raise AmbiguousPanelError(name, candidates)
        raise PanelNotFoundError(name)

    async def targets(self, names: Sequence[str] = (), *, all_panels: bool = False) -> list[str]:
        """Where a command goes: every saved panel, the ``names`` given, else the panels
        of the last cast. Record a cast's targets with ``home.set_last_targets``.

        Args:
            names: PANEL names (blank ones are skipped), resolved by :meth:`resolve`.
            all_panels: every saved panel (``names`` are then not looked at).

        Raises:
            NoSavedPanelsError: ``all_panels`` and no panel is saved.
            NoPanelGivenError: no names, and no cast before.
            PanelNotFoundError, AmbiguousPanelError: as :meth:`resolve`.
        """
        if all_panels:
            saved = self.home.panels()
            if not saved:
                raise NoSavedPanelsError
            return [p.address for p in saved]
        wanted = [n.strip() for n in names if n.strip()]
        if wanted:
            return [await self.resolve(n) for n in wanted]
        last = self.home.last_targets()
        if not last:
            raise NoPanelGivenError
        return last

    # ----------------------------------------------------------------- rows

    async def panel_rows(self, found: Sequence[KioskFound]) -> list[PanelRow]:
        """Saved panels and those ``found`` by mDNS, after following proven moves.

        A saved panel advertised at another address is moved there (and saved) only if
        that address proves it (:func:`controller.home.prove_claims`); see
        :meth:`controller.home.Home.panel_rows` for the rows and their order.
        """
        claims = self.home.claims(found)
        if claims:
            timeout_s = min(self.timeout_s, PROOF_TIMEOUT_S)
            moved: set[str] = set()
            for claim in await prove_claims(claims, self.identity(), timeout_s=timeout_s):
                if claim.panel.address not in moved:
                    moved.add(claim.panel.address)
                    self.home.move_panel(claim)
        return self.home.panel_rows(found)

    async def usable_rows(self, found: Sequence[KioskFound]) -> UsableRows:
        """:meth:`panel_rows`, split into the rows commands may send to and the unproven
        or disputed adverts (``ignored``), which the face names to the user."""
        rows = await self.panel_rows(found)
        return UsableRows(
            rows=tuple(r for r in rows if r.usable),
            ignored=tuple(r for r in rows if not r.usable),
        )

    # ----------------------------------------------------------------- connections

    async def add(self, address: str) -> AddedPanel:
        """Save the panel at ``address`` (networks where discovery does not work).

        The panel's room, id and certificate are read from it when it answers; when it
        does not, the address alone is saved (its room is learnt at the next contact).

        Raises:
            BadAddressError: ``address`` is not HOST or HOST:PORT.
            PanelIdClaimedError: the machine there claims a saved panel's id with
                another certificate; nothing was saved (it must not take that panel's
                place).
        """
        address = address.strip()
        try:
            split_host_port(address)
        except ValueError:
            raise BadAddressError(address) from None
        try:
            async with await KioskClient.connect(
                address, self.identity(), timeout_s=self.timeout_s
            ) as client:
                welcome, fingerprint = client.welcome, client.fingerprint
        except ClassCastError as exc:
            panel = SavedPanel(address=address)
            self.home.save_panel(panel)
            return AddedPanel(panel, unreachable=exc)
        assert welcome is not None  # connect() returns after the welcome
        pinned = self.home.pinned_fingerprint(welcome.kiosk_id)
        if pinned is not None and pinned != fingerprint:
            raise PanelIdClaimedError(address, welcome.room, welcome.kiosk_id)
        panel = SavedPanel(
            address=address,
            room=welcome.room,
            kiosk_id=welcome.kiosk_id,
            school=welcome.school,
            fingerprint=fingerprint,
        )
        self.home.save_panel(panel)
        return AddedPanel(panel)

    async def pair(self, address: str, secret: str, role: Role = "teacher") -> Welcome:
        """Pair with the panel at ``address`` using ``secret`` (the PIN it shows, or its
        admin secret for ``role="admin"``); save the panel and the token it issued.

        Returns:
            The panel's welcome (its room, for the message to show).

        Raises:
            ClassCastError: the panel could not be reached or refused (a wrong PIN, a
                lock-out…); nothing was saved. Word it with
                :func:`controller.problems.pairing_error_text`, then
                :func:`controller.texts.error_text`.
        """
        async with await KioskClient.connect(
            address, self.identity(), timeout_s=self.timeout_s
        ) as client:
            creds = await client.pair(secret, role=role)
            welcome = client.welcome
        assert welcome is not None  # connect() returns after the welcome
        self.home.save_panel(
            SavedPanel(
                address=address,
                room=welcome.room,
                kiosk_id=welcome.kiosk_id,
                school=welcome.school,
                fingerprint=creds.fingerprint,
            )
        )
        self.home.save_credentials(welcome.kiosk_id, creds)
        return welcome

    async def group(self, targets: Sequence[str], prefer: Role = "teacher") -> Group:
        """Connect to ``targets`` with this controller's pairings (the ``prefer`` role's
        token where a panel has both); unreachable panels land in ``group.failed``.
        Close the group when done.
        """
        return await Group.connect(
            targets,
            self.identity(),
            credentials=lambda a: self.home.credentials_for_address(a, prefer),
            timeout_s=self.timeout_s,
        )
