"""A real avahi-daemon inside a test's network namespace, and avahi-browse beside it.

The third-party mDNS stack a school's Linux machines run. It never sees the machine's
real interfaces: it runs inside one namespace of a :func:`tests.netns.netns_pair`, in a
private mount namespace where ``/run`` is an empty tmpfs (its pid file and socket) and
``/etc/avahi`` is the test's own directory (its configuration and static services),
on a private D-Bus system bus (a ``dbus-daemon`` of the test's own, which
``avahi-browse`` needs to talk to the daemon). Everything is stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape

import pytest

from tests.netns import NetnsPair
from tests.processes import stop_process

TOOLS = ("avahi-daemon", "avahi-browse", "dbus-daemon", "unshare")

START_TIMEOUT_S = 15.0
"""How long the bus and the daemon may take to start."""

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

_DAEMON_CONFIG = """[server]
host-name={host_name}
use-ipv4=yes
use-ipv6=no
allow-interfaces={interface}
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000

[wide-area]
enable-wide-area=no

[publish]
publish-hinfo=no
publish-workstation=no
"""

# In a mount namespace of its own: /run and /etc/avahi are the test's, nobody else's.
_DAEMON_SHELL = (
    "mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon"
    ' && mount --bind "$1" /etc/avahi'
    " && exec avahi-daemon -f /etc/avahi/avahi-daemon.conf"
    " --no-drop-root --no-chroot --no-rlimits --no-proc-title"
)


def skip_unless_installed() -> None:
    """Skip the calling test when avahi or D-Bus is missing (``scripts/setup.sh --test``)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed: scripts/setup.sh --test installs "
            "avahi-daemon, avahi-utils and dbus"
        )


@dataclass(frozen=True, slots=True)
class StaticService:
    """A service avahi publishes from a file in ``/etc/avahi/services``."""

    name: str
    service_type: str
    port: int
    txt: Mapping[str, str]

    def xml(self) -> str:
        records = "".join(
            f"    <txt-record>{escape(f'{key}={value}')}</txt-record>\n"
            for key, value in self.txt.items()
        )
        return (
            "<?xml version='1.0' standalone='no'?>\n"
            '<!DOCTYPE service-group SYSTEM "avahi-service.dtd">\n'
            f"<service-group>\n  <name>{escape(self.name)}</name>\n"
            f'  <service protocol="ipv4">\n    <type>{escape(self.service_type)}</type>\n'
            f"    <port>{self.port}</port>\n{records}  </service>\n</service-group>\n"
        )


@dataclass(frozen=True, slots=True)
class Resolved:
    """One service as ``avahi-browse -rp`` resolved it (its escapes decoded)."""

    name: str
    host_name: str
    address: str
    port: int
    txt: dict[str, str]


class AvahiDaemon:
    """avahi-daemon in ``pair.ns2`` on ``pair.dev2``, on its own bus; see the module."""

    def __init__(self, pair: NetnsPair, root: Path, *services: StaticService) -> None:
        self.pair = pair
        self.root = root
        self.services = services
        self.socket = root / "system_bus_socket"
        self.env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={self.socket}"}
        self.host_name = f"cc-avahi-{os.getpid()}"
        self._procs: list[subprocess.Popen[str]] = []

    def start(self) -> None:
        etc = self.root / "avahi"
        (etc / "services").mkdir(parents=True)
        (etc / "avahi-daemon.conf").write_text(
            _DAEMON_CONFIG.format(host_name=self.host_name, interface=self.pair.dev2),
            encoding="utf-8",
        )
        for n, service in enumerate(self.services):
            (etc / "services" / f"s{n}.service").write_text(service.xml(), encoding="utf-8")
        bus_config = self.root / "bus.conf"
        bus_config.write_text(_BUS_CONFIG.format(socket=self.socket), encoding="utf-8")
        bus = self._spawn(
            ["dbus-daemon", f"--config-file={bus_config}", "--nofork", "--print-address"]
        )
        _read_until(bus, bus.stdout, "unix:path=", "dbus-daemon")
        private_mounts = ["unshare", "--mount", "--propagation", "private"]
        daemon = self._spawn([*private_mounts, "sh", "-c", _DAEMON_SHELL, "avahi", str(etc)])
        # avahi-daemon logs to stderr; each static service says when it is established.
        _read_until(daemon, daemon.stderr, "Server startup complete", "avahi-daemon")
        for _ in self.services:
            _read_until(daemon, daemon.stderr, "successfully established", "avahi-daemon")

    def stop(self) -> None:
        for proc in reversed(self._procs):
            stop_process(proc, timeout_s=5)
        self._procs.clear()

    def browse(self, service_type: str, found: str, timeout_s: float = 15.0) -> Resolved:
        """Run ``avahi-browse -rp service_type`` until a resolved service whose TXT has
        ``found`` (``key=value``) appears; return it."""
        browser = self._spawn(["avahi-browse", "-rp", service_type])
        try:
            while True:
                line = _read_until(browser, browser.stdout, "=;", "avahi-browse", timeout_s)
                resolved = _parse_resolved(line)
                if found in [f"{k}={v}" for k, v in resolved.txt.items()]:
                    return resolved
        finally:
            stop_process(browser, timeout_s=5)

    def _spawn(self, argv: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.pair.ns2, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        self._procs.append(proc)
        return proc


@contextmanager
def avahi_daemon(pair: NetnsPair, root: Path, *services: StaticService) -> Iterator[AvahiDaemon]:
    """Start :class:`AvahiDaemon` publishing ``services``; stop it on exit."""
    skip_unless_installed()
    daemon = AvahiDaemon(pair, root, *services)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


def _read_until(
    proc: subprocess.Popen[str],
    stream: IO[str] | None,
    marker: str,
    what: str,
    timeout_s: float = START_TIMEOUT_S,
) -> str:
    """Read ``stream`` (a pipe of ``proc``) until a line containing ``marker``."""
    assert stream is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what} did not say {marker!r} in {timeout_s} s: {seen}")
        ready, _, _ = select.select([stream], [], [], left)
        if not ready:
            continue
        line = stream.readline()
        if not line:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1)
            raise RuntimeError(f"{what} exited ({proc.returncode}): {''.join(seen)}")
        if marker in line:
            return line
        seen.append(line)


_ESCAPE = re.compile(rb"\\(\d{3})")


def _unescape(text: str) -> str:
    """avahi-browse's ``\\DDD`` (a byte in decimal) decoded, as UTF-8."""
    raw = _ESCAPE.sub(lambda m: bytes([int(m[1])]), text.encode("utf-8"))
    return raw.decode("utf-8")


def _parse_resolved(line: str) -> Resolved:
    # =;iface;proto;name;type;domain;host;address;port;"k=v" "k=v"...
    fields = line.rstrip("\n").split(";", 9)
    txt = dict(
        _unescape(item).split("=", 1) for item in re.findall(r'"((?:[^"\\]|\\.)*)"', fields[9])
    )
    return Resolved(_unescape(fields[3]), fields[6], fields[7], int(fields[8]), txt)
