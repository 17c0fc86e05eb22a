"""The gettext catalogues: the .po sources, the committed .mo files, and the runtime reading them.

Which messages a catalogue must hold (and must not) is checked against the code in
tests/test_cli.py; this module checks the files themselves and how they are loaded.
"""

from __future__ import annotations

import gettext
import io
import logging
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from controller import i18n as controller_i18n
from i18n import Messages
from i18n.cli import CLICK_MESSAGES
from kiosk import i18n as kiosk_i18n
from scripts import compile_catalogues

PACKAGES = [controller_i18n.MESSAGES, kiosk_i18n.MESSAGES, CLICK_MESSAGES]
"""The catalogues of the project: the two programs' and click's words."""
IDS = ["controller", "kiosk", "click"]


def po_path(package: Messages) -> Path:
    return package.mo_path().with_suffix(".po")


def read(package: Messages) -> Catalog:
    with po_path(package).open("rb") as f:
        return read_po(f, abort_invalid=True)


def fields(text: str) -> set[str]:
    """The ``{placeholders}`` of a message (``{value!r}`` counts as ``value``)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.fixture
def fresh_catalogues() -> Iterator[None]:
    """Forget the loaded catalogues before and after the test (they are cached)."""
    Messages.catalogue.cache_clear()
    yield
    Messages.catalogue.cache_clear()


# --------------------------------------------------------------------------- the files


def test_every_po_file_is_found_and_its_mo_is_up_to_date() -> None:
    assert compile_catalogues.sources() == sorted(po_path(p) for p in PACKAGES)
    assert compile_catalogues.problems() == [], "run `make catalogues` and commit the .mo files"
    assert compile_catalogues.main(["--check"]) == 0


def test_the_check_notices_a_stale_mo_file(tmp_path: Path) -> None:
    po = tmp_path / "ru" / "LC_MESSAGES" / "x.po"
    po.parent.mkdir(parents=True)
    po.write_bytes(po_path(kiosk_i18n.MESSAGES).read_bytes())
    po.with_suffix(".mo").write_bytes(compile_catalogues.compile_po(po))
    assert compile_catalogues.fresh_mo(po) is None
    po.write_text(po.read_text("utf-8").replace("Код для подключения", "Код"), "utf-8")
    assert compile_catalogues.fresh_mo(po) is not None


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_the_po_header_is_russian_utf8(package: Messages) -> None:
    catalog = read(package)
    assert str(catalog.locale) == "ru"
    assert catalog.charset == "utf-8"
    assert catalog.num_plurals == 3
    assert not catalog.fuzzy


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_every_entry_is_translated_and_none_is_fuzzy(package: Messages) -> None:
    entries = [m for m in read(package) if m.id]
    assert entries
    assert [m.id for m in entries if not m.string] == []
    assert [m.id for m in entries if m.fuzzy] == []


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_placeholders_of_each_translation_are_those_of_its_msgid(package: Messages) -> None:
    for message in read(package):
        if not message.id:
            continue
        ids = [str(i) for i in message.id] if isinstance(message.id, tuple) else [str(message.id)]
        raw = message.string
        strings = [str(s) for s in raw] if isinstance(raw, tuple | list) else [str(raw)]
        # a plural entry: the first Russian form is the singular's, the others the plural's
        assert fields(strings[0]) == fields(ids[0]), message.id
        assert all(fields(string) == fields(ids[-1]) for string in strings[1:]), message.id
        braces = "python-brace-format" in message.flags
        assert braces == bool(fields(ids[0]) | fields(ids[-1])), message.id


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_the_runtime_lists_the_msgids_of_the_po(package: Messages) -> None:
    msgids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in read(package) if m.id}
    assert package.catalogue_msgids() == msgids


# --------------------------------------------------------------------------- the runtime


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_gettext_finds_the_committed_mo_file(package: Messages) -> None:
    mo = gettext.find(package.domain, str(package.locale_dir), languages=["ru"])
    assert mo == str(po_path(package).with_suffix(".mo"))
    assert isinstance(package.catalogue("ru"), gettext.GNUTranslations)
    assert type(package.catalogue("en")) is gettext.NullTranslations
    assert package.catalogue("ru") is package.catalogue("ru")  # loaded once


def test_t_follows_classcast_lang(monkeypatch: pytest.MonkeyPatch) -> None:
    assert controller_i18n.t("Sending media") == "Передача материалов"
    assert controller_i18n.t("{n} problems found.", n=2) == "Найдено нарушений: 2."
    assert kiosk_i18n.t("Language of the panel.") == "Язык панели."
    monkeypatch.setenv("CLASSCAST_LANG", "en")
    assert controller_i18n.t("Sending media") == "Sending media"
    assert controller_i18n.t("{n} problems found.", n=2) == "2 problems found."
    assert kiosk_i18n.t("Language of the panel.") == "Language of the panel."


def test_the_panel_follows_its_own_language_not_classcast_lang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLASSCAST_LANG", "en")
    assert kiosk_i18n.tr("ru", "Pairing code") == "Код для подключения"
    assert kiosk_i18n.tr("en", "Pairing code") == "Pairing code"


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_an_empty_message_stays_empty(package: Messages) -> None:
    """gettext("") is the catalogue's header; ``t(s.item_kind or "")`` must not print it."""
    assert package.catalogue("ru").gettext("").startswith("Project-Id-Version")
    assert package.t("") == ""


@pytest.mark.usefixtures("fresh_catalogues")
def test_panel_texts_are_read_from_the_mo_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog(locale="ru", domain=kiosk_i18n.MESSAGES.domain)
    catalog.add("Pairing code", "ПИН-код из файла")
    mo = tmp_path / "ru" / "LC_MESSAGES" / f"{kiosk_i18n.MESSAGES.domain}.mo"
    mo.parent.mkdir(parents=True)
    out = io.BytesIO()
    write_mo(out, catalog)
    mo.write_bytes(out.getvalue())
    monkeypatch.setattr(kiosk_i18n.MESSAGES, "locale_dir", tmp_path)
    assert kiosk_i18n.tr("ru", "Pairing code") == "ПИН-код из файла"
    assert kiosk_i18n.tr("ru", "Video") == "Video"  # not in that file
    assert kiosk_i18n.MESSAGES.catalogue_msgids() == {"Pairing code"}


@pytest.mark.usefixtures("fresh_catalogues")
@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_without_its_mo_file_a_program_speaks_english_and_says_why(
    package: Messages,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(package, "locale_dir", tmp_path)
    with caplog.at_level(logging.WARNING, logger="i18n"):
        assert package.t("Example:") == "Example:"
    assert "no ru catalogue" in caplog.text
