"""The systemd units are well-formed (checked by systemd-analyze when it is present)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"


def test_every_unit_file_is_there() -> None:
    names = {p.name for p in UNITS.iterdir()}
    assert {
        "classcast-collect.service",
        "classcast-collect.timer",
        "classcast-kiosk.service",
    } <= names


def installed(text: str) -> str:
    """Point ``/usr/bin/classcast`` and ``/usr/bin/classcast-kiosk`` at this installation."""
    bindir = Path(sys.executable).parent
    return re.sub(r"/usr/bin/(classcast(?:-kiosk)?)\b", lambda m: str(bindir / m.group(1)), text)


def test_installed_rewrites_both_commands() -> None:
    bindir = Path(sys.executable).parent
    text = "ExecStart=/usr/bin/classcast-kiosk --x\nExecStart=/usr/bin/classcast usage\n"
    assert installed(text) == (
        f"ExecStart={bindir / 'classcast-kiosk'} --x\nExecStart={bindir / 'classcast'} usage\n"
    )


@pytest.mark.slow
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for unit in UNITS.iterdir():
        text = unit.read_text(encoding="utf-8")
        # The units name the installed paths; point them at this installation to verify.
        (tmp_path / unit.name).write_text(installed(text))
    assert (tmp_path / "classcast-kiosk.service").exists()
    result = subprocess.run(
        [analyze, "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "Failed to connect to bus" not in line
    ]
    assert problems == []
    assert result.returncode == 0


def test_collect_timer_schedule_is_valid() -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    timer = (UNITS / "classcast-collect.timer").read_text(encoding="utf-8")
    for line in timer.splitlines():
        if line.startswith("OnCalendar="):
            spec = line.split("=", 1)[1]
            done = subprocess.run([analyze, "calendar", spec], capture_output=True, timeout=30)
            assert done.returncode == 0, spec


def unit_settings(name: str) -> dict[str, list[str]]:
    """``Key=value`` settings of a unit file (comments and sections dropped)."""
    settings: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_kiosk_unit_is_notify_with_watchdog_and_sandbox() -> None:
    unit = unit_settings("classcast-kiosk.service")
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "Restart": "always",
        "User": "classcast",
        "StateDirectory": "classcast-kiosk",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "SystemCallArchitectures": "native",
    }
    for key, value in expected.items():
        assert unit.get(key) == [value], key
    assert unit["ExecStart"] == [
        "/usr/bin/classcast-kiosk --config /etc/classcast/kiosk.toml --fullscreen"
    ]
    assert unit["WantedBy"] == ["graphical.target"]
    # Mesa's and Chromium's JITs need writable+executable memory.
    assert "MemoryDenyWriteExecute" not in unit
