"""``classcast``: the teacher's and admin's command line.

A thin click layer over :class:`~controller.panels.Panels` (which panel a name means,
where a command goes, the rows of ``classcast panels``),
:class:`~controller.client.KioskClient` and :class:`~controller.group.Group`; what it
says about an error comes from :func:`controller.texts.error_text`, as in the web app.
Output is Russian by default (``--lang en`` or ``CLASSCAST_LANG=en`` for English);
``--json`` output is stable and documented in ``docs/cli.md``. Exit status: 0 on
success, 1 when the command failed (on any panel), 2 on a usage error.

Names in the output come from other machines (mDNS adverts, panels, usage records).
Everything this module prints goes through :func:`echo`, and every error message
through :class:`CliGroup`, which clean it with :func:`protocol.text.clean_lines`;
``--json`` output is written by :func:`protocol.text.json_text`. So no escape
sequence or control character from a peer reaches the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from controller.client import CastResult, Credentials, KioskClient, ProgressCallback
from controller.group import Group, Outcome
from controller.home import Home, PanelRow, home_dir
from controller.i18n import (
    N_,
    TranslatedGroup,
    TranslatedOption,
    option,
    size_text,
    t,
    text_table,
)
from controller.libraries import MAX_HOSTS_PER_LIBRARY, MAX_LIBRARIES
from controller.panels import (
    DISCOVER_ALL_WAIT_S,
    BadAddressError,
    DiscoveryUnavailableError,
    NoPanelGivenError,
    Panels,
)
from controller.problems import (
    CHAIN_PROBLEMS,
    chain_problem_text,
    os_error_text,
    pairing_error_text,
)
from controller.texts import (
    added_text,
    error_text,
    item_failure_text,
    late_text,
    skipped_file_text,
)
from media.lesson import load_sources
from media.office import OfficeConverter
from media.weblink import MAX_LIBRARY_HOSTS, parse_library_host
from protocol import limits
from protocol.discovery import KioskFound
from protocol.errors import ClassCastError
from protocol.messages import ControlAction, Role, StatusSnapshot
from protocol.pairing import PIN_DIGITS
from protocol.text import clean_lines, clean_name, json_text

if TYPE_CHECKING:  # imported by the commands that need them: `classcast --help` stays quick
    from controller.collect import CollectProblem, PanelCollection
    from controller.district import DistrictDb
    from controller.libraries import Library
    from controller.roster import Roster, RosterError, RosterFileError
    from controller.schooldb import Decision, DecisionAction, SchoolDb

T = TypeVar("T")
Target = tuple[str | None, str | None]
"""A panel to collect from: its kiosk id and room, as saved or advertised (None: unknown)."""

CONTEXT = {"help_option_names": ["-h", "--help"]}


def echo(message: str, *, err: bool = False) -> None:
    """Print one message: the only way this module writes to the terminal.

    Control characters and escape sequences that came with names are removed
    (:func:`protocol.text.clean_lines`); the line breaks of the message stay.
    """
    click.echo(clean_lines(message), err=err)


class CliGroup(TranslatedGroup):
    """The ``classcast`` group: error messages of every command are cleaned before click
    prints them, like :func:`echo` output (they may quote a panel's own words)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as exc:  # this computer's files: CLASSCAST_HOME, --db, --output
            raise click.ClickException(os_error_text(exc, home_dir())) from None
        except click.ClickException as exc:
            # click's stubs mark ``message`` final; replacing it keeps the exit code and
            # the kind of error (usage or not), which a new exception would lose.
            setattr(exc, "message", clean_lines(exc.message))  # noqa: B010
            raise
        except (click.exceptions.Exit, click.Abort):  # --help, exit codes, Ctrl+C
            raise
        except Exception as exc:  # the one catch-all: a bug, never a traceback for the user
            from controller.errorlog import record_exception, unexpected_error_text

            what = f"{ctx.command_path} {ctx.invoked_subcommand or ''}".strip()
            path = record_exception(home_dir(), datetime.now(), what, exc)
            raise click.ClickException(unexpected_error_text(path)) from None


class Ctx:
    """Options shared by every command, over :class:`~controller.panels.Panels`.

    Each method runs the API's coroutine and turns its errors into click's: a usage
    error (exit 2) when no panel was named, a one-line message (exit 1) otherwise, in
    the words of :func:`controller.texts.error_text`.
    """

    def __init__(self, teacher: str | None, timeout_s: float) -> None:
        self.panels = Panels(Home(), teacher=teacher, timeout_s=timeout_s)
        self.home = self.panels.home
        self.teacher = teacher
        self.timeout_s = timeout_s

    def targets(self, to: str | None, all_panels: bool) -> list[str]:
        """Addresses named by ``--to``/``--all``, else those of the last cast."""
        names = to.split(",") if to else []
        return self._run(self.panels.targets(names, all_panels=all_panels))

    def resolve(self, name: str) -> str:
        """A PANEL argument → an address: saved panels first, then the panels found by mDNS."""
        return self._run(self.panels.resolve(name))

    def browse(self, wait_s: float) -> list[KioskFound]:
        """Every panel mDNS finds within ``wait_s``; raises DiscoveryUnavailableError."""
        return self._run(self.panels.browse(wait_s), passing=DiscoveryUnavailableError)

    def discover_all(self, wait_s: float = DISCOVER_ALL_WAIT_S) -> list[KioskFound]:
        """Every panel mDNS finds within ``wait_s`` (none where mDNS is unavailable)."""
        return self._run(self.panels.discover_all(wait_s))

    def panel_rows(self, found: list[KioskFound]) -> list[PanelRow]:
        """Saved panels and those ``found`` by mDNS, after following proven moves."""
        return self._run(self.panels.panel_rows(found))

    def usable_rows(self, found: list[KioskFound]) -> list[PanelRow]:
        """:meth:`panel_rows` without unproven or disputed adverts, each named on stderr."""
        usable = self._run(self.panels.usable_rows(found))
        for row in usable.ignored:
            echo(
                t(
                    "Ignored {address}: it claims to be panel {room} ({kiosk_id}) "
                    "but did not prove it.",
                    address=row.address,
                    room=row.room or "?",
                    kiosk_id=row.kiosk_id or "?",
                ),
                err=True,
            )
        return list(usable.rows)

    async def group(self, targets: list[str], prefer: Role = "teacher") -> Group:
        """Connect to ``targets`` (inside a command's coroutine); close it when done."""
        return await self.panels.group(targets, prefer)

    @staticmethod
    def _run(coro: Coroutine[Any, Any, T], *, passing: type[ClassCastError] | None = None) -> T:
        """Run one of the API's coroutines; its errors become click's (``passing`` excepted)."""
        try:
            return asyncio.run(coro)
        except ClassCastError as exc:
            if passing is not None and isinstance(exc, passing):
                raise
            if isinstance(exc, NoPanelGivenError):
                raise click.UsageError(error_text(exc)) from None
            raise click.ClickException(error_text(exc)) from None


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
    saved_rooms = {p.address: p.room for p in Home().panels() if p.room}
    for o in outcomes:
        if o.error is not None:
            failed += 1
            name = o.room or saved_rooms.get(o.target) or o.target
            message = error_text(o.error, name)
            echo(t("{target}: error: {message}", target=name, message=message), err=True)
        else:
            line = on_ok(o)
            if line:
                echo(line)
    if failed:
        raise click.ClickException(
            t("{done} of {count} panels failed.", done=failed, count=len(outcomes))
        )


def _set_lang(ctx: click.Context, param: click.Parameter, lang: str | None) -> str | None:
    """``--lang`` takes effect at once, so that a ``--help`` after it is in that language."""
    if lang:
        os.environ["CLASSCAST_LANG"] = lang
    return lang


@click.group(cls=CliGroup, context_settings=CONTEXT)
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
@click.argument("lesson", nargs=-1, required=True)
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
def cast(obj: Ctx, lesson: tuple[str, ...], to: str | None, all_panels: bool, start: int) -> None:
    """Show a lesson on panels: a folder, a lesson.toml, files or web pages.

    Files may be presentations and documents (PPTX, PPT, ODP, DOCX, DOC, ODT, RTF:
    LibreOffice makes them into pages), PDF, pictures (PNG, JPEG, WebP, GIF, BMP, TIFF,
    AVIF, SVG), videos (MP4, MOV, WebM, MKV), text, Markdown, HTML pages and zips of
    HTML5 lessons.

    Only media the panel does not have yet is sent. With several panels the lesson
    starts on all of them at the same moment.

    Each http:// or https:// address is a web page of the lesson, in the order given
    among the files; pages from the content library's sites (`classcast library-hosts`)
    are logged as library content.

    When the item shown first is a web page, the cast waits until the panel has
    opened it, and fails saying why if it could not.

    Example:

        classcast cast ./фотосинтез --to "Каб. 12"
        classcast cast slides.pdf video.mp4 --to 192.168.1.40:47810
        classcast cast https://lib.myschool.edu.ru/content/123 --to "Каб. 12"
    """
    if start < 1:
        raise click.BadParameter(t("Item numbers start at 1."), param_hint="--start")
    try:
        with OfficeConverter(obj.home.converted_dir(), on_convert=_converting) as converter:
            loaded = load_sources(
                lesson, library_hosts=obj.home.library_hosts(), converter=converter
            )
    except ClassCastError as exc:
        raise click.ClickException(error_text(exc)) from None
    for skipped in loaded.skipped:
        echo(skipped_file_text(skipped), err=True)
    targets = obj.targets(to, all_panels)

    first = loaded.items[start - 1] if start <= len(loaded.items) else None
    failures: dict[str, StatusSnapshot] = {}

    async def go_and_check() -> list[Outcome[CastResult]]:
        group = await obj.group(targets)
        try:
            with _progress(loaded.total_bytes) as make_progress:
                outcomes = await group.cast(loaded, start_index=start - 1, progress=make_progress)
            if first is not None and first.kind == "web":
                cast_to = [o.target for o in outcomes if o.ok]
                verdicts = await group.each(
                    lambda c: _page_verdict(c, loaded.lesson_id, start - 1), only=cast_to
                )
                failures.update(
                    (v.target, v.value) for v in verdicts if v.value and v.value.item_failure
                )
            return outcomes
        finally:
            await group.close()

    outcomes = run(go_and_check())
    obj.home.set_last_targets([o.target for o in outcomes if o.ok] or targets)

    def line(o: Outcome[CastResult]) -> str | None:
        result = o.value
        if result is None:
            return None
        percent = round(100 * result.bytes_sent / result.bytes_total) if result.bytes_total else 0
        done = t(
            "Lesson «{title}»: {items} items, {size}; sent {sent} ({percent} %) to {room}.",
            title=loaded.title,
            items=len(loaded.items),
            size=size_text(loaded.total_bytes),
            sent=size_text(result.bytes_sent),
            percent=percent,
            room=o.label,
        )
        return done if result.late_ms is None else f"{done}\n{late_text(o.label, result.late_ms)}"

    report(outcomes, line)
    for o in outcomes:
        status = failures.get(o.target)
        failure = item_failure_text(status) if status is not None else None
        if failure is not None:
            echo(t("{target}: {message}", target=o.label, message=failure), err=True)
    if failures:
        raise SystemExit(1)


WEB_VERDICT_WAIT_S: Final = 15.0
"""How long ``cast`` waits for a panel's verdict on a web page shown first (the status's
``item_opened`` or ``item_failure``): longer than the panel's own check of the page
(``kiosk.webguard.CHECK_TIMEOUT_S``, 10 s). Past it the cast stands as done."""


async def _page_verdict(client: KioskClient, lesson_id: str, index: int) -> StatusSnapshot | None:
    """The panel's status once it opened, or failed to open, the web page of item
    ``index`` of ``lesson_id``; None when it said neither within ``WEB_VERDICT_WAIT_S``."""
    try:
        return await client.wait_for_status(
            lambda s: (
                s.lesson_id == lesson_id
                and s.index == index
                and (s.item_opened or s.item_failure is not None)
            ),
            timeout_s=WEB_VERDICT_WAIT_S,
        )
    except TimeoutError:
        return None


def _converting(path: Path) -> None:
    """Say on a terminal that a document is being made into pages (it takes seconds)."""
    if sys.stderr.isatty():
        click.echo(t("Converting {file} to pages…", file=path.name), err=True)


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
    volume: int | None = None,
) -> None:
    async def go() -> list[Outcome[int | None]]:
        group = await obj.group(targets)
        try:
            return await group.control(action, index=index, position_ms=position_ms, volume=volume)
        finally:
            await group.close()

    def line(o: Outcome[int | None]) -> str:
        done = t("{room}: {action}", room=o.label, action=t(action))
        return done if o.value is None else f"{done}\n{late_text(o.label, o.value)}"

    report(run(go()), line)


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


# --------------------------------------------------------------------------- share


@cli.command()
@_targets_options
@option(
    "--window",
    "window",
    metavar="TITLE",
    help="Show only the window whose title contains TITLE (X11).",
)
@click.pass_obj
def share(obj: Ctx, to: str | None, all_panels: bool, window: str | None) -> None:
    """Show your screen on panels, live, until you press Ctrl+C.

    The whole screen is shown (the first monitor), or with --window one window wherever
    it is (what covers it shows too), scaled to at most 1920×1080. Only
    changes cost work: a still screen costs almost nothing. A share is a presentation
    like a lesson: while another teacher presents, the panel answers that it is busy;
    blank, unblank and stop work as for a lesson, and Esc twice on the panel ends it.

    Needs an X11 (Xorg) session or Windows: on a Wayland desktop log in to an Xorg
    session first.

    Example:

        classcast share --to "Каб. 12"
        classcast share --to "Каб. 12,Каб. 14"
        classcast share --window "LibreOffice Impress" --to "Каб. 12"
    """
    targets = obj.targets(to, all_panels)
    from controller.share import MssCapture, WindowNotFoundError

    try:
        capture = MssCapture(window=window)
    except WindowNotFoundError:
        raise click.ClickException(
            t(
                "No window titled «{title}» is open. Open it (not minimised) and try again, "
                "or leave out --window to show the whole screen.",
                title=window or "",
            )
        ) from None
    except OSError as exc:
        raise click.ClickException(
            t(
                "Cannot capture this computer's screen ({reason}). Sharing works in an "
                "X11 (Xorg) session or on Windows.",
                reason=str(exc),
            )
        ) from None
    run(_share(obj, targets, capture, window or t("Screen")))


async def _share(obj: Ctx, targets: list[str], capture: Any, title: str) -> None:
    from controller.share import ScreenShare

    group = await obj.group(targets)
    try:
        for address, error in group.failed.items():
            echo(
                t("{target}: error: {message}", target=address, message=error_text(error, address)),
                err=True,
            )
        if not group.clients:
            capture.close()
            raise click.ClickException(t("No panel could be reached: nothing is shared."))
        session = ScreenShare(capture, list(group.clients.values()), title=title)
        refused = await session.start()
        for client, error in refused:
            echo(
                t(
                    "{target}: error: {message}",
                    target=client.name,
                    message=error_text(error, client.name),
                ),
                err=True,
            )
        if not session.panels:
            await session.stop()
            raise click.ClickException(t("No panel shows your screen."))
        obj.home.set_last_targets([a for a, c in group.clients.items() if c in session.panels])
        names = ", ".join(c.name for c in session.panels)
        echo(t("Your screen is shown on: {rooms}. Press Ctrl+C to stop.", rooms=names))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C raises instead
            loop.add_signal_handler(signal.SIGINT, stop.set)
        try:
            await session.run(stop)
        finally:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGINT)
            ended = {id(c) for c, _ in session.stopped_panels()}
            await session.stop()
        for client, _why in session.stopped_panels():
            if id(client) in ended:
                echo(t("{room}: the share was stopped on the panel.", room=client.name))
        echo(t("Screen sharing ended."))
    finally:
        await group.close()


@cli.command()
@click.argument("text", required=False)
@_targets_options
@option(
    "--level",
    type=click.Choice(["info", "alert"]),
    default="info",
    show_default=True,
    help="info: a banner at the bottom; alert: the whole screen.",
)
@option(
    "--for",
    "duration_s",
    type=click.IntRange(1, limits.MAX_ANNOUNCEMENT_S),
    metavar="SECONDS",
    help="Remove it after this many seconds (default: until cleared).",
)
@option("--clear", is_flag=True, help="Remove the announcement instead.")
@click.pass_obj
def announce(
    obj: Ctx,
    text: str | None,
    to: str | None,
    all_panels: bool,
    level: str,
    duration_s: int | None,
    clear: bool,
) -> None:
    """Show an announcement over what panels show, or remove it (--clear).

    Over another teacher's lesson this needs the admin role.

    Example:

        classcast announce "Урок окончен, сдайте тетради" --for 60
        classcast announce "Эвакуация! Выйдите из здания" --level alert --all
        classcast announce --clear --all
    """
    if not clear and not (text and text.strip()):
        raise click.UsageError(t("Give the TEXT to announce, or --clear."))
    targets = obj.targets(to, all_panels)

    async def go() -> list[Outcome[None]]:
        group = await obj.group(targets, "admin" if all_panels else "teacher")
        try:
            if clear:
                return await group.each(lambda c: c.clear_announcement())
            assert text is not None
            return await group.each(
                lambda c: c.announce(text, level=level, duration_s=duration_s)  # type: ignore[arg-type]
            )
        finally:
            await group.close()

    report(
        run(go()),
        lambda o: t(
            "{room}: {action}",
            room=o.label,
            action=t("announcement removed") if clear else t("announced"),
        ),
    )


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


@cli.command()
@click.argument("percent", type=click.IntRange(0, limits.MAX_VOLUME_PERCENT))
@_targets_options
@click.pass_obj
def volume(obj: Ctx, percent: int, to: str | None, all_panels: bool) -> None:
    """Set the panel's sound level for videos to PERCENT (0 = silent, 100 = full).

    The level stays for later videos and lessons.

    Example:

        classcast volume 60
    """
    _control(obj, obj.targets(to, all_panels), "volume", volume=percent)


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
@option("--watch", is_flag=True, help="Keep watching every panel and redraw on each change.")
@option(
    "--thumbnail",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save a PNG thumbnail of what PANEL shows to this file.",
)
@click.pass_obj
def status(obj: Ctx, panel: str | None, as_json: bool, watch: bool, thumbnail: Path | None) -> None:
    """Show what panels display: PANEL, or every panel (saved or on the network).

    With --watch: online or offline, what each shows, who presents, when it last
    answered, cache use and version, kept current until Ctrl+C.

    Example:

        classcast status "Каб. 12"
        classcast status --json
        classcast status --watch
    """
    if thumbnail is not None:
        if not panel:
            raise click.UsageError(t("--thumbnail needs a PANEL."))
        _save_thumbnail(obj, obj.resolve(panel), thumbnail)
        return
    if panel:
        targets = [obj.resolve(panel)]
    else:
        found = obj.discover_all() if watch else []
        targets = [r.address for r in obj.usable_rows(found)]
    if not targets:
        raise click.ClickException(
            t("No saved panels: add one with `classcast panels add HOST[:PORT]`.")
        )
    if watch:
        run(_watch(obj, targets, as_json))
        return

    async def go() -> list[Outcome[StatusSnapshot]]:
        group = await obj.group(targets)
        try:
            return await group.status()
        finally:
            await group.close()

    outcomes = run(go())
    if as_json:
        echo(
            json_text(
                [
                    {
                        "address": o.target,
                        "online": o.ok,
                        "status": asdict(o.value) if o.value is not None else None,
                        "error": str(o.error) if o.error is not None else None,
                    }
                    for o in outcomes
                ],
                indent=2,
            )
        )
        if any(not o.ok for o in outcomes):
            sys.exit(1)
        return
    report(outcomes, lambda o: _status_text(o.target, o.value) if o.value else None)


def _save_thumbnail(obj: Ctx, address: str, path: Path) -> None:
    async def go() -> bytes:
        async with await KioskClient.connect(
            address,
            obj.home.identity(obj.teacher),
            credentials=obj.home.credentials_for_address(address),
            timeout_s=obj.timeout_s,
        ) as client:
            return await client.screenshot()

    png = run(go())
    path.write_bytes(png)
    echo(t("Written to {path}.", path=path))


async def _watch(obj: Ctx, targets: list[str], as_json: bool) -> None:
    """Redraw the monitor on every change (a terminal) or print a line per change."""
    from controller.monitor import Monitor, render

    tty = sys.stdout.isatty()
    changed = asyncio.Event()
    watcher = Monitor(
        targets,
        obj.home.identity(obj.teacher),
        lambda a: obj.home.credentials_for_address(a, "admin"),
        timeout_s=obj.timeout_s,
        on_change=changed.set,
    )
    async with watcher:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await changed.wait()
            if not changed.is_set() and not tty:
                continue
            changed.clear()
            panels = watcher.snapshot()
            if as_json:
                echo(json_text([p.as_json() for p in panels]))
            elif tty:
                click.clear()
                echo(render(panels, time.time()))
            else:
                echo(render(panels, time.time()) + "\n")


def _status_text(address: str, s: StatusSnapshot) -> str:
    lines = [
        f"{t('Room')}: {s.room}   {t('School')}: {s.school}",
        f"  {t('Address')}: {address}   {t('Kiosk id')}: {s.kiosk_id}",
        f"  {t('State')}: {t(s.state)}" + (f"   ({t('Blanked')})" if s.blanked else ""),
        f"  {t('Volume')}: {s.volume} %",
    ]
    if s.lesson_title is not None:
        lines.append(f"  {t('Lesson')}: {s.lesson_title}")
        lines.append(
            f"  {t('Item')}: {s.index + 1}/{s.count} {t(s.item_kind or '')} «{s.item_title}»"
        )
        failure = item_failure_text(s)
        if failure is not None:
            lines.append(f"  {failure}")
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
    try:
        found = obj.browse(wait_s) if wait_s > 0 else []
    except DiscoveryUnavailableError as exc:
        echo(error_text(exc), err=True)
        found = []
    rows = obj.panel_rows(found)
    if as_json:
        echo(json_text([r.as_json() for r in rows], indent=2))
        return
    if not rows:
        echo(t("No panels found: add one with `classcast panels add HOST[:PORT]`."))
        return
    header = (t("Room"), t("School"), t("State"), t("Address"), t("Paired"), "")
    table = [
        (
            clean_name(r.room or "?"),
            clean_name(r.school or ""),
            t(r.state) if r.state else t("not seen"),
            r.address,
            t("yes") if r.paired else t("no"),
            _row_note(r, rows),
        )
        for r in rows
    ]
    echo(text_table([header, *table]))


def _row_note(row: PanelRow, rows: list[PanelRow]) -> str:
    """Why a row of ``classcast panels`` must not be trusted, or ``""``."""
    if row.verified is False:
        saved = next((r for r in rows if r.verified and r.kiosk_id == row.kiosk_id), None)
        return t(
            "NOT VERIFIED: claims to be the saved panel at {address}",
            address=saved.address if saved is not None else "?",
        )
    if row.conflict:
        return t("CONFLICT: several panels claim this kiosk id")
    return ""


@panels.command("add")
@click.argument("address", metavar="HOST[:PORT]")
@click.pass_obj
def panels_add(obj: Ctx, address: str) -> None:
    """Save a panel by address (for networks where discovery does not work).

    The panel's room and id are read from it when it answers.

    Example:

        classcast panels add 192.168.1.40:47810
    """
    try:
        added = asyncio.run(obj.panels.add(address))
    except BadAddressError as exc:
        raise click.BadParameter(error_text(exc), param_hint="HOST[:PORT]") from None
    except ClassCastError as exc:  # a machine there claims a saved panel's id
        raise click.ClickException(error_text(exc)) from None
    echo(added_text(added))


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
    _teacher_for_pairing(obj)
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
    try:
        welcome = asyncio.run(obj.panels.pair(address, secret, role))
    except ClassCastError as exc:
        text = pairing_error_text(exc, panel, role) or error_text(exc, panel)
        raise click.ClickException(text) from None
    echo(t("Paired with {room} as {role}.", room=welcome.room, role=t(role)))


def _teacher_for_pairing(obj: Ctx) -> None:
    """Make sure the teacher's name is known before pairing: ``--teacher``, the saved one,
    or asked for at the terminal (and saved). The login name is never taken for it."""
    name = obj.teacher or obj.home.teacher_name()
    if name is None:
        if not sys.stdin.isatty():
            raise click.UsageError(
                t(
                    "No teacher's name is saved on this computer. Give your full name as on "
                    "the school's list of teachers: classcast --teacher \"Иванова Мария "
                    'Петровна" pair PANEL'
                )
            )
        name = click.prompt(t("Your full name, as on the school's list of teachers"))
    cleaned = " ".join(clean_name(name).split())
    if not cleaned or len(cleaned) > limits.MAX_STRING_CHARS:
        raise click.BadParameter(
            t(
                "Give your full name as on the school's list of teachers (up to {n} "
                'characters), such as --teacher "Иванова Мария Петровна".',
                n=limits.MAX_STRING_CHARS,
            ),
            param_hint="--teacher",
        )
    obj.teacher = cleaned
    obj.panels.teacher = cleaned
    obj.home.identity(cleaned)


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
        echo(
            t(
                "The panel did not answer ({message}); the pairing is forgotten here only.",
                message=error_text(exc),
            ),
            err=True,
        )
    if kiosk_id is not None:
        obj.home.forget_credentials(kiosk_id)
    echo(t("Unpaired from {panel}.", panel=saved.room if saved and saved.room else address))


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
            echo(t("Removed {address}.", address=address))
            return
    raise click.ClickException(
        t("Panel not found: {name}. Saved panels are listed by `classcast panels`.", name=panel)
    )


# --------------------------------------------------------------------------- library hosts


@cli.group("library-hosts", invoke_without_command=True)
@option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def library_hosts_group(ctx: click.Context, as_json: bool) -> None:
    """List the content library's sites: web pages from them count as library content.

    A site counts with every site under it (myschool.edu.ru includes
    lib.myschool.edu.ru). Until changed, the list is that of «Моя школа» and РЭШ.
    What a panel may open is set on the panel (web_allow in kiosk.toml).

    Example:

        classcast library-hosts
        classcast library-hosts add uchi.ru
        classcast library-hosts reset
    """
    if ctx.invoked_subcommand is not None:
        return
    obj: Ctx = ctx.obj
    _echo_library_hosts(obj.home.library_hosts(), as_json)


@library_hosts_group.command("add")
@click.argument("hosts", nargs=-1, required=True, metavar="HOST...")
@click.pass_obj
def library_hosts_add(obj: Ctx, hosts: tuple[str, ...]) -> None:
    """Add sites to the content library's list.

    Example:

        classcast library-hosts add uchi.ru media.prosv.ru
    """
    _save_library_hosts(obj, [*obj.home.library_hosts(), *hosts])


@library_hosts_group.command("remove")
@click.argument("hosts", nargs=-1, required=True, metavar="HOST...")
@click.pass_obj
def library_hosts_remove(obj: Ctx, hosts: tuple[str, ...]) -> None:
    """Remove sites from the content library's list.

    Example:

        classcast library-hosts remove resh.edu.ru
    """
    current = obj.home.library_hosts()
    gone = set()
    for host in hosts:
        name = _library_host_or_none(host)
        if name is None or name not in current:
            raise click.ClickException(
                t(
                    "{host} is not in the list: `classcast library-hosts` shows it.",
                    host=clean_name(host),
                )
            )
        gone.add(name)
    _save_library_hosts(obj, [h for h in current if h not in gone])


@library_hosts_group.command("reset")
@click.pass_obj
def library_hosts_reset(obj: Ctx) -> None:
    """Go back to the default list («Моя школа» and РЭШ).

    Example:

        classcast library-hosts reset
    """
    _echo_library_hosts(obj.home.set_library_hosts(None), as_json=False)


def _save_library_hosts(obj: Ctx, hosts: list[str]) -> None:
    try:
        saved = obj.home.set_library_hosts(hosts)
    except ValueError:
        bad = next((h for h in hosts if _library_host_or_none(h) is None), None)
        if bad is None:
            raise click.ClickException(
                t("The list holds at most {limit} sites.", limit=MAX_LIBRARY_HOSTS)
            ) from None
        raise click.ClickException(
            t(
                "{host} is not a site name: write it as lib.myschool.edu.ru, without "
                "https:// or a path.",
                host=clean_name(bad),
            )
        ) from None
    _echo_library_hosts(saved, as_json=False)


def _library_host_or_none(host: str) -> str | None:
    try:
        return parse_library_host(host)
    except ValueError:
        return None


def _echo_library_hosts(hosts: tuple[str, ...], as_json: bool) -> None:
    if as_json:
        echo(json_text(list(hosts), indent=2))
        return
    echo(t("Content library sites:"))
    for host in hosts:
        echo(f"  {host}")
    if not hosts:
        echo(t("  (none: no web page counts as library content)"))


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


# --------------------------------------------------------------------------- app


@cli.command("app")
@option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (127.0.0.1: only this computer can open the app).",
)
@option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@option("--no-browser", is_flag=True, help="Do not open the browser; only print the address.")
@option(
    "--remote-host",
    metavar="ADDR",
    help="Address the phone remote listens on while a QR code is in use "
    "(default: this computer's address on the school network).",
)
@option(
    "--db",
    "db_target",
    metavar="PATH|URL",
    help="The usage database the admin's pages show: a school's SQLite file (default: "
    "school.sqlite in CLASSCAST_HOME) or the district's postgresql:// URL.",
)
@click.pass_obj
def app_command(
    obj: Ctx,
    host: str,
    port: int,
    no_browser: bool,
    remote_host: str | None,
    db_target: str | None,
) -> None:
    """Open the teacher's app in the browser: panels, lessons and controls with big buttons.

    The app runs on this computer until Ctrl+C. Its address holds a one-time key:
    only the browser that opens it first gets in.

    On an admin's computer (paired as admin) it has the admin's dashboard too, at
    /admin: every panel live, the week's reports and the weekly norm, collection.

    With --db postgresql://… the dashboard shows the district: every school, or the one
    chosen in the list.

    Example:

        classcast app
        classcast app --no-browser --port 8080
        classcast app --remote-host 192.168.1.25
        classcast app --db /var/lib/classcast/school.sqlite
        classcast app --db postgresql://classcast@db.district/usage
    """
    import webbrowser

    from controller.webapp.launch import bind, launch_url, new_launch_token

    try:
        sock = bind(host, port)
    except OSError as exc:
        raise click.ClickException(
            t(
                "Cannot listen on {address}: {message}",
                address=f"{host}:{port}",
                message=_listen_error_text(exc),
            )
        ) from None
    # The address is shown and the browser opened as soon as the socket listens: the
    # browser starts while the server is imported and built, and its first request
    # waits in the socket's backlog until the server takes it.
    token = new_launch_token()
    url = launch_url(sock, token)
    echo(t("The teacher's app is at {url}", url=url))
    echo(t("Keep this window open while you work; Ctrl+C stops the app."))
    if not no_browser:
        webbrowser.open(url)
    from controller.webapp.app import AppConfig, serve
    from controller.webapp.district import DistrictSource

    district = _is_url(db_target)

    config = AppConfig(
        home=obj.home,
        teacher=obj.teacher,
        timeout_s=obj.timeout_s,
        launch_token=token,
        remote_host=remote_host,
        school_db=None if district else (Path(db_target) if db_target else None),
        reports=DistrictSource(db_target) if district and db_target else None,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, sock))


def _listen_error_text(exc: OSError) -> str:
    """Why ``classcast app`` cannot listen, and what to do instead."""
    import errno

    if exc.errno == errno.EADDRINUSE:
        return t("another program uses this port: choose another with --port, or leave it out.")
    if exc.errno == errno.EADDRNOTAVAIL:
        return t("this computer has no such address: check --host, or leave it out.")
    if exc.errno == errno.EACCES:
        return t("ports below 1024 need administrator rights: choose a port above 1024.")
    return t("the system refused ({message}): try another --port.", message=exc.strerror or exc)


# --------------------------------------------------------------------------- usage


def _db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return option(
        "--db",
        "db_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="The school usage database (default: school.sqlite in CLASSCAST_HOME).",
    )(fn)


def _open_db(obj: Ctx, db_path: Path | None) -> SchoolDb:
    from controller.schooldb import SchoolDb

    path = db_path or obj.home.root / "school.sqlite"
    if db_path is None:  # the first report on this computer: an empty database
        obj.home.root.mkdir(parents=True, exist_ok=True)
    try:
        return SchoolDb(path)
    except ClassCastError:
        raise click.ClickException(
            t(
                "The school database {path} cannot be opened, or it is not a ClassCast school "
                "database. Check the path given with --db and that you may write there, then "
                "try again.",
                path=path,
            )
        ) from None


def _store_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return option(
        "--db",
        "db_target",
        metavar="FILE|URL",
        help=(
            "The school usage database (default: school.sqlite in CLASSCAST_HOME), or the "
            "district's PostgreSQL database as postgresql://USER@HOST/DB."
        ),
    )(fn)


def _school_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return option(
        "--school",
        "school_id",
        metavar="ID",
        callback=_check_school_id,
        help="The school's id in the district database (as kiosk.toml school_id).",
    )(fn)


def _check_school_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from protocol.text import school_id_problem

    if value is not None and school_id_problem(value) is not None:
        raise click.BadParameter(
            t(
                "{value} is not a school id: lower-case Latin letters, digits, '.', '_' and "
                "'-', up to 64 characters, such as school-17.",
                value=value,
            )
        )
    return value


def _is_url(target: str | None) -> bool:
    from controller.district import is_district_url

    return target is not None and is_district_url(target)


@contextmanager
def _district(url: str) -> Iterator[DistrictDb]:
    """The district database at ``url``, closed afterwards; refused in the admin's words."""
    from controller.district import DistrictDb, shown_url

    try:
        district = DistrictDb(url)
    except ClassCastError as exc:
        raise click.ClickException(
            t(
                "The district database {url} cannot be used: {message}. Check the address, "
                "the user's rights and that PostgreSQL runs there, then try again.",
                url=shown_url(url),
                message=str(exc),
            )
        ) from None
    try:
        yield district
    except ClassCastError as exc:
        if exc.code != "district":
            raise
        raise click.ClickException(
            t("The district database failed: {message}. Try again.", message=str(exc))
        ) from None
    finally:
        district.close()


def _district_school(district: DistrictDb, school_id: str | None) -> str | None:
    """``--school`` checked against the district's schools."""
    if school_id is not None and school_id not in {s.school_id for s in district.schools()}:
        known = ", ".join(s.school_id for s in district.schools()) or "—"
        raise click.BadParameter(
            t(
                "the district database has no school {school} (it has: {known}). Push the "
                "school's database first: classcast usage push --to URL.",
                school=school_id,
                known=known,
            ),
            param_hint="--school",
        )
    return school_id


def _check_tz(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--tz`` and ``usage timezone``: an IANA timezone name, refused in Russian otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            t(
                "{zone} is not a known time zone. Give an IANA name such as Europe/Moscow, "
                "Europe/Samara, Asia/Yekaterinburg, Asia/Novosibirsk, Asia/Krasnoyarsk, "
                "Asia/Irkutsk, Asia/Vladivostok or Asia/Kamchatka.",
                zone=value,
            )
        ) from None
    return value


def _tz_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return option(
        "--tz",
        metavar="ZONE",
        callback=_check_tz,
        help=(
            "Time zone for days, weeks and times, such as Asia/Novosibirsk: stored as the "
            "school's the first time, for this report only once one is stored."
        ),
    )(fn)


@contextmanager
def _report_zone(
    db: SchoolDb, tz: str | None, period: Callable[[str], tuple[date, date]]
) -> Iterator[tuple[date, date]]:
    """Days and weeks of the report in ``tz``: the school's zone when none is stored yet,
    this report's otherwise; yields the report's (first day, last day) in that zone."""
    if tz is not None and not db.timezone_chosen:
        db.set_timezone(tz)
    zone = tz or db.tz_name
    start, end = period(zone)
    with db.timezone_for_report(zone, start, end):
        yield start, end


def _zone_header(db: SchoolDb, text: str) -> str:
    return t("Timezone: {tz}", tz=db.tz_name) + "\n" + text


@cli.group()
def usage() -> None:
    """Collect the panels' usage logs and report on them (admins).

    Example:

        classcast usage collect
        classcast usage report --week 2026-W48 --by teacher
        classcast usage compliance --week 2026-W48
    """


@usage.command("collect")
@click.argument("panels", metavar="[PANEL]...", nargs=-1)
@_store_option
@_school_option
@_tz_option
@option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/admin.md).")
@click.pass_obj
def usage_collect(
    obj: Ctx,
    panels: tuple[str, ...],
    db_target: str | None,
    school_id: str | None,
    tz: str | None,
    as_json: bool,
) -> None:
    """Pull new usage records from the panels into the school database.

    Without PANEL: the saved panels and those found on the network. Each needs this
    computer paired as admin (classcast pair PANEL --admin); a panel only found on the
    network and not paired as admin is named in a warning and left out. Running it
    again, or after an interruption, loses nothing and stores nothing twice.

    A record that cannot be trusted is named with its panel and number; the records
    before it are stored (docs/admin.md).

    A large school may collect straight into the district's PostgreSQL database:
    --db postgresql://… with --school (and --tz for a school new there).

    Example:

        classcast usage collect --db /var/lib/classcast/school.sqlite
        classcast usage collect "Каб. 12" "Каб. 14"
        classcast usage collect --db postgresql://classcast@db.district/usage --school school-5
    """
    if _is_url(db_target) and school_id is None:
        raise click.UsageError(
            t("Collecting into the district database needs the school's id: --school ID.")
        )
    targets, unpaired = _collect_targets(obj, panels)
    for row in unpaired:
        echo(
            t(
                "{room} ({address}): on the network but not paired as admin: not collected. "
                "To collect its usage, run `classcast pair {address} --admin`.",
                room=row.room or "?",
                address=row.address,
            ),
            err=True,
        )
    if not targets and not unpaired:
        raise click.ClickException(
            t("No saved panels: add one with `classcast panels add HOST[:PORT]`.")
        )

    def creds(address: str) -> Credentials | None:
        return obj.home.credentials(targets[address][0], "admin")

    from controller.collect import CollectionResult, collect
    from controller.roster import Roster
    from controller.schooldb import UsageStore

    def run(store: UsageStore) -> CollectionResult:
        return asyncio.run(
            collect(
                store,
                list(targets),
                obj.home.identity(obj.teacher),
                creds,
                timeout_s=obj.timeout_s,
            )
        )

    if db_target is not None and _is_url(db_target):
        assert school_id is not None
        with _district(db_target) as district:
            known = {s.school_id: s.tz for s in district.schools()}
            result = run(district.school(school_id, tz=tz or known.get(school_id, "Europe/Moscow")))
    else:
        db = _open_db(obj, Path(db_target) if db_target else None)
        try:
            result = run(db)
            # The names typed on each computer, read from the new records once here, so
            # that reports and the admin's pages find them without writing.
            Roster(db).gather_names()
        finally:
            db.close()
    names = {p.address: p.room or targets[p.address][1] or p.address for p in result.panels}
    failed = [p for p in result.panels if p.error is not None]
    if as_json:
        panels_json = [_collection_json(p, names[p.address]) for p in result.panels]
        summary = {
            "added": result.added,
            "failed": len(result.failed),
            "panels": panels_json,
            "not_paired": [
                {"address": r.address, "room": r.room, "kiosk_id": r.kiosk_id} for r in unpaired
            ],
        }
        echo(json_text(summary, indent=2))
        if result.failed:
            sys.exit(1)
        return
    for panel in result.panels:
        _echo_panel_outcome(
            panel,
            names[panel.address],
            lambda name, added, duplicates: t(
                "{room}: {added} new records ({duplicates} already stored).",
                room=name,
                added=added,
                duplicates=duplicates,
            ),
        )
    if failed:
        raise click.ClickException(
            t("{done} of {count} panels failed.", done=len(failed), count=len(result.panels))
        )
    if result.failed:
        raise click.ClickException(
            t(
                "Problems with the records of {n} of {count} panels: see above.",
                n=len(result.failed),
                count=len(result.panels),
            )
        )


@usage.command("push")
@_db_option
@option(
    "--to",
    "url",
    required=True,
    metavar="URL",
    help="The district's PostgreSQL database, postgresql://USER@HOST/DB.",
)
@_school_option
@option("--name", help="The school's name in the district (default: the one its panels show).")
@option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/admin.md).")
@click.pass_obj
def usage_push(
    obj: Ctx,
    db_path: Path | None,
    url: str,
    school_id: str | None,
    name: str | None,
    as_json: bool,
) -> None:
    """Send the school database's records to the district's PostgreSQL database.

    Every record is checked again on arrival (its signature, its place in the panel's
    chain); a record changed after collection is refused and named, with the records
    after it. Running it again sends only what is new; after an interruption it goes on
    from where it stopped. The school's roster and time zone go along.

    --school is the school's id in the district; by default the one its panels sign
    their records with (kiosk.toml school_id).

    Example:

        classcast usage push --db school.sqlite --to postgresql://classcast@db.district/usage
        classcast usage push --to postgresql://classcast@db.district/usage --school school-5
    """
    from controller.district import is_district_url, push

    if not is_district_url(url):
        raise click.BadParameter(
            t("give the district database as postgresql://USER@HOST/DB."), param_hint="--to"
        )
    db = _open_db(obj, db_path)
    try:
        with _district(url) as district:
            try:
                pushed_id, result = push(db, district, school_id=school_id, name=name)
            except ValueError:
                raise click.UsageError(
                    t(
                        "The school's records carry no single school id: give it with "
                        "--school ID (as in the panels' kiosk.toml school_id)."
                    )
                ) from None
    finally:
        db.close()
    if as_json:
        summary = {
            "school": pushed_id,
            "added": result.added,
            "failed": len(result.failed),
            "panels": [_collection_json(p, p.room or p.kiosk_id or "") for p in result.panels],
        }
        echo(json_text(summary, indent=2))
        if result.failed:
            sys.exit(1)
        return
    for panel in result.panels:
        _echo_panel_outcome(
            panel,
            panel.room or panel.kiosk_id or "?",
            lambda name, added, duplicates: t(
                "{room}: {added} records sent to the district ({duplicates} already there).",
                room=name,
                added=added,
                duplicates=duplicates,
            ),
        )
    echo(t("School {school}: {added} new records in the district.", school=pushed_id,
           added=result.added))  # fmt: skip
    if result.failed:
        raise click.ClickException(
            t(
                "Problems with the records of {n} of {count} panels: see above.",
                n=len(result.failed),
                count=len(result.panels),
            )
        )


def _collect_targets(obj: Ctx, names: Sequence[str]) -> tuple[dict[str, Target], list[PanelRow]]:
    """The panels ``usage collect`` contacts (address → kiosk id and room), and those it
    leaves out with a warning.

    Named panels are resolved like every PANEL argument and always contacted: a named
    panel that is not paired as admin fails. Without names: the saved panels and the
    usable ones found by mDNS; a panel only found on the network, without an admin
    pairing, is left out (second list): seeing a panel is no reason for collection to fail.
    """
    wanted = [n.strip() for n in names if n.strip()]
    if wanted:
        saved = {p.address: p for p in obj.home.panels()}  # pairing saves the panel
        targets: dict[str, Target] = {}
        for name in wanted:
            address = obj.resolve(name)
            panel = saved.get(address)
            targets[address] = (panel.kiosk_id, panel.room) if panel else (None, None)
        return targets, []
    rows = obj.usable_rows(obj.discover_all())
    unpaired = [r for r in rows if r.source == "mdns" and not _admin_paired(obj, r.kiosk_id)]
    return {r.address: (r.kiosk_id, r.room) for r in rows if r not in unpaired}, unpaired


def _admin_paired(obj: Ctx, kiosk_id: str | None) -> bool:
    creds = obj.home.credentials(kiosk_id, "admin")
    return creds is not None and creds.role == "admin"


def _collect_error_text(exc: ClassCastError, panel: str) -> str:
    """Why nothing could be collected from a panel, in the output language."""
    if exc.code == "usage_key_changed":
        return t(
            "the panel now signs its usage log with another key than the one pinned at its "
            "first collection: nothing stored. If the panel was reinstalled, forget its old "
            "key: classcast usage forget-key PANEL (docs/admin.md); otherwise someone "
            "impersonates it."
        )
    if exc.code == "usage_tamper":
        return t("the panel sent no usable signing key: nothing stored. Check the panel.")
    if exc.code in ("usage_chain", "bad_batch"):
        return t("the panel sent another panel's records: nothing stored. Check the panel.")
    if exc.code == "usage_log":
        return t("the school database cannot be read or written: {message}", message=str(exc))
    if exc.code == "internal":
        return t("collection failed unexpectedly: {message}", message=str(exc))
    return error_text(exc, panel)


def _refusal_cause(problem: CollectProblem) -> str:
    """Why a record does not continue the panel's chain, in the output language."""
    return t(CHAIN_PROBLEMS.get(problem.cause or "inserted", CHAIN_PROBLEMS["inserted"]))


def _problem_text(problem: CollectProblem) -> str:
    """One problem of a panel's records, for the admin, in the output language."""
    seq, value, field_name = problem.seq, problem.value, problem.field
    match problem.kind:
        case "invalid" if problem.reason == "not_a_time":
            return t(
                "record #{seq} is stored but left out of reports: {field} = {value} is not a time.",
                seq=seq,
                field=field_name,
                value=value,
            )
        case "invalid" if problem.reason == "negative":
            return t(
                "record #{seq} is stored but left out of reports: {field} = {value} is negative.",
                seq=seq,
                field=field_name,
                value=value,
            )
        case "invalid":
            return t(
                "record #{seq} is stored but left out of reports: "
                "{field} = {value} is out of range.",
                seq=seq,
                field=field_name,
                value=value,
            )
        case "refused":
            return t(
                "record #{seq} was not stored: {cause}. Records not stored: {n}; collection "
                "stops at this record until an admin decides (classcast usage problems).",
                seq=seq,
                cause=_refusal_cause(problem),
                n=problem.not_stored,
            )
        case "conflict":
            return t(
                "record #{seq} came back as another record than the one stored; "
                "the stored one is kept.",
                seq=seq,
            )
        case "no_progress":
            return t(
                "the panel says more records follow #{seq} but sends none: collection from "
                "it stopped. Check the panel.",
                seq=seq,
            )
        case "pull_limit":
            from controller.collect import MAX_PULLS_PER_PANEL

            return t(
                "the panel was still sending after {n} batches: stopped after record #{seq}; "
                "the next collection goes on from there.",
                n=MAX_PULLS_PER_PANEL,
                seq=seq,
            )


def _echo_panel_outcome(
    panel: PanelCollection, name: str, stored_text: Callable[[str, int, int], str]
) -> None:
    """One panel's line after a collection or a push: what was stored (``stored_text``
    of its name, the records added and those already there), or its error; then each
    problem found in its records."""
    if panel.error is not None:
        message = _collect_error_text(panel.error, name)
        echo(t("{target}: error: {message}", target=name, message=message), err=True)
        return
    echo(stored_text(name, panel.added, panel.duplicates))
    for problem in panel.problems:
        echo(f"{name}: {_problem_text(problem)}", err=True)


def _collection_json(panel: PanelCollection, name: str) -> dict[str, Any]:
    """One panel of ``usage collect --json``."""
    error = (
        None
        if panel.error is None
        else {"code": panel.error.code, "message": _collect_error_text(panel.error, name)}
    )
    return {
        "address": panel.address,
        "room": name,
        "kiosk_id": panel.kiosk_id,
        "ok": panel.ok,
        "added": panel.added,
        "duplicates": panel.duplicates,
        "quarantined": panel.quarantined,
        "last_seq": panel.last_seq,
        "pulls": panel.pulls,
        "error": error,
        "problems": [
            {
                "kind": p.kind,
                "seq": p.seq,
                "cause": p.cause,
                "not_stored": p.not_stored,
                "field": p.field,
                "value": p.value,
                "reason": p.reason,
                "message": _problem_text(p),
            }
            for p in panel.problems
        ],
    }


def _period(
    week: str | None, date_from: str | None, date_to: str | None, tz: str
) -> tuple[date, date]:
    from controller.reports import now_week
    from controller.schooldb import week_days

    if week and (date_from or date_to):
        raise click.UsageError(t("Give either --week or --from/--to."))
    try:
        if date_from or date_to:
            start = (
                date.fromisoformat(date_from) if date_from else date.fromisoformat(date_to or "")
            )
            end = date.fromisoformat(date_to) if date_to else start
        else:
            start, end = week_days(week or now_week(tz=tz))
    except ValueError:
        raise click.BadParameter(
            t(
                "Write dates as YYYY-MM-DD (such as 2026-11-23) and weeks as YYYY-Www (such as "
                "2026-W48), and try again."
            )
        ) from None
    if end < start:
        raise click.BadParameter(t("--to is before --from."))
    return start, end


@usage.command("report")
@_store_option
@_school_option
@option("--week", help="ISO week such as 2026-W48 (default: this week).")
@option("--from", "date_from", metavar="DATE", help="First day, YYYY-MM-DD.")
@option("--to", "date_to", metavar="DATE", help="Last day, YYYY-MM-DD.")
@option(
    "--by",
    type=click.Choice(["room", "teacher", "content", "day", "week", "library", "school"]),
    default="room",
    show_default=True,
    help="What to group by.",
)
@option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "html"]),
    default="table",
    show_default=True,
    help="Output format; html is a self-contained page with charts.",
)
@option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file instead of the terminal.",
)
@_tz_option
@click.pass_obj
def usage_report_command(
    obj: Ctx,
    db_target: str | None,
    school_id: str | None,
    week: str | None,
    date_from: str | None,
    date_to: str | None,
    by: str,
    fmt: str,
    output: Path | None,
    tz: str | None,
) -> None:
    """Who showed what, where and for how long: lessons, display time, items.

    Example:

        classcast usage report --week 2026-W48 --by teacher
        classcast usage report --from 2026-11-01 --to 2026-11-30 --format html -o ноябрь.html
        classcast usage report --db postgresql://classcast@db.district/usage --by school
    """
    from controller.report_html import report_html
    from controller.reports import format_csv, format_json, format_table, usage_report
    from controller.roster import Roster

    if db_target is not None and _is_url(db_target):
        _no_tz_for_district(tz)
        start, end = _period(week, date_from, date_to, "Europe/Moscow")
        _emit(_district_report_text(db_target, school_id, start, end, by, fmt), output)
        return
    db = _open_db(obj, Path(db_target) if db_target else None)
    try:
        Roster(db).gather_names()
        with _report_zone(db, tz, lambda zone: _period(week, date_from, date_to, zone)) as (
            start,
            end,
        ):
            if fmt == "html":
                text = report_html(db, start=start, end=end)
            else:
                rows = usage_report(db, start=start, end=end, by=by)  # type: ignore[arg-type]
                text = {
                    "table": lambda: _zone_header(db, format_table(rows, tz=db.tz_name)),
                    "csv": lambda: format_csv(rows),
                    "json": lambda: format_json(rows),
                }[fmt]()
    finally:
        db.close()
    _emit(text, output)


def _no_tz_for_district(tz: str | None) -> None:
    if tz is not None:
        raise click.UsageError(
            t(
                "--tz is for a school database: the district reports each school in its own "
                "time zone."
            )
        )


def _district_header(text: str) -> str:
    return t("Each school's days and weeks in its own time zone; times in UTC.") + "\n" + text


def _district_report_text(
    url: str, school_id: str | None, start: date, end: date, by: str, fmt: str
) -> str:
    """``usage report --db postgresql://…`` in ``fmt``."""
    from controller.district import district_compliance, district_report
    from controller.report_html import district_html, iso_weeks
    from controller.reports import format_csv, format_json, format_table

    with _district(url) as district:
        school = _district_school(district, school_id)
        if fmt == "html":
            schools = district_report(district, start=start, end=end, by="school", school=school)
            weeks = [
                (week, district_compliance(district, week=week, school=school))
                for week in iso_weeks(start, end)
            ]
            return district_html(schools, weeks, start=start, end=end)
        rows = district_report(
            district,
            start=start,
            end=end,
            by=by,  # type: ignore[arg-type]
            school=school,
        )
    return {
        "table": lambda: _district_header(format_table(rows, tz="UTC")),
        "csv": lambda: format_csv(rows),
        "json": lambda: format_json(rows),
    }[fmt]()


@usage.command("compliance")
@_store_option
@_school_option
@option("--week", help="ISO week such as 2026-W48 (default: this week).")
@option(
    "--min",
    "min_lessons",
    type=int,
    default=3,
    show_default=True,
    help="Lessons with digital content each teacher should give in the week.",
)
@option(
    "--min-minutes",
    type=float,
    default=10.0,
    show_default=True,
    help="Display time a lesson needs to count.",
)
@option("--any-content", is_flag=True, help="Count lessons without a content-library source too.")
@option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@_tz_option
@click.pass_obj
def usage_compliance(
    obj: Ctx,
    db_target: str | None,
    school_id: str | None,
    week: str | None,
    min_lessons: int,
    min_minutes: float,
    any_content: bool,
    fmt: str,
    tz: str | None,
) -> None:
    """Which teachers gave enough lessons with digital content in a week.

    A lesson counts when one teacher showed content on one panel for at least
    --min-minutes, with at least one item from a content source (docs/admin.md).

    Example:

        classcast usage compliance --week 2026-W48 --min 3
        classcast usage compliance --db postgresql://classcast@db.district/usage --week 2026-W48
    """
    from controller.reports import compliance, format_csv, format_json, format_table, now_week
    from controller.roster import Roster
    from controller.schooldb import week_days

    def period(zone: str) -> tuple[date, date]:
        try:
            return week_days(week or now_week(tz=zone))
        except ValueError:
            raise click.BadParameter(
                t(
                    "Write dates as YYYY-MM-DD (such as 2026-11-23) and weeks as YYYY-Www "
                    "(such as 2026-W48), and try again."
                ),
                param_hint="--week",
            ) from None

    if db_target is not None and _is_url(db_target):
        from controller.district import district_compliance

        _no_tz_for_district(tz)
        monday, _sunday = period("Europe/Moscow")
        year, number, _ = monday.isocalendar()
        with _district(db_target) as district:
            rows = district_compliance(
                district,
                week=f"{year}-W{number:02d}",
                school=_district_school(district, school_id),
                min_lessons=min_lessons,
                min_minutes=min_minutes,
                require_source=not any_content,
            )
        text = {
            "table": lambda: _district_header(format_table(rows, tz="UTC")),
            "csv": lambda: format_csv(rows, compliance_rows=True),
            "json": lambda: format_json(rows),
        }[fmt]()
        _emit(text, None)
        return
    db = _open_db(obj, Path(db_target) if db_target else None)
    try:
        Roster(db).gather_names()
        with _report_zone(db, tz, period) as (monday, _sunday):
            year, number, _ = monday.isocalendar()
            rows = compliance(
                db,
                week=f"{year}-W{number:02d}",
                min_lessons=min_lessons,
                min_minutes=min_minutes,
                require_source=not any_content,
            )
            text = {
                "table": lambda: _zone_header(db, format_table(rows, tz=db.tz_name)),
                "csv": lambda: format_csv(rows),
                "json": lambda: format_json(rows),
            }[fmt]()
    finally:
        db.close()
    _emit(text, None)


# --------------------------------------------------------------------------- roster


def _who(obj: Ctx) -> str:
    """Who an admin's decision is recorded as: the name given here and this computer's id."""
    identity = obj.home.identity(obj.teacher)
    return f"{identity.name or '?'} ({identity.controller_id})"


_ROW_PROBLEMS: Final = {
    "no_id": N_("line {line}: no teacher id"),
    "no_name": N_("line {line}: no name"),
    "id_too_long": N_("line {line}: the id is longer than {n} characters"),
    "name_too_long": N_("line {line}: the name is longer than {n} characters"),
    "control": N_("line {line}: unreadable or control characters (save the file as UTF-8)"),
    "duplicate_id": N_("line {line}: the id is already on line {other}"),
    "one_column": N_("line {line}: one column only (expected an id and a name)"),
}


def _roster_file_text(exc: RosterFileError) -> str:
    """Why a roster file was refused, in the admin's words, with what to do next."""
    from controller.roster import (
        MAX_ROSTER_FILE_BYTES,
        MAX_ROSTER_ROWS,
        MAX_SHOWN_PROBLEMS,
        MAX_TEACHER_ID_CHARS,
        MAX_TEACHER_NAME_CHARS,
    )

    if exc.reason == "too_large":
        head = t("The file is larger than {size}.", size=size_text(MAX_ROSTER_FILE_BYTES))
    elif exc.reason == "too_many_rows":
        head = t("The file lists more than {n} teachers.", n=MAX_ROSTER_ROWS)
    elif exc.reason == "not_text":
        head = t(
            "The file is not a CSV text file: save it from Excel as CSV (semicolon-separated) "
            "or CSV UTF-8."
        )
    elif exc.reason == "bad_csv":
        head = t('A quote (") in the file is never closed.')
    elif exc.reason == "empty":
        head = t("The file lists no teachers.")
    else:
        lines = []
        for problem in exc.problems[:MAX_SHOWN_PROBLEMS]:
            n = MAX_TEACHER_ID_CHARS if problem.code == "id_too_long" else MAX_TEACHER_NAME_CHARS
            lines.append(
                t(_ROW_PROBLEMS[problem.code], line=problem.line, other=problem.other, n=n)
            )
        if len(exc.problems) > MAX_SHOWN_PROBLEMS:
            lines.append(t("and {n} more", n=len(exc.problems) - MAX_SHOWN_PROBLEMS))
        head = t("Bad lines in the file:") + "\n" + "\n".join(lines)
    return (
        head
        + "\n"
        + t(
            "Nothing was imported. Fix the file (a teacher id and a full name on each line) "
            "and run the import again."
        )
    )


def _roster_error_text(exc: RosterError) -> str:
    if exc.what == "teacher":
        return t(
            "No teacher with id {value} on the roster: see `classcast usage roster`.",
            value=exc.value,
        )
    if exc.what == "device":
        return t(
            "No controller {value} in the usage records: see `classcast usage teachers`.",
            value=exc.value,
        )
    return t("These are one teacher already: see `classcast usage roster`.")


@usage.group("roster", invoke_without_command=True)
@_db_option
@click.pass_context
def usage_roster(ctx: click.Context, db_path: Path | None) -> None:
    """List the school's roster of teachers: their school id and name, nothing else.

    Import it with usage roster import; reports count each roster teacher as one person
    over all their computers (docs/admin.md, “Teachers”).

    Example:

        classcast usage roster
        classcast usage roster import учителя.csv
    """
    if ctx.invoked_subcommand is not None:
        return
    from controller.roster import Roster

    obj: Ctx = ctx.obj
    db = _open_db(obj, db_path)
    try:
        teachers = Roster(db).teachers()
    finally:
        db.close()
    if not teachers:
        echo(
            t(
                "The roster is empty. Import the school's list of teachers: "
                "`classcast usage roster import FILE.csv` (a teacher id and a full name on "
                "each line)."
            )
        )
        return
    names = {teacher.teacher_id: teacher.name for teacher in teachers}
    rows = [[t("Id"), t("Teacher"), t("Note")]]
    for teacher in teachers:
        if teacher.merged_into:
            note = t(
                "the same person as {name} ({id})",
                name=names.get(teacher.merged_into, "?"),
                id=teacher.merged_into,
            )
        elif teacher.left_at:
            note = t("not in the last imported list ({when})", when=teacher.left_at[:10])
        else:
            note = ""
        rows.append([teacher.teacher_id, clean_name(teacher.name), note])
    echo(text_table(rows))


@usage_roster.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@_db_option
@click.pass_obj
def usage_roster_import(obj: Ctx, file: Path, db_path: Path | None) -> None:
    """Import the school's list of teachers from a CSV file: a teacher id and a full name.

    UTF-8 or Windows-1251 (Excel's), “;” or “,” between fields, with a heading line
    or not. A file with a bad line is refused whole. Importing again renames teachers
    by id; teachers missing from the new list are kept, marked as no longer listed.

    Example:

        classcast usage roster import учителя.csv
    """
    from controller.roster import (
        MAX_ROSTER_FILE_BYTES,
        Roster,
        RosterFileError,
        parse_roster_csv,
    )

    with file.open("rb") as f:
        data = f.read(MAX_ROSTER_FILE_BYTES + 1)
    try:
        entries = parse_roster_csv(data)
    except RosterFileError as exc:
        raise click.ClickException(_roster_file_text(exc)) from None
    db = _open_db(obj, db_path)
    try:
        result = Roster(db).import_entries(entries, _who(obj), datetime.now(UTC))
    finally:
        db.close()
    echo(
        t(
            "Roster imported: {added} added, {renamed} renamed, {unchanged} unchanged, "
            "{left} no longer listed (kept), {back} listed again.",
            added=result.added,
            renamed=result.renamed,
            unchanged=result.unchanged,
            left=result.left,
            back=result.back,
        )
    )
    echo(t("Next: `classcast usage teachers` shows whom each computer is bound to."))


@usage.group("teachers", invoke_without_command=True)
@_db_option
@click.pass_context
def usage_teachers(ctx: click.Context, db_path: Path | None) -> None:
    """List the teachers' computers seen in the usage records and whom each counts as.

    A computer is bound to a roster teacher by an admin (usage teachers bind), or by
    name when the names typed on it match exactly one teacher on the roster.

    Example:

        classcast usage teachers
        classcast usage teachers bind c-1a2b3c4d5e6f7a8b 0042
    """
    if ctx.invoked_subcommand is not None:
        return
    from controller.roster import Roster

    obj: Ctx = ctx.obj
    db = _open_db(obj, db_path)
    try:
        devices = Roster(db).devices()
    finally:
        db.close()
    if not devices:
        echo(t("No usage records yet: collect them with `classcast usage collect`."))
        return
    rows = [[t("Computer"), t("Names typed on it"), t("Counts as")]]
    unbound = False
    for device in devices:
        names = ", ".join(clean_name(n) or "—" for n in device.names) or "—"
        if device.how == "admin":
            bound = t(
                "{name} ({id}), bound by {who} at {when}",
                name=clean_name(device.teacher_name or "?"),
                id=device.teacher_id,
                who=device.who,
                when=device.bound_at,
            )
        elif device.how == "name":
            bound = t(
                "{name} ({id}), by name",
                name=clean_name(device.teacher_name or "?"),
                id=device.teacher_id,
            )
        elif device.who:
            bound = t("nobody, unbound by {who} at {when}", who=device.who, when=device.bound_at)
        else:
            unbound = True
            bound = t("not bound")
            if device.candidates:
                bound += " " + t(
                    "(names of several teachers: {ids})", ids=", ".join(device.candidates)
                )
        rows.append([device.device_id, names, bound])
    echo(text_table(rows))
    if unbound:
        echo(
            t(
                "A computer that is not bound is its own row in reports, not on the roster. "
                "Bind it: `classcast usage teachers bind COMPUTER TEACHER_ID` (ids from "
                "`classcast usage roster`)."
            )
        )


@usage_teachers.command("bind")
@click.argument("device", metavar="COMPUTER")
@click.argument("teacher_id", metavar="TEACHER_ID")
@_db_option
@click.pass_obj
def usage_teachers_bind(obj: Ctx, device: str, teacher_id: str, db_path: Path | None) -> None:
    """Bind a teacher's computer to a roster teacher: its lessons count as theirs.

    An admin's binding wins over a binding by name. The decision is recorded with
    this computer's name and the time.

    Example:

        classcast usage teachers bind c-1a2b3c4d5e6f7a8b 0042
    """
    teacher = _roster_decision(
        obj, db_path, lambda roster, who, now: roster.bind(device, teacher_id, who, now)
    )
    echo(
        t(
            "{device} now counts as {name} ({id}); reports count its lessons as theirs.",
            device=device,
            name=clean_name(teacher.name),
            id=teacher.teacher_id,
        )
    )


def _roster_decision(
    obj: Ctx, db_path: Path | None, decide: Callable[[Roster, str, datetime], T]
) -> T:
    """Run an admin's roster decision with who decided and when; a refusal in Russian."""
    from controller.roster import Roster, RosterError

    db = _open_db(obj, db_path)
    try:
        return decide(Roster(db), _who(obj), datetime.now(UTC))
    except RosterError as exc:
        raise click.ClickException(_roster_error_text(exc)) from None
    finally:
        db.close()


@usage_teachers.command("unbind")
@click.argument("device", metavar="COMPUTER")
@_db_option
@click.pass_obj
def usage_teachers_unbind(obj: Ctx, device: str, db_path: Path | None) -> None:
    """Make a computer count as nobody on the roster, not even by the name typed on it.

    Its lessons show as its own row in reports. Bind it again with usage teachers bind.
    The decision is recorded with this computer's name and the time.

    Example:

        classcast usage teachers unbind c-1a2b3c4d5e6f7a8b
    """
    _roster_decision(obj, db_path, lambda roster, who, now: roster.unbind(device, who, now))
    echo(
        t(
            "{device} is bound to nobody: reports show it as its own row. Bind it with "
            "`classcast usage teachers bind {device} TEACHER_ID`.",
            device=device,
        )
    )


@usage_teachers.command("merge")
@click.argument("keep_id", metavar="TEACHER_ID")
@click.argument("other_id", metavar="OTHER_ID")
@_db_option
@click.pass_obj
def usage_teachers_merge(obj: Ctx, keep_id: str, other_id: str, db_path: Path | None) -> None:
    """Record that two roster entries are one teacher: OTHER_ID counts as TEACHER_ID.

    The decision is recorded with this computer's name and the time.

    Example:

        classcast usage teachers merge 0042 0107
    """
    keep = _roster_decision(
        obj, db_path, lambda roster, who, now: roster.merge(keep_id, other_id, who, now)
    )
    echo(
        t(
            "{other} is now the same teacher as {name} ({id}): reports count them as one.",
            other=other_id,
            name=clean_name(keep.name),
            id=keep.teacher_id,
        )
    )


@usage.command("timezone")
@_db_option
@click.argument("zone", required=False, callback=_check_tz)
@click.pass_obj
def usage_timezone(obj: Ctx, db_path: Path | None, zone: str | None) -> None:
    """Show or set the school's time zone, in which reports cut days and weeks.

    Example:

        classcast usage timezone Asia/Novosibirsk
    """
    db = _open_db(obj, db_path)
    try:
        if zone is not None:
            db.set_timezone(zone)
        name = db.tz_name
        chosen = db.timezone_chosen
    finally:
        db.close()
    click.echo(t("Timezone: {tz}", tz=name))
    if not chosen:
        click.echo(
            t("This is the default; set the school's time zone with classcast usage timezone ZONE.")
        )


@usage.group("libraries", invoke_without_command=True)
@_db_option
@option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def usage_libraries(ctx: click.Context, db_path: Path | None, as_json: bool) -> None:
    """List the content libraries whose content counts in reports (the weekly norm).

    A record counts as library content when the address it names (the page the panel
    opened, or the source a lesson declared for a file) is on one of a library's sites
    or under one (docs/admin.md, 3.1). Until changed: «Моя школа» (ЦОК) and РЭШ.

    Example:

        classcast usage libraries
        classcast usage libraries add uchi uchi.ru
        classcast usage libraries remove uchi
        classcast usage libraries reset
    """
    ctx.meta["db_path"] = db_path
    if ctx.invoked_subcommand is not None:
        return
    db = _open_db(ctx.obj, db_path)
    try:
        _echo_libraries(db, as_json)
    finally:
        db.close()


def _echo_libraries(db: SchoolDb, as_json: bool) -> None:
    from controller.libraries import library_label

    if as_json:
        echo(json_text([{"id": lib.id, "hosts": list(lib.hosts)} for lib in db.libraries]))
        return
    rows = [[lib.id, t(library_label(lib.id)), ", ".join(lib.hosts)] for lib in db.libraries]
    echo(text_table([[t("Id"), t("Library"), t("Sites")], *rows]) if rows else t("No libraries."))
    if not db.libraries_chosen:
        echo(t("This is the default list; change it with classcast usage libraries add/remove."))


def _change_libraries(
    ctx: click.Context, db_path: Path | None, change: Callable[[list[Library]], list[Library]]
) -> None:
    db = _open_db(ctx.obj, db_path or ctx.meta.get("db_path"))
    try:
        try:
            changed = db.set_libraries(change(list(db.libraries)))
        except ValueError as exc:
            raise click.ClickException(_library_problem(str(exc))) from None
        _echo_libraries(db, as_json=False)
    finally:
        db.close()
    echo(t("Records whose library changed: {count}.", count=changed))


def _library_problem(detail: str) -> str:
    if "library id" in detail:
        return t(
            "A library's id is a short Latin name (letters, digits, - and _), such as uchi: "
            "choose one and try again."
        )
    if "hosts" in detail or "host" in detail:
        return t(
            "Write each site as lib.myschool.edu.ru, without https:// or a path "
            "(at most {limit} per library), and try again.",
            limit=MAX_HOSTS_PER_LIBRARY,
        )
    return t("At most {limit} libraries can be listed.", limit=MAX_LIBRARIES)


@usage_libraries.command("add")
@_db_option
@click.argument("library_id", metavar="ID")
@click.argument("hosts", nargs=-1, required=True, metavar="SITE...")
@click.pass_context
def usage_libraries_add(
    ctx: click.Context, db_path: Path | None, library_id: str, hosts: tuple[str, ...]
) -> None:
    """Add a library, or sites to a library, and re-mark the records already collected.

    Example:

        classcast usage libraries add uchi uchi.ru
        classcast usage libraries add myschool myschool.ru
    """
    from controller.libraries import library

    def change(current: list[Library]) -> list[Library]:
        old = next((lib for lib in current if lib.id == library_id), None)
        new = library(library_id, [*(old.hosts if old else ()), *hosts])
        if old is None:
            return [*current, new]
        return [new if lib.id == library_id else lib for lib in current]

    _change_libraries(ctx, db_path, change)


@usage_libraries.command("remove")
@_db_option
@click.argument("library_id", metavar="ID")
@click.pass_context
def usage_libraries_remove(ctx: click.Context, db_path: Path | None, library_id: str) -> None:
    """Stop counting a library's content, in the records already collected too.

    Example:

        classcast usage libraries remove resh
    """

    def change(current: list[Library]) -> list[Library]:
        if all(lib.id != library_id for lib in current):
            raise click.ClickException(
                t(
                    "There is no library {id}: `classcast usage libraries` lists them.",
                    id=clean_name(library_id),
                )
            )
        return [lib for lib in current if lib.id != library_id]

    _change_libraries(ctx, db_path, change)


@usage_libraries.command("reset")
@_db_option
@click.pass_context
def usage_libraries_reset(ctx: click.Context, db_path: Path | None) -> None:
    """Go back to the default libraries («Моя школа» and РЭШ).

    Example:

        classcast usage libraries reset
    """
    db = _open_db(ctx.obj, db_path or ctx.meta.get("db_path"))
    try:
        changed = db.set_libraries(None)
        _echo_libraries(db, as_json=False)
    finally:
        db.close()
    echo(t("Records whose library changed: {count}.", count=changed))


@usage.command("problems")
@_db_option
@click.pass_obj
def usage_problems(obj: Ctx, db_path: Path | None) -> None:
    """List the records collection stops at, one per panel, with the cause.

    Decide on each with usage accept or usage quarantine (docs/admin.md).

    Example:

        classcast usage problems
    """
    db = _open_db(obj, db_path)
    try:
        held = db.problems()
    finally:
        db.close()
    if not held:
        echo(t("No open problems: collection goes on from every panel."))
        return
    for problem in held:
        echo(
            t(
                "{room} ({kiosk_id}): record #{seq}: {cause}. Collection stops there "
                "(last seen {found_at}).",
                room=problem.room or "?",
                kiosk_id=problem.kiosk_id,
                seq=problem.seq,
                cause=t(CHAIN_PROBLEMS[problem.cause]),
                found_at=problem.found_at,
            )
        )
    echo(
        t(
            "Check the panel, then decide: `classcast usage accept PANEL SEQ` keeps the "
            "record and counts it, `classcast usage quarantine PANEL SEQ` keeps it out of "
            "reports. Either way collection goes on after it."
        )
    )


@usage.command("accept")
@click.argument("panel")
@click.argument("seq", type=click.IntRange(min=1))
@_db_option
@click.pass_obj
def usage_accept(obj: Ctx, panel: str, seq: int, db_path: Path | None) -> None:
    """Keep a held record as the panel sent it, count it, and collect on after it.

    The decision is recorded with this computer's name and the time.

    Example:

        classcast usage accept "Каб. 7" 3
    """
    _decide(obj, panel, seq, "accept", db_path)


@usage.command("quarantine")
@click.argument("panel")
@click.argument("seq", type=click.IntRange(min=1))
@_db_option
@click.pass_obj
def usage_quarantine(obj: Ctx, panel: str, seq: int, db_path: Path | None) -> None:
    """Keep a held record out of reports, and collect on after it.

    The decision is recorded with this computer's name and the time.

    Example:

        classcast usage quarantine "Каб. 7" 3
    """
    _decide(obj, panel, seq, "quarantine", db_path)


def _decide(obj: Ctx, name: str, seq: int, action: DecisionAction, db_path: Path | None) -> None:
    """Record an admin's decision on the held record ``seq`` of panel ``name``."""
    from controller.schooldb import NoSuchProblemError

    db = _open_db(obj, db_path)
    try:
        kiosk_id, room = _school_panel(db, name)
        who = _who(obj)
        try:
            db.decide(kiosk_id, seq, action, who, datetime.now(UTC))
        except NoSuchProblemError:
            raise click.ClickException(
                t(
                    "{room} has no record #{seq} that collection stops at: see "
                    "`classcast usage problems`.",
                    room=room,
                    seq=seq,
                )
            ) from None
    finally:
        db.close()
    if action == "accept":
        echo(t("{room}: record #{seq} accepted; collection goes on after it.", room=room, seq=seq))
    else:
        echo(
            t(
                "{room}: record #{seq} quarantined, out of reports; collection goes on after it.",
                room=room,
                seq=seq,
            )
        )


@usage.command("forget-key")
@click.argument("panel")
@_db_option
@click.pass_obj
def usage_forget_key(obj: Ctx, panel: str, db_path: Path | None) -> None:
    """Forget the signing key of a reinstalled panel; the next collection pins its new key.

    The records stored so far stay, verified with the old key. Do it only for a panel
    you know was reinstalled: otherwise a changed key means someone impersonates it.
    The decision is recorded with this computer's name and the time.

    Example:

        classcast usage forget-key "Каб. 7"
    """
    db = _open_db(obj, db_path)
    try:
        kiosk_id, room = _school_panel(db, panel)
        who = _who(obj)
        decision = db.forget_key(kiosk_id, who, datetime.now(UTC))
    finally:
        db.close()
    echo(
        t(
            "{room}: its old signing key is forgotten (records up to #{seq} stay verified "
            "with it); the next collection pins the key it signs with now.",
            room=room,
            seq=decision.seq,
        )
    )


def _school_panel(db: SchoolDb, name: str) -> tuple[str, str]:
    """The kiosk id and room of the panel ``name`` (kiosk id, room or address) in the
    school database, which knows every panel ever collected, reachable or not."""
    wanted = name.strip()
    folded = wanted.casefold()
    kiosks = db.kiosks()
    for matches in (
        [k for k in kiosks if k.kiosk_id == wanted],
        [k for k in kiosks if k.address == wanted],
        [k for k in kiosks if k.room.casefold() == folded],
    ):
        if len(matches) == 1:
            return matches[0].kiosk_id, matches[0].room or matches[0].kiosk_id
        if len(matches) > 1:
            raise click.ClickException(
                t(
                    "Several panels in the school database are named {name}: give the kiosk "
                    "id shown by `classcast usage problems`.",
                    name=wanted,
                )
            )
    raise click.ClickException(
        t(
            "No panel named {name} in the school database: give the room or kiosk id shown "
            "by `classcast usage problems`.",
            name=wanted,
        )
    )


@usage.command("verify")
@_db_option
@click.pass_obj
def usage_verify(obj: Ctx, db_path: Path | None) -> None:
    """Check that no usage record in the school database was edited, deleted or inserted.

    Every record is signed by its panel and chained to the one before it.

    Example:

        classcast usage verify
    """
    db = _open_db(obj, db_path)
    try:
        problems = db.verify()
        decisions = db.decisions()
        count = db.record_count()
    finally:
        db.close()
    for decision in decisions:
        echo(_decision_text(decision))
    for problem in problems:
        echo(chain_problem_text(problem), err=True)
    if problems:
        echo(
            t(
                "The school database was changed outside ClassCast. Restore it from a backup "
                "and collect from the panels again (docs/admin.md, “Tamper evidence”)."
            ),
            err=True,
        )
        raise click.ClickException(t("{n} problems found.", n=len(problems)))
    echo(t("All {n} records verified.", n=count))


def _decision_text(decision: Decision) -> str:
    """One admin's decision on a held record, as ``usage verify`` lists it."""
    values = {
        "room": decision.room or decision.kiosk_id,
        "seq": decision.seq,
        "who": decision.who,
        "when": decision.decided_at,
        "cause": t(CHAIN_PROBLEMS[decision.cause or "inserted"]),
    }
    if decision.action == "forget_key":
        return t(
            "{room}: signing key forgotten by {who} at {when}; records up to #{seq} are "
            "verified with the old key.",
            **values,
        )
    if decision.action == "accept":
        return t("{room}: record #{seq} accepted by {who} at {when} ({cause}).", **values)
    return t("{room}: record #{seq} quarantined by {who} at {when} ({cause}).", **values)


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        echo(text.rstrip("\n"))
        return
    output.write_text(text, encoding="utf-8")
    echo(t("Written to {path}.", path=output))


def main() -> None:
    """Entry point of the ``classcast`` console script."""
    cli(prog_name="classcast")
