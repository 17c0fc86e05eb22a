"""What a teacher reads when a lesson cannot be loaded or a panel cannot be reached.

Each problem in words, in the output language, with what to do next.

:mod:`media.lesson` raises :class:`~protocol.errors.LessonError` with a machine-readable
``reason`` and its fields; :func:`media_error_text` turns it, and the content errors of
:mod:`media.probe`, into one sentence in the output language (the controller's catalogue).
A size over a limit (:class:`~protocol.errors.FileTooLargeError`) is worded by the CLI's
``error_text`` instead. :func:`connection_error_text` words a
:class:`~protocol.errors.ConnectionFailedError` by its ``reason``, naming the panel by
its room when the caller knows it.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Final

from controller.i18n import N_, size_text, t
from protocol.errors import (
    BusyError,
    CertificateChangedError,
    ClassCastError,
    ConnectionFailedError,
    CorruptContentError,
    FileTooLargeError,
    LessonError,
    MediaError,
    UnknownContentError,
)
from protocol.messages import Role
from protocol.usage_chain import ChainProblem

__all__ = [
    "CHAIN_PROBLEMS",
    "LESSON_PROBLEMS",
    "busy_text",
    "chain_problem_text",
    "connection_error_text",
    "media_error_text",
    "os_error_text",
    "pairing_error_text",
]

LESSON_PROBLEMS: Final = {
    "missing": N_("not found. Check the path to the lesson's folder or file and cast again."),
    "not_a_file": N_("{file} is not a file. Name the lesson's folder or its files."),
    "empty_folder": N_(
        "the lesson folder has no files. Put presentations, documents, PDFs, pictures or "
        "videos in it and cast again."
    ),
    "no_files": N_("no lesson files given. Name the lesson's folder or its files."),
    "unreadable": N_(
        "cannot be read. Check that the file is there and that you may read it, then cast again."
    ),
    "bad_toml": N_(
        "lesson.toml has a mistake on line {line}. Fix it in a text editor and cast again."
    ),
    "not_utf8": N_(
        "lesson.toml is not in the UTF-8 encoding. Save it as UTF-8 in a text editor and "
        "cast again."
    ),
    "unknown_key": N_(
        "lesson.toml has an unknown setting {key} (allowed: {allowed}). Fix the spelling "
        "and cast again."
    ),
    "no_title": N_('lesson.toml has no title. Add a line title = "…" and cast again.'),
    "no_item_tables": N_(
        "lesson.toml lists nothing to show. Add at least one [[items]] table and cast again."
    ),
    "not_a_table": N_(
        "this entry of lesson.toml must be an [[items]] table. Fix it and cast again."
    ),
    "content_keys": N_(
        "each [[items]] table needs exactly one of file, url or text. Fix it and cast again."
    ),
    "not_a_string": N_(
        "the value of {key} must be text in quotes. Fix lesson.toml and cast again."
    ),
    "empty": N_("{key} is empty. Fill it in and cast again."),
    "too_long": N_("{key} is longer than {limit} characters. Shorten it and cast again."),
    "not_a_url": N_(
        "{key} must be a web address starting with http:// or https://, not {value}. Fix it "
        "and cast again."
    ),
    "bad_duration": N_(
        "duration must be a number of seconds, more than 0 and at most {limit_s}. Fix it "
        "and cast again."
    ),
    "not_relative": N_(
        "file {file} must be a path inside the lesson folder, such as "
        '"slides/1.png". Fix it and cast again.'
    ),
    "outside": N_(
        "file {file} is outside the lesson folder. Copy it into the folder, name it from "
        "there and cast again."
    ),
    "file_not_found": N_(
        "file {file} is not in the lesson folder. Check its name in lesson.toml, or copy "
        "the file into the folder, and cast again."
    ),
    "text_too_long": N_(
        "the text is longer than a text slide holds ({limit} characters). Split it into "
        "several files or shorten it."
    ),
    "too_many_items": N_(
        "the lesson has more than {limit} items (each page of a PDF is an item). Split it "
        "into several lessons."
    ),
    "too_many_bytes": N_(
        "the lesson has {size} of media, over the limit of {limit}. Leave out large videos "
        "or split the lesson."
    ),
    "no_items": N_("the lesson has nothing to show. Add files to it and cast again."),
    "url_too_long": N_(
        "the web address is longer than {limit} characters. Copy the address of the page "
        "itself from the browser's address bar and try again."
    ),
    "url_scheme": N_(
        "this is not a web page's address: a link must start with http:// or https://. "
        "Copy it from the browser's address bar and try again."
    ),
    "url_credentials": N_(
        "the web address contains a user name or password. Remove the part up to @ "
        "(a panel must not be given passwords) and try again."
    ),
    "url_host": N_(
        "the web address has no valid site name or port. Copy it from the browser's "
        "address bar and try again."
    ),
    "url_chars": N_(
        "the web address contains line breaks or other control characters. Paste one "
        "address only and try again."
    ),
    "url_shortcut": N_(
        "this Internet shortcut holds no web address. Make the shortcut again, or cast "
        "the page's address instead."
    ),
    "nothing_to_show": N_(
        "none of the files of the lesson folder can be shown ({files}). Save them as "
        "presentations or documents (PPTX, ODP, DOCX, ODT), PDF, pictures (PNG, JPEG, GIF, "
        "SVG), MP4 videos, text, HTML or an HTML5 lesson zip and cast again, or cast links "
        "to their web pages."
    ),
    "zip_damaged": N_(
        "the zip archive is damaged or packed in a way the panel cannot read. Pack the "
        "lesson's folder again as an ordinary zip and cast again."
    ),
    "zip_too_many_entries": N_(
        "the zip archive holds more than {limit} files and is refused. Leave out what the "
        "lesson does not use and pack it again."
    ),
    "zip_bomb": N_(
        "the zip archive unpacks to too much (over {limit} in all, or a file over {ratio} "
        "times its packed size) and is refused as unsafe. Pack the lesson's folder again."
    ),
    "zip_unsafe_name": N_(
        "the zip archive holds {name}, which points outside the lesson (an absolute path, "
        "“..”, a link, or an encrypted file), and is refused as unsafe. Pack the lesson's "
        "folder again."
    ),
    "zip_no_index": N_(
        "the zip archive has no index.html at its root or in its one top folder, so it is "
        "not an HTML5 lesson. Add index.html, or pack the folder that holds it."
    ),
    "no_office": N_(
        "presentations and documents are shown through LibreOffice, which is not installed "
        "on this computer. Install it with `sudo apt install libreoffice-impress "
        "libreoffice-writer` and cast again."
    ),
    "office_failed": N_(
        "LibreOffice could not make pages of this document. Open it, save it again (or "
        "export it as PDF) and cast again."
    ),
    "office_timeout": N_(
        "making pages of this document took over {limit_s} seconds. Export it as PDF and "
        "cast the PDF."
    ),
}
"""The text of each ``reason`` of :data:`media.lesson.LESSON_ERROR_REASONS`, after
``{where}: `` (the file, and the ``[[items]]`` table when there is one)."""


def media_error_text(exc: MediaError) -> str | None:
    """``exc`` as a teacher should read it, or None for an error worded elsewhere.

    Fields come from the error, never from its English message; a reason this table
    lacks (a newer :mod:`media.lesson`) still reads as a sentence about the file.
    """
    if isinstance(exc, FileTooLargeError):
        return None
    if isinstance(exc, UnknownContentError):
        return t(
            "{path}: this kind of file cannot be shown. Save it as a presentation or "
            "document (PPTX, ODP, DOCX, ODT), PDF, picture (PNG, JPEG, GIF, SVG), MP4 video, "
            "text, HTML or an HTML5 lesson zip and cast again, or cast a link to its web page.",
            path=exc.path or "?",
        )
    if isinstance(exc, CorruptContentError):
        return t(
            "{path}: the file is damaged and does not open. Save or export it again, "
            "then cast again.",
            path=exc.path or "?",
        )
    if not isinstance(exc, LessonError):
        return None
    where = exc.path or t("the lesson")
    if exc.item is not None:
        where = t("{where}, item {item}", where=where, item=exc.item)
    values: dict[str, object] = {"file": exc.path or "", **exc.values}
    if exc.reason in ("too_many_bytes", "zip_bomb"):
        values["size"] = size_text(int(exc.values.get("size_bytes", 0)))
        values["limit"] = size_text(int(exc.values.get("limit_bytes", 0)))
    problem = LESSON_PROBLEMS.get(exc.reason)
    if exc.reason == "bad_toml" and "line" not in values:
        problem = N_("lesson.toml has a mistake. Fix it in a text editor and cast again.")
    if problem is None:
        problem = N_("this lesson cannot be loaded. Check its files and cast again.")
    return t("{where}: {problem}", where=where, problem=t(problem, **values))


def named_t(msgid: str, *, panel: str, **values: object) -> str:
    """``t(msgid, panel=panel, ...)`` that still reads well when the panel has no name:
    ``Panel {panel} …`` becomes ``Panel …`` (the sentences are written so that it does)."""
    text = t(msgid, panel=panel, **values)
    return text if panel else re.sub(" {2,}", " ", text)


def connection_error_text(exc: ConnectionFailedError, panel: str = "") -> str:
    """``exc`` as a teacher should read it: which panel, and what to check.

    Args:
        exc: the error.
        panel: the panel's room (or how the user named it); its address when empty.
    """
    name = panel or exc.address or ""
    if isinstance(exc, CertificateChangedError):
        return named_t(
            "Panel {panel} presented another certificate than at pairing. If the panel was "
            "reinstalled, pair again with `classcast pair {panel}`; otherwise tell the "
            "administrator: someone may be intercepting the connection.",
            panel=name,
        )
    if exc.reason == "refused":
        return named_t(
            "Panel {panel} did not accept the connection. Check that ClassCast on it is "
            "up to date and that the address is that of a panel, then try again.",
            panel=name,
        )
    if exc.reason == "closed":
        return named_t(
            "Panel {panel} closed the connection. Try again; if it keeps happening, "
            "restart the panel.",
            panel=name,
        )
    if exc.reason == "timeout":
        return named_t(
            "Panel {panel} did not answer in time. Check the network and try again, or "
            "wait longer with --timeout.",
            panel=name,
        )
    return named_t(
        "Cannot reach panel {panel}. Check that it is switched on and on the same network "
        "as this computer, then try again.",
        panel=name,
    )


def busy_text(exc: BaseException, panel: str = "") -> str:
    """Another teacher presents on the panel: who (when the error says), and what to do."""
    presenter = exc.presenter if isinstance(exc, BusyError) else None
    if presenter:
        return named_t(
            "{presenter} is presenting on panel {panel}. Ask them to stop, or wait until "
            "they finish.",
            presenter=presenter,
            panel=panel,
        )
    return named_t(
        "Another teacher is presenting on panel {panel}, or the panel is still receiving "
        "another lesson. Ask them to stop, or wait a little and try again.",
        panel=panel,
    )


def pairing_error_text(exc: ClassCastError, panel: str, role: Role) -> str | None:
    """A failed ``classcast pair`` with the admin secret, or None for the teacher's wording.

    A wrong admin secret is not a wrong PIN: the admin does not read it on the panel.
    """
    if role != "admin":
        return None
    if exc.code == "bad_pin":
        return t(
            "Wrong admin secret for panel {panel}. It is admin_secret in the panel's "
            "kiosk.toml: check it and try again.",
            panel=panel,
        )
    if exc.code == "locked":
        return t(
            "Too many wrong admin secrets from this computer: wait a minute, check "
            "admin_secret in the panel's kiosk.toml and try again."
        )
    return None


def os_error_text(exc: OSError, home: Path) -> str:
    """A file of this computer that cannot be used: which, and what to do.

    Args:
        exc: the error; its ``filename`` names the file when known.
        home: the controller's folder (``CLASSCAST_HOME``), named when the file is in it.
    """
    path = Path(exc.filename) if isinstance(exc.filename, str) else None
    if isinstance(exc, PermissionError):
        cause = t("no permission")
    elif exc.errno == errno.ENOSPC:
        cause = t("the disk is full")
    elif isinstance(exc, FileNotFoundError | NotADirectoryError):
        cause = t("a part of the path is missing or is not a folder")
    else:
        cause = t("input/output error")
    if path is not None and (path == home or home in path.parents or path in home.parents):
        return t(
            "ClassCast cannot keep its settings in {home}: {cause}. Set CLASSCAST_HOME to a "
            "folder you may write to, or fix this one, and try again.",
            home=home,
            cause=cause,
        )
    if path is None:
        return t(
            "The system refused an operation ({errno}). Try again; if it keeps happening, "
            "tell the administrator.",
            errno=errno.errorcode.get(exc.errno or 0, "?"),
        )
    return t(
        "Cannot use {path}: {cause}. Check the path and its permissions, and try again.",
        path=path,
        cause=cause,
    )


CHAIN_PROBLEMS: Final = {
    "edited": N_("its content differs from what the panel signed (edited)"),
    "deleted": N_("records before it are missing (deleted)"),
    "reordered": N_("it comes out of order (reordered)"),
    "bad_signature": N_("it is not signed by the panel's key (forged)"),
    "foreign": N_("it is a record of another panel"),
    "inserted": N_("it does not follow the record before it (inserted)"),
}
"""What each kind of :class:`protocol.usage_chain.ChainProblem` means, for the admin."""


def chain_problem_text(problem: ChainProblem, room: str | None = None) -> str:
    """One break in a panel's chain of usage records, found by ``usage verify``."""
    return t(
        "Panel {panel}, record #{seq}: {cause}.",
        panel=room or problem.kiosk_id,
        seq=problem.seq,
        cause=t(CHAIN_PROBLEMS[problem.kind]),
    )
