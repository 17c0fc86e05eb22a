"""The teacher's app: a Starlette application served on loopback by ``classcast app``.

Pages are rendered on the server (Jinja2) and updated with htmx; the live parts (the
panels, the cast's progress and picture) come as server-sent events, fragments of
HTML sent only when they changed, and only while the page is visible (the page closes
its event stream when hidden). Every request passes :class:`~controller.webapp.security.Guard`;
every error becomes a Russian page or fragment, never a traceback (the log keeps it).

Build the app with :func:`create_app`, run it with :func:`serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, get_args
from urllib.parse import parse_qs

import click
import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from controller.errorlog import (
    DailyLogHandler,
    OneLineFormatter,
    not_recorded,
    record_exception,
    unexpected_error_text,
)
from controller.home import Home
from controller.i18n import language, size_text, t
from controller.remote import GrantBook
from controller.texts import item_failure_text, skipped_file_text
from controller.webapp import admin, lessons, security
from controller.webapp.admin import AdminSource, SchoolSource
from controller.webapp.backend import AppError, Backend, error_text
from controller.webapp.launch import bind as bind
from controller.webapp.launch import launch_url, new_launch_token
from controller.webapp.launch import loopback_hosts as loopback_hosts
from controller.webapp.lessons import (
    LessonLibrary,
    UploadError,
    is_system_path,
    safe_relative_path,
    too_large_file_text,
    too_large_lesson_text,
)
from controller.webapp.live import Hub, TeacherCast
from controller.webapp.remote import RemoteListener, RemoteTarget, grant_routes
from controller.webapp.security import BodyTooLargeError, Guard
from controller.webapp.sharing import TeacherShare
from media.lesson import web_link_item
from media.office import OfficeConverter
from media.weblink import MAX_URL_CHARS
from protocol import limits
from protocol.errors import ClassCastError
from protocol.messages import ControlAction
from protocol.text import clean_name

logger = logging.getLogger(__name__)

HERE: Final = Path(__file__).resolve().parent

SSE_KEEPALIVE_S: Final = 15.0
"""A comment line on an idle event stream this often, so that a closed page is noticed."""

CONTROL_ACTIONS: Final[frozenset[str]] = frozenset(get_args(ControlAction))


def status_text(status: int) -> str:
    """What a refusal page with ``status`` says (400 for any status not listed)."""
    match status:
        case 403:
            return t("This page opens only from `classcast app` on this computer: run it again.")
        case 404 | 405:
            return t("Nothing here.")
        case 413:
            return t("The request is too large.")
        case 500:
            return t("Something went wrong; see the log.")
        case _:
            return t("The request was not understood.")


CSP: Final = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)


@dataclass(slots=True)
class AppConfig:
    """How the app was started.

    Args:
        home: the controller's files.
        teacher: ``--teacher``, or ``None``.
        timeout_s: ``--timeout``.
        secret, launch_token: the launch secret and its one-time token (random if not
            given; tests pass their own).
        hosts: the ``Host`` values allowed; set by :func:`serve` once bound.
        remote_host: the address the phone remote's LAN listener binds
            (``--remote-host``); ``None``: ``$CLASSCAST_REMOTE_HOST``, else this
            computer's address on its default route.
    """

    home: Home
    teacher: str | None = None
    timeout_s: float = 10.0
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    launch_token: str = field(default_factory=new_launch_token)
    hosts: frozenset[str] = frozenset()
    remote_host: str | None = None
    school_db: Path | None = None
    """The school's usage database the admin's pages read (``None``:
    ``CLASSCAST_HOME/school.sqlite``, as the ``usage`` commands)."""
    reports: AdminSource | None = None
    """Where the admin's pages read reports (``None``: :attr:`school_db`)."""
    state: TeacherApp | None = field(default=None, init=False)
    """The app built for this configuration (set by :func:`create_app`)."""


class TeacherApp:
    """The state behind the pages: one teacher, one browser, one cast."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.backend = Backend(config.home, config.teacher, config.timeout_s)
        self.hub = Hub(self.backend)
        self.cast = TeacherCast(self.backend, self.hub)
        self.share = TeacherShare(self.hub, config.timeout_s)
        """«Show my screen»: this computer's screen on the chosen panels."""
        # One LibreOffice, started by the first document dropped, kept warm until the app
        # stops: the next deck costs only its conversion.
        self.converter = OfficeConverter(config.home.converted_dir())
        self.library = LessonLibrary(
            config.home.root / "lessons", config.home.library_hosts, self.converter
        )
        self.selected: str | None = None
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.globals.update(
            t=t,
            size_text=size_text,
            clean=clean_name,
            slide_text=lessons.slide_text,
            item_failure_text=item_failure_text,
            local_text=admin.local_text,
            seen_text=admin.seen_text,
            cache_text=admin.cache_text,
            problem_text=admin.problem_text,
        )
        self.remote_book = GrantBook()
        target: RemoteTarget = self.cast
        self.remote_listener = RemoteListener(self.remote_book, target, host=config.remote_host)
        """The phone remote's LAN listener: open only while a grant is held."""
        self.thumbnailer = ThreadPoolExecutor(
            lessons.MAX_THUMBNAIL_JOBS, thread_name_prefix="app thumbnails"
        )
        """Threads of the strip's thumbnails alone (a video's may take FRAME_TIMEOUT_S)."""
        self.lessons_swept = asyncio.Event()
        """Set after each sweep of the dropped lessons (:meth:`sweep_lessons`)."""

    def report_source(self) -> AdminSource:
        """Where the admin's pages read reports and collection from."""
        if self.config.reports is not None:
            return self.config.reports
        return SchoolSource(self.config.school_db or self.config.home.root / "school.sqlite")

    def kept_lessons(self) -> set[str]:
        """Lessons the library must not delete to make room: the cast one, the chosen one."""
        return {k for k in (self.selected, self.cast.lesson_key) if k is not None}

    async def sweep_lessons(self, interval_s: float = lessons.UPLOAD_SWEEP_S) -> None:
        """Delete abandoned drops and keep the library within ``MAX_LIBRARY_BYTES``: at
        once, then every ``interval_s``, until cancelled (the app's lifespan runs it)."""
        while True:
            try:
                await asyncio.to_thread(self.library.prune, time.time(), keep=self.kept_lessons())
            except Exception:  # the sweep's one broad catch: the next one tries again
                logger.exception("cleaning the dropped lessons failed")
            self.lessons_swept.set()
            await asyncio.sleep(interval_s)

    # ----------------------------------------------------------------- rendering

    def render(self, name: str, **values: Any) -> str:
        return self.templates.get_template(name).render(app=self, lang=language(), **values)

    def page(self, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(self.render(name, **values), status_code, headers=_page_headers())

    def fragment(self, name: str, **values: Any) -> HTMLResponse:
        return HTMLResponse(self.render(name, **values), headers={"cache-control": "no-store"})

    def messages(self, lines: list[str], *, ok: bool = False) -> HTMLResponse:
        return self.fragment("_messages.html", lines=lines, ok=ok)

    def lesson_view(self) -> dict[str, Any]:
        """The selected lesson (or the error that keeps it from loading), and a warning
        for each of its files that is left out."""
        if self.selected is None:
            return {"lesson": None, "lesson_error": None, "lesson_warnings": []}
        try:
            lesson = self.library.load(self.selected)
        except KeyError:
            self.selected = None
            return {"lesson": None, "lesson_error": None, "lesson_warnings": []}
        except ClassCastError as exc:
            return {"lesson": None, "lesson_error": error_text(exc), "lesson_warnings": []}
        warnings = [skipped_file_text(s, s.path.name) for s in lesson.skipped]
        return {"lesson": lesson, "lesson_error": None, "lesson_warnings": warnings}

    # ----------------------------------------------------------------- panels

    def panel_cards(self) -> list[dict[str, Any]]:
        cards = []
        for row in self.hub.rows:
            link = self.hub.links.get(row.address)
            status = link.status if link is not None else None
            cards.append(
                {
                    "row": row,
                    "link": link,
                    "status": status,
                    "online": link.online if link is not None else row.state is not None,
                    "paired": link is not None,
                    "room": clean_name((status.room if status else None) or row.room or "?"),
                }
            )
        return cards


def create_app(config: AppConfig) -> Starlette:
    """The teacher's app for ``config``; serve it with :func:`serve` (or a test client)."""
    state = TeacherApp(config)

    def refuse(status: int) -> ASGIApp:
        return state.page("error.html", status, message=status_text(status))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if isinstance(exc, BodyTooLargeError) and request.url.path.endswith("/files"):
            return JSONResponse({"error": status_text(413)}, 413)
        return refuse(status)  # type: ignore[return-value]

    async def on_error(request: Request, exc: Exception) -> Response:
        path = record_exception(
            config.home.root, datetime.now(), f"{request.method} {request.url.path}", exc
        )
        message = unexpected_error_text(path)
        logger.warning("%s", message)  # the terminal's one line; the file has the details
        return state.page("error.html", 500, message=message)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.hub.start()
        sweeper = asyncio.create_task(state.sweep_lessons(), name="app lessons sweep")
        try:
            yield
        finally:
            sweeper.cancel()
            state.thumbnailer.shutdown(wait=False, cancel_futures=True)
            await asyncio.to_thread(state.converter.close)
            with contextlib.suppress(Exception):
                await state.remote_listener.close()
            await state.share.stop()
            await state.hub.stop()

    routes: list[BaseRoute] = [
        Route("/", _index(state)),
        Route("/events", _events(state, _teacher_views)),
        Route("/fragments/panels", _handler(state, _panels_fragment)),
        Route("/fragments/cast", _handler(state, _cast_fragment)),
        Route("/panels/shot", _handler(state, _shot)),
        Route("/panels/add", _handler(state, _add_panel), methods=["POST"]),
        Route("/pair", _handler(state, _pair), methods=["POST"]),
        Route("/lessons", _handler(state, _begin_lesson), methods=["POST"]),
        Route("/lessons/link", _handler(state, _add_link), methods=["POST"]),
        Route("/lessons/{key}/files", _handler(state, _upload_file), methods=["PUT"]),
        Route("/lessons/{key}/done", _handler(state, _finish_lesson), methods=["POST"]),
        Route("/lessons/{key}/select", _handler(state, _select_lesson), methods=["POST"]),
        Route("/lessons/{key}/thumbs/{index:int}", _handler(state, _thumb)),
        Route("/cast", _handler(state, _start_cast), methods=["POST"]),
        Route("/control", _handler(state, _control), methods=["POST"]),
        WebSocketRoute("/control/socket", _control_socket(state)),
        Route("/announce", _handler(state, _announce), methods=["POST"]),
        Route("/share", _handler(state, _start_share), methods=["POST"]),
        Route("/share/stop", _handler(state, _stop_share), methods=["POST"]),
        *grant_routes(state.remote_book, state.cast, state.remote_listener),
        *admin.admin_routes(state, _events(state, _admin_views)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                Guard,
                secret=config.secret,
                launch_token=config.launch_token,
                hosts=lambda: config.hosts,
                refuse=refuse,
            ),
            Middleware(_SecurityHeaders),
        ],
        exception_handlers={HTTPException: on_http_error, Exception: on_error},
        lifespan=lifespan,
    )
    config.state = state
    return app


# --------------------------------------------------------------------------- handlers

Handler = Callable[[TeacherApp, Request], Awaitable[Response]]


def _handler(state: TeacherApp, fn: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await fn(state, request)
        except AppError as exc:
            return state.messages([str(exc)])

    return endpoint


def _index(state: TeacherApp) -> Callable[[Request], Awaitable[Response]]:
    async def index(request: Request) -> Response:
        return state.page(
            "index.html",
            cards=state.panel_cards(),
            recent=state.library.recent(),
            **state.lesson_view(),
            limits=limits,
            max_url_chars=MAX_URL_CHARS,
            teacher_name=state.backend.teacher_name(),
        )

    return index


async def _panels_fragment(state: TeacherApp, request: Request) -> Response:
    return state.fragment("_panels.html", cards=state.panel_cards())


async def _cast_fragment(state: TeacherApp, request: Request) -> Response:
    return state.fragment("_cast.html")


Views = Callable[[TeacherApp], Awaitable[Callable[[], list[tuple[str, str]]]]]
"""What an event stream sends: given the app, the function that renders each named
fragment now (called on every change; prepared once per stream)."""


async def _teacher_views(state: TeacherApp) -> Callable[[], list[tuple[str, str]]]:
    return lambda: [
        ("panels", state.render("_panels.html", cards=state.panel_cards())),
        ("cast", state.render("_cast.html")),
    ]


async def _admin_views(state: TeacherApp) -> Callable[[], list[tuple[str, str]]]:
    tz = await admin.source_timezone(state.report_source())
    return lambda: [("panels", admin.admin_panels_html(state, tz))]


def _events(state: TeacherApp, views: Views) -> Callable[[Request], Awaitable[Response]]:
    async def events(request: Request) -> Response:
        render = await views(state)

        async def stream() -> AsyncIterator[str]:
            state.hub.viewer_joined()
            sent: dict[str, str] = {}
            version = -1
            try:
                while True:
                    if version == state.hub.version:
                        yield ": keep-alive\n\n"
                    version = state.hub.version
                    for name, html in render():
                        if sent.get(name) != html:
                            sent[name] = html
                            data = "".join(f"data: {line}\n" for line in html.splitlines())
                            yield f"event: {name}\n{data}\n"
                    if state.hub.closing or await request.is_disconnected():
                        return
                    await state.hub.wait_for_change(version, SSE_KEEPALIVE_S)
            finally:
                state.hub.viewer_left()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    return events


async def _shot(state: TeacherApp, request: Request) -> Response:
    link = state.hub.links.get(request.query_params.get("address", ""))
    if link is None or link.shot is None:
        raise HTTPException(404)
    return Response(
        link.shot,
        media_type="image/png",
        headers={"cache-control": "private, max-age=3600", "etag": f'"{link.shot_tag}"'},
    )


async def _form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=64)


def _field(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name, default)
    return value if isinstance(value, str) else default


async def _add_panel(state: TeacherApp, request: Request) -> Response:
    form = await _form(request)
    message = await state.backend.add_panel(_field(form, "address"))
    state.hub.refresh_rows()
    return state.messages([message], ok=True)


async def _pair(state: TeacherApp, request: Request) -> Response:
    form = await _form(request)
    address = _field(form, "address")
    if address not in {r.address for r in state.hub.rows if r.usable}:
        raise AppError(
            t(
                "Panel not found: {name}. Saved panels are listed by `classcast panels`.",
                name=clean_name(address),
            )
        )
    message = await state.backend.pair(
        address,
        _field(form, "pin"),
        admin=_field(form, "admin") == "1",
        teacher=_field(form, "teacher") or None,
    )
    state.hub.refresh_rows()
    return state.messages([message], ok=True)


# --------------------------------------------------------------------------- lessons


async def _begin_lesson(state: TeacherApp, request: Request) -> Response:
    form = await _form(request)
    try:
        total = int(_field(form, "total_bytes", "0"))
    except ValueError:
        total = 0
    if total > lessons.MAX_LESSON_UPLOAD_BYTES:
        return JSONResponse({"error": too_large_lesson_text()}, 413)
    try:
        upload = await asyncio.to_thread(
            state.library.begin,
            _field(form, "title"),
            total_bytes=max(0, total),
            keep=state.kept_lessons(),
        )
    except UploadError as exc:
        return JSONResponse({"error": str(exc)}, 413)
    return JSONResponse({"key": upload.key})


async def _upload_file(state: TeacherApp, request: Request) -> Response:
    """One dropped file, streamed to its place in the lesson folder."""
    upload = state.library.uploads.get(request.path_params["key"])
    if upload is None:
        raise HTTPException(404)
    raw_path = request.query_params.get("path", "")
    if is_system_path(raw_path):
        return Response(status_code=204)  # Thumbs.db, .DS_Store...: never part of a lesson
    try:
        relative = safe_relative_path(raw_path)
        target = upload.target(relative)
    except UploadError as exc:
        return JSONResponse({"error": str(exc)}, 400)
    written = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with target.open("xb") as out:
            async for chunk in request.stream():
                written += len(chunk)
                if written > security.MAX_UPLOAD_BYTES:
                    raise UploadError(too_large_file_text(str(relative)))
                if upload.total_bytes + written > lessons.MAX_LESSON_UPLOAD_BYTES:
                    raise UploadError(too_large_lesson_text())
                out.write(chunk)
    except OSError:  # the same name twice, a file where a folder should be
        return JSONResponse(
            {"error": t("The file name {name} is not allowed.", name=str(relative))}, 400
        )
    except (UploadError, BodyTooLargeError) as exc:
        target.unlink(missing_ok=True)
        message = str(exc) if isinstance(exc, UploadError) else too_large_file_text(str(relative))
        return JSONResponse({"error": message}, 413)
    upload.stored(written)
    return Response(status_code=204)


async def _finish_lesson(state: TeacherApp, request: Request) -> Response:
    key = request.path_params["key"]
    if key not in state.library.uploads:
        raise HTTPException(404)
    try:
        await asyncio.to_thread(state.library.finish, key, keep=state.kept_lessons())
    except ClassCastError as exc:
        return state.fragment(
            "_lesson.html", lesson=None, lesson_error=error_text(exc), lesson_warnings=[]
        )
    state.selected = key
    return state.fragment("_lesson.html", **state.lesson_view())


async def _add_link(state: TeacherApp, request: Request) -> Response:
    """A pasted web address: a web item at the end of the chosen lesson, or a lesson of
    its own when none is chosen (:meth:`LessonLibrary.add_link`)."""
    form = await _form(request)
    text = _field(form, "url")
    try:
        url = web_link_item(text, library_hosts=state.config.home.library_hosts()).url
        assert url is not None
        key = await asyncio.to_thread(
            state.library.add_link, url, key=state.selected, keep=state.kept_lessons()
        )
    except (ClassCastError, UploadError) as exc:
        view = state.lesson_view()
        message = error_text(exc) if isinstance(exc, ClassCastError) else str(exc)
        return state.fragment(
            "_lesson.html", lesson=view["lesson"], lesson_error=message, lesson_warnings=[]
        )
    state.selected = key
    return state.fragment("_lesson.html", **state.lesson_view())


async def _select_lesson(state: TeacherApp, request: Request) -> Response:
    key = request.path_params["key"]
    if state.library.folder(key) is None:
        raise HTTPException(404)
    state.selected = key
    with contextlib.suppress(ClassCastError):  # lesson_view says why
        await asyncio.to_thread(state.library.load, key)
    return state.fragment("_lesson.html", **state.lesson_view())


async def _thumb(state: TeacherApp, request: Request) -> Response:
    key, index = request.path_params["key"], request.path_params["index"]
    try:
        png = await asyncio.get_running_loop().run_in_executor(
            state.thumbnailer, state.library.thumbnail, key, index
        )
    except (KeyError, ClassCastError):
        raise HTTPException(404) from None
    if png is None:
        raise HTTPException(404)
    return Response(
        png, media_type="image/png", headers={"cache-control": "private, max-age=86400"}
    )


# --------------------------------------------------------------------------- cast and control


async def _start_cast(state: TeacherApp, request: Request) -> Response:
    form = await _form(request)
    targets = [v for v in form.getlist("target") if isinstance(v, str)]
    known = {r.address for r in state.hub.rows if r.usable}
    targets = [a for a in dict.fromkeys(targets) if a in known]
    if not targets:
        raise AppError(t("Choose the panels to show the lesson on."))
    if state.selected is None:
        raise AppError(t("Choose a lesson first: drop a folder or files, or pick a recent one."))
    if state.cast.busy:
        raise AppError(t("The lesson is still being sent: wait for it to start."))
    try:
        lesson = await asyncio.to_thread(state.library.load, state.selected)
    except ClassCastError as exc:
        raise AppError(error_text(exc)) from None
    except KeyError:
        raise AppError(
            t("Choose a lesson first: drop a folder or files, or pick a recent one.")
        ) from None
    try:
        start = int(_field(form, "start", "1"))
    except ValueError:
        start = 1
    if not 1 <= start <= len(lesson.items):
        raise AppError(t("Item numbers start at 1."))
    state.cast.start(lesson, state.selected, targets, start - 1)
    return state.messages([])


async def _start_share(state: TeacherApp, request: Request) -> Response:
    form = await _form(request)
    targets = [v for v in form.getlist("target") if isinstance(v, str)]
    known = {r.address for r in state.hub.rows if r.usable}
    targets = [a for a in dict.fromkeys(targets) if a in known]
    if not targets:
        raise AppError(t("Choose the panels to show your screen on."))
    return state.messages(await state.share.start(targets))


async def _stop_share(state: TeacherApp, request: Request) -> Response:
    await state.share.stop()
    return state.messages([])


async def _control(state: TeacherApp, request: Request) -> Response:
    form = await _form(request)
    return state.messages(await _apply_control(state, lambda name: _field(form, name)))


async def _apply_control(state: TeacherApp, field: Callable[[str], str]) -> list[str]:
    """Carry out the control the fields name (``action``; ``number``, ``position`` or
    ``volume``) on the cast; returns the error lines to show.

    Raises:
        AppError: a value the teacher typed is wrong (the message says how).
        HTTPException: 400, a field the page never sends so.
    """
    action = field("action")
    if action not in CONTROL_ACTIONS:
        raise HTTPException(400)
    index = position_ms = volume = None
    if action == "goto":
        number = _int(field("number"))
        if number is None or number < 1:
            raise AppError(t("Item numbers start at 1."))
        index = number - 1
    elif action == "seek":
        from controller.cli import parse_time_ms

        try:
            position_ms = parse_time_ms(field("position"))
        except click.BadParameter as exc:
            raise AppError(exc.format_message()) from None
    elif action == "volume":
        volume = _int(field("volume"))
        if volume is None or not 0 <= volume <= limits.MAX_VOLUME_PERCENT:
            raise HTTPException(400)
    return await state.cast.control(
        action,  # type: ignore[arg-type]
        index=index,
        position_ms=position_ms,
        volume=volume,
    )


def _control_socket(state: TeacherApp) -> Callable[[WebSocket], Awaitable[None]]:
    """The page's controls over one open WebSocket (``/control/socket``): each text
    message is a control in the form ``/control`` takes (``action=next``), answered in
    order with the ``#messages`` fragment. It spares each click the browser's request
    machinery (about 1.5 ms of a click's way to the panel); the page falls back to
    ``POST /control`` while the socket is not open. Guard checked Host, Origin and the
    cookie before the handshake; ``serve`` bounds a message to
    :data:`~controller.webapp.security.MAX_SOCKET_MESSAGE_BYTES`.
    """

    async def control_socket(socket: WebSocket) -> None:
        await socket.accept()
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:  # the page sends text only
                await socket.close(1003)
                return
            answer = await _socket_control(state, text)
            try:
                await socket.send_text(answer)
            except (WebSocketDisconnect, OSError):  # the page went away meanwhile
                return

    return control_socket


async def _socket_control(state: TeacherApp, text: str) -> str:
    """One control sent over the socket → the ``#messages`` fragment to answer."""
    try:
        fields = parse_qs(text, max_num_fields=8, strict_parsing=True)
        lines = await _apply_control(state, lambda name: fields.get(name, [""])[0])
    except AppError as exc:
        lines = [str(exc)]
    except HTTPException as exc:
        lines = [status_text(exc.status_code)]
    except ValueError:  # not a form, or too many fields
        lines = [status_text(400)]
    except Exception as exc:  # a bug: the log keeps it, the teacher reads one sentence
        path = record_exception(state.config.home.root, datetime.now(), "control socket", exc)
        lines = [unexpected_error_text(path)]
    return state.render("_messages.html", lines=lines, ok=False)


async def _announce(state: TeacherApp, request: Request) -> Response:
    form = await _form(request)
    clear = _field(form, "clear") == "1"
    text = _field(form, "text").strip()
    if not clear and not text:
        raise AppError(t("Give the TEXT to announce, or --clear."))
    level = _field(form, "level", "info")
    if level not in ("info", "alert"):
        raise HTTPException(400)
    duration = _int(_field(form, "duration"))
    if duration is not None and not 1 <= duration <= limits.MAX_ANNOUNCEMENT_S:
        raise HTTPException(400)
    everyone = _field(form, "scope") == "all"
    if everyone:
        targets = [p.address for p in state.backend.home.panels()]
        if not targets:
            raise AppError(t("No saved panels: add one with `classcast panels add HOST[:PORT]`."))
    else:
        known = {r.address for r in state.hub.rows if r.usable}
        targets = [a for a in form.getlist("target") if isinstance(a, str) and a in known]
        if not targets:
            raise AppError(t("Choose the panels to show the lesson on."))
    group = await state.backend.fresh_group(targets, "admin" if everyone else "teacher")
    try:
        if clear:
            outcomes = await group.each(lambda c: c.clear_announcement())
        else:
            outcomes = await group.each(
                lambda c: c.announce(text, level=level, duration_s=duration)  # type: ignore[arg-type]
            )
    finally:
        await group.close()
    lines, ok = [], True
    for o in outcomes:
        if o.error is not None:
            ok = False
            lines.append(
                t(
                    "{target}: error: {message}",
                    target=o.label,
                    message=error_text(o.error, o.room or o.target),
                )
            )
        else:
            action = t("announcement removed") if clear else t("announced")
            lines.append(t("{room}: {action}", room=o.label, action=action))
    return state.messages(lines, ok=ok)


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------- headers


def _page_headers() -> dict[str, str]:
    return {"cache-control": "no-store"}


class _SecurityHeaders:
    """Adds the headers every answer carries: no framing, no referrer, a strict CSP."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- serving


async def serve(
    config: AppConfig,
    sock: socket.socket,
    *,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the app on ``sock`` until cancelled or ``stop`` is set.

    ``on_ready`` gets the launch URL (with the one-time token) once the server listens.
    """
    handlers = _log_handlers(config.home)
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    try:
        await _serve(config, sock, on_ready=on_ready, stop=stop)
    finally:
        for handler in handlers:
            root.removeHandler(handler)


def _log_handlers(home: Home) -> list[logging.Handler]:
    """Errors with their tracebacks to the day's log file; warnings and errors as one
    line each on the terminal (never a traceback there)."""
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.WARNING)
    terminal.setFormatter(OneLineFormatter())
    terminal.addFilter(not_recorded)
    return [DailyLogHandler(home.root), terminal]


async def _serve(
    config: AppConfig,
    sock: socket.socket,
    *,
    on_ready: Callable[[str], None] | None,
    stop: asyncio.Event | None,
) -> None:
    import uvicorn

    host, port = sock.getsockname()[:2]
    config.hosts = loopback_hosts(host, port)
    app = create_app(config)
    state = config.state
    assert state is not None

    class Server(uvicorn.Server):
        """uvicorn's server, telling when it listens and when it begins to shut down."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            listening.set()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            hub.close_streams()  # the event streams end now, not at the grace's end
            await super().shutdown(sockets)

    hub = state.hub
    listening = asyncio.Event()
    server = Server(
        uvicorn.Config(
            app,
            log_level="warning",
            log_config=None,  # uvicorn's records reach the handlers of serve()
            server_header=False,
            date_header=False,
            access_log=False,
            timeout_graceful_shutdown=1,
            h11_max_incomplete_event_size=16 * 1024,
            ws="websockets-sansio",
            ws_max_size=security.MAX_SOCKET_MESSAGE_BYTES,
            ws_max_queue=security.MAX_SOCKET_QUEUE,
            ws_per_message_deflate=False,
        )
    )
    server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    waiter = asyncio.create_task(listening.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    url = launch_url(sock, config.launch_token)
    if on_ready is not None and server.started:
        on_ready(url)
    try:
        if stop is not None:
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        else:
            await task
    finally:
        state.hub.close_streams()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
