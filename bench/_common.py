"""Shared helpers of the benchmarks: percentiles, child processes, output lines.

Every benchmark runs its servers in child processes (``python -m bench._servers ...``,
or a kiosk child of its own) so the measuring client and the measured server never
share an event loop, as on a real network. A child prints one ``READY <json>`` line
when it listens and exits when its stdin closes; :class:`ServerProcess` makes sure it
is gone afterwards, even on error (:func:`stop_process` for a benchmark's own children).

Some benchmarks measure the memory of children that import this module, so it imports
only what costs nothing: ``ssl``, ``resource``, the protocol, the kiosk and the
controller are imported inside the functions that use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    import ssl

    from controller.client import ControllerIdentity, Credentials
    from kiosk.config import KioskConfig
    from media.lesson import Lesson

LOOPBACK = "127.0.0.1"

BENCH_ADMIN_SECRET = "bench-admin-secret"
"""Configured on every benchmark kiosk; the measuring controller pairs as admin with it."""
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
REPO_ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
KIOSK_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
"""The log format of ``classcast-kiosk`` (kiosk/cli.py): a kiosk child logs as a panel does."""
KIOSK_CLI = (sys.executable, "-c", "from kiosk.cli import main; main()")
"""The command line of ``classcast-kiosk`` run from this checkout (add its options)."""


def proc_cpu_s(pid: int) -> float:
    """User plus system CPU seconds used so far by process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def minor_faults(pid: int) -> int:
    """Minor page faults of process ``pid`` so far (``/proc/PID/stat``): fresh memory
    touched, e.g. a big block mapped anew for every chunk received."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of process ``pid`` in KiB (``/proc/PID/status`` ``VmRSS``).

    Raises:
        OSError: the process is gone.
        RuntimeError: it has no memory of its own any more (a zombie).
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def rss_mb(pid: int | str = "self") -> float:
    """:func:`rss_kib` in MiB."""
    return rss_kib(pid) / 1024


def raise_nofile(soft: int | None = None) -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to ``soft`` (default: the hard limit).

    Returns the (soft, hard) limits now in force. Call it before opening thousands of
    connections, or in a child's ``preexec_fn`` to give the child its own limit.
    """
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if soft is None else min(soft, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target, hard


def child_env(*paths: str, **extra: str) -> dict[str, str]:
    """This process's environment for a child that runs code from this checkout.

    ``PYTHONPATH`` starts with ``paths`` (another checkout to compare with), then this
    checkout; mDNS stays on loopback; ``extra`` variables are set on top.
    """
    from protocol.discovery import MDNS_INTERFACES_ENV

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (*paths, str(REPO_ROOT), env.get("PYTHONPATH")) if p
    )
    env[MDNS_INTERFACES_ENV] = LOOPBACK
    env.update(extra)
    return env


def stop_process(
    proc: subprocess.Popen[Any], *, terminate: bool = False, close_pipes: bool = True
) -> None:
    """End a child: close its stdin (its signal to exit) or, with ``terminate``, send it
    SIGTERM; wait ``STOP_TIMEOUT_S``, then kill it if it lingers.

    With ``close_pipes`` its stdout and stderr are closed too; pass False while threads
    of yours still read them (they reach EOF now that the child is gone).
    """
    if terminate:
        proc.terminate()
    else:
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if close_pipes:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


async def stop_async_process(proc: asyncio.subprocess.Process, *, terminate: bool = False) -> None:
    """:func:`stop_process` for an ``asyncio`` child (its pipes close with it)."""
    if terminate:
        if proc.returncode is not None:
            return
        proc.terminate()
    elif proc.stdin is not None:
        proc.stdin.close()
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()


def wait_ready(stdout: Any, what: str, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
    """Read a child's ``stdout`` (a text pipe) up to its ``READY <json>`` line; the JSON.

    Raises:
        TimeoutError: no such line within ``timeout_s``.
        RuntimeError: the child closed its stdout (exited) first.
    """
    deadline = time.monotonic() + timeout_s
    poller = select.poll()  # not select(): a run of hundreds of servers passes fd 1024
    poller.register(stdout, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what} did not start in {timeout_s:g} s")
        if not poller.poll(left * 1000):
            continue
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"{what} exited before it was ready")
        if line.startswith("READY "):
            info: dict[str, Any] = json.loads(line[len("READY ") :])
            return info


def kiosk_address(ready_line: str, where: str = "") -> str:
    """The ``host:port`` in the ``ready wss://HOST:PORT/v1 ...`` line ``classcast-kiosk``
    prints once it listens.

    Raises:
        RuntimeError: the line is something else (``where`` says where to look for why).
    """
    if not ready_line.startswith("ready "):
        raise RuntimeError(f"the kiosk did not start: {ready_line!r}{where}")
    return ready_line.split()[1].removeprefix("wss://").removesuffix("/v1")


def kiosk_config(state_dir: Path, **settings: Any) -> KioskConfig:
    """The settings of a benchmark kiosk: headless on loopback port 0, no mDNS, pairing
    as admin with ``BENCH_ADMIN_SECRET``; ``settings`` override or add to them."""
    from kiosk.config import KioskConfig

    defaults: dict[str, Any] = {
        "room": "Bench",
        "school": "Bench",
        "host": LOOPBACK,
        "port": 0,
        "state_dir": state_dir,
        "mode": "headless",
        "admin_secret": BENCH_ADMIN_SECRET,
        "mdns": False,
    }
    return KioskConfig(**{**defaults, **settings})


def log_like_kiosk() -> None:
    """Log at INFO to stderr in the kiosk's own format (call first in a kiosk child)."""
    import logging

    logging.basicConfig(level=logging.INFO, format=KIOSK_LOG_FORMAT, stream=sys.stderr)


async def pair_as_admin(address: str, identity: ControllerIdentity) -> Credentials:
    """Connect to the kiosk at ``address``, pair ``identity`` as admin with
    ``BENCH_ADMIN_SECRET`` and close; keep the credentials to connect again."""
    from controller.client import KioskClient

    async with await KioskClient.connect(address, identity) as client:
        return await client.pair(BENCH_ADMIN_SECRET, role="admin")


def tls_client_context() -> ssl.SSLContext:
    """A plain TLS client context that checks no certificate (kiosks sign their own)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def two_text_lesson(title: str = "Bench: two slides") -> Lesson:
    """A lesson of two text slides (nothing to transfer): a teacher switches between them."""
    from media.lesson import LessonItem, make_lesson

    return make_lesson(
        title,
        [
            LessonItem("text", "Слайд A", text="Первый слайд"),
            LessonItem("text", "Слайд B", text="Второй слайд"),
        ],
    )


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


def timed(fn: Callable[[], object], repeats: int = 3) -> tuple[float, float]:
    """(first run, median of ``repeats`` more) in seconds."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return first, statistics.median(samples)


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


WEAK_CPU_QUOTA_US = 33_333
WEAK_CPU_PERIOD_US = 100_000
"""``--weak``: a kiosk child may use 33.3 ms of CPU every 100 ms, a third of one core
(the small computer inside a board is a fraction of this machine's speed)."""
WEAK_BURNERS = 1
"""``--weak`` without cgroups: CPU burners pinned beside the kiosk on its one core."""
_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")


class WeakPanel:
    """The weak-panel limit of ``--weak``, for every kiosk child started while it is on.

    Preferred: each kiosk child in a cgroup of its own, held to :data:`WEAK_CPU_QUOTA_US`
    per :data:`WEAK_CPU_PERIOD_US` (cgroup v2 ``cpu.max``, else cgroup v1
    ``cpu.cfs_quota_us``; needs root), made when it is held, inside one group for the
    run, all removed on exit. Two kiosks (``--compare``) then have a third of a core
    each, as two panels do. Elsewhere: each kiosk pinned to core 0 (``taskset``) beside
    :data:`WEAK_BURNERS` busy processes pinned there too. Processes a kiosk starts (its
    browser) inherit the limit. Use :func:`weak_panel`.
    """

    def __init__(self) -> None:
        self.cgroup: Path | None = None
        """The run's group; each held process is in a group of its own inside it."""
        self._version = 0
        self._parent_procs: Path | None = None
        self._held: list[Path] = []
        self._burners: list[subprocess.Popen[bytes]] = []
        self.how = ""

    def start(self) -> None:
        name = f"classcast-bench-weak-{os.getpid()}"
        controllers = _CGROUP_V2 / "cgroup.controllers"
        quota = f"a third of one core each ({WEAK_CPU_QUOTA_US} µs every {WEAK_CPU_PERIOD_US} µs)"
        try:
            if controllers.exists() and "cpu" in controllers.read_text().split():
                control = _CGROUP_V2 / "cgroup.subtree_control"
                if "cpu" not in control.read_text().split():
                    control.write_text("+cpu")
                group = _CGROUP_V2 / name
                group.mkdir()
                self.cgroup, self._version = group, 2
                self._parent_procs = _CGROUP_V2 / "cgroup.procs"
                (group / "cgroup.subtree_control").write_text("+cpu")
                self.how = f"held to {quota}: cgroup v2 cpu.max, under {group}"
                return
            if (_CGROUP_V1_CPU / "cpu.cfs_quota_us").exists():
                group = _CGROUP_V1_CPU / name
                group.mkdir()
                self.cgroup, self._version = group, 1
                self._parent_procs = _CGROUP_V1_CPU / "cgroup.procs"
                self.how = f"held to {quota}: cgroup v1 cpu.cfs_quota_us, under {group}"
                return
        except OSError as exc:  # not root, or no such controller: the fallback below
            self.stop()
            self.how = f" (no cgroup: {exc})"
        self._burners = [
            subprocess.Popen(
                ["taskset", "-c", "0", sys.executable, "-c", "while True: pass"],
                stdin=subprocess.DEVNULL,
            )
            for _ in range(WEAK_BURNERS)
        ]
        self.how = f"pinned to core 0 beside {WEAK_BURNERS} CPU burner(s){self.how}"

    def hold(self, pid: int) -> None:
        """Put process ``pid`` (a kiosk child, just started) under the limit."""
        if self.cgroup is None:
            subprocess.run(
                ["taskset", "-a", "-p", "-c", "0", str(pid)], check=True, capture_output=True
            )
            return
        group = self.cgroup / f"kiosk-{pid}"
        group.mkdir()
        self._held.append(group)
        if self._version == 2:
            (group / "cpu.max").write_text(f"{WEAK_CPU_QUOTA_US} {WEAK_CPU_PERIOD_US}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(WEAK_CPU_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(WEAK_CPU_QUOTA_US))
        (group / "cgroup.procs").write_text(str(pid))

    def stop(self) -> None:
        """Remove the groups (their processes moved back to the root first) or the burners."""
        parent, self.cgroup = self.cgroup, None
        held, self._held = self._held, []
        throttled = periods = 0
        for group in held:
            with contextlib.suppress(OSError, ValueError):
                stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
                throttled += int(stat.get("nr_throttled", 0))
                periods += int(stat.get("nr_periods", 0))
        if held:
            print(
                f"weak panel: {len(held)} kiosk process(es) throttled in {throttled} of "
                f"{periods} periods of {WEAK_CPU_PERIOD_US // 1000} ms",
                flush=True,
            )
        for group in [*held, *([parent] if parent is not None else [])]:
            self._remove(group)
        for burner in self._burners:
            stop_process(burner, terminate=True)
        self._burners = []

    def _remove(self, group: Path) -> None:
        for _ in range(50):
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    assert self._parent_procs is not None
                    with contextlib.suppress(OSError):
                        self._parent_procs.write_text(pid)
            try:
                group.rmdir()
                return
            except OSError:
                time.sleep(0.02)


_weak: WeakPanel | None = None


@contextmanager
def weak_panel(enabled: bool) -> Iterator[WeakPanel | None]:
    """With ``enabled`` (a benchmark's ``--weak``), hold every kiosk child started inside
    to a third of one core (:class:`WeakPanel`); prints how, once. Else does nothing."""
    global _weak
    if not enabled:
        yield None
        return
    panel = WeakPanel()
    try:
        panel.start()
        print(f"weak panel: kiosks {panel.how}", flush=True)
        _weak = panel
        yield panel
    finally:
        _weak = None
        panel.stop()


def hold_kiosk(pid: int) -> None:
    """Put a kiosk child just started under the ``--weak`` limit, if one is on."""
    if _weak is not None:
        _weak.hold(pid)


def add_weak_option(parser: Any) -> None:
    """Add ``--weak`` to a benchmark's ``argparse`` parser (then run it in
    ``with weak_panel(args.weak):`` and :func:`hold_kiosk` each kiosk child it starts;
    :class:`ServerProcess` does that for ``kiosk`` children)."""
    parser.add_argument(
        "--weak",
        action="store_true",
        help="kiosks held to a third of one core (a cgroup CPU quota; without cgroups: "
        "pinned to one core beside a CPU burner), as on a board's small computer",
    )


class ServerProcess:
    """A ``bench._servers`` child process; use as a context manager.

    ``info`` holds what the child printed after ``READY`` (ports and so on).
    """

    def __init__(self, *args: str, checkout: str | None = None) -> None:
        """``checkout``: run the server from another checkout (to compare with)."""
        self.args = list(args)
        self.checkout = checkout
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def start(self) -> None:
        """Start the child; returns at once (:meth:`wait_ready` waits for it)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench._servers", *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=self.checkout or REPO_ROOT,
            env=child_env(*([self.checkout] if self.checkout else [])),
        )
        if self.args[:1] == ["kiosk"]:
            hold_kiosk(self.proc.pid)

    def wait_ready(self) -> None:
        """Wait for the started child's ``READY`` line; keep what it printed in ``info``."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        self.info = wait_ready(self.proc.stdout, f"server {self.args}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Close the child's stdin (its signal to exit), then wait; kill if it lingers."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc)


async def start_servers(stack: contextlib.ExitStack, servers: list[ServerProcess]) -> None:
    """Start ``servers`` a few at a time (as many as there are CPUs), each stopped when
    ``stack`` closes; the waiting happens on a worker thread, so the running loop keeps
    serving the connections it has (their keepalive pings) however many there are."""
    for server in servers:
        stack.callback(server.stop)
    window = os.cpu_count() or 1

    def start_all() -> None:
        for first in range(0, len(servers), window):
            wave = servers[first : first + window]
            for server in wave:
                server.start()
            for server in wave:
                server.wait_ready()

    await asyncio.to_thread(start_all)


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
        stop_process(proc, terminate=True)
