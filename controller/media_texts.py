"""What a teacher reads when a lesson cannot be loaded: each problem in words, with what to do.

:mod:`media.lesson` raises :class:`~protocol.errors.LessonError` with a machine-readable
``reason`` and its fields; :func:`media_error_text` turns it, and the content errors of
:mod:`media.probe`, into one sentence in the output language (the controller's catalogue).
A size over a limit (:class:`~protocol.errors.FileTooLargeError`) is worded by the CLI's
``error_text`` instead.
"""

from __future__ import annotations

from typing import Final

from controller.i18n import N_, size_text, t
from protocol.errors import (
    CorruptContentError,
    FileTooLargeError,
    LessonError,
    MediaError,
    UnknownContentError,
)

__all__ = ["LESSON_PROBLEMS", "media_error_text"]

LESSON_PROBLEMS: Final = {
    "missing": N_("not found. Check the path to the lesson's folder or file and cast again."),
    "not_a_file": N_("{file} is not a file. Name the lesson's folder or its files."),
    "empty_folder": N_(
        "the lesson folder has no files. Put slides, PDFs, pictures or videos in it and cast again."
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
            "{path}: this kind of file cannot be shown. Save it as PDF, PNG, JPEG, MP4, "
            "text or HTML and cast again.",
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
    if exc.reason == "too_many_bytes":
        values["size"] = size_text(int(exc.values.get("size_bytes", 0)))
        values["limit"] = size_text(int(exc.values.get("limit_bytes", 0)))
    problem = LESSON_PROBLEMS.get(exc.reason)
    if exc.reason == "bad_toml" and "line" not in values:
        problem = N_("lesson.toml has a mistake. Fix it in a text editor and cast again.")
    if problem is None:
        problem = N_("this lesson cannot be loaded. Check its files and cast again.")
    return t("{where}: {problem}", where=where, problem=t(problem, **values))
