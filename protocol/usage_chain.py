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
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from protocol.messages import UsageRecord

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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


class PublicKeyBytes(Protocol):
    def public_bytes_raw(self) -> bytes: ...


class SigningKey(Protocol):
    """An Ed25519 private key: :class:`UsageKey`, or ``cryptography``'s
    ``Ed25519PrivateKey`` (the same signatures and public key)."""

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> PublicKeyBytes: ...


_PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
"""DER of a PKCS#8 ``PrivateKeyInfo`` for Ed25519 (RFC 8410) up to the 32-byte seed."""
_PEM_BEGIN = "-----BEGIN PRIVATE KEY-----"
_PEM_END = "-----END PRIVATE KEY-----"


@dataclass(frozen=True, slots=True)
class _RawPublicKey:
    raw: bytes

    def public_bytes_raw(self) -> bytes:
        return self.raw


class UsageKey:
    """The kiosk's Ed25519 usage-signing key, signed with libsodium (PyNaCl), kept as an
    unencrypted PKCS#8 PEM (RFC 8410: the file ``cryptography`` writes and reads).

    A kiosk signs with it without loading ``cryptography`` (about 8 MB of an idle
    panel's memory); the school's side verifies with ``cryptography``.
    """

    __slots__ = ("_pair", "_seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._seed = seed
        self._pair: tuple[bytes, bytes] | None = None
        """(public key, libsodium secret key), made by the first :meth:`_keys`: libsodium
        is loaded when the key is first used, not when it is read."""

    def _keys(self) -> tuple[bytes, bytes]:
        if self._pair is None:
            from nacl.bindings import crypto_sign_seed_keypair

            public, secret = crypto_sign_seed_keypair(self._seed)
            self._pair = (bytes(public), bytes(secret))
        return self._pair

    @classmethod
    def generate(cls) -> Self:
        """A fresh random key."""
        import secrets

        return cls(secrets.token_bytes(32))

    @classmethod
    def from_pem(cls, pem: bytes) -> Self:
        """Load an unencrypted PKCS#8 PEM Ed25519 key.

        Raises:
            ValueError: not such a key (another algorithm, encrypted, damaged).
        """
        text = pem.decode("ascii", "replace").strip()
        if not (text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END)):
            raise ValueError("not a PEM private key")
        try:
            der = base64.b64decode("".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split()))
        except binascii.Error:
            raise ValueError("not a PEM private key") from None
        if len(der) != 48 or not der.startswith(_PKCS8_ED25519_PREFIX):
            raise ValueError("not an Ed25519 private key")
        return cls(der[len(_PKCS8_ED25519_PREFIX) :])

    def to_pem(self) -> bytes:
        """The key as an unencrypted PKCS#8 PEM (keep it private: mode 0600)."""
        body = base64.b64encode(_PKCS8_ED25519_PREFIX + self._seed).decode()
        return f"{_PEM_BEGIN}\n{body}\n{_PEM_END}\n".encode()

    def sign(self, data: bytes) -> bytes:
        """The Ed25519 signature (64 bytes) of ``data``."""
        from nacl.bindings import crypto_sign

        return bytes(crypto_sign(data, self._keys()[1])[:64])

    def public_key(self) -> PublicKeyBytes:
        return _RawPublicKey(self._keys()[0])


def seal(record: UsageRecord, prev_hash: str, key: SigningKey) -> UsageRecord:
    """Link ``record`` after ``prev_hash`` and sign it; returns the sealed record."""
    linked = dataclasses.replace(record, prev_hash=prev_hash, record_hash="", signature="")
    digest = record_hash(linked)
    return dataclasses.replace(linked, record_hash=digest, signature=sign_digest(digest, key))


def sign_digest(digest: str, key: SigningKey) -> str:
    """A record's ``signature``: base64 of the Ed25519 signature of its ``record_hash``
    (hex ``digest``) as bytes."""
    return base64.b64encode(key.sign(bytes.fromhex(digest))).decode()


def public_key_text(key: SigningKey) -> str:
    """The public half of ``key`` as sent in ``usage_batch`` (base64 of 32 raw bytes)."""
    return base64.b64encode(key.public_key().public_bytes_raw()).decode()


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
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(raw)


def signature_ok(record: UsageRecord, key: Ed25519PublicKey) -> bool:
    """Whether ``record.signature`` is the kiosk's signature of ``record.record_hash``."""
    from cryptography.exceptions import InvalidSignature

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
