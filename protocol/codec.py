"""The one codec of protocol v1: messages to frames and back.

``encode`` turns a message into the text of a frame; ``decode`` turns the text of a
frame into a message, validating every field against the message's type and the
limits in :mod:`protocol.limits`. Anything else raises ``MalformedMessageError``,
whose message says what was wrong, so the kiosk can answer with an error reply.

Blob chunks travel in binary frames: 32-byte sha256 of the blob, 8-byte big-endian
offset, then the bytes (``encode_chunk`` / ``decode_chunk``). Pictures of a screen
share travel in stream frames, which start with ``STREAM_MAGIC`` instead
(``is_stream_frame``, ``encode_stream_frame`` / ``decode_stream_frame``).

This module does no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import re
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from protocol import limits
from protocol.constants import (
    CHUNK_HEADER_BYTES,
    HASH_BYTES,
    OFFSET_BYTES,
    STREAM_FLAG_KEYFRAME,
    STREAM_HEADER_BYTES,
    STREAM_MAGIC,
)
from protocol.errors import MalformedMessageError
from protocol.messages import (
    MESSAGE_TYPES,
    Announce,
    BlobStored,
    Cast,
    Control,
    Error,
    LessonManifest,
    ManifestItem,
    Message,
    Need,
    Ok,
    Prepare,
    ShareStart,
    TakeScreenshot,
    UsageBatch,
    UsagePull,
)

_BY_TYPE: dict[str, type[Message]] = {cls.TYPE: cls for cls in MESSAGE_TYPES}
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1
_STRING_LIMITS = {
    "text": limits.MAX_TEXT_ITEM_CHARS,
    "message": limits.MAX_TEXT_ITEM_CHARS,
    "png": limits.MAX_SCREENSHOT_B64_CHARS,
}
"""Fields allowed to be longer than MAX_STRING_CHARS."""

_OMITTED_WHEN_NULL: dict[type, frozenset[str]] = {
    Error: frozenset({"presenter"}),
    Ok: frozenset({"late_ms"}),
    Control: frozenset({"at_ms"}),
}
"""Fields added to a message after others: left out when null, so that every frame
without them reads as before (an ``error`` names a presenter only when ``busy``, an
``ok`` says ``late_ms`` only when an instant came late, a ``control`` has ``at_ms``
only when sent to a group)."""

T = TypeVar("T")


# --------------------------------------------------------------------------- text frames


def encode(msg: Message) -> str:
    """Return the JSON text of ``msg`` for one text frame."""
    obj = _to_json(msg)
    obj["type"] = msg.TYPE
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def decode(raw: str | bytes) -> Message:
    """Parse and validate one text frame.

    Raises:
        MalformedMessageError: the frame is too large, not JSON, not an object, of an
            unknown type, has a missing, unknown or mistyped field, or breaks a limit.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessageError("message is not valid UTF-8") from None
    size = len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))
    if size > limits.MAX_TEXT_FRAME_BYTES:
        raise MalformedMessageError(
            f"message of {size} bytes is over the limit of {limits.MAX_TEXT_FRAME_BYTES}"
        )
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessageError(f"message is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedMessageError("message is not a JSON object")
    kind = obj.pop("type", None)
    if not isinstance(kind, str):
        raise MalformedMessageError("message has no string field 'type'")
    cls = _BY_TYPE.get(kind)
    if cls is None:
        raise MalformedMessageError(f"unknown message type {kind!r}")
    msg = _from_json(cls, obj, kind)
    _check(msg)
    return msg


def request_id(raw: str | bytes) -> int | None:
    """Best-effort ``id`` of a frame that failed to decode, so an error can answer it."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(obj, dict):
        value = obj.get("id")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


# --------------------------------------------------------------------------- binary frames


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes of one blob starting at ``offset_bytes``.

    ``data`` is a view into the received frame (no copy of up to a mebibyte per chunk).
    """

    sha256: str
    offset_bytes: int
    data: bytes | memoryview


def encode_chunk(sha256: str, offset_bytes: int, data: bytes) -> bytes:
    """Return the binary frame carrying ``data`` of blob ``sha256`` at ``offset_bytes``."""
    return bytes.fromhex(sha256) + offset_bytes.to_bytes(OFFSET_BYTES, "big") + data


def chunk_header(sha256: str, offset_bytes: int) -> bytes:
    """Return the 40-byte header of a chunk frame (for senders that avoid a copy)."""
    return bytes.fromhex(sha256) + offset_bytes.to_bytes(OFFSET_BYTES, "big")


def decode_chunk(frame: bytes) -> Chunk:
    """Split a binary frame into its blob, offset and bytes.

    Raises:
        MalformedMessageError: the frame is shorter than its header, carries no bytes,
            or more than ``CHUNK_SIZE_BYTES`` of them.
    """
    if len(frame) <= CHUNK_HEADER_BYTES:
        raise MalformedMessageError(f"binary frame of {len(frame)} bytes is too short for a chunk")
    size = len(frame) - CHUNK_HEADER_BYTES
    if size > limits.CHUNK_SIZE_BYTES:
        raise MalformedMessageError(
            f"chunk of {size} bytes is over the limit of {limits.CHUNK_SIZE_BYTES}"
        )
    sha = frame[:HASH_BYTES].hex()
    offset = int.from_bytes(frame[HASH_BYTES:CHUNK_HEADER_BYTES], "big")
    return Chunk(sha, offset, memoryview(frame)[CHUNK_HEADER_BYTES:])


@dataclass(frozen=True, slots=True)
class StreamFrame:
    """One encoded picture of screen share ``stream_id``.

    ``seq`` counts the sender's pictures from 0 (a gap means one went missing);
    ``keyframe`` says the picture decodes on its own; ``capture_us`` is the sender's
    wall clock (µs since the epoch) when the screen was captured. ``data`` is a view
    into the received frame.
    """

    stream_id: int
    seq: int
    keyframe: bool
    capture_us: int
    data: bytes | memoryview


_U32 = 2**32


def is_stream_frame(frame: bytes) -> bool:
    """Whether binary ``frame`` is a stream frame (else it is a chunk, or garbage)."""
    return frame[: len(STREAM_MAGIC)] == STREAM_MAGIC


def stream_header(stream_id: int, seq: int, *, keyframe: bool, capture_us: int) -> bytes:
    """Return the header of a stream frame (send it followed by the encoded picture).

    ``seq`` wraps at 2**32.
    """
    return (
        STREAM_MAGIC
        + stream_id.to_bytes(4, "big")
        + (seq % _U32).to_bytes(4, "big")
        + (STREAM_FLAG_KEYFRAME if keyframe else 0).to_bytes(1, "big")
        + capture_us.to_bytes(8, "big")
    )


def encode_stream_frame(
    stream_id: int, seq: int, data: bytes, *, keyframe: bool, capture_us: int
) -> bytes:
    """Return the binary frame carrying picture ``seq`` of stream ``stream_id``.

    Raises:
        MalformedMessageError: ``data`` is empty or over ``MAX_STREAM_FRAME_BYTES``
            (the sender must skip such a picture and ask its encoder for a smaller one).
    """
    _check_stream_size(len(data))
    return stream_header(stream_id, seq, keyframe=keyframe, capture_us=capture_us) + data


def decode_stream_frame(frame: bytes) -> StreamFrame:
    """Split a stream frame into its header fields and picture.

    Raises:
        MalformedMessageError: not a stream frame, shorter than its header, no picture,
            a picture over ``MAX_STREAM_FRAME_BYTES``, or unknown flags.
    """
    if not is_stream_frame(frame):
        raise MalformedMessageError("binary frame is not a stream frame")
    _check_stream_size(len(frame) - STREAM_HEADER_BYTES)
    at = len(STREAM_MAGIC)
    stream_id = int.from_bytes(frame[at : at + 4], "big")
    seq = int.from_bytes(frame[at + 4 : at + 8], "big")
    flags = frame[at + 8]
    if flags & ~STREAM_FLAG_KEYFRAME:
        raise MalformedMessageError(f"stream frame has unknown flags {flags:#04x}")
    capture_us = int.from_bytes(frame[at + 9 : at + 17], "big")
    return StreamFrame(
        stream_id,
        seq,
        bool(flags & STREAM_FLAG_KEYFRAME),
        capture_us,
        memoryview(frame)[STREAM_HEADER_BYTES:],
    )


def _check_stream_size(size: int) -> None:
    if size <= 0:
        raise MalformedMessageError("stream frame carries no picture")
    if size > limits.MAX_STREAM_FRAME_BYTES:
        raise MalformedMessageError(
            f"stream frame of {size} bytes is over the limit of {limits.MAX_STREAM_FRAME_BYTES}"
        )


# --------------------------------------------------------------------------- generic parts


_SCALARS = (str, int, float, bool, type(None))


@cache
def _field_names(cls: Any) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


_SCALAR_CLASSES = frozenset(_SCALARS)


@cache
def _field_values(cls: Any) -> typing.Callable[[Any], tuple[Any, ...]]:
    """A function giving the field values of a ``cls`` object, in field order."""
    names = _field_names(cls)
    if len(names) > 1:
        return operator.attrgetter(*names)
    return lambda value: tuple(getattr(value, name) for name in names)


def _to_json(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    cls = value.__class__
    omit = _OMITTED_WHEN_NULL.get(cls, ())
    return {
        name: v if v.__class__ in _SCALAR_CLASSES else _to_json(v)
        for name, v in zip(_field_names(cls), _field_values(cls)(value), strict=True)
        if not (v is None and name in omit)
    }


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return get_type_hints(cls)


Check = typing.Callable[[Any, str, "str | None"], Any]
"""Validates one JSON value and returns it as the field holds it: ``check(value, parent,
name)``, where the value sits at ``parent.name`` (at ``parent`` when ``name`` is None);
the path is only put together for an error message."""


def _where(parent: str, name: str | None) -> str:
    return parent if name is None else f"{parent}.{name}"


@cache
def _plan(cls: Any) -> tuple[frozenset[str], tuple[tuple[str, Check, bool], ...]]:
    """The fields of message class ``cls``: their names, and each field's name, checker
    and whether it may be left out. Built once per class from its type hints."""
    hints = _hints(cls)
    fields = dataclasses.fields(cls)
    plan = tuple(
        (
            f.name,
            _checker(hints[f.name], f.name),
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING,
        )
        for f in fields
    )
    return frozenset(f.name for f in fields), plan


def _from_json(cls: type[T], obj: dict[str, Any], where: str) -> T:
    known, plan = _plan(typing.cast(Any, cls))
    if not known.issuperset(obj):
        extra = set(obj) - known
        raise MalformedMessageError(f"{where}: unknown field {sorted(extra)[0]!r}")
    kwargs: dict[str, Any] = {}
    for name, check, has_default in plan:
        if name in obj:
            kwargs[name] = check(obj[name], where, name)
        elif not has_default:
            raise MalformedMessageError(f"{where}: missing field {name!r}")
    return cls(**kwargs)


def _checker(tp: Any, name: str) -> Check:
    """The checker of a value of type ``tp`` in field ``name`` (see ``Check``)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        nullable = type(None) in args
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) != 1:
            raise AssertionError(f"unsupported union {tp}")  # pragma: no cover
        inner = _checker(non_none[0], name)

        def check_optional(value: Any, parent: str, key: str | None) -> Any:
            if value is None:
                if nullable:
                    return None
                raise MalformedMessageError(f"{_where(parent, key)}: must not be null")
            return inner(value, parent, key)

        return check_optional
    if origin is Literal:
        allowed = get_args(tp)
        choices = ", ".join(map(str, allowed))

        def check_literal(value: Any, parent: str, key: str | None) -> Any:
            if value not in allowed or isinstance(value, bool):
                raise MalformedMessageError(
                    f"{_where(parent, key)}: {value!r} is not one of {choices}"
                )
            return value

        return check_literal
    if origin is list:
        (inner_type,) = get_args(tp)
        element = _checker(inner_type, name)

        def check_list(value: Any, parent: str, key: str | None) -> Any:
            if not isinstance(value, list):
                raise MalformedMessageError(f"{_where(parent, key)}: must be a list")
            where = _where(parent, key)
            return [element(v, f"{where}[{i}]", None) for i, v in enumerate(value)]

        return check_list
    if tp is bool:

        def check_bool(value: Any, parent: str, key: str | None) -> Any:
            if value.__class__ is not bool:
                raise MalformedMessageError(f"{_where(parent, key)}: must be true or false")
            return value

        return check_bool
    if tp is int:

        def check_int(value: Any, parent: str, key: str | None) -> Any:
            if not isinstance(value, int) or isinstance(value, bool):
                raise MalformedMessageError(f"{_where(parent, key)}: must be an integer")
            if not _INT_MIN <= value <= _INT_MAX:
                raise MalformedMessageError(f"{_where(parent, key)}: integer out of range")
            return value

        return check_int
    if tp is str:
        limit = _STRING_LIMITS.get(name, limits.MAX_STRING_CHARS)

        def check_str(value: Any, parent: str, key: str | None) -> Any:
            if not isinstance(value, str):
                raise MalformedMessageError(f"{_where(parent, key)}: must be a string")
            if len(value) > limit:
                raise MalformedMessageError(
                    f"{_where(parent, key)}: longer than {limit} characters"
                )
            return value

        return check_str
    if dataclasses.is_dataclass(tp):

        def check_object(value: Any, parent: str, key: str | None) -> Any:
            if not isinstance(value, dict):
                raise MalformedMessageError(f"{_where(parent, key)}: must be an object")
            return _from_json(tp, value, _where(parent, key))  # type: ignore[arg-type]

        return check_object

    def unsupported(value: Any, parent: str, key: str | None) -> Any:
        raise AssertionError(f"unsupported field type {tp}")  # pragma: no cover

    return unsupported


# --------------------------------------------------------------------------- semantic checks


def _check(msg: Message) -> None:
    match msg:
        case Cast():
            _check_lesson(msg.lesson)
            if not 0 <= msg.start_index < len(msg.lesson.items):
                raise MalformedMessageError(
                    f"cast.start_index {msg.start_index} is outside the lesson's "
                    f"{len(msg.lesson.items)} items"
                )
            if abs(msg.clock_offset_ms) > limits.MAX_CLOCK_OFFSET_MS:
                raise MalformedMessageError(
                    f"cast.clock_offset_ms must be from -{limits.MAX_CLOCK_OFFSET_MS} "
                    f"to {limits.MAX_CLOCK_OFFSET_MS}"
                )
        case Prepare():
            _check_lesson(msg.lesson)
        case Control():
            if msg.action == "goto" and (msg.index is None or msg.index < 0):
                raise MalformedMessageError("control goto needs a non-negative 'index'")
            if msg.action == "seek" and (
                msg.position_ms is None or not 0 <= msg.position_ms <= limits.MAX_DURATION_MS
            ):
                raise MalformedMessageError(
                    f"control seek needs 'position_ms' from 0 to {limits.MAX_DURATION_MS}"
                )
            if msg.action == "volume" and (
                msg.volume is None or not 0 <= msg.volume <= limits.MAX_VOLUME_PERCENT
            ):
                raise MalformedMessageError(
                    f"control volume needs 'volume' from 0 to {limits.MAX_VOLUME_PERCENT}"
                )
        case Announce():
            if not msg.text.strip():
                raise MalformedMessageError("announce.text is empty")
            if msg.duration_s is not None and not 1 <= msg.duration_s <= limits.MAX_ANNOUNCEMENT_S:
                raise MalformedMessageError(
                    f"announce.duration_s must be from 1 to {limits.MAX_ANNOUNCEMENT_S}"
                )
        case ShareStart():
            if not (
                limits.MIN_SHARE_SIDE <= msg.width <= limits.MAX_SHARE_WIDTH
                and limits.MIN_SHARE_SIDE <= msg.height <= limits.MAX_SHARE_HEIGHT
            ):
                raise MalformedMessageError(
                    f"share_start: the picture must be from {limits.MIN_SHARE_SIDE} to "
                    f"{limits.MAX_SHARE_WIDTH}×{limits.MAX_SHARE_HEIGHT} pixels"
                )
            if not 0 <= msg.stream_id < _U32:
                raise MalformedMessageError("share_start.stream_id must be from 0 to 2**32-1")
        case TakeScreenshot():
            if not limits.MIN_SCREENSHOT_WIDTH <= msg.max_width <= limits.MAX_SCREENSHOT_WIDTH:
                raise MalformedMessageError(
                    f"take_screenshot.max_width must be from {limits.MIN_SCREENSHOT_WIDTH} "
                    f"to {limits.MAX_SCREENSHOT_WIDTH}"
                )
        case UsagePull():
            if msg.after_seq < 0 or not 1 <= msg.limit <= limits.MAX_USAGE_BATCH:
                raise MalformedMessageError(
                    f"usage_pull needs after_seq >= 0 and limit from 1 to {limits.MAX_USAGE_BATCH}"
                )
        case Need():
            for i, need in enumerate(msg.blobs):
                _check_blob_name(need.sha256, f"need.blobs[{i}]")
                if not 0 <= need.have_bytes < need.size_bytes <= limits.MAX_BLOB_BYTES:
                    raise MalformedMessageError(
                        f"need.blobs[{i}]: needs 0 <= have_bytes < size_bytes <= "
                        f"{limits.MAX_BLOB_BYTES}"
                    )
        case BlobStored():
            _check_blob_name(msg.sha256, "blob_stored")
            if not 0 < msg.size_bytes <= limits.MAX_BLOB_BYTES:
                raise MalformedMessageError(
                    f"blob_stored: size_bytes must be from 1 to {limits.MAX_BLOB_BYTES}"
                )
        case Error():
            if msg.presenter is not None and msg.code != "busy":
                raise MalformedMessageError("error.presenter comes only with code 'busy'")
        case UsageBatch():
            if len(msg.records) > limits.MAX_USAGE_BATCH:
                raise MalformedMessageError(
                    f"usage_batch has {len(msg.records)} records, over {limits.MAX_USAGE_BATCH}"
                )
        case _:
            pass


def _check_blob_name(sha256: str, where: str) -> None:
    if not _SHA256_HEX.fullmatch(sha256):
        raise MalformedMessageError(f"{where}: sha256 must be 64 lowercase hex digits")


def _check_lesson(lesson: LessonManifest) -> None:
    n = len(lesson.items)
    if not 1 <= n <= limits.MAX_ITEMS_PER_LESSON:
        raise MalformedMessageError(
            f"lesson has {n} items; it needs from 1 to {limits.MAX_ITEMS_PER_LESSON}"
        )
    sizes: dict[str, int] = {}
    for i, item in enumerate(lesson.items):
        _check_item(item, f"lesson.items[{i}]")
        if (
            item.sha256 is not None
            and sizes.setdefault(item.sha256, item.size_bytes) != item.size_bytes
        ):
            raise MalformedMessageError(
                f"lesson.items[{i}]: blob {item.sha256} announced with two sizes"
            )
    total = sum(sizes.values())
    if total > limits.MAX_LESSON_BYTES:
        raise MalformedMessageError(
            f"lesson media total {total} bytes, over the limit of {limits.MAX_LESSON_BYTES}"
        )


def _check_item(item: ManifestItem, where: str) -> None:
    if item.kind == "screen":
        raise MalformedMessageError(f"{where}: a screen is shared with share_start, not cast")
    needs_blob = item.kind in ("image", "pdf", "video")
    may_blob = needs_blob or (item.kind == "web" and item.url is None)
    if may_blob:
        if item.sha256 is None or not _SHA256_HEX.fullmatch(item.sha256):
            raise MalformedMessageError(f"{where}: {item.kind} needs a lowercase hex 'sha256'")
        if not 0 < item.size_bytes <= limits.MAX_BLOB_BYTES:
            raise MalformedMessageError(
                f"{where}: size_bytes must be from 1 to {limits.MAX_BLOB_BYTES}"
            )
    elif item.sha256 is not None or item.size_bytes:
        raise MalformedMessageError(f"{where}: a {item.kind} item carries no blob")
    if item.kind == "pdf":
        if item.page is None or item.page < 0:
            raise MalformedMessageError(f"{where}: a pdf item needs a non-negative 'page'")
    elif item.page is not None:
        raise MalformedMessageError(f"{where}: only a pdf item has a 'page'")
    if item.kind == "web":
        if item.url is not None and not item.url.startswith(("http://", "https://")):
            raise MalformedMessageError(f"{where}: a web item's 'url' must be http(s)")
    elif item.url is not None:
        raise MalformedMessageError(f"{where}: only a web item has a 'url'")
    if item.kind == "text":
        if item.text is None:
            raise MalformedMessageError(f"{where}: a text item needs 'text'")
    elif item.text is not None:
        raise MalformedMessageError(f"{where}: only a text item has 'text'")
    if item.duration_ms is not None and not 0 < item.duration_ms <= limits.MAX_DURATION_MS:
        raise MalformedMessageError(
            f"{where}: duration_ms must be from 1 to {limits.MAX_DURATION_MS}"
        )
