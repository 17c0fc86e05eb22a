"""Blob transfer rules, with no I/O: what to ask for, what to send, what arrived.

Kiosk side, for a ``cast``::

    needs = plan_needs(manifest, store.has, store.partial_bytes)
    for need in needs:
        events += assembler.expect(need.sha256, need.size_bytes, need.have_bytes,
                                   store.partial_hasher(need.sha256))
    # reply Need(needs); then, for every binary frame:
    events = assembler.feed(decode_chunk(frame))
    # AppendBytes -> store.append(...); BlobVerified -> store.commit(...), send BlobStored

Controller side: ``chunk_ranges(need)`` gives the (offset, length) pairs to read from
the local file and send.

Errors (see :mod:`protocol.errors`): ``UnexpectedMessageError`` for a chunk nobody
asked for or at the wrong offset, ``BlobTooLargeError`` for bytes past the announced
size, ``ChecksumMismatchError`` when the bytes do not hash to the blob's name. All are
the sending peer's fault; after any of them the assembler has forgotten the blob, so
the caller discards its partial file.

This module imports nothing that does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from protocol.codec import Chunk
from protocol.errors import BlobTooLargeError, ChecksumMismatchError, UnexpectedMessageError
from protocol.limits import CHUNK_SIZE_BYTES, MAX_BLOB_BYTES
from protocol.messages import BlobNeed, LessonManifest


class Hasher(Protocol):
    """The part of a ``hashlib.sha256()`` object the assembler uses."""

    def update(self, data: bytes | memoryview, /) -> None:
        """Feed more bytes."""

    def hexdigest(self) -> str:
        """Return the digest of the bytes fed so far, as lowercase hex."""


@dataclass(frozen=True, slots=True)
class AppendBytes:
    """Write ``data`` at ``offset_bytes`` of the partial blob ``sha256``."""

    sha256: str
    offset_bytes: int
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class BlobVerified:
    """Blob ``sha256`` is whole and its hash matches: commit it and report ``BlobStored``."""

    sha256: str
    size_bytes: int


AssemblerEvent = AppendBytes | BlobVerified
"""What the caller must carry out after ``ChunkAssembler.feed``, in order."""


# --------------------------------------------------------------------------- planning


def plan_needs(
    manifest: LessonManifest,
    have: Callable[[str], bool],
    partial_bytes: Callable[[str], int],
) -> list[BlobNeed]:
    """List the blobs of ``manifest`` the kiosk lacks, in manifest order, each once.

    Args:
        manifest: the lesson being cast.
        have: whether a blob is complete in the store (``BlobStore.has``).
        partial_bytes: bytes of a blob already received (``BlobStore.partial_bytes``).

    Returns:
        One ``BlobNeed`` per missing blob; ``have_bytes`` is the partial size clamped
        to ``0..size_bytes``. Send it as the ``Need`` reply.
    """
    needs: list[BlobNeed] = []
    seen: set[str] = set()
    for item in manifest.items:
        sha256 = item.sha256
        if sha256 is None or sha256 in seen:
            continue
        seen.add(sha256)
        if have(sha256):
            continue
        have_bytes = min(max(partial_bytes(sha256), 0), item.size_bytes)
        needs.append(BlobNeed(sha256=sha256, have_bytes=have_bytes, size_bytes=item.size_bytes))
    return needs


def chunk_ranges(
    need: BlobNeed, chunk_size_bytes: int = CHUNK_SIZE_BYTES
) -> Iterator[tuple[int, int]]:
    """Yield the (offset, length) pairs the controller sends for ``need``.

    Args:
        need: a blob the kiosk lacks from ``need.have_bytes`` on.
        chunk_size_bytes: payload per chunk, 1 to ``CHUNK_SIZE_BYTES``.

    Raises:
        ValueError: ``chunk_size_bytes`` is out of range.
    """
    if not 0 < chunk_size_bytes <= CHUNK_SIZE_BYTES:
        raise ValueError(f"chunk_size_bytes must be from 1 to {CHUNK_SIZE_BYTES}")
    offset = need.have_bytes
    while offset < need.size_bytes:
        length = min(chunk_size_bytes, need.size_bytes - offset)
        yield offset, length
        offset += length


# --------------------------------------------------------------------------- assembling


@dataclass(slots=True)
class _Pending:
    size_bytes: int
    received_bytes: int
    hasher: Hasher


class ChunkAssembler:
    """Checks incoming chunks against the blobs expected and their hashes.

    Register each blob with ``expect``, then ``feed`` every chunk and carry out the
    returned events in order. The assembler holds no bytes; the store does.
    """

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}

    def expect(
        self, sha256: str, size_bytes: int, have_bytes: int, hasher: Hasher
    ) -> list[AssemblerEvent]:
        """Register blob ``sha256`` of ``size_bytes``, of which ``have_bytes`` are stored.

        Args:
            sha256: the blob's name (lowercase hex).
            size_bytes: its announced size.
            have_bytes: bytes already in the partial file (from ``plan_needs``).
            hasher: a sha256 hasher already fed with those ``have_bytes`` bytes.

        Returns:
            ``[BlobVerified]`` if ``have_bytes`` already completes the blob (a transfer
            cut off before its commit), else an empty list.

        Raises:
            BlobTooLargeError: ``size_bytes`` is over ``MAX_BLOB_BYTES`` (the peer's fault).
            ValueError: ``size_bytes`` or ``have_bytes`` is out of range (the caller's bug).
            ChecksumMismatchError: the stored bytes complete the blob but do not hash to
                ``sha256``; discard the partial and plan again.
        """
        if size_bytes > MAX_BLOB_BYTES:
            raise BlobTooLargeError(
                f"blob {sha256} announced with {size_bytes} bytes, over the limit of "
                f"{MAX_BLOB_BYTES}",
                sha256=sha256,
            )
        if size_bytes <= 0 or not 0 <= have_bytes <= size_bytes:
            raise ValueError(
                f"blob {sha256}: need 0 <= have_bytes ({have_bytes}) <= size_bytes "
                f"({size_bytes}) and size_bytes > 0"
            )
        self._pending[sha256] = _Pending(size_bytes, have_bytes, hasher)
        if have_bytes == size_bytes:
            return [self._finish(sha256)]
        return []

    def feed(self, chunk: Chunk) -> list[AssemblerEvent]:
        """Accept one chunk.

        Returns:
            ``[AppendBytes]``, or ``[AppendBytes, BlobVerified]`` for the last chunk of
            a blob whose hash matched (the blob is then forgotten).

        Raises:
            UnexpectedMessageError: the blob was not expected, or the chunk does not
                start where the received bytes end (the peer's fault).
            BlobTooLargeError: the chunk goes past the announced size (the peer's fault).
            ChecksumMismatchError: the whole blob arrived but hashes to something else
                (the peer's fault); the last chunk is not appended.
        """
        pending = self._pending.get(chunk.sha256)
        if pending is None:
            raise UnexpectedMessageError(f"chunk for blob {chunk.sha256}, which was not requested")
        if chunk.offset_bytes != pending.received_bytes:
            raise UnexpectedMessageError(
                f"chunk for blob {chunk.sha256} at offset {chunk.offset_bytes}; expected "
                f"offset {pending.received_bytes}"
            )
        end = pending.received_bytes + len(chunk.data)
        if end > pending.size_bytes:
            self.forget(chunk.sha256)
            raise BlobTooLargeError(
                f"chunk for blob {chunk.sha256} ends at byte {end}, past its announced size "
                f"of {pending.size_bytes}",
                sha256=chunk.sha256,
            )
        pending.hasher.update(chunk.data)
        pending.received_bytes = end
        append = AppendBytes(chunk.sha256, chunk.offset_bytes, chunk.data)
        if end < pending.size_bytes:
            return [append]
        verified = self._finish(chunk.sha256)
        return [append, verified]

    def pending(self) -> frozenset[str]:
        """Return the blobs still expected."""
        return frozenset(self._pending)

    def received_bytes(self, sha256: str) -> int:
        """Return the bytes of ``sha256`` received so far (0 if it is not expected)."""
        pending = self._pending.get(sha256)
        return 0 if pending is None else pending.received_bytes

    def forget(self, sha256: str) -> None:
        """Stop expecting ``sha256`` (no error if it was not expected)."""
        self._pending.pop(sha256, None)

    def clear(self) -> None:
        """Stop expecting any blob (a new cast replaced the transfer)."""
        self._pending.clear()

    def _finish(self, sha256: str) -> BlobVerified:
        pending = self._pending.pop(sha256)
        digest = pending.hasher.hexdigest()
        if digest != sha256:
            raise ChecksumMismatchError(
                f"blob {sha256} arrived whole ({pending.size_bytes} bytes) but hashes to {digest}",
                sha256=sha256,
            )
        return BlobVerified(sha256, pending.size_bytes)
