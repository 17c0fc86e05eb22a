"""The kiosk's content-addressed blob store on disk.

Layout under ``root``::

    blobs/<first 2 hex>/<sha256>     complete, verified blobs
    partial/<sha256>.part            blobs being received, appended chunk by chunk

Blobs are named by their sha256 only, and every sha256 argument is checked against
``^[0-9a-f]{64}$``, so nothing a peer sends can become a path. A blob becomes complete
by an atomic rename after an fsync; chunks are appended without fsync (a power loss
costs at most a re-sent tail, which the hash check catches).

The store keeps to a quota by evicting the least recently used complete blobs
(``touch`` marks use, via the file's mtime); blobs of the current lesson are
``pin``-ned and never evicted. The transfer rules themselves (offsets, hashes) live in
the pure :mod:`media.chunks`; this module only carries them out on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from protocol.errors import (
    BlobTooLargeError,
    MediaError,
    QuotaExceededError,
    UnexpectedMessageError,
)
from protocol.limits import MAX_BLOB_BYTES

READ_BYTES: Final = 1024 * 1024
"""Bytes read at a time while hashing a stored file."""

_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
_PART_SUFFIX: Final = ".part"


@dataclass(frozen=True, slots=True)
class _Entry:
    sha256: str
    size_bytes: int
    used_ns: int


class BlobStore:
    """Complete and partial blobs under one folder, within a quota.

    A receiving kiosk calls ``make_room`` for the bytes it still needs, then
    ``append`` for each chunk the :class:`media.chunks.ChunkAssembler` accepted, then
    ``commit`` once the assembler verified the hash (or ``discard`` if it did not).
    """

    def __init__(
        self, root: Path, quota_bytes: int, *, clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        """Open (and create) the store at ``root``.

        Args:
            root: folder of the store; created with ``blobs/`` and ``partial/`` if absent.
            quota_bytes: most bytes the store may hold, complete plus partial.
            clock_ns: wall clock in nanoseconds used by ``touch`` (injectable for tests).

        Raises:
            ValueError: ``quota_bytes`` is not positive.
        """
        self._handles: dict[str, tuple[BinaryIO, int]] = {}
        if quota_bytes <= 0:
            raise ValueError(f"quota_bytes must be positive, not {quota_bytes}")
        self.root = root
        self.quota_bytes = quota_bytes
        self._blobs = root / "blobs"
        self._partial = root / "partial"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._partial.mkdir(parents=True, exist_ok=True)
        self._clock_ns = clock_ns
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
        """Return the bytes held: complete blobs plus partial ones."""
        complete = sum(entry.size_bytes for entry in self._complete())
        return complete + sum(size for _, size in self._partials())

    @property
    def pinned(self) -> frozenset[str]:
        """The blobs ``make_room`` never evicts."""
        return self._pinned

    # ----------------------------------------------------------------- receiving

    def append(self, sha256: str, offset_bytes: int, data: bytes | memoryview) -> None:
        """Append ``data`` to the partial blob ``sha256``; no fsync (``commit`` does it).

        Raises:
            UnexpectedMessageError: ``offset_bytes`` is not the partial's current size
                (the peer sent a chunk out of order).
            MediaError: ``sha256`` is not a lowercase hex sha256.
        """
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
        f.write(data)
        self._handles[sha256] = (f, size + len(data))

    def release(self, sha256: str) -> None:
        """Close the open file of the partial blob ``sha256``, if any (the partial stays)."""
        handle = self._handles.pop(sha256, None)
        if handle is not None:
            handle[0].close()

    def commit(self, sha256: str, expected_size: int) -> Path:
        """Make the partial blob ``sha256`` complete, durably and atomically.

        The caller has verified the hash (``BlobVerified``). The partial is fsynced,
        renamed into ``blobs/`` and the folder fsynced; the blob counts as just used.

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
        self.touch(sha256)
        return target

    def discard(self, sha256: str) -> None:
        """Remove the partial blob ``sha256`` if any (after a failed hash check)."""
        self.release(sha256)
        self._part_path(sha256).unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` as a complete blob, making room for it; return its sha256.

        A convenience for tests and the demo; kiosks receive blobs by ``append``.

        Raises:
            BlobTooLargeError: ``data`` is larger than ``MAX_BLOB_BYTES``.
            QuotaExceededError: there is no room, even after evicting.
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
        """Evict least recently used unpinned blobs until ``size_bytes`` more fit.

        Call it before receiving, with the bytes still to come. Nothing is evicted
        when room cannot be made.

        Returns:
            The evicted blobs, oldest first.

        Raises:
            QuotaExceededError: even evicting every unpinned blob leaves too little room.
        """
        entries = self._complete()
        partial = sum(size for _, size in self._partials())
        used = partial + sum(entry.size_bytes for entry in entries)
        if used + size_bytes <= self.quota_bytes:
            return []
        evictable = sorted(
            (entry for entry in entries if entry.sha256 not in self._pinned),
            key=lambda entry: (entry.used_ns, entry.sha256),
        )
        freeable = sum(entry.size_bytes for entry in evictable)
        if used - freeable + size_bytes > self.quota_bytes:
            available = max(0, self.quota_bytes - (used - freeable))
            raise QuotaExceededError(
                f"blob store needs {size_bytes} bytes but can make at most {available} "
                f"available (quota {self.quota_bytes}; {used - freeable - partial} bytes "
                f"pinned by the current lesson, {partial} in partial transfers)"
            )
        evicted: list[str] = []
        for entry in evictable:
            if used + size_bytes <= self.quota_bytes:
                break
            self._blob_path(entry.sha256).unlink(missing_ok=True)
            used -= entry.size_bytes
            evicted.append(entry.sha256)
        return evicted

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

    def _complete(self) -> list[_Entry]:
        entries: list[_Entry] = []
        for path in self._iter_files(self._blobs, depth=2):
            if _SHA256_HEX.fullmatch(path.name):
                st = path.stat()
                entries.append(_Entry(path.name, st.st_size, st.st_mtime_ns))
        return entries

    def _partials(self) -> list[tuple[str, int]]:
        return [
            (path.name, path.stat().st_size)
            for path in self._iter_files(self._partial, depth=1)
            if path.name.endswith(_PART_SUFFIX)
        ]

    @staticmethod
    def _iter_files(folder: Path, *, depth: int) -> Iterator[Path]:
        with os.scandir(folder) as it:
            for entry in it:
                if depth > 1 and entry.is_dir(follow_symlinks=False):
                    yield from BlobStore._iter_files(Path(entry.path), depth=depth - 1)
                elif depth == 1 and entry.is_file(follow_symlinks=False):
                    yield Path(entry.path)


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
