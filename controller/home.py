"""The controller's own files under ``CLASSCAST_HOME``: identity, saved panels, last targets.

``CLASSCAST_HOME`` defaults to the user's data directory (platformdirs). Every file is
small JSON, written to a temporary file and renamed, so an interrupted write never
leaves a broken file.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import platformdirs

from controller.client import ControllerIdentity, Credentials, split_host_port
from protocol.errors import ClassCastError
from protocol.messages import Role


class PanelNotFoundError(ClassCastError):
    """A PANEL argument matches no saved panel and is not an address (the user's input)."""

    code = "panel_not_found"


class AmbiguousPanelError(ClassCastError):
    """A PANEL argument matches more than one saved panel (the user's input)."""

    code = "ambiguous_panel"


@dataclass(frozen=True, slots=True)
class SavedPanel:
    """A panel in the address book."""

    address: str
    room: str | None = None
    kiosk_id: str | None = None
    school: str | None = None


def home_dir() -> Path:
    """``$CLASSCAST_HOME``, or the user's data directory."""
    env = os.environ.get("CLASSCAST_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("classcast"))


class Home:
    """Reads and writes the controller's files in ``root``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else home_dir()

    # ----------------------------------------------------------------- identity

    def identity(self, name: str | None = None) -> ControllerIdentity:
        """This controller's id (created once) and the teacher's name.

        ``name`` (from ``--teacher``) replaces the saved name; without any, the login
        name is used.
        """
        data = self._read("identity.json")
        controller_id = data.get("controller_id")
        if not isinstance(controller_id, str) or not controller_id:
            controller_id = "c-" + secrets.token_hex(8)
        saved = data.get("name")
        if name is None:
            name = saved if isinstance(saved, str) and saved else _login_name()
        if data != {"controller_id": controller_id, "name": name}:
            self._write("identity.json", {"controller_id": controller_id, "name": name})
        return ControllerIdentity(controller_id, name)

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
                    )
                )
        return result

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
            found = ", ".join(f"{p.room} ({p.kiosk_id}, {p.address})" for p in matches)
            raise AmbiguousPanelError(f"«{name}»: {found}")
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


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "teacher"
