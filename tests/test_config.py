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
