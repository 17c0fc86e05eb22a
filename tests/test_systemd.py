"""The systemd units are well-formed (checked by systemd-analyze when it is present)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"


def test_every_unit_file_is_there() -> None:
    names = {p.name for p in UNITS.iterdir()}
    assert {"classcast-collect.service", "classcast-collect.timer"} <= names


@pytest.mark.slow
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    classcast = Path(sys.executable).parent / "classcast"
    for unit in UNITS.iterdir():
        text = unit.read_text(encoding="utf-8")
        # The units name the installed path; point them at this installation to verify.
        (tmp_path / unit.name).write_text(text.replace("/usr/bin/classcast", str(classcast)))
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
