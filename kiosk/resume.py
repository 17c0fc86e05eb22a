"""The presentation a kiosk shows, kept on disk so that a restarted kiosk shows it again.

While a lesson is on screen the service saves what it shows (:class:`SavedPresentation`)
on every change of item or state, and at a heartbeat when a playing video moved on or
the file is getting old (:func:`needs_writing`): the lesson manifest as the codec encodes
it in ``cast``, the item, paused and blanked, the video position, the volume, the
presenter and the clock offset of the cast. When the lesson
ends or is stopped the file is removed. At start, after the usage log closed the
interval the previous run left open (``power_loss``), the kiosk reads the file and, if
:func:`refusal` finds nothing against it, shows the same item again
(:meth:`kiosk.player.LessonPlayer.resume`), which opens a new interval.

The file (``presentation.json`` in the state directory) is replaced atomically: written
to a temporary file and renamed over the old one, so a crash leaves the old or the new
version, never a mixture. The replacement happens at once, before the status of the
change goes out (a few system calls, no fsync): a kiosk killed a moment after a teacher
saw a change comes back with it. The fsyncs that make it survive a power loss happen off
the network loop (:class:`PresentationWriter`), on the usage log's writer thread right
after the commit of the same change's usage records (the kiosk has one flushing thread,
woken once per control; :meth:`kiosk.usage_writer.UsageWriter.after_commit`): the loop
never waits on the disk, and a burst of changes costs one flush.

A damaged or foreign file is never trusted: the lesson is decoded by
:func:`protocol.codec.decode` like any ``cast`` from the network, and every other field is
type-checked; anything wrong means "nothing to resume" (one warning in the journal).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import math
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from kiosk.player import Presenter
from protocol import limits
from protocol.codec import decode, encode
from protocol.errors import MalformedMessageError
from protocol.messages import Cast, LessonManifest

logger = logging.getLogger(__name__)

__all__ = [
    "FILE_NAME",
    "RESUME_MAX_AGE_S",
    "PresentationFile",
    "PresentationSink",
    "PresentationWriter",
    "SavedPresentation",
    "refusal",
]

FILE_NAME: Final = "presentation.json"
"""The saved presentation, in the kiosk's state directory."""

RESUME_MAX_AGE_S: Final = 600.0
"""A presentation saved longer ago than this (by the wall clock, either way) is not
resumed: a panel that was off for more than ten minutes comes back idle, not in
yesterday's lesson. The file is re-saved at every heartbeat while a lesson shows, so
its age is the time the kiosk was down, to within one heartbeat."""

RESAVE_INTERVAL_S: Final = 60.0
"""An unchanged presentation is written again at the first heartbeat this long after its
last write (to keep its age current); a playing video at every heartbeat (its position)."""

MAX_FILE_BYTES: Final = limits.MAX_TEXT_FRAME_BYTES + 64 * 1024
"""Largest file read back: one ``cast`` frame plus the other fields."""

FORMAT: Final = 1
"""Version of the file's layout; a file of another version is not resumed."""

WRITE_TIMEOUT_S: Final = 10.0
"""Longest :meth:`PresentationWriter.flush` waits for the writer thread."""


@dataclass(frozen=True, slots=True)
class SavedPresentation:
    """What the panel showed, as the next run needs it to show it again."""

    lesson: LessonManifest
    index: int
    presenter: Presenter
    saved_at_s: float
    """Wall clock (seconds since the epoch) when this was saved."""
    paused: bool = False
    blanked: bool = False
    position_ms: int = 0
    """Time spent on the item, paused time excluded (a video continues from here)."""
    clock_offset_ms: int = 0
    """The cast's clock offset, stored with the usage records of the lesson."""
    volume: int = 100


def encode_saved(saved: SavedPresentation) -> bytes:
    """The file's bytes for ``saved`` (UTF-8 JSON; the lesson as the codec encodes ``cast``)."""
    cast = Cast(
        id=0, lesson=saved.lesson, start_index=saved.index, clock_offset_ms=saved.clock_offset_ms
    )
    obj = {
        "format": FORMAT,
        "saved_at_s": saved.saved_at_s,
        "cast": json.loads(encode(cast)),
        "presenter_id": saved.presenter.id,
        "presenter_name": saved.presenter.name,
        "paused": saved.paused,
        "blanked": saved.blanked,
        "position_ms": saved.position_ms,
        "volume": saved.volume,
    }
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def decode_saved(raw: bytes) -> SavedPresentation:
    """Read the file's bytes back.

    Raises:
        ValueError: the bytes are not a saved presentation of this format, or a field is
            missing, of the wrong type or out of range (``MalformedMessageError`` for the
            lesson, which the codec checks).
    """
    obj = json.loads(raw.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if obj.get("format") != FORMAT:
        raise ValueError(f"format {obj.get('format')!r}, not {FORMAT}")
    cast_obj = obj.get("cast")
    if not isinstance(cast_obj, dict) or cast_obj.get("type") != Cast.TYPE:
        raise ValueError("no cast")
    cast = decode(json.dumps(cast_obj, ensure_ascii=False))
    assert isinstance(cast, Cast)
    saved_at_s = _field(obj, "saved_at_s", float)
    position_ms = _field(obj, "position_ms", int)
    volume = _field(obj, "volume", int)
    if not math.isfinite(saved_at_s):
        raise ValueError("saved_at_s is not finite")
    if not 0 <= position_ms <= limits.MAX_DURATION_MS:
        raise ValueError(f"position_ms {position_ms} out of range")
    if not 0 <= volume <= limits.MAX_VOLUME_PERCENT:
        raise ValueError(f"volume {volume} out of range")
    presenter = Presenter(_field(obj, "presenter_id", str), _field(obj, "presenter_name", str))
    return SavedPresentation(
        lesson=cast.lesson,
        index=cast.start_index,
        presenter=presenter,
        saved_at_s=saved_at_s,
        paused=_field(obj, "paused", bool),
        blanked=_field(obj, "blanked", bool),
        position_ms=position_ms,
        clock_offset_ms=cast.clock_offset_ms,
        volume=volume,
    )


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"{name} is not a {kind.__name__}")
    if isinstance(value, str) and len(value) > limits.MAX_STRING_CHARS:
        raise ValueError(f"{name} is longer than {limits.MAX_STRING_CHARS} characters")
    return value


def needs_writing(saved: SavedPresentation | None, written: SavedPresentation | None) -> bool:
    """Whether ``saved`` must be written over ``written`` (the file's content).

    It need not when only its time and the position of a still item changed, less than
    :data:`RESAVE_INTERVAL_S` apart: the next run would show the same thing.
    """
    if saved is None or written is None:
        return saved is not written
    # Only a video continues from its position (LessonPlayer.resume).
    still = saved.lesson.items[saved.index].kind != "video"
    position_ms = written.position_ms if still else saved.position_ms
    same = dataclasses.replace(saved, saved_at_s=written.saved_at_s, position_ms=position_ms)
    return same != written or not 0 <= saved.saved_at_s - written.saved_at_s < RESAVE_INTERVAL_S


def refusal(
    saved: SavedPresentation, *, wall_s: float, has_blob: Callable[[str], bool]
) -> str | None:
    """Why ``saved`` must not be shown again now, or None if it may.

    Args:
        saved: What the previous run saved.
        wall_s: The wall clock now.
        has_blob: Whether the blob store holds a complete blob (``BlobStore.has``).

    Returns:
        A reason for the journal: the presentation is too old (or from the future), a
        blob of the lesson is no longer stored, or it was a screen share.
    """
    if any(item.kind == "screen" for item in saved.lesson.items):
        return "it was a screen share, which ends with the kiosk"
    age_s = wall_s - saved.saved_at_s
    if abs(age_s) > RESUME_MAX_AGE_S:
        return f"it was saved {age_s:.0f} s ago, over {RESUME_MAX_AGE_S:.0f} s"
    for item in saved.lesson.items:
        if item.sha256 is not None and not has_blob(item.sha256):
            return f"the media of {item.title!r} ({item.sha256}) is no longer stored"
    return None


class PresentationFile:
    """The saved presentation on disk.

    :meth:`replace` and :meth:`remove` change what a restarted kiosk finds at once
    (a few system calls, no fsync); :meth:`sync` makes that survive a power loss.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".tmp")

    def replace(self, saved: SavedPresentation) -> None:
        """Replace the file with ``saved`` atomically: a temporary file renamed over it.

        A kiosk killed right after this call (a crash, the watchdog) finds the new
        version. Call :meth:`sync` afterwards (off the network loop) for a power loss:
        until then the file may still be the old version, and on a file system that
        does not flush a file renamed over another before the rename (ext4 does), even
        damaged, which :meth:`load` refuses (the panel comes back idle, as without it).

        Raises:
            OSError: the file cannot be written (the old version stays).
        """
        data = encode_saved(saved)
        try:
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(self._tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            raise

    def remove(self) -> None:
        """Remove the file (nothing to resume); :meth:`sync` makes that durable.

        Raises:
            OSError: the file exists and cannot be removed.
        """
        self.path.unlink(missing_ok=True)

    def sync(self) -> None:
        """Flush the file (if any) and its folder to the disk.

        Raises:
            OSError: the disk refused.
        """
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write(self, saved: SavedPresentation) -> None:
        """:meth:`replace` then :meth:`sync`.

        Raises:
            OSError: the file cannot be written.
        """
        self.replace(saved)
        self.sync()

    def clear(self) -> None:
        """:meth:`remove` then :meth:`sync`.

        Raises:
            OSError: the file cannot be removed.
        """
        self.remove()
        self.sync()

    def load(self) -> SavedPresentation | None:
        """The saved presentation, or None if there is none or it cannot be trusted.

        A damaged file is logged once and removed; the caller then checks
        :func:`refusal` before showing it.
        """
        try:
            with self.path.open("rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read the saved presentation %s: %s", self.path, exc)
            return None
        try:
            if len(raw) > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            return decode_saved(raw)
        except (ValueError, MalformedMessageError) as exc:
            logger.warning("the saved presentation %s is damaged, not resuming: %s", self.path, exc)
            with contextlib.suppress(OSError):
                self.clear()
            return None


class PresentationSink(Protocol):
    """Where the service hands what it shows: :class:`PresentationWriter`."""

    def save(self, saved: SavedPresentation | None) -> None:
        """Keep ``saved`` for the next run (None: nothing to resume); must not block."""


class _Unknown(enum.Enum):
    UNKNOWN = enum.auto()


_UNKNOWN: Final = _Unknown.UNKNOWN


class PresentationWriter:
    """Keeps the saved presentation up to date; the fsyncs happen off the caller's thread.

    :meth:`save` replaces (or removes) the file at once, before the service sends the
    status of the change, so a kiosk killed at any moment after a controller saw a
    change comes back with it; it costs a small write to the page cache, never an
    fsync. Another thread then flushes the file to the disk: the one ``run_after``
    hands work to (the kiosk passes :meth:`kiosk.usage_writer.UsageWriter.after_commit`,
    so the flush follows the usage commit on the same wake-up), or, without it, a thread
    of its own. A burst of changes costs one flush: while a flush is queued, later saves
    ride on it. A save or flush that fails is logged (once until one succeeds again) and
    the lesson goes on. Call :meth:`close` on shutdown (before the usage writer's
    ``close_db`` when sharing its thread). Call every method but :meth:`flush` from one
    thread.
    """

    def __init__(
        self,
        file: PresentationFile,
        *,
        run_after: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """Keep ``file`` up to date.

        Args:
            file: the saved presentation on disk.
            run_after: hands a job to the thread that flushes (it must return at once
                and run the job later, in order); None starts a thread for this writer.
        """
        self.file = file
        self._cond = threading.Condition()
        self._queued = False
        """A flush is handed over and has not started (guarded by ``_cond``)."""
        self._busy = False
        self._failing = False
        self._written: SavedPresentation | _Unknown | None = _UNKNOWN
        """What the file holds (None: no file); unknown until a save succeeds."""
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] | None = None
        self._thread: threading.Thread | None = None
        if run_after is None:
            jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
            self._jobs = jobs
            run_after = jobs.put
            self._thread = threading.Thread(
                target=self._run, args=(jobs,), name="presentation-sync", daemon=True
            )
            self._thread.start()
        self._run_after = run_after

    def save(self, saved: SavedPresentation | None) -> None:
        """Keep ``saved`` (None: remove the file); never waits for the disk."""
        written = self._written
        if not isinstance(written, _Unknown) and not needs_writing(saved, written):
            return
        self._written = _UNKNOWN  # until this save succeeds
        try:
            if saved is None:
                self.file.remove()
            else:
                self.file.replace(saved)
        except Exception:  # a save that fails must not stop the lesson
            self._failed()
            return
        self._written = saved
        with self._cond:
            if self._queued:
                return  # the flush queued already covers this save
            self._queued = True
        self._run_after(self._sync)

    def flush(self, timeout_s: float = WRITE_TIMEOUT_S) -> bool:
        """Wait until what was saved is on the disk; False if that took over ``timeout_s``."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queued and not self._busy, timeout_s)

    def close(self) -> None:
        """Flush what was saved; stop this writer's own thread, if it has one."""
        if self._jobs is None or self._thread is None:
            if not self.flush():
                logger.error("the saved presentation %s was not flushed in time", self.file.path)
            return
        self._jobs.put(None)
        self._thread.join(WRITE_TIMEOUT_S)

    def _sync(self) -> None:
        """Flush the file to the disk (on the flushing thread)."""
        with self._cond:
            self._queued = False
            self._busy = True
        try:
            self.file.sync()
        except Exception:  # a flush that fails must not stop the flushing thread
            self._failed()
        else:
            self._succeeded()
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    @staticmethod
    def _run(jobs: queue.SimpleQueue[Callable[[], None] | None]) -> None:
        while (job := jobs.get()) is not None:
            job()

    def _failed(self) -> None:
        if not self._failing:
            logger.exception("cannot save the presentation to %s", self.file.path)
        self._failing = True

    def _succeeded(self) -> None:
        if self._failing:
            logger.info("the presentation is saved again to %s", self.file.path)
        self._failing = False
