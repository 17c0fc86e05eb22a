"""protocol.pairing without I/O: the PIN, the guard against guessing (with an injected
clock), and the SPAKE2 exchange between a controller and a kiosk, honest or not."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator

import pytest

from protocol import spake
from protocol.errors import ProtocolError
from protocol.pairing import (
    PIN_DIGITS,
    PIN_LIFETIME_S,
    TOKEN_BYTES,
    ControllerPairing,
    KioskPairing,
    PairingError,
    PairingGuard,
    PairingLockedError,
    PairingRefusedError,
    PairingThrottledError,
    cert_fingerprint,
    new_pin,
    new_token,
    token_hash,
)
from protocol.spake import SpakeA, SpakeB, SpakeError

CONTROLLER = "c-1234"
KIOSK = "k-5678"
FP = "ab" * 32
T0 = 1000.0


def counter_pins() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"{n:06d}"


def make_guard(now: float = T0) -> PairingGuard:
    pins = counter_pins()
    return PairingGuard(now, make_pin=lambda: next(pins))


# --------------------------------------------------------------------------- PIN, token


def test_new_pin_is_six_digits() -> None:
    for _ in range(50):
        pin = new_pin()
        assert re.fullmatch(r"[0-9]{6}", pin), pin
    assert PIN_DIGITS == 6


@pytest.mark.parametrize(
    ("drawn", "pin"), [(0, "000000"), (42, "000042"), (123456, "123456"), (999999, "999999")]
)
def test_new_pin_keeps_leading_zeros(drawn: int, pin: str) -> None:
    bounds: list[int] = []

    def randbelow(n: int) -> int:
        bounds.append(n)
        return drawn

    assert new_pin(randbelow) == pin
    assert bounds == [1_000_000]


def test_new_token_is_random_hex_of_32_bytes() -> None:
    tokens = {new_token() for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert len(bytes.fromhex(token)) == TOKEN_BYTES


def test_token_hash_is_sha256_hex_of_the_token() -> None:
    token = "00ff" * 16
    assert token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token_hash(token) != token_hash(token + "0")
    assert token not in token_hash(token)


def test_cert_fingerprint_is_sha256_of_der() -> None:
    der = b"\x30\x82certificate"
    assert cert_fingerprint(der) == hashlib.sha256(der).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", cert_fingerprint(der))


def test_errors_carry_their_codes() -> None:
    assert issubclass(PairingError, ProtocolError)
    assert PairingError("x").code == "bad_pin"
    locked = PairingLockedError(12.4)
    assert isinstance(locked, PairingError)
    assert locked.code == "locked"
    assert locked.retry_after_s == 12.4
    assert "try again in 13 seconds" in str(locked)
    throttled = PairingThrottledError("too many", 0.2)
    assert isinstance(throttled, PairingError)
    assert (throttled.code, throttled.retry_after_s) == ("try_later", 0.2)
    assert str(throttled) == "too many: try again in 1 second"
    assert PairingRefusedError("no").code == "refused"


# --------------------------------------------------------------------------- guard


def test_pin_is_renewed_at_the_instant_it_says_it_expires_on_a_long_running_clock() -> None:
    issued = 32314.28674609766  # hours into the monotonic clock: (issued + 600) - issued < 600
    guard = make_guard(issued)
    first = guard.pin(issued)
    assert guard.pin(guard.pin_expires_at()) != first  # the panel's timer wakes then


def test_guard_uses_the_default_pin_maker() -> None:
    guard = PairingGuard(T0)
    assert re.fullmatch(r"[0-9]{6}", guard.pin(T0))


def test_pin_is_renewed_at_its_lifetime_and_not_before() -> None:
    guard = make_guard()
    assert guard.pin(T0) == "000001"
    assert guard.pin_expires_at() == T0 + PIN_LIFETIME_S
    assert guard.pin(T0 + PIN_LIFETIME_S - 0.001) == "000001"
    assert guard.pin(T0 + PIN_LIFETIME_S) == "000002"
    assert guard.pin_expires_at() == T0 + 2 * PIN_LIFETIME_S
    # Asking again does not renew it again.
    assert guard.pin(T0 + PIN_LIFETIME_S + 1) == "000002"


def test_pin_renewed_late_counts_its_lifetime_from_then() -> None:
    guard = make_guard()
    late = T0 + 3 * PIN_LIFETIME_S + 7
    assert guard.pin(late) == "000002"
    assert guard.pin_expires_at() == late + PIN_LIFETIME_S


def test_wrong_tries_never_renew_the_pin() -> None:
    """Wrong PINs used to replace the PIN at each lock; now only its lifetime, a pairing
    and a refused right PIN do (tests/test_hardening_pairing.py has the budgets)."""
    guard = make_guard()
    for i in range(100):
        guard.failed("teacher", f"10.0.0.{i}", T0 + i)
    assert guard.pin(T0 + 100) == "000001"
    assert guard.generation == 0


def test_success_and_exposure_renew_the_pin() -> None:
    guard = make_guard()
    guard.succeeded("teacher", "10.0.0.1", T0 + 5)
    assert guard.pin(T0 + 5) == "000002"
    assert guard.pin_expires_at() == T0 + 5 + PIN_LIFETIME_S
    guard.exposed(T0 + 6)
    assert guard.pin(T0 + 6) == "000003"
    assert guard.generation == 2


# --------------------------------------------------------------------------- exchange


def run_exchange(
    controller: ControllerPairing, kiosk: KioskPairing
) -> tuple[bytes, bytes, bytes, bytes]:
    """Run the messages of a pairing; returns (msg_a, msg_b, confirm_a, confirm_b)."""
    msg_a = controller.start()
    msg_b = kiosk.respond(msg_a)
    confirm_a = controller.finish(msg_b)
    confirm_b = kiosk.verify_controller(confirm_a)
    controller.verify_kiosk(confirm_b)
    return msg_a, msg_b, confirm_a, confirm_b


def sides(
    *,
    pin_c: str = "123456",
    pin_k: str = "123456",
    controller_c: str = CONTROLLER,
    controller_k: str = CONTROLLER,
    kiosk_c: str = KIOSK,
    kiosk_k: str = KIOSK,
    fp_c: str = FP,
    fp_k: str = FP,
) -> tuple[ControllerPairing, KioskPairing]:
    return (
        ControllerPairing(pin_c, controller_id=controller_c, kiosk_id=kiosk_c, fingerprint=fp_c),
        KioskPairing(pin_k, controller_id=controller_k, kiosk_id=kiosk_k, fingerprint=fp_k),
    )


def test_exchange_succeeds_both_ways() -> None:
    controller, kiosk = sides()
    msg_a, msg_b, confirm_a, confirm_b = run_exchange(controller, kiosk)
    assert msg_a[:1] == b"A"
    assert msg_b[:1] == b"B"
    assert len(confirm_a) == len(confirm_b) == 32
    assert confirm_a != confirm_b  # the two directions use different labels


def test_exchanges_with_the_same_pin_use_fresh_keys() -> None:
    first = run_exchange(*sides())
    second = run_exchange(*sides())
    assert first[0] != second[0]
    assert first[2] != second[2]


def test_the_pin_never_appears_in_the_messages() -> None:
    pin = "987654"
    for part in run_exchange(*sides(pin_c=pin, pin_k=pin)):
        assert pin.encode() not in part


def test_wrong_pin_is_refused_by_the_kiosk() -> None:
    controller, kiosk = sides(pin_c="000000", pin_k="123456")
    confirm = controller.finish(kiosk.respond(controller.start()))
    with pytest.raises(PairingError, match="wrong PIN"):
        kiosk.verify_controller(confirm)


@pytest.mark.parametrize(
    "mismatch",
    [
        {"fp_c": "cd" * 32},  # a relay presenting its own certificate
        {"kiosk_c": "k-other"},
        {"controller_k": "c-other"},
    ],
    ids=["fingerprint", "kiosk_id", "controller_id"],
)
def test_identities_that_differ_make_pairing_fail(mismatch: dict[str, str]) -> None:
    controller, kiosk = sides(**mismatch)
    confirm = controller.finish(kiosk.respond(controller.start()))
    with pytest.raises(PairingError):
        kiosk.verify_controller(confirm)


def test_relay_with_both_pins_cannot_make_the_kiosk_confirm_to_the_controller() -> None:
    """A relay that runs its own exchange with each side still cannot forge ``Paired``."""
    controller, kiosk = sides()
    msg_a = controller.start()
    kiosk.respond(msg_a)
    # The relay answers the controller with its own SPAKE2 side B.
    relay = KioskPairing("123456", controller_id=CONTROLLER, kiosk_id=KIOSK, fingerprint="ee" * 32)
    msg_b = relay.respond(msg_a)
    confirm_a = controller.finish(msg_b)
    with pytest.raises(PairingError):
        relay.verify_controller(confirm_a)


@pytest.mark.parametrize(
    "forged",
    [b"", b"\x00" * 32, b"\x00" * 31, b"not a mac at all"],
    ids=["empty", "zeros", "short", "text"],
)
def test_forged_kiosk_confirmation_is_refused(forged: bytes) -> None:
    controller, kiosk = sides()
    kiosk.verify_controller(controller.finish(kiosk.respond(controller.start())))
    with pytest.raises(PairingError, match="intercepted"):
        controller.verify_kiosk(forged)


def test_kiosk_confirmation_echoing_the_controllers_is_refused() -> None:
    controller, kiosk = sides()
    confirm_a = controller.finish(kiosk.respond(controller.start()))
    kiosk.verify_controller(confirm_a)
    with pytest.raises(PairingError):
        controller.verify_kiosk(confirm_a)


def test_kiosk_confirmation_from_another_exchange_is_refused() -> None:
    controller, kiosk = sides()
    other_c, other_k = sides()
    *_, other_confirm_b = run_exchange(other_c, other_k)
    kiosk.verify_controller(controller.finish(kiosk.respond(controller.start())))
    with pytest.raises(PairingError):
        controller.verify_kiosk(other_confirm_b)


def test_kiosk_confirmation_before_finish_is_refused() -> None:
    controller, _ = sides()
    controller.start()
    with pytest.raises(PairingError):
        controller.verify_kiosk(b"\x00" * 32)


def test_controller_confirmation_before_respond_is_refused() -> None:
    _, kiosk = sides()
    with pytest.raises(PairingError, match="wrong PIN"):
        kiosk.verify_controller(b"\x00" * 32)


def a_message() -> bytes:
    """A valid SPAKE2 message from side A (a controller)."""
    return sides()[0].start()


def b_message() -> bytes:
    """A valid SPAKE2 message from side B (a kiosk)."""
    controller, kiosk = sides()
    return kiosk.respond(controller.start())


GARBAGE: dict[str, Callable[[bytes, bytes], bytes]] = {
    "empty": lambda own, side: b"",
    "wrong side": lambda own, side: own,  # a message from the same side (reflected)
    "not on curve": lambda own, side: side + b"\xff" * 32,
    "zero point": lambda own, side: side + b"\x00" * 32,
    "identity": lambda own, side: side + b"\x01" + b"\x00" * 31,
    "point of order 2": lambda own, side: side + bytes.fromhex("ec" + "ff" * 30 + "7f"),
    # the base point plus the point of order 2: on the curve, of order 2·L
    "outside the prime-order group": lambda own, side: side + bytes.fromhex("95" + "99" * 31),
    "too long": lambda own, side: own + b"\x00",
    "side byte only": lambda own, side: side,
    "unknown side": lambda own, side: b"Z" + own[1:],
}


@pytest.mark.parametrize("kind", GARBAGE)
def test_garbage_from_the_kiosk_is_a_pairing_error(kind: str) -> None:
    msg = GARBAGE[kind](a_message(), b"B")
    controller, _ = sides()
    controller.start()
    with pytest.raises(PairingError, match="invalid pairing message from the kiosk"):
        controller.finish(msg)
    # Nothing was agreed: any kiosk confirmation is refused.
    with pytest.raises(PairingError):
        controller.verify_kiosk(b"\x00" * 32)


@pytest.mark.parametrize("kind", GARBAGE)
def test_garbage_from_the_controller_is_a_pairing_error(kind: str) -> None:
    msg = GARBAGE[kind](b_message(), b"A")
    _, kiosk = sides()
    with pytest.raises(PairingError, match="invalid pairing message"):
        kiosk.respond(msg)
    with pytest.raises(PairingError):
        kiosk.verify_controller(b"\x00" * 32)


# --------------------------------------------------------------------------- SPAKE2 itself


def _counting(start: int) -> Callable[[int], bytes]:
    """A deterministic entropy source: bytes start, start+1, ... (for test vectors)."""
    return lambda n: bytes((start + i) % 256 for i in range(n))


# One exchange computed by the ``spake2`` package 0.9 (``SPAKE2_A``/``SPAKE2_B``, its
# default Ed25519 parameters) with the entropy sources above, password b"123456",
# idA b"c-1234", idB b"k-5678|fp": the same equations must give the same bytes.
VECTOR_A = "417a1ca381665bc756550ed36a6d7a98ae1e130920145a2ca6426425e0550c8b2e"
VECTOR_B = "4271fbd4c9821fa2b1b070953c60c3e1f026a36d026103caf2d46f01fc3aef3edf"
VECTOR_KEY = "8e7b2667cac7e60c42f445cec6b61288074cce7b344ea2dbc0b6d8861cd22b7a"


def test_spake_matches_the_spake2_package_byte_for_byte() -> None:
    ids = {"id_a": b"c-1234", "id_b": b"k-5678|fp"}
    a = SpakeA(b"123456", entropy=_counting(0), **ids)
    b = SpakeB(b"123456", entropy=_counting(100), **ids)
    msg_a, msg_b = a.start(), b.start()
    assert (msg_a.hex(), msg_b.hex()) == (VECTOR_A, VECTOR_B)
    assert a.finish(msg_b).hex() == VECTOR_KEY
    assert b.finish(msg_a).hex() == VECTOR_KEY


def _arbitrary_element(seed: bytes) -> bytes:
    """M and N as the ``spake2`` package derives them (docs/security.md)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from nacl.bindings import crypto_core_ed25519_add

    q = 2**255 - 19
    d = -121665 * pow(121666, q - 2, q) % q
    expanded = HKDF(hashes.SHA256(), 48, salt=b"", info=b"SPAKE2 arbitrary element")
    y = int.from_bytes(expanded.derive(seed), "big") % q
    while True:
        xx = (y * y - 1) * pow(d * y * y + 1, q - 2, q) % q
        x = pow(xx, (q + 3) // 8, q)
        if (x * x - xx) % q:
            x = x * pow(2, (q - 1) // 4, q) % q
        if (x * x - xx) % q == 0:  # y is the ordinate of a curve point
            break
        y = (y + 1) % q
    point = y.to_bytes(32, "little")  # the even x: sign bit 0
    for _ in range(3):  # doubled 3 times (times the cofactor 8): into the prime-order group
        point = crypto_core_ed25519_add(point, point)
    return point


def test_spake_blinding_points_are_derived_from_the_seeds_m_and_n() -> None:
    assert _arbitrary_element(b"M") == spake.M
    assert _arbitrary_element(b"N") == spake.N
    assert spake.M != spake.N


def test_spake_hkdf_is_rfc_5869() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    for length in (1, 32, 48, 80):
        for salt in (b"", b"salt"):
            ours = spake.hkdf_sha256(b"secret", info=b"info", length=length, salt=salt)
            theirs = HKDF(hashes.SHA256(), length, salt=salt or None, info=b"info")
            assert ours == theirs.derive(b"secret")


def test_spake_password_scalar_is_reduced_hkdf_of_the_password() -> None:
    w = spake.password_scalar(b"123456")
    assert 0 < w < spake.L
    assert w != spake.password_scalar(b"123457")


def test_spake_sides_run_once_and_in_order() -> None:
    a = SpakeA(b"1", id_a=b"a", id_b=b"b")
    with pytest.raises(SpakeError, match="must follow start"):
        a.finish(b"B" + bytes(32))
    b = SpakeB(b"1", id_a=b"a", id_b=b"b")
    msg_a, msg_b = a.start(), b.start()
    with pytest.raises(SpakeError, match="only once"):
        a.start()
    assert a.finish(msg_b) == b.finish(msg_a)
    with pytest.raises(SpakeError, match="called once"):
        a.finish(msg_b)


def test_spake_refuses_its_own_point_reflected_under_the_other_side_byte() -> None:
    a = SpakeA(b"1", id_a=b"a", id_b=b"b")
    own = a.start()
    with pytest.raises(SpakeError, match="reflected"):
        a.finish(b"B" + own[1:])


def test_spake_keys_differ_with_the_password_or_an_identity() -> None:
    def key(pw_b: bytes, id_b_of_b: bytes) -> tuple[bytes, bytes]:
        a = SpakeA(b"123456", id_a=b"a", id_b=b"b")
        b = SpakeB(pw_b, id_a=b"a", id_b=id_b_of_b)
        msg_a, msg_b = a.start(), b.start()
        return a.finish(msg_b), b.finish(msg_a)

    same = key(b"123456", b"b")
    assert same[0] == same[1]
    for other in (key(b"123457", b"b"), key(b"123456", b"b2")):
        assert other[0] != other[1]
