"""Tamper evidence for usage records: a per-kiosk hash chain signed with Ed25519.

Each kiosk numbers its closed records (``seq`` 1, 2, 3 …) and links them: a record's
``prev_hash`` is the ``record_hash`` of the record before it (``GENESIS_HASH`` for the
first), its ``record_hash`` is the sha256 of its canonical form (every field but
``record_hash`` and ``signature``, as sorted compact JSON in UTF-8; ``hidden`` and
``school_id``, added later, only when they are not empty, so records logged before them
keep their hashes), and
``signature`` is the kiosk's Ed25519 signature of the 32 hash bytes. The kiosk's private
key never leaves it; the school database pins its public key at the first collection.

:func:`verify_chain` tells which record was edited, deleted, inserted or reordered.
Sans-I/O: pure computation.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.messages import UsageRecord

GENESIS_HASH = "0" * 64
"""``prev_hash`` of a kiosk's first record."""

_UNSIGNED = frozenset({"record_hash", "signature"})

ProblemKind = Literal["edited", "deleted", "inserted", "reordered", "bad_signature", "foreign"]


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One break in a kiosk's chain, at the record with ``seq``."""

    kiosk_id: str
    seq: int
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        return f"{self.kiosk_id} #{self.seq}: {self.message}"


_SIGNED_FIELDS: tuple[str, ...] = tuple(
    sorted(f.name for f in dataclasses.fields(UsageRecord) if f.name not in _UNSIGNED)
)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_JSON_STRING: Callable[[str], str] = json.encoder.encode_basestring
"""The escaper ``_ENCODER`` applies to every string (the C one when available)."""
_SCALAR: dict[type, Callable[[Any], str]] = {int: int.__repr__, type(None): lambda _: "null"}
"""How ``_ENCODER`` writes the other exact types a record holds; any other type (a bool,
a subclass) takes the encoder itself."""


@functools.cache
def _template(names: tuple[str, ...]) -> str:
    """``{"name":%s,...}`` for ``names`` in order: compact JSON with the values left out."""
    return "{" + ",".join(f"{_JSON_STRING(name)}:%s" for name in names) + "}"


def _canonical_text(names: tuple[str, ...], values: Sequence[Any]) -> str:
    """``_ENCODER.encode(dict(zip(names, values)))``, without building the dict.

    Each value is escaped by the very function the encoder uses, so the text is the
    same byte for byte; a value of a type other than str, int or None is left to the
    encoder.
    """
    try:
        parts = tuple(
            [_JSON_STRING(v) if v.__class__ is str else _SCALAR[v.__class__](v) for v in values]
        )
    except KeyError:
        return _ENCODER.encode(dict(zip(names, values, strict=True)))
    return _template(names) % parts


_OPTIONAL_FIELDS: tuple[str, ...] = ("hidden", "school_id")
"""Signed fields added after the chain existed: the canonical form leaves each out when it
is empty, so records logged before it existed keep their hashes."""


@functools.cache
def _layout(present: tuple[bool, ...]) -> tuple[tuple[str, ...], Callable[[Any], Any]]:
    """The signed field names and their getter when the optional fields ``present``
    (one flag per :data:`_OPTIONAL_FIELDS`) are the ones not empty."""
    left_out = {name for name, there in zip(_OPTIONAL_FIELDS, present, strict=True) if not there}
    names = tuple(name for name in _SIGNED_FIELDS if name not in left_out)
    return names, operator.attrgetter(*names)


def canonical_bytes(record: UsageRecord) -> bytes:
    """The bytes that ``record_hash`` covers: the signed fields as sorted compact JSON
    (``hidden`` and ``school_id`` only when they are not empty)."""
    names, values = _layout((bool(record.hidden), bool(record.school_id)))
    return _canonical_text(names, values(record)).encode()


def record_hash(record: UsageRecord) -> str:
    """sha256 (hex) of the canonical form of ``record``."""
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def seal(record: UsageRecord, prev_hash: str, key: Ed25519PrivateKey) -> UsageRecord:
    """Link ``record`` after ``prev_hash`` and sign it; returns the sealed record."""
    linked = dataclasses.replace(record, prev_hash=prev_hash, record_hash="", signature="")
    digest = record_hash(linked)
    signature = base64.b64encode(key.sign(bytes.fromhex(digest))).decode()
    return dataclasses.replace(linked, record_hash=digest, signature=signature)


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The public half of ``key`` as sent in ``usage_batch`` (base64 of 32 raw bytes)."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """Parse a public key from ``usage_batch``.

    Raises:
        ValueError: not base64 of 32 bytes.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("the usage signing key is not base64") from None
    if len(raw) != 32:
        raise ValueError("the usage signing key is not an Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw)


def signature_ok(record: UsageRecord, key: Ed25519PublicKey) -> bool:
    """Whether ``record.signature`` is the kiosk's signature of ``record.record_hash``."""
    try:
        key.verify(
            base64.b64decode(record.signature, validate=True), bytes.fromhex(record.record_hash)
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def verify_chain(
    records: Iterable[UsageRecord],
    key: Ed25519PublicKey,
    *,
    prev_hash: str = GENESIS_HASH,
    prev_seq: int = 0,
    signatures: Literal["all", "last"] = "all",
) -> list[ChainProblem]:
    """Check records of one kiosk, in the order stored, after ``prev_seq``/``prev_hash``.

    Returns every problem found, in order; an empty list means the chain is intact.
    ``edited``: the record's content no longer matches its hash, or the hash is not
    signed by the kiosk. ``deleted``: ``seq`` numbers are missing before this record.
    ``inserted``: a record whose ``seq`` repeats one already seen. ``reordered``: a
    record stored out of ``seq`` order. Any record whose ``prev_hash`` does not link to
    the one before it is reported too, unless a problem above already explains it.

    ``signatures="last"`` checks only the last record's signature (far faster on a large
    batch) and is just as strong for accepting a batch: every record's hash is still
    recomputed and every link checked, so the last signature covers the whole chain
    behind it. An audit uses ``"all"`` to name the exact record that was forged.
    """
    problems: list[ChainProblem] = []
    expected_prev, last_seq = prev_hash, prev_seq
    seen: set[int] = set()
    ordered = list(records)
    for position, record in enumerate(ordered):
        check_signature = signatures == "all" or position == len(ordered) - 1
        kiosk, seq = record.kiosk_id, record.seq
        explained = False
        if seq in seen:
            problems.append(
                ChainProblem(kiosk, seq, "inserted", f"a second record with seq {seq} (inserted)")
            )
            explained = True
        elif seq < last_seq:
            problems.append(
                ChainProblem(kiosk, seq, "reordered", f"stored after seq {last_seq} (reordered)")
            )
            explained = True
        elif seq > last_seq + 1:
            missing = f"{last_seq + 1}" if seq == last_seq + 2 else f"{last_seq + 1}–{seq - 1}"
            problems.append(
                ChainProblem(kiosk, seq, "deleted", f"record(s) {missing} are missing (deleted)")
            )
            explained = True
        seen.add(seq)
        if record_hash(record) != record.record_hash:
            problems.append(
                ChainProblem(
                    kiosk, seq, "edited", "content differs from what the kiosk signed (edited)"
                )
            )
            explained = True
        elif check_signature and not signature_ok(record, key):
            problems.append(
                ChainProblem(kiosk, seq, "bad_signature", "not signed by this kiosk's key (forged)")
            )
            explained = True
        if record.prev_hash != expected_prev and not explained:
            problems.append(
                ChainProblem(
                    kiosk, seq, "inserted", "does not follow the record before it (inserted)"
                )
            )
        expected_prev = record.record_hash
        last_seq = max(last_seq, seq)
    return problems
