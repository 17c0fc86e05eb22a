"""What the service asks of the screen: display effects, and the :class:`Display` port.

The player's effects (:mod:`kiosk.player`) plus the service's own (PIN, announcements,
who paired, the question to allow a pairing). A module of its own, light to import:
the window (:mod:`kiosk.window`) and the headless display depend on these types, not
on the service. The texts both displays show for the pairing effects are made here,
in the panel's language, from the kiosk's catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

from kiosk.i18n import tr
from kiosk.player import Preload, SetBlank, Show, ShowIdle, VideoCommand
from protocol.messages import AnnouncementLevel, Role
from protocol.text import clean_name

__all__ = [
    "PAIRED_NOTICE_S",
    "ControllerPaired",
    "Display",
    "DisplayEffect",
    "HideAnnouncement",
    "PairingQuestionClosed",
    "PairingRequested",
    "PinChanged",
    "ShowAnnouncement",
    "VideoOutput",
    "WindowMode",
    "paired_notice_text",
    "pairing_question_text",
    "screen_name",
]

PAIRED_NOTICE_S: Final = 15.0
"""How long the panel shows who just paired with it."""

NAME_CHARS_ON_SCREEN: Final = 80
"""A controller's name is cut to this many characters on the panel (it may have 1 000)."""

VideoOutput = Literal["auto", "embedded", "frames"]
"""How videos reach the screen: ``embedded`` (VLC's own output in a child window on
X11), ``frames`` (decoded into a texture, any window), ``auto`` (embedded on X11)."""

WindowMode = Literal["fullscreen", "windowed", "headless"]
"""How the panel's window is made: over the whole screen, a window of its own, or
``headless`` (offscreen, for servers and tests: screenshots only)."""


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


@dataclass(frozen=True, slots=True)
class ControllerPaired:
    """A controller paired: show who, for :data:`PAIRED_NOTICE_S`, so that a teacher
    sees a student who paired from the back row."""

    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class PairingRequested:
    """Pairing is under attack and a right PIN (or admin secret) arrived: ask the
    panel's user whether ``name`` may control the panel, for ``timeout_s``.

    The display passes the answer to :meth:`KioskService.panel_answer_pairing`
    (through the wiring); :class:`PairingQuestionClosed` follows either way.
    """

    name: str
    role: Role
    timeout_s: float


@dataclass(frozen=True, slots=True)
class PairingQuestionClosed:
    """The question of :class:`PairingRequested` was answered or timed out: remove it."""


DisplayEffect = (
    Show
    | Preload
    | ShowIdle
    | SetBlank
    | VideoCommand
    | PinChanged
    | ShowAnnouncement
    | HideAnnouncement
    | ControllerPaired
    | PairingRequested
    | PairingQuestionClosed
)


def screen_name(name: str) -> str:
    """``name`` as the panel shows it: cleaned (:func:`protocol.text.clean_name`), cut to
    :data:`NAME_CHARS_ON_SCREEN`."""
    shown = clean_name(name).strip()
    if len(shown) > NAME_CHARS_ON_SCREEN:
        shown = shown[: NAME_CHARS_ON_SCREEN - 1].rstrip() + "…"
    return shown


def paired_notice_text(effect: ControllerPaired, lang: str) -> str:
    """The notice of :class:`ControllerPaired` in ``lang``."""
    name = screen_name(effect.name)
    if effect.role == "admin":
        return tr(lang, "Connected: «{name}» (admin)", name=name)
    return tr(lang, "Connected: «{name}» (teacher)", name=name)


def pairing_question_text(effect: PairingRequested, lang: str) -> str:
    """The question of :class:`PairingRequested` in ``lang`` (two lines)."""
    name = screen_name(effect.name)
    if effect.role == "admin":
        question = tr(lang, "Allow «{name}» (admin) to control this panel?", name=name)
    else:
        question = tr(lang, "Allow «{name}» (teacher) to control this panel?", name=name)
    why = tr(
        lang,
        "Someone has been guessing this panel's code. Allow only if you are pairing right now.",
    )
    return f"{question}\n{why}"


class Display(Protocol):
    """Where display effects go: the pyglet window or the headless display."""

    def apply(self, effect: DisplayEffect) -> None:
        """Carry out one effect; must not block (hand off to the render thread)."""

    def screenshot_png(self, max_width: int) -> bytes | None:
        """A PNG of what is on screen, at most ``max_width`` wide; None without a screen.

        May wait briefly for the render thread (it reads the colour buffer there).
        """
