"""Scenes: what the panel window draws for each kind of item, and the idle screen.

A scene is made in two steps so that the window never waits for a file::

    builder = factory.load(request)   # loader thread: read and decode the file
    scene = builder()                 # main thread: upload textures, lay out text
    scene.enter(); scene.draw(); ...; scene.leave(); scene.delete()

:class:`SceneFactory` picks a loader by the item's kind. A loader that fails (a
missing blob, a corrupt file: any exception) gives an :class:`ErrorScene` naming the
item instead, so one bad file never stops the lesson. Video and web pages show a
:class:`PlaceholderScene` until their own modules register real loaders with
:meth:`SceneFactory.register`.

Scenes draw in window pixels (origin bottom left) and only draw: state changes arrive
through their methods, always on the main thread.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Protocol, cast

import pyglet
import segno
from PIL import Image, ImageOps
from pyglet import gl

from kiosk.i18n import tr
from kiosk.player import VideoCommand
from kiosk.x11 import VideoSurface, WindowHold
from media.markdown import (
    BULLET,
    SLIDE_BACKGROUND,
    SLIDE_HEADING,
    SLIDE_TEXT,
    Block,
    Color,
    parse_markdown,
)
from media.probe import PILLOW_FORMATS, check_picture_size
from media.store import BlobStore
from protocol.errors import MediaError, PictureTooLargeError
from protocol.limits import MAX_PICTURE_PIXELS
from protocol.messages import ItemFailure, ItemKind, ManifestItem
from protocol.text import clean_name

logger = logging.getLogger(__name__)

FONT_NAME = "DejaVu Sans"
"""A font with Cyrillic (Debian package fonts-dejavu-core)."""

BLACK: Color = (0, 0, 0, 255)
WHITE: Color = (255, 255, 255, 255)
IDLE_BACKGROUND: Color = (21, 42, 64, 255)
ERROR_BACKGROUND: Color = (66, 24, 24, 255)
PLACEHOLDER_BACKGROUND: Color = (38, 50, 56, 255)
MUTED_TEXT: Color = (200, 210, 220, 255)

PDF_CACHE_DOCUMENTS = 2
"""Open PDF documents kept by the loader (the current lesson's, usually one)."""

IMAGE_FORMATS = tuple(PILLOW_FORMATS.values())
"""The only Pillow plugins that read an image item's file (PNG, JPEG, WebP, GIF, BMP,
TIFF, AVIF): a blob of another kind, whatever its bytes, gives the error slide."""

MAX_ANIMATION_PIXELS = 24_000_000
"""Pixels of all the frames of an animated picture together, as kept for the panel (4
bytes each: 96 MB). Frames are kept at their own size (the sprite scales them to fit
the screen); an animation with more pixels than this is kept smaller, and drawn scaled
up, rather than refused."""

MAX_ANIMATION_FRAMES = 1000
"""Frames of an animated picture that are shown; later frames are left out."""

MIN_FRAME_S = 0.02
"""Shortest time a frame of an animation stays; browsers show a frame whose delay is
shorter (often 0 in old GIFs) for ``SHORT_FRAME_S`` instead, and so does the panel."""

SHORT_FRAME_S = 0.1
"""How long a frame whose delay is under ``MIN_FRAME_S`` stays."""


# --------------------------------------------------------------------------- contract


@dataclass(frozen=True, slots=True)
class SceneRequest:
    """Item ``index`` of the lesson, to be shown or preloaded."""

    index: int
    item: ManifestItem


@dataclass(slots=True)
class SceneContext:
    """What loaders and scenes may use; ``width`` and ``height`` are window pixels."""

    store: BlobStore
    width: int
    height: int
    lang: str = "ru"
    request_redraw: Callable[[], None] = lambda: None
    """Ask for a new frame (thread-safe): a scene whose picture changed by itself."""
    item_ended: Callable[[int], None] = lambda index: None
    """Report that item ``index`` played to its end (thread-safe; videos)."""
    item_failed: Callable[[int, ItemFailure, int | None], None] = lambda index, why, status: None
    """Report that item ``index`` could not be shown, why and the HTTP status of an
    ``http_error`` (thread-safe; a web page that did not open: see ``kiosk.web``)."""
    item_opened: Callable[[int], None] = lambda index: None
    """Report that item ``index``, a web page, was checked and opened (thread-safe)."""
    video_surface: VideoSurface | None = None
    """Where VLC's own output draws (X11 panels); ``None``: videos decode into frames."""
    volume: int = 100
    """Sound level of videos, percent (the player's ``volume``)."""
    window_hold: WindowHold | None = None
    """Keeps a Chromium window under the panel window until it painted (X11 panels)."""


FIRST_PICTURE_WAIT_S = 1.0
"""How long the previous scene stays on screen while the next one (a video) waits for
its first picture; after that the new scene shows regardless."""


class Scene:
    """Something drawn over the whole window. Every method runs on the main thread."""

    background: Color = BLACK
    first_picture_wait_s: float = FIRST_PICTURE_WAIT_S
    """Longest the previous scene stays on screen while this one is not :attr:`ready`."""

    @property
    def ready(self) -> bool:
        """Whether the scene has its first picture. Until it has, the window keeps
        showing the previous scene (a video waiting for its first frame, a web page
        for Chromium's first paint); a scene that becomes ready asks for a redraw
        (``SceneContext.request_redraw``)."""
        return True

    @property
    def uses_surface(self) -> bool:
        """Whether the scene shows through :attr:`SceneContext.video_surface` now."""
        return False

    @property
    def takes_keyboard(self) -> bool:
        """Whether another program's window (Chromium) has the keyboard now, so that
        the window must grab the presenter keys to keep them."""
        return False

    def draw(self) -> None:
        """Draw the scene (the window is already cleared to :attr:`background`)."""

    def enter(self) -> None:
        """The scene became visible."""

    def prime(self, at_s: float) -> None:
        """The scene will be entered at the instant ``at_s`` (monotonic seconds): get
        ready so that :meth:`enter` shows it at once (a video opens and stops at its
        first picture, and counts its time from the instant, not from its late
        entry). A primed scene that is not entered is left with :meth:`leave`."""

    def leave(self) -> None:
        """Another scene replaced this one (it may be shown again later). Called once
        the next scene's frame is up, never while drawing."""

    def shown(self) -> None:
        """The scene came on screen (it is ready, or its wait for a first picture is
        over); called once the frame is up, never while drawing."""

    def video(self, command: VideoCommand) -> None:
        """Pause, resume or seek (scenes that play something)."""

    def overlaid(self, covered: bool) -> None:
        """An announcement or the blank screen is (``covered``) or is no longer over
        the scene.

        The window draws those itself; a scene that shows another program's window
        over it (a web page in Chromium) must make way meanwhile. Called before
        :meth:`enter` and whenever that changes.
        """

    def delete(self) -> None:
        """Free textures and other resources; the scene is never drawn again."""


SceneBuilder = Callable[[], Scene]
"""Makes the scene on the main thread, from what the loader prepared."""


class SceneLoader(Protocol):
    """Prepares a scene for an item of one kind; runs on the loader thread.

    Read and decode here (no GL calls), and return a :data:`SceneBuilder` that does the
    GL part on the main thread. Raise (any exception) when the file cannot be shown.
    """

    def __call__(self, request: SceneRequest, ctx: SceneContext) -> SceneBuilder: ...


class SceneFactory:
    """Loaders by item kind; :meth:`register` replaces one (video, web)."""

    def __init__(self, ctx: SceneContext) -> None:
        self.ctx = ctx
        self._pdf = PdfLoader()
        self._loaders: dict[ItemKind, SceneLoader] = {
            "image": load_image,
            "pdf": self._pdf,
            "text": load_text,
            "video": load_placeholder,
            "web": load_placeholder,
        }

    def register(self, kind: ItemKind, loader: SceneLoader) -> None:
        """Use ``loader`` for items of ``kind`` from now on."""
        self._loaders[kind] = loader

    def load(self, request: SceneRequest) -> SceneBuilder:
        """Prepare the scene of ``request`` (loader thread); never raises.

        A loader's failure is logged and gives the error slide naming the item.
        """
        try:
            builder = self._loaders[request.item.kind](request, self.ctx)
        except Exception as exc:  # any bad file must give the error slide
            logger.warning("cannot show item %d %r: %s", request.index, request.item.title, exc)
            return self.error_builder(request.item.title, exc)
        return self.guarded(builder, request.item.title)

    def guarded(self, builder: SceneBuilder, title: str) -> SceneBuilder:
        """``builder``, falling back to the error slide if it raises (main thread)."""

        def build() -> Scene:
            try:
                return builder()
            except Exception as exc:  # e.g. a texture too large for the GPU
                logger.warning("cannot show %r: %s", title, exc)
                return self.error_builder(title)()

        return build

    def error_builder(self, title: str, error: BaseException | None = None) -> SceneBuilder:
        """The builder of the error slide for an item titled ``title`` that failed with
        ``error`` (its kind picks the explanation: :func:`error_slide_lines`)."""
        ctx = self.ctx
        return lambda: ErrorScene(ctx, title, error)

    def close(self) -> None:
        """Close open documents (loader thread, or after it stopped)."""
        self._pdf.close()


# --------------------------------------------------------------------------- helpers


def fit_size(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest size of ``width``×``height``'s aspect inside ``box_w``×``box_h``."""
    scale = min(box_w / width, box_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class FlippedPicture:
    """A picture that changes (video frames, a shared screen), drawn letterboxed.

    Each BGRA picture is uploaded as it is, top row first (pyglet would reverse the rows
    in Python, allocating a picture's size again), and the sprite is drawn flipped
    instead. The texture is made again only when the picture's size changes. Call from
    the window's thread.
    """

    def __init__(self) -> None:
        self._texture: pyglet.image.Texture | None = None
        self._sprite: pyglet.sprite.Sprite | None = None
        self._batch = pyglet.graphics.Batch()
        self._layout: tuple[int, int, int, int] | None = None

    def upload(
        self, width: int, height: int, data: bytes | ctypes.Array[ctypes.c_char], pitch: int
    ) -> None:
        """Make ``data`` (BGRA rows of ``pitch`` bytes) the picture."""
        texture = self._texture
        if texture is None or (texture.width, texture.height) != (width, height):
            self.delete()
            # RGB inside: the fourth byte is padding, not alpha.
            texture = pyglet.image.Texture.create(
                width, height, internalformat=gl.GL_RGB8, fmt=gl.GL_RGB
            )
            self._texture = texture
            self._sprite = pyglet.sprite.Sprite(texture, batch=self._batch)
        # pyglet passes the buffer to GL as it is (typed bytes, any buffer will do).
        image = pyglet.image.ImageData(width, height, "BGRA", cast(bytes, data), pitch=pitch)
        texture.blit_into(image, 0, 0, 0)

    def draw(self, box_w: int, box_h: int) -> None:
        """Draw the picture fitted in ``box_w``×``box_h``, centred, aspect kept (nothing
        before the first upload)."""
        texture, sprite = self._texture, self._sprite
        if texture is None or sprite is None:
            return
        width, height = fit_size(texture.width, texture.height, box_w, box_h)
        layout = ((box_w - width) // 2, (box_h - height) // 2, width, height)
        if layout != self._layout:
            self._layout = layout
            x, y, _, _ = layout
            sprite.update(
                x=x, y=y + height, scale_x=width / texture.width, scale_y=-height / texture.height
            )
        self._batch.draw()

    def delete(self) -> None:
        """Free the texture; the next upload makes a new one."""
        if self._sprite is not None:
            self._sprite.delete()
            self._sprite = None
        if self._texture is not None:
            self._texture.delete()
            self._texture = None
            # A fresh batch: the old one may still list the sprite's group, whose hash
            # changed when its texture was deleted.
            self._batch = pyglet.graphics.Batch()
        self._layout = None


def _blob_file(ctx: SceneContext, item: ManifestItem) -> str:
    if item.sha256 is None:
        raise MediaError(f"item {item.title!r} names no file")
    return str(ctx.store.path(item.sha256))


@dataclass(frozen=True, slots=True)
class Pixels:
    """Decoded RGBA pixels, top row first, ready to become a texture."""

    width: int
    height: int
    rgba: bytes

    @classmethod
    def from_pil(cls, image: Image.Image) -> Pixels:
        rgba = image.convert("RGBA")
        return cls(rgba.width, rgba.height, rgba.tobytes())

    def texture(self) -> pyglet.image.Texture:
        """Upload as a texture (main thread)."""
        data = pyglet.image.ImageData(
            self.width, self.height, "RGBA", self.rgba, pitch=-self.width * 4
        )
        return data.get_texture()


class _Centered:
    """A texture drawn centred in the window, at its own size (no scaling).

    The sprite has a batch of its own: sprites left in pyglet's default batch keep a
    group and a vertex domain per texture there, which would grow with every item.
    """

    def __init__(self, pixels: Pixels, ctx: SceneContext) -> None:
        self.texture = pixels.texture()
        self._batch = pyglet.graphics.Batch()
        self.sprite = pyglet.sprite.Sprite(
            self.texture,
            x=(ctx.width - pixels.width) // 2,
            y=(ctx.height - pixels.height) // 2,
            batch=self._batch,
        )

    def draw(self) -> None:
        self._batch.draw()

    def delete(self) -> None:
        self.sprite.delete()
        self.texture.delete()


# --------------------------------------------------------------------------- image


class PictureScene(Scene):
    """A picture (image, PDF page) centred on ``background``: letterboxed, aspect kept."""

    def __init__(self, ctx: SceneContext, pixels: Pixels, background: Color = BLACK) -> None:
        self.background = background
        self._picture = _Centered(pixels, ctx)

    def draw(self) -> None:
        self._picture.draw()

    def delete(self) -> None:
        self._picture.delete()


def decode_image(path: str, box_w: int, box_h: int) -> Pixels:
    """Decode an image file, turned upright by its EXIF orientation, fitted in the box.

    The size in the file's header is checked before any pixel is decoded: at most
    ``MAX_PICTURE_PIXELS`` are decoded (a JPEG counts at the reduced scale it is
    decoded at to fit the box). The full-size picture exists once: it is turned in
    place and scaled down before it becomes RGBA.

    Raises:
        PictureTooLargeError: the image has more pixels than ``MAX_PICTURE_PIXELS``.
        OSError: the file is missing or not an image Pillow can read.
    """
    try:
        opened = Image.open(path, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:  # over twice Pillow's limit, refused at open
        raise PictureTooLargeError(f"{path}: {exc}", path=path) from None
    with opened:
        opened.draft("RGB", (box_w, box_h))  # JPEG: decode at a reduced scale when possible
        check_picture_size(path, *opened.size, reducible=False)  # the size to be decoded
        opened.load()
        ImageOps.exif_transpose(opened, in_place=True)
        image: Image.Image = opened
        if image.mode not in _RESAMPLED_MODES:
            image = image.convert(_RESAMPLE_AS.get(image.mode, "RGBA"))
        size = fit_size(image.width, image.height, box_w, box_h)
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        return Pixels.from_pil(image)


_RESAMPLED_MODES = frozenset({"L", "LA", "RGB", "RGBA"})
"""Modes Pillow scales with LANCZOS as they are (others are converted first)."""

_RESAMPLE_AS = {"1": "L", "CMYK": "RGB", "I;16": "L"}
"""The cheapest mode a picture of another mode is scaled in (default RGBA)."""


def load_image(request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
    """Loader of image items: an animated picture (GIF, WebP, PNG) animates."""
    path = _blob_file(ctx, request.item)
    frames = decode_animation(path, ctx.width, ctx.height)
    if frames is not None:
        return lambda: AnimationScene(ctx, frames)
    pixels = decode_image(path, ctx.width, ctx.height)
    return lambda: PictureScene(ctx, pixels)


@dataclass(frozen=True, slots=True)
class Frames:
    """The decoded frames of an animation, all of one size, each with how long it stays;
    ``shown_size`` is the size to draw them at (fitted to the window)."""

    pixels: tuple[Pixels, ...]
    durations_s: tuple[float, ...]
    shown_size: tuple[int, int]


def decode_animation(path: str, box_w: int, box_h: int) -> Frames | None:
    """Decode the frames of an animated picture, or return ``None`` for a still one.

    At most ``MAX_ANIMATION_FRAMES`` frames and ``MAX_ANIMATION_PIXELS`` pixels are
    kept: the frames are scaled down to fit both the window and that budget.

    Raises:
        PictureTooLargeError: a frame has more pixels than ``MAX_PICTURE_PIXELS``.
        OSError: the file is missing or not an image Pillow can read.
    """
    try:
        opened = Image.open(path, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise PictureTooLargeError(f"{path}: {exc}", path=path) from None
    with opened:
        count = min(getattr(opened, "n_frames", 1), MAX_ANIMATION_FRAMES)
        if not getattr(opened, "is_animated", False) or count < 2:
            return None
        width, height = opened.size
        check_picture_size(path, width, height, reducible=False)
        shown = fit_size(width, height, box_w, box_h)
        scale = min(1.0, shown[0] / width, (MAX_ANIMATION_PIXELS / (count * width * height)) ** 0.5)
        size = max(1, int(width * scale)), max(1, int(height * scale))
        pixels: list[Pixels] = []
        durations: list[float] = []
        for index in range(count):
            opened.seek(index)
            frame = opened.convert("RGBA")
            if frame.size != size:
                frame = frame.resize(size, Image.Resampling.LANCZOS)
            pixels.append(Pixels.from_pil(frame))
            delay_s = float(opened.info.get("duration") or 0) / 1000
            durations.append(delay_s if delay_s >= MIN_FRAME_S else SHORT_FRAME_S)
        return Frames(tuple(pixels), tuple(durations), shown)


class AnimationScene(Scene):
    """An animated picture, letterboxed like :class:`PictureScene`, looping.

    Each frame schedules the next on pyglet's clock and asks for a redraw; nothing runs
    while the scene is not shown or is covered (an announcement, blank).
    """

    def __init__(self, ctx: SceneContext, frames: Frames) -> None:
        self._ctx = ctx
        self._durations_s = frames.durations_s
        self._textures = [p.texture() for p in frames.pixels]
        self._batch = pyglet.graphics.Batch()
        shown_w, shown_h = frames.shown_size
        first = frames.pixels[0]
        self._sprite = pyglet.sprite.Sprite(
            self._textures[0],
            x=(ctx.width - shown_w) // 2,
            y=(ctx.height - shown_h) // 2,
            batch=self._batch,
        )
        self._sprite.update(scale_x=shown_w / first.width, scale_y=shown_h / first.height)
        self._index = 0
        self._shown = False
        self._covered = False

    @property
    def frame_index(self) -> int:
        """The frame drawn now."""
        return self._index

    def draw(self) -> None:
        self._batch.draw()

    def enter(self) -> None:
        self._shown = True
        self._schedule()

    def leave(self) -> None:
        self._shown = False
        pyglet.clock.unschedule(self._advance)

    def overlaid(self, covered: bool) -> None:
        # The window says so before every frame: only a change may touch the timer, or
        # each redraw (a screenshot, an overlay) would put the next frame off.
        if covered != self._covered:
            self._covered = covered
            self._schedule()

    def _schedule(self) -> None:
        pyglet.clock.unschedule(self._advance)
        if self._shown and not self._covered:
            pyglet.clock.schedule_once(self._advance, self._durations_s[self._index])

    def _advance(self, dt: float = 0.0) -> None:
        self._index = (self._index + 1) % len(self._textures)
        self._sprite.image = self._textures[self._index]
        self._ctx.request_redraw()
        self._schedule()

    def delete(self) -> None:
        pyglet.clock.unschedule(self._advance)
        self._sprite.delete()
        for texture in self._textures:
            texture.delete()


# --------------------------------------------------------------------------- PDF


class PdfLoader:
    """Renders PDF pages at the window's resolution; keeps the last documents open.

    pypdfium2 is not thread-safe: call it from the loader thread only.
    """

    def __init__(self) -> None:
        self._docs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
        pixels = self.render(request.item, ctx)
        return lambda: PictureScene(ctx, pixels, background=BLACK)

    def render(self, item: ManifestItem, ctx: SceneContext) -> Pixels:
        import pypdfium2 as pdfium  # type: ignore[import-untyped]  # only once a PDF shows

        path = _blob_file(ctx, item)
        with self._lock:
            doc = self._docs.pop(path, None)
            if doc is None:
                doc = pdfium.PdfDocument(path)
                while len(self._docs) >= PDF_CACHE_DOCUMENTS:
                    oldest = next(iter(self._docs))
                    self._docs.pop(oldest).close()
            self._docs[path] = doc  # most recently used last
            index = item.page or 0
            if not 0 <= index < len(doc):
                raise MediaError(f"page {index + 1} is not in {item.title!r}")
            page = doc[index]
            try:
                page_w, page_h = page.get_size()
                scale = min(ctx.width / page_w, ctx.height / page_h)
                bitmap = page.render(scale=scale, fill_color=(255, 255, 255, 255))
                image = bitmap.to_pil()
            finally:
                page.close()
        return Pixels.from_pil(image)

    def close(self) -> None:
        with self._lock:
            for doc in self._docs.values():
                doc.close()
            self._docs.clear()


# --------------------------------------------------------------------------- text


def _document(blocks: list[Block], size: float) -> pyglet.text.document.FormattedDocument:
    doc = pyglet.text.document.FormattedDocument()
    for block in blocks:
        start = len(doc.text)
        if block.kind == "heading":
            font_size = size * (1.6 if block.level <= 1 else 1.3)
            color, bold_all, prefix = SLIDE_HEADING, True, ""
        else:
            font_size = size
            color, bold_all, prefix = SLIDE_TEXT, False, BULLET if block.kind == "item" else ""
        spans = ((prefix, False), *block.spans) if prefix else block.spans
        for text, bold in spans:
            doc.insert_text(
                len(doc.text),
                text,
                {
                    "font_name": FONT_NAME,
                    "font_size": font_size,
                    "weight": "bold" if bold or bold_all else "normal",
                    "color": color,
                },
            )
        doc.insert_text(len(doc.text), "\n", {"font_size": font_size})
        doc.set_paragraph_style(
            start,
            len(doc.text),
            {
                "margin_bottom": round(font_size * (0.6 if block.kind == "item" else 0.9)),
                "margin_left": round(size * 0.8) if block.kind == "item" else 0,
                "line_spacing": round(font_size * 1.3),
            },
        )
    return doc


class TextScene(Scene):
    """A text slide: dark type on a light page, wrapped, shrunk until it fits."""

    background = SLIDE_BACKGROUND

    def __init__(self, ctx: SceneContext, blocks: list[Block]) -> None:
        margin_x = ctx.width // 14
        margin_y = ctx.height // 12
        width = ctx.width - 2 * margin_x
        height = ctx.height - 2 * margin_y
        # Pixels per point: pyglet renders at 96 dpi, so 1 pt = 4/3 px.
        size = ctx.height / 18 * 0.75
        layout = None
        for _ in range(8):
            if layout is not None:
                layout.delete()
            layout = pyglet.text.layout.TextLayout(
                _document(blocks, size),
                x=margin_x,
                y=ctx.height - margin_y,
                width=width,
                height=height,
                anchor_y="top",
                multiline=True,
                wrap_lines=True,
            )
            if layout.content_height <= height:
                break
            size *= 0.85
        assert layout is not None
        self._layout = layout

    def draw(self) -> None:
        self._layout.draw()

    def delete(self) -> None:
        self._layout.delete()


def load_text(request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
    """Loader of text slides (Markdown subset)."""
    text = request.item.text or ""
    blocks = parse_markdown(text) or [Block("heading", ((request.item.title, False),), 1)]
    return lambda: TextScene(ctx, blocks)


# --------------------------------------------------------------------------- cards


class Card(Scene):
    """Centred lines of text on a plain background: ``(text, font size, colour)`` each.

    The base of every text-only scene (the error slide, the placeholder, the web
    page's cards in :mod:`kiosk.web`): a subclass passes its lines to ``__init__``.
    """

    def __init__(
        self, ctx: SceneContext, lines: list[tuple[str, float, Color]], background: Color
    ) -> None:
        self.background = background
        self._batch = pyglet.graphics.Batch()
        total = sum(size * 1.8 for _, size, _ in lines)
        y = ctx.height / 2 + total / 2
        self._labels = []
        for text, size, color in lines:
            y -= size * 1.8
            self._labels.append(
                pyglet.text.Label(
                    text,
                    x=ctx.width // 2,
                    y=round(y + size * 0.5),
                    width=round(ctx.width * 0.9),
                    multiline=True,
                    anchor_x="center",
                    anchor_y="baseline",
                    align="center",
                    font_name=FONT_NAME,
                    font_size=size,
                    color=color,
                    batch=self._batch,
                )
            )

    def draw(self) -> None:
        self._batch.draw()

    def delete(self) -> None:
        for label in self._labels:
            label.delete()


def error_slide_lines(lang: str, title: str, error: BaseException | None) -> tuple[str, str]:
    """The two lines of the error slide: what could not be shown, and why, in ``lang``.

    A picture over ``MAX_PICTURE_PIXELS`` says so; any other failure reads "damaged
    or missing". The title comes from the teacher's lesson: it is cleaned
    (:func:`protocol.text.clean_name`).
    """
    heading = tr(lang, "Could not show «{title}»", title=clean_name(title))
    if isinstance(error, PictureTooLargeError):
        return heading, tr(
            lang,
            "The picture is too large: a panel shows at most {megapixels} megapixels. "
            "The lesson goes on.",
            megapixels=MAX_PICTURE_PIXELS // 1_000_000,
        )
    return heading, tr(lang, "The file is damaged or missing. The lesson goes on.")


class ErrorScene(Card):
    """ "Не удалось показать «…»": an item that cannot be shown; the lesson goes on.

    ``error``, when given, is what went wrong (see :func:`error_slide_lines`).
    """

    def __init__(self, ctx: SceneContext, title: str, error: BaseException | None = None) -> None:
        size = ctx.height / 22
        heading, reason = error_slide_lines(ctx.lang, title, error)
        super().__init__(
            ctx,
            [(heading, size, WHITE), (reason, size * 0.6, MUTED_TEXT)],
            ERROR_BACKGROUND,
        )


class PlaceholderScene(Card):
    """A card with the item's title, for kinds this window cannot play yet."""

    def __init__(self, ctx: SceneContext, item: ManifestItem) -> None:
        kind = tr(ctx.lang, "Video") if item.kind == "video" else tr(ctx.lang, "Web page")
        size = ctx.height / 20
        super().__init__(
            ctx,
            [(kind, size * 0.6, MUTED_TEXT), (clean_name(item.title), size, WHITE)],
            PLACEHOLDER_BACKGROUND,
        )


def load_placeholder(request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
    """Loader of kinds not played yet (video, web): a card with the title."""
    return lambda: PlaceholderScene(ctx, request.item)


# --------------------------------------------------------------------------- idle


def qr_pixels(text: str, size: int) -> Pixels:
    """A QR code of ``text`` (black on white, 4-module quiet zone), at most ``size`` px."""
    qr = segno.make(text, error="m", micro=False)
    border = 4
    modules = len(qr.matrix) + 2 * border
    scale = max(1, size // modules)
    image = Image.new("L", (modules, modules), 255)
    pixels = image.load()
    assert pixels is not None
    for y, row in enumerate(qr.matrix):
        for x, dark in enumerate(row):
            if dark:
                pixels[x + border, y + border] = 0
    image = image.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)
    return Pixels.from_pil(image)


@dataclass(slots=True)
class IdleInfo:
    """What the idle screen shows; ``address`` is ``wss://HOST:PORT`` once listening."""

    school: str
    room: str
    pin: str | None = None
    address: str | None = None
    clock: Callable[[], float] = field(default=time.time)
    tz: tzinfo | None = None
    """The timezone of the clock (``timezone`` in kiosk.toml); None = the system's."""

    def clock_text(self) -> str:
        """The time the idle screen shows, ``HH:MM`` in :attr:`tz`."""
        return datetime.fromtimestamp(self.clock(), self.tz).strftime("%H:%M")


class IdleScene(Scene):
    """School, room, a clock, the pairing PIN, the address and its QR code."""

    background = IDLE_BACKGROUND

    def __init__(self, ctx: SceneContext, info: IdleInfo) -> None:
        self.ctx = ctx
        self.info = info
        self._batch = pyglet.graphics.Batch()
        h, w = ctx.height, ctx.width
        left = round(w * 0.07)
        text_w = round(w * 0.5)

        def label(
            y: float, size: float, color: Color = WHITE, bold: bool = False
        ) -> pyglet.text.Label:
            return pyglet.text.Label(
                "",
                x=left,
                y=round(y),
                width=text_w,
                font_name=FONT_NAME,
                font_size=size,
                weight="bold" if bold else "normal",
                color=color,
                batch=self._batch,
            )

        unit = h / 100
        self._school = label(h - unit * 14, unit * 3.2, MUTED_TEXT)
        self._room = label(h - unit * 26, unit * 6, WHITE, bold=True)
        self._clock = label(h - unit * 48, unit * 11, WHITE)
        self._pin_caption = label(unit * 30, unit * 2.8, MUTED_TEXT)
        self._pin = label(unit * 17, unit * 7, WHITE, bold=True)
        self._address = label(unit * 8, unit * 2.6, MUTED_TEXT)
        self._qr: _Centered | None = None
        self._qr_text: str | None = None
        self.refresh()

    def refresh(self) -> None:
        """Update every text from :attr:`info` and the clock (cheap when unchanged).

        The school and room names are cleaned (:func:`protocol.text.clean_name`).
        """
        info, lang = self.info, self.ctx.lang
        self._set(self._school, clean_name(info.school))
        self._set(self._room, clean_name(info.room))
        self._set(self._clock, info.clock_text())
        self._set(self._pin_caption, tr(lang, "Pairing code") if info.pin else "")
        self._set(self._pin, " ".join(info.pin) if info.pin else "")
        self._set(self._address, info.address or "")
        if info.address != self._qr_text:
            if self._qr is not None:
                self._qr.delete()
                self._qr = None
            self._qr_text = info.address
            if info.address:
                self._qr = self._make_qr(info.address)

    def _make_qr(self, text: str) -> _Centered:
        ctx = self.ctx
        side = round(min(ctx.height * 0.6, ctx.width * 0.35))
        pixels = qr_pixels(text, side)
        qr = _Centered(pixels, ctx)
        qr.sprite.x = round(ctx.width * 0.93) - pixels.width
        qr.sprite.y = (ctx.height - pixels.height) // 2
        return qr

    @property
    def qr_box(self) -> tuple[int, int, int, int] | None:
        """Where the QR code is: x, y (bottom left), width, height; None without one."""
        if self._qr is None:
            return None
        s = self._qr.sprite
        return round(s.x), round(s.y), self._qr.texture.width, self._qr.texture.height

    @staticmethod
    def _set(label: pyglet.text.Label, text: str) -> None:
        if label.text != text:
            label.text = text

    def draw(self) -> None:
        self._batch.draw()
        if self._qr is not None:
            self._qr.draw()

    def delete(self) -> None:
        for lab in (
            self._school,
            self._room,
            self._clock,
            self._pin_caption,
            self._pin,
            self._address,
        ):
            lab.delete()
        if self._qr is not None:
            self._qr.delete()


ALERT_RED = (183, 28, 28, 255)
"""Background of an ``alert`` announcement (it covers the whole screen)."""

INFO_BLUE = (13, 71, 161, 235)
"""Background of an ``info`` announcement banner."""


class AnnouncementOverlay:
    """An announcement over the screen: a banner (info) or the whole screen (alert)."""

    def __init__(self, ctx: SceneContext, text: str, level: str) -> None:
        self._batch = pyglet.graphics.Batch()
        background = pyglet.graphics.Group(order=0)
        foreground = pyglet.graphics.Group(order=1)
        alert = level == "alert"
        self.covers_screen = alert
        """An alert takes the whole screen; a banner only :attr:`top` pixels of it."""
        if alert:
            box = (0, 0, ctx.width, ctx.height)
            size = ctx.height / 14
            label_box = (ctx.width // 2, ctx.height // 2, round(ctx.width * 0.85))
        else:
            height = round(ctx.height / 6)
            box = (0, 0, ctx.width, height)
            size = ctx.height / 28
            label_box = (ctx.width // 2, height // 2, round(ctx.width * 0.9))
        self._box = pyglet.shapes.Rectangle(
            *box, color=ALERT_RED if alert else INFO_BLUE, batch=self._batch, group=background
        )
        self.top = box[3]
        """Height of the overlay from the bottom of the window, in pixels."""
        x, y, width = label_box
        self._label = pyglet.text.Label(
            text,
            x=x,
            y=y,
            width=width,
            multiline=True,
            align="center",
            anchor_x="center",
            anchor_y="center",
            font_name=FONT_NAME,
            font_size=size,
            weight="bold" if alert else "normal",
            color=WHITE,
            batch=self._batch,
            group=foreground,
        )

    def draw(self) -> None:
        self._batch.draw()

    def delete(self) -> None:
        self._box.delete()
        self._label.delete()


NOTICE_TEAL = (0, 105, 92, 235)
"""Background of the "who paired" notice in the top right corner."""

NOTICE_MAX_WIDTH = 0.42
"""The notice is at most this share of the screen's width (longer names wrap), so that
it stays clear of the middle of the top edge."""

QUESTION_PURPLE = (74, 20, 140, 255)
"""Background of the question to allow a pairing (it covers the whole screen)."""

ALLOW_GREEN = (46, 125, 50, 255)
REFUSE_GREY = (97, 97, 97, 255)


class NoticeOverlay:
    """A small box in the top right corner of the screen (who just paired).

    It keeps clear of the middle and the left of the top edge, where slides put their
    titles; drawn by the window, so a native window (an embedded video, a web page) on
    top of it hides it.
    """

    def __init__(self, ctx: SceneContext, text: str) -> None:
        self._batch = pyglet.graphics.Batch()
        background = pyglet.graphics.Group(order=0)
        foreground = pyglet.graphics.Group(order=1)
        margin = round(ctx.height / 60)
        pad = round(ctx.height / 50)
        max_width = round(ctx.width * NOTICE_MAX_WIDTH)
        self._label = pyglet.text.Label(
            text,
            x=0,
            y=0,
            width=max_width,
            multiline=True,
            anchor_x="right",
            anchor_y="top",
            font_name=FONT_NAME,
            font_size=ctx.height / 36,
            color=WHITE,
            batch=self._batch,
            group=foreground,
        )
        # Shrink-wrap a short text: a box only as wide as its longest line.
        self._label.width = min(max_width, round(self._label.content_width) + 1)
        right, top = ctx.width - margin - pad, ctx.height - margin - pad
        self._label.position = (right, top, 0)
        width = round(self._label.content_width) + 2 * pad
        height = round(self._label.content_height) + 2 * pad
        self.box = (ctx.width - margin - width, ctx.height - margin - height, width, height)
        """x, y (bottom left), width, height of the box, in window pixels."""
        self._box = pyglet.shapes.Rectangle(
            *self.box, color=NOTICE_TEAL, batch=self._batch, group=background
        )

    def draw(self) -> None:
        self._batch.draw()

    def delete(self) -> None:
        self._box.delete()
        self._label.delete()


class PairingQuestionOverlay:
    """The question to allow a pairing: the whole screen, with a Refuse and an Allow
    button (:meth:`answer_at` tells which one a tap hit)."""

    covers_screen = True

    def __init__(self, ctx: SceneContext, text: str, refuse: str, allow: str) -> None:
        self._batch = pyglet.graphics.Batch()
        background = pyglet.graphics.Group(order=0)
        foreground = pyglet.graphics.Group(order=1)
        w, h = ctx.width, ctx.height
        self._box = pyglet.shapes.Rectangle(
            0, 0, w, h, color=QUESTION_PURPLE, batch=self._batch, group=background
        )
        self._label = pyglet.text.Label(
            text,
            x=w // 2,
            y=round(h * 0.64),
            width=round(w * 0.85),
            multiline=True,
            align="center",
            anchor_x="center",
            anchor_y="center",
            font_name=FONT_NAME,
            font_size=h / 24,
            color=WHITE,
            batch=self._batch,
            group=foreground,
        )
        button_w, button_h = round(w * 0.3), round(h * 0.16)
        y = round(h * 0.12)
        self.refuse_box = (round(w * 0.15), y, button_w, button_h)
        """The Refuse button: x, y (bottom left), width, height, in window pixels."""
        self.allow_box = (round(w * 0.55), y, button_w, button_h)
        """The Allow button, likewise."""
        self._buttons: list[pyglet.shapes.Rectangle | pyglet.text.Label] = []
        for box, color, label in (
            (self.refuse_box, REFUSE_GREY, refuse),
            (self.allow_box, ALLOW_GREEN, allow),
        ):
            bx, by, bw, bh = box
            self._buttons.append(
                pyglet.shapes.Rectangle(
                    bx, by, bw, bh, color=color, batch=self._batch, group=background
                )
            )
            self._buttons.append(
                pyglet.text.Label(
                    label,
                    x=bx + bw // 2,
                    y=by + bh // 2,
                    anchor_x="center",
                    anchor_y="center",
                    font_name=FONT_NAME,
                    font_size=h / 30,
                    weight="bold",
                    color=WHITE,
                    batch=self._batch,
                    group=foreground,
                )
            )

    def answer_at(self, x: int, y: int) -> bool | None:
        """A tap at ``x``, ``y`` (window pixels, bottom left origin): True on Allow,
        False on Refuse, None elsewhere."""
        for box, answer in ((self.allow_box, True), (self.refuse_box, False)):
            bx, by, bw, bh = box
            if bx <= x < bx + bw and by <= y < by + bh:
                return answer
        return None

    def draw(self) -> None:
        self._batch.draw()

    def delete(self) -> None:
        self._box.delete()
        self._label.delete()
        for part in self._buttons:
            part.delete()


class HintOverlay:
    """A small banner at the bottom of the window (the Esc confirmation)."""

    def __init__(self, ctx: SceneContext, text: str) -> None:
        size = ctx.height / 40
        pad = round(size)
        y = round(size * 2.5)
        self._batch = pyglet.graphics.Batch()
        background = pyglet.graphics.Group(order=0)
        foreground = pyglet.graphics.Group(order=1)
        self._label = pyglet.text.Label(
            text,
            x=ctx.width // 2,
            y=y,
            anchor_x="center",
            anchor_y="center",
            font_name=FONT_NAME,
            font_size=size,
            color=WHITE,
            batch=self._batch,
            group=foreground,
        )
        width = round(self._label.content_width) + 2 * pad
        height = round(self._label.content_height) + pad
        self.top = y - height // 2 + height
        """Height of the overlay's top from the bottom of the window, in pixels."""
        self._box = pyglet.shapes.Rectangle(
            (ctx.width - width) // 2,
            y - height // 2,
            width,
            height,
            color=(0, 0, 0, 200),
            batch=self._batch,
            group=background,
        )

    def draw(self) -> None:
        self._batch.draw()

    def delete(self) -> None:
        self._box.delete()
        self._label.delete()
