"""The headless display: carries display effects out without a window.

Used by ``classcast-kiosk --headless``, the demo and tests. It keeps what a window
would show (the current item, blank flag, idle screen, who paired, the question to
allow a pairing, in the panel's language) and writes one journal line per change, so a
panel without a screen still tells what it would display.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kiosk.effects import (
    ControllerPaired,
    DisplayEffect,
    HideAnnouncement,
    PairingQuestionClosed,
    PairingRequested,
    PinChanged,
    ShowAnnouncement,
    paired_notice_text,
    pairing_question_text,
)
from kiosk.player import Preload, SetBlank, Show, ShowIdle, VideoCommand
from protocol.messages import ManifestItem

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class HeadlessDisplay:
    """A :class:`~kiosk.service.Display` that records instead of drawing."""

    current: ManifestItem | None = None
    index: int | None = None
    blanked: bool = False
    preloaded: list[int] = field(default_factory=list)
    shown: list[tuple[int, str]] = field(default_factory=list)
    video_commands: list[VideoCommand] = field(default_factory=list)
    pin: str | None = None
    announcement: ShowAnnouncement | None = None
    lang: str = "ru"
    """The panel's language, for the texts below."""
    notice: str | None = None
    """The last "who paired" notice (a window shows it for ``PAIRED_NOTICE_S``)."""
    question: str | None = None
    """The question to allow a pairing, while it is asked."""

    def screenshot_png(self, max_width: int) -> bytes | None:
        """No screen: nothing to capture."""
        return None

    def apply(self, effect: DisplayEffect) -> None:
        match effect:
            case Show() if effect.at_s is not None:  # shown by the plain Show at the instant
                self.preloaded.append(effect.index)
            case Show():
                self.current, self.index = effect.item, effect.index
                self.shown.append((effect.index, effect.item.title))
                logger.info(
                    "showing %d/%d %s %r",
                    effect.index + 1,
                    len(effect.lesson.items),
                    effect.item.kind,
                    effect.item.title,
                )
            case Preload():
                self.preloaded.append(effect.index)
            case ShowIdle():
                self.current, self.index = None, None
                logger.info("showing the idle screen")
            case SetBlank():
                self.blanked = effect.on
                logger.info("screen %s", "blanked" if effect.on else "unblanked")
            case VideoCommand():
                self.video_commands.append(effect)
                logger.info("video %s %d ms", effect.action, effect.position_ms)
            case PinChanged():
                self.pin = effect.pin
            case ShowAnnouncement():
                self.announcement = effect
                logger.info("announcement (%s): %s", effect.level, effect.text)
            case HideAnnouncement():
                self.announcement = None
            case ControllerPaired():
                self.notice = paired_notice_text(effect, self.lang)
                logger.info("notice: %s", self.notice)
            case PairingRequested():
                self.question = pairing_question_text(effect, self.lang)
                logger.warning("asking on the panel: %s", self.question.replace("\n", " "))
            case PairingQuestionClosed():
                self.question = None
