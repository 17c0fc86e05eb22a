"""The teacher's app's one door into the controller: panels, pairing, connections, texts.

Everything the web app asks of the controller goes through :class:`Backend`, a thin
layer over :class:`~controller.panels.Panels` (the API under the ``classcast`` command
too) and :class:`~controller.client.KioskClient`, so that the page says what the
command says: the messages are :func:`controller.texts.error_text` and the CLI's own
msgids. Every method is a coroutine or cheap, never touches click, and raises
:class:`AppError` with a message for the teacher, or a
:class:`~protocol.errors.ClassCastError` the caller turns into text with
:func:`error_text`.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.client import ControllerIdentity, Credentials, KioskClient
from controller.discovery import ZeroconfDiscovery
from controller.group import Group
from controller.home import Home, PanelRow
from controller.i18n import t
from controller.panels import BadAddressError, DiscoverySettingError, PanelIdClaimedError, Panels
from controller.problems import pairing_error_text
from controller.texts import added_text
from controller.texts import error_text as controller_error_text
from protocol import limits
from protocol.discovery import KioskFound
from protocol.errors import ClassCastError, ConnectionFailedError
from protocol.messages import Role
from protocol.pairing import PIN_DIGITS
from protocol.text import clean_name

__all__ = ["AppError", "Backend", "error_text"]


class AppError(Exception):
    """A request the app cannot carry out; ``str(exc)`` is the message for the teacher."""


def error_text(exc: BaseException, panel: str = "") -> str:
    """A ClassCast error as the teacher reads it: the CLI's own words."""
    if isinstance(exc, TimeoutError):
        return t("The panel did not answer in time.")
    return controller_error_text(exc, panel)


class Backend:
    """The controller as the web app uses it.

    Args:
        home: the controller's files (identity, saved panels, pairings).
        teacher: the teacher's name as panels log it (``--teacher``), or ``None``.
        timeout_s: how long to wait for a panel's answer (``--timeout``).
    """

    def __init__(self, home: Home, teacher: str | None, timeout_s: float) -> None:
        self.home = home
        self.teacher = teacher
        self.timeout_s = timeout_s
        self.panels = Panels(home, teacher=teacher, timeout_s=timeout_s)

    # ----------------------------------------------------------------- discovery

    def discovery(self) -> ZeroconfDiscovery | None:
        """An mDNS browser on the interfaces ``CLASSCAST_MDNS_INTERFACES`` names, or
        ``None`` when that setting is invalid (the app then lists saved panels only)."""
        try:
            return self.panels.discovery()
        except DiscoverySettingError:
            return None

    async def panel_rows(self, found: Sequence[KioskFound]) -> list[PanelRow]:
        """Saved panels and those ``found`` by mDNS, after following proven moves
        (as ``classcast panels``: an advert moves a saved panel only once it proved it)."""
        return await self.panels.panel_rows(found)

    # ----------------------------------------------------------------- who we are

    def identity(self) -> ControllerIdentity:
        return self.panels.identity()

    def credentials(self, address: str, prefer: Role = "teacher") -> Credentials | None:
        return self.home.credentials_for_address(address, prefer)

    def is_admin(self) -> bool:
        """Whether this computer is paired as admin with at least one saved panel."""
        for panel in self.home.panels():
            creds = self.home.credentials(panel.kiosk_id, "admin")
            if creds is not None and creds.role == "admin":
                return True
        return False

    # ----------------------------------------------------------------- panels

    async def add_panel(self, address: str) -> str:
        """Save a panel by address, as ``classcast panels add``; returns the message to show.

        Raises:
            AppError: the address is malformed, or a machine there claims a known
                panel's id with another certificate (nothing saved).
        """
        try:
            added = await self.panels.add(address)
        except (BadAddressError, PanelIdClaimedError) as exc:
            raise AppError(error_text(exc)) from None
        return added_text(added)

    def teacher_name(self) -> str | None:
        """The teacher's name: ``--teacher``, else the one saved; None when none was given
        (the pairing form then asks for it)."""
        return self.teacher or self.home.teacher_name()

    async def pair(
        self, address: str, secret: str, *, admin: bool = False, teacher: str | None = None
    ) -> str:
        """Pair with the panel at ``address``, as ``classcast pair``; returns the message.

        ``teacher`` is the name typed in the form; it is saved. Without it, a name must
        already be known (:meth:`teacher_name`): the login name is never taken for it.

        Raises:
            AppError: no teacher's name, the PIN is not 6 digits, or the panel refused
                (the CLI's words).
        """
        if teacher is not None:
            cleaned = " ".join(clean_name(teacher).split())[: limits.MAX_STRING_CHARS]
            if cleaned:
                self.teacher = self.panels.teacher = cleaned
                self.home.identity(cleaned)
        if self.teacher_name() is None:
            raise AppError(
                t(
                    "Type your full name, as on the school's list of teachers: panels log "
                    "your lessons under it."
                )
            )
        role: Role = "admin" if admin else "teacher"
        secret = secret.strip()
        if not admin and not (secret.isdigit() and len(secret) == PIN_DIGITS):
            raise AppError(t("The PIN has 6 digits."))
        if admin and not secret:
            raise AppError(t("Type the panel's admin secret (from its kiosk.toml)."))
        try:
            welcome = await self.panels.pair(address, secret, role)
        except ClassCastError as exc:
            text = pairing_error_text(exc, address, role) or error_text(exc, address)
            raise AppError(text) from None
        except TimeoutError as exc:
            raise AppError(error_text(exc, address)) from None
        return t("Paired with {room} as {role}.", room=welcome.room, role=t(role))

    # ----------------------------------------------------------------- connections

    async def connect(self, address: str) -> KioskClient:
        """A connection to a paired panel, with its saved credentials.

        Raises:
            ConnectionFailedError, CertificateChangedError: as :meth:`KioskClient.connect`.
        """
        return await KioskClient.connect(
            address,
            self.identity(),
            credentials=self.credentials(address),
            timeout_s=self.timeout_s,
        )

    @staticmethod
    def group(
        clients: dict[str, KioskClient | None], errors: dict[str, str] | None = None
    ) -> Group:
        """A :class:`Group` over connections already open (``None``: not connected).

        Do not close it: the connections belong to their watchers.
        """
        errors = errors or {}
        open_clients = {a: c for a, c in clients.items() if c is not None}
        failed: dict[str, ClassCastError] = {
            a: ConnectionFailedError(errors.get(a) or t("The panel is offline."))
            for a, c in clients.items()
            if c is None
        }
        return Group(open_clients, failed)

    async def fresh_group(self, targets: list[str], prefer: Role = "teacher") -> Group:
        """A :class:`Group` of new connections (close it after use)."""
        return await self.panels.group(targets, prefer)
