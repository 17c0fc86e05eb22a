"""What a teacher or admin reads about an error, in both faces: the command line and the
web app.

:func:`error_text` turns any ClassCast error into a message in the output language
(:mod:`controller.i18n`: Russian by default) that says what to do next. It matches on
exception classes (:data:`protocol.errors.REMOTE_ERRORS` gives each code a kiosk sends
its own class), never on ``exc.code``. A face prints the text as it is; names in it
came from other machines, so the command line cleans it before printing
(:func:`protocol.text.clean_lines`) and the web app escapes it.
"""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING, Final

from controller.home import AmbiguousPanelError, PanelNotFoundError
from controller.i18n import N_, size_text, t
from controller.panels import (
    AddedPanel,
    BadAddressError,
    DiscoverySettingError,
    DiscoveryUnavailableError,
    NoPanelGivenError,
    NoSavedPanelsError,
    PanelIdClaimedError,
)
from controller.problems import busy_text, connection_error_text, media_error_text, named_t
from protocol import limits
from protocol.discovery import MDNS_INTERFACES_ENV
from protocol.errors import (
    BadIndexError,
    BadInstantError,
    BadPinError,
    BusyError,
    ClassCastError,
    ClockOffsetError,
    ConnectionFailedError,
    DiskFullError,
    FileTooLargeError,
    ForbiddenError,
    LockedError,
    MediaError,
    NoLessonError,
    NoScreenError,
    NoShareError,
    NoSpaceError,
    NotEnabledError,
    NotStartedError,
    PairingsDamagedError,
    PictureTooLargeError,
    QuotaExceededError,
    RefusedError,
    RemoteChecksumError,
    RemoteError,
    RemoteInternalError,
    RemoteMalformedError,
    RemoteMediaError,
    RemoteQuotaExceededError,
    RemoteTooLargeError,
    RemoteUnexpectedError,
    RemoteUsageLogError,
    TryLaterError,
    UnauthorizedError,
    UnsupportedVersionError,
)
from protocol.messages import StatusSnapshot
from protocol.pairing import (
    PairingError,
    PairingLockedError,
    PairingRefusedError,
    PairingThrottledError,
)

if TYPE_CHECKING:
    from media.lesson import SkippedFile


def skipped_file_text(skipped: SkippedFile, name: str | None = None) -> str:
    """The warning about a file of a lesson folder that was left out, and why.

    Show one for each of ``Lesson.skipped``; the rest of the lesson is cast.

    Args:
        skipped: the file and its problem.
        name: how to name the file (default: its path as given).
    """
    problem = skipped.problem
    if name is not None and hasattr(problem, "path"):
        problem = copy.copy(problem)
        problem.path = name
    return t("Not in the lesson: {problem}", problem=error_text(problem))


def error_text(exc: BaseException, panel: str = "") -> str:
    """A ClassCast error as a teacher should read it, in the output language.

    Args:
        exc: the error (one a command raised, or one panel's ``Outcome.error``).
        panel: the panel's room or address, for texts that name a command to run.

    Returns:
        The message to show; an error with no text of its own is shown as ``str(exc)``.
    """
    name = panel or "PANEL"
    if isinstance(exc, FileTooLargeError | PictureTooLargeError):
        return _too_large_text(exc)
    if isinstance(exc, MediaError) and (media_text := media_error_text(exc)) is not None:
        return media_text
    match exc:
        case FileTooLargeError() | PictureTooLargeError():
            return _too_large_text(exc)
        case PanelNotFoundError():
            return t(
                "Panel not found: {name}. Saved panels are listed by `classcast panels`.",
                name=exc.name,
            )
        case AmbiguousPanelError():
            return t(
                "Panel name is ambiguous: {detail}. Use the kiosk id or the address.",
                detail=str(exc),
            )
        case BadAddressError():
            return t(
                "{address} is not an address: write HOST or HOST:PORT, such as 192.168.1.40:47810.",
                address=exc.address,
            )
        case PanelIdClaimedError():
            return t(
                "{address} says it is panel {room} ({kiosk_id}), but its certificate is not "
                "the one this computer knows for that panel; nothing was saved. If the panel "
                "was reinstalled, remove it with `classcast panels remove` and pair again.",
                address=exc.address,
                room=exc.room,
                kiosk_id=exc.kiosk_id,
            )
        case NoSavedPanelsError():
            return t("No saved panels: add one with `classcast panels add HOST[:PORT]`.")
        case NoPanelGivenError():
            return t("No panel given: use --to PANEL or --all, or cast first.")
        case DiscoveryUnavailableError():
            return t(
                "Panels cannot be searched for on this network: only saved panels are listed. "
                "Add the others with `classcast panels add HOST[:PORT]`."
            )
        case DiscoverySettingError():
            return t(
                "CLASSCAST_MDNS_INTERFACES must hold IPv4 addresses separated by commas, "
                "such as 127.0.0.1 (now: {value}). Fix it and try again.",
                value=os.environ.get(MDNS_INTERFACES_ENV, ""),
            )
        case UnauthorizedError():
            return t(
                "This computer is not paired with the panel: run `classcast pair {panel}`.",
                panel=name,
            )
        case ForbiddenError():
            return t(
                "This needs the admin role: pair with `classcast pair {panel} --admin`.",
                panel=name,
            )
        case BusyError():
            return busy_text(exc, panel)
        case LockedError() | PairingLockedError():
            return t(
                "Too many wrong PINs from this computer: wait a minute, check the PIN shown "
                "on the panel and try again."
            )
        case TryLaterError() | PairingThrottledError():
            return t("The panel is busy with other pairing attempts: try again in a few seconds.")
        case RefusedError() | PairingRefusedError():
            return t(
                "The pairing was not allowed on the panel. Pair again with the PIN the panel "
                "shows now, and tap «Allow» on the panel when it asks."
            )
        case BadPinError() | PairingError():
            return t("Wrong PIN. Check the PIN shown on the panel and try again.")
        case ConnectionFailedError():  # CertificateChangedError too
            return connection_error_text(exc, panel)
        case ClockOffsetError():
            return t(
                "The panel did not accept this computer's clock difference. Cast again; if it "
                "happens again, set the clock of this computer or of the panel to the right "
                "time."
            )
        case NoSpaceError() | DiskFullError():
            return t(
                "The panel's disk is nearly full: the rest is kept for its usage log. Ask the "
                "administrator to free disk space on the panel, or send a smaller lesson."
            )
        case RemoteQuotaExceededError() | QuotaExceededError():
            return t(
                "The panel's media cache has no room for this lesson now: other lessons are "
                "being sent to it, or the lesson on screen takes the rest. Wait and try again, "
                "or send a smaller lesson."
            )
        case _:
            return _remote_text(exc, panel)


REFUSALS: Final[dict[type[RemoteError], str]] = {
    NotEnabledError: N_(
        "Admin pairing is not enabled on panel {panel}: set admin_secret in its kiosk.toml "
        "(see docs/admin.md), restart the panel and try again."
    ),
    NoLessonError: N_("Nothing is shown on panel {panel} now: cast a lesson first."),
    NotStartedError: N_(
        "The lesson on panel {panel} has not started yet: wait for it to start and try again."
    ),
    BadInstantError: N_(
        "Panel {panel} refused the common instant: its clock is far from this computer's. "
        "Try again; if it happens again, set the clocks of the panel and of this computer "
        "(NTP)."
    ),
    BadIndexError: N_(
        "The lesson on panel {panel} has no item with that number. Items count from 1; "
        "`classcast status` shows how many there are."
    ),
    UnsupportedVersionError: N_(
        "Panel {panel} runs another version of ClassCast. Update ClassCast on this "
        "computer and on the panel to the same version."
    ),
    RemoteMalformedError: N_(
        "Panel {panel} runs another version of ClassCast. Update ClassCast on this "
        "computer and on the panel to the same version."
    ),
    RemoteUnexpectedError: N_(
        "Panel {panel} did not expect this request now: try again; if it happens again, "
        "install the same version of ClassCast on this computer and on the panel."
    ),
    NoScreenError: N_("Panel {panel} runs without a screen, so there is no picture to take."),
    NoShareError: N_(
        "Panel {panel} is not showing your screen any more (it was stopped on the panel). "
        "Start sharing again to show it."
    ),
    RemoteUsageLogError: N_(
        "The usage log of panel {panel} cannot be read or written. Tell the administrator: "
        "the panel's journal says why."
    ),
    RemoteChecksumError: N_(
        "Media arrived damaged on panel {panel}. Cast again; if it happens again, check the "
        "network."
    ),
    RemoteTooLargeError: N_(
        "Panel {panel} refused a file as too large. Make the file smaller and cast again."
    ),
    RemoteMediaError: N_(
        "Panel {panel} could not store the lesson's media: try again; if it happens "
        "again, ask the administrator to check the panel's journal."
    ),
    PairingsDamagedError: N_(
        "The list of pairings of panel {panel} is damaged: ask the administrator to check "
        "the panel's journal."
    ),
    RemoteInternalError: N_(
        "Panel {panel} failed to carry out the request: try again; if it happens again, "
        "ask the administrator to check the panel's journal."
    ),
}
"""What each refusal of a kiosk that needs no more than the panel's name says."""


def late_text(panel: str, late_ms: int) -> str:
    """What to tell the user when ``panel`` got a common instant ``late_ms`` too late
    (it switched at once, after the other panels)."""
    return t(
        "{panel}: the command came {late} ms after the common instant, so this panel "
        "switched late. If it happens often, check its network.",
        panel=panel,
        late=late_ms,
    )


def added_text(added: AddedPanel) -> str:
    """What ``panels add`` says about a panel it saved (:meth:`Panels.add`)."""
    panel = added.panel
    if added.unreachable is not None:
        return t(
            "Saved {address}; the panel did not answer: {message}",
            address=panel.address,
            message=error_text(added.unreachable, panel.address),
        )
    return t(
        "Saved {room} ({address}, id {kiosk_id}).",
        room=panel.room,
        address=panel.address,
        kiosk_id=panel.kiosk_id,
    )


def _remote_text(exc: BaseException, panel: str) -> str:
    """The text of a kiosk's refusal that :func:`error_text` does not handle itself;
    never the error's English message (that is for the journal)."""
    for cls in type(exc).__mro__:
        if (msgid := REFUSALS.get(cls)) is not None:
            return named_t(msgid, panel=panel)
    if isinstance(exc, TimeoutError):
        return connection_error_text(ConnectionFailedError(str(exc), reason="timeout"), panel)
    code = exc.code if isinstance(exc, ClassCastError) else "internal"
    return named_t(
        "Panel {panel} could not do this ({code}). Try again; if it keeps happening, tell "
        "the administrator (the panel's journal says why).",
        panel=panel,
        code=code,
    )


def _too_large_text(exc: FileTooLargeError | PictureTooLargeError) -> str:
    """What to do about a lesson file refused for its size (found before reading it)."""
    if isinstance(exc, PictureTooLargeError):
        megapixels = limits.MAX_PICTURE_PIXELS // 1_000_000
        if exc.width is None or exc.height is None:
            return t(
                "{path}: the picture has more than {megapixels} megapixels, more than a panel "
                "shows. Make it smaller in an image editor and cast again.",
                path=exc.path,
                megapixels=megapixels,
            )
        return t(
            "{path}: the picture is {width}×{height} pixels, more than a panel shows (at most "
            "{megapixels} megapixels). Make it smaller in an image editor and cast again.",
            path=exc.path,
            width=exc.width,
            height=exc.height,
            megapixels=megapixels,
        )
    size, limit = size_text(exc.size_bytes), size_text(exc.limit_bytes)
    if size == limit:  # rounded alike: say how many bytes each is
        unit = size_text(0).split()[1]
        size, limit = f"{exc.size_bytes} {unit}", f"{exc.limit_bytes} {unit}"
    if exc.what == "text":
        return t(
            "{path}: the text file is {size}, but a text slide holds at most {limit} "
            "({chars} characters). Split the text into several files or shorten it.",
            path=exc.path,
            size=size,
            limit=limit,
            chars=limits.MAX_TEXT_ITEM_CHARS,
        )
    if exc.what == "lesson.toml":
        return t(
            "{path}: the lesson.toml is {size}, over the limit of {limit}. Check that it is "
            "the right file: a lesson.toml only lists the lesson's items.",
            path=exc.path,
            size=size,
            limit=limit,
        )
    return t(
        "{path}: the file is {size}, over the limit of {limit} per file. Make it smaller "
        "(compress the video, split the document) or leave it out of the lesson.",
        path=exc.path,
        size=size,
        limit=limit,
    )


def item_failure_text(status: StatusSnapshot) -> str | None:
    """Why the panel could not show its current item (a web page), or None if it could.

    One line for the command line's ``status`` and the web app's cast view; what to do
    is on the panel's card too.
    """
    failure = status.item_failure
    if failure is None:
        return None
    why = {
        "no_network": t(
            "the panel cannot find the site: it has no internet connection, or the address is wrong"
        ),
        "unreachable": t("the site does not answer"),
        "timeout": t("the site took too long to answer"),
        "http_error": t(
            "the site answered with error {status}: there is no such page, or it is closed",
            status=status.item_failure_status or 0,
        ),
        "panel": t("the address is the panel's own"),
        "not_allowed": t(
            "the site is not in the panel's list of allowed sites: ask the school's "
            "administrator to add it"
        ),
    }[failure]
    return t("The page could not be opened: {why}.", why=why)
