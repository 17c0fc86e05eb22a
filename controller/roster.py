"""The school's roster of teachers, and which controller is which teacher.

Usage records name a *controller* (``teacher_id``: one teacher's computer, a device)
and the name typed on it (``teacher_name``). Reports count *people*: the roster, kept
in the school database (:mod:`controller.schooldb`, schema version 4), says who they are.

* :func:`parse_roster_csv` reads the school's list as a Russian school exports it
  (UTF-8 with or without BOM, or Windows-1251; ``;`` or ``,``; with a header row or
  not) into :class:`RosterEntry` values, or refuses the whole file with every bad line
  named (:class:`RosterFileError`). Only the school's id and the name are read: no other
  personal data is stored (minimum data, 152-FZ).
* :class:`Roster` imports it (:meth:`Roster.import_entries`: names updated, ids kept,
  teachers missing from the new file kept and marked as left), binds controllers to
  entries (:meth:`Roster.bind`, :meth:`Roster.unbind`), merges two entries that are one
  person (:meth:`Roster.merge`), records each decision, and gives the reports their
  map (:meth:`Roster.view` → :class:`RosterView`).

Binding
-------
An admin's binding always wins (``bind``; ``unbind`` binds to nobody). A controller
without one is bound *by name* when the names typed on it match exactly one current
roster entry: names are compared after :func:`name_key` (case, ё/е and runs of spaces
ignored; nothing else: no initials, no reordering). A by-name binding is not stored:
it is worked out from the roster and the names each time, so it follows the roster.
Entries merged into another count as that other; a teacher who left stays a target.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from sqlite_utils import Database

from controller.schooldb import SchoolDb
from protocol.clock import iso_utc
from protocol.errors import UsageLogError
from protocol.text import is_clean

__all__ = [
    "MAX_ROSTER_FILE_BYTES",
    "MAX_ROSTER_ROWS",
    "MAX_TEACHER_ID_CHARS",
    "MAX_TEACHER_NAME_CHARS",
    "Device",
    "ImportResult",
    "Roster",
    "RosterEntry",
    "RosterError",
    "RosterFileError",
    "RosterView",
    "RowProblem",
    "Teacher",
    "name_key",
    "parse_roster_csv",
    "roster_view",
]

MAX_ROSTER_FILE_BYTES: Final = 1024 * 1024
"""Largest roster file read (1 MiB: some ten thousand lines of id and name)."""
MAX_ROSTER_ROWS: Final = 5_000
"""Most teachers in one roster file (the largest schools have a few hundred)."""
MAX_TEACHER_NAME_CHARS: Final = 200
"""Longest teacher's name in a roster file."""
MAX_TEACHER_ID_CHARS: Final = 64
"""Longest school id of a teacher in a roster file."""
MAX_SHOWN_PROBLEMS: Final = 20
"""Bad lines named in one refusal (the count says how many more)."""

_ID_HEADINGS: Final = frozenset(
    {"id", "ид", "код", "идентификатор", "табельный номер", "таб номер", "номер", "teacher_id"}
)
_NAME_HEADINGS: Final = frozenset({"фио", "ф и о", "name", "имя учителя", "учитель", "сотрудник"})
_PART_HEADINGS: Final = ("фамилия", "имя", "отчество")
"""Headings of a list whose names come in three columns (joined in this order)."""

ProblemCode = Literal[
    "no_id", "no_name", "id_too_long", "name_too_long", "control", "duplicate_id", "one_column"
]


# --------------------------------------------------------------------------- errors


class RosterError(UsageLogError):
    """A roster command cannot be carried out (unknown teacher id or controller).

    ``what`` says which kind (``teacher`` or ``device``), ``value`` is the value given.
    """

    code = "roster"

    def __init__(self, what: Literal["teacher", "device", "same"], value: str) -> None:
        super().__init__(f"no such {what}: {value}")
        self.what, self.value = what, value


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A bad line of a roster file: ``line`` (1-based, as an editor numbers it), what is
    wrong (``code``) and, for a repeated id, the line it first appeared on (``other``)."""

    line: int
    code: ProblemCode
    other: int = 0


class RosterFileError(UsageLogError):
    """A roster file was refused whole: nothing was imported.

    ``reason`` is ``too_large``, ``too_many_rows``, ``not_text``, ``bad_csv`` (a quote
    never closed), ``empty`` or ``rows``
    (then ``problems`` names each bad line). Fix the file and import it again.
    """

    code = "roster_file"

    def __init__(
        self,
        reason: Literal["too_large", "too_many_rows", "not_text", "bad_csv", "empty", "rows"],
        problems: Sequence[RowProblem] = (),
    ) -> None:
        super().__init__(f"roster file refused: {reason} {list(problems)[:MAX_SHOWN_PROBLEMS]}")
        self.reason = reason
        self.problems = tuple(problems)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One teacher of a roster file: the school's id and the name, from line ``line``."""

    teacher_id: str
    name: str
    line: int = 0


@dataclass(frozen=True, slots=True)
class Teacher:
    """A roster entry in the database. ``left_at`` (UTC) is set when an import no longer
    listed them; ``merged_into`` is the entry they were merged into (the same person)."""

    teacher_id: str
    name: str
    left_at: str | None
    merged_into: str | None


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What :meth:`Roster.import_entries` did: entries added, renamed, unchanged, marked
    as left (missing from the file) and back (listed again after they had left)."""

    added: int
    renamed: int
    unchanged: int
    left: int
    back: int


BindingHow = Literal["admin", "name", "none"]


@dataclass(frozen=True, slots=True)
class Device:
    """A controller seen in the usage records, the names typed on it and whom it counts as.

    ``how`` is ``admin`` (an admin bound it: ``who``, ``bound_at``), ``name`` (its names
    match exactly one roster entry) or ``none``; then ``teacher_id`` is None, and
    ``candidates`` lists the entries its names matched when they matched more than one.
    """

    device_id: str
    names: tuple[str, ...]
    teacher_id: str | None
    teacher_name: str | None
    how: BindingHow
    who: str = ""
    bound_at: str = ""
    candidates: tuple[str, ...] = ()


@dataclass(slots=True)
class RosterView:
    """What the reports need of the roster: people and the controllers that are them.

    ``people`` maps each current roster id to the name (teachers who left and entries
    merged away are not listed: they appear only through records); ``names`` every
    entry's name by id. :meth:`person` says whom a controller counts as.
    """

    people: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    admin: dict[str, str] = field(default_factory=dict)
    by_name: dict[str, set[str]] = field(default_factory=dict)
    device_names: dict[str, set[str]] = field(default_factory=dict)
    _merged: dict[str, str] = field(default_factory=dict)

    def resolve(self, teacher_id: str) -> str:
        """The entry ``teacher_id`` counts as after merges."""
        seen = {teacher_id}
        while (target := self._merged.get(teacher_id)) is not None and target not in seen:
            seen.add(target)
            teacher_id = target
        return teacher_id

    def match(self, names: Iterable[str]) -> tuple[str, ...]:
        """The entries (after merges) whose name matches one of ``names`` (:func:`name_key`);
        a name listed under two different entries matches neither."""
        found = set()
        for name in names:
            ids = {self.resolve(i) for i in self.by_name.get(name_key(name), ())}
            if len(ids) == 1:
                found |= ids
        return tuple(sorted(found))

    def person(self, device_id: str, typed: Iterable[str] = ()) -> str | None:
        """The roster id controller ``device_id`` counts as, or None (not on the roster).

        Args:
            device_id: ``plays.teacher_id``.
            typed: Names typed on it besides those the database gathered (a report's rows).
        """
        if device_id in self.admin:
            target = self.admin[device_id]
            return self.resolve(target) if target else None
        names = self.device_names.get(device_id, set()) | set(typed)
        matched = self.match(names)
        return matched[0] if len(matched) == 1 else None


def roster_view(
    teachers: Iterable[Sequence[Any]],
    bindings: Iterable[Sequence[Any]],
    device_names: Iterable[Sequence[Any]],
) -> RosterView:
    """The :class:`RosterView` of a roster's rows, wherever they are kept (a school's file,
    the district's database).

    Args:
        teachers: ``(teacher_id, name, left_at, merged_into)`` per roster entry.
        bindings: ``(device_id, teacher_id)`` per admin's binding.
        device_names: ``(device_id, name)`` per name typed on a controller.
    """
    result = RosterView()
    for teacher_id, name, left_at, merged_into in teachers:
        result.names[teacher_id] = name
        if merged_into:
            result._merged[teacher_id] = merged_into
        elif left_at is None:
            result.people[teacher_id] = name
        result.by_name.setdefault(name_key(name), set()).add(teacher_id)
    for device_id, teacher_id in bindings:
        result.admin[device_id] = teacher_id
    for device_id, name in device_names:
        result.device_names.setdefault(device_id, set()).add(name)
    return result


def name_key(name: str) -> str:
    """``name`` as compared for binding by name: Unicode NFC, case folded, ``ё`` as ``е``,
    spaces trimmed and each run of them one space. Nothing else is forgiven."""
    text = unicodedata.normalize("NFC", name).casefold().replace("ё", "е")
    return " ".join(text.split())


# --------------------------------------------------------------------------- the file


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict")
    if b"\0" in data or data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RosterFileError("not_text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1251", errors="replace")


def _heading(cell: str) -> str:
    return " ".join(cell.casefold().replace("ё", "е").replace(".", " ").split())


def parse_roster_csv(data: bytes) -> list[RosterEntry]:
    """The teachers listed in a roster file, or the file refused whole.

    The file is UTF-8 (with or without a byte order mark) or else Windows-1251; fields
    are separated by ``;``, ``,`` or a tab (whichever the first line has most of). A
    first line whose cells are headings (``Код``/``ID``/``Табельный номер`` and
    ``ФИО``/``Учитель``, or ``Фамилия``, ``Имя``, ``Отчество``) says which columns to
    read; without one, the first column is the id and the second the name. Other
    columns are not read. Empty lines are skipped.

    Args:
        data: The file's bytes.

    Returns:
        One entry per teacher, in file order.

    Raises:
        RosterFileError: The file is over :data:`MAX_ROSTER_FILE_BYTES`, holds more than
            :data:`MAX_ROSTER_ROWS` teachers, is not text, lists nobody, or has bad lines
            (no id, no name, too long, control characters, an id twice): each is named.
    """
    if len(data) > MAX_ROSTER_FILE_BYTES:
        raise RosterFileError("too_large")
    text = _decode(data)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    delimiter = max(";,\t", key=first.count)
    try:
        rows = list(enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), 1))
    except csv.Error:  # a field over csv's limit: a quote never closed
        raise RosterFileError("bad_csv") from None
    rows = [(n, [c.strip() for c in row]) for n, row in rows if any(c.strip() for c in row)]
    if not rows:
        raise RosterFileError("empty")
    heads = [_heading(c) for c in rows[0][1]]
    id_col, name_cols = 0, [1]
    if any(h in _ID_HEADINGS for h in heads):
        id_col = next(i for i, h in enumerate(heads) if h in _ID_HEADINGS)
        named = [i for i, h in enumerate(heads) if h in _NAME_HEADINGS]
        parts = [heads.index(p) for p in _PART_HEADINGS if p in heads]
        name_cols = named[:1] or parts or [i for i in range(len(heads)) if i != id_col][:1]
        rows = rows[1:]
    if len(rows) > MAX_ROSTER_ROWS:
        raise RosterFileError("too_many_rows")
    entries: list[RosterEntry] = []
    problems: list[RowProblem] = []
    first_line: dict[str, int] = {}
    for number, cells in rows:
        if len(cells) <= max(id_col, *name_cols):
            problems.append(RowProblem(number, "one_column"))
            continue
        teacher_id = cells[id_col]
        name = " ".join(" ".join(cells[i] for i in name_cols if cells[i]).split())
        problem: ProblemCode | None = None
        if not teacher_id:
            problem = "no_id"
        elif not name:
            problem = "no_name"
        elif len(teacher_id) > MAX_TEACHER_ID_CHARS:
            problem = "id_too_long"
        elif len(name) > MAX_TEACHER_NAME_CHARS:
            problem = "name_too_long"
        elif not (is_clean(teacher_id) and is_clean(name)) or "\ufffd" in name + teacher_id:
            problem = "control"
        elif teacher_id in first_line:
            problems.append(RowProblem(number, "duplicate_id", first_line[teacher_id]))
            continue
        if problem is not None:
            problems.append(RowProblem(number, problem))
            continue
        first_line[teacher_id] = number
        entries.append(RosterEntry(teacher_id, name, number))
    if problems:
        raise RosterFileError("rows", problems)
    if not entries:
        raise RosterFileError("empty")
    return entries


# --------------------------------------------------------------------------- the database


_NAMES_UPTO: Final = "device_names_upto"
"""Settings key: the last ``plays`` row id whose typed name is in ``device_names``."""


class Roster:
    """The roster in the school database ``db`` (which stays open: close it yourself)."""

    def __init__(self, db: SchoolDb) -> None:
        self.db = db

    # ------------------------------------------------------------------ reading

    def teachers(self) -> list[Teacher]:
        """Every roster entry (current, left, merged), by name.

        Raises:
            UsageLogError: The file cannot be read.
        """
        rows = self.db.query(
            "SELECT teacher_id, name, left_at, merged_into FROM teachers ORDER BY name, teacher_id",
            [],
            action="read the roster",
        )
        return [Teacher(*row) for row in rows]

    def gather_names(self) -> None:
        """Add the names typed on each controller in records stored since the last call.

        Reads only the new rows (by row id). Called by every roster command and after
        collection; a report also reads the names in its own rows.

        Raises:
            UsageLogError: The file cannot be read or written.
        """
        with self.db.transaction("gather the names typed on each controller") as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", [_NAMES_UPTO]).fetchone()
            upto = int(row[0]) if row else 0
            top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM plays").fetchone()[0]
            if top <= upto:
                return
            conn.execute(
                "INSERT OR IGNORE INTO device_names SELECT DISTINCT teacher_id, teacher_name "
                "FROM plays WHERE id > ? AND id <= ?",
                [upto, top],
            )
            conn.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                [_NAMES_UPTO, str(top)],
            )

    def view(self) -> RosterView:
        """The map the reports use (:class:`RosterView`), from what the database holds.

        Raises:
            UsageLogError: The file cannot be read.
        """
        return roster_view(
            self.db.query(
                "SELECT teacher_id, name, left_at, merged_into FROM teachers",
                [],
                action="read the roster",
            ),
            self.db.query(
                "SELECT device_id, teacher_id FROM teacher_bindings", [], action="read the roster"
            ),
            self.db.query("SELECT device_id, name FROM device_names", [], action="read the roster"),
        )

    def devices(self) -> list[Device]:
        """Every controller seen in the records, with its names and whom it counts as.

        Raises:
            UsageLogError: The file cannot be read or written.
        """
        self.gather_names()
        view = self.view()
        bindings = {
            device_id: (teacher_id, who, at)
            for device_id, teacher_id, who, at in self.db.query(
                "SELECT device_id, teacher_id, who, bound_at FROM teacher_bindings",
                [],
                action="read the roster",
            )
        }
        result = []
        for device_id in sorted(set(view.device_names) | set(bindings)):
            names = tuple(sorted(view.device_names.get(device_id, ())))
            if device_id in bindings:
                target, who, at = bindings[device_id]
                person = view.resolve(target) if target else None
                result.append(
                    Device(
                        device_id,
                        names,
                        person,
                        view.names.get(person) if person else None,
                        "admin" if person else "none",
                        who,
                        at,
                    )
                )
                continue
            matched = view.match(names)
            if len(matched) == 1:
                person = matched[0]
                result.append(Device(device_id, names, person, view.names[person], "name"))
            else:
                result.append(Device(device_id, names, None, None, "none", candidates=matched))
        return result

    # ------------------------------------------------------------------ changing

    def import_entries(
        self, entries: Sequence[RosterEntry], who: str, now: datetime
    ) -> ImportResult:
        """Make ``entries`` the school's roster, in one transaction.

        Listed ids are added or renamed (an id never changes: it is the school's); a
        teacher no longer listed is kept, marked as left (``left_at``): their records
        still count as theirs, and they are not listed with 0 lessons any more. A
        teacher listed again is back. Merges stay. The import is logged.

        Raises:
            UsageLogError: The file cannot be written; nothing was changed.
        """
        moment = iso_utc(now)
        stored = {t.teacher_id: t for t in self.teachers()}
        listed = {e.teacher_id for e in entries}
        added = renamed = unchanged = left = back = 0
        with self.db.transaction("import the roster") as conn:
            for entry in entries:
                old = stored.get(entry.teacher_id)
                if old is None:
                    added += 1
                    conn.execute(
                        "INSERT INTO teachers (teacher_id, name) VALUES (?, ?)",
                        [entry.teacher_id, entry.name],
                    )
                    continue
                if old.left_at is not None:
                    back += 1
                if old.name != entry.name:
                    renamed += 1
                elif old.left_at is None:
                    unchanged += 1
                conn.execute(
                    "UPDATE teachers SET name = ?, left_at = NULL WHERE teacher_id = ?",
                    [entry.name, entry.teacher_id],
                )
            for teacher in stored.values():
                if teacher.teacher_id not in listed and teacher.left_at is None:
                    left += 1
                    conn.execute(
                        "UPDATE teachers SET left_at = ? WHERE teacher_id = ?",
                        [moment, teacher.teacher_id],
                    )
            result = ImportResult(added, renamed, unchanged, left, back)
            detail = (
                f"{len(entries)} listed: {added} added, {renamed} renamed, {left} left, {back} back"
            )
            self._log(conn, "import", "", "", detail, who, moment)
        self.gather_names()
        return result

    def bind(self, device_id: str, teacher_id: str, who: str, now: datetime) -> Teacher:
        """Bind controller ``device_id`` to roster entry ``teacher_id`` (an admin's decision,
        recorded; it wins over any binding by name).

        Returns:
            The entry the controller now counts as (after merges).

        Raises:
            RosterError: No such entry, or no such controller in the records.
            UsageLogError: The file cannot be written.
        """
        teacher = self._teacher(teacher_id)
        self._device(device_id)
        moment = iso_utc(now)
        with self.db.transaction("bind a controller") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO teacher_bindings VALUES (?, ?, ?, ?)",
                [device_id, teacher_id, who, moment],
            )
            self._log(conn, "bind", device_id, teacher_id, teacher.name, who, moment)
        return self._teacher(self.view().resolve(teacher_id))

    def unbind(self, device_id: str, who: str, now: datetime) -> None:
        """Make controller ``device_id`` count as nobody on the roster (an admin's
        decision, recorded): binding by name no longer applies to it. Bind it again with
        :meth:`bind`.

        Raises:
            RosterError: No such controller in the records.
            UsageLogError: The file cannot be written.
        """
        self._device(device_id)
        moment = iso_utc(now)
        with self.db.transaction("unbind a controller") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO teacher_bindings VALUES (?, '', ?, ?)",
                [device_id, who, moment],
            )
            self._log(conn, "unbind", device_id, "", "", who, moment)

    def merge(self, keep_id: str, other_id: str, who: str, now: datetime) -> Teacher:
        """Record that entries ``other_id`` and ``keep_id`` are one person: everything of
        ``other_id`` (bindings, name matches) counts as ``keep_id`` from now on.

        Raises:
            RosterError: No such entry, or the two are one entry already.
            UsageLogError: The file cannot be written.
        """
        keep, other = self._teacher(keep_id), self._teacher(other_id)
        view = self.view()
        if view.resolve(keep_id) == view.resolve(other_id):
            raise RosterError("same", other_id)
        moment = iso_utc(now)
        with self.db.transaction("merge roster entries") as conn:
            conn.execute(
                "UPDATE teachers SET merged_into = ? WHERE teacher_id = ?", [keep_id, other_id]
            )
            detail = f"{other.name} is {keep.name}"
            self._log(conn, "merge", other_id, keep_id, detail, who, moment)
        return keep

    def log(self) -> list[tuple[str, str, str, str, str, str]]:
        """Every roster decision, oldest first: (action, device, teacher id, detail, who, when).

        Raises:
            UsageLogError: The file cannot be read.
        """
        rows = self.db.query(
            "SELECT action, device_id, teacher_id, detail, who, decided_at FROM roster_log "
            "ORDER BY id",
            [],
            action="read the roster log",
        )
        return [tuple(str(v) for v in row) for row in rows]  # type: ignore[misc]

    # ------------------------------------------------------------------ helpers

    def _teacher(self, teacher_id: str) -> Teacher:
        rows = self.db.query(
            "SELECT teacher_id, name, left_at, merged_into FROM teachers WHERE teacher_id = ?",
            [teacher_id],
            action="read the roster",
        )
        if not rows:
            raise RosterError("teacher", teacher_id)
        return Teacher(*rows[0])

    def _device(self, device_id: str) -> None:
        self.gather_names()
        if not self.db.query(
            "SELECT 1 FROM device_names WHERE device_id = ? LIMIT 1",
            [device_id],
            action="read the roster",
        ):
            raise RosterError("device", device_id)

    @staticmethod
    def _log(
        conn: Database, action: str, device_id: str, teacher_id: str, detail: str, who: str, at: str
    ) -> None:
        conn.execute(
            "INSERT INTO roster_log (action, device_id, teacher_id, detail, who, decided_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [action, device_id, teacher_id, detail, who, at],
        )
