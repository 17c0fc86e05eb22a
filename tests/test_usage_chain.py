"""Tamper evidence: the kiosk seals each closed record; the chain verifies end to end."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.tls import ensure_signing_key
from kiosk.usage import DisplayStart, UsageLog
from protocol.messages import UsageRecord
from protocol.usage_chain import (
    GENESIS_HASH,
    UsageKey,
    canonical_bytes,
    load_public_key,
    public_key_text,
    record_hash,
    verify_chain,
)
from tests.helpers import text_lesson
from tests.kiosks import KioskThread, admin, teacher


def start(i: int) -> DisplayStart:
    return DisplayStart("l", "Урок", i, "text", None, f"Слайд {i}", None, "c-1", "Учитель")


def test_the_kiosk_log_seals_every_closed_record_in_a_chain(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    log = UsageLog(tmp_path / "u.sqlite", kiosk_id="k-1", room="r", signing_key=key)
    try:
        previous = None
        for i in range(5):
            uuid = log.open(start(i), wall_s=1000.0 + i, mono_s=float(i))
            if previous is not None:
                log.close(previous, wall_s=1000.0 + i, mono_s=float(i), reason="next")
            previous = uuid
        records = log.records_after(0, 100)
        assert log.public_key == public_key_text(key)
    finally:
        log.close_db()
    assert records[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in records[1:]] == [r.record_hash for r in records[:-1]]
    assert verify_chain(records, load_public_key(public_key_text(key))) == []
    edited = dataclasses.replace(records[2], duration_ms=records[2].duration_ms + 1)
    problems = verify_chain([*records[:2], edited, *records[3:]], key.public_key())
    assert [(p.seq, p.kind) for p in problems] == [(3, "edited")]


def test_power_loss_records_are_sealed_too(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "u.sqlite"
    log = UsageLog(path, kiosk_id="k-1", room="r", signing_key=key)
    first = log.open(start(0), wall_s=1000.0, mono_s=0.0)
    log.close(first, wall_s=1001.0, mono_s=1.0, reason="next")
    log.open(start(1), wall_s=1001.0, mono_s=1.0)
    log.heartbeat(wall_s=1005.0, mono_s=5.0)
    log.close_db()  # the power goes off
    log = UsageLog(path, kiosk_id="k-1", room="r", signing_key=key)
    try:
        assert log.recover() == 1
        records = log.records_after(0, 10)
    finally:
        log.close_db()
    assert [r.end_reason for r in records] == ["next", "power_loss"]
    assert verify_chain(records, key.public_key()) == []


def test_the_signing_key_is_kept_across_restarts_and_private(tmp_path: Path) -> None:
    key = ensure_signing_key(tmp_path)
    again = ensure_signing_key(tmp_path)
    assert public_key_text(key) == public_key_text(again)
    assert (tmp_path / "usage_key.pem").stat().st_mode & 0o777 == 0o600


def test_canonical_form_leaves_out_only_hash_and_signature() -> None:
    key = Ed25519PrivateKey.generate()
    log = UsageLog(None, kiosk_id="k", room="r", signing_key=key)
    uuid = log.open(start(0), wall_s=1000.0, mono_s=0.0)
    log.close(uuid, wall_s=1001.0, mono_s=1.0, reason="stop")
    (record,) = log.records_after(0, 1)
    log.close_db()
    text = canonical_bytes(record).decode()
    assert record.record_hash not in text
    assert '"prev_hash"' in text
    assert '"signature"' not in text
    assert '"teacher_name":"Учитель"' in text


async def test_collected_batches_verify_and_carry_the_clock_offset(kiosk: KioskThread) -> None:
    async with await teacher(kiosk) as client:
        offset = await client.measure_clock_offset()
        assert abs(offset) < 100  # same machine, same clock
        await client.cast(text_lesson("А", "Б"))
        await client.control("next")
        await client.control("stop")
    async with await admin(kiosk) as client:
        batch = await client.usage_pull(0)
    assert len(batch.records) == 2
    assert verify_chain(batch.records, load_public_key(batch.public_key)) == []
    assert all(abs(r.clock_offset_ms) < 100 for r in batch.records)


def _reference_canonical(record: UsageRecord) -> bytes:
    """The canonical form as specified: every field but the hash and signature (and
    ``hidden`` and ``school_id`` when empty), sorted compact JSON, UTF-8 (written
    independently of the module's fast encoder)."""
    fields = dataclasses.asdict(record)
    del fields["record_hash"], fields["signature"]
    for optional in ("hidden", "school_id"):
        if not fields[optional]:
            del fields[optional]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


class _Text(str):
    pass


class _Number(int):
    def __repr__(self) -> str:
        return "not JSON"


def test_canonical_form_is_the_specified_json_byte_for_byte() -> None:
    base = UsageRecord(
        uuid="u-1",
        seq=7,
        kiosk_id="k-1",
        room="Кабинет 12",
        lesson_id="L",
        lesson_title='Кавычки " и \\ обратная черта',
        item_index=0,
        kind="text",
        content_hash=None,
        content_title="Строки\nи\tтабуляция\x00\x1f\x7f\u2028😀",
        content_source=None,
        teacher_id="t",
        teacher_name="Учитель",
        started_at="2026-11-23T08:00:00.000Z",
        ended_at=None,
        duration_ms=-(2**63),
        end_reason=None,
        clock_offset_ms=2**63 - 1,
        prev_hash=GENESIS_HASH,
        record_hash="x",
        signature="y",
    )
    odd: list[UsageRecord] = [
        base,
        dataclasses.replace(base, ended_at="2026-11-23T08:05:00.000Z", end_reason="next"),
        dataclasses.replace(base, item_index=True),  # a bool is an int to the type checker
        dataclasses.replace(base, duration_ms=1.5),  # type: ignore[arg-type]
        dataclasses.replace(base, room=_Text("подкласс строки")),
        dataclasses.replace(base, seq=_Number(3)),
        dataclasses.replace(base, teacher_name=""),
        dataclasses.replace(base, hidden="alert"),
        dataclasses.replace(base, school_id="school-5"),
        dataclasses.replace(base, hidden="blank", school_id="school-5"),
    ]
    for record in odd:
        assert canonical_bytes(record) == _reference_canonical(record), record


PINNED_HASH = "67c3875e7be402ad3ece7b7d437fa82d3b4924aebe410203533a557e1247322c"
"""The hash of the record below, as panels have computed it since the chain exists."""


def test_the_hash_of_a_known_record_never_changes() -> None:
    # Records already signed by panels must keep verifying: this hash is pinned.
    record = UsageRecord(
        uuid="3f1c0f9e-0000-4000-8000-000000000001",
        seq=1,
        kiosk_id="k-101",
        room="101",
        lesson_id="L-1",
        lesson_title="Фотосинтез",
        item_index=2,
        kind="image",
        content_hash="a" * 64,
        content_title="Хлоропласт",
        content_source="https://myschool.edu.ru/items/1",
        teacher_id="t-1",
        teacher_name="Анна Петровна",
        started_at="2026-11-23T08:00:00.000Z",
        ended_at="2026-11-23T08:05:00.000Z",
        duration_ms=300_000,
        end_reason="next",
        clock_offset_ms=-1234,
        prev_hash=GENESIS_HASH,
    )
    assert canonical_bytes(record) == _reference_canonical(record)
    assert hashlib.sha256(_reference_canonical(record)).hexdigest() == record_hash(record)
    assert record_hash(record) == PINNED_HASH


def test_the_kiosks_signatures_verify_with_cryptography(tmp_path: Path) -> None:
    key = ensure_signing_key(tmp_path)  # a UsageKey: libsodium signs
    log = UsageLog(tmp_path / "u.sqlite", kiosk_id="k-1", room="r", signing_key=key)
    try:
        previous = None
        for i in range(3):
            uuid = log.open(start(i), wall_s=1000.0 + i, mono_s=float(i))
            if previous is not None:
                log.close(previous, wall_s=1000.0 + i, mono_s=float(i), reason="next")
            previous = uuid
        records = log.records_after(0, 100)
    finally:
        log.close_db()
    assert len(records) == 2
    assert verify_chain(records, load_public_key(public_key_text(key))) == []
    forged = [dataclasses.replace(records[0], signature=records[1].signature), records[1]]
    assert [p.kind for p in verify_chain(forged, load_public_key(log.public_key))] == [
        "bad_signature"
    ]


def test_the_signing_key_file_is_the_pkcs8_pem_cryptography_reads_and_writes(
    tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives import serialization

    ours = UsageKey.generate()
    loaded = serialization.load_pem_private_key(ours.to_pem(), password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    assert public_key_text(loaded) == public_key_text(ours)
    theirs = Ed25519PrivateKey.generate()
    pem = theirs.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "usage_key.pem").write_bytes(pem)  # a key file made before
    again = ensure_signing_key(tmp_path)
    assert public_key_text(again) == public_key_text(theirs)
    assert again.sign(b"x") == theirs.sign(b"x")  # Ed25519 signatures are deterministic


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
    ],
    ids=["empty", "not base64", "short"],
)
def test_a_damaged_signing_key_file_is_a_clear_error(tmp_path: Path, pem: bytes) -> None:
    (tmp_path / "usage_key.pem").write_bytes(pem)
    with pytest.raises(ValueError, match="does not hold an Ed25519 key"):
        ensure_signing_key(tmp_path)


def test_a_signing_key_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "usage_key.pem").write_bytes(pem)
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        ensure_signing_key(tmp_path)
