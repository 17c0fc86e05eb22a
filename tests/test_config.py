"""The kiosk's settings file (kiosk/config.py): the ``timezone`` of what the panel shows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kiosk.cli import config_error_text
from kiosk.config import ConfigError, KioskConfig, load_config


def test_timezone_is_read_from_kiosk_toml(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text('timezone = "Asia/Novosibirsk"\n', encoding="utf-8")
    config = load_config(path)
    assert config.timezone == "Asia/Novosibirsk"
    assert config.zone() == ZoneInfo("Asia/Novosibirsk")


def test_without_timezone_the_system_zone_is_used() -> None:
    config = KioskConfig()
    assert config.timezone is None
    moment = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert moment.astimezone(config.zone()).utcoffset() == moment.astimezone().utcoffset()


@pytest.mark.parametrize("zone", ["Mars/Olympus", "UTC+7", "../etc/passwd", ""])
def test_an_unknown_timezone_is_refused_in_russian(
    tmp_path: Path, zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(f'timezone = "{zone}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.reason, caught.value.key) == ("timezone", "timezone")
    monkeypatch.setenv("CLASSCAST_LANG", "ru")
    text = config_error_text(caught.value)
    assert "не известный часовой пояс" in text
    assert "Asia/Novosibirsk" in text
    assert str(path) in text


def test_timezone_must_be_text(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text("timezone = 7\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.reason == "wrong_type"


def test_school_id_is_read_from_kiosk_toml(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text('school = "Школа № 5"\nschool_id = "school-5"\n', encoding="utf-8")
    config = load_config(path)
    assert (config.school, config.school_id) == ("Школа № 5", "school-5")
    assert KioskConfig().school_id == ""


@pytest.mark.parametrize(
    "value", ["", "Школа-5", "School-5", "-5", "a b", "x" * 65, "a/b", "a\u200bb"]
)
def test_a_bad_school_id_is_refused_in_russian(
    tmp_path: Path, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(f'school_id = "{value}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.reason, caught.value.key) == ("school_id", "school_id")
    monkeypatch.setenv("CLASSCAST_LANG", "ru")
    text = config_error_text(caught.value)
    assert "не идентификатор школы" in text
    assert "school-17" in text


@pytest.mark.parametrize("value", ["a", "0", "school-5", "sch_5.msk", "x" * 64])
def test_school_ids_at_both_ends_are_accepted(tmp_path: Path, value: str) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(f'school_id = "{value}"\n', encoding="utf-8")
    assert load_config(path).school_id == value
