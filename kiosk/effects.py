"""What the service asks of the screen: display effects, and the :class:`Display` port.

The player's effects (:mod:`kiosk.player`) plus the service's own (PIN, announcements).
A module of its own, light to import: the window (:mod:`kiosk.window`) and the
headless display depend on these types, not on the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from kiosk.player import Preload, SetBlank, Show, ShowIdle, VideoCommand
from protocol.messages import AnnouncementLevel

__all__ = [
    "Display",
    "DisplayEffect",
    "HideAnnouncement",
    "PinChanged",
    "ShowAnnouncement",
    "VideoOutput",
]

VideoOutput = Literal["auto", "embedded", "frames"]
"""How videos reach the screen: ``embedded`` (VLC's own output in a child window on
X11), ``frames`` (decoded into a texture, any window), ``auto`` (embedded on X11)."""


@dataclass(frozen=True, slots=True)
class PinChanged:
    """The pairing PIN changed: the idle screen must show the new one."""

    pin: str


@dataclass(frozen=True, slots=True)
class ShowAnnouncement:
    """Show an announcement over the screen (``alert`` covers all of it)."""

    text: str
    level: AnnouncementLevel
    duration_s: int | None


@dataclass(frozen=True, slots=True)
class HideAnnouncement:
    """Remove the announcement."""


DisplayEffect = (
    Show
    | Preload
    | ShowIdle
    | SetBlank
    | VideoCommand
    | PinChanged
    | ShowAnnouncement
    | HideAnnouncement
)


class Display(Protocol):
    """Where display effects go: the pyglet window or the headless display."""

    def apply(self, effect: DisplayEffect) -> None:
        """Carry out one effect; must not block (hand off to the render thread)."""

    def screenshot_png(self, max_width: int) -> bytes | None:
        """A PNG of what is on screen, at most ``max_width`` wide; None without a screen.

        May wait briefly for the render thread (it reads the colour buffer there).
        """
