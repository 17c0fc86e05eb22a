"""Kiosk settings: defaults, ``/etc/classcast/kiosk.toml`` and command-line overrides."""

from __future__ import annotations

import json
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kiosk.access import MIN_ADMIN_SECRET_CHARS
from kiosk.effects import VideoOutput, WindowMode
from kiosk.webguard import parse_host_pattern
from media.store import USAGE_LOG_FLOOR_BYTES
from protocol.constants import DEFAULT_PORT
from protocol.discovery import MDNS_INTERFACES_ENV, mdns_interfaces
from protocol.errors import ClassCastError
from protocol.text import school_id_problem

DEFAULT_CONFIG_PATH = Path("/etc/classcast/kiosk.toml")
DEFAULT_QUOTA_BYTES = 20 * 1024**3
"""Media cache size unless configured (20 GiB)."""

HEARTBEAT_INTERVAL_S = 2.0
"""How often the usage log records that the kiosk is alive, by default. After a power
loss or a crash an open display interval is closed at its last heartbeat, so this bounds
the screen time the log loses (a restarted kiosk shows the item again in a new interval);
each heartbeat costs one small write with fsync, off the network loop."""

_TOML_LINE: Final = re.compile(r"\(at line (\d+)")
"""Where tomllib's error message says the mistake is."""

VIDEO_OUTPUTS: tuple[VideoOutput, ...] = ("auto", "embedded", "frames")


class ConfigError(ClassCastError):
    """The kiosk configuration file is unreadable or has a wrong value (the admin's input).

    The English ``message`` is for the journal; ``classcast-kiosk`` words ``reason`` in
    the admin's language from the fields: ``path`` (the file; None for the environment),
    ``key`` (the setting) and ``values``. Reasons: ``unreadable``, ``bad_toml``
    (``values["line"]`` when known), ``unknown_key`` (``known``), ``wrong_type``
    (``type``: ``str``, ``int``, ``float``, ``bool`` or ``list``), ``video_output``
    (``choices``), ``mdns_interfaces``, ``web_allow`` (``entry``), ``negative``,
    ``short_secret`` (``min_chars``), ``timezone`` (``zone``), ``school_id`` (``value``)
    and ``mdns_env`` (``value``).
    """

    code = "config"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        path: Path | None = None,
        key: str | None = None,
        values: dict[str, str | int] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.path = path
        self.key = key
        self.values: dict[str, str | int] = dict(values or {})


@dataclass(frozen=True, slots=True)
class KioskConfig:
    """Everything a kiosk needs to start."""

    room: str = "Кабинет"
    school: str = "Школа"
    """The school's name, as people read it (the idle screen, ``welcome``)."""
    school_id: str = ""
    """The school's stable id (:func:`protocol.text.school_id_problem`), stamped on every
    usage record so that a district keeps its schools apart; ``""`` when not set."""
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    state_dir: Path = Path(".")
    mode: WindowMode = "fullscreen"
    lang: str = "ru"
    video_output: VideoOutput = "auto"
    """``embedded``: VLC's own output inside the window (X11); ``frames``: decoded into a
    texture (any window); ``auto``: embedded when the window is on X11."""
    quota_bytes: int = DEFAULT_QUOTA_BYTES
    usage_floor_bytes: int = USAGE_LOG_FLOOR_BYTES
    """Free disk space in the state directory that media never takes: kept for the usage log."""
    heartbeat_s: float = HEARTBEAT_INTERVAL_S
    admin_secret: str | None = None
    presenter_grace_s: float = 120.0
    mdns: bool = True
    mdns_interfaces: tuple[str, ...] | None = None
    """IPv4 addresses to advertise on; None = every interface (see CLASSCAST_MDNS_INTERFACES)."""
    web_allow: tuple[str, ...] = ()
    """Hosts web items may reach (``host`` or ``*.domain``, normalised); empty = every host.
    The panel's own addresses are refused regardless (docs/security.md, “Web items”)."""
    timezone: str | None = None
    """IANA timezone of what the panel shows (its idle-screen clock); None = the system's."""

    def zone(self) -> tzinfo:
        """The timezone the panel shows times in: :attr:`timezone`, else the system's.

        Raises:
            ConfigError: :attr:`timezone` is not a known IANA timezone.
        """
        if self.timezone is None:
            system = datetime.now().astimezone().tzinfo
            assert system is not None
            return system
        return _zone(self.timezone, None)

    def with_overrides(self, **values: Any) -> KioskConfig:
        """Return a copy with every non-None value of ``values`` set."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


_KEYS: dict[str, type] = {
    "room": str,
    "school": str,
    "school_id": str,
    "host": str,
    "port": int,
    "state_dir": str,
    "lang": str,
    "video_output": str,
    "quota_mb": int,
    "usage_floor_mb": int,
    "heartbeat_s": float,
    "admin_secret": str,
    "presenter_grace_s": float,
    "mdns": bool,
    "mdns_interfaces": str,
    "web_allow": list,
    "timezone": str,
}


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` under systemd, else the user's data directory."""
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    import platformdirs  # here: a panel under systemd never needs it

    return Path(platformdirs.user_data_dir("classcast-kiosk"))


def load_config(path: Path | None, *, state_dir: Path | None = None) -> KioskConfig:
    """Read a kiosk.toml (``path``, or the default path if it exists).

    ``state_dir``: the state folder given on the command line, if any (the default one
    is then not looked up); the file's ``state_dir`` still comes first, so apply the
    command line's settings afterwards (:meth:`KioskConfig.with_overrides`).

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has an unknown key or a
            value of the wrong type.
    """
    config = KioskConfig(
        state_dir=state_dir or default_state_dir(), mdns_interfaces=env_mdns_interfaces()
    )
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return config
        path = DEFAULT_CONFIG_PATH
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        cause = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(f"cannot read {path}: {cause}", reason="unreadable", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        line = _TOML_LINE.search(str(exc))
        raise ConfigError(
            f"{path} is not valid TOML: {exc}",
            reason="bad_toml",
            path=path,
            values={"line": int(line.group(1))} if line else {},
        ) from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        expected = _KEYS.get(key)
        if expected is None:
            known = ", ".join(_KEYS)
            raise ConfigError(
                f"{path}: unknown setting {key!r} (known: {known})",
                reason="unknown_key",
                path=path,
                key=key,
                values={"known": known},
            )
        if isinstance(value, int) and expected is float:
            value = float(value)
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise ConfigError(
                f"{path}: {key} must be a {expected.__name__}",
                reason="wrong_type",
                path=path,
                key=key,
                values={"type": expected.__name__},
            )
        values[key] = value
    if "web_allow" in values:
        values["web_allow"] = _web_allow(path, values["web_allow"])
    if values.get("video_output", "auto") not in VIDEO_OUTPUTS:
        choices = ", ".join(VIDEO_OUTPUTS)
        raise ConfigError(
            f"{path}: video_output must be one of {choices}",
            reason="video_output",
            path=path,
            key="video_output",
            values={"choices": choices},
        )
    if "state_dir" in values:
        values["state_dir"] = Path(values["state_dir"])
    if "mdns_interfaces" in values:
        try:
            found = mdns_interfaces(values["mdns_interfaces"])
        except ValueError as exc:
            raise ConfigError(
                f"{path}: {exc}", reason="mdns_interfaces", path=path, key="mdns_interfaces"
            ) from None
        values["mdns_interfaces"] = tuple(found) if found is not None else None
    if "quota_mb" in values:
        values["quota_bytes"] = values.pop("quota_mb") * 1024 * 1024
    if "usage_floor_mb" in values:
        if values["usage_floor_mb"] < 0:
            raise ConfigError(
                f"{path}: usage_floor_mb must not be negative",
                reason="negative",
                path=path,
                key="usage_floor_mb",
            )
        values["usage_floor_bytes"] = values.pop("usage_floor_mb") * 1024 * 1024
    if "timezone" in values:
        _zone(values["timezone"], path)
    if "school_id" in values and (problem := school_id_problem(values["school_id"])):
        raise ConfigError(
            f"{path}: school_id: {problem}",
            reason="school_id",
            path=path,
            key="school_id",
            values={"value": values["school_id"]},
        )
    secret = values.get("admin_secret")
    if secret is not None and len(secret) < MIN_ADMIN_SECRET_CHARS:
        raise ConfigError(
            f"{path}: admin_secret must have at least {MIN_ADMIN_SECRET_CHARS} characters",
            reason="short_secret",
            path=path,
            key="admin_secret",
            values={"min_chars": MIN_ADMIN_SECRET_CHARS},
        )
    return config.with_overrides(**values)


def _zone(name: str, path: Path | None) -> ZoneInfo:
    """The IANA timezone ``name`` of the setting ``timezone``.

    Raises:
        ConfigError: no such timezone (reason ``timezone``).
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{path}: timezone {name!r} is not an IANA timezone such as Europe/Moscow",
            reason="timezone",
            path=path,
            key="timezone",
            values={"zone": name},
        ) from None


def _web_allow(path: Path, entries: list[Any]) -> tuple[str, ...]:
    """``web_allow``'s entries, checked and normalised.

    Raises:
        ConfigError: an entry is not a string, or not a ``host`` / ``*.domain`` pattern.
    """
    patterns = []
    for entry in entries:
        if not isinstance(entry, str):
            raise ConfigError(
                f"{path}: web_allow must be a list of host names",
                reason="web_allow",
                path=path,
                key="web_allow",
                values={"entry": repr(entry)},
            )
        try:
            patterns.append(parse_host_pattern(entry))
        except ValueError as exc:
            raise ConfigError(
                f"{path}: web_allow: {exc}",
                reason="web_allow",
                path=path,
                key="web_allow",
                values={"entry": entry},
            ) from None
    return tuple(patterns)


def env_mdns_interfaces() -> tuple[str, ...] | None:
    """``CLASSCAST_MDNS_INTERFACES`` from the environment.

    Raises:
        ConfigError: the variable is set to something other than IPv4 addresses.
    """
    try:
        found = mdns_interfaces(os.environ.get(MDNS_INTERFACES_ENV))
    except ValueError as exc:
        raise ConfigError(
            str(exc), reason="mdns_env", values={"value": os.environ.get(MDNS_INTERFACES_ENV, "")}
        ) from None
    return tuple(found) if found is not None else None


def kiosk_id(state_dir: Path) -> str:
    """Return this kiosk's permanent id, creating it on first start."""
    path = state_dir / "kiosk.json"
    try:
        data = json.loads(path.read_text())
        value = data["kiosk_id"]
        if isinstance(value, str) and value:
            return value
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = "k-" + secrets.token_hex(6)
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"kiosk_id": value}))
    tmp.replace(path)
    return value
