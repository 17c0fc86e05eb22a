"""Protocol v1: messages, codec, limits and errors (pure, full branch coverage of protocol/)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protocol import errors
from protocol.codec import (
    Chunk,
    chunk_header,
    decode,
    decode_chunk,
    encode,
    encode_chunk,
    request_id,
)
from protocol.constants import CHUNK_HEADER_BYTES, PROTOCOL_VERSION
from protocol.errors import ClassCastError, MalformedMessageError
from protocol.limits import (
    CHUNK_SIZE_BYTES,
    MAX_BLOB_BYTES,
    MAX_DURATION_MS,
    MAX_ITEMS_PER_LESSON,
    MAX_LESSON_BYTES,
    MAX_STRING_CHARS,
    MAX_TEXT_FRAME_BYTES,
    MAX_TEXT_ITEM_CHARS,
    MAX_USAGE_BATCH,
    MAX_VOLUME_PERCENT,
)
from protocol.messages import (
    MESSAGE_TYPES,
    Announce,
    BlobNeed,
    BlobStored,
    Cast,
    ClearAnnouncement,
    Control,
    Error,
    GetStatus,
    Hello,
    KeyframeRequest,
    LessonManifest,
    ManifestItem,
    Message,
    Need,
    Ok,
    PairConfirm,
    Paired,
    PairOffer,
    PairStart,
    Prepare,
    Screenshot,
    ShareStart,
    ShareStop,
    Status,
    StatusSnapshot,
    TakeScreenshot,
    TimePing,
    TimePong,
    Unpair,
    UsageBatch,
    UsagePull,
    UsageRecord,
    Welcome,
)

ROOT = Path(__file__).resolve().parent.parent
SHA_A = "a" * 64
SHA_B = "0123456789abcdef" * 4
SHA_C = "c" * 64
SHA_D = "d" * 64
SHA_E = "e" * 64


# --------------------------------------------------------------------------- builders


def lesson(*items: ManifestItem, lesson_id: str = "lesson-1") -> LessonManifest:
    return LessonManifest(lesson_id=lesson_id, title="Фотосинтез", items=list(items))


def text_item(text: str = "E = mc²", **kw: Any) -> ManifestItem:
    return ManifestItem("text", "Уравнение", text=text, **kw)


def image_item(sha: str = SHA_A, size: int = 1234, **kw: Any) -> ManifestItem:
    return ManifestItem("image", "Лист", sha256=sha, size_bytes=size, **kw)


ALL_KINDS = [
    image_item(duration_ms=5_000, source_url="https://example.ru/leaf"),
    ManifestItem("pdf", "Схема, стр. 1", sha256=SHA_B, size_bytes=99_999, page=0),
    ManifestItem("pdf", "Схема, стр. 2", sha256=SHA_B, size_bytes=99_999, page=1),
    ManifestItem("video", "Опыт", sha256=SHA_C, size_bytes=50_000_000),
    ManifestItem("web", "Проверка (url)", url="https://example.ru/quiz"),
    ManifestItem("web", "Проверка (файл)", sha256=SHA_D, size_bytes=2_048),
    text_item(duration_ms=MAX_DURATION_MS),
]
FULL_LESSON = LessonManifest(
    lesson_id="bio-7-photosynthesis",
    title="Фотосинтез",
    items=ALL_KINDS,
    subject="Биология",
    source_url="https://example.ru/lessons/1",
)


def snapshot(**kw: Any) -> StatusSnapshot:
    base: dict[str, Any] = {
        "kiosk_id": "kiosk-204",
        "room": "204",
        "school": "Школа №5",
        "state": "playing",
        "blanked": False,
        "lesson_id": "bio-7-photosynthesis",
        "lesson_title": "Фотосинтез",
        "index": 3,
        "count": 7,
        "item_kind": "video",
        "item_title": "Опыт",
        "position_ms": 12_345,
        "presenter": "Анна Петровна",
        "version": "1.0.0",
    }
    base.update(kw)
    return StatusSnapshot(**base)


IDLE_SNAPSHOT = snapshot(
    state="idle",
    lesson_id=None,
    lesson_title=None,
    index=0,
    count=0,
    item_kind=None,
    item_title=None,
    position_ms=0,
    presenter=None,
)


def usage_record(seq: int = 1, **kw: Any) -> UsageRecord:
    base: dict[str, Any] = {
        "uuid": f"0000-{seq}",
        "seq": seq,
        "kiosk_id": "kiosk-204",
        "room": "204",
        "lesson_id": "bio-7",
        "lesson_title": "Фотосинтез",
        "item_index": 0,
        "kind": "image",
        "content_hash": SHA_A,
        "content_title": "Лист",
        "content_source": None,
        "teacher_id": "t1",
        "teacher_name": "Анна Петровна",
        "started_at": "2024-09-02T08:00:00Z",
        "ended_at": "2024-09-02T08:05:00Z",
        "duration_ms": 300_000,
        "end_reason": "next",
    }
    base.update(kw)
    return UsageRecord(**base)


def obj_of(msg: Message) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(encode(msg))
    return result


def cast(*items: ManifestItem, start_index: int = 0) -> str:
    return encode(Cast(id=1, lesson=lesson(*items), start_index=start_index))


def malformed(raw: str | bytes, match: str) -> MalformedMessageError:
    with pytest.raises(MalformedMessageError, match=match) as info:
        decode(raw)
    assert info.value.code == "malformed"
    return info.value


# --------------------------------------------------------------------------- round trip


SAMPLES: list[Message] = [
    Hello(id=1, protocol_version=PROTOCOL_VERSION, controller_id="c-1", controller_name="Ноутбук"),
    Hello(id=2, protocol_version=1, controller_id="c", controller_name="n", token="s3cret"),
    PairStart(id=3, role="teacher", spake="QUJD"),
    PairStart(id=4, role="admin", spake="QUJD"),
    PairConfirm(id=5, confirm="bWFj"),
    Unpair(id=6),
    TimePing(id=7, controller_ms=1_764_300_000_000),
    TakeScreenshot(id=8, max_width=320),
    Announce(id=9, text="Урок окончен", level="info", duration_s=60),
    Announce(id=10, text="Эвакуация", level="alert"),
    ClearAnnouncement(id=11),
    Screenshot(re=8, png="iVBORw0KGgo="),
    TimePong(re=7, controller_ms=1_764_300_000_000, kiosk_ms=1_764_300_000_250),
    PairOffer(re=3, spake="QkJC"),
    Paired(re=5, confirm="bWFj", token="ab" * 32, role="teacher"),
    Cast(id=3, lesson=FULL_LESSON),
    Cast(id=4, lesson=FULL_LESSON, start_index=6, start_at_ms=1_725_264_000_000),
    Prepare(id=5, lesson=FULL_LESSON),
    Control(id=6, action="next"),
    Control(id=7, action="goto", index=2),
    Control(id=8, action="seek", position_ms=30_000),
    GetStatus(id=9),
    UsagePull(id=10, after_seq=0, limit=MAX_USAGE_BATCH),
    Welcome(
        re=1,
        protocol_version=PROTOCOL_VERSION,
        kiosk_id="kiosk-204",
        room="204",
        school="Школа №5",
        status=IDLE_SNAPSHOT,
    ),
    Need(re=3),
    Need(
        re=3,
        blobs=[
            BlobNeed(sha256=SHA_A, have_bytes=0, size_bytes=1234),
            BlobNeed(sha256=SHA_C, have_bytes=1_000_000, size_bytes=50_000_000),
        ],
    ),
    BlobStored(sha256=SHA_A, size_bytes=1234),
    Status(status=snapshot()),
    Status(status=snapshot(state="paused", blanked=True), re=9),
    UsageBatch(re=10, kiosk_id="kiosk-204", records=[], last_seq=0, more=False),
    UsageBatch(
        re=10,
        kiosk_id="kiosk-204",
        records=[
            usage_record(1),
            usage_record(2, ended_at=None, end_reason=None, content_hash=None, kind="text"),
            usage_record(3, content_source="https://x.ru", clock_offset_ms=-250),
        ],
        last_seq=3,
        more=True,
    ),
    ShareStart(id=11, stream_id=7, width=1920, height=1080, title="Экран"),
    ShareStop(id=12, stream_id=7),
    KeyframeRequest(stream_id=7),
    Ok(re=6),
    Error(re=None, code="malformed", message="сообщение не JSON"),
    Error(re=7, code="bad_index", message="item 9 does not exist"),
]


def test_samples_cover_every_message_type() -> None:
    assert {type(m) for m in SAMPLES} == set(MESSAGE_TYPES)
    assert len({cls.TYPE for cls in MESSAGE_TYPES}) == len(MESSAGE_TYPES)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).TYPE)
def test_round_trip(msg: Message) -> None:
    text = encode(msg)
    assert json.loads(text)["type"] == type(msg).TYPE
    assert decode(text) == msg
    assert decode(text.encode()) == msg


def test_encode_is_compact_utf8_json() -> None:
    text = encode(Ok(re=1))
    assert text == '{"re":1,"type":"ok"}'
    assert "Фотосинтез" in encode(Cast(id=1, lesson=FULL_LESSON))


def test_defaults_may_be_omitted() -> None:
    assert decode('{"type":"need","re":1}') == Need(re=1, blobs=[])
    assert decode(
        '{"type":"status","status":' + json.dumps(obj_of(Status(snapshot()))["status"]) + "}"
    ) == Status(snapshot())
    assert decode('{"type":"control","id":1,"action":"stop"}') == Control(id=1, action="stop")
    assert decode(
        json.dumps(
            {
                "type": "cast",
                "id": 1,
                "lesson": {
                    "lesson_id": "x",
                    "title": "t",
                    "items": [{"kind": "text", "title": "t", "text": "x"}],
                },
            }
        )
    ) == Cast(id=1, lesson=LessonManifest("x", "t", [ManifestItem("text", "t", text="x")]))


def test_optional_fields_accept_null() -> None:
    raw = obj_of(Hello(id=1, protocol_version=1, controller_id="c", controller_name="n"))
    assert raw["token"] is None
    assert decode(json.dumps(raw)) == Hello(1, 1, "c", "n", None)


# --------------------------------------------------------------------------- garbage


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("ok", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        ("[]", "not a JSON object"),
        ("1", "not a JSON object"),
        ('"ok"', "not a JSON object"),
        ("null", "not a JSON object"),
        ("{}", "no string field 'type'"),
        ('{"type":5,"re":1}', "no string field 'type'"),
        ('{"type":null}', "no string field 'type'"),
        ('{"type":"bogus","id":1}', "unknown message type 'bogus'"),
        ('{"type":"OK","re":1}', "unknown message type 'OK'"),
    ],
)
def test_garbage_frames(raw: str | bytes, match: str) -> None:
    malformed(raw, match)


def test_missing_and_unknown_fields() -> None:
    malformed('{"type":"ok"}', r"^ok: missing field 're'$")
    malformed('{"type":"ok","re":1,"extra":2}', r"^ok: unknown field 'extra'$")
    malformed('{"type":"hello","id":1}', r"^hello: missing field 'protocol_version'$")
    obj = obj_of(Cast(id=1, lesson=lesson(text_item())))
    del obj["lesson"]["items"][0]["title"]
    malformed(json.dumps(obj), r"^cast\.lesson\.items\[0\]: missing field 'title'$")
    obj = obj_of(Cast(id=1, lesson=lesson(text_item())))
    obj["lesson"]["items"][0]["colour"] = "red"
    malformed(json.dumps(obj), r"^cast\.lesson\.items\[0\]: unknown field 'colour'$")
    obj = obj_of(Cast(id=1, lesson=lesson(text_item())))
    obj["lesson"]["type"] = "lesson"
    malformed(json.dumps(obj), r"^cast\.lesson: unknown field 'type'$")


def mutate(msg: Message, path: str, value: Any) -> str:
    """Encode ``msg`` with the field at dotted ``path`` (list indexes as numbers) replaced."""
    obj = obj_of(msg)
    *parents, last = path.split(".")
    target: Any = obj
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return json.dumps(obj, ensure_ascii=False)


CAST = Cast(id=1, lesson=lesson(image_item(duration_ms=1000)))
BATCH = UsageBatch(re=1, kiosk_id="k", records=[usage_record()], last_seq=1, more=False)
NEED = Need(re=1, blobs=[BlobNeed(SHA_A, 0, 10)])


@pytest.mark.parametrize(
    ("msg", "path", "value", "match"),
    [
        (Ok(re=1), "re", "1", r"^ok\.re: must be an integer$"),
        (Ok(re=1), "re", True, r"^ok\.re: must be an integer$"),
        (Ok(re=1), "re", False, r"^ok\.re: must be an integer$"),
        (Ok(re=1), "re", 1.0, r"^ok\.re: must be an integer$"),
        (Ok(re=1), "re", 1.5, r"^ok\.re: must be an integer$"),
        (Ok(re=1), "re", [1], r"^ok\.re: must be an integer$"),
        (Ok(re=1), "re", None, r"^ok\.re: must be an integer$"),
        (Ok(re=1), "re", 2**63, r"^ok\.re: integer out of range$"),
        (Ok(re=1), "re", -(2**63) - 1, r"^ok\.re: integer out of range$"),
        (CAST, "lesson", [], r"^cast\.lesson: must be an object$"),
        (CAST, "lesson", "x", r"^cast\.lesson: must be an object$"),
        (CAST, "lesson", None, r"^cast\.lesson: must be an object$"),
        (CAST, "lesson.items", {}, r"^cast\.lesson\.items: must be a list$"),
        (CAST, "lesson.items.0", "x", r"^cast\.lesson\.items\[0\]: must be an object$"),
        (CAST, "lesson.items.0.size_bytes", "1", r"items\[0\]\.size_bytes: must be an integer"),
        (CAST, "lesson.items.0.duration_ms", 1.5, r"items\[0\]\.duration_ms: must be an integer"),
        (CAST, "lesson.items.0.title", None, r"items\[0\]\.title: must be a string$"),
        (CAST, "lesson.items.0.title", 7, r"items\[0\]\.title: must be a string$"),
        (CAST, "lesson.items.0.kind", "audio", r"items\[0\]\.kind: 'audio' is not one of image,"),
        (CAST, "lesson.items.0.kind", None, r"items\[0\]\.kind: None is not one of"),
        (CAST, "lesson.items.0.kind", True, r"items\[0\]\.kind: True is not one of"),
        (CAST, "lesson.items.0.kind", ["image"], r"items\[0\]\.kind: \['image'\] is not one of"),
        (Control(1, "next"), "action", "jump", r"^control\.action: 'jump' is not one of next,"),
        (Control(1, "next"), "action", "NEXT", r"^control\.action: 'NEXT' is not one of"),
        (Control(1, "next"), "index", "1", r"^control\.index: must be an integer$"),
        (Hello(1, 1, "c", "n"), "controller_id", 5, r"^hello\.controller_id: must be a string$"),
        (Hello(1, 1, "c", "n"), "token", 5, r"^hello\.token: must be a string$"),
        (Hello(1, 1, "c", "n"), "protocol_version", "1", r"protocol_version: must be an integer"),
        (BATCH, "more", 1, r"^usage_batch\.more: must be true or false$"),
        (BATCH, "more", "true", r"^usage_batch\.more: must be true or false$"),
        (BATCH, "more", None, r"^usage_batch\.more: must be true or false$"),
        (BATCH, "records", None, r"^usage_batch\.records: must be a list$"),
        (BATCH, "records.0.end_reason", "crash", r"records\[0\]\.end_reason: 'crash' is not one"),
        (BATCH, "records.0.seq", True, r"records\[0\]\.seq: must be an integer$"),
        (NEED, "blobs.0.have_bytes", None, r"^need\.blobs\[0\]\.have_bytes: must be an integer$"),
        (Status(snapshot()), "status.state", "blanked", r"status\.state: 'blanked' is not one"),
        (Status(snapshot()), "status.blanked", 0, r"status\.blanked: must be true or false$"),
        (Status(snapshot()), "status.item_kind", "gif", r"status\.item_kind: 'gif' is not one"),
        (Status(snapshot()), "re", "1", r"^status\.re: must be an integer$"),
        (Error(1, "c", "m"), "message", 1, r"^error\.message: must be a string$"),
    ],
)
def test_wrong_types(msg: Message, path: str, value: Any, match: str) -> None:
    malformed(mutate(msg, path, value), match)


def test_integer_range_edges_accepted() -> None:
    assert decode(mutate(Ok(re=1), "re", 2**63 - 1)) == Ok(re=2**63 - 1)
    assert decode(mutate(Ok(re=1), "re", -(2**63))) == Ok(re=-(2**63))


def test_huge_json_numbers_are_malformed() -> None:
    malformed('{"type":"ok","re":' + "9" * 5000 + "}", "not valid JSON|out of range")
    malformed('{"type":"ok","re":1e400}', r"^ok\.re: must be an integer$")
    malformed('{"type":"ok","re":NaN}', r"^ok\.re: must be an integer$")


def test_optional_literal_accepts_null() -> None:
    msg = Status(status=IDLE_SNAPSHOT)
    assert decode(mutate(msg, "status.item_kind", None)) == msg


# --------------------------------------------------------------------------- size limits


def test_string_limit() -> None:
    at = Hello(1, 1, "c", "n" * MAX_STRING_CHARS)
    assert decode(encode(at)) == at
    malformed(
        encode(Hello(1, 1, "c", "n" * (MAX_STRING_CHARS + 1))),
        rf"^hello\.controller_name: longer than {MAX_STRING_CHARS} characters$",
    )
    # Characters, not bytes: a title of MAX_STRING_CHARS Cyrillic letters is fine.
    cyr = Cast(1, lesson(text_item(), lesson_id="я" * MAX_STRING_CHARS))
    assert decode(encode(cyr)) == cyr
    malformed(
        cast(ManifestItem("web", "w", url="https://x.ru/" + "a" * MAX_STRING_CHARS)),
        rf"items\[0\]\.url: longer than {MAX_STRING_CHARS} characters$",
    )
    malformed(
        encode(Error(1, "c" * (MAX_STRING_CHARS + 1), "m")),
        rf"^error\.code: longer than {MAX_STRING_CHARS}",
    )


def test_text_item_limit() -> None:
    at = Cast(1, lesson(text_item("ж" * MAX_TEXT_ITEM_CHARS)))
    assert decode(encode(at)) == at
    malformed(
        cast(text_item("ж" * (MAX_TEXT_ITEM_CHARS + 1))),
        rf"^cast\.lesson\.items\[0\]\.text: longer than {MAX_TEXT_ITEM_CHARS} characters$",
    )


def test_error_message_limit() -> None:
    at = Error(None, "internal", "m" * MAX_TEXT_ITEM_CHARS)
    assert decode(encode(at)) == at
    malformed(
        encode(Error(None, "internal", "m" * (MAX_TEXT_ITEM_CHARS + 1))),
        rf"^error\.message: longer than {MAX_TEXT_ITEM_CHARS}",
    )


def padded(text: str, total: int) -> str:
    """``text`` (a JSON object) with whitespace before its closing brace, ``total`` chars long."""
    assert text.endswith("}")
    return text[:-1] + " " * (total - len(text)) + "}"


def test_frame_limit() -> None:
    at = padded(encode(Ok(re=1)), MAX_TEXT_FRAME_BYTES)
    assert len(at) == MAX_TEXT_FRAME_BYTES
    assert decode(at) == Ok(re=1)
    assert decode(at.encode()) == Ok(re=1)
    over = padded(encode(Ok(re=1)), MAX_TEXT_FRAME_BYTES + 1)
    err = malformed(over, f"over the limit of {MAX_TEXT_FRAME_BYTES}")
    assert str(MAX_TEXT_FRAME_BYTES + 1) in str(err)
    malformed(over.encode(), f"over the limit of {MAX_TEXT_FRAME_BYTES}")


def test_frame_limit_counts_utf8_bytes_of_str_frames() -> None:
    # A str frame is measured by its UTF-8 size, as on the wire: MAX_TEXT_FRAME_BYTES
    # characters of which 20 000 are two-byte Cyrillic letters are over the byte limit.
    frame = padded(encode(Error(None, "internal", "я" * MAX_TEXT_ITEM_CHARS)), MAX_TEXT_FRAME_BYTES)
    assert len(frame) == MAX_TEXT_FRAME_BYTES
    assert len(frame.encode()) > MAX_TEXT_FRAME_BYTES
    malformed(frame.encode(), f"over the limit of {MAX_TEXT_FRAME_BYTES}")
    malformed(frame, f"over the limit of {MAX_TEXT_FRAME_BYTES}")


# --------------------------------------------------------------------------- item checks


@pytest.mark.parametrize(
    "item",
    [
        image_item(),
        image_item(size=1),
        image_item(size=MAX_BLOB_BYTES),
        image_item(sha=SHA_B),
        ManifestItem("pdf", "p", sha256=SHA_A, size_bytes=10, page=0),
        ManifestItem("pdf", "p", sha256=SHA_A, size_bytes=10, page=499),
        ManifestItem("video", "v", sha256=SHA_A, size_bytes=10),
        ManifestItem("video", "v", sha256=SHA_A, size_bytes=10, duration_ms=60_000),
        ManifestItem("web", "w", url="http://school.local/quiz"),
        ManifestItem("web", "w", url="https://example.ru"),
        ManifestItem("web", "w", sha256=SHA_A, size_bytes=10),
        text_item(),
        text_item(""),
        text_item(duration_ms=1),
        text_item(duration_ms=MAX_DURATION_MS),
    ],
    ids=repr,
)
def test_valid_items(item: ManifestItem) -> None:
    msg = Cast(1, lesson(item))
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize(
    ("item", "match"),
    [
        (ManifestItem("image", "i", size_bytes=1), "image needs a lowercase hex 'sha256'"),
        (image_item(sha=SHA_A.upper()), "image needs a lowercase hex 'sha256'"),
        (image_item(sha=SHA_A[:-1]), "image needs a lowercase hex 'sha256'"),
        (image_item(sha=SHA_A + "a"), "image needs a lowercase hex 'sha256'"),
        (image_item(sha="g" * 64), "image needs a lowercase hex 'sha256'"),
        (image_item(sha=SHA_A + "\n"), "image needs a lowercase hex 'sha256'"),
        (ManifestItem("video", "v", size_bytes=1), "video needs a lowercase hex 'sha256'"),
        (ManifestItem("pdf", "p", size_bytes=1, page=0), "pdf needs a lowercase hex 'sha256'"),
        (image_item(size=0), f"size_bytes must be from 1 to {MAX_BLOB_BYTES}"),
        (image_item(size=-1), f"size_bytes must be from 1 to {MAX_BLOB_BYTES}"),
        (image_item(size=MAX_BLOB_BYTES + 1), f"size_bytes must be from 1 to {MAX_BLOB_BYTES}"),
        (ManifestItem("pdf", "p", sha256=SHA_A, size_bytes=1), "pdf item needs a non-negative"),
        (
            ManifestItem("pdf", "p", sha256=SHA_A, size_bytes=1, page=-1),
            "pdf item needs a non-negative 'page'",
        ),
        (image_item(page=0), "only a pdf item has a 'page'"),
        (text_item(page=1), "only a pdf item has a 'page'"),
        (ManifestItem("web", "w", url="ftp://x.ru"), r"web item's 'url' must be http\(s\)"),
        (ManifestItem("web", "w", url="javascript:alert(1)"), r"'url' must be http\(s\)"),
        (ManifestItem("web", "w", url="HTTPS://x.ru"), r"'url' must be http\(s\)"),
        (ManifestItem("web", "w", url="/quiz.html"), r"'url' must be http\(s\)"),
        (image_item(url="https://x.ru"), "only a web item has a 'url'"),
        (text_item(url="https://x.ru"), "only a web item has a 'url'"),
        # web with both a url and a blob: the url wins and the blob is refused.
        (
            ManifestItem("web", "w", url="https://x.ru", sha256=SHA_A, size_bytes=10),
            "a web item carries no blob",
        ),
        (ManifestItem("web", "w", url="https://x.ru", sha256=SHA_A), "a web item carries no blob"),
        (ManifestItem("web", "w", url="https://x.ru", size_bytes=10), "a web item carries no blob"),
        # web with neither: it is taken as a blob item, whose sha256 is missing.
        (ManifestItem("web", "w"), "web needs a lowercase hex 'sha256'"),
        (ManifestItem("web", "w", sha256=SHA_A), "size_bytes must be from 1"),
        (ManifestItem("text", "t"), "a text item needs 'text'"),
        (image_item(text="x"), "only a text item has 'text'"),
        (ManifestItem("web", "w", url="https://x.ru", text="x"), "only a text item has 'text'"),
        (text_item(sha256=SHA_A, size_bytes=1), "a text item carries no blob"),
        (text_item(size_bytes=-5), "a text item carries no blob"),
        (text_item(duration_ms=0), f"duration_ms must be from 1 to {MAX_DURATION_MS}"),
        (text_item(duration_ms=-1000), f"duration_ms must be from 1 to {MAX_DURATION_MS}"),
        (
            text_item(duration_ms=MAX_DURATION_MS + 1),
            f"duration_ms must be from 1 to {MAX_DURATION_MS}",
        ),
    ],
    ids=lambda v: repr(v)[:80],
)
def test_invalid_items(item: ManifestItem, match: str) -> None:
    err = malformed(cast(text_item(), item), match)
    assert str(err).startswith("lesson.items[1]: ")


# --------------------------------------------------------------------------- lesson checks


def test_item_count_limit() -> None:
    malformed(cast(), f"^lesson has 0 items; it needs from 1 to {MAX_ITEMS_PER_LESSON}$")
    full = [text_item("x")] * MAX_ITEMS_PER_LESSON
    msg = Cast(1, lesson(*full), start_index=MAX_ITEMS_PER_LESSON - 1)
    assert decode(encode(msg)) == msg
    malformed(
        cast(*full, text_item("x")),
        f"^lesson has {MAX_ITEMS_PER_LESSON + 1} items; it needs from 1 to {MAX_ITEMS_PER_LESSON}$",
    )


@pytest.mark.parametrize("start_index", [-1, 2, 3, 2**63 - 1])
def test_start_index_out_of_range(start_index: int) -> None:
    malformed(
        cast(text_item(), text_item(), start_index=start_index),
        f"^cast.start_index {start_index} is outside the lesson's 2 items$",
    )


def test_start_index_in_range() -> None:
    for i in (0, 1):
        msg = Cast(1, lesson(text_item(), text_item()), start_index=i)
        assert decode(encode(msg)) == msg


def test_same_blob_twice() -> None:
    pages = [
        ManifestItem("pdf", f"p{n}", sha256=SHA_A, size_bytes=MAX_BLOB_BYTES, page=n)
        for n in range(5)
    ]
    msg = Cast(1, lesson(*pages))  # one blob, counted once towards the lesson total
    assert decode(encode(msg)) == msg
    malformed(
        cast(image_item(SHA_A, 10), text_item(), image_item(SHA_A, 11)),
        f"^lesson.items\\[2\\]: blob {SHA_A} announced with two sizes$",
    )


def test_lesson_total_limit() -> None:
    quarter = MAX_LESSON_BYTES // 4
    assert quarter == MAX_BLOB_BYTES
    four = [image_item(sha, quarter) for sha in (SHA_A, SHA_B, SHA_C, SHA_D)]
    at = Cast(1, lesson(*four, text_item()))
    assert decode(encode(at)) == at
    malformed(
        cast(*four, image_item(SHA_E, 1)),
        f"^lesson media total {MAX_LESSON_BYTES + 1} bytes, over the limit of {MAX_LESSON_BYTES}$",
    )


def test_prepare_checks_its_lesson() -> None:
    ok = Prepare(7, FULL_LESSON)
    assert decode(encode(ok)) == ok
    malformed(encode(Prepare(7, lesson())), "^lesson has 0 items")
    malformed(encode(Prepare(7, lesson(image_item(size=0)))), r"^lesson.items\[0\]: size_bytes")
    malformed(
        encode(Prepare(7, lesson(image_item(SHA_A, 1), image_item(SHA_A, 2)))),
        "announced with two sizes",
    )


# --------------------------------------------------------------------------- control, usage


@pytest.mark.parametrize(
    "msg",
    [
        Control(1, "goto", index=0),
        Control(1, "goto", index=2**63 - 1),  # the player, not the codec, knows the count
        Control(1, "seek", position_ms=0),
        Control(1, "seek", position_ms=MAX_DURATION_MS),
        Control(1, "volume", volume=0),
        Control(1, "volume", volume=MAX_VOLUME_PERCENT),
        Control(1, "next", index=3, position_ms=5),
        *(
            Control(1, action)
            for action in ("next", "prev", "pause", "play", "blank", "unblank", "stop")
        ),
    ],
    ids=repr,
)
def test_valid_controls(msg: Control) -> None:
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (Control(1, "goto"), "^control goto needs a non-negative 'index'$"),
        (Control(1, "goto", index=-1), "^control goto needs a non-negative 'index'$"),
        (Control(1, "goto", position_ms=1), "^control goto needs"),
        (Control(1, "seek"), f"^control seek needs 'position_ms' from 0 to {MAX_DURATION_MS}$"),
        (Control(1, "seek", position_ms=-1), "^control seek needs 'position_ms'"),
        (Control(1, "seek", position_ms=MAX_DURATION_MS + 1), "^control seek needs 'position_ms'"),
        (Control(1, "seek", index=1), "^control seek needs 'position_ms'"),
        (Control(1, "volume"), f"^control volume needs 'volume' from 0 to {MAX_VOLUME_PERCENT}$"),
        (Control(1, "volume", volume=-1), "^control volume needs 'volume'"),
        (Control(1, "volume", volume=MAX_VOLUME_PERCENT + 1), "^control volume needs 'volume'"),
        (Control(1, "volume", position_ms=50), "^control volume needs 'volume'"),
    ],
    ids=repr,
)
def test_invalid_controls(msg: Control, match: str) -> None:
    malformed(encode(msg), match)


def test_usage_pull_limits() -> None:
    for after_seq, limit in [(0, 1), (0, MAX_USAGE_BATCH), (2**63 - 1, 500)]:
        msg = UsagePull(1, after_seq, limit)
        assert decode(encode(msg)) == msg
    for after_seq, limit in [(-1, 10), (0, 0), (0, -1), (0, MAX_USAGE_BATCH + 1)]:
        malformed(
            encode(UsagePull(1, after_seq, limit)),
            f"^usage_pull needs after_seq >= 0 and limit from 1 to {MAX_USAGE_BATCH}$",
        )


def test_usage_batch_limit() -> None:
    records = [usage_record(n) for n in range(1, MAX_USAGE_BATCH + 2)]
    at = UsageBatch(1, "k", records[:MAX_USAGE_BATCH], MAX_USAGE_BATCH, True)
    assert decode(encode(at)) == at
    over = encode(UsageBatch(1, "k", records, MAX_USAGE_BATCH + 1, False))
    assert len(over.encode()) <= MAX_TEXT_FRAME_BYTES
    malformed(
        over,
        f"^usage_batch has {MAX_USAGE_BATCH + 1} records, over {MAX_USAGE_BATCH}$",
    )


# --------------------------------------------------------------------------- request_id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type":"cast","id":42}', 42),
        (b'{"type":"cast","id":42}', 42),
        ('{"id":0,"lesson":[]}', 0),
        ('{"id":-3}', -3),
        ('{"type":"bogus","id":7,"x":{}}', 7),
        ('{"type":"ok","re":5}', None),
        ('{"id":true}', None),
        ('{"id":false}', None),
        ('{"id":"42"}', None),
        ('{"id":4.0}', None),
        ('{"id":null}', None),
        ("[42]", None),
        ("42", None),
        ("{", None),
        ("", None),
        (b"\xff", None),
    ],
)
def test_request_id(raw: str | bytes, expected: int | None) -> None:
    assert request_id(raw) == expected


# --------------------------------------------------------------------------- chunk frames


def test_chunk_round_trip() -> None:
    frame = encode_chunk(SHA_B, 1_048_576, b"payload")
    assert len(frame) == CHUNK_HEADER_BYTES + 7
    assert frame[:32] == bytes.fromhex(SHA_B)
    assert frame[32:40] == (1_048_576).to_bytes(8, "big")
    assert decode_chunk(frame) == Chunk(SHA_B, 1_048_576, b"payload")


def test_chunk_header_matches_frame() -> None:
    header = chunk_header(SHA_A, 2**64 - 1)
    assert len(header) == CHUNK_HEADER_BYTES
    assert header == encode_chunk(SHA_A, 2**64 - 1, b"x")[:CHUNK_HEADER_BYTES]
    assert decode_chunk(header + b"xyz") == Chunk(SHA_A, 2**64 - 1, b"xyz")
    assert decode_chunk(chunk_header(SHA_B, 0) + b"\0") == Chunk(SHA_B, 0, b"\0")


@pytest.mark.parametrize("size", [0, 1, 32, CHUNK_HEADER_BYTES - 1])
def test_chunk_too_short(size: int) -> None:
    with pytest.raises(MalformedMessageError, match=f"binary frame of {size} bytes is too short"):
        decode_chunk(b"\1" * size)


def test_chunk_empty_payload() -> None:
    with pytest.raises(MalformedMessageError, match="too short for a chunk"):
        decode_chunk(chunk_header(SHA_A, 0))


def test_chunk_size_limit() -> None:
    data = bytes(CHUNK_SIZE_BYTES)
    chunk = decode_chunk(encode_chunk(SHA_A, 0, data))
    assert chunk == Chunk(SHA_A, 0, data)
    with pytest.raises(
        MalformedMessageError,
        match=f"^chunk of {CHUNK_SIZE_BYTES + 1} bytes is over the limit of {CHUNK_SIZE_BYTES}$",
    ):
        decode_chunk(encode_chunk(SHA_A, 0, data + b"!"))


# --------------------------------------------------------------------------- errors


def test_error_codes_and_str() -> None:
    err = ClassCastError("plain")
    assert (err.code, str(err), err.message) == ("internal", "plain", "plain")
    assert errors.UnexpectedMessageError("x", code="no_lesson").code == "no_lesson"
    assert errors.UnexpectedMessageError("x").code == "unexpected"
    assert errors.ChecksumMismatchError("bad", sha256=SHA_A).sha256 == SHA_A
    assert errors.BlobTooLargeError("big", sha256=SHA_A).code == "too_large"
    assert errors.LessonError("no", path="/x").path == "/x"
    assert errors.UnknownContentError("?", path="/y").path == "/y"
    assert errors.CorruptContentError("!", path=None).code == "corrupt_content"
    assert issubclass(MalformedMessageError, errors.ProtocolError)


# --------------------------------------------------------------------------- no I/O imports


FORBIDDEN_IN_PURE_MODULES = (
    "asyncio",
    "websockets",
    "zeroconf",
    "pyglet",
    "vlc",
    "sqlite3",
    "sqlite_utils",
    "socket",
    "_socket",
    "click",
)
"""Packages that mean I/O (or a command line): none is loaded by importing protocol/."""


def protocol_modules() -> list[str]:
    """Every module of the protocol package, found by walking it (new ones included)."""
    import pkgutil

    import protocol

    found = [m.name for m in pkgutil.walk_packages(protocol.__path__, "protocol.")]
    assert "protocol.codec" in found
    return ["protocol", *found]


def test_pure_modules_import_no_io() -> None:
    """Importing every module of protocol/ (and the pure cores) loads no I/O package."""
    modules = [*protocol_modules(), "kiosk.player", "media.chunks"]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = set({FORBIDDEN_IN_PURE_MODULES!r})\n"
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"


def test_no_protocol_module_reads_the_environment() -> None:
    """Settings reach protocol/ as arguments: its source never names ``os.environ``."""
    sources = sorted((ROOT / "protocol").rglob("*.py"))
    assert len(sources) == len(protocol_modules())
    readers = [p.name for p in sources if "os.environ" in p.read_text(encoding="utf-8")]
    assert readers == []


# --------------------------------------------------------------------------- docs


def protocol_doc() -> str:
    path = ROOT / "docs" / "protocol.md"
    assert path.is_file(), f"{path} is missing"
    return path.read_text(encoding="utf-8")


def test_doc_has_a_heading_for_every_message() -> None:
    headings = [line for line in protocol_doc().splitlines() if line.lstrip().startswith("#")]
    missing = [cls.TYPE for cls in MESSAGE_TYPES if not any(f"`{cls.TYPE}`" in h for h in headings)]
    assert missing == [], f"docs/protocol.md has no heading for {missing}"


def error_classes() -> list[type[ClassCastError]]:
    return [
        value
        for value in vars(errors).values()
        if isinstance(value, type)
        and issubclass(value, ClassCastError)
        and value.__module__ == errors.__name__
    ]


def test_doc_lists_every_error_code() -> None:
    classes = error_classes()
    assert {MalformedMessageError, errors.UsageLogError} <= set(classes)
    doc = protocol_doc()
    missing = sorted({cls.code for cls in classes if f"`{cls.code}`" not in doc})
    assert missing == [], f"docs/protocol.md does not list error codes {missing}"


def test_messages_are_frozen() -> None:
    msg = Ok(re=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.re = 2  # type: ignore[misc]
    assert re.fullmatch(r"[a-z_]+", Ok.TYPE)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("records", 1, "seq"), "2", "usage_batch.records[1].seq: must be an integer"),
        (("records", 0, "seq"), True, "usage_batch.records[0].seq: must be an integer"),
        (("records", 1, "kind"), "gif", "usage_batch.records[1].kind: 'gif' is not one of "),
        (("records", 0, "uuid"), None, "usage_batch.records[0].uuid: must be a string"),
        (("records", 0, "ended_at"), 5, "usage_batch.records[0].ended_at: must be a string"),
        (("records", 1), [], "usage_batch.records[1]: must be an object"),
        (("records",), {}, "usage_batch.records: must be a list"),
        (("more",), 1, "usage_batch.more: must be true or false"),
    ],
)
def test_a_bad_value_deep_in_a_usage_batch_is_named_by_its_path(
    path: tuple[str | int, ...], value: object, message: str
) -> None:
    batch = UsageBatch(
        re=1, kiosk_id="k", records=[usage_record(1), usage_record(2)], last_seq=2, more=False
    )
    obj: Any = obj_of(batch)
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    malformed(json.dumps(obj), "^" + re.escape(message))
