"""The one exception tree of ClassCast.

Every error ClassCast raises on purpose derives from :class:`ClassCastError`::

    ClassCastError
    ├── ProtocolError                 a peer broke protocol v1
    │   ├── MalformedMessageError     bytes that do not decode to a valid message   (peer)
    │   ├── UnexpectedMessageError    a valid message in the wrong state             (peer)
    │   ├── RemoteError               the kiosk answered a request with an error     (peer)
    │   │   ├── UnauthorizedError     a request that needs pairing, without a valid token (peer)
    │   │   ├── ForbiddenError        a teacher's request that needs the admin role   (peer)
    │   │   ├── BusyError             another teacher presents on this panel          (peer)
    │   │   └── …                     one class per code a kiosk sends: REMOTE_ERRORS
    │   └── PairingError              wrong PIN or a relay (protocol.pairing)         (peer)
    │       ├── PairingLockedError    too many wrong PINs from one address            (peer)
    │       ├── PairingThrottledError too many pairing attempts right now             (peer)
    │       └── PairingRefusedError   not allowed on the panel (under attack)         (peer)
    ├── MediaError                    lesson content cannot be read or stored
    │   ├── LessonError               a lesson path, lesson.toml or item is unusable (user input)
    │   │   └── FileTooLargeError     a lesson file over its size limit, refused unread (user input)
    │   ├── PictureTooLargeError      an image with more pixels than a panel decodes (input/peer)
    │   ├── UnknownContentError       a file whose kind cannot be recognised         (user input)
    │   ├── CorruptContentError       a file of a known kind that cannot be decoded  (user input)
    │   ├── ChecksumMismatchError     received bytes do not hash to the announced sha256 (peer)
    │   ├── BlobTooLargeError         a blob over MAX_BLOB_BYTES or over its announced size (peer)
    │   └── QuotaExceededError        the blob store cannot make room                (ours)
    │       └── DiskFullError         media would take the disk space kept for the usage log (ours)
    ├── UsageLogError                 the usage log cannot be opened or written      (ours)
    └── ConnectionFailedError         a kiosk cannot be reached or went away         (network)
        └── CertificateChangedError   the kiosk's certificate is not the one pinned   (network)

The column on the right says whose fault the error is: *peer* errors are answered
with an error reply or a close with a reason and never change what the kiosk shows;
*ours* errors are reported to the user who gave the input.

Each error carries the fields that help a reader of the journal (``code`` for the
wire, plus details such as ``sha256`` or ``path``) and its ``str()`` reads as one line.

**Errors across the wire.** A kiosk answers a refused request with an ``error`` reply
carrying the ``code`` of the error it raised. The controller turns the reply back into
an exception with :func:`remote_error`, which looks the code up in :data:`REMOTE_ERRORS`:
one :class:`RemoteError` subclass per code a kiosk sends, so callers ``match`` on
classes (``case BusyError():``), never on ``exc.code``. A code missing from the table
(a newer kiosk's) becomes a plain :class:`RemoteError` carrying that code.
"""

from __future__ import annotations

from typing import Final

from protocol.text import clean_name


class ClassCastError(Exception):
    """Root of every error ClassCast raises on purpose.

    ``code`` is the short machine-readable code used in ``error`` replies.
    """

    code: str = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ProtocolError(ClassCastError):
    """A peer broke the rules of protocol v1."""

    code = "protocol"


class MalformedMessageError(ProtocolError):
    """The peer sent bytes that do not decode to a valid message (the peer's fault)."""

    code = "malformed"


class UnexpectedMessageError(ProtocolError):
    """The peer sent a valid message that is not allowed in the current state (the peer's fault)."""

    code = "unexpected"


class RemoteError(ProtocolError):
    """An error a kiosk reports to a controller in an ``error`` reply (the peer's side).

    The kiosk raises a subclass in its core and answers with its ``code``; the controller
    raises the same subclass again from the reply with :func:`remote_error`. ``code`` is
    the code the kiosk sent, ``message`` its explanation (English, for the journal: show
    a user the text of the class instead).
    """

    code = "remote"


class UnauthorizedError(RemoteError):
    """A request that needs a paired controller came without a valid token (the peer's)."""

    code = "unauthorized"


class ForbiddenError(RemoteError):
    """A request that needs the admin role came from a teacher (the peer's)."""

    code = "forbidden"


class BusyError(RemoteError):
    """Another teacher presents on this panel (the peer's; not a failure of either side).

    ``presenter`` is the presenting teacher's name.
    """

    code = "busy"

    def __init__(self, message: str, *, presenter: str | None = None) -> None:
        super().__init__(message)
        self.presenter = presenter


class BadPinError(RemoteError):
    """The kiosk did not accept the PIN or admin secret of a pairing (the peer's answer)."""

    code = "bad_pin"


class LockedError(RemoteError):
    """The kiosk refuses pairing from this computer after too many wrong PINs (for a while)."""

    code = "locked"


class TryLaterError(RemoteError):
    """The kiosk is busy with other pairing attempts: try again in a few seconds."""

    code = "try_later"


class RefusedError(RemoteError):
    """The pairing was not allowed on the panel (refused, or nobody answered in time)."""

    code = "refused"


class NotEnabledError(RemoteError):
    """Admin pairing is not enabled on the kiosk (no ``admin_secret`` in its kiosk.toml)."""

    code = "not_enabled"


class UnsupportedVersionError(RemoteError):
    """The kiosk speaks another protocol version than this controller."""

    code = "version"


class RemoteMalformedError(RemoteError):
    """The kiosk could not decode what this controller sent (our side broke the protocol)."""

    code = "malformed"


class RemoteUnexpectedError(RemoteError):
    """The kiosk did not accept a valid request in its current state."""

    code = "unexpected"


class ClockOffsetError(RemoteError):
    """The kiosk did not accept the clock offset sent with a cast (not measured, too far)."""

    code = "clock_offset"


class BadIndexError(RemoteError):
    """The item asked for (goto, start index) is not in the lesson the kiosk shows."""

    code = "bad_index"


class NoLessonError(RemoteError):
    """A control command came while the kiosk shows no lesson."""

    code = "no_lesson"


class NotStartedError(RemoteError):
    """A control command came before the lesson's synchronised start."""

    code = "not_started"


class BadInstantError(RemoteError):
    """A ``cast.start_at_ms`` or ``control.at_ms`` further ahead of the kiosk's clock than
    ``limits.MAX_INSTANT_AHEAD_MS`` (a wrong clock or clock offset)."""

    code = "bad_instant"


class NoScreenError(RemoteError):
    """A screenshot was asked of a kiosk that runs without a window."""

    code = "no_screen"


class NoShareError(RemoteError):
    """A stream frame or ``share_stop`` for a share this panel is not showing from this
    connection (never started, stopped on the panel, or another stream id)."""

    code = "no_share"


class RemoteTooLargeError(RemoteError):
    """The kiosk refused data as too large: a blob over its size, or a screenshot."""

    code = "too_large"


class RemoteChecksumError(RemoteError):
    """A blob the kiosk received does not hash to its sha256 (a file changed while sent)."""

    code = "checksum_mismatch"


class RemoteQuotaExceededError(RemoteError):
    """The kiosk's media cache has no room for the lesson now."""

    code = "quota_exceeded"


class NoSpaceError(RemoteError):
    """The kiosk's disk is nearly full: the rest is kept for its usage log."""

    code = "no_space"


class RemoteMediaError(RemoteError):
    """The kiosk could not store the lesson's media (its store failed)."""

    code = "media"


class RemoteUsageLogError(RemoteError):
    """The kiosk's usage log cannot be read or written."""

    code = "usage_log"


class PairingsDamagedError(RemoteError):
    """The kiosk's file of pairings (tokens) is damaged."""

    code = "tokens"


class RemoteInternalError(RemoteError):
    """The kiosk failed while handling the request (its fault; see its journal)."""

    code = "internal"


class MediaError(ClassCastError):
    """Lesson content cannot be read, decoded or stored."""

    code = "media"


class LessonError(MediaError):
    """A lesson path, ``lesson.toml`` or item is unusable (the user's input).

    The English ``message`` is for the journal; a program shows its own text for
    ``reason`` (a short machine-readable word, such as ``"empty_folder"`` or
    ``"file_not_found"``: see :mod:`media.lesson`), filled in from ``path``, ``item`` (the
    1-based ``[[items]]`` table of a ``lesson.toml``) and ``values``.
    """

    code = "bad_lesson"

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        reason: str = "invalid",
        item: int | None = None,
        values: dict[str, str | int] | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason
        self.item = item
        self.values: dict[str, str | int] = dict(values or {})


class FileTooLargeError(LessonError):
    """A lesson file is larger than its kind allows; found from its size, before reading it.

    ``what`` says which limit: ``"file"`` (any media file, ``MAX_BLOB_BYTES``), ``"text"``
    (a text or Markdown slide) or ``"lesson.toml"``. The user's input.
    """

    code = "too_large"

    def __init__(
        self, message: str, *, path: str, size_bytes: int, limit_bytes: int, what: str
    ) -> None:
        super().__init__(message, path=path)
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        self.what = what


class PictureTooLargeError(MediaError):
    """An image has more pixels than ``MAX_PICTURE_PIXELS``; found from its header, before
    decoding it. The user's input (controller) or the peer's content (kiosk).

    ``width`` and ``height`` are ``None`` when the image is so large that the decoder
    refused it before saying its size.
    """

    code = "picture_too_large"

    def __init__(
        self, message: str, *, path: str, width: int | None = None, height: int | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.width = width
        self.height = height


class UnknownContentError(MediaError):
    """A file whose kind cannot be recognised from its content (the user's input)."""

    code = "unknown_content"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class CorruptContentError(MediaError):
    """A file of a recognised kind that cannot be decoded (the user's input)."""

    code = "corrupt_content"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ChecksumMismatchError(MediaError):
    """Received bytes do not hash to the announced sha256 (the peer's fault)."""

    code = "checksum_mismatch"

    def __init__(self, message: str, *, sha256: str) -> None:
        super().__init__(message)
        self.sha256 = sha256


class BlobTooLargeError(MediaError):
    """A blob is larger than allowed or than announced (the peer's fault)."""

    code = "too_large"

    def __init__(self, message: str, *, sha256: str) -> None:
        super().__init__(message)
        self.sha256 = sha256


class QuotaExceededError(MediaError):
    """The blob store cannot make room without evicting the current lesson (ours)."""

    code = "quota_exceeded"


class DiskFullError(QuotaExceededError):
    """Storing more media would leave less free disk than the usage log is promised (ours).

    ``sha256`` names the blob whose chunk was refused, when one was (None when a whole
    transfer was refused before it began).
    """

    code = "no_space"

    def __init__(self, message: str, *, sha256: str | None = None) -> None:
        super().__init__(message)
        self.sha256 = sha256


class UsageLogError(ClassCastError):
    """The usage log cannot be opened or written (ours)."""

    code = "usage_log"


class ConnectionFailedError(ClassCastError):
    """A kiosk cannot be reached, refused the handshake, or went away.

    ``address`` is the kiosk's ``HOST:PORT`` when known. ``reason`` says what happened,
    for a program to word it: ``"unreachable"`` (no connection: the panel is off, on
    another network, or not listening), ``"refused"`` (it answered, but not as a
    ClassCast panel of this version), ``"closed"`` (it went away mid-request) or
    ``"timeout"`` (it did not answer in time).
    """

    code = "connection_failed"

    def __init__(
        self, message: str, *, address: str | None = None, reason: str = "unreachable"
    ) -> None:
        super().__init__(message)
        self.address = address
        self.reason = reason


class CertificateChangedError(ConnectionFailedError):
    """The kiosk presented a certificate other than the one pinned at pairing.

    Either the panel was reinstalled (pair again) or something intercepts the
    connection; the controller sends nothing in either case.
    """

    code = "certificate_changed"

    def __init__(self, message: str, *, expected: str, got: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got


REMOTE_ERRORS: Final[dict[str, type[RemoteError]]] = {
    cls.code: cls
    for cls in (
        UnauthorizedError,
        ForbiddenError,
        BusyError,
        BadPinError,
        LockedError,
        TryLaterError,
        RefusedError,
        NotEnabledError,
        UnsupportedVersionError,
        RemoteMalformedError,
        RemoteUnexpectedError,
        ClockOffsetError,
        BadIndexError,
        NoLessonError,
        NotStartedError,
        BadInstantError,
        NoScreenError,
        NoShareError,
        RemoteTooLargeError,
        RemoteChecksumError,
        RemoteQuotaExceededError,
        NoSpaceError,
        RemoteMediaError,
        RemoteUsageLogError,
        PairingsDamagedError,
        RemoteInternalError,
    )
}
"""Every code a kiosk sends in an ``error`` reply → the class the controller raises."""


def remote_error(code: str, message: str, *, presenter: str | None = None) -> RemoteError:
    """The exception for a kiosk's ``error`` reply: raise it.

    Args:
        code: the reply's ``code``.
        message: what to put in the exception (the kiosk's message, with its name).
        presenter: the reply's ``presenter`` (code ``busy``): the presenting teacher's
            name as the kiosk sent it; it is cleaned (:func:`protocol.text.clean_name`)
            into :attr:`BusyError.presenter`.

    Returns:
        An instance of the class :data:`REMOTE_ERRORS` names for ``code``, or a plain
        :class:`RemoteError` carrying ``code`` when the table has none (a newer kiosk).
    """
    cls = REMOTE_ERRORS.get(code)
    if cls is None:
        return RemoteError(message, code=code)
    if cls is BusyError:
        name = clean_name(presenter).strip() if presenter is not None else ""
        return BusyError(message, presenter=name or None)
    return cls(message)
