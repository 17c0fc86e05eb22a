"""The presentation a kiosk shows, kept on disk so that a restarted kiosk shows it again.

While a lesson is on screen the service saves, on every change of item or state and at
every usage-log heartbeat, what it shows (:class:`SavedPresentation`): the lesson
manifest as the codec encodes it in ``cast``, the item, paused and blanked, the video
position, the volume, the presenter and the clock offset of the cast. When the lesson
ends or is stopped the file is removed. At start, after the usage log closed the
interval the previous run left open (``power_loss``), the kiosk reads the file and, if
:func:`refusal` finds nothing against it, shows the same item again
(:meth:`kiosk.player.LessonPlayer.resume`), which opens a new interval.

The file (``presentation.json`` in the state directory) is replaced atomically: written
to a temporary file, fsynced, renamed over the old one, and the folder fsynced, so a
crash or power loss leaves the old or the new version, never a mixture. The writes
happen on a thread of their own (:class:`PresentationWriter`): the network loop never
waits on fsync, and a burst of changes costs one write (only the newest is written).

A damaged or foreign file is never trusted: the lesson is decoded by
:func:`protocol.codec.decode` like any ``cast`` from the network, and every other field is
type-checked; anything wrong means "nothing to resume" (one warning in the journal).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
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
        A reason for the journal: the presentation is too old (or from the future), or
        a blob of the lesson is no longer stored.
    """
    age_s = wall_s - saved.saved_at_s
    if abs(age_s) > RESUME_MAX_AGE_S:
        return f"it was saved {age_s:.0f} s ago, over {RESUME_MAX_AGE_S:.0f} s"
    for item in saved.lesson.items:
        if item.sha256 is not None and not has_blob(item.sha256):
            return f"the media of {item.title!r} ({item.sha256}) is no longer stored"
    return None


class PresentationFile:
    """The saved presentation on disk; every method does its I/O at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".tmp")

    def write(self, saved: SavedPresentation) -> None:
        """Replace the file with ``saved`` atomically (temp file, fsync, rename, fsync).

        Raises:
            OSError: the file cannot be written (the old version stays).
        """
        data = encode_saved(saved)
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            raise
        self._fsync_folder()

    def clear(self) -> None:
        """Remove the file (nothing to resume).

        Raises:
            OSError: the file exists and cannot be removed.
        """
        if self.path.exists():
            self.path.unlink()
            self._fsync_folder()

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

    def _fsync_folder(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class PresentationSink(Protocol):
    """Where the service hands what it shows: :class:`PresentationWriter`."""

    def save(self, saved: SavedPresentation | None) -> None:
        """Keep ``saved`` for the next run (None: nothing to resume); must not block."""


_NOTHING: Final = object()


class PresentationWriter:
    """Writes the newest saved presentation on a thread of its own.

    :meth:`save` returns at once; the thread writes only the newest value handed to it
    (a burst of item changes costs one write). A write that fails is logged (once until
    a write succeeds again) and the lesson goes on; the next change writes again. Call
    :meth:`close` on shutdown.
    """

    def __init__(self, file: PresentationFile) -> None:
        self.file = file
        self._cond = threading.Condition()
        self._pending: object = _NOTHING
        self._busy = False
        self._stopping = False
        self._failing = False
        self._written: object = _NOTHING
        """What the file holds (None: no file); _NOTHING until this writer wrote it."""
        self._thread = threading.Thread(target=self._run, name="presentation-writer", daemon=True)
        self._thread.start()

    def save(self, saved: SavedPresentation | None) -> None:
        """Queue ``saved`` (None: remove the file) to be written; never blocks on I/O."""
        with self._cond:
            self._pending = saved
            self._cond.notify_all()

    def flush(self, timeout_s: float = WRITE_TIMEOUT_S) -> bool:
        """Wait until everything queued is written; False if that took over ``timeout_s``."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._pending is _NOTHING and not self._busy, timeout_s
            )

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(WRITE_TIMEOUT_S)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not _NOTHING or self._stopping)
                if self._pending is _NOTHING:
                    return
                value, self._pending = self._pending, _NOTHING
                self._busy = True
            try:
                self._write(value)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, value: object) -> None:
        assert value is None or isinstance(value, SavedPresentation)
        written = self._written
        if written is not _NOTHING:
            assert written is None or isinstance(written, SavedPresentation)
            if not needs_writing(value, written):
                return
        self._written = _NOTHING  # unknown until this write succeeds
        try:
            if value is not None:
                self.file.write(value)
            else:
                self.file.clear()
            self._written = value
        except Exception:  # the one broad catch of the writer: the panel stays up
            if not self._failing:
                logger.exception("cannot save the presentation to %s", self.file.path)
            self._failing = True
        else:
            if self._failing:
                logger.info("the presentation is saved again to %s", self.file.path)
            self._failing = False
