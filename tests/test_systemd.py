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


MAX_KIOSK_EXPOSURE = 2.0
"""`systemd-analyze security` exposure of the kiosk unit (0 = confined … 10 = exposed)."""


def test_kiosk_unit_raises_the_open_files_limit() -> None:
    # Connection caps, media files and VLC/Mesa/Chromium need more than the default 1024.
    unit = unit_settings("classcast-kiosk.service")
    assert unit["LimitNOFILE"] == ["65536"]


def _bytes(size: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def test_kiosk_unit_caps_memory_and_restarts_when_it_is_exceeded() -> None:
    unit = unit_settings("classcast-kiosk.service")
    high, top = _bytes(unit["MemoryHigh"][0]), _bytes(unit["MemoryMax"][0])
    # Room for the kiosk (~300 MB, flat) and Chromium; throttled before it is killed.
    assert 1024**3 <= high < top <= 4 * 1024**3
    # A process killed for memory stops the unit, and it is started again.
    assert unit["OOMPolicy"] == ["stop"]
    assert unit["Restart"] == ["always"]


def test_memory_sizes_are_read_in_binary_units() -> None:
    assert _bytes("1536M") == 1536 * 1024**2
    assert _bytes("2G") == 2 * 1024**3
    assert _bytes("4096") == 4096


def test_kiosk_unit_sandbox_directives() -> None:
    unit = unit_settings("classcast-kiosk.service")
    expected = {
        "CapabilityBoundingSet": [""],
        "AmbientCapabilities": [""],
        "ProtectHome": ["yes"],
        "PrivateMounts": ["yes"],
        "PrivateDevices": ["yes"],
        "DevicePolicy": ["closed"],
        "ProtectKernelTunables": ["yes"],
        "ProtectKernelModules": ["yes"],
        "ProtectKernelLogs": ["yes"],
        "ProtectControlGroups": ["yes"],
        "ProtectClock": ["yes"],
        "ProtectHostname": ["yes"],
        "ProtectProc": ["invisible"],
        "RestrictNamespaces": ["user pid net"],
        "LockPersonality": ["yes"],
        "RestrictRealtime": ["yes"],
        "RestrictSUIDSGID": ["yes"],
        "RemoveIPC": ["yes"],
        "UMask": ["0077"],
        "SystemCallErrorNumber": ["EPERM"],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"],
    }
    for key, value in expected.items():
        assert unit.get(key) == value, key
    # The GPU, input devices and sound are bound into the private /dev and allowed.
    assert unit["BindPaths"] == ["-/dev/dri -/dev/input -/dev/snd"]
    assert sorted(unit["DeviceAllow"]) == ["char-alsa rw", "char-drm rw", "char-input rw"]
    # An ordinary service's calls, plus chroot and seccomp for Chromium's sandbox.
    assert unit["SystemCallFilter"] == ["@system-service", "chroot seccomp @pkey", "~@resources"]
    # Chromium's sandbox needs its namespaces; /proc/meminfo etc. stay readable; teachers
    # and web pages are anywhere on the network.
    for absent in ("PrivateUsers", "ProcSubset", "PrivateNetwork", "IPAddressDeny"):
        assert absent not in unit, absent


def expand_syscalls(analyze: str, group: str) -> set[str]:
    """The system calls of ``group`` (``@name``), nested groups expanded."""
    listing = subprocess.run(
        [analyze, "syscall-filter", group], capture_output=True, text=True, timeout=30
    ).stdout
    calls: set[str] = set()
    for line in listing.splitlines()[1:]:
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        calls |= expand_syscalls(analyze, name) if name.startswith("@") else {name}
    return calls


def test_kiosk_unit_still_allows_what_the_kiosk_needs() -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    allowed: set[str] = set()
    for spec in unit_settings("classcast-kiosk.service")["SystemCallFilter"]:
        deny = spec.startswith("~")
        for name in spec.removeprefix("~").split():
            calls = expand_syscalls(analyze, name) if name.startswith("@") else {name}
            allowed = allowed - calls if deny else allowed | calls
    # Raising the open-files soft limit (glibc's setrlimit is prlimit64), Chromium's
    # namespace sandbox (clone, unshare, chroot, its own seccomp filters), V8's pkeys,
    # SysV shared memory for X11 MIT-SHM, memfd for Wayland buffers.
    needed = {"prlimit64", "clone", "unshare", "chroot", "seccomp", "pkey_alloc"}
    needed |= {"shmget", "shmat", "memfd_create", "mprotect", "ioctl", "epoll_wait"}
    assert needed <= allowed, needed - allowed
    assert not {"ptrace", "mount", "reboot", "settimeofday", "setrlimit"} & allowed


def test_kiosk_unit_exposure(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "classcast-kiosk.service"
    unit.write_text(installed((UNITS / unit.name).read_text(encoding="utf-8")))
    result = subprocess.run(
        [analyze, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    if found is None:
        pytest.skip(f"systemd-analyze cannot assess units offline: {result.stderr.strip()}")
    assert float(found.group(1)) <= MAX_KIOSK_EXPOSURE, result.stdout
