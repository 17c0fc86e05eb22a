"""The kiosk's content-addressed blob store on disk.

Layout under ``root``::

    blobs/<first 2 hex>/<sha256>     complete, verified blobs
    partial/<sha256>.part            blobs being received, appended chunk by chunk

Blobs are named by their sha256 only, and every sha256 argument is checked against
``^[0-9a-f]{64}$``, so nothing a peer sends can become a path. A blob becomes complete
by an atomic rename after an fsync; chunks are appended without fsync (a power loss
costs at most a re-sent tail, which the hash check catches), but every
``WRITEBACK_BYTES`` the disk is asked to start writing them, so that the commit's fsync
finds little left to do.

Room is taken before bytes arrive: a transfer ``reserve``-s the whole size of every blob
it will receive, and each ``append`` must stay inside its blob's reservation, so
transfers running at once can never together exceed the quota. To make room the store
evicts the least recently used blobs (``touch`` marks use, via the file's mtime):
complete blobs, and partial ones left by a transfer that went away (unreserved and not
appended to for ``STALE_PARTIAL_S``). Blobs of the current lesson are ``pin``-ned and
never evicted.

The cache never takes the last ``floor_bytes`` of free space on its filesystem
(``USAGE_LOG_FLOOR_BYTES`` by default): they are kept for the usage log, whose records
must never be lost to a disk filled with media. Both ``reserve`` and every ``append``
check it.

The transfer rules themselves (offsets, hashes) live in the pure :mod:`media.chunks`;
this module only carries them out on disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from protocol.errors import (
    BlobTooLargeError,
    DiskFullError,
    MediaError,
    QuotaExceededError,
    UnexpectedMessageError,
)
from protocol.limits import MAX_BLOB_BYTES

READ_BYTES: Final = 1024 * 1024
"""Bytes read at a time while hashing a stored file."""

STALE_PARTIAL_S: Final = 600.0
"""A partial blob not appended to for this long (10 minutes), and reserved by no live
transfer, may be evicted like a complete blob. Until then it waits for its transfer to
resume (a teacher's laptop that lost the Wi-Fi for a moment)."""

USAGE_LOG_FLOOR_BYTES: Final = 64 * 1024 * 1024
"""Free disk space the media cache never takes, by default (64 MiB): it is kept for the
usage log (about 75,000 records of ~900 bytes). ``usage_floor_mb`` in kiosk.toml changes it."""

WRITEBACK_BYTES: Final = 8 * 1024 * 1024
"""Every this many bytes appended to a partial blob (8 MiB), the store asks the system to
start writing them to disk and does not wait (:func:`start_writeback`). Otherwise the
system writes nothing of a blob until the commit's fsync, which then waits for all of it
(25-30 ms for 50 MB here, seconds for a big video on a panel's flash) while the chunk
queue, and so the transfer, stands still; started early, the fsync waits for the last
few MiB only (9-10 ms for 50 MB)."""

StartWriteback = Callable[[int, int, int], None]
"""``(fd, offset, length)``: start writing that range of an open file to disk."""

_SYNC_FILE_RANGE_WRITE: Final = 2
_NS_PER_S: Final = 1_000_000_000

_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
_PART_SUFFIX: Final = ".part"


@dataclass(frozen=True, slots=True)
class _Entry:
    sha256: str
    size_bytes: int
    used_ns: int
    """mtime: last ``touch`` of a complete blob, last append of a partial one."""
    partial: bool = False


class BlobStore:
    """Complete and partial blobs under one folder, within a quota and a disk floor.

    A receiving kiosk calls ``reserve`` with the blobs it will receive (answering
    ``need``), then ``append`` for each chunk the :class:`media.chunks.ChunkAssembler`
    accepted, then ``commit`` once the assembler verified the hash (or ``discard`` if it
    did not). ``commit`` and ``discard`` end the blob's reservation; a transfer that
    stops half-way (its connection closed) calls ``unreserve``, and its partial stays
    for a resumed transfer until it goes stale.
    """

    def __init__(
        self,
        root: Path,
        quota_bytes: int,
        *,
        floor_bytes: int = USAGE_LOG_FLOOR_BYTES,
        free_bytes: Callable[[], int] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        writeback: StartWriteback | None = None,
    ) -> None:
        """Open (and create) the store at ``root``.

        Args:
            root: folder of the store; created with ``blobs/`` and ``partial/`` if absent.
            quota_bytes: most bytes the store may hold, complete, partial and reserved.
            floor_bytes: free disk space the store never takes (kept for the usage log).
            free_bytes: returns the free bytes left on the disk the floor protects;
                by default ``os.statvfs`` of ``root`` (bytes available to this user).
            clock_ns: wall clock in nanoseconds for ``touch`` and for telling stale
                partials (injectable for tests).
            writeback: called every ``WRITEBACK_BYTES`` appended to a partial blob;
                by default :func:`start_writeback`.

        Raises:
            ValueError: ``quota_bytes`` is not positive or ``floor_bytes`` is negative.
        """
        self._handles: dict[str, tuple[BinaryIO, int]] = {}
        self._reserved: dict[str, int] = {}
        if quota_bytes <= 0:
            raise ValueError(f"quota_bytes must be positive, not {quota_bytes}")
        if floor_bytes < 0:
            raise ValueError(f"floor_bytes must not be negative, not {floor_bytes}")
        self.root = root
        self.quota_bytes = quota_bytes
        self.floor_bytes = floor_bytes
        self._free_bytes = free_bytes if free_bytes is not None else lambda: free_disk_bytes(root)
        self._blobs = root / "blobs"
        self._partial = root / "partial"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._partial.mkdir(parents=True, exist_ok=True)
        self._clock_ns = clock_ns
        self._start_writeback = writeback or start_writeback
        self._last_touch_ns = 0
        self._pinned: frozenset[str] = frozenset()

    # ----------------------------------------------------------------- queries

    def has(self, sha256: str) -> bool:
        """Return whether the complete blob ``sha256`` is stored."""
        return self._blob_path(sha256).is_file()

    def path(self, sha256: str) -> Path:
        """Return the file of the complete blob ``sha256``.

        Raises:
            MediaError: the blob is not stored, or ``sha256`` is not a lowercase hex sha256.
        """
        path = self._blob_path(sha256)
        if not path.is_file():
            raise MediaError(f"blob {sha256} is not in the store")
        return path

    def partial_bytes(self, sha256: str) -> int:
        """Return how many bytes of ``sha256`` were received so far (0 if none)."""
        try:
            return self._part_path(sha256).stat().st_size
        except FileNotFoundError:
            return 0

    def partial_hasher(self, sha256: str) -> hashlib._Hash:
        """Return a sha256 hasher fed with the partial bytes of ``sha256``.

        Pass it to ``ChunkAssembler.expect`` with ``have_bytes=partial_bytes(sha256)``
        so a resumed transfer continues the hash instead of re-reading at the end.
        """
        hasher = hashlib.sha256()
        with contextlib.suppress(FileNotFoundError):
            _hash_file(self._part_path(sha256), hasher)
        return hasher

    def verify(self, sha256: str) -> bool:
        """Re-hash the complete blob ``sha256`` and return whether it still matches.

        Raises:
            MediaError: the blob is not stored.
        """
        hasher = hashlib.sha256()
        _hash_file(self.path(sha256), hasher)
        return hasher.hexdigest() == sha256

    def used_bytes(self) -> int:
        """Return the bytes held on disk: complete blobs plus partial ones."""
        complete = sum(entry.size_bytes for entry in self._complete())
        return complete + sum(entry.size_bytes for entry in self._partials())

    def reserved_bytes(self) -> int:
        """Return the bytes reserved by transfers and not yet received."""
        return sum(
            max(0, size - self.partial_bytes(sha256)) for sha256, size in self._reserved.items()
        )

    def reservation(self, sha256: str) -> int:
        """Return the whole size reserved for blob ``sha256`` (0 if none)."""
        return self._reserved.get(sha256, 0)

    @property
    def reservations(self) -> Mapping[str, int]:
        """The blobs being received and the whole size reserved for each."""
        return dict(self._reserved)

    @property
    def pinned(self) -> frozenset[str]:
        """The blobs ``make_room`` never evicts."""
        return self._pinned

    # ----------------------------------------------------------------- receiving

    def append(self, sha256: str, offset_bytes: int, data: bytes | memoryview) -> None:
        """Append ``data`` to the partial blob ``sha256``; no fsync (``commit`` does it).

        The bytes must lie inside the blob's reservation, and writing them must leave
        ``floor_bytes`` free on the disk.

        Raises:
            UnexpectedMessageError: ``offset_bytes`` is not the partial's current size
                (the peer sent a chunk out of order).
            DiskFullError: the disk is too full (below the floor, or out of space); the
                partial keeps what it had. Fail the transfer and ``discard`` the blob.
            MediaError: ``sha256`` is not a lowercase hex sha256, or these bytes are
                outside the blob's reservation (the caller did not ``reserve``).
        """
        _check_sha256(sha256)
        end = offset_bytes + len(data)
        reserved = self._reserved.get(sha256)
        if reserved is None or end > reserved:
            raise MediaError(
                f"blob {sha256}: bytes up to {end} are outside its reservation "
                f"({reserved or 0} bytes); reserve() the blob before receiving it"
            )
        if self._free_bytes() - len(data) < self.floor_bytes:
            raise DiskFullError(
                f"the panel's disk is nearly full: storing blob {sha256} would take the "
                f"{self.floor_bytes} bytes kept free for the usage log",
                sha256=sha256,
            )
        # The partial being received stays open between chunks; a handle whose size does
        # not match (the file changed under it) is dropped and the file looked at anew.
        handle = self._handles.get(sha256)
        if handle is None or handle[1] != offset_bytes:
            self.release(sha256)
            part = self._part_path(sha256)
            current = self.partial_bytes(sha256)
            if offset_bytes != current:
                raise UnexpectedMessageError(
                    f"chunk of blob {sha256} at offset {offset_bytes}; the store holds "
                    f"{current} bytes of it"
                )
            handle = (part.open("ab", buffering=0), current)
        f, size = handle
        end = size + len(data)
        try:
            f.write(data)
        except OSError as exc:
            # A short write leaves the file longer than ``size``: the next append
            # looks at the file anew and refuses the offset, so resume plans again.
            self.release(sha256)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(
                    f"the panel's disk is full: blob {sha256} cannot be stored", sha256=sha256
                ) from None
            raise MediaError(f"blob {sha256} cannot be written: {exc.strerror}") from None
        self._handles[sha256] = (f, end)
        if end // WRITEBACK_BYTES > size // WRITEBACK_BYTES:
            window_end = end // WRITEBACK_BYTES * WRITEBACK_BYTES
            self._start_writeback(f.fileno(), window_end - WRITEBACK_BYTES, WRITEBACK_BYTES)

    def release(self, sha256: str) -> None:
        """Close the open file of the partial blob ``sha256``, if any (the partial stays)."""
        handle = self._handles.pop(sha256, None)
        if handle is not None:
            handle[0].close()

    def flush(self, sha256: str) -> None:
        """Write the bytes of the partial blob ``sha256`` received so far to disk.

        The long part of ``commit``'s fsync, done beforehand: call it without the
        kiosk's service lock before a blob's last chunk, so that ``commit`` (under the
        lock) has only that chunk left to write and the network loop and the other
        connections are not held up by the disk meanwhile. It reads and changes none of
        the store's state, only the file; a partial that is gone (discarded meanwhile)
        is no error. ``commit`` still fsyncs: skipping this costs time, not safety.
        """
        try:
            fd = os.open(self._part_path(sha256), os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def commit(self, sha256: str, expected_size: int) -> Path:
        """Make the partial blob ``sha256`` complete, durably and atomically.

        The caller has verified the hash (``BlobVerified``). The partial is fsynced,
        renamed into ``blobs/`` and the folder fsynced; the blob counts as just used and
        its reservation ends.

        Returns:
            The file of the complete blob.

        Raises:
            MediaError: there is no partial blob, or it is not ``expected_size`` bytes
                long (it is left in place; ``discard`` it to start over).
        """
        part = self._part_path(sha256)
        target = self._blob_path(sha256)
        self.release(sha256)
        try:
            fd = os.open(part, os.O_RDONLY)
        except FileNotFoundError:
            raise MediaError(f"blob {sha256} has no partial file to commit") from None
        try:
            size = os.fstat(fd).st_size
            if size != expected_size:
                raise MediaError(
                    f"blob {sha256} has {size} bytes, expected {expected_size}; not committed"
                )
            os.fsync(fd)
        finally:
            os.close(fd)
        self._move_in(part, target)
        self._reserved.pop(sha256, None)
        self.touch(sha256)
        return target

    def discard(self, sha256: str) -> None:
        """Remove the partial blob ``sha256`` if any, and its reservation (after a failed
        hash check, or a transfer refused half-way)."""
        self.unreserve(sha256)
        self._part_path(sha256).unlink(missing_ok=True)

    def unreserve(self, sha256: str) -> None:
        """End the reservation of ``sha256`` (its transfer stopped); the partial stays.

        The partial can be resumed by a later ``reserve``; once ``STALE_PARTIAL_S`` pass
        without an append, ``reserve`` and ``make_room`` may evict it.
        """
        self.release(sha256)
        self._reserved.pop(sha256, None)

    def reserve(self, sizes: Mapping[str, int]) -> list[str]:
        """Reserve room for whole blobs about to be received, evicting to make it.

        Call it when answering ``need``, with each blob's whole size (bytes already in
        its partial count toward it). Reserved room is held until ``commit``,
        ``discard`` or ``unreserve``; reserving a blob again keeps the larger size. All
        or nothing: when room cannot be made, nothing is evicted or reserved.

        Returns:
            The evicted blobs (complete or stale partial), least recently used first.

        Raises:
            QuotaExceededError: even evicting every unpinned complete blob and every
                stale partial leaves too little of the quota (other transfers' bytes,
                the pinned lesson). Tell the teacher to send a smaller lesson or wait.
            DiskFullError: storing them would leave less than ``floor_bytes`` free on
                the disk. Tell the teacher that the panel's disk is full.
            MediaError: one of ``sizes`` is not a lowercase hex sha256.
            ValueError: a size is not positive.
        """
        for sha256, size in sizes.items():
            _check_sha256(sha256)
            if size <= 0:
                raise ValueError(f"blob {sha256}: size must be positive, not {size}")
        if not sizes:
            return []
        merged = dict(self._reserved)
        for sha256, size in sizes.items():
            merged[sha256] = max(size, merged.get(sha256, 0))
        evicted = self._make_room(merged, 0)
        self._reserved = merged
        return evicted

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` as a complete blob, making room for it; return its sha256.

        A convenience for tests and the demo; kiosks receive blobs by ``append``.

        Raises:
            BlobTooLargeError: ``data`` is larger than ``MAX_BLOB_BYTES``.
            QuotaExceededError: there is no room, even after evicting (``DiskFullError``
                when it is the disk floor that is short).
        """
        sha256 = hashlib.sha256(data).hexdigest()
        if len(data) > MAX_BLOB_BYTES:
            raise BlobTooLargeError(
                f"blob {sha256} of {len(data)} bytes is over the limit of {MAX_BLOB_BYTES}",
                sha256=sha256,
            )
        if self.has(sha256):
            self.touch(sha256)
            return sha256
        self.make_room(len(data))
        fd, tmp_name = tempfile.mkstemp(dir=self._partial, suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self._move_in(tmp, self._blob_path(sha256))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.touch(sha256)
        return sha256

    # ----------------------------------------------------------------- eviction

    def touch(self, sha256: str) -> None:
        """Mark the complete blob ``sha256`` as just used (it is evicted last).

        Raises:
            MediaError: the blob is not stored.
        """
        now = max(self._clock_ns(), self._last_touch_ns + 1)
        self._last_touch_ns = now
        os.utime(self.path(sha256), ns=(now, now))

    def pin(self, shas: Iterable[str]) -> None:
        """Protect exactly these blobs (the current lesson's) from eviction.

        Replaces the previous pins; ``pin(())`` releases them all.

        Raises:
            MediaError: one of ``shas`` is not a lowercase hex sha256.
        """
        pinned = frozenset(shas)
        for sha256 in pinned:
            _check_sha256(sha256)
        self._pinned = pinned

    def make_room(self, size_bytes: int) -> list[str]:
        """Evict least recently used blobs until ``size_bytes`` more fit, besides what
        is reserved.

        For a blob stored outside a transfer (``put_bytes``); a transfer calls
        ``reserve``. Complete unpinned blobs and stale unreserved partials are evicted,
        oldest first. Nothing is evicted when room cannot be made.

        Returns:
            The evicted blobs, oldest first.

        Raises:
            QuotaExceededError: even evicting every evictable blob leaves too little room.
            DiskFullError: ``size_bytes`` more would leave less than ``floor_bytes`` free.
        """
        return self._make_room(self._reserved, size_bytes)

    # ----------------------------------------------------------------- internals

    def _blob_path(self, sha256: str) -> Path:
        _check_sha256(sha256)
        return self._blobs / sha256[:2] / sha256

    def _part_path(self, sha256: str) -> Path:
        _check_sha256(sha256)
        return self._partial / f"{sha256}{_PART_SUFFIX}"

    def _move_in(self, source: Path, target: Path) -> None:
        folder = target.parent
        if not folder.is_dir():
            folder.mkdir(exist_ok=True)
            _fsync_dir(self._blobs)
        os.replace(source, target)
        _fsync_dir(folder)

    def _make_room(self, reserved: Mapping[str, int], loose_bytes: int) -> list[str]:
        """Evict until ``reserved`` (whole sizes) plus ``loose_bytes`` fit in the quota
        and leave ``floor_bytes`` free; all or nothing.

        Raises:
            QuotaExceededError, DiskFullError: as ``reserve``.
        """
        complete = self._complete()
        partials = self._partials()
        partial_size = {entry.sha256: entry.size_bytes for entry in partials}
        # A reserved blob counts with its whole size; an unreserved partial as it is.
        reserved_total = sum(
            max(size, partial_size.get(sha256, 0)) for sha256, size in reserved.items()
        )
        unreserved_partial = sum(
            entry.size_bytes for entry in partials if entry.sha256 not in reserved
        )
        used = sum(entry.size_bytes for entry in complete) + unreserved_partial + reserved_total
        used += loose_bytes
        to_come = loose_bytes + sum(
            max(0, size - partial_size.get(sha256, 0)) for sha256, size in reserved.items()
        )
        previously_to_come = sum(
            max(0, size - partial_size.get(sha256, 0)) for sha256, size in self._reserved.items()
        )
        over_quota = used - self.quota_bytes
        # Check the floor only for what this call adds: what was reserved before passed.
        over_floor = 0
        if to_come > previously_to_come:
            over_floor = self.floor_bytes + to_come - self._free_bytes()
        if over_quota <= 0 and over_floor <= 0:
            return []
        stale_before_ns = self._clock_ns() - round(STALE_PARTIAL_S * _NS_PER_S)
        evictable = sorted(
            [entry for entry in complete if entry.sha256 not in self._pinned]
            + [
                entry
                for entry in partials
                if entry.sha256 not in reserved
                and entry.sha256 not in self._pinned
                and entry.used_ns <= stale_before_ns
            ],
            key=lambda entry: (entry.used_ns, entry.sha256),
        )
        freeable = sum(entry.size_bytes for entry in evictable)
        if over_quota > freeable:
            busy = sum(
                max(size, partial_size.get(sha256, 0)) for sha256, size in self._reserved.items()
            )
            raise QuotaExceededError(
                f"the media cache ({_mib(self.quota_bytes)} quota) cannot make "
                f"{_mib(over_quota - freeable)} more room: {_mib(busy)} are taken by "
                "transfers in progress and the rest by the lesson on screen or being "
                "sent; send a smaller lesson, or wait for the other transfer to finish, "
                "or raise quota_mb"
            )
        if over_floor > freeable:
            raise DiskFullError(
                f"the panel's disk is nearly full: the lesson needs "
                f"{_mib(over_floor - freeable)} more than the cache can free without "
                f"touching the {_mib(self.floor_bytes)} kept for the usage log; free disk "
                "space on the panel or send a smaller lesson"
            )
        need = max(over_quota, over_floor)
        evicted: list[str] = []
        for entry in evictable:
            if need <= 0:
                break
            if entry.partial:
                self._part_path(entry.sha256).unlink(missing_ok=True)
            else:
                self._blob_path(entry.sha256).unlink(missing_ok=True)
            need -= entry.size_bytes
            evicted.append(entry.sha256)
        return evicted

    def _complete(self) -> list[_Entry]:
        entries: list[_Entry] = []
        for path in self._iter_files(self._blobs, depth=2):
            if _SHA256_HEX.fullmatch(path.name):
                st = path.stat()
                entries.append(_Entry(path.name, st.st_size, st.st_mtime_ns))
        return entries

    def _partials(self) -> list[_Entry]:
        entries: list[_Entry] = []
        for path in self._iter_files(self._partial, depth=1):
            name = path.name.removesuffix(_PART_SUFFIX)
            if path.name.endswith(_PART_SUFFIX) and _SHA256_HEX.fullmatch(name):
                st = path.stat()
                entries.append(_Entry(name, st.st_size, st.st_mtime_ns, partial=True))
        return entries

    @staticmethod
    def _iter_files(folder: Path, *, depth: int) -> Iterator[Path]:
        with os.scandir(folder) as it:
            for entry in it:
                if depth > 1 and entry.is_dir(follow_symlinks=False):
                    yield from BlobStore._iter_files(Path(entry.path), depth=depth - 1)
                elif depth == 1 and entry.is_file(follow_symlinks=False):
                    yield Path(entry.path)


def free_disk_bytes(path: Path) -> int:
    """Return the bytes an unprivileged user may still write on ``path``'s filesystem."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the system to start writing ``length`` bytes of ``fd`` from ``offset`` to disk,
    without waiting for them (Linux ``sync_file_range``). Where there is no such call, or
    it fails, nothing happens: the commit's fsync writes them all the same."""
    call = _sync_file_range()
    if call is not None:
        call(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        call = ctypes.CDLL(name).sync_file_range if name is not None else None
    except (OSError, AttributeError):
        return None
    if call is None:
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    result: Callable[[int, int, int, int], int] = call
    return result


def _mib(size_bytes: int) -> str:
    """A size as people read it in a message: bytes below 1 MiB, else MiB."""
    if size_bytes < 1024 * 1024:
        return f"{size_bytes} bytes"
    return f"{size_bytes / (1024 * 1024):.1f} MiB"


def _check_sha256(sha256: str) -> None:
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        raise MediaError(f"not a lowercase hex sha256: {sha256!r}")


def _hash_file(path: Path, hasher: hashlib._Hash) -> None:
    with path.open("rb") as f:
        while block := f.read(READ_BYTES):
            hasher.update(block)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
