"""Where the controller writes what went wrong unexpectedly: one log file per day.

An error ClassCast did not foresee (a bug) must never show a traceback to a teacher.
``classcast`` and the teacher's app write the details — the time, the command or
request, the traceback — to ``CLASSCAST_HOME/logs/classcast-YYYYMMDD.log`` and show
one sentence (:func:`unexpected_error_text`) that says where the file is and what to do:
try again, and send the file to the administrator. When the home cannot be written, the
details go to stderr instead (the sentence then says so).

The CLI calls :func:`record_exception`; the app installs :class:`DailyLogHandler` on
the root logger while it serves, so that every ``logger.exception`` lands in the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Final, TextIO

from controller.i18n import t

LOG_DIR: Final = "logs"
"""Folder of the log files, inside the controller's home."""

MAX_LOG_FILE_BYTES: Final = 4 * 1024 * 1024
"""A day's log file stops growing at this size (later entries go to stderr): a program
failing in a loop must not fill the teacher's disk."""

MAX_ENTRY_CHARS: Final = 64 * 1024
"""Longest entry written (a traceback of a deep recursion is cut to its end)."""


def log_path(home: Path, now: datetime) -> Path:
    """The log file of ``now``'s day (local time) under ``home``."""
    return home / LOG_DIR / f"classcast-{now:%Y%m%d}.log"


def write_entry(home: Path, now: datetime, text: str) -> Path | None:
    """Append ``text`` (with a time stamp) to the day's log file; its path, or ``None``
    when it cannot be written (home unwritable, file full): then write to stderr."""
    entry = f"--- {now:%Y-%m-%d %H:%M:%S}\n{text[-MAX_ENTRY_CHARS:].rstrip()}\n"
    path = log_path(home, now)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            if out.tell() + len(entry.encode()) > MAX_LOG_FILE_BYTES:
                raise OSError("the log file is full")
            out.write(entry)
        return path
    except OSError:
        _stderr().write(entry)
        return None


def record_exception(home: Path, now: datetime, what: str, exc: BaseException) -> Path | None:
    """Write ``exc``'s traceback, under the heading ``what`` (the command or request), to
    the log; returns the file's path, or ``None`` when it went to stderr.

    ``exc`` is marked, so that :class:`DailyLogHandler` does not write it a second time
    when a server logs it again on its way out.
    """
    details = "".join(traceback.format_exception(exc))
    with contextlib.suppress(AttributeError):  # a built-in exception without __dict__
        setattr(exc, _RECORDED, True)
    return write_entry(home, now, f"{what}\n{details}")


def unexpected_error_text(path: Path | None) -> str:
    """The one sentence a teacher reads for an unexpected error, with what to do."""
    if path is None:
        return t(
            "ClassCast failed because of an error in the program. The details were printed "
            "above. Try again; if it happens again, send that text to the administrator."
        )
    return t(
        "ClassCast failed because of an error in the program. The details were written to "
        "{path}. Try again; if it happens again, send that file to the administrator.",
        path=str(path),
    )


_RECORDED: Final = "_classcast_recorded"


def not_recorded(record: logging.LogRecord) -> bool:
    """A logging filter: drop a record whose exception :func:`record_exception` wrote."""
    exc = record.exc_info[1] if record.exc_info else None
    return not getattr(exc, _RECORDED, False)


class DailyLogHandler(logging.Handler):
    """A logging handler for ``ERROR`` and above: each record, with its traceback, goes
    to the day's log file under ``home`` (stderr when that cannot be written)."""

    def __init__(self, home: Path, now: Callable[[], datetime] = datetime.now) -> None:
        super().__init__(logging.ERROR)
        self.home = home
        self.now = now
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self.addFilter(not_recorded)

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # logging must never raise into the app
            write_entry(self.home, self.now(), self.format(record))


class OneLineFormatter(logging.Formatter):
    """A record's message on one line, without its traceback (which the log file has)."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage().replace("\n", " ")


def _stderr() -> TextIO:
    return sys.stderr
