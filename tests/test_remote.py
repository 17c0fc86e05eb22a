"""The phone remote's grants (controller.remote.GrantBook): a pure machine, ``now`` given."""

from __future__ import annotations

import pytest

from controller.remote import (
    ALLOWED_ACTIONS,
    CODE_TTL_S,
    CONTROL_BURST,
    CONTROLS_PER_SECOND,
    ENDED_KEEP_S,
    FAILURE_WINDOW_S,
    GRANT_TTL_S,
    MAX_FAILURES_PER_SOURCE,
    MAX_GRANTS,
    MAX_TRACKED_SOURCES,
    CastScope,
    CodeUsedError,
    ControlNotAllowedError,
    ControlRateError,
    GrantBook,
    GrantClosedError,
    GrantLimitError,
    IssuedGrant,
    PhoneSession,
    SourceLockedError,
    phone_error_text,
)
from protocol.messages import ControlAction

ROOM_12 = CastScope(frozenset({"kiosk-12"}))
ROOM_14 = CastScope(frozenset({"kiosk-14"}))
PHONE = "10.0.0.23"
STUDENT = "10.0.0.57"


def connected(
    book: GrantBook, now: float = 0.0, scope: CastScope = ROOM_12
) -> tuple[IssuedGrant, PhoneSession]:
    issued = book.issue(scope, now, label="Каб. 12 — Фотосинтез")
    return issued, book.redeem(issued.code, source=PHONE, now=now + 1)


def control(
    book: GrantBook,
    session: PhoneSession,
    action: ControlAction = "next",
    *,
    now: float,
    source: str = PHONE,
    scope: CastScope | None = ROOM_12,
) -> str:
    return book.authorize_control(
        session.secret, action, csrf_token=session.csrf_token, source=source, now=now, scope=scope
    )


def test_a_redeemed_code_gives_a_session_that_controls_the_cast() -> None:
    book = GrantBook()
    issued, session = connected(book)
    assert len(issued.code) >= 22  # 128 bits in base64url
    assert session.grant_id == issued.grant_id
    assert session.expires_at == issued.expires_at == GRANT_TTL_S
    assert book.authorize(session.secret, source=PHONE, now=2, scope=ROOM_12) == issued.grant_id
    assert control(book, session, now=3) == issued.grant_id
    [row] = book.grants(now=4)
    assert (row.state, row.phone_source, row.last_used_at) == ("connected", PHONE, 3)
    assert row.label == "Каб. 12 — Фотосинтез"


def test_a_code_works_once_and_a_second_scan_is_shown_to_the_teacher() -> None:
    book = GrantBook()
    issued, session = connected(book)
    with pytest.raises(CodeUsedError):
        book.redeem(issued.code, source=STUDENT, now=5)
    # The teacher's phone keeps working; the teacher sees who scanned again.
    assert control(book, session, now=6) == issued.grant_id
    [row] = book.grants(now=7)
    assert row.reused_from == (STUDENT,)


def test_an_unknown_code_or_session_is_refused_and_counted() -> None:
    book = GrantBook()
    for i in range(0, MAX_FAILURES_PER_SOURCE, 2):
        with pytest.raises(GrantClosedError) as e:
            book.redeem(f"guess-{i}", source=STUDENT, now=i)
        assert e.value.reason == "unknown"
        with pytest.raises(GrantClosedError) as e:
            book.authorize(f"guess-{i}", source=STUDENT, now=i + 1, scope=ROOM_12)
        assert e.value.reason == "unknown"
    # The budget is spent: even a right code from that source is refused now ...
    issued = book.issue(ROOM_12, now=20)
    with pytest.raises(SourceLockedError) as locked:
        book.redeem(issued.code, source=STUDENT, now=21)
    assert locked.value.retry_after_s == pytest.approx(FAILURE_WINDOW_S - 21)
    # ... but not from another source, and not once the window has passed.
    assert book.redeem(issued.code, source=PHONE, now=22).grant_id == issued.grant_id
    again = book.issue(ROOM_12, now=FAILURE_WINDOW_S)
    assert book.redeem(again.code, source=STUDENT, now=FAILURE_WINDOW_S).grant_id


def test_one_failure_less_than_the_budget_still_lets_a_source_in() -> None:
    book = GrantBook()
    for i in range(MAX_FAILURES_PER_SOURCE - 1):
        with pytest.raises(GrantClosedError):
            book.redeem(f"guess-{i}", source=STUDENT, now=i)
    issued = book.issue(ROOM_12, now=10)
    assert book.redeem(issued.code, source=STUDENT, now=11).grant_id == issued.grant_id


def test_a_locked_source_keeps_its_valid_session() -> None:
    """A student failing from the teacher's address cannot lock the teacher's phone out."""
    book = GrantBook()
    issued, session = connected(book)
    for i in range(MAX_FAILURES_PER_SOURCE + 3):
        with pytest.raises((GrantClosedError, SourceLockedError)):
            book.redeem(f"guess-{i}", source=PHONE, now=2 + i)
    assert control(book, session, now=30) == issued.grant_id


def test_the_failure_table_is_bounded() -> None:
    book = GrantBook()
    for i in range(MAX_TRACKED_SOURCES + 5):
        with pytest.raises(GrantClosedError):
            book.redeem("guess", source=f"source-{i}", now=1)
    assert len(book._failures) == MAX_TRACKED_SOURCES
    assert "source-0" not in book._failures


def test_a_code_not_scanned_in_time_is_dead() -> None:
    book = GrantBook()
    issued = book.issue(ROOM_12, now=0)
    assert book.grants(now=CODE_TTL_S - 1)[0].state == "waiting"
    with pytest.raises(GrantClosedError) as e:
        book.redeem(issued.code, source=PHONE, now=CODE_TTL_S)
    assert e.value.reason == "code_expired"
    assert book.grants(now=CODE_TTL_S) == []


def test_a_grant_expires_after_its_time() -> None:
    book = GrantBook()
    _, session = connected(book)
    assert control(book, session, now=GRANT_TTL_S - 1)
    with pytest.raises(GrantClosedError) as e:
        control(book, session, now=GRANT_TTL_S)
    assert e.value.reason == "expired"
    # Remembered for a while (the phone is told why, nothing is counted) ...
    with pytest.raises(GrantClosedError) as e:
        book.authorize(session.secret, source=PHONE, now=GRANT_TTL_S + ENDED_KEEP_S - 1, scope=None)
    assert e.value.reason == "expired"
    assert book._failures == {}
    # ... then forgotten: unknown.
    with pytest.raises(GrantClosedError) as e:
        book.authorize(session.secret, source=PHONE, now=GRANT_TTL_S + ENDED_KEEP_S, scope=None)
    assert e.value.reason == "unknown"
    assert book._grants == {}


def test_revoke_ends_one_grant_at_once_and_revoke_all_every_grant() -> None:
    book = GrantBook()
    first, one = connected(book)
    _, two = connected(book, now=10)
    assert book.revoke(first.grant_id, now=20)
    assert not book.revoke(first.grant_id, now=21)  # already ended
    assert not book.revoke("no-such-grant", now=21)
    with pytest.raises(GrantClosedError) as e:
        control(book, one, now=22)
    assert e.value.reason == "revoked"
    assert control(book, two, now=23)
    assert book.revoke_all(now=24) == 1
    with pytest.raises(GrantClosedError):
        control(book, two, now=25)
    assert book.grants(now=26) == []


def test_a_new_lesson_on_the_same_panels_keeps_the_grant_other_panels_end_it() -> None:
    book = GrantBook()
    _, session = connected(book)
    # The cast stops: the grant waits.
    assert book.authorize(session.secret, source=PHONE, now=5, scope=None)
    # The same panels again (another lesson): still the phone's.
    assert control(book, session, now=6, scope=CastScope(frozenset({"kiosk-12"})))
    # Another room, or one more panel: the grant ends.
    with pytest.raises(GrantClosedError) as e:
        control(book, session, now=7, scope=CastScope(frozenset({"kiosk-12", "kiosk-14"})))
    assert e.value.reason == "recast"
    # Back to room 12: still ended.
    with pytest.raises(GrantClosedError):
        control(book, session, now=8, scope=ROOM_12)


def test_observing_a_cast_ends_grants_of_other_panels_at_once() -> None:
    book = GrantBook()
    issued, _ = connected(book)
    book.observe_cast(None, now=3)
    assert [g.grant_id for g in book.grants(now=3)] == [issued.grant_id]
    book.observe_cast(ROOM_14, now=4)
    assert book.grants(now=4) == []
    assert book.ended_reason(issued.grant_id) == "recast"


@pytest.mark.parametrize("action", ["stop", "seek", "volume"])
def test_a_phone_may_not_stop_seek_or_change_the_volume(action: ControlAction) -> None:
    book = GrantBook()
    _, session = connected(book)
    with pytest.raises(ControlNotAllowedError):
        control(book, session, action, now=2)


def test_the_allowed_actions() -> None:
    assert {"next", "prev", "goto", "pause", "play", "blank", "unblank"} == ALLOWED_ACTIONS


def test_a_control_needs_the_sessions_csrf_token() -> None:
    book = GrantBook()
    _, session = connected(book)
    _, other = connected(book, now=1)
    for token in ("", "x" * 22, other.csrf_token):
        with pytest.raises(ControlNotAllowedError):
            book.authorize_control(
                session.secret, "next", csrf_token=token, source=PHONE, now=2, scope=ROOM_12
            )
    assert book._failures == {}  # a forged request comes from the teacher's own phone


def test_controls_are_rate_limited_per_remote() -> None:
    book = GrantBook()
    _, session = connected(book)
    _, other = connected(book)
    for _ in range(CONTROL_BURST):
        control(book, session, now=2)
    with pytest.raises(ControlRateError) as e:
        control(book, session, now=2)
    assert e.value.retry_after_s == pytest.approx(1 / CONTROLS_PER_SECOND)
    control(book, other, now=2)  # another remote has its own budget
    control(book, session, now=2 + 1 / CONTROLS_PER_SECOND)  # one more after the refill
    with pytest.raises(ControlRateError):
        control(book, session, now=2 + 1 / CONTROLS_PER_SECOND)


def test_a_session_used_from_another_address_is_shown_to_the_teacher() -> None:
    book = GrantBook()
    _, session = connected(book)
    control(book, session, now=2, source=STUDENT)
    control(book, session, now=3, source=STUDENT)
    assert book.grants(now=4)[0].other_sources == (STUDENT,)


def test_at_most_max_grants_are_held() -> None:
    book = GrantBook()
    grants = [book.issue(ROOM_12, now=0) for _ in range(MAX_GRANTS)]
    with pytest.raises(GrantLimitError):
        book.issue(ROOM_12, now=1)
    book.revoke(grants[0].grant_id, now=2)
    with pytest.raises(GrantLimitError):  # an ended grant is remembered for a while
        book.issue(ROOM_12, now=3)
    assert book.issue(ROOM_12, now=2 + ENDED_KEEP_S).grant_id


def test_only_digests_of_secrets_are_kept() -> None:
    book = GrantBook()
    issued, session = connected(book)
    held = repr(book.__dict__)
    assert issued.code not in held
    assert session.secret not in held


@pytest.mark.parametrize(
    ("error", "heading", "text"),
    [
        (
            GrantClosedError("x", reason="revoked"),
            "Доступ к пульту закрыт",
            "Учитель закрыл этот пульт. Попросите учителя показать новый QR-код.",
        ),
        (
            GrantClosedError("x", reason="unknown"),
            "Доступ к пульту закрыт",
            "Попросите учителя показать новый QR-код.",
        ),
        (CodeUsedError("x"), "Этот QR-код уже использован", "только на одном телефоне"),
        (ControlRateError("x", retry_after_s=0.25), "Слишком часто", "подождите секунду"),
        (SourceLockedError("x", retry_after_s=590), "Слишком много попыток", "Подождите 10 мин"),
    ],
)
def test_what_the_phone_is_told_in_russian(error: Exception, heading: str, text: str) -> None:
    got_heading, got_text = phone_error_text(error)  # type: ignore[arg-type]
    assert got_heading == heading
    assert text in got_text
