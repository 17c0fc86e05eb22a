"""The controller's own files under ``CLASSCAST_HOME``: identity, saved panels, last targets.

``CLASSCAST_HOME`` defaults to the user's data directory (platformdirs). Every file is
small JSON, written to a temporary file and renamed, so an interrupted write never
leaves a broken file.

**Saved addresses move only on proof.** Anyone on the network can advertise a saved
panel's kiosk id (and its public certificate fingerprint) at another address. So an
mDNS advert never changes ``panels.json`` by itself: :meth:`Home.claims` lists the
adverts that put a saved panel somewhere else, :func:`prove_claims` opens a TLS
connection to each and keeps those that show the certificate pinned for that panel
(at pairing, or when it was saved over TLS) and greet with its kiosk id, and only
:meth:`Home.move_panel` on such a proven claim changes the address. Until then the
saved address stays, and :meth:`Home.panel_rows` shows the advert as unverified and
conflicting. Names read from ``panels.json`` or saved into it are cleaned
(:func:`protocol.text.clean_name`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import platformdirs

from controller.client import ControllerIdentity, Credentials, KioskClient, split_host_port
from media.weblink import DEFAULT_LIBRARY_HOSTS, library_hosts
from protocol.discovery import KioskFound
from protocol.errors import ClassCastError
from protocol.messages import Role
from protocol.text import clean_name

SETTINGS_FILE: Final = "settings.json"
"""The controller's settings an admin changes from the command line (``library_hosts``)."""

PROOF_TIMEOUT_S: Final = 3.0
"""Longest wait for the TLS connection and greeting that prove a saved panel's new address."""


class PanelNotFoundError(ClassCastError):
    """A PANEL argument matches no saved panel and is not an address (the user's input).

    ``name`` is the argument as given.
    """

    code = "panel_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True, slots=True)
class PanelCandidate:
    """One of the panels an ambiguous PANEL argument matches."""

    room: str | None
    kiosk_id: str | None
    address: str


class AmbiguousPanelError(ClassCastError):
    """A PANEL argument matches more than one panel (the user's input): several saved
    panels, or several found by mDNS, have that room name.

    ``candidates`` lists them; ask the user for a kiosk id or an address instead. The
    ``str()`` is ``«name»: room (kiosk id, address), ...``.
    """

    code = "ambiguous_panel"

    def __init__(self, name: str, candidates: Sequence[PanelCandidate]) -> None:
        listed = ", ".join(f"{c.room} ({c.kiosk_id}, {c.address})" for c in candidates)
        super().__init__(f"«{name}»: {listed}")
        self.name = name
        self.candidates = tuple(candidates)


@dataclass(frozen=True, slots=True)
class SavedPanel:
    """A panel in the address book.

    ``fingerprint`` is the certificate the panel showed when it was saved over TLS
    (``panels add``, ``pair``): with the one pinned at pairing, it is what a new
    address must prove (module docstring). ``None`` when the panel did not answer.
    """

    address: str
    room: str | None = None
    kiosk_id: str | None = None
    school: str | None = None
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        for name in ("room", "kiosk_id", "school"):
            value = getattr(self, name)
            if value is not None and clean_name(value) != value:
                object.__setattr__(self, name, clean_name(value))


@dataclass(frozen=True, slots=True)
class AddressClaim:
    """An mDNS advert that puts a saved panel's kiosk id at another address.

    Believe it only once :func:`prove_claims` has kept it; ``fingerprint`` is the
    certificate pinned for ``panel``.
    """

    panel: SavedPanel
    advert: KioskFound
    fingerprint: str


@dataclass(frozen=True, slots=True)
class PanelRow:
    """One line of ``classcast panels``: a panel found by mDNS, saved, or both.

    ``verified`` is True for an address from the address book (typed by the user, or
    proven over TLS), False for an advert that claims a saved panel's kiosk id but did
    not prove it, and None for an advert of a panel not in the address book (nothing
    to check it against). ``conflict`` marks an advert whose kiosk id another address
    holds (the saved panel's, or other adverts of that id): never a target.
    """

    room: str | None
    school: str | None
    state: str | None
    address: str
    kiosk_id: str | None
    fingerprint: str | None
    paired: bool
    source: str
    """``mdns``, ``saved`` or ``mdns+saved``."""
    verified: bool | None
    conflict: bool

    def as_json(self) -> dict[str, Any]:
        """The row as ``classcast panels --json`` prints it (docs/cli.md)."""
        return asdict(self)

    @property
    def usable(self) -> bool:
        """Whether commands may send to this address (not an unproven or disputed advert)."""
        return self.verified is not False and not self.conflict


def home_dir() -> Path:
    """``$CLASSCAST_HOME``, or the user's data directory."""
    env = os.environ.get("CLASSCAST_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("classcast"))


class Home:
    """Reads and writes the controller's files in ``root``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else home_dir()

    def converted_dir(self) -> Path:
        """Where office documents made into PDFs are cached (see :mod:`media.office`)."""
        return self.root / "converted"

    # ----------------------------------------------------------------- identity

    def identity(self, name: str | None = None) -> ControllerIdentity:
        """This controller's id (created once) and the teacher's name.

        ``name`` (from ``--teacher``, or typed at pairing) replaces the saved name and is
        saved. Without either, the name is empty: the computer's login name is never
        taken as the teacher's (see :meth:`teacher_name`; pairing asks for the name).
        """
        data = self._read("identity.json")
        controller_id = data.get("controller_id")
        if not isinstance(controller_id, str) or not controller_id:
            controller_id = "c-" + secrets.token_hex(8)
        if name is None:
            name = self.teacher_name() or ""
        wanted: dict[str, Any] = {"controller_id": controller_id, "name": name}
        if name:
            wanted["name_given"] = True
        if data != wanted:
            self._write("identity.json", wanted)
        return ControllerIdentity(controller_id, name)

    def teacher_name(self) -> str | None:
        """The teacher's name saved on this computer, or None when none was given.

        A name saved by an older version without ``name_given`` is kept unless it is the
        computer's login name (which that version saved when no name was given).
        """
        data = self._read("identity.json")
        saved = data.get("name")
        if not isinstance(saved, str) or not saved.strip():
            return None
        if data.get("name_given") is True or saved != _login_name():
            return saved
        return None

    # ----------------------------------------------------------------- panels

    def panels(self) -> list[SavedPanel]:
        items = self._read("panels.json").get("panels", [])
        result = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("address"), str):
                result.append(
                    SavedPanel(
                        address=item["address"],
                        room=_str_or_none(item.get("room")),
                        kiosk_id=_str_or_none(item.get("kiosk_id")),
                        school=_str_or_none(item.get("school")),
                        fingerprint=_str_or_none(item.get("fingerprint")),
                    )
                )
        return result

    def pinned_fingerprint(self, kiosk_id: str | None) -> str | None:
        """The certificate the panel ``kiosk_id`` must show: the one pinned at pairing, else
        the one seen when it was saved; ``None`` when neither is known (then nothing can
        prove that an address is that panel)."""
        if kiosk_id is None:
            return None
        paired = self.credentials(kiosk_id)
        if paired is not None:
            return paired.fingerprint
        return next(
            (p.fingerprint for p in self.panels() if p.kiosk_id == kiosk_id and p.fingerprint),
            None,
        )

    def claims(self, found: Sequence[KioskFound]) -> list[AddressClaim]:
        """The adverts in ``found`` that put a saved panel's kiosk id at another address.

        Only saved panels with a known certificate can have claims (the others can
        never be proven): pass the result to :func:`prove_claims`, then
        :meth:`move_panel` each claim it keeps.
        """
        result = []
        for panel in self.panels():
            if panel.kiosk_id is None:
                continue
            pinned = self.pinned_fingerprint(panel.kiosk_id)
            if pinned is None:
                continue
            for advert in found:
                if advert.kiosk_id == panel.kiosk_id and advert.address != panel.address:
                    result.append(AddressClaim(panel, advert, pinned))
        return result

    def unclaimed(self, found: Sequence[KioskFound]) -> list[KioskFound]:
        """``found`` without the adverts that put a saved panel's kiosk id elsewhere.

        What a command may connect to when it looks a panel up by mDNS: a saved panel
        is reached at its saved address, never through another advert of its id.
        """
        saved = {p.kiosk_id: p.address for p in self.panels() if p.kiosk_id is not None}
        return [k for k in found if saved.get(k.kiosk_id, k.address) == k.address]

    def move_panel(self, claim: AddressClaim) -> SavedPanel:
        """Save the panel of a **proven** ``claim`` at the advert's address; return it.

        Call it only with claims :func:`prove_claims` kept.
        """
        moved = dataclasses.replace(
            claim.panel, address=claim.advert.address, fingerprint=claim.fingerprint
        )
        self.save_panel(moved)
        return moved

    def panel_rows(self, found: Sequence[KioskFound]) -> list[PanelRow]:
        """Panels found by mDNS and saved ones, sorted by room (``classcast panels``).

        An advert at a saved panel's address with its kiosk id is merged into that
        panel's row. An advert that puts a saved panel's kiosk id elsewhere gets a row of
        its own, ``verified=False`` and ``conflict=True`` (call :meth:`claims`,
        :func:`prove_claims` and :meth:`move_panel` first, so that a proven move is
        already saved); several adverts of one unsaved kiosk id are all ``conflict``.
        """
        paired = self.paired_ids()
        saved = self.panels()
        saved_by_id = {p.kiosk_id: p for p in saved if p.kiosk_id is not None}
        adverts_per_id: dict[str, int] = {}
        for k in found:
            adverts_per_id[k.kiosk_id] = adverts_per_id.get(k.kiosk_id, 0) + 1
        rows: list[PanelRow] = []
        merged: dict[str, KioskFound] = {}
        for k in found:
            panel = saved_by_id.get(k.kiosk_id)
            if panel is not None and panel.address == k.address:
                merged[panel.address] = k
                continue
            claimed = panel is not None
            rows.append(
                PanelRow(
                    room=k.room,
                    school=k.school,
                    state=k.state,
                    address=k.address,
                    kiosk_id=k.kiosk_id,
                    fingerprint=k.fingerprint,
                    paired=not claimed and k.kiosk_id in paired,
                    source="mdns",
                    verified=False if claimed else None,
                    conflict=claimed or adverts_per_id[k.kiosk_id] > 1,
                )
            )
        for p in saved:
            advert = merged.get(p.address)
            rows.append(
                PanelRow(
                    room=p.room,
                    school=p.school,
                    state=advert.state if advert is not None else None,
                    address=p.address,
                    kiosk_id=p.kiosk_id,
                    fingerprint=advert.fingerprint if advert is not None else p.fingerprint,
                    paired=p.kiosk_id in paired if p.kiosk_id else False,
                    source="mdns+saved" if advert is not None else "saved",
                    verified=True,
                    conflict=False,
                )
            )
        return sorted(rows, key=lambda r: ((r.room or "").casefold(), r.address))

    def save_panel(self, panel: SavedPanel) -> None:
        """Add ``panel``, replacing a saved one with the same address or kiosk id."""
        kept = [
            p
            for p in self.panels()
            if p.address != panel.address
            and (panel.kiosk_id is None or p.kiosk_id != panel.kiosk_id)
        ]
        kept.append(panel)
        self._write("panels.json", {"panels": [asdict(p) for p in kept]})

    def remove_panel(self, panel: SavedPanel) -> None:
        kept = [p for p in self.panels() if p != panel]
        self._write("panels.json", {"panels": [asdict(p) for p in kept]})

    def resolve(self, name: str) -> str:
        """Turn a PANEL argument (room, kiosk id or HOST[:PORT]) into an address.

        Raises:
            AmbiguousPanelError: several saved panels have that room name.
            PanelNotFoundError: nothing matches and ``name`` is not an address.
        """
        matches = [p for p in self.panels() if name in (p.kiosk_id, p.address)]
        if not matches:
            folded = name.casefold()
            matches = [p for p in self.panels() if p.room and p.room.casefold() == folded]
        if len(matches) == 1:
            return matches[0].address
        if len(matches) > 1:
            candidates = [PanelCandidate(p.room, p.kiosk_id, p.address) for p in matches]
            raise AmbiguousPanelError(name, candidates)
        if _looks_like_address(name):
            return name
        raise PanelNotFoundError(name)

    # ----------------------------------------------------------------- pairings

    def save_credentials(self, kiosk_id: str, creds: Credentials) -> None:
        """Keep what pairing with ``kiosk_id`` gave (one token per role)."""
        data = self._read("pairings.json")
        entry = data.get(kiosk_id) if isinstance(data.get(kiosk_id), dict) else {}
        assert isinstance(entry, dict)
        entry["fingerprint"] = creds.fingerprint
        tokens = entry.get("tokens") if isinstance(entry.get("tokens"), dict) else {}
        assert isinstance(tokens, dict)
        tokens[creds.role] = creds.token
        entry["tokens"] = tokens
        data[kiosk_id] = entry
        self._write("pairings.json", data, private=True)

    def credentials(self, kiosk_id: str | None, prefer: Role = "teacher") -> Credentials | None:
        """Saved credentials for ``kiosk_id``: the ``prefer`` role's if any, else the other's."""
        if kiosk_id is None:
            return None
        entry = self._read("pairings.json").get(kiosk_id)
        if not isinstance(entry, dict) or not isinstance(entry.get("tokens"), dict):
            return None
        fingerprint = entry.get("fingerprint")
        if not isinstance(fingerprint, str):
            return None
        tokens = entry["tokens"]
        other: Role = "admin" if prefer == "teacher" else "teacher"
        for role in (prefer, other):
            token = tokens.get(role)
            if isinstance(token, str):
                return Credentials(token=token, fingerprint=fingerprint, role=role)
        return None

    def credentials_for_address(self, address: str, prefer: Role = "teacher") -> Credentials | None:
        """Credentials of the saved panel at ``address``, if paired."""
        for panel in self.panels():
            if panel.address == address:
                return self.credentials(panel.kiosk_id, prefer)
        return None

    def forget_credentials(self, kiosk_id: str) -> None:
        data = self._read("pairings.json")
        if data.pop(kiosk_id, None) is not None:
            self._write("pairings.json", data, private=True)

    def paired_ids(self) -> set[str]:
        return set(self._read("pairings.json"))

    # ----------------------------------------------------------------- last targets

    def last_targets(self) -> list[str]:
        targets = self._read("last.json").get("targets", [])
        return [t for t in targets if isinstance(t, str)] if isinstance(targets, list) else []

    def set_last_targets(self, targets: list[str]) -> None:
        self._write("last.json", {"targets": targets})

    # ----------------------------------------------------------------- settings

    def library_hosts(self) -> tuple[str, ...]:
        """The recognised content-library hosts (``settings.json``'s ``library_hosts``;
        :data:`media.weblink.DEFAULT_LIBRARY_HOSTS` until set). Pass them to
        :func:`media.lesson.load_sources`: a web item from one of them (or a host under
        one) is marked as library content.

        A damaged setting (hand-edited into something that is not a list of host names)
        reads as the defaults, so that casting never stops on it; ``classcast
        library-hosts`` shows which hosts are in force.
        """
        saved = self._read(SETTINGS_FILE).get("library_hosts")
        if not isinstance(saved, list) or not all(isinstance(h, str) for h in saved):
            return DEFAULT_LIBRARY_HOSTS
        try:
            return library_hosts(saved)
        except ValueError:
            return DEFAULT_LIBRARY_HOSTS

    def set_library_hosts(self, hosts: Sequence[str] | None) -> tuple[str, ...]:
        """Save the library-hosts setting (``None``: back to the defaults); returns the
        hosts now in force.

        Raises:
            ValueError: an entry is not a host name, or there are too many
                (:func:`media.weblink.library_hosts`); nothing is saved.
        """
        data = self._read(SETTINGS_FILE)
        if hosts is None:
            data.pop("library_hosts", None)
        else:
            data["library_hosts"] = list(library_hosts(hosts))
        self._write(SETTINGS_FILE, data)
        return self.library_hosts()

    # ----------------------------------------------------------------- files

    def _read(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads((self.root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, name: str, data: dict[str, Any], *, private: bool = False) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / name
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, ensure_ascii=False, indent=2))
        tmp.replace(path)


async def prove_claims(
    claims: Sequence[AddressClaim],
    identity: ControllerIdentity,
    *,
    timeout_s: float = PROOF_TIMEOUT_S,
) -> list[AddressClaim]:
    """The claims whose address proves to be the saved panel, checked all at once.

    A claim is proven when a TLS connection to the advert's address shows the pinned
    certificate (the handshake proves the peer holds its private key, which the public
    fingerprint in the advert does not) and the kiosk there greets with the saved
    kiosk id. Nothing is sent to an address whose certificate differs (see
    :meth:`KioskClient.connect`). Give the result to :meth:`Home.move_panel`; the
    other claims are impostors or stale adverts, and the saved address stays.

    Args:
        claims: from :meth:`Home.claims`.
        identity: this controller (sent in ``hello`` to a proven kiosk only).
        timeout_s: per claim; a claim that does not answer in time is not proven.
    """

    async def proven(claim: AddressClaim) -> bool:
        try:
            async with asyncio.timeout(2 * timeout_s):  # connect, then hello: each timed
                async with await KioskClient.connect(
                    claim.advert.address,
                    identity,
                    fingerprint=claim.fingerprint,
                    timeout_s=timeout_s,
                ) as client:
                    welcome = client.welcome
                    return welcome is not None and welcome.kiosk_id == claim.panel.kiosk_id
        except (ClassCastError, TimeoutError):  # another certificate, refused, silent
            return False

    results = await asyncio.gather(*(proven(c) for c in claims))
    return [c for c, ok in zip(claims, results, strict=True) if ok]


def _looks_like_address(name: str) -> bool:
    if " " in name or not name:
        return False
    try:
        split_host_port(name)
    except ValueError:
        return False
    return ":" in name or "." in name or name == "localhost"


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _login_name() -> str | None:
    """The computer's login name: only to recognise one an older version saved."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None
