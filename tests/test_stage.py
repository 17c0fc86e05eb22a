"""The scene switch (kiosk.stage) driven without GL: fake scenes and a clock the test moves.

What is on screen stays there until the next scene is ready (or its wait is over, or
a flip instant has come), and the scene that left is only handed back to be left once
its successor is up; nothing is left, entered or evicted twice.
"""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from kiosk.player import VideoCommand
from kiosk.stage import IDLE_KEY, Stage


class FakeScene:
    """Records what the stage did to it; ``is_ready`` is set by the test. (No pyglet:
    the stage needs only :class:`kiosk.stage.StageScene`.)"""

    def __init__(self, name: str, *, ready: bool = True, wait_s: float = 1.0) -> None:
        self.name = name
        self.is_ready = ready
        self.first_picture_wait_s = wait_s
        self.calls: list[str] = []

    def __repr__(self) -> str:
        return f"FakeScene({self.name})"

    @property
    def ready(self) -> bool:
        return self.is_ready

    def enter(self) -> None:
        self.calls.append("enter")

    def leave(self) -> None:
        self.calls.append("leave")

    def overlaid(self, covered: bool) -> None:
        self.calls.append(f"overlaid {covered}")

    def video(self, command: VideoCommand) -> None:
        self.calls.append(f"video {command.action}")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def idle() -> FakeScene:
    return FakeScene("idle")


@pytest.fixture
def stage(idle: FakeScene, clock: Clock) -> Stage[FakeScene]:
    return Stage(idle, clock=clock)


def show(stage: Stage[FakeScene], key: Hashable, scene: FakeScene) -> None:
    stage.want(key)
    stage.switch(key, scene)


def test_a_ready_scene_comes_on_screen_at_the_next_update_and_the_old_one_leaves_after(
    stage: Stage[FakeScene], idle: FakeScene
) -> None:
    picture = FakeScene("picture")
    show(stage, 1, picture)
    assert picture.calls == ["overlaid False", "enter"]
    assert stage.on_screen is idle  # nothing changes before the window advances
    assert stage.update() is True
    assert stage.on_screen is picture
    assert idle.calls == []  # not left yet: the new frame goes up first
    assert stage.take_leaving() == [idle]
    assert stage.take_arrived() is picture
    assert stage.take_leaving() == []
    assert stage.take_arrived() is None


def test_the_previous_scene_stays_until_the_next_is_ready(
    stage: Stage[FakeScene], clock: Clock, idle: FakeScene
) -> None:
    picture = FakeScene("picture")
    show(stage, 1, picture)
    stage.update()
    stage.take_leaving()
    page = FakeScene("page", ready=False, wait_s=10.0)
    show(stage, 2, page)
    for _ in range(3):
        clock.now += 3.0  # 9 s: still within the page's own wait
        assert stage.update() is False
        assert stage.on_screen is picture
        assert stage.take_leaving() == []
    assert stage.next_deadline() == pytest.approx(100.0 + 10.0)
    page.is_ready = True  # Chromium painted
    assert stage.update() is True
    assert stage.on_screen is page
    assert stage.take_leaving() == [picture]
    assert stage.next_deadline() is None


def test_a_scene_that_never_gets_ready_shows_when_its_wait_is_over(
    stage: Stage[FakeScene], clock: Clock, idle: FakeScene
) -> None:
    video = FakeScene("video", ready=False, wait_s=1.0)
    show(stage, 5, video)
    assert stage.next_deadline() == pytest.approx(101.0)
    clock.now = 100.999
    assert stage.update() is False
    assert stage.on_screen is idle
    clock.now = 101.0
    assert stage.update() is True
    assert stage.on_screen is video
    assert stage.take_leaving() == [idle]
    assert stage.take_arrived() is video


def test_a_switch_at_an_instant_flips_no_earlier(stage: Stage[FakeScene], clock: Clock) -> None:
    slide = FakeScene("slide")
    stage.want(3)
    stage.switch(3, slide, not_before=105.0)
    assert slide.calls == ["overlaid False", "enter"]  # prepared ahead
    assert stage.next_deadline() == 105.0
    clock.now = 104.99
    assert stage.update() is False
    clock.now = 105.0
    assert stage.update() is True
    assert stage.on_screen is slide


def test_a_scene_replaced_while_waiting_is_left_and_never_shown(
    stage: Stage[FakeScene], clock: Clock, idle: FakeScene
) -> None:
    video = FakeScene("video", ready=False)
    picture = FakeScene("picture")
    show(stage, 5, video)
    stage.update()
    show(stage, 1, picture)  # next, before the video's first picture
    assert stage.on_screen is idle  # still the idle screen, never the video
    stage.update()
    assert stage.on_screen is picture
    assert set(stage.take_leaving()) == {video, idle}
    assert stage.take_arrived() is picture


def test_going_back_to_what_is_still_on_screen_cancels_the_switch(
    stage: Stage[FakeScene], idle: FakeScene
) -> None:
    video = FakeScene("video", ready=False)
    show(stage, 5, video)
    show(stage, IDLE_KEY, idle)
    assert stage.on_screen is idle
    assert stage.outgoing is None
    assert stage.update() is False
    assert stage.take_leaving() == [video]
    assert idle.calls.count("enter") == 0  # it never left


def test_video_commands_wait_for_the_wanted_scene(stage: Stage[FakeScene]) -> None:
    stage.want(5)  # loading
    stage.video(VideoCommand("pause"))
    video = FakeScene("video")
    assert stage.keep(5, video) is True
    assert video.calls == ["overlaid False", "enter", "video pause"]
    stage.video(VideoCommand("play"))
    assert video.calls[-1] == "video play"


def test_the_volume_reaches_the_scene_still_on_screen_too(stage: Stage[FakeScene]) -> None:
    first = FakeScene("first")
    show(stage, 5, first)
    stage.update()
    second = FakeScene("second", ready=False)
    show(stage, 6, second)
    stage.video(VideoCommand("volume", volume=40))
    assert first.calls[-1] == "video volume"
    assert second.calls[-1] == "video volume"


def test_covering_is_told_to_the_current_scene(stage: Stage[FakeScene]) -> None:
    page = FakeScene("page")
    show(stage, 6, page)
    stage.cover(True)
    stage.update()
    assert page.calls[-1] == "overlaid True"
    stage.cover(False)
    stage.update()
    assert page.calls[-1] == "overlaid False"


def test_the_cache_keeps_what_is_on_screen_wanted_or_leaving(idle: FakeScene, clock: Clock) -> None:
    stage = Stage(idle, clock=clock, cache=2)
    scenes = {k: FakeScene(str(k)) for k in range(4)}
    assert stage.keep(0, scenes[0]) is False  # preloaded
    show(stage, 1, scenes[1])
    stage.keep(1, scenes[1])
    stage.update()
    assert stage.evict() == []
    stage.keep(2, scenes[2])
    assert stage.evict() == [scenes[0]]  # the oldest, neither on screen nor wanted
    stage.want(3)
    stage.keep(3, scenes[3])  # switches: 1 stays on screen until 3 is up
    assert stage.evict() == [scenes[2]]
    assert stage.cached(1) is scenes[1]
    assert stage.cached(3) is scenes[3]


def test_a_new_size_drops_every_scene_but_the_current_one(
    stage: Stage[FakeScene], idle: FakeScene
) -> None:
    picture = FakeScene("picture")
    other = FakeScene("other")
    stage.keep(7, other)
    show(stage, 1, picture)
    stage.keep(1, picture)
    new_idle = FakeScene("idle 2")
    dropped = stage.reset(new_idle)
    assert set(dropped) == {idle, other}
    assert stage.on_screen is picture
    assert stage.idle is new_idle


def test_the_stage_loads_no_pyglet() -> None:
    import subprocess
    import sys

    code = "import sys, kiosk.stage; assert 'pyglet' not in sys.modules, 'pyglet'"
    subprocess.run([sys.executable, "-c", code], check=True)
