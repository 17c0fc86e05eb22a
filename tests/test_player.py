"""The lesson player: kiosk.player (pure, full branch coverage from this module alone).

Every test builds a player, feeds it commands with an explicit ``now`` and compares the
drained effects exactly. The sections follow the transition table in the module docstring.
"""

from __future__ import annotations

from typing import Any, get_args

import pytest

from kiosk.player import (
    TRANSITIONS,
    Effect,
    Identity,
    Input,
    IntervalEnded,
    IntervalStarted,
    LessonPlayer,
    Preload,
    Presenter,
    SetBlank,
    Show,
    ShowIdle,
    StatusChanged,
    VideoCommand,
)
from protocol import limits
from protocol.errors import ForbiddenError, UnexpectedMessageError
from protocol.messages import (
    ControlAction,
    EndReason,
    ItemFailure,
    LessonManifest,
    ManifestItem,
    PlayerState,
    StatusSnapshot,
)

IDENTITY = Identity(kiosk_id="kiosk-204", room="204", school="Школа №5", version="1.2.3")
ANNA = Presenter(id="t-anna", name="Анна Петровна")
BORIS = Presenter(id="t-boris", name="Борис Иванович")
ALL_ACTIONS: list[ControlAction] = [
    "next",
    "prev",
    "goto",
    "pause",
    "play",
    "seek",
    "blank",
    "unblank",
    "stop",
]


# --------------------------------------------------------------------------- builders


def image(n: int, duration_ms: int | None = None) -> ManifestItem:
    return ManifestItem(
        "image", f"Слайд {n}", sha256=f"{n:064x}", size_bytes=100 + n, duration_ms=duration_ms
    )


def video(n: int, duration_ms: int | None = None) -> ManifestItem:
    return ManifestItem(
        "video", f"Видео {n}", sha256=f"{n:064x}", size_bytes=100 + n, duration_ms=duration_ms
    )


def text(n: int, duration_ms: int | None = None) -> ManifestItem:
    return ManifestItem("text", f"Текст {n}", text=f"строка {n}", duration_ms=duration_ms)


def manifest(*items: ManifestItem, lesson_id: str = "bio-7") -> LessonManifest:
    return LessonManifest(lesson_id=lesson_id, title=f"Урок {lesson_id}", items=list(items))


LESSON = manifest(image(0), video(1), text(2))
TIMED = manifest(image(0, 5_000), text(1, 2_000), image(2, 1_000), lesson_id="timed")
OTHER = manifest(text(0), text(1), lesson_id="chem-8")


def snap(
    state: PlayerState = "idle",
    lesson: LessonManifest | None = None,
    index: int = 0,
    *,
    position_ms: int = 0,
    blanked: bool = False,
    presenter: Presenter = ANNA,
    volume: int = 100,
    item_failure: ItemFailure | None = None,
    item_failure_status: int | None = None,
    item_opened: bool = False,
) -> StatusSnapshot:
    """The snapshot a player should report."""
    item = lesson.items[index] if lesson and state in ("playing", "paused") else None
    return StatusSnapshot(
        kiosk_id="kiosk-204",
        room="204",
        school="Школа №5",
        state=state,
        blanked=blanked,
        lesson_id=lesson.lesson_id if lesson else None,
        lesson_title=lesson.title if lesson else None,
        index=index,
        count=len(lesson.items) if lesson else 0,
        item_kind=item.kind if item else None,
        item_title=item.title if item else None,
        position_ms=position_ms,
        presenter=presenter.name if lesson else None,
        version="1.2.3",
        volume=volume,
        item_failure=item_failure,
        item_failure_status=item_failure_status,
        item_opened=item_opened,
    )


def changed(*args: Any, **kwargs: Any) -> StatusChanged:
    return StatusChanged(snap(*args, **kwargs))


def started(
    lesson: LessonManifest, index: int, now: float, presenter: Presenter = ANNA
) -> list[Effect]:
    """Show, Preload (unless last), IntervalStarted and StatusChanged of a new item."""
    effects: list[Effect] = [Show(lesson, index, lesson.items[index])]
    if index + 1 < len(lesson.items):
        effects.append(Preload(lesson, index + 1, lesson.items[index + 1]))
    effects.append(IntervalStarted(lesson, index, lesson.items[index], presenter, now))
    effects.append(changed("playing", lesson, index, presenter=presenter))
    return effects


def moved(reason: EndReason, lesson: LessonManifest, index: int, now: float) -> list[Effect]:
    return [IntervalEnded(reason, now), *started(lesson, index, now)]


def playing(lesson: LessonManifest = LESSON, index: int = 0, now: float = 0.0) -> LessonPlayer:
    """A player showing ``lesson`` from ``index`` since ``now``, effects drained."""
    player = LessonPlayer(IDENTITY)
    player.load(lesson, ANNA, start_index=index, now=now)
    player.drain()
    return player


def raises(player: LessonPlayer, code: str, action: ControlAction, **kw: Any) -> None:
    with pytest.raises(UnexpectedMessageError, match=f"^cannot {action}: ") as info:
        player.control(action, now=kw.pop("now", 50.0), **kw)
    assert info.value.code == code


# --------------------------------------------------------------------------- idle


def test_new_player_is_idle() -> None:
    player = LessonPlayer(IDENTITY)
    assert player.state == "idle"
    assert not player.blanked
    assert player.lesson is None
    assert player.presenter is None
    assert player.index == 0
    assert player.position_ms(100.0) == 0
    assert player.next_deadline_s() is None
    assert player.drain() == []
    assert player.snapshot(100.0) == StatusSnapshot(
        kiosk_id="kiosk-204",
        room="204",
        school="Школа №5",
        state="idle",
        blanked=False,
        lesson_id=None,
        lesson_title=None,
        index=0,
        count=0,
        item_kind=None,
        item_title=None,
        position_ms=0,
        presenter=None,
        version="1.2.3",
    )


@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_control_while_idle_raises_no_lesson(action: ControlAction) -> None:
    player = LessonPlayer(IDENTITY)
    raises(player, "no_lesson", action, index=0, position_ms=0)
    assert player.drain() == []
    assert player.state == "idle"


@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_control_after_stop_raises_no_lesson(action: ControlAction) -> None:
    player = playing()
    player.control("stop", now=1.0)
    player.drain()
    raises(player, "no_lesson", action, index=0)


def test_idle_ignores_tick_video_ended_and_shutdown() -> None:
    player = LessonPlayer(IDENTITY)
    player.tick(now=1e9)
    player.video_ended(0, now=1.0)
    player.shutdown(now=2.0)
    assert player.drain() == []
    assert player.state == "idle"


# --------------------------------------------------------------------------- load


def test_load_starts_at_once() -> None:
    player = LessonPlayer(IDENTITY)
    player.load(LESSON, ANNA, start_index=0, now=10.0)
    assert player.drain() == [
        Show(LESSON, 0, image(0)),
        Preload(LESSON, 1, video(1)),
        IntervalStarted(LESSON, 0, image(0), ANNA, 10.0),
        StatusChanged(
            StatusSnapshot(
                kiosk_id="kiosk-204",
                room="204",
                school="Школа №5",
                state="playing",
                blanked=False,
                lesson_id="bio-7",
                lesson_title="Урок bio-7",
                index=0,
                count=3,
                item_kind="image",
                item_title="Слайд 0",
                position_ms=0,
                presenter="Анна Петровна",
                version="1.2.3",
            )
        ),
    ]
    assert player.drain() == []
    assert player.state == "playing"
    assert player.lesson is LESSON
    assert player.presenter == ANNA
    assert player.index == 0
    assert player.next_deadline_s() is None  # an image without duration_ms waits


def test_load_at_last_item_preloads_nothing() -> None:
    player = LessonPlayer(IDENTITY)
    player.load(LESSON, ANNA, start_index=2, now=1.0)
    assert player.drain() == [
        Show(LESSON, 2, text(2)),
        IntervalStarted(LESSON, 2, text(2), ANNA, 1.0),
        changed("playing", LESSON, 2),
    ]
    assert player.index == 2


@pytest.mark.parametrize("start_at_s", [None, 9.0, 10.0])
def test_load_with_start_time_not_in_future_starts_at_once(start_at_s: float | None) -> None:
    player = LessonPlayer(IDENTITY)
    player.load(LESSON, ANNA, start_index=1, now=10.0, start_at_s=start_at_s)
    assert player.drain() == started(LESSON, 1, 10.0)
    assert player.state == "playing"


def test_load_with_start_later_waits_in_loading() -> None:
    player = LessonPlayer(IDENTITY)
    assert player.load(TIMED, BORIS, start_index=1, now=10.0, start_at_s=12.5) is None
    # The display prepares the item and flips at the instant; no idle screen meanwhile.
    assert player.drain() == [
        Show(TIMED, 1, TIMED.items[1], at_s=12.5),
        changed("loading", TIMED, 1, presenter=BORIS),
    ]
    assert player.state == "loading"
    assert player.lesson is TIMED
    assert player.presenter == BORIS
    assert player.index == 1
    assert player.next_deadline_s() == 12.5
    assert player.position_ms(11.0) == 0
    assert player.snapshot(11.0) == snap("loading", TIMED, 1, presenter=BORIS)
    assert player.snapshot(11.0).item_kind is None

    player.tick(now=12.499)
    assert player.drain() == []
    assert player.state == "loading"

    player.tick(now=12.5)
    assert player.drain() == started(TIMED, 1, 12.5, BORIS)
    assert player.snapshot(12.5).state == "playing"
    assert player.next_deadline_s() == 14.5  # text(1) lasts 2 s


def test_late_tick_starts_a_loading_lesson_at_its_instant() -> None:
    """The display flipped at the instant on its own timer: the lesson's clock and its
    display interval start then, whenever the tick comes."""
    player = LessonPlayer(IDENTITY)
    player.load(LESSON, ANNA, start_index=0, now=0.0, start_at_s=5.0)
    player.drain()
    player.tick(now=7.0)
    assert player.drain() == started(LESSON, 0, 5.0)
    assert player.position_ms(8.0) == 3000


def test_load_replaces_a_playing_lesson() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.load(OTHER, BORIS, start_index=0, now=20.0)
    assert player.drain() == [
        IntervalEnded("replaced", 20.0),
        *started(OTHER, 0, 20.0, BORIS),
    ]
    assert player.lesson is OTHER
    assert player.presenter == BORIS


def test_load_later_replaces_a_playing_lesson() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.load(OTHER, BORIS, start_index=1, now=20.0, start_at_s=30.0)
    # The playing item stays on the panel, and in its display interval, until the instant.
    assert player.drain() == [
        Show(OTHER, 1, OTHER.items[1], at_s=30.0),
        changed("loading", OTHER, 1, presenter=BORIS),
    ]
    player.tick(now=30.0)
    assert player.drain() == [IntervalEnded("replaced", 30.0), *started(OTHER, 1, 30.0, BORIS)]


def test_load_replaces_a_loading_lesson_without_an_interval() -> None:
    player = LessonPlayer(IDENTITY)
    player.load(LESSON, ANNA, start_index=0, now=0.0, start_at_s=10.0)
    player.drain()
    player.load(OTHER, ANNA, start_index=0, now=1.0)
    assert player.drain() == started(OTHER, 0, 1.0)


def test_load_replaces_a_paused_lesson_and_plays() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.control("pause", now=1.0)
    player.drain()
    player.load(TIMED, ANNA, start_index=0, now=5.0)
    assert player.drain() == moved("replaced", TIMED, 0, 5.0)
    assert player.state == "playing"
    assert player.position_ms(6.0) == 1000
    assert player.next_deadline_s() == 10.0


@pytest.mark.parametrize("start_index", [-1, 3, 100])
def test_load_with_bad_start_index_changes_nothing(start_index: int) -> None:
    player = playing(OTHER, 1, now=0.0)
    with pytest.raises(UnexpectedMessageError, match=f"start index {start_index} is outside") as e:
        player.load(LESSON, BORIS, start_index=start_index, now=5.0)
    assert e.value.code == "bad_index"
    assert player.drain() == []
    assert (player.state, player.lesson, player.index, player.presenter) == (
        "playing",
        OTHER,
        1,
        ANNA,
    )


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("action", [a for a in ALL_ACTIONS if a != "stop"])
def test_control_while_loading_raises_not_started(action: ControlAction) -> None:
    player = LessonPlayer(IDENTITY)
    player.load(LESSON, ANNA, start_index=0, now=0.0, start_at_s=10.0)
    player.drain()
    raises(player, "not_started", action, index=0, position_ms=0, now=1.0)
    assert player.drain() == []
    assert player.state == "loading"
    assert player.next_deadline_s() == 10.0


def test_stop_while_loading() -> None:
    player = LessonPlayer(IDENTITY)
    player.load(LESSON, ANNA, start_index=0, now=0.0, start_at_s=10.0)
    player.drain()
    player.control("stop", now=1.0)
    assert player.drain() == [ShowIdle(), changed("idle")]
    assert player.state == "idle"
    assert player.next_deadline_s() is None
    player.tick(now=10.0)  # the cancelled start never happens
    assert player.drain() == []


def test_video_ended_while_loading_is_ignored() -> None:
    player = LessonPlayer(IDENTITY)
    player.load(LESSON, ANNA, start_index=1, now=0.0, start_at_s=10.0)
    player.drain()
    player.video_ended(1, now=2.0)
    assert player.drain() == []


# --------------------------------------------------------------------------- next / prev / goto


def test_next_prev_goto() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.control("next", now=1.0)
    assert player.drain() == [
        IntervalEnded("next", 1.0),
        Show(LESSON, 1, video(1)),
        Preload(LESSON, 2, text(2)),
        IntervalStarted(LESSON, 1, video(1), ANNA, 1.0),
        changed("playing", LESSON, 1),
    ]
    assert player.index == 1

    player.control("goto", index=0, now=2.0)
    assert player.drain() == moved("goto", LESSON, 0, 2.0)

    player.control("goto", index=2, now=3.0)
    assert player.drain() == [
        IntervalEnded("goto", 3.0),
        Show(LESSON, 2, text(2)),
        IntervalStarted(LESSON, 2, text(2), ANNA, 3.0),
        changed("playing", LESSON, 2),
    ]

    player.control("prev", now=4.0)
    assert player.drain() == moved("prev", LESSON, 1, 4.0)
    assert player.position_ms(4.5) == 500


def test_goto_current_item_restarts_it() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("goto", index=1, now=7.0)
    assert player.drain() == moved("goto", LESSON, 1, 7.0)
    assert player.position_ms(7.0) == 0


def test_prev_on_first_item_changes_nothing() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.control("prev", now=3.0)
    assert player.drain() == []
    assert player.index == 0
    assert player.position_ms(3.0) == 3000


@pytest.mark.parametrize("index", [None, -1, 3, 99])
def test_goto_bad_index(index: int | None) -> None:
    player = playing(LESSON, 1, now=0.0)
    with pytest.raises(UnexpectedMessageError, match=f"^item {index} does not exist; the") as e:
        player.control("goto", index=index, now=1.0)
    assert e.value.code == "bad_index"
    assert player.drain() == []
    assert (player.state, player.index) == ("playing", 1)


def test_next_on_last_item_ends_the_lesson() -> None:
    player = playing(LESSON, 2, now=0.0)
    player.control("next", now=9.0)
    assert player.drain() == [IntervalEnded("end", 9.0), ShowIdle(), changed("idle")]
    assert player.state == "idle"
    assert player.lesson is None
    assert player.presenter is None
    assert player.index == 0
    assert player.next_deadline_s() is None


@pytest.mark.parametrize(
    ("action", "index", "reason", "target"),
    [("next", None, "next", 2), ("prev", None, "prev", 0), ("goto", 2, "goto", 2)],
)
def test_moving_while_paused_plays_the_new_item(
    action: ControlAction, index: int | None, reason: EndReason, target: int
) -> None:
    player = playing(TIMED, 1, now=0.0)
    player.control("pause", now=1.0)
    player.drain()
    player.control(action, index=index, now=5.0)
    assert player.drain() == moved(reason, TIMED, target, 5.0)
    assert player.state == "playing"
    assert player.position_ms(5.25) == 250
    duration_ms = TIMED.items[target].duration_ms
    assert duration_ms is not None
    assert player.next_deadline_s() == 5.0 + duration_ms / 1000


def test_prev_on_first_item_while_paused_stays_paused() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.control("pause", now=1.0)
    player.drain()
    player.control("prev", now=2.0)
    assert player.drain() == []
    assert player.state == "paused"


def test_next_on_last_item_while_paused_ends() -> None:
    player = playing(LESSON, 2, now=0.0)
    player.control("pause", now=1.0)
    player.drain()
    player.control("next", now=2.0)
    assert player.drain() == [IntervalEnded("end", 2.0), ShowIdle(), changed("idle")]


# --------------------------------------------------------------------------- timed items


def test_auto_advance_by_duration() -> None:
    player = playing(TIMED, 0, now=100.0)
    assert player.next_deadline_s() == 105.0

    player.tick(now=104.999)
    assert player.drain() == []
    assert player.index == 0

    player.tick(now=105.0)
    assert player.drain() == moved("auto", TIMED, 1, 105.0)
    assert player.next_deadline_s() == 107.0

    player.tick(now=107.5)  # a late tick: the next item starts at the tick
    assert player.drain() == [
        IntervalEnded("auto", 107.5),
        Show(TIMED, 2, image(2, 1_000)),
        IntervalStarted(TIMED, 2, image(2, 1_000), ANNA, 107.5),
        changed("playing", TIMED, 2),
    ]
    assert player.next_deadline_s() == 108.5

    player.tick(now=108.5)
    assert player.drain() == [IntervalEnded("end", 108.5), ShowIdle(), changed("idle")]
    assert player.state == "idle"
    assert player.next_deadline_s() is None


def test_untimed_item_never_advances() -> None:
    player = playing(LESSON, 0, now=0.0)
    assert player.next_deadline_s() is None
    player.tick(now=1e9)
    assert player.drain() == []
    assert player.position_ms(3600.0) == 3_600_000


def test_paused_timed_item_has_no_deadline_and_shifts_after_play() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.control("pause", now=2.0)
    assert player.drain() == [changed("paused", TIMED, 0, position_ms=2000)]
    assert player.next_deadline_s() is None
    player.tick(now=50.0)
    assert player.drain() == []
    assert player.position_ms(50.0) == 2000

    player.control("play", now=10.0)
    assert player.drain() == [changed("playing", TIMED, 0, position_ms=2000)]
    assert player.next_deadline_s() == 13.0  # 3 s left after 8 s paused
    player.tick(now=12.9)
    assert player.drain() == []
    player.tick(now=13.0)
    assert player.drain() == moved("auto", TIMED, 1, 13.0)


# --------------------------------------------------------------------------- video_ended


def test_video_ended_advances_from_current_video() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.video_ended(1, now=30.0)
    assert player.drain() == moved("auto", LESSON, 2, 30.0)


def test_video_ended_on_last_item_ends_the_lesson() -> None:
    lesson = manifest(image(0), video(1))
    player = playing(lesson, 1, now=0.0)
    player.video_ended(1, now=30.0)
    assert player.drain() == [IntervalEnded("end", 30.0), ShowIdle(), changed("idle")]


@pytest.mark.parametrize("index", [0, 2, 5, -1])
def test_video_ended_for_stale_index_is_ignored(index: int) -> None:
    player = playing(LESSON, 1, now=0.0)
    player.video_ended(index, now=30.0)
    assert player.drain() == []
    assert player.index == 1


WEB = manifest(ManifestItem("web", "Страница", url="http://127.0.0.1:9/"), text(1), lesson_id="web")


def test_item_failed_closes_the_interval_at_its_start_and_says_why() -> None:
    """A page that did not open has no display time: its record ends ``failed`` at its
    start, and the time the panel shows why is a hidden ``failed`` interval from that
    start; the status says why; the lesson goes on as usual."""
    player = playing(WEB, 0, now=10.0)
    player.item_failed(0, "http_error", now=12.5, status=404)
    assert player.drain() == [
        IntervalEnded("failed", 10.0),
        IntervalStarted(WEB, 0, WEB.items[0], ANNA, 10.0, "failed"),
        changed(
            "playing", WEB, 0, position_ms=2500, item_failure="http_error", item_failure_status=404
        ),
    ]
    player.item_failed(0, "timeout", now=13.0)  # reported again (the card shown again)
    assert player.drain() == []
    player.control("next", now=20.0)
    assert player.drain() == moved("next", WEB, 1, 20.0)  # the card's time ends; no failure


def test_item_failed_stays_hidden_through_blank_and_unblank() -> None:
    player = playing(WEB, 0, now=0.0)
    player.item_failed(0, "unreachable", now=1.0)
    player.drain()
    player.control("blank", now=2.0)
    player.control("unblank", now=3.0)
    assert not any(isinstance(e, IntervalStarted | IntervalEnded) for e in player.drain())
    assert player.snapshot(3.0).item_failure == "unreachable"


@pytest.mark.parametrize("index", [1, 5, -1])
def test_item_failed_for_stale_index_is_ignored(index: int) -> None:
    player = playing(WEB, 0, now=0.0)
    player.item_failed(index, "no_network", now=1.0)
    assert player.drain() == []
    assert player.snapshot(1.0).item_failure is None


def test_item_failed_while_idle_is_ignored() -> None:
    player = LessonPlayer(IDENTITY)
    player.item_failed(0, "no_network", now=1.0)
    assert player.drain() == []


def test_a_new_cast_clears_the_failure() -> None:
    player = playing(WEB, 0, now=0.0)
    player.item_failed(0, "not_allowed", now=1.0)
    player.drain()
    player.load(WEB, ANNA, start_index=0, now=5.0)
    assert player.drain() == moved("replaced", WEB, 0, 5.0)


def test_a_page_that_opened_is_told_once_per_showing() -> None:
    player = playing(WEB, 0, now=10.0)
    player.item_opened(1, now=11.0)  # the preloaded next item: not shown yet
    assert player.drain() == []
    player.item_opened(0, now=12.5)
    assert player.drain() == [changed("playing", WEB, 0, position_ms=2500, item_opened=True)]
    player.item_opened(0, now=13.0)  # the page came on screen again
    assert player.drain() == []
    player.control("next", now=20.0)
    assert player.drain()[1:] == started(WEB, 1, 20.0)  # after the page's interval ended
    assert not player.snapshot(20.0).item_opened  # the next item is not told opened


def test_a_failed_page_is_never_told_opened() -> None:
    player = playing(WEB, 0, now=0.0)
    player.item_failed(0, "unreachable", now=1.0)
    player.drain()
    player.item_opened(0, now=2.0)
    assert player.drain() == []
    assert not player.snapshot(2.0).item_opened


def test_video_ended_for_non_video_item_is_ignored() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.video_ended(0, now=30.0)
    assert player.drain() == []
    assert player.index == 0


def test_video_ended_while_paused_is_ignored() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("pause", now=1.0)
    player.drain()
    player.video_ended(1, now=2.0)
    assert player.drain() == []
    assert player.state == "paused"


# --------------------------------------------------------------------------- pause / play


def test_pause_and_play_an_image() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.control("pause", now=4.0)
    assert player.drain() == [changed("paused", LESSON, 0, position_ms=4000)]
    assert player.state == "paused"
    assert player.position_ms(9.0) == 4000
    assert player.snapshot(9.0) == snap("paused", LESSON, 0, position_ms=4000)

    player.control("pause", now=5.0)  # already paused
    assert player.drain() == []

    player.control("play", now=9.0)
    assert player.drain() == [changed("playing", LESSON, 0, position_ms=4000)]
    assert player.snapshot(9.0).state == "playing"
    assert player.position_ms(10.0) == 5000

    player.control("play", now=11.0)  # already playing
    assert player.drain() == []


def test_pause_and_play_a_video() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("pause", now=2.0)
    assert player.drain() == [
        VideoCommand("pause"),
        changed("paused", LESSON, 1, position_ms=2000),
    ]
    player.control("play", now=3.0)
    assert player.drain() == [
        VideoCommand("play"),
        changed("playing", LESSON, 1, position_ms=2000),
    ]
    assert player.position_ms(4.0) == 3000


def test_pause_keeps_the_interval_open() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.control("pause", now=1.0)
    player.control("play", now=2.0)
    effects = player.drain()
    assert not any(isinstance(e, IntervalEnded | IntervalStarted) for e in effects)


# --------------------------------------------------------------------------- seek


def test_seek_an_image_moves_its_clock() -> None:
    player = playing(TIMED, 0, now=10.0)
    player.control("seek", position_ms=2_000, now=11.0)
    assert player.drain() == [changed("playing", TIMED, 0, position_ms=2000)]
    assert player.position_ms(11.0) == 2000
    assert player.position_ms(12.0) == 3000
    assert player.next_deadline_s() == 14.0


# --------------------------------------------------------------------------- volume


def test_volume_while_idle_is_kept_for_later_videos() -> None:
    player = LessonPlayer(IDENTITY)
    player.control("volume", volume=40, now=1.0)
    assert player.drain() == [VideoCommand("volume", volume=40), changed("idle", volume=40)]
    player.load(LESSON, ANNA, start_index=0, now=2.0)
    assert player.snapshot(2.0).volume == 40
    player.control("goto", index=1, now=3.0)  # the video: the window applies ctx.volume
    assert player.volume == 40


def test_volume_while_playing_does_not_touch_the_item() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("volume", volume=0, now=5.0)
    assert player.drain() == [
        VideoCommand("volume", volume=0),
        changed("playing", LESSON, 1, position_ms=5000, volume=0),
    ]
    assert player.position_ms(6.0) == 6000  # the clock runs on


@pytest.mark.parametrize(("asked", "kept"), [(-5, 0), (250, 100), (None, 100)])
def test_volume_is_clamped(asked: int | None, kept: int) -> None:
    player = LessonPlayer(IDENTITY)
    player.control("volume", volume=50, now=0.0)
    player.control("volume", volume=asked, now=1.0)
    assert player.volume == kept


def test_the_same_volume_again_changes_nothing() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.control("volume", volume=100, now=1.0)
    assert player.drain() == []


def test_seek_is_clamped_to_the_duration() -> None:
    player = playing(TIMED, 0, now=10.0)
    player.control("seek", position_ms=60_000, now=11.0)
    assert player.drain() == [changed("playing", TIMED, 0, position_ms=5000)]
    assert player.next_deadline_s() == 11.0
    player.tick(now=11.0)
    assert player.drain() == moved("auto", TIMED, 1, 11.0)


@pytest.mark.parametrize("position_ms", [None, 0, -500])
def test_seek_to_start(position_ms: int | None) -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("seek", position_ms=position_ms, now=7.0)
    assert player.drain() == [
        VideoCommand("seek", 0),
        changed("playing", LESSON, 1, position_ms=0),
    ]
    assert player.position_ms(7.5) == 500


def test_seek_a_video_without_duration_is_not_clamped() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("seek", position_ms=3_600_000, now=1.0)
    assert player.drain() == [
        VideoCommand("seek", 3_600_000),
        changed("playing", LESSON, 1, position_ms=3_600_000),
    ]


def test_seek_a_timed_video_is_clamped() -> None:
    lesson = manifest(video(0, 10_000), image(1))
    player = playing(lesson, 0, now=0.0)
    player.control("seek", position_ms=20_000, now=1.0)
    assert player.drain() == [
        VideoCommand("seek", 10_000),
        changed("playing", lesson, 0, position_ms=10_000),
    ]


def test_seek_while_paused_stays_paused() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("pause", now=5.0)
    player.drain()
    player.control("seek", position_ms=1_000, now=8.0)
    assert player.drain() == [
        VideoCommand("seek", 1_000),
        changed("paused", LESSON, 1, position_ms=1000),
    ]
    assert player.state == "paused"
    assert player.position_ms(20.0) == 1000
    player.control("play", now=20.0)
    player.drain()
    assert player.position_ms(21.0) == 2000


def test_seek_while_blanked_stays_frozen() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.control("blank", now=1.0)
    player.drain()
    player.control("seek", position_ms=4_000, now=2.0)
    assert player.drain() == [changed("playing", TIMED, 0, position_ms=4000, blanked=True)]
    assert player.position_ms(30.0) == 4000
    assert player.next_deadline_s() is None
    player.control("unblank", now=30.0)
    player.drain()
    assert player.next_deadline_s() == 31.0


# --------------------------------------------------------------------------- blank / unblank


def test_blank_and_unblank() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.control("blank", now=2.0)
    assert player.drain() == [
        IntervalEnded("blank", 2.0),
        IntervalStarted(TIMED, 0, image(0, 5_000), ANNA, 2.0, "blank"),
        SetBlank(True),
        changed("playing", TIMED, 0, position_ms=2000, blanked=True),
    ]
    assert player.blanked
    assert player.state == "playing"
    assert player.next_deadline_s() is None  # the timer stands still behind the blank
    assert player.position_ms(60.0) == 2000
    player.tick(now=60.0)
    assert player.drain() == []

    player.control("blank", now=3.0)  # already blanked
    assert player.drain() == []

    player.control("unblank", now=60.0)
    assert player.drain() == [
        IntervalEnded("shown", 60.0),
        IntervalStarted(TIMED, 0, image(0, 5_000), ANNA, 60.0),
        SetBlank(False),
        changed("playing", TIMED, 0, position_ms=2000),
    ]
    assert not player.blanked
    assert player.next_deadline_s() == 63.0

    player.control("unblank", now=61.0)  # not blanked
    assert player.drain() == []


def test_blank_while_paused_then_play_then_unblank() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("pause", now=1.0)
    player.control("blank", now=2.0)
    assert player.drain() == [
        VideoCommand("pause"),
        changed("paused", LESSON, 1, position_ms=1000),
        IntervalEnded("blank", 2.0),
        IntervalStarted(LESSON, 1, video(1), ANNA, 2.0, "blank"),
        SetBlank(True),
        changed("paused", LESSON, 1, position_ms=1000, blanked=True),
    ]
    player.control("play", now=3.0)
    assert player.drain() == [
        # The video stays paused behind the blank; it resumes with the screen.
        changed("playing", LESSON, 1, position_ms=1000, blanked=True),
    ]
    assert player.position_ms(10.0) == 1000  # still behind the blank
    player.control("unblank", now=10.0)
    assert player.drain() == [
        IntervalEnded("shown", 10.0),
        IntervalStarted(LESSON, 1, video(1), ANNA, 10.0),
        VideoCommand("play"),
        SetBlank(False),
        changed("playing", LESSON, 1, position_ms=1000),
    ]
    assert player.position_ms(11.0) == 2000


def test_blank_then_pause_then_unblank_then_play() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.control("blank", now=1.0)
    player.control("pause", now=2.0)
    assert player.drain() == [
        IntervalEnded("blank", 1.0),
        IntervalStarted(TIMED, 0, image(0, 5_000), ANNA, 1.0, "blank"),
        SetBlank(True),
        changed("playing", TIMED, 0, position_ms=1000, blanked=True),
        changed("paused", TIMED, 0, position_ms=1000, blanked=True),
    ]
    player.control("unblank", now=3.0)
    assert player.drain() == [
        IntervalEnded("shown", 3.0),
        IntervalStarted(TIMED, 0, image(0, 5_000), ANNA, 3.0),
        SetBlank(False),
        changed("paused", TIMED, 0, position_ms=1000),
    ]
    assert player.position_ms(4.0) == 1000
    assert player.next_deadline_s() is None
    player.control("play", now=4.0)
    player.drain()
    assert player.position_ms(5.0) == 2000
    assert player.next_deadline_s() == 8.0


def test_moving_while_blanked_shows_the_item_behind_the_blank() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.control("blank", now=1.0)
    player.drain()
    player.control("next", now=2.0)
    assert player.drain() == [
        IntervalEnded("next", 2.0),
        Show(TIMED, 1, text(1, 2_000)),
        Preload(TIMED, 2, image(2, 1_000)),
        IntervalStarted(TIMED, 1, text(1, 2_000), ANNA, 2.0, "blank"),
        changed("playing", TIMED, 1, blanked=True),
    ]
    assert player.blanked
    assert player.next_deadline_s() is None
    assert player.position_ms(9.0) == 0
    player.control("unblank", now=9.0)
    assert player.drain() == [
        IntervalEnded("shown", 9.0),
        IntervalStarted(TIMED, 1, text(1, 2_000), ANNA, 9.0),
        SetBlank(False),
        changed("playing", TIMED, 1),
    ]
    assert player.next_deadline_s() == 11.0


def test_load_while_blanked_stays_blanked() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.control("blank", now=1.0)
    player.drain()
    player.load(OTHER, BORIS, start_index=0, now=2.0)
    assert player.drain() == [
        IntervalEnded("replaced", 2.0),
        Show(OTHER, 0, text(0)),
        Preload(OTHER, 1, text(1)),
        IntervalStarted(OTHER, 0, text(0), BORIS, 2.0, "blank"),
        changed("playing", OTHER, 0, blanked=True, presenter=BORIS),
    ]
    player.control("unblank", now=5.0)
    assert player.drain() == [
        IntervalEnded("shown", 5.0),
        IntervalStarted(OTHER, 0, text(0), BORIS, 5.0),
        SetBlank(False),
        changed("playing", OTHER, 0, presenter=BORIS),
    ]


def test_next_on_last_item_while_blanked_unblanks_to_idle() -> None:
    player = playing(LESSON, 2, now=0.0)
    player.control("blank", now=1.0)
    player.drain()
    player.control("next", now=2.0)
    assert player.drain() == [
        IntervalEnded("end", 2.0),
        SetBlank(False),
        ShowIdle(),
        changed("idle"),
    ]
    assert not player.blanked


# --------------------------------------------------------------------------- stop


def test_stop_while_playing() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("stop", now=5.0)
    assert player.drain() == [IntervalEnded("stop", 5.0), ShowIdle(), changed("idle")]
    assert player.state == "idle"
    assert player.lesson is None
    assert player.presenter is None
    assert player.snapshot(6.0) == snap("idle")


def test_stop_while_paused() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("pause", now=1.0)
    player.drain()
    player.control("stop", now=5.0)
    assert player.drain() == [IntervalEnded("stop", 5.0), ShowIdle(), changed("idle")]
    assert player.position_ms(6.0) == 0


def test_stop_while_blanked() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("blank", now=1.0)
    player.drain()
    player.control("stop", now=5.0)
    assert player.drain() == [
        IntervalEnded("stop", 5.0),
        SetBlank(False),
        ShowIdle(),
        changed("idle"),
    ]
    assert not player.blanked


def test_stop_while_paused_and_blanked_then_load_again() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.control("pause", now=1.0)
    player.control("blank", now=2.0)
    player.control("stop", now=3.0)
    player.drain()
    player.load(TIMED, ANNA, start_index=0, now=10.0)
    assert player.drain() == started(TIMED, 0, 10.0)
    assert player.position_ms(11.0) == 1000
    assert player.next_deadline_s() == 15.0


# --------------------------------------------------------------------------- shutdown


def test_shutdown_closes_the_open_interval() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.shutdown(now=7.0)
    assert player.drain() == [IntervalEnded("shutdown", 7.0)]
    player.shutdown(now=8.0)
    assert player.drain() == []
    assert player.state == "playing"


def test_shutdown_while_paused_closes_the_interval() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.control("pause", now=1.0)
    player.drain()
    player.shutdown(now=2.0)
    assert player.drain() == [IntervalEnded("shutdown", 2.0)]


def test_shutdown_without_an_open_interval() -> None:
    player = LessonPlayer(IDENTITY)
    player.load(LESSON, ANNA, start_index=0, now=0.0, start_at_s=5.0)
    player.drain()
    player.shutdown(now=2.0)
    assert player.drain() == []


def test_shutdown_while_blanked_closes_the_hidden_interval() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.control("blank", now=1.0)
    player.drain()
    player.shutdown(now=2.0)
    assert player.drain() == [IntervalEnded("shutdown", 2.0)]


# --------------------------------------------------------------------------- resume


def test_resume_shows_the_item_and_opens_a_new_interval() -> None:
    player = LessonPlayer(IDENTITY)
    player.resume(LESSON, BORIS, index=2, now=30.0)
    assert player.drain() == started(LESSON, 2, 30.0, presenter=BORIS)
    assert player.state == "playing"
    assert player.presenter == BORIS
    assert player.index == 2


def test_resume_restarts_a_timed_slide_for_its_whole_duration() -> None:
    player = LessonPlayer(IDENTITY)
    # The slide had been on screen for 1.5 s of its 2 s: it gets its 2 s again.
    player.resume(TIMED, ANNA, index=1, now=50.0, position_ms=1_500)
    assert player.drain() == started(TIMED, 1, 50.0)
    assert player.position_ms(50.0) == 0
    assert player.next_deadline_s() == 52.0
    player.tick(now=52.0)
    assert player.drain() == moved("auto", TIMED, 2, 52.0)


def test_resume_continues_a_video_from_its_position() -> None:
    player = LessonPlayer(IDENTITY)
    player.resume(LESSON, ANNA, index=1, now=10.0, position_ms=42_000)
    assert player.drain() == [
        Show(LESSON, 1, video(1)),
        Preload(LESSON, 2, text(2)),
        VideoCommand("seek", 42_000),
        IntervalStarted(LESSON, 1, video(1), ANNA, 10.0),
        changed("playing", LESSON, 1, position_ms=42_000),
    ]
    assert player.position_ms(11.0) == 43_000


def test_resume_clamps_a_video_position_to_its_duration() -> None:
    lesson = manifest(video(0, 5_000), text(1))
    player = LessonPlayer(IDENTITY)
    player.resume(lesson, ANNA, index=0, now=10.0, position_ms=9_000)
    assert VideoCommand("seek", 5_000) in player.drain()
    assert player.next_deadline_s() == 10.0


def test_resume_a_video_at_its_start_sends_no_seek() -> None:
    player = LessonPlayer(IDENTITY)
    player.resume(LESSON, ANNA, index=1, now=10.0, position_ms=-5)
    assert player.drain() == started(LESSON, 1, 10.0)


def test_resume_paused_video_stays_paused_at_its_position() -> None:
    player = LessonPlayer(IDENTITY)
    player.resume(LESSON, ANNA, index=1, now=10.0, paused=True, position_ms=7_000)
    assert player.drain() == [
        Show(LESSON, 1, video(1)),
        Preload(LESSON, 2, text(2)),
        VideoCommand("seek", 7_000),
        VideoCommand("pause"),
        IntervalStarted(LESSON, 1, video(1), ANNA, 10.0),  # a paused item is on screen
        changed("paused", LESSON, 1, position_ms=7_000),
    ]
    assert player.position_ms(99.0) == 7_000
    player.control("play", now=100.0)
    assert player.drain() == [
        VideoCommand("play"),
        changed("playing", LESSON, 1, position_ms=7_000),
    ]


def test_resume_blanked_opens_a_hidden_interval_until_unblank() -> None:
    player = LessonPlayer(IDENTITY)
    player.resume(TIMED, ANNA, index=0, now=10.0, blanked=True)
    assert player.drain() == [
        SetBlank(True),
        Show(TIMED, 0, image(0, 5_000)),
        Preload(TIMED, 1, text(1, 2_000)),
        IntervalStarted(TIMED, 0, image(0, 5_000), ANNA, 10.0, "blank"),
        changed("playing", TIMED, 0, blanked=True),
    ]
    assert player.next_deadline_s() is None  # nothing advances behind the blank
    player.control("unblank", now=20.0)
    assert player.drain() == [
        IntervalEnded("shown", 20.0),
        IntervalStarted(TIMED, 0, image(0, 5_000), ANNA, 20.0),
        SetBlank(False),
        changed("playing", TIMED, 0),
    ]
    assert player.next_deadline_s() == 25.0


def test_resume_blanked_video_is_paused_behind_the_blank() -> None:
    player = LessonPlayer(IDENTITY)
    player.resume(LESSON, ANNA, index=1, now=10.0, blanked=True, position_ms=3_000)
    assert player.drain()[:4] == [
        SetBlank(True),
        Show(LESSON, 1, video(1)),
        Preload(LESSON, 2, text(2)),
        VideoCommand("seek", 3_000),
    ]
    player.control("unblank", now=20.0)
    assert player.drain()[2] == VideoCommand("play")
    assert player.position_ms(21.0) == 4_000


def test_resume_restores_the_volume_before_the_video_starts() -> None:
    player = LessonPlayer(IDENTITY)
    player.resume(LESSON, ANNA, index=1, now=10.0, volume=30)
    effects = player.drain()
    assert effects[0] == VideoCommand("volume", volume=30)
    assert effects[1] == Show(LESSON, 1, video(1))
    assert player.volume == 30
    assert player.snapshot(10.0).volume == 30


def test_resume_replaces_what_is_shown() -> None:
    player = playing(OTHER, 1, now=0.0)
    player.control("blank", now=1.0)
    player.drain()
    player.resume(LESSON, ANNA, index=0, now=5.0)
    assert player.drain() == [
        IntervalEnded("replaced", 5.0),
        SetBlank(False),
        *started(LESSON, 0, 5.0),
    ]
    player = playing(OTHER, 0, now=0.0)
    player.resume(LESSON, ANNA, index=0, now=5.0)
    assert player.drain() == [IntervalEnded("replaced", 5.0), *started(LESSON, 0, 5.0)]


@pytest.mark.parametrize("index", [-1, 3])
def test_resume_outside_the_lesson_raises_bad_index(index: int) -> None:
    player = LessonPlayer(IDENTITY)
    with pytest.raises(UnexpectedMessageError, match="outside the lesson") as info:
        player.resume(LESSON, ANNA, index=index, now=0.0)
    assert info.value.code == "bad_index"
    assert player.drain() == []
    assert player.state == "idle"


# --------------------------------------------------------------------------- snapshots, status


def test_snapshot_in_each_state() -> None:
    player = LessonPlayer(IDENTITY)
    assert player.snapshot(0.0) == snap("idle")
    player.load(LESSON, ANNA, start_index=1, now=0.0, start_at_s=1.0)
    assert player.snapshot(0.5) == snap("loading", LESSON, 1)
    player.tick(now=1.0)
    assert player.snapshot(1.25) == snap("playing", LESSON, 1, position_ms=250)
    assert player.snapshot(1.25).item_kind == "video"
    assert player.snapshot(1.25).item_title == "Видео 1"
    player.control("pause", now=2.0)
    assert player.snapshot(3.0) == snap("paused", LESSON, 1, position_ms=1000)
    player.control("blank", now=3.0)
    assert player.snapshot(4.0) == snap("paused", LESSON, 1, position_ms=1000, blanked=True)
    player.control("stop", now=5.0)
    assert player.snapshot(6.0) == snap("idle")


def test_status_changed_is_queued_once_per_change() -> None:
    player = LessonPlayer(IDENTITY)
    steps: list[tuple[str, int]] = []

    def count(label: str) -> None:
        steps.append((label, sum(isinstance(e, StatusChanged) for e in player.drain())))

    player.load(TIMED, ANNA, start_index=0, now=0.0, start_at_s=1.0)
    count("load later")
    player.tick(now=0.5)
    count("early tick")
    player.tick(now=1.0)
    count("start")
    player.control("next", now=2.0)
    count("next")
    player.control("pause", now=2.5)
    count("pause")
    player.control("pause", now=2.6)
    count("pause again")
    player.control("seek", position_ms=100, now=2.7)
    count("seek")
    player.control("play", now=3.0)
    count("play")
    player.control("blank", now=3.1)
    count("blank")
    player.control("blank", now=3.2)
    count("blank again")
    player.control("unblank", now=3.3)
    count("unblank")
    player.control("prev", now=3.4)
    count("prev")
    player.control("prev", now=3.5)
    count("prev on first")
    player.tick(now=8.5)
    count("auto")
    player.shutdown(now=9.0)
    count("shutdown")
    player.control("stop", now=9.5)
    count("stop")
    assert steps == [
        ("load later", 1),
        ("early tick", 0),
        ("start", 1),
        ("next", 1),
        ("pause", 1),
        ("pause again", 0),
        ("seek", 1),
        ("play", 1),
        ("blank", 1),
        ("blank again", 0),
        ("unblank", 1),
        ("prev", 1),
        ("prev on first", 0),
        ("auto", 1),
        ("shutdown", 0),
        ("stop", 1),
    ]


# --------------------------------------------------------------------------- position_ms


def test_position_ms_accounting() -> None:
    player = playing(LESSON, 0, now=100.0)
    assert player.position_ms(100.0) == 0
    assert player.position_ms(100.0004) == 0  # rounded to whole ms
    assert player.position_ms(100.0006) == 1
    assert player.position_ms(99.0) == 0  # never negative
    assert player.position_ms(102.5) == 2500
    player.control("pause", now=103.0)
    assert player.position_ms(200.0) == 3000
    player.control("play", now=110.0)
    assert player.position_ms(111.0) == 4000
    player.control("blank", now=112.0)
    assert player.position_ms(150.0) == 5000
    player.control("unblank", now=120.0)
    assert player.position_ms(121.0) == 6000
    player.control("pause", now=122.0)
    player.control("blank", now=125.0)
    player.control("play", now=126.0)
    player.control("unblank", now=130.0)
    assert player.position_ms(131.0) == 8000  # paused 122..126, blanked 125..130
    player.control("next", now=132.0)
    assert player.position_ms(132.0) == 0
    assert player.position_ms(133.0) == 1000


def test_tick_advances_only_once_per_deadline() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.tick(now=100.0)  # far past every deadline: one step only
    assert player.drain() == moved("auto", TIMED, 1, 100.0)
    assert player.next_deadline_s() == 102.0


def test_unknown_action_is_ignored() -> None:
    # Not reachable through the codec (it checks the Literal); the player does nothing.
    player = playing(LESSON, 0, now=0.0)
    bogus: Any = "rewind"
    player.control(bogus, now=1.0)
    assert player.drain() == []


def test_blank_pauses_a_playing_video_and_unblank_resumes_it() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.control("blank", now=1.0)
    assert player.drain() == [
        IntervalEnded("blank", 1.0),
        IntervalStarted(LESSON, 1, video(1), ANNA, 1.0, "blank"),
        VideoCommand("pause"),
        SetBlank(True),
        changed("playing", LESSON, 1, position_ms=1000, blanked=True),
    ]
    player.video_ended(1, now=1.5)  # a stale end report behind the blank changes nothing
    player.control("unblank", now=4.0)
    assert player.drain()[2:4] == [VideoCommand("play"), SetBlank(False)]
    assert player.position_ms(5.0) == 2000


# --------------------------------------------------------------------------- full-screen alert


def test_an_alert_freezes_a_timed_slide_and_logs_its_time_as_hidden() -> None:
    """Under an alert the slide does not advance; the covered time is a hidden
    ``alert`` interval, and the slide gets the rest of its time afterwards."""
    player = playing(TIMED, 0, now=0.0)
    player.alert(now=2.0, until_s=None, by_admin=True)
    assert player.drain() == [
        IntervalEnded("alert", 2.0),
        IntervalStarted(TIMED, 0, image(0, 5_000), ANNA, 2.0, "alert"),
        changed("playing", TIMED, 0, position_ms=2000),
    ]
    assert player.alerted
    assert player.next_deadline_s() is None
    player.tick(now=600.0)  # ten minutes under the alert: still the first slide
    assert player.drain() == []
    assert (player.index, player.position_ms(600.0)) == (0, 2000)
    player.clear_alert(now=600.0, by_admin=True)
    assert player.drain() == [
        IntervalEnded("shown", 600.0),
        IntervalStarted(TIMED, 0, image(0, 5_000), ANNA, 600.0),
        changed("playing", TIMED, 0, position_ms=2000),
    ]
    assert player.next_deadline_s() == 603.0


def test_an_alert_with_an_end_ends_at_its_own_time_even_on_a_late_tick() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.alert(now=1.0, until_s=31.0, by_admin=False)
    player.drain()
    assert player.next_deadline_s() == 31.0
    player.tick(now=31.5)
    assert player.drain()[:2] == [
        IntervalEnded("shown", 31.0),
        IntervalStarted(TIMED, 0, image(0, 5_000), ANNA, 31.0),
    ]
    assert not player.alerted
    assert player.next_deadline_s() == 35.0  # 4 s of the slide's 5 s were left


def test_an_alert_pauses_a_video_and_its_end_plays_it() -> None:
    player = playing(LESSON, 1, now=0.0)
    player.alert(now=1.0, until_s=None, by_admin=True)
    assert VideoCommand("pause") in player.drain()
    player.video_ended(1, now=2.0)  # a stale end report under the alert changes nothing
    player.clear_alert(now=5.0, by_admin=True)
    assert VideoCommand("play") in player.drain()
    assert player.position_ms(6.0) == 2000


def test_a_teacher_cannot_remove_or_replace_an_administrators_alert() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.alert(now=1.0, until_s=None, by_admin=True)
    player.drain()
    with pytest.raises(ForbiddenError, match="only an administrator can remove it"):
        player.clear_alert(now=2.0, by_admin=False)
    with pytest.raises(ForbiddenError, match="only an administrator can replace it"):
        player.alert(now=2.0, until_s=None, by_admin=False)
    assert player.drain() == []
    assert player.alerted
    player.clear_alert(now=3.0, by_admin=True)
    assert not player.alerted


def test_a_teacher_may_remove_a_teachers_alert() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.alert(now=1.0, until_s=None, by_admin=False)
    player.clear_alert(now=2.0, by_admin=False)
    assert not player.alerted
    player.drain()
    player.clear_alert(now=3.0, by_admin=False)  # none shown: nothing happens
    assert player.drain() == []


def test_blank_under_an_alert_keeps_the_alert_interval_and_unblank_too() -> None:
    player = playing(TIMED, 0, now=0.0)
    player.alert(now=1.0, until_s=None, by_admin=True)
    player.drain()
    player.control("blank", now=2.0)
    player.control("unblank", now=3.0)
    assert not any(isinstance(e, IntervalStarted | IntervalEnded) for e in player.drain())
    player.control("blank", now=4.0)
    player.drain()
    player.clear_alert(now=5.0, by_admin=True)  # still blanked: the reason changes
    assert player.drain()[:2] == [
        IntervalEnded("shown", 5.0),
        IntervalStarted(TIMED, 0, image(0, 5_000), ANNA, 5.0, "blank"),
    ]
    assert player.next_deadline_s() is None


def test_a_lesson_cast_under_an_alert_starts_hidden_and_frozen() -> None:
    player = LessonPlayer(IDENTITY)
    player.alert(now=0.0, until_s=None, by_admin=True)
    assert player.drain() == []  # no lesson: nothing to log
    player.load(LESSON, ANNA, start_index=1, now=1.0)
    assert player.drain() == [
        Show(LESSON, 1, video(1)),
        VideoCommand("pause"),
        Preload(LESSON, 2, text(2)),
        IntervalStarted(LESSON, 1, video(1), ANNA, 1.0, "alert"),
        changed("playing", LESSON, 1),
    ]
    assert player.position_ms(9.0) == 0


# --------------------------------------------------------------------------- instants

AHEAD_S = limits.MAX_INSTANT_AHEAD_MS / 1000


def test_a_control_at_an_instant_waits_then_applies_at_its_instant() -> None:
    player = playing(LESSON, 0, now=0.0)
    assert player.control("next", now=1.0, at_s=2.0) is None
    # The display prepares the target and flips at the instant; nothing else changes.
    assert player.drain() == [Show(LESSON, 1, video(1), at_s=2.0)]
    assert (player.state, player.index) == ("playing", 0)
    assert player.next_deadline_s() == 2.0
    player.tick(now=1.999)
    assert player.drain() == []
    player.tick(now=2.7)  # a late tick: the control still happened at its instant
    assert player.drain() == moved("next", LESSON, 1, 2.0)
    assert player.position_ms(3.0) == 1000
    assert player.next_deadline_s() is None


def test_two_panels_apply_a_control_at_one_instant_whenever_they_tick() -> None:
    """Two players on clocks 100 s apart, ticked 5 ms and 80 ms after the instant: the
    item starts at the instant on both player clocks."""
    offsets = (0.0, 100.0)
    players = [playing(TIMED, 0, now=off) for off in offsets]
    for player, off in zip(players, offsets, strict=True):
        player.control("goto", index=2, now=off + 1.0, at_s=off + 3.0)
        player.drain()
    for player, off, tick_after in zip(players, offsets, (0.005, 0.080), strict=True):
        player.tick(now=off + 3.0 + tick_after)
        [ended, *_] = player.drain()
        assert ended == IntervalEnded("goto", off + 3.0)
    assert [p.position_ms(off + 3.5) for p, off in zip(players, offsets, strict=True)] == [500, 500]
    assert [p.next_deadline_s() for p in players] == [4.0, 104.0]  # image(2) lasts 1 s


@pytest.mark.parametrize(("at_s", "late"), [(10.0, None), (9.9995, 1), (9.75, 250), (None, None)])
def test_a_control_whose_instant_passed_applies_at_once_and_says_how_late(
    at_s: float | None, late: int | None
) -> None:
    player = playing(LESSON, 0, now=0.0)
    assert player.control("next", now=10.0, at_s=at_s) == late
    assert player.drain() == moved("next", LESSON, 1, 10.0)


def test_a_start_whose_instant_passed_starts_at_once_and_says_how_late() -> None:
    player = playing(OTHER, 0, now=0.0)
    assert player.load(LESSON, BORIS, start_index=0, now=10.0, start_at_s=9.6) == 400
    assert player.drain() == [IntervalEnded("replaced", 10.0), *started(LESSON, 0, 10.0, BORIS)]


def test_an_instant_as_far_ahead_as_the_limit_is_accepted() -> None:
    player = playing(LESSON, 0, now=0.0)
    at_s = 5.0 + AHEAD_S
    assert player.control("next", now=5.0, at_s=at_s) is None
    assert player.next_deadline_s() == at_s
    assert player.load(OTHER, ANNA, start_index=0, now=5.0, start_at_s=at_s) is None
    assert player.next_deadline_s() == at_s
    assert player.state == "loading"


def test_an_instant_beyond_the_limit_is_refused_and_changes_nothing() -> None:
    player = playing(LESSON, 0, now=0.0)
    at_s = 5.0 + AHEAD_S + 1e-6
    with pytest.raises(UnexpectedMessageError, match="more than 10000 ms") as info:
        player.control("next", now=5.0, at_s=at_s)
    assert info.value.code == "bad_instant"
    with pytest.raises(UnexpectedMessageError, match="more than 10000 ms") as info:
        player.load(OTHER, ANNA, start_index=0, now=5.0, start_at_s=at_s)
    assert info.value.code == "bad_instant"
    assert player.drain() == []
    assert (player.lesson, player.index, player.next_deadline_s()) == (LESSON, 0, None)


def test_a_control_at_an_instant_is_checked_at_once() -> None:
    idle = LessonPlayer(IDENTITY)
    with pytest.raises(UnexpectedMessageError) as info:
        idle.control("next", now=0.0, at_s=1.0)
    assert info.value.code == "no_lesson"
    assert idle.control("volume", volume=40, now=0.0, at_s=1.0) is None  # no lesson needed
    idle.tick(now=1.0)
    assert idle.volume == 40
    player = playing(LESSON, 0, now=0.0)
    with pytest.raises(UnexpectedMessageError) as info:
        player.control("goto", index=3, now=0.0, at_s=1.0)
    assert info.value.code == "bad_index"
    assert player.next_deadline_s() is None


def test_controls_at_instants_run_in_order_and_only_a_lone_move_is_previewed() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.control("pause", now=0.0, at_s=2.0)
    assert player.drain() == []  # not a move: nothing to prepare
    player.control("next", now=0.5, at_s=1.0)  # two waiting: no preview
    player.control("prev", now=0.5, at_s=3.0)
    assert player.drain() == []
    player.tick(now=5.0)
    effects = player.drain()
    assert [e.index for e in effects if isinstance(e, Show)] == [1, 0]  # next, then prev
    assert VideoCommand("pause") in effects  # the video of item 1, paused at 2.0
    assert [e.now_s for e in effects if isinstance(e, IntervalEnded)] == [1.0, 3.0]
    assert (player.state, player.index) == ("playing", 0)  # a move plays the new item


def test_a_control_at_an_instant_may_follow_a_start_at_a_later_instant() -> None:
    player = LessonPlayer(IDENTITY)
    player.load(LESSON, ANNA, start_index=0, now=0.0, start_at_s=1.0)
    player.drain()
    with pytest.raises(UnexpectedMessageError) as info:
        player.control("next", now=0.1, at_s=0.9)  # before the start
    assert info.value.code == "not_started"
    player.control("next", now=0.1, at_s=1.5)
    assert player.drain() == []  # the start's flip is the one the display waits for
    player.control("stop", now=0.1, at_s=0.5)  # stop may come before the start
    player.tick(now=0.5)
    assert player.drain() == [ShowIdle(), changed("idle")]
    player.tick(now=2.0)  # the stop dropped the waiting next, and the start
    assert player.drain() == []
    assert (player.state, player.next_deadline_s()) == ("idle", None)


@pytest.mark.parametrize("how", ["load", "stop", "end"])
def test_a_new_lesson_a_stop_or_the_end_drops_waiting_controls(how: str) -> None:
    player = playing(OTHER, 0, now=0.0)
    player.control("goto", index=0, now=0.0, at_s=5.0)
    player.control("next", now=0.0, at_s=5.0)
    match how:
        case "load":
            player.load(OTHER, ANNA, start_index=1, now=1.0)
        case "stop":
            player.control("stop", now=1.0)
        case _:
            player.control("next", now=1.0)
            player.control("next", now=1.0)  # the last item: the lesson ends
    player.drain()
    assert player.next_deadline_s() is None
    player.tick(now=6.0)
    assert player.drain() == []


def test_a_waiting_control_that_no_longer_applies_is_dropped() -> None:
    player = playing(LESSON, 0, now=0.0)
    player.control("next", now=0.0, at_s=1.0)
    player.load(LESSON, ANNA, start_index=2, now=0.5, start_at_s=3.0)  # drops it anyway
    player.control("stop", now=0.5, at_s=3.5)
    player.control("next", now=0.5, at_s=4.0)  # checked against the start: accepted
    player.drain()
    player.tick(now=5.0)  # start at 3, stop at 3.5, then next: no lesson, dropped
    effects = player.drain()
    assert effects[-2:] == [ShowIdle(), changed("idle")]
    assert player.state == "idle"


# --------------------------------------------------------------------------- the table itself


def player_in(state: PlayerState, index: int = 1) -> LessonPlayer:
    """A real player in ``state``, on item ``index`` of TIMED (3 timed items) when showing."""
    player = LessonPlayer(IDENTITY)
    if state == "loading":
        player.load(TIMED, ANNA, start_index=index, now=0.0, start_at_s=5.0)
    elif state in ("playing", "paused"):
        player.load(TIMED, ANNA, start_index=index, now=0.0)
        if state == "paused":
            player.control("pause", now=0.0)
    player.drain()
    assert player.state == state
    return player


def feed(player: LessonPlayer, state: PlayerState, name: Input) -> None:
    """Give ``player`` (in ``state``) the input ``name`` the way the kiosk would."""
    match name:
        case "load":
            player.load(OTHER, BORIS, start_index=0, now=1.0)
        case "load_later":
            player.load(OTHER, BORIS, start_index=0, now=1.0, start_at_s=3.0)
        case "resume" | "resume_paused":
            player.resume(OTHER, BORIS, index=1, now=1.0, paused=name == "resume_paused")
        case "start":
            player.tick(now=5.0)
        case "auto" | "auto_past_end":
            player.tick(now=10.0)  # past the end of any item of TIMED
        case "next" | "next_past_end":
            player.control("next", now=1.0)
        case "prev" | "prev_at_first":
            player.control("prev", now=1.0)
        case "goto":
            player.control("goto", index=0, now=1.0)
        case "seek":
            player.control("seek", position_ms=500, now=1.0)
        case "volume":
            player.control("volume", volume=40, now=1.0)
        case _:
            player.control(name, now=1.0)


def index_for(name: Input) -> int:
    """The item a showing player must be on for ``name`` to be that input."""
    return {"next_past_end": 2, "auto_past_end": 2, "prev_at_first": 0}.get(name, 1)


@pytest.mark.parametrize(("state", "name"), sorted(TRANSITIONS))
def test_every_entry_of_the_transition_table_is_what_a_real_player_does(
    state: PlayerState, name: Input
) -> None:
    """The table is the code's: each (state, input) lands in the state it names, or is
    refused with the code it names."""
    player = player_in(state, index_for(name))
    target = TRANSITIONS[(state, name)]
    if target in ("no_lesson", "not_started"):
        with pytest.raises(UnexpectedMessageError) as refused:
            feed(player, state, name)
        assert refused.value.code == target
        assert player.state == state
    else:
        feed(player, state, name)
        assert player.state == target
        # What the state means, seen from outside the table: what is shown and whether
        # the item's clock runs.
        effects = player.drain()
        if target == "idle":
            assert player.lesson is None
            assert state == "idle" or any(isinstance(e, ShowIdle) for e in effects)
        else:
            assert player.lesson is not None
        if target == "loading" and state != "loading":
            assert any(isinstance(e, Show) and e.at_s is not None for e in effects)
        if target in ("playing", "paused"):  # a blank freezes the clock as a pause does
            moving = player.position_ms(20.0) != player.position_ms(20.5)
            assert moving == (target == "playing" and not player.blanked)


def test_the_table_covers_every_control_in_every_state() -> None:
    assert {name for _, name in TRANSITIONS} == set(get_args(Input))  # every input in use
    for state in get_args(PlayerState):
        for action in ALL_ACTIONS:
            assert (state, action) in TRANSITIONS, (state, action)
    # The two that depend on the item are listed under their own names in every state.
    for state in get_args(PlayerState):
        for name in ("next_past_end", "prev_at_first"):
            assert (state, name) in TRANSITIONS
