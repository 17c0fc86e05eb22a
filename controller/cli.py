"""``classcast``: the teacher's and admin's command line.

A thin click layer over :class:`~controller.client.KioskClient` and
:class:`~controller.group.Group`. Output is Russian by default (``--lang en`` or
``CLASSCAST_LANG=en`` for English); ``--json`` output is stable and documented in
``docs/cli.md``. Exit status: 0 on success, 1 when the command failed (on any panel),
2 on a usage error.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from controller.client import CastResult, Credentials, KioskClient, ProgressCallback
from controller.discovery import ZeroconfDiscovery
from controller.group import Group, Outcome
from controller.home import AmbiguousPanelError, Home, PanelNotFoundError, SavedPanel
from controller.i18n import TranslatedGroup, TranslatedOption, option, size_text, t
from media.lesson import load_lesson
from protocol.discovery import MDNS_INTERFACES_ENV, KioskFound, mdns_interfaces
from protocol.errors import ClassCastError
from protocol.messages import ControlAction, Role, StatusSnapshot, Welcome
from protocol.pairing import PIN_DIGITS

T = TypeVar("T")

CONTEXT = {"help_option_names": ["-h", "--help"]}

DISCOVERY_WAIT_S = 2.0
"""How long a command looks for a panel by mDNS (it stops as soon as the panel answers)."""


class Ctx:
    """Options shared by every command."""

    def __init__(self, teacher: str | None, timeout_s: float) -> None:
        self.home = Home()
        self.teacher = teacher
        self.timeout_s = timeout_s
        self.discovery_wait_s = DISCOVERY_WAIT_S

    def targets(self, to: str | None, all_panels: bool) -> list[str]:
        """Addresses named by ``--to``/``--all``, else those of the last cast."""
        if all_panels:
            panels = self.home.panels()
            if not panels:
                raise click.ClickException(
                    t("No saved panels: add one with `classcast panels add HOST[:PORT]`.")
                )
            return [p.address for p in panels]
        if to:
            return [self.resolve(name.strip()) for name in to.split(",") if name.strip()]
        last = self.home.last_targets()
        if not last:
            raise click.UsageError(t("No panel given: use --to PANEL or --all, or cast first."))
        return last

    def discovery(self) -> ZeroconfDiscovery:
        """An mDNS browser on the interfaces CLASSCAST_MDNS_INTERFACES names (all if unset)."""
        try:
            interfaces = mdns_interfaces(os.environ.get(MDNS_INTERFACES_ENV))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        return ZeroconfDiscovery(interfaces)

    def resolve(self, name: str) -> str:
        """A PANEL argument → an address: saved panels first, then the panels found by mDNS."""
        try:
            return self.home.resolve(name)
        except PanelNotFoundError:
            found = self._discover(name)
            if len(found) == 1:
                return found[0].address
            if len(found) > 1:
                detail = ", ".join(f"{k.room} ({k.kiosk_id}, {k.address})" for k in found)
                raise click.ClickException(
                    t(
                        "Panel name is ambiguous: {detail}. Use the kiosk id or the address.",
                        detail=f"«{name}»: {detail}",
                    )
                ) from None
            raise click.ClickException(
                t(
                    "Panel not found: {name}. Saved panels are listed by `classcast panels`.",
                    name=name,
                )
            ) from None
        except AmbiguousPanelError as exc:
            raise click.ClickException(
                t(
                    "Panel name is ambiguous: {detail}. Use the kiosk id or the address.",
                    detail=str(exc),
                )
            ) from None

    def _discover(self, name: str) -> list[KioskFound]:
        """Panels found by mDNS whose room (case-insensitive) or kiosk id is ``name``."""
        folded = name.casefold()

        def matches(k: KioskFound) -> bool:
            return k.kiosk_id == name or k.room.casefold() == folded

        async def look() -> list[KioskFound]:
            kiosks = await self.discovery().browse(
                self.discovery_wait_s, stop_when=lambda ks: any(matches(k) for k in ks)
            )
            return [k for k in kiosks if matches(k)]

        try:
            return asyncio.run(look())
        except OSError:  # no usable network interface for mDNS
            return []

    async def group(self, targets: list[str], prefer: Role = "teacher") -> Group:
        return await Group.connect(
            targets,
            self.home.identity(self.teacher),
            credentials=lambda a: self.home.credentials_for_address(a, prefer),
            timeout_s=self.timeout_s,
        )


def error_text(exc: BaseException, panel: str = "") -> str:
    """A ClassCast error as a teacher should read it, in the output language."""
    code = getattr(exc, "code", None)
    if code == "unauthorized":
        return t(
            "This computer is not paired with the panel: run `classcast pair {panel}`.",
            panel=panel or "PANEL",
        )
    if code == "forbidden":
        return t(
            "This needs the admin role: pair with `classcast pair {panel} --admin`.",
            panel=panel or "PANEL",
        )
    if code == "busy":
        return t("Another teacher is presenting on this panel: {message}", message=str(exc))
    if code == "bad_pin":
        return t("Wrong PIN. Check the PIN shown on the panel and try again.")
    if code == "locked":
        return t("Too many wrong PINs: pairing is locked for a while. {message}", message=str(exc))
    if code == "certificate_changed":
        return t("The panel's certificate changed since pairing: {message}", message=str(exc))
    return str(exc)


def run(coro: Awaitable[T]) -> T:
    """Run a coroutine, turning ClassCast errors into a one-line message and exit 1."""

    async def wrapper() -> T:
        return await coro

    try:
        return asyncio.run(wrapper())
    except ClassCastError as exc:
        raise click.ClickException(error_text(exc)) from None


def report(outcomes: list[Outcome[T]], on_ok: Callable[[Outcome[T]], str | None]) -> None:
    """Print one line per panel; exit 1 if any failed."""
    failed = 0
    for o in outcomes:
        if o.error is not None:
            failed += 1
            message = error_text(o.error, o.room or o.target)
            click.echo(t("{target}: error: {message}", target=o.label, message=message), err=True)
        else:
            line = on_ok(o)
            if line:
                click.echo(line)
    if failed:
        raise click.ClickException(
            t("{done} of {count} panels failed.", done=failed, count=len(outcomes))
        )


def _set_lang(ctx: click.Context, param: click.Parameter, lang: str | None) -> str | None:
    """``--lang`` takes effect at once, so that a ``--help`` after it is in that language."""
    if lang:
        os.environ["CLASSCAST_LANG"] = lang
    return lang


@click.group(cls=TranslatedGroup, context_settings=CONTEXT)
@option("--teacher", envvar="CLASSCAST_TEACHER", help="Your name as panels log it.")
@option(
    "--lang",
    type=click.Choice(["ru", "en"]),
    is_eager=True,
    callback=_set_lang,
    help="Language of the output.",
)
@option(
    "--timeout",
    "timeout_s",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for a panel's answer.",
)
@click.version_option(
    package_name="classcast", cls=TranslatedOption, help="Show the version and exit."
)
@click.pass_context
def cli(ctx: click.Context, teacher: str | None, lang: str | None, timeout_s: float) -> None:
    """Cast lessons to classroom panels and control them.

    Example:

        classcast panels add 192.168.1.40
        classcast cast ./урок --to "Каб. 12"
        classcast next
    """
    ctx.obj = Ctx(teacher, timeout_s)


def _targets_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = option("--all", "all_panels", is_flag=True, help="Every saved panel.")(fn)
    return option(
        "--to",
        metavar="PANEL[,PANEL...]",
        help="Room name, kiosk id or HOST:PORT (default: the panels of the last cast).",
    )(fn)


# --------------------------------------------------------------------------- cast


@cli.command()
@click.argument("lesson", nargs=-1, required=True, type=click.Path(path_type=Path))
@_targets_options
@option(
    "--start",
    "start",
    type=int,
    default=1,
    show_default=True,
    help="Item number to start at (1 = first).",
)
@click.pass_obj
def cast(obj: Ctx, lesson: tuple[Path, ...], to: str | None, all_panels: bool, start: int) -> None:
    """Show a lesson on panels: a folder, a lesson.toml, or files.

    Only media the panel does not have yet is sent. With several panels the lesson
    starts on all of them at the same moment.

    Example:

        classcast cast ./фотосинтез --to "Каб. 12"
        classcast cast slides.pdf video.mp4 --to 192.168.1.40:47810
    """
    if start < 1:
        raise click.BadParameter(t("Item numbers start at 1."), param_hint="--start")
    try:
        loaded = load_lesson(lesson[0] if len(lesson) == 1 else list(lesson))
    except ClassCastError as exc:
        raise click.ClickException(str(exc)) from None
    targets = obj.targets(to, all_panels)

    async def go() -> list[Outcome[CastResult]]:
        group = await obj.group(targets)
        try:
            with _progress(loaded.total_bytes) as make_progress:
                return await group.cast(loaded, start_index=start - 1, progress=make_progress)
        finally:
            await group.close()

    outcomes = run(go())
    obj.home.set_last_targets([o.target for o in outcomes if o.ok] or targets)

    def line(o: Outcome[CastResult]) -> str | None:
        result = o.value
        if result is None:
            return None
        percent = round(100 * result.bytes_sent / result.bytes_total) if result.bytes_total else 0
        return t(
            "Lesson «{title}»: {items} items, {size}; sent {sent} ({percent} %) to {room}.",
            title=loaded.title,
            items=len(loaded.items),
            size=size_text(loaded.total_bytes),
            sent=size_text(result.bytes_sent),
            percent=percent,
            room=o.label,
        )

    report(outcomes, line)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[str], ProgressCallback | None]]:
    """A progress bar on a terminal; nothing when output is not a terminal."""
    if not sys.stderr.isatty() or total == 0:
        yield lambda target: None
        return
    with click.progressbar(
        length=total, label=t("Sending media"), file=sys.stderr, show_pos=False, show_percent=True
    ) as bar:
        sent: dict[str, int] = {}

        def make(target: str) -> ProgressCallback:
            def update(done: int, _total: int) -> None:
                step = done - sent.get(target, 0)
                sent[target] = done
                if step > 0:
                    bar.update(step)

            return update

        yield make


# --------------------------------------------------------------------------- control


def _control_command(action: ControlAction, help_text: str) -> None:
    @_targets_options
    @click.pass_obj
    def command(obj: Ctx, to: str | None, all_panels: bool) -> None:
        _control(obj, obj.targets(to, all_panels), action)

    command.__doc__ = help_text
    cli.command(name=action)(command)


def _control(
    obj: Ctx,
    targets: list[str],
    action: ControlAction,
    *,
    index: int | None = None,
    position_ms: int | None = None,
) -> None:
    async def go() -> list[Outcome[None]]:
        group = await obj.group(targets)
        try:
            return await group.control(action, index=index, position_ms=position_ms)
        finally:
            await group.close()

    report(run(go()), lambda o: t("{room}: {action}", room=o.label, action=t(action)))


for _action, _help in (
    ("next", 'Go to the next item.\n\nExample:\n\n    classcast next --to "Каб. 12"'),
    ("prev", "Go back to the previous item.\n\nExample:\n\n    classcast prev"),
    (
        "pause",
        "Pause (a video stops; a timed slide stops counting).\n\nExample:\n\n    classcast pause",
    ),
    ("play", "Continue after pause.\n\nExample:\n\n    classcast play"),
    (
        "blank",
        "Black out the screen; the lesson stays loaded.\n\nExample:\n\n    classcast blank --all",
    ),
    ("unblank", "Show the lesson again after blank.\n\nExample:\n\n    classcast unblank --all"),
    ("stop", "End the lesson; the panel shows its idle screen.\n\nExample:\n\n    classcast stop"),
):
    _control_command(_action, _help)  # type: ignore[arg-type]


@cli.command()
@click.argument("number", type=int)
@_targets_options
@click.pass_obj
def goto(obj: Ctx, number: int, to: str | None, all_panels: bool) -> None:
    """Jump to item NUMBER (1 = first).

    Example:

        classcast goto 3
    """
    if number < 1:
        raise click.BadParameter(t("Item numbers start at 1."), param_hint="NUMBER")
    _control(obj, obj.targets(to, all_panels), "goto", index=number - 1)


@cli.command()
@click.argument("time_text", metavar="TIME")
@_targets_options
@click.pass_obj
def seek(obj: Ctx, time_text: str, to: str | None, all_panels: bool) -> None:
    """Move within the current item (a video) to TIME: SECONDS, MM:SS or HH:MM:SS.

    Example:

        classcast seek 1:20
    """
    _control(obj, obj.targets(to, all_panels), "seek", position_ms=parse_time_ms(time_text))


def parse_time_ms(text: str) -> int:
    """``80``, ``1:20``, ``0:01:20`` or ``80.5`` → milliseconds."""
    parts = text.strip().split(":")
    try:
        if len(parts) > 3 or any(p.strip() == "" for p in parts):
            raise ValueError(text)
        seconds = 0.0
        for part in parts[:-1]:
            seconds = seconds * 60 + int(part)
        seconds = seconds * 60 + float(parts[-1]) if len(parts) > 1 else float(parts[-1])
        if seconds < 0 or (len(parts) > 1 and float(parts[-1]) >= 60):
            raise ValueError(text)
    except ValueError:
        raise click.BadParameter(
            t("Bad time {value!r}: use SECONDS, MM:SS or HH:MM:SS.", value=text), param_hint="TIME"
        ) from None
    return round(seconds * 1000)


# --------------------------------------------------------------------------- status


@cli.command()
@click.argument("panel", required=False)
@option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/cli.md).")
@click.pass_obj
def status(obj: Ctx, panel: str | None, as_json: bool) -> None:
    """Show what panels display: PANEL, or every saved panel.

    Example:

        classcast status "Каб. 12"
        classcast status --json
    """
    targets = [obj.resolve(panel)] if panel else [p.address for p in obj.home.panels()]
    if not targets:
        raise click.ClickException(
            t("No saved panels: add one with `classcast panels add HOST[:PORT]`.")
        )

    async def go() -> list[Outcome[StatusSnapshot]]:
        group = await obj.group(targets)
        try:
            return await group.status()
        finally:
            await group.close()

    outcomes = run(go())
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "address": o.target,
                        "online": o.ok,
                        "status": asdict(o.value) if o.value is not None else None,
                        "error": str(o.error) if o.error is not None else None,
                    }
                    for o in outcomes
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        if any(not o.ok for o in outcomes):
            sys.exit(1)
        return
    report(outcomes, lambda o: _status_text(o.target, o.value) if o.value else None)


def _status_text(address: str, s: StatusSnapshot) -> str:
    lines = [
        f"{t('Room')}: {s.room}   {t('School')}: {s.school}",
        f"  {t('Address')}: {address}   {t('Kiosk id')}: {s.kiosk_id}",
        f"  {t('State')}: {t(s.state)}" + (f"   ({t('Blanked')})" if s.blanked else ""),
    ]
    if s.lesson_title is not None:
        lines.append(f"  {t('Lesson')}: {s.lesson_title}")
        lines.append(
            f"  {t('Item')}: {s.index + 1}/{s.count} {t(s.item_kind or '')} «{s.item_title}»"
        )
        lines.append(f"  {t('Presenter')}: {s.presenter}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- panels


@cli.group(invoke_without_command=True)
@option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@option(
    "--wait",
    "wait_s",
    type=float,
    default=1.5,
    show_default=True,
    help="Seconds to look for panels on the network (mDNS).",
)
@click.pass_context
def panels(ctx: click.Context, as_json: bool, wait_s: float) -> None:
    """List the panels on the network (mDNS) and the saved ones; add or remove saved ones.

    Shows room, school, state, address, and whether this computer is paired with it.
    Where mDNS does not work, add a panel by the address shown on its screen.

    Example:

        classcast panels
        classcast panels --json --wait 3
        classcast panels add 192.168.1.40
    """
    if ctx.invoked_subcommand is not None:
        return
    obj: Ctx = ctx.obj

    async def look() -> list[KioskFound]:
        return await obj.discovery().browse(wait_s)

    try:
        found = asyncio.run(look()) if wait_s > 0 else []
    except OSError as exc:
        click.echo(t("Discovery is not available here: {message}", message=exc), err=True)
        found = []
    rows = merge_panels(obj.home, found)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo(t("No panels found: add one with `classcast panels add HOST[:PORT]`."))
        return
    header = (t("Room"), t("School"), t("State"), t("Address"), t("Paired"))
    table = [
        (
            r["room"] or "?",
            r["school"] or "",
            t(r["state"]) if r["state"] else t("not seen"),
            r["address"],
            t("yes") if r["paired"] else t("no"),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def merge_panels(home: Home, found: list[KioskFound]) -> list[dict[str, Any]]:
    """Panels found by mDNS and saved ones, one row per kiosk (the ``--json`` format).

    A saved panel seen at a new address (DHCP) is saved with that address.
    """
    paired = home.paired_ids()
    rows: dict[str, dict[str, Any]] = {}
    for k in found:
        rows[k.kiosk_id] = {
            "room": k.room,
            "school": k.school,
            "state": k.state,
            "address": k.address,
            "kiosk_id": k.kiosk_id,
            "fingerprint": k.fingerprint,
            "paired": k.kiosk_id in paired,
            "source": "mdns",
        }
    for p in home.panels():
        row = rows.get(p.kiosk_id or "")
        if row is not None:
            row["source"] = "mdns+saved"
            if p.address != row["address"]:
                home.save_panel(SavedPanel(row["address"], p.room, p.kiosk_id, p.school))
            continue
        rows[p.kiosk_id or p.address] = {
            "room": p.room,
            "school": p.school,
            "state": None,
            "address": p.address,
            "kiosk_id": p.kiosk_id,
            "fingerprint": None,
            "paired": p.kiosk_id in paired if p.kiosk_id else False,
            "source": "saved",
        }
    return sorted(rows.values(), key=lambda r: ((r["room"] or "").casefold(), r["address"]))


@panels.command("add")
@click.argument("address", metavar="HOST[:PORT]")
@click.pass_obj
def panels_add(obj: Ctx, address: str) -> None:
    """Save a panel by address (for networks where discovery does not work).

    The panel's room and id are read from it when it answers.

    Example:

        classcast panels add 192.168.1.40:47810
    """
    from controller.client import split_host_port

    try:
        split_host_port(address)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="HOST[:PORT]") from None

    async def probe() -> Welcome | None:
        async with await KioskClient.connect(
            address, obj.home.identity(obj.teacher), timeout_s=obj.timeout_s
        ) as client:
            return client.welcome

    try:
        welcome = asyncio.run(probe())
    except ClassCastError as exc:
        obj.home.save_panel(SavedPanel(address=address))
        click.echo(
            t("Saved {address}; the panel did not answer: {message}", address=address, message=exc)
        )
        return
    assert welcome is not None
    obj.home.save_panel(
        SavedPanel(
            address=address, room=welcome.room, kiosk_id=welcome.kiosk_id, school=welcome.school
        )
    )
    click.echo(
        t(
            "Saved {room} ({address}, id {kiosk_id}).",
            room=welcome.room,
            address=address,
            kiosk_id=welcome.kiosk_id,
        )
    )


@cli.command()
@click.argument("panel")
@option("--pin", help="The 6-digit PIN shown on the panel (asked for when omitted).")
@option(
    "--admin", is_flag=True, help="Pair as admin with the panel's admin secret instead of the PIN."
)
@click.pass_obj
def pair(obj: Ctx, panel: str, pin: str | None, admin: bool) -> None:
    """Pair this computer with a panel, using the PIN the panel shows.

    Nobody can control a panel without pairing. The PIN never travels over the
    network, and the panel's certificate is pinned so that later connections go to
    the same panel.

    Example:

        classcast pair "Каб. 12"
        classcast pair 192.168.1.40 --pin 123456
    """
    address = obj.resolve(panel)
    role: Role = "admin" if admin else "teacher"
    if pin is None:
        if admin:
            pin = click.prompt(t("Admin secret of the panel"), hide_input=True)
        else:
            pin = click.prompt(t("PIN shown on the panel"))
    secret = pin.strip()
    if not admin and not (secret.isdigit() and len(secret) == PIN_DIGITS):
        raise click.BadParameter(t("The PIN has 6 digits."), param_hint="--pin")
    identity = obj.home.identity(obj.teacher)

    async def go() -> tuple[Welcome, Credentials]:
        async with await KioskClient.connect(address, identity, timeout_s=obj.timeout_s) as client:
            creds = await client.pair(secret, role=role)
            assert client.welcome is not None
            return client.welcome, creds

    welcome, creds = run(go())
    obj.home.save_panel(
        SavedPanel(
            address=address, room=welcome.room, kiosk_id=welcome.kiosk_id, school=welcome.school
        )
    )
    obj.home.save_credentials(welcome.kiosk_id, creds)
    click.echo(t("Paired with {room} as {role}.", room=welcome.room, role=t(role)))


@cli.command()
@click.argument("panel")
@click.pass_obj
def unpair(obj: Ctx, panel: str) -> None:
    """Forget a pairing here and revoke its token on the panel.

    Example:

        classcast unpair "Каб. 12"
    """
    address = obj.resolve(panel)
    saved = next((p for p in obj.home.panels() if p.address == address), None)
    kiosk_id = saved.kiosk_id if saved else None
    identity = obj.home.identity(obj.teacher)

    async def go() -> None:
        for role in ("teacher", "admin"):
            creds = obj.home.credentials(kiosk_id, role)
            if creds is None or creds.role != role:
                continue
            async with await KioskClient.connect(
                address, identity, credentials=creds, timeout_s=obj.timeout_s
            ) as client:
                if client.role is not None:
                    await client.unpair()

    try:
        asyncio.run(go())
    except ClassCastError as exc:
        click.echo(
            t(
                "The panel did not answer ({message}); the pairing is forgotten here only.",
                message=error_text(exc),
            ),
            err=True,
        )
    if kiosk_id is not None:
        obj.home.forget_credentials(kiosk_id)
    click.echo(t("Unpaired from {panel}.", panel=saved.room if saved and saved.room else address))


@panels.command("remove")
@click.argument("panel")
@click.pass_obj
def panels_remove(obj: Ctx, panel: str) -> None:
    """Forget a saved panel (room name, kiosk id or address).

    Example:

        classcast panels remove "Каб. 12"
    """
    address = obj.resolve(panel)
    for p in obj.home.panels():
        if p.address == address:
            obj.home.remove_panel(p)
            click.echo(t("Removed {address}.", address=address))
            return
    raise click.ClickException(
        t("Panel not found: {name}. Saved panels are listed by `classcast panels`.", name=panel)
    )


# --------------------------------------------------------------------------- demo


@cli.command()
@option(
    "--keep",
    type=click.Path(path_type=Path),
    help="Keep the kiosk's state in this folder (default: a temporary one).",
)
def demo(keep: Path | None) -> None:
    """Start a kiosk on this machine, cast the sample lesson, step through it, print the log.

    Everything stays on 127.0.0.1; nothing is installed or sent elsewhere.

    Example:

        classcast demo
    """
    from controller.demo import run_demo

    run(run_demo(keep))


def main() -> None:
    """Entry point of the ``classcast`` console script."""
    cli(prog_name="classcast")
