"""The video scene in a real headless window with real libVLC: kiosk.video_scene.

The sample lesson's video (2 s, 320x240, 25 fps) plays in a 16:9 window, so it is
letterboxed with black bars left and right. The window's real loop runs in short
bursts (:func:`run_for`), as on a panel: libVLC's callbacks wake it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

os.environ["PYGLET_HEADLESS"] = "true"  # before pyglet's first import

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyglet
import pytest
from PIL import Image, ImageChops, ImageStat

from kiosk import video_scene
from kiosk.drift import FRAME_MS, RATE_STEP, SETTLE_S
from kiosk.player import Preload, SetBlank, Show, ShowIdle, VideoCommand
from kiosk.scenes import ERROR_BACKGROUND, SceneBuilder, SceneContext, SceneRequest
from kiosk.video import (
    HEADLESS_VLC_ARGS,
    PositionReading,
    VideoFrame,
    VideoOut,
    VlcVideo,
    configure_vlc,
    shared_instance,
)
from kiosk.video_scene import VideoScene, load_video
from kiosk.window import Frame
from protocol.errors import CorruptContentError
from protocol.messages import LessonManifest, ManifestItem
from tests.threads import native_threads, python_threads, threads_left
from tests.window_panel import PanelWindow, run_window

pytestmark = [pytest.mark.display, pytest.mark.slow]

W, H = 640, 360
VIDEO_W = 480  # 320x240 fitted in 640x360
BAR = (W - VIDEO_W) // 2
BLACK = (0, 0, 0)
BLUE = (21, 101, 192)  # the sample lesson's second item
VIDEO_INDEX = 5  # 05-opyt.mp4 (the PDF is two items)
DURATION_S = 2.0


class Panel(PanelWindow):
    """A headless window with the video loader, the sample lesson and what it drew."""

    def __init__(self, root: Path) -> None:
        self.ended: list[int] = []
        super().__init__(root, (W, H), item_ended=self.ended.append)
        self.window.factory.register("video", load_video)

    @property
    def video_item(self) -> ManifestItem:
        item = self.lesson.items[VIDEO_INDEX]
        assert item.kind == "video"
        return item

    def show_video(self, *extra: object) -> None:
        self.window.apply(Show(self.lesson, VIDEO_INDEX, self.video_item))
        for effect in extra:
            self.window.apply(effect)  # type: ignore[arg-type]

    def run_for(self, seconds: float, until: Callable[[], bool] | None = None) -> float:
        """Run the window's real loop for ``seconds`` or until ``until()``; the time taken."""
        return run_window(self.window, seconds, until)

    def last(self) -> Frame:
        assert self.frames, "nothing was drawn"
        return self.frames[-1]

    def scene(self) -> VideoScene:
        scene = self.window.current
        assert isinstance(scene, VideoScene)
        return scene


def video_region(frame: Frame) -> bytes:
    """The letterboxed picture's pixels (the window's middle, bars excluded)."""
    return frame.image().crop((BAR, 0, W - BAR, H)).tobytes()


@pytest.fixture(scope="module")
def module_panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    configure_vlc(HEADLESS_VLC_ARGS)
    shared_instance()  # before any thread count is taken
    p = Panel(tmp_path_factory.mktemp("video-scene"))
    # Start the window's loader thread now, so that thread counts see libVLC's only.
    p.window.apply(Show(p.lesson, 1, p.lesson.items[1]))
    p.window.run_pending()
    yield p
    p.window.close()


@pytest.fixture
def panel(module_panel: Panel) -> Iterator[Panel]:
    module_panel.frames.clear()
    module_panel.ended.clear()
    yield module_panel
    module_panel.window.apply(SetBlank(False))
    module_panel.window.apply(ShowIdle())
    module_panel.window.run_pending()


def test_the_video_plays_letterboxed_and_its_frames_change(panel: Panel) -> None:
    panel.show_video()
    panel.run_for(0.5)
    first = panel.last()
    panel.run_for(0.3)
    second = panel.last()
    assert len(panel.frames) >= 8  # frames drawn as the video delivers them (25 fps)
    for frame in (first, second):
        assert frame.pixel(BAR // 2, H // 2) == BLACK  # the bars
        assert frame.pixel(W - BAR // 2, H // 2) == BLACK
        assert len({frame.pixel(x, H // 2) for x in range(BAR, W - BAR, 16)}) > 4, (
            "the test pattern, not a flat picture"
        )
    assert video_region(first) != video_region(second)
    assert panel.ended == []


def test_no_black_frame_before_the_first_picture(panel: Panel) -> None:
    # From a picture to a video, redrawing as often as possible (as exposes would):
    # until libVLC delivers its first frame the picture stays on screen.
    panel.window.apply(Show(panel.lesson, 0, panel.lesson.items[0]))
    panel.window.run_pending()
    picture = video_region(panel.last())
    panel.frames.clear()
    panel.show_video()
    deadline = time.monotonic() + 5
    while not (panel.frames and video_region(panel.last()) != picture):
        panel.window.request_redraw()
        pyglet.app.platform_event_loop.dispatch_posted_events()
        pyglet.clock.tick()
        assert time.monotonic() < deadline, "the video never showed"
    assert len(panel.frames) >= 2
    black = bytes((0, 0, 0, 255)) * (len(picture) // 4)
    for frame in panel.frames:
        assert video_region(frame) != black
        assert video_region(frame) == picture or frame.pixel(BAR // 2, H // 2) == BLACK


def test_pause_stops_the_picture_and_play_resumes(panel: Panel) -> None:
    panel.show_video()
    panel.run_for(0.4)
    panel.window.apply(VideoCommand("pause"))
    panel.run_for(0.15)  # a picture already queued may still arrive
    drawn, paused = panel.window.frames, panel.last()
    panel.run_for(0.4)
    assert panel.window.frames == drawn  # nothing new to draw while paused
    assert video_region(panel.last()) == video_region(paused)
    panel.window.apply(VideoCommand("play"))
    panel.run_for(0.3)
    assert video_region(panel.last()) != video_region(paused)


def test_the_picture_is_drawn_upright(panel: Panel) -> None:
    # Frames are uploaded top row first and the sprite drawn flipped: the window's
    # picture must match the decoded frame as it is, not upside down.
    panel.show_video()
    panel.run_for(0.5)
    panel.window.apply(VideoCommand("pause"))
    panel.run_for(0.3)
    video = panel.scene()._video
    assert video is not None
    frame = video.latest_frame()
    assert frame is not None
    decoded = Image.frombuffer(
        "RGB", (frame.width, frame.height), bytes(frame.data), "raw", "BGRX", frame.pitch, 1
    ).resize((VIDEO_W, H))
    drawn = panel.last().image().crop((BAR, 0, W - BAR, H)).convert("RGB")

    def distance(a: Image.Image, b: Image.Image) -> float:
        return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean)

    upright = distance(drawn, decoded)
    flipped = distance(drawn, decoded.transpose(Image.Transpose.FLIP_TOP_BOTTOM))
    assert upright < flipped / 2


def test_the_end_reports_the_item_ended(panel: Panel) -> None:
    panel.show_video()
    taken = panel.run_for(DURATION_S + 1.5, until=lambda: bool(panel.ended))
    assert panel.ended == [VIDEO_INDEX]
    assert DURATION_S - 0.4 < taken < DURATION_S + 1.5
    assert video_region(panel.last()) != bytes(len(video_region(panel.last())))  # last frame


def test_seek_and_a_pause_before_the_first_picture(panel: Panel) -> None:
    # Sent with the Show, before libVLC opened the file: carried out at the first picture.
    panel.show_video(VideoCommand("pause"))
    panel.run_for(0.6)
    assert panel.ended == []
    drawn = panel.window.frames
    panel.run_for(0.2)
    assert panel.window.frames == drawn  # it stays paused
    panel.window.apply(VideoCommand("seek", 1700))
    panel.window.apply(VideoCommand("play"))
    taken = panel.run_for(1.5, until=lambda: bool(panel.ended))
    assert panel.ended == [VIDEO_INDEX]
    assert taken < 1.0  # from 1.7 s, not from the start


def test_a_corrupt_video_shows_the_error_slide_and_the_lesson_goes_on(
    panel: Panel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(video_scene, "ERROR_HOLD_S", 0.3)
    bad = panel.store.put_bytes(os.urandom(50_000))
    items = [
        ManifestItem("video", "Битое видео", sha256=bad, size_bytes=50_000),
        panel.lesson.items[1],
    ]
    lesson = LessonManifest("l-bad-video", "Урок", items)
    panel.window.apply(Show(lesson, 0, items[0]))
    panel.window.apply(Preload(lesson, 1, items[1]))
    panel.run_for(3.0, until=lambda: bool(panel.ended))
    assert panel.ended == [0]  # after the error slide stood ERROR_HOLD_S
    assert panel.scene().failed
    assert not panel.scene().playing
    assert panel.last().pixel(3, 3) == ERROR_BACKGROUND[:3]
    panel.window.apply(Show(lesson, 1, items[1]))
    panel.window.run_pending()
    assert panel.last().pixel(W // 2, H // 2) == BLUE


def test_preload_plays_nothing_and_leaving_releases_the_threads(panel: Panel) -> None:
    python, threads = python_threads(), native_threads()
    panel.window.apply(Preload(panel.lesson, VIDEO_INDEX, panel.video_item))
    panel.run_for(0.3)
    assert threads_left(threads, timeout_s=0) == set()  # no player yet
    panel.show_video()
    panel.run_for(0.3)
    scene = panel.scene()
    assert scene.playing
    assert native_threads() - threads  # the player's
    panel.window.apply(ShowIdle())
    panel.window.run_pending()
    assert not scene.playing
    assert python_threads() == python
    assert threads_left(threads) == set()
    # Shown again (from the window's cache), it starts over.
    panel.show_video()
    panel.run_for(0.3)
    assert scene is panel.scene()
    assert scene.playing


def test_a_video_shown_at_an_instant_waits_paused_at_its_first_picture(panel: Panel) -> None:
    """Before a synchronised start's instant the video is opened, silent, and stopped at
    its first picture, rewound, while the panel keeps its picture; at the instant the
    flip shows that picture at once and the video plays on, with its sound."""
    volumes: list[int] = []

    def loader(request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
        path = ctx.store.path(request.item.sha256 or "")
        return lambda: VideoScene(ctx, request, path, make_video=lambda c, s: VolumeSpy(volumes))

    panel.window.factory.register("video", loader)
    try:
        panel.window.apply(Show(panel.lesson, 1, panel.lesson.items[1]))
        panel.window.run_pending()
        assert panel.last().pixel(W // 2, H // 2) == BLUE
        item = dataclasses.replace(panel.video_item, title="По сигналу")
        at_s = time.monotonic() + 60  # the test calls the flip itself
        panel.window.apply(Show(panel.lesson, VIDEO_INDEX, item, at_s=at_s))
        key = (VIDEO_INDEX, item)
        panel.run_for(
            3.0, until=lambda: bool(getattr(panel.window.stage.cached(key), "_started", 0))
        )
        scene = panel.window.stage.cached(key)
        assert isinstance(scene, VideoScene)
        assert scene.playing
        assert panel.window.current is not scene  # the picture stays meanwhile
        panel.run_for(0.3)
        video = scene._video
        assert video is not None
        assert video.position_ms() == 0  # paused at the start, not running ahead
        assert volumes == [100, 0]  # silent while it waits
        assert panel.last().pixel(W // 2, H // 2) == BLUE
        drawn = panel.window.frames
        panel.window._flip()  # the instant, as pyglet's clock calls it
        assert panel.window.frames == drawn + 1
        assert panel.window.current is scene
        assert scene.ready  # shown with the flip: no wait for a first picture
        assert panel.last().pixel(W // 2, H // 2) != BLUE
        assert volumes[-1] == 100
        panel.run_for(0.4)
        assert video.position_ms() > 0  # plays on
    finally:
        panel.window.factory.register("video", load_video)


class SteeredVideo:
    """A :class:`~kiosk.video.VideoOut` whose position the test sets; records seeks."""

    embedded = False

    def __init__(self) -> None:
        self.on_frame: Callable[[], None] | None = None
        self.on_started: Callable[[], None] | None = None
        self.on_end: Callable[[], None] | None = None
        self.on_error: Callable[[CorruptContentError], None] | None = None
        self.position = 0
        self.reading: PositionReading | None = None
        self.seeks: list[int] = []
        self.rates: list[float] = []

    def load(self, path: Path) -> None: ...
    def play(self) -> None: ...
    def pause(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    def set_volume(self, percent: int) -> None: ...

    def seek(self, position_ms: int) -> None:
        self.seeks.append(position_ms)

    def set_rate(self, rate: float) -> None:
        self.rates.append(rate)

    def position_ms(self) -> int:
        return self.position

    def position_reading(self) -> PositionReading | None:
        return self.reading

    def duration_ms(self) -> int | None:
        return None

    def latest_frame(self) -> VideoFrame | None:
        return None


@contextlib.contextmanager
def primed_steered_video(panel: Panel, title: str) -> Iterator[tuple[SteeredVideo, ManifestItem]]:
    """A :class:`SteeredVideo` as the panel's video, shown for an instant a minute away and
    primed at its first picture (the seek there cleared); the real loader is put back."""
    video = SteeredVideo()
    checked: VideoOut = video  # mypy checks the fake against the port

    def loader(request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
        path = ctx.store.path(request.item.sha256 or "")
        return lambda: VideoScene(ctx, request, path, make_video=lambda c, s: checked)

    panel.window.factory.register("video", loader)
    try:
        item = dataclasses.replace(panel.video_item, title=title)
        panel.window.apply(Show(panel.lesson, VIDEO_INDEX, item, at_s=time.monotonic() + 60))
        panel.window.run_pending()
        assert video.on_started is not None
        video.on_started()  # its first picture: primed
        panel.window.run_pending()
        assert video.seeks == [0]  # paused there and rewound to the start
        video.seeks.clear()
        yield video, item
    finally:
        panel.window.factory.register("video", load_video)


def test_a_video_started_at_an_instant_is_put_back_on_time(
    panel: Panel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the monotonic clock of its instant, at the times libVLC published its
    positions: a video a few frames ahead (three readings agree) is slowed down, a pause
    ends that correction, and a video a second ahead is moved back to where it should
    be."""
    with primed_steered_video(panel, "Ушло вперёд") as (video, _):
        panel.window._flip()
        scene = panel.scene()
        assert scene._clock is not None

        def reading(off_ms: int) -> None:
            at_s = video_scene.monotonic()
            expected = scene._clock.position_ms(at_s) if scene._clock else 0
            video.reading = PositionReading(at_s, round((expected or 0) + off_ms))
            scene._check_drift()
            scene._check_drift()  # the same reading again: no new decision

        for off in (5, -8, 3, 0):  # within half a frame: left alone
            reading(off)
        assert (video.seeks, video.rates) == ([], [])
        for off in (300, 310, 290):
            reading(off)
        assert (video.seeks, video.rates) == ([], [1.0 - RATE_STEP])
        panel.window.apply(VideoCommand("pause"))
        panel.window.run_pending()
        assert video.rates == [1.0 - RATE_STEP, 1.0]  # the pause ended the correction
        panel.window.apply(VideoCommand("play"))
        panel.window.run_pending()
        # Readings published just after the resume are not used: the scene's clock (and
        # libVLC's stamps with it) moves on past that, without waiting.
        later = video_scene.monotonic
        monkeypatch.setattr(video_scene, "monotonic", lambda: later() + SETTLE_S)
        for off in (1_400, 1_410, 1_390):
            reading(off)
        [to] = video.seeks
        assert video.reading is not None
        assert abs(to - (video.reading.position_ms - 1_390)) < 50  # where it should be


def test_a_video_entered_after_its_instant_counts_from_the_instant(panel: Panel) -> None:
    """A panel whose frame came late to the instant (a busy machine) counts the lateness
    as drift and catches up by its rate; an instant that is no recent past one (another
    clock's) is not taken."""
    with primed_steered_video(panel, "Опоздал") as (video, item):
        primed = panel.window.stage.cached((VIDEO_INDEX, item))
        assert isinstance(primed, VideoScene)
        primed.prime(time.monotonic() - 0.1)  # its instant is now 100 ms past
        panel.window._flip()  # the flip, late
        scene = panel.scene()
        assert scene is primed
        assert scene._clock is not None
        for _ in range(3):  # the video is where it was when resumed: 100 ms behind
            at_s = time.monotonic()
            expected = scene._clock.position_ms(at_s)
            assert expected is not None
            assert expected >= 100
            video.reading = PositionReading(at_s, round(expected - 100))
            scene._check_drift()
        assert (video.seeks, video.rates) == ([], [1.0 + RATE_STEP])
        later = time.monotonic()
        assert scene._started_at(later) != later  # the instant, 100 ms ago
        scene.prime(later - 5.0)  # an instant long past, or of another clock
        assert scene._started_at(later) == later
        scene.prime(later + 5.0)
        assert scene._started_at(later) == later


class LateVideo(VlcVideo):
    """The real libVLC player, whose first resume comes :data:`LATE_S` late (as if its
    decoder had started slowly)."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []
        self.seeks: list[int] = []
        self.resumed = 0

    def play(self) -> None:
        self.resumed += 1
        if self.resumed == 2:  # the first was opening it, primed; this is the instant's
            time.sleep(LATE_S)
        super().play()

    def set_rate(self, rate: float) -> None:
        self.rates.append(rate)
        super().set_rate(rate)

    def seek(self, position_ms: int) -> None:
        self.seeks.append(position_ms)
        super().seek(position_ms)


LATE_S = 0.2


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-second 320x180 video (the sample clip looped by libVLC's transcoder)."""
    from bench._video720 import make_video_720p

    return make_video_720p(tmp_path_factory.mktemp("long") / "long.mp4", repeat=6, size=(320, 180))


def test_a_video_started_late_is_brought_back_within_a_frame_by_its_rate(
    panel: Panel, long_video: Path
) -> None:
    """Real libVLC: a video that starts 200 ms after its instant plays a little faster
    until it is within a frame of its clock, then at the normal rate; no seek."""
    sha = panel.store.put_bytes(long_video.read_bytes())
    item = ManifestItem("video", "Опоздал", sha256=sha, size_bytes=long_video.stat().st_size)
    lesson = LessonManifest(lesson_id="late", title="Опоздал", items=[item])
    made: list[LateVideo] = []

    def make(ctx: SceneContext, size: object) -> VideoOut:
        made.append(LateVideo())
        return made[-1]

    def loader(request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
        path = ctx.store.path(request.item.sha256 or "")
        return lambda: VideoScene(ctx, request, path, make_video=make)

    panel.window.factory.register("video", loader)
    try:
        panel.window.apply(Show(lesson, 0, item, at_s=time.monotonic() + 60))
        key = (0, item)
        panel.run_for(
            3.0, until=lambda: bool(getattr(panel.window.stage.cached(key), "_started", 0))
        )
        panel.window._flip()
        scene = panel.scene()
        [video] = made
        video.seeks.clear()  # the primed video's rewind to its first picture
        drift = scene._drift

        def off_ms() -> float:
            reading = video.position_reading()
            assert reading is not None
            assert scene._clock is not None
            return reading.position_ms - (scene._clock.position_ms(reading.at_s) or 0)

        panel.run_for(3.0, until=lambda: bool(video.rates))
        assert off_ms() < -(LATE_S * 1000) / 2  # it did start late
        assert video.rates == [1.0 + RATE_STEP]  # and catches up by playing faster
        panel.run_for(8.0, until=lambda: drift.rate == 1.0)
        assert video.rates == [1.0 + RATE_STEP, 1.0]
        panel.run_for(1.5)  # fresh readings at the normal rate
        assert abs(off_ms()) <= FRAME_MS
        assert video.seeks == []
        assert video.rates[-1] == 1.0
    finally:
        panel.window.factory.register("video", load_video)


class VolumeSpy(VlcVideo):
    """The real libVLC player, recording the volumes it is given (with ``--aout=dummy``
    libVLC has no mixer to read them back from)."""

    def __init__(self, log: list[int]) -> None:
        super().__init__()
        self.log = log

    def set_volume(self, percent: int) -> None:
        self.log.append(percent)
        super().set_volume(percent)


def test_the_volume_reaches_this_and_later_videos(panel: Panel) -> None:
    volumes: list[int] = []

    def loader(request: SceneRequest, ctx: SceneContext) -> SceneBuilder:
        path = ctx.store.path(request.item.sha256 or "")
        return lambda: VideoScene(ctx, request, path, make_video=lambda c, s: VolumeSpy(volumes))

    panel.window.factory.register("video", loader)
    try:
        panel.window.apply(VideoCommand("volume", volume=30))  # before the video
        # A new item (the window keeps built scenes by item): built by the spy's loader.
        item = dataclasses.replace(panel.video_item, title="Громкость")
        panel.window.apply(Show(panel.lesson, VIDEO_INDEX, item))
        panel.run_for(0.4)
        assert volumes == [30]
        panel.window.apply(VideoCommand("volume", volume=70))  # while it plays
        panel.window.run_pending()
        assert volumes == [30, 70]
        assert panel.scene().playing  # nothing else changed
    finally:
        panel.window.factory.register("video", load_video)
        panel.window.apply(VideoCommand("volume", volume=100))


PADDED = Path(__file__).parent / "data" / "padded-320x180.mp4"
"""320x180 H.264: decoded in 16-row macroblocks, 320x192 to libVLC's frame callbacks."""


def test_a_video_is_shown_at_its_own_size_not_the_decoders(panel: Panel) -> None:
    sha = panel.store.put_bytes(PADDED.read_bytes())
    item = ManifestItem("video", "16:9", sha256=sha, size_bytes=PADDED.stat().st_size)
    lesson = LessonManifest(lesson_id="padded", title="16:9", items=[item])
    panel.window.apply(Show(lesson, 0, item))
    panel.run_for(0.5)
    # 16:9 in a 16:9 window fills it; at 320x192 it would stand between black bars.
    assert panel.last().pixel(4, H * 3 // 4) != BLACK
    assert panel.last().pixel(W - 4, H * 3 // 4) != BLACK


class _FakeEmbedded:
    """A :class:`~kiosk.video.VideoOut` drawing into the surface (no libVLC)."""

    embedded = True

    def __init__(self) -> None:
        self.on_frame: Callable[[], None] | None = None
        self.on_started: Callable[[], None] | None = None
        self.on_end: Callable[[], None] | None = None
        self.on_error: Callable[[object], None] | None = None

    def load(self, path: Path) -> None: ...
    def play(self) -> None: ...
    def pause(self) -> None: ...
    def seek(self, position_ms: int) -> None: ...
    def set_volume(self, percent: int) -> None: ...
    def stop(self) -> None: ...
    def position_ms(self) -> int:
        return 0

    def position_reading(self) -> None:
        return None

    def duration_ms(self) -> int | None:
        return None

    def latest_frame(self) -> None:
        return None

    def close(self) -> None: ...


class _FakeSurface:
    """A :class:`~kiosk.x11.VideoSurface` whose VLC window fits once the test says so."""

    xid = 1
    visible = False

    def __init__(self) -> None:
        self.placed = False

    def show(self, x: int, y: int, width: int, height: int) -> None: ...
    def picture_placed(self) -> bool:
        return self.placed

    def fill_black(self) -> bool:
        return True

    def hide(self) -> None: ...
    def close(self) -> None: ...


def test_an_embedded_video_is_shown_only_once_vlc_fitted_its_window(
    panel: Panel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded machine VLC may still be reopening its window at the video's own size
    (a new window, black) when the settling wait is over: the scene is not ready, so the
    surface stays unmapped and the previous item on screen, until VLC's window fits."""
    default = pyglet.clock.get_default()
    now = [default.time() + 1.0]
    monkeypatch.setattr(default, "time", lambda: now[0])
    default.tick()
    surface = _FakeSurface()
    video = _FakeEmbedded()
    ctx = dataclasses.replace(panel.window.ctx, video_surface=surface)
    path = panel.store.path(panel.video_item.sha256 or "")
    scene = VideoScene(
        ctx,
        SceneRequest(VIDEO_INDEX, panel.video_item),
        path,
        make_video=lambda ctx, size: video,  # type: ignore[arg-type,return-value]
    )
    try:
        scene.enter()
        assert video.on_started is not None
        video.on_started()  # VLC opened its output
        pyglet.app.platform_event_loop.dispatch_posted_events()
        now[0] += video_scene.EMBEDDED_SETTLE_S
        default.tick()
        assert not scene.ready  # still at the video's own size
        for _ in range(3):
            now[0] += video_scene.PLACED_POLL_S
            default.tick()
            assert not scene.ready
        surface.placed = True
        now[0] += video_scene.PLACED_POLL_S
        default.tick()
        assert not scene.ready  # its empty picture is waited out once more
        now[0] += video_scene.EMBEDDED_SETTLE_S
        default.tick()
        assert scene.ready
        assert scene.uses_surface
    finally:
        scene.delete()


class _RecordingEmbedded(_FakeEmbedded):
    """An embedded :class:`~kiosk.video.VideoOut` that records what it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def play(self) -> None:
        self.calls.append("play")

    def pause(self) -> None:
        self.calls.append("pause")

    def seek(self, position_ms: int) -> None:
        self.calls.append(f"seek {position_ms}")

    def set_volume(self, percent: int) -> None:
        self.calls.append(f"volume {percent}")


def _embedded_scene(panel: Panel, surface: _FakeSurface, video: _FakeEmbedded) -> VideoScene:
    ctx = dataclasses.replace(panel.window.ctx, video_surface=surface)
    path = panel.store.path(panel.video_item.sha256 or "")
    return VideoScene(
        ctx,
        SceneRequest(VIDEO_INDEX, panel.video_item),
        path,
        make_video=lambda ctx, size: video,  # type: ignore[arg-type,return-value]
    )


def test_an_embedded_video_is_prepared_ahead_in_the_hidden_surface(panel: Panel) -> None:
    """Before an instant, VLC opens the video in the unmapped surface, silent, and waits
    paused at its first picture, rewound; at the instant it only resumes, and the scene
    is ready at once (the surface is mapped with the flip)."""
    surface = _FakeSurface()
    surface.placed = True  # VLC fitted its window to the surface while it waited
    video = _RecordingEmbedded()
    scene = _embedded_scene(panel, surface, video)
    try:
        scene.prime(time.monotonic())
        assert scene.playing
        assert video.calls == ["volume 100", "volume 0", "play"]
        assert video.on_started is not None
        video.on_started()  # VLC opened its output
        pyglet.app.platform_event_loop.dispatch_posted_events()
        assert video.calls[3:] == ["pause", "seek 0"]
        assert not scene.uses_surface  # nothing mapped before the instant
        scene.enter()
        assert video.calls[5:] == ["volume 100", "play"]  # resumed, with its sound
        assert scene.ready
        assert scene.uses_surface
    finally:
        scene.delete()


def test_an_embedded_video_is_not_prepared_while_another_shows_on_the_surface(
    panel: Panel,
) -> None:
    surface = _FakeSurface()
    surface.visible = True
    video = _RecordingEmbedded()
    scene = _embedded_scene(panel, surface, video)
    try:
        scene.prime(time.monotonic())
        assert not scene.playing
        assert video.calls == []
        scene.enter()  # at the instant: opened then, as without an instant
        assert video.calls == ["volume 100", "play"]
    finally:
        scene.delete()


def test_a_primed_embedded_video_waits_for_vlc_to_fit_the_surface(panel: Panel) -> None:
    """On a loaded machine VLC may not have fitted its window by the instant: the scene
    plays on but is not ready (the previous item stays) until it has."""
    surface = _FakeSurface()
    video = _RecordingEmbedded()
    scene = _embedded_scene(panel, surface, video)
    try:
        scene.prime(time.monotonic())
        assert video.on_started is not None
        video.on_started()
        pyglet.app.platform_event_loop.dispatch_posted_events()
        scene.enter()
        assert video.calls[-1] == "play"
        assert not scene.ready
        surface.placed = True
        panel.run_for(
            video_scene.PLACED_POLL_S + video_scene.EMBEDDED_SETTLE_S + 1.0,
            until=lambda: scene.ready,
        )
        assert scene.ready
    finally:
        scene.delete()
