"""Shared helpers of the benchmarks: percentiles, child server processes, output lines.

Every benchmark runs its servers in child processes (``python -m bench._servers ...``)
so the measuring client and the measured server never share an event loop, as on a
real network. A child prints one ``READY <json>`` line when it listens and exits when
its stdin closes; :class:`ServerProcess` makes sure it is gone afterwards, even on
error.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

LOOPBACK = "127.0.0.1"

BENCH_ADMIN_SECRET = "bench-admin-secret"
"""Configured on every benchmark kiosk; the measuring controller pairs as admin with it."""
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
REPO_ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """User plus system CPU seconds used so far by process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cancel_on_sigterm() -> None:
    """On SIGTERM, cancel the running main task so every ``finally`` still runs.

    Call at the top of the benchmark's main coroutine.
    """
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def tmpfs_dir() -> Path | None:
    """``/dev/shm`` if it exists: a tmpfs where fsync costs nothing (for diagnostics)."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() else None


def percentile(sorted_values: list[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of ``sorted_values`` by nearest rank."""
    if not sorted_values:
        raise ValueError("no samples")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return percentile(ordered, 0.50), percentile(ordered, 0.99)


def figure(name: str, value: float, unit: str, note: str = "") -> None:
    """Print one figure on its own line."""
    text = f"  {name:<48} {value:>10.3f} {unit}"
    if note:
        text += f"   ({note})"
    print(text, flush=True)


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def result_line(name: str, values: dict[str, float | int | str]) -> None:
    parts = []
    for key, value in values.items():
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    print(f"\nRESULT {name} " + " ".join(parts), flush=True)


class ServerProcess:
    """A ``bench._servers`` child process; use as a context manager.

    ``info`` holds what the child printed after ``READY`` (ports and so on).
    """

    def __init__(self, *args: str) -> None:
        self.args = list(args)
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> Self:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["CLASSCAST_MDNS_INTERFACES"] = LOOPBACK
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench._servers", *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=env,
        )
        try:
            self.info = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self) -> dict[str, Any]:
        assert self.proc is not None
        assert self.proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"server {self.args} did not start in {READY_TIMEOUT_S} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"server {self.args} exited with {self.proc.wait()}")
            if line.startswith("READY "):
                info: dict[str, Any] = json.loads(line[len("READY ") :])
                return info

    def stop(self) -> None:
        """Close the child's stdin (its signal to exit), then wait; kill if it lingers."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


XVFB_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Xvfb:
    """A private X server: its ``DISPLAY`` and process id (to read its CPU)."""

    display: str
    pid: int


@contextmanager
def xvfb(size: tuple[int, int]) -> Iterator[Xvfb]:
    """Run a private Xvfb of ``size`` on a free display number; terminated afterwards."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            *("Xvfb", "-displayfd", str(write_fd)),
            *("-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"),
        ],
        pass_fds=(write_fd,),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            ready, _, _ = select.select([pipe], [], [], XVFB_START_TIMEOUT_S)
            number = pipe.readline().strip() if ready else ""
        if not number:
            raise RuntimeError(f"Xvfb did not start in {XVFB_START_TIMEOUT_S:g} s")
        yield Xvfb(":" + number, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
