"""Which scene is on screen, and the switch from one to the next (no GL, no X11).

The panel window asks the stage what to draw and tells it what the player wants; the
stage decides when the picture changes. A switch never shows black or a half-ready
item: the previous scene stays on screen until the next one is
:attr:`~kiosk.scenes.Scene.ready` (a video's first picture, a web page's first paint),
or until its :attr:`~kiosk.scenes.Scene.first_picture_wait_s` has passed::

    stage.want(key)                  # the player asked for an item (Show)
    stage.switch(key, scene)         # ... and its scene is built: it is entered now
    stage.update()                   # on every change: the switch completes once ready
    draw(stage.on_screen)            # on_draw only draws this
    for scene in stage.take_leaving():
        scene.leave()                # after the frame is on screen, outside the draw

Leaving is the caller's: a scene that left the screen is only handed back by
:meth:`Stage.take_leaving` once :meth:`Stage.update` retired it, so that the window
can put the new frame up first and stop the old item (VLC, Chromium) afterwards, off
the draw path. Built scenes are kept (:data:`SCENE_CACHE`); :meth:`Stage.evict`
hands back those to delete.

Everything runs on the window's main thread; time comes from the ``clock`` given
(tests move it).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from kiosk.player import VideoCommand

logger = logging.getLogger(__name__)

SCENE_CACHE = 4
"""Scenes kept built: the current one, the preloaded next, and a couple of recent."""

IDLE_KEY = "idle"
"""The key of the idle screen's scene."""


class StageScene(Protocol):
    """What the stage needs of a scene (:class:`kiosk.scenes.Scene` has it all); this
    module imports neither pyglet nor the scenes, so tests drive it with plain fakes."""

    @property
    def ready(self) -> bool: ...

    @property
    def first_picture_wait_s(self) -> float: ...

    def enter(self) -> None: ...

    def overlaid(self, covered: bool) -> None: ...

    def video(self, command: VideoCommand) -> None: ...


Scene = TypeVar("Scene", bound=StageScene)


class Stage(Generic[Scene]):
    """The scene on screen, the one coming, and the cache of built scenes.

    Args:
        idle: the idle screen's scene (shown first; never evicted).
        clock: the time (seconds) the waits for a first picture are timed by.
        cache: how many built scenes are kept (:data:`SCENE_CACHE`).
    """

    def __init__(
        self, idle: Scene, *, clock: Callable[[], float], cache: int = SCENE_CACHE
    ) -> None:
        self._clock = clock
        self._cache = cache
        self.idle = idle
        self.current: Scene = idle
        """The scene the player asked for last, once built (entered; maybe not ready)."""
        self.current_key: Hashable = IDLE_KEY
        self.wanted: Hashable = IDLE_KEY
        """Key of the scene the player asked for last (current once it is built)."""
        self.outgoing: Scene | None = None
        """The previous scene, still on screen while the current one is not ready."""
        self.covered = False
        """An announcement, the pairing question or blank is over the scene."""
        self._since = 0.0
        self._not_before = float("-inf")
        self._leaving: list[Scene] = []
        self._arrived: Scene | None = None
        self._backlog: list[VideoCommand] = []
        self._scenes: OrderedDict[Hashable, Scene] = OrderedDict()

    # ----------------------------------------------------------------- queries

    @property
    def on_screen(self) -> Scene:
        """The scene to draw: the current one once it is ready, until then the previous."""
        return self.outgoing if self.outgoing is not None else self.current

    def cached(self, key: Hashable) -> Scene | None:
        """The built scene of ``key`` (now the most recently used), or ``None``."""
        scene = self._scenes.get(key)
        if scene is not None:
            self._scenes.move_to_end(key)
        return scene

    def scenes(self) -> list[Scene]:
        """Every built scene kept (not the idle screen)."""
        return list(self._scenes.values())

    def next_deadline(self) -> float | None:
        """When :meth:`update` must run again (clock time) even if nothing else happens:
        the end of the wait for the current scene's first picture, or the flip instant
        given to :meth:`switch`; ``None`` when nothing waits."""
        if self.outgoing is None:
            return None
        deadline = self._since + self.current.first_picture_wait_s
        return max(deadline, self._not_before)

    # ----------------------------------------------------------------- changes

    def want(self, key: Hashable) -> None:
        """The player asked for ``key``: video commands wait for its scene from now on."""
        self.wanted = key
        self._backlog.clear()

    def keep(self, key: Hashable, scene: Scene) -> bool:
        """Keep a scene the loader built; switch to it if it is the one wanted.

        Returns whether it switched (then call :meth:`update`)."""
        self._scenes[key] = scene
        self._scenes.move_to_end(key)
        if self.wanted != key:
            return False
        self.switch(key, scene)
        return True

    def switch(self, key: Hashable, scene: Scene, *, not_before: float | None = None) -> None:
        """Make ``scene`` (of ``key``) current and enter it; what is on screen stays
        there until ``scene`` is ready, and at least until ``not_before`` (clock time).

        ``not_before`` is the hook for a switch at an instant: prepare the scene ahead
        (enter it), and the picture changes at the first :meth:`update` at or after
        that instant once the scene is ready; call :meth:`update` at
        :meth:`next_deadline`. Call :meth:`update` after this in any case.
        """
        self.wanted = key
        if scene is not self.current:
            on_screen = self.on_screen
            if self.current is not on_screen:
                self._leaving.append(self.current)  # never shown: it was still waiting
            self.current, self.current_key = scene, key
            if scene is on_screen:  # back to what is still on screen
                self.outgoing = None
                self._leaving = [s for s in self._leaving if s is not scene]
            else:
                scene.overlaid(self.covered)
                scene.enter()
                self.outgoing = on_screen
                self._since = self._clock()
        self._not_before = float("-inf") if not_before is None else not_before
        backlog, self._backlog = self._backlog, []
        for command in backlog:
            scene.video(command)

    def cover(self, covered: bool) -> None:
        """An announcement, the pairing question or blank is (or is no longer) over the
        scene: the current scene is told (a web page makes way)."""
        self.covered = covered

    def video(self, command: VideoCommand) -> None:
        """Play, pause or seek the wanted scene (kept until it is built); the volume
        reaches the scene on screen too."""
        if command.action == "volume":
            self.current.video(command)
            if self.outgoing is not None:
                self.outgoing.video(command)
        elif self.current_key == self.wanted:
            self.current.video(command)
        else:
            self._backlog.append(command)

    def update(self) -> bool:
        """Advance the switch: retire the previous scene once the current one is ready
        (and the flip instant passed), or once its wait for a first picture is over;
        tell the current scene whether it is covered.

        Returns whether the scene to draw changed. The retired scene is handed back
        by :meth:`take_leaving`: leave it once the new frame is up.
        """
        self.current.overlaid(self.covered)
        outgoing = self.outgoing
        if outgoing is None:
            return False
        now = self._clock()
        if now < self._not_before:
            return False
        if not self.current.ready:
            waited = now - self._since
            if waited < self.current.first_picture_wait_s:
                return False
            logger.info("no first picture in %.1f s: showing the item anyway", waited)
        self.outgoing = None
        self._leaving.append(outgoing)
        self._arrived = self.current
        return True

    def take_leaving(self) -> list[Scene]:
        """Scenes no longer on screen, to be left now that the new frame is up; the
        caller must call :meth:`~kiosk.scenes.Scene.leave` on each, off the draw path."""
        leaving = [s for s in self._leaving if s is not self.on_screen and s is not self.current]
        self._leaving = []
        return leaving

    def take_arrived(self) -> Scene | None:
        """The scene that came on screen at the last :meth:`update` that switched, if it
        is still there; the caller must call its :meth:`~kiosk.scenes.Scene.shown`
        once the frame is up."""
        arrived, self._arrived = self._arrived, None
        return arrived if arrived is self.on_screen else None

    def evict(self) -> list[Scene]:
        """Scenes dropped from the cache; the caller must ``delete()`` each."""
        dropped: list[Scene] = []
        while len(self._scenes) > self._cache:
            for k, scene in self._scenes.items():
                keep = (self.current, self.outgoing, *self._leaving)
                if scene not in keep and k != self.wanted:
                    del self._scenes[k]
                    dropped.append(scene)
                    break
            else:
                break
        return dropped

    def reset(self, idle: Scene) -> list[Scene]:
        """The window changed size: scenes are laid out for a size. Finish any switch,
        take ``idle`` as the idle screen, and drop every built scene but the current
        one; returns the scenes to ``delete()`` (the old idle screen among them)."""
        old_idle = self.idle
        if self.outgoing is not None:
            self._leaving.append(self.outgoing)
            self.outgoing = None
        self.idle = idle
        if self.current is old_idle:
            self.current = idle
        dropped = [old_idle] if old_idle is not idle else []
        for k, scene in list(self._scenes.items()):
            if scene is not self.current:
                del self._scenes[k]
                dropped.append(scene)
        return dropped
