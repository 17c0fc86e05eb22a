"""Compile the translation catalogues (``.po``) into the ``.mo`` files the programs read.

Run ``python -m scripts.compile_catalogues`` (``make catalogues``) after editing a
``.po`` file under ``kiosk/locale``, ``controller/locale`` or ``i18n/locale``, and commit
the ``.mo`` file with it: the programs read only the ``.mo`` files (stdlib :mod:`gettext`), so a
checkout or an installed wheel works without a build step. ``--check`` writes nothing
and exits 1 when a ``.mo`` file is missing, stale or has no ``.po``; a test runs it.

Needs Babel (the ``dev`` extra). Fuzzy and untranslated entries are left out of the
``.mo`` file, as gettext's ``msgfmt`` does. A ``.mo`` file whose messages already match
its ``.po`` is left alone, so that another Babel version does not rewrite it for its
``Generated-By`` header alone.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import PoFileError, read_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kiosk", "controller", "i18n")
"""The packages with a ``locale/<lang>/LC_MESSAGES/<domain>.po`` tree."""

_Content = tuple[list[tuple[str, str]], list[tuple[str, str, str]]]


def sources() -> list[Path]:
    """Every ``.po`` file of the project."""
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg / "locale").glob("*/*/*.po"))


def compiled() -> list[Path]:
    """Every ``.mo`` file of the project."""
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg / "locale").glob("*/*/*.mo"))


def read(po: Path) -> Catalog:
    """The catalogue of a ``.po`` file (its locale and domain from its path).

    Raises:
        PoFileError: the file is not valid ``.po`` syntax.
    """
    with po.open("rb") as f:
        return read_po(f, locale=po.parent.parent.name, domain=po.stem, abort_invalid=True)


def compile_po(po: Path) -> bytes:
    """The ``.mo`` file compiled from ``po``, without fuzzy or untranslated entries.

    Raises:
        PoFileError: the file is not valid ``.po`` syntax.
        ValueError: Babel's checks found an error in an entry (placeholders, plurals).
    """
    catalog = read(po)
    errors = [
        f"{po.relative_to(ROOT)}:{message.lineno}: {error}"
        for message, message_errors in catalog.check()
        for error in message_errors
    ]
    if errors:
        raise ValueError("\n".join(errors))
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def content(mo: bytes) -> _Content:
    """What a ``.mo`` file says, whichever Babel wrote it: its headers and messages."""
    catalog = read_mo(io.BytesIO(mo))
    headers = [(k, v) for k, v in catalog.mime_headers if k != "Generated-By"]
    messages = [(str(m.id), str(m.string), m.context or "") for m in catalog if m.id]
    return headers, sorted(messages)


def fresh_mo(po: Path) -> bytes | None:
    """The ``.mo`` file ``po`` compiles to, or ``None`` when the one next to it says the same."""
    mo, committed = compile_po(po), po.with_suffix(".mo")
    if committed.exists() and content(committed.read_bytes()) == content(mo):
        return None
    return mo


def problems() -> list[str]:
    """What ``--check`` reports: stale or missing ``.mo`` files, ``.mo`` files with no ``.po``."""
    found = [f"{_name(po, '.mo')} is stale or missing" for po in sources() if fresh_mo(po)]
    found += [f"{_name(mo, '.mo')} has no .po file" for mo in compiled() if not _has_po(mo)]
    return found


def _name(path: Path, suffix: str) -> str:
    return str(path.with_suffix(suffix).relative_to(ROOT))


def _has_po(mo: Path) -> bool:
    return mo.with_suffix(".po").exists()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.compile_catalogues",
        description="Compile every .po file of kiosk/ and controller/ into its .mo file.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a .mo file is stale"
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            found = problems()
            for problem in found:
                print(f"{problem}: run `make catalogues`", file=sys.stderr)
            return 1 if found else 0
        for po in sources():
            mo = fresh_mo(po)
            if mo is not None:
                po.with_suffix(".mo").write_bytes(mo)
            print(f"{'compiled' if mo else 'up to date'}: {_name(po, '.mo')}")
    except (PoFileError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
