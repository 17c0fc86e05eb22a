"""Test helpers for discovery: private network namespaces and an advertiser child process.

mDNS in tests never touches the machine's real interfaces (DESIGN §7): either zeroconf
is bound to ``127.0.0.1``, or it runs inside two network namespaces created here and
joined only to each other by a veth pair (10.199.N.1 ↔ 10.199.N.2). The veth ends are
created directly inside the namespaces, so nothing ever appears in the host's namespace,
and both namespaces are deleted in ``finally``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from protocol.discovery import MDNS_INTERFACES_ENV, Advertisement
from tests.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parent.parent
_counter = itertools.count()


def child_env() -> dict[str, str]:
    """Environment for a child Python: the repo importable, mDNS on loopback by default."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env[MDNS_INTERFACES_ENV] = "127.0.0.1"
    return env


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


def _check(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(result.args)} failed: {result.stderr.strip()}")


@dataclass(frozen=True, slots=True)
class NetnsPair:
    """Two namespaces joined by a veth pair: ``ns1`` has ``addr1`` on its device ``dev1``,
    ``ns2`` has ``addr2`` on ``dev2``."""

    ns1: str
    ns2: str
    addr1: str
    addr2: str
    dev1: str
    dev2: str

    def command(self, ns: str, code: str, *args: str) -> list[str]:
        """argv running ``python -c code args...`` inside namespace ``ns``."""
        return ["ip", "netns", "exec", ns, sys.executable, "-c", code, *args]

    def popen_python(self, ns: str, code: str, *args: str) -> subprocess.Popen[str]:
        """Start ``code`` in namespace ``ns``; stdout and stderr are pipes (text)."""
        return subprocess.Popen(
            self.command(ns, code, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=child_env(),
        )

    def run_python(
        self, ns: str, code: str, *args: str, timeout_s: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in namespace ``ns`` to completion; stdout and stderr captured."""
        return subprocess.run(
            self.command(ns, code, *args),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=REPO_ROOT,
            env=child_env(),
            check=False,
        )


@contextmanager
def netns_pair() -> Iterator[NetnsPair]:
    """Create two private network namespaces joined by a veth pair; delete them after.

    Skips the calling test (``pytest.skip``) when namespaces cannot be created here
    (no ``ip`` command, or not permitted).
    """
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is not installed")
    serial = next(_counter)
    tag = f"{os.getpid()}x{serial}"
    ns1, ns2 = f"cc-{tag}-a", f"cc-{tag}-b"
    veth1, veth2 = f"ccv{tag}a"[:15], f"ccv{tag}b"[:15]
    subnet = (os.getpid() + serial) % 250 + 1
    addr1, addr2 = f"10.199.{subnet}.1", f"10.199.{subnet}.2"
    created: list[str] = []
    try:
        first = _ip("netns", "add", ns1)
        if first.returncode != 0:
            pytest.skip(f"cannot create a network namespace: {first.stderr.strip()}")
        created.append(ns1)
        _check(_ip("netns", "add", ns2))
        created.append(ns2)
        # Both ends are born inside the namespaces: the host's namespace never sees them.
        link = ["link", "add", veth1, "netns", ns1, "type", "veth"]
        _check(_ip(*link, "peer", "name", veth2, "netns", ns2))
        for ns, dev, addr in ((ns1, veth1, addr1), (ns2, veth2, addr2)):
            _check(_ip("-n", ns, "link", "set", "lo", "up"))
            _check(_ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev))
            _check(_ip("-n", ns, "link", "set", dev, "up"))
            _check(_ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev))
        yield NetnsPair(ns1, ns2, addr1, addr2, veth1, veth2)
    finally:
        for ns in reversed(created):
            _ip("netns", "del", ns)


# --------------------------------------------------------------------------- advertiser child

ADVERTISER_SCRIPT = """
import asyncio, dataclasses, json, sys
from kiosk.advertise import ZeroconfAdvertiser
from protocol.discovery import Advertisement

async def main() -> None:
    spec = json.loads(sys.argv[1])
    ad = Advertisement(**spec["ad"])
    advertiser = ZeroconfAdvertiser(spec["interfaces"])
    loop = asyncio.get_running_loop()
    print("READY", flush=True)
    try:
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not line or line[0] == "stop":
                break
            if line[0] == "start":
                await advertiser.start(ad)
                print("STARTED", json.dumps(advertiser.name), flush=True)
            elif line[0] == "state":
                ad = dataclasses.replace(ad, state=line[1])
                await advertiser.update(ad)
                print("UPDATED", flush=True)
    finally:
        await advertiser.stop()
        print("STOPPED", flush=True)

asyncio.run(main())
"""


class AdvertiserProcess:
    """A child process running a :class:`kiosk.advertise.ZeroconfAdvertiser`.

    Driven by lines on its stdin (``start``, ``state NAME``, ``stop``); each answers
    with one line. Optionally runs inside a network namespace. Always killed on exit.
    """

    def __init__(
        self, ad: Advertisement, interfaces: list[str], *, netns: str | None = None
    ) -> None:
        spec = json.dumps({"ad": _ad_dict(ad), "interfaces": interfaces})
        argv = [sys.executable, "-c", ADVERTISER_SCRIPT, spec]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        self.argv = argv
        self.proc: subprocess.Popen[str] | None = None
        self.name: str | None = None

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=child_env(),
        )
        try:
            self.expect("READY", timeout_s=20)
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    def send(self, line: str) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str, *, timeout_s: float = 10.0) -> str:
        """Read lines until one starts with ``word``; return the rest of it."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"advertiser child did not say {word!r} in {timeout_s} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"advertiser child exited with {self.proc.wait()}")
            if line.startswith(word):
                return line[len(word) :].strip()

    def start(self) -> str:
        """Register (probing takes ~1 s); return the instance name zeroconf chose."""
        self.send("start")
        name = json.loads(self.expect("STARTED"))
        assert isinstance(name, str)
        self.name = name
        return name

    def set_state(self, state: str) -> None:
        self.send(f"state {state}")
        self.expect("UPDATED")

    def stop(self) -> None:
        """Unregister (goodbye packets) and wait for the child to exit."""
        self.send("stop")
        self.expect("STOPPED")
        assert self.proc is not None
        self.proc.wait(10)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # EOF: the child unregisters and exits
        stop_process(proc, timeout_s=5, terminate=False)


def _ad_dict(ad: Advertisement) -> dict[str, str | int]:
    return {
        "kiosk_id": ad.kiosk_id,
        "room": ad.room,
        "school": ad.school,
        "port": ad.port,
        "fingerprint": ad.fingerprint,
        "state": ad.state,
    }
