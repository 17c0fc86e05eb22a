"""The presentation a kiosk shows, kept on disk so that a restarted kiosk shows it again.

While a lesson is on screen the service saves what it shows (:class:`SavedPresentation`)
on every change of item or state, and at a heartbeat when a playing video moved on or
the file is getting old (:func:`needs_writing`): the lesson manifest as the codec encodes
it in ``cast``, the item, paused and blanked, the video position, the volume, the
presenter and the clock offset of the cast. When the lesson
ends or is stopped, "nothing to resume" is saved. At start, after the usage log closed the
interval the previous run left open (``power_loss``), the kiosk reads the file and, if
:func:`refusal` finds nothing against it, shows the same item again
(:meth:`kiosk.player.LessonPlayer.resume`), which opens a new interval.

The file (``presentation.slots`` in the state directory) has :data:`SLOTS` slots, each
holding one version with its generation and a CRC-32 (:class:`PresentationFile`); the
newest version whose checksum holds counts, so a crash leaves the old or the new
version, never a mixture. A new version is written at once, before the status of the
change goes out: one ``pwrite`` into a slot that holds neither the newest version nor
the last flushed one (no fsync, no rename, no new file: a rename over an old file
makes ext4 write the new one back at once, on the caller's thread). A kiosk killed a
moment after a teacher saw a change comes back with it, since the kernel keeps what a
dead process wrote.

For a power loss the kiosk keeps a second copy, the same slot bytes, in its usage log
(:class:`PresentationLog`, a ``meta`` row): queued inside the switch's batch, it is
committed in the transaction of the usage records of the same change, on the writer
thread, in their one flush (``synchronous=FULL``); the file itself is never flushed. At
start :meth:`PresentationWriter.load` takes the newer of the two by generation: after a
kill the file holds the newest (the log's copy may lag by the commit under way); after
a power loss the log holds at least the last committed version, and a slot that was
torn or never reached the disk fails its checksum and is skipped. Committing the row
before the status goes out instead would put an fsync on the network loop. Without a
log (a :class:`PresentationWriter` on its own) the file is flushed with ``fdatasync``
on another thread, and until that has run the last flushed version stays untouched:
a power loss brings back that one at worst. Either way the loop never waits on the
disk, and a burst of changes costs one flush.

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
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from kiosk.player import Presenter
from protocol import limits
from protocol.codec import decode, encode
from protocol.errors import MalformedMessageError, UsageLogError
from protocol.messages import Cast, LessonManifest

logger = logging.getLogger(__name__)

__all__ = [
    "FILE_NAME",
    "RESUME_MAX_AGE_S",
    "PresentationFile",
    "PresentationLog",
    "PresentationSink",
    "PresentationWriter",
    "SavedPresentation",
    "decode_slot",
    "encode_slot",
    "refusal",
]

FILE_NAME: Final = "presentation.slots"
"""The saved presentation, in the kiosk's state directory."""

LEGACY_FILE_NAME: Final = "presentation.json"
"""Where earlier versions kept it (one JSON file replaced by rename): read once, when the
slots hold nothing, then removed."""

SLOTS: Final = 4
"""Versions the file has room for: the newest, the newest flushed, the one being
flushed, and the one being written (:class:`PresentationFile`)."""

RESUME_MAX_AGE_S: Final = 600.0
"""A presentation saved longer ago than this (by the wall clock, either way) is not
resumed: a panel that was off for more than ten minutes comes back idle, not in
yesterday's lesson. The file is re-saved at every heartbeat while a lesson shows, so
its age is the time the kiosk was down, to within one heartbeat."""

RESAVE_INTERVAL_S: Final = 60.0
"""An unchanged presentation is written again at the first heartbeat this long after its
last write (to keep its age current); a playing video at every heartbeat (its position)."""

MAX_FILE_BYTES: Final = limits.MAX_TEXT_FRAME_BYTES + 64 * 1024
"""Largest saved presentation: one ``cast`` frame plus the other fields."""

SLOT_BYTES: Final = MAX_FILE_BYTES + 4096
"""Room of one slot (its header and the largest presentation); the file is sparse, so
a slot takes only the blocks its version fills."""

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


def encode_saved(saved: SavedPresentation, cast_text: CastText | None = None) -> bytes:
    """The file's bytes for ``saved`` (UTF-8 JSON; the lesson as the codec encodes ``cast``).

    A control saves the same lesson at another item: with ``cast_text`` (one per file,
    as :class:`PresentationFile` keeps it) the lesson's text is encoded once and kept,
    so a save costs the few fields that change.
    """
    rest = {
        "format": FORMAT,
        "saved_at_s": saved.saved_at_s,
        "presenter_id": saved.presenter.id,
        "presenter_name": saved.presenter.name,
        "paused": saved.paused,
        "blanked": saved.blanked,
        "position_ms": saved.position_ms,
        "volume": saved.volume,
    }
    cast = (cast_text or CastText()).of(saved.lesson, saved.index, saved.clock_offset_ms)
    tail = json.dumps(rest, ensure_ascii=False, separators=(",", ":"))
    return f'{{"cast":{cast},{tail[1:]}'.encode()


class CastText:
    """``encode(Cast(id=0, lesson, start_index, clock_offset_ms))``, with the text of the
    last lesson kept: the codec writes a ``cast``'s fields in their order, so the text
    up to ``start_index`` is the same for every item of one lesson. Keep one per saved
    presentation (several kiosks in one process each keep their own lesson's)."""

    _TAIL: Final = ',"start_index":0,"start_at_ms":null,"clock_offset_ms":0,"type":"cast"}'

    def __init__(self) -> None:
        self._lesson: LessonManifest | None = None
        self._head = ""

    def of(self, lesson: LessonManifest, index: int, clock_offset_ms: int) -> str:
        if lesson is not self._lesson:
            text = encode(Cast(id=0, lesson=lesson))
            if not text.endswith(self._TAIL):  # the codec's layout changed: no shortcut
                return encode(
                    Cast(id=0, lesson=lesson, start_index=index, clock_offset_ms=clock_offset_ms)
                )
            self._lesson, self._head = lesson, text[: -len(self._TAIL)]
        return (
            f'{self._head},"start_index":{int(index)},"start_at_ms":null,'
            f'"clock_offset_ms":{int(clock_offset_ms)},"type":"cast"}}'
        )


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
    """The saved presentation on disk: :data:`SLOTS` slots of one file, each holding a
    version with its generation and checksum; the newest valid one counts.

    :meth:`replace` and :meth:`remove` change what a restarted kiosk finds at once
    (one ``pwrite`` to the page cache, no fsync); :meth:`sync` makes that survive a
    power loss (one ``fdatasync``). A version is written to a slot that holds neither
    the newest version, nor the newest flushed one, nor the one being flushed: a kill
    in the middle of a write damages only that slot (its checksum fails and the newest
    complete version counts), and a power loss finds at least the last flushed version
    intact, whatever happened to the slots written since. :meth:`replace` and
    :meth:`remove` must be called from one thread; :meth:`sync` may run on another.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._generation = 0
        """The newest generation in the file (guarded by ``_lock``)."""
        self._newest: int | None = None
        self._durable: int | None = None
        """The slot of the newest flushed version (guarded by ``_lock``)."""
        self._syncing: int | None = None
        self._folder_synced = False
        self._cast_text = CastText()

    def replace(self, saved: SavedPresentation) -> bytes:
        """Write ``saved`` as the newest version, without waiting for the disk.

        A kiosk killed right after this call (a crash, the watchdog) finds it. Call
        :meth:`sync` afterwards (off the network loop) for a power loss: until then a
        power loss brings back the last flushed version.

        Returns:
            The slot's bytes (:func:`encode_slot`), for a copy kept elsewhere.

        Raises:
            OSError: the file cannot be written (the earlier versions stay).
            ValueError: ``saved`` is larger than :data:`MAX_FILE_BYTES`.
        """
        return self._put(encode_saved(saved, self._cast_text))

    def remove(self) -> bytes:
        """Write "nothing to resume" as the newest version; :meth:`sync` makes it durable.

        Returns:
            The slot's bytes, as :meth:`replace`.

        Raises:
            OSError: the file cannot be written.
        """
        return self._put(b"")

    def sync(self) -> None:
        """Flush what was written to the disk (the folder too, the first time).

        Raises:
            OSError: the disk refused.
        """
        fd = self._open()
        with self._lock:
            target = self._syncing = self._newest
        try:
            os.fdatasync(fd)
            if not self._folder_synced:
                folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
                self._folder_synced = True
        finally:
            with self._lock:
                self._syncing = None
        with self._lock:
            self._durable = target

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
            OSError: the file cannot be written.
        """
        self.remove()
        self.sync()

    def close(self) -> None:
        """Close the file (a later call opens it again)."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def load(self) -> SavedPresentation | None:
        """The newest saved presentation, or None if there is none or it cannot be trusted.

        Slots whose checksum fails (a write cut short) are skipped. A newest version
        that is damaged in itself is logged once and replaced by "nothing to resume";
        the caller then checks :func:`refusal` before showing it.
        """
        try:
            newest = self.newest()
        except OSError as exc:
            logger.warning("cannot read the saved presentation %s: %s", self.path, exc)
            return None
        if newest is None:
            return self._load_legacy()
        return self.decode(newest[1])

    def newest(self) -> tuple[int, bytes] | None:
        """The generation and bytes of the newest valid version, or None (none yet).

        Raises:
            OSError: the file cannot be read.
        """
        fd = self._open()
        with self._lock:
            slot = self._newest
        if slot is None:
            return None
        payload = _read_slot(fd, slot)
        return None if payload is None else (self._generation, payload)

    def advance_to(self, generation: int) -> None:
        """Number the next version after ``generation`` at least (a copy kept elsewhere
        was newer than this file).

        Raises:
            OSError: the file cannot be opened.
        """
        self._open()
        with self._lock:
            self._generation = max(self._generation, generation)

    def decode(self, payload: bytes) -> SavedPresentation | None:
        """A version's bytes read back (None: nothing to resume); a damaged one is
        logged, and "nothing to resume" written over it."""
        if payload == b"":
            return None
        try:
            return decode_saved(payload)
        except (ValueError, MalformedMessageError) as exc:
            logger.warning("the saved presentation %s is damaged, not resuming: %s", self.path, exc)
            with contextlib.suppress(OSError):
                self.clear()
            return None

    def _load_legacy(self) -> SavedPresentation | None:
        """What an earlier version saved in :data:`LEGACY_FILE_NAME`; the file is removed."""
        legacy = self.path.with_name(LEGACY_FILE_NAME)
        try:
            with legacy.open("rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read the saved presentation %s: %s", legacy, exc)
            return None
        with contextlib.suppress(OSError):
            legacy.unlink()
        try:
            if len(raw) > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            return decode_saved(raw)
        except (ValueError, MalformedMessageError) as exc:
            logger.warning("the saved presentation %s is damaged, not resuming: %s", legacy, exc)
            return None

    def _open(self) -> int:
        """The open file; the first call finds the newest version in it."""
        with self._lock:
            if self._fd is not None:
                return self._fd
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            newest, generation = None, 0
            for slot in range(SLOTS):
                header = os.pread(fd, _HEADER.size, slot * SLOT_BYTES)
                found = _valid_generation(fd, slot, header)
                if found is not None and found > generation:
                    newest, generation = slot, found
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            self._fd, self._newest, self._generation = fd, newest, generation
            self._durable = newest  # kept as it is until a newer version is flushed
        return fd

    def _put(self, payload: bytes) -> bytes:
        if len(payload) > MAX_FILE_BYTES:
            raise ValueError(f"the presentation is larger than {MAX_FILE_BYTES} bytes")
        fd = self._open()
        with self._lock:
            busy = {self._newest, self._durable, self._syncing}
            slot = next(s for s in range(SLOTS) if s not in busy)
            generation = self._generation + 1
        data = encode_slot(payload, generation)
        if os.pwrite(fd, data, slot * SLOT_BYTES) != len(data):
            raise OSError(f"short write to {self.path}")
        with self._lock:
            self._newest, self._generation = slot, generation
        return data


_MAGIC: Final = b"CCP1"
_HEADER: Final = struct.Struct(">4sQII")
"""A slot's header: magic, generation, payload length, CRC-32 of the header (with a
zero checksum) and the payload."""


def encode_slot(payload: bytes, generation: int) -> bytes:
    """A slot's bytes: the header, then ``payload`` (a saved presentation, or empty)."""
    header = _HEADER.pack(_MAGIC, generation, len(payload), 0)
    checksum = zlib.crc32(payload, zlib.crc32(header))
    return _HEADER.pack(_MAGIC, generation, len(payload), checksum) + payload


def decode_slot(data: bytes) -> tuple[int, bytes] | None:
    """The generation and payload of a slot's bytes (:func:`encode_slot`), or None when
    they are cut short or damaged."""
    if len(data) < _HEADER.size:
        return None
    magic, generation, length, checksum = _HEADER.unpack_from(data)
    payload = data[_HEADER.size :]
    zeroed = _HEADER.pack(_MAGIC, generation, length, 0)
    if magic != _MAGIC or len(payload) != length or length > MAX_FILE_BYTES:
        return None
    if zlib.crc32(payload, zlib.crc32(zeroed)) != checksum:
        return None
    return int(generation), payload


def _valid_generation(fd: int, slot: int, header: bytes) -> int | None:
    """The generation of the slot whose header is ``header``, or None if it is not valid."""
    if _read_slot(fd, slot, header) is None:
        return None
    return int(_HEADER.unpack(header)[1])


def _read_slot(fd: int, slot: int, header: bytes | None = None) -> bytes | None:
    """The payload of a slot, or None if the slot is empty, cut short or damaged."""
    if header is None:
        header = os.pread(fd, _HEADER.size, slot * SLOT_BYTES)
    if len(header) < _HEADER.size:
        return None
    magic, generation, length, checksum = _HEADER.unpack(header)
    if magic != _MAGIC or length > MAX_FILE_BYTES:
        return None
    payload = os.pread(fd, length, slot * SLOT_BYTES + _HEADER.size)
    zeroed = _HEADER.pack(_MAGIC, generation, length, 0)
    if len(payload) != length or zlib.crc32(payload, zlib.crc32(zeroed)) != checksum:
        return None
    return payload


class PresentationLog(Protocol):
    """A second copy of the presentation, committed with the usage records of the same
    change (:class:`kiosk.usage_writer.UsageWriter`)."""

    def save_presentation(self, data: bytes) -> None:
        """Queue ``data`` to be committed with what is queued with it; must not block."""

    def saved_presentation(self) -> bytes | None:
        """What was last committed."""

    def flush(self, timeout_s: float = ...) -> None:
        """Wait until what is queued is committed (``UsageLogError`` if it cannot be)."""


class PresentationSink(Protocol):
    """Where the service hands what it shows: :class:`PresentationWriter`."""

    def save(self, saved: SavedPresentation | None) -> None:
        """Keep ``saved`` for the next run (None: nothing to resume); must not block."""


class _Unknown(enum.Enum):
    UNKNOWN = enum.auto()


_UNKNOWN: Final = _Unknown.UNKNOWN


class PresentationWriter:
    """Keeps the saved presentation up to date; nothing waits for the disk on the caller's
    thread.

    :meth:`save` writes the new version into the file at once, before the service sends
    the status of the change, so a kiosk killed at any moment after a controller saw a
    change comes back with it; it costs one write to the page cache, never an fsync.
    What survives a power loss is made durable elsewhere: with a ``log`` (the kiosk's
    usage writer) a copy of the version is queued there and committed with the usage
    records of the same change; with ``run_after`` the file is flushed on the thread it
    hands work to; with neither, on a thread of this writer's own. A burst of changes
    costs one flush. A save or flush that fails is logged (once until one succeeds
    again) and the lesson goes on. Call :meth:`load` once at start, :meth:`close` on
    shutdown (before the usage writer's ``close_db``). Call every method but
    :meth:`flush` from one thread.
    """

    def __init__(
        self,
        file: PresentationFile,
        *,
        run_after: Callable[[Callable[[], None]], None] | None = None,
        log: PresentationLog | None = None,
    ) -> None:
        """Keep ``file`` up to date.

        Args:
            file: the saved presentation on disk.
            run_after: hands a job to the thread that flushes (it must return at once
                and run the job later, in order); None starts a thread for this writer.
            log: keep the copy that survives a power loss there instead (the kiosk
                passes its :class:`~kiosk.usage_writer.UsageWriter`): each version is
                committed with the usage records of the same change, in their one
                flush, and the file is never flushed; :meth:`load` takes the newer of
                the two.
        """
        self.file = file
        self._log = log
        self._cond = threading.Condition()
        self._queued = False
        """A flush is handed over and has not started (guarded by ``_cond``)."""
        self._busy = False
        self._failing = False
        self._written: SavedPresentation | _Unknown | None = _UNKNOWN
        """What the file holds (None: no file); unknown until a save succeeds."""
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] | None = None
        self._thread: threading.Thread | None = None
        if run_after is None and log is None:
            jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
            self._jobs = jobs
            run_after = jobs.put
            self._thread = threading.Thread(
                target=self._run, args=(jobs,), name="presentation-sync", daemon=True
            )
            self._thread.start()
        self._run_after = run_after

    def save(self, saved: SavedPresentation | None) -> None:
        """Keep ``saved`` (None: nothing to resume); never waits for the disk."""
        written = self._written
        if not isinstance(written, _Unknown) and not needs_writing(saved, written):
            return
        self._written = _UNKNOWN  # until this save succeeds
        try:
            data = self.file.remove() if saved is None else self.file.replace(saved)
        except Exception:  # a save that fails must not stop the lesson
            self._failed()
            return
        self._written = saved
        if self._log is not None or self._run_after is None:
            self._succeeded()
            if self._log is not None:
                self._log.save_presentation(data)
            return
        with self._cond:
            if self._queued:
                return  # the flush queued already covers this save
            self._queued = True
        self._run_after(self._sync)

    def load(self) -> SavedPresentation | None:
        """What the previous run saved: the newer of the file and the log's copy (by
        generation), or None; call once at start, before :meth:`save`."""
        try:
            newest = self.file.newest()
        except OSError as exc:
            logger.warning("cannot read the saved presentation %s: %s", self.file.path, exc)
            newest = None
        if self._log is not None:
            try:
                row = self._log.saved_presentation()
            except UsageLogError as exc:
                logger.warning("cannot read the presentation kept in the usage log: %s", exc)
                row = None
            copy = decode_slot(row) if row is not None else None
            if copy is not None and (newest is None or copy[0] > newest[0]):
                newest = copy  # the file lost what the log kept (a power loss)
                with contextlib.suppress(OSError):
                    self.file.advance_to(copy[0])
        if newest is None:
            return self.file.load()  # an earlier version's file, if any
        return self.file.decode(newest[1])

    def flush(self, timeout_s: float = WRITE_TIMEOUT_S) -> bool:
        """Wait until what was saved is on the disk; False if that took over ``timeout_s``
        (or, with a log, if the log cannot commit now)."""
        if self._log is not None:
            try:
                self._log.flush(timeout_s)
            except UsageLogError:
                return False
            return True
        with self._cond:
            return self._cond.wait_for(lambda: not self._queued and not self._busy, timeout_s)

    def close(self) -> None:
        """Flush what was saved; stop this writer's own thread, if it has one."""
        if self._log is not None:
            pass  # the log commits what is queued when it closes
        elif self._jobs is None or self._thread is None:
            if not self.flush():
                logger.error("the saved presentation %s was not flushed in time", self.file.path)
        else:
            self._jobs.put(None)
            self._thread.join(WRITE_TIMEOUT_S)
        self.file.close()

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
