"""Lesson transfer: ``cast`` of a 200 MB lesson to a kiosk, vs a raw TCP copy with fsync.

Run: ``.venv/bin/python -m bench.transfer [--quick] [--mb N] [--repeats R] [--no-hash]
[--default-allocator]``

A lesson of ``FILES`` incompressible "video" files (random bytes; the items are built
with ``media.lesson.make_lesson`` and hashed here, bypassing content probing) is cast
from this process to a kiosk in a child process. The time runs from ``cast`` until it
returns: the kiosk has received every chunk, verified each blob's sha256 and committed
it (fsync, rename, fsync of the folder). The kiosk's heap is set up as
``classcast-kiosk`` sets it (:func:`kiosk.memory.tune_allocator`; ``--default-allocator``
leaves glibc's default, a diagnostic). Its CPU time and minor page faults (fresh memory
touched) are shown per MB, and so is the CPU of the controller (this process) and of
each baseline's receiver and sender: sender and receiver share this machine's cores,
so a side's CPU per MB is what the other side cannot use.

Baseline: the same bytes over a plain TCP socket on loopback (``socket.sendfile``) to a
child process that writes each file with 1 MiB ``recv_into``/``write``, fsyncs it,
renames it into place, fsyncs the folder and answers one byte: the same durability
work without websockets, framing, hashing or the store. A second baseline also hashes
the received bytes with sha256 (the aim is ≥ 0.8× of it); a third does that over TLS
(blocking ``ssl`` sockets, 1 MiB per write and hash): the floor TLS itself sets.

Both write to the same filesystem (the temp dir). Before each timed run every dirty
page is flushed (``os.sync``), so one run's writeback does not land in the next; the
source files stay in the page cache for all runs. Each figure is the median of
``--repeats`` runs, taken alternately.

Then the same lesson is cast again to the kiosk that has it: bytes sent as a share of
the lesson and the time of that re-cast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
import ssl
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench._common import (
    BENCH_ADMIN_SECRET,
    LOOPBACK,
    ServerProcess,
    add_weak_option,
    cancel_on_sigterm,
    figure,
    heading,
    minor_faults,
    proc_cpu_s,
    result_line,
    weak_panel,
)
from bench._servers import recv_exactly
from controller.client import ControllerIdentity, KioskClient
from media.lesson import Lesson, LessonItem, make_lesson
from protocol import limits
from protocol.codec import encode
from protocol.messages import Cast

FILES = 4
WRITE_BYTES = 4 * 1024 * 1024
SIZE_HEADER = struct.Struct(">Q")
IDENTITY = ControllerIdentity("c-bench", "Bench Teacher")
MB = 1_000_000


@dataclass
class Timing:
    seconds: float
    server_cpu_s: float
    client_cpu_s: float


def make_files(folder: Path, total_bytes: int, files: int) -> Lesson:
    """Write ``files`` random files totalling ``total_bytes``; return a video lesson."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    size = total_bytes // files
    for n in range(files):
        path = folder / f"video-{n + 1}.mp4"
        hasher = hashlib.sha256()
        with path.open("wb") as f:
            left = size
            while left:
                block = os.urandom(min(left, WRITE_BYTES))
                hasher.update(block)
                f.write(block)
                left -= len(block)
        items.append(
            LessonItem(
                "video",
                f"Видео {n + 1}",
                path=path,
                sha256=hasher.hexdigest(),
                size_bytes=size,
            )
        )
    return make_lesson("Bench: transfer", items)


def raw_copy(port: int, paths: list[Path], expect_digest: bool, tls: bool = False) -> float:
    """Send each file over one TCP connection; returns seconds until the last ack.

    With ``tls`` the connection is TLS (the sink's certificate is not checked: loopback)
    and each file is read into one buffer and sent from it (``sendfile`` cannot encrypt).
    """
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((LOOPBACK, port)))
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = stack.enter_context(ctx.wrap_socket(sock))
        buffer = memoryview(bytearray(WRITE_BYTES))
        for path in paths:
            size = path.stat().st_size
            sock.sendall(SIZE_HEADER.pack(size))
            with path.open("rb", buffering=0) as f:
                if tls:
                    while got := f.readinto(buffer):
                        sock.sendall(buffer[:got])
                else:
                    sock.sendfile(f)
            ack = recv_exactly(sock, 32 if expect_digest else 1)
            if not ack:
                raise ConnectionError("sink closed the connection")
        elapsed = time.perf_counter() - t0
        sock.sendall(SIZE_HEADER.pack(0))
    return elapsed


def timed_baseline(root: Path, paths: list[Path], hash_bytes: bool, tls: bool = False) -> Timing:
    sink = root / "sink"
    shutil.rmtree(sink, ignore_errors=True)
    args = ["tcpsink", "--dir", str(sink)] + (["--hash"] if hash_bytes else [])
    args += ["--tls"] if tls else []
    try:
        with ServerProcess(*args) as server:
            os.sync()
            cpu_s, cpu_c = proc_cpu_s(server.info["pid"]), time.process_time()
            seconds = raw_copy(server.info["ports"][0], paths, hash_bytes, tls)
            return Timing(
                seconds,
                proc_cpu_s(server.info["pid"]) - cpu_s,
                time.process_time() - cpu_c,
            )
    finally:
        shutil.rmtree(sink, ignore_errors=True)


@dataclass
class KioskTiming(Timing):
    faults: int
    recast_s: float
    recast_bytes_sent: int
    lesson_bytes: int


async def timed_kiosk(
    root: Path, lesson: Lesson, quota_bytes: int, panel_allocator: bool
) -> KioskTiming:
    state = root / "kiosk"
    shutil.rmtree(state, ignore_errors=True)
    allocator = ["--panel-allocator"] if panel_allocator else []
    try:
        with ServerProcess(
            "kiosk",
            *("--count", "1", "--state-dir", str(state), "--quota-bytes", str(quota_bytes)),
            *allocator,
        ) as server:
            pid = server.info["pid"]
            client = await KioskClient.connect(f"{LOOPBACK}:{server.info['ports'][0]}", IDENTITY)
            await client.pair(BENCH_ADMIN_SECRET, role="admin")
            try:
                os.sync()
                cpu_s, cpu_c, faults = proc_cpu_s(pid), time.process_time(), minor_faults(pid)
                t0 = time.perf_counter()
                result = await client.cast(lesson)
                seconds = time.perf_counter() - t0
                cpu_s, cpu_c = proc_cpu_s(pid) - cpu_s, time.process_time() - cpu_c
                faults = minor_faults(pid) - faults
                if result.bytes_sent != lesson.total_bytes:
                    raise RuntimeError(f"first cast sent {result.bytes_sent} bytes")
                t0 = time.perf_counter()
                again = await client.cast(lesson)
                recast_s = time.perf_counter() - t0
            finally:
                await client.close()
        return KioskTiming(
            seconds, cpu_s, cpu_c, faults, recast_s, again.bytes_sent, lesson.total_bytes
        )
    finally:
        shutil.rmtree(state, ignore_errors=True)


def median_of(runs: list[Timing], key: Callable[[Timing], float]) -> float:
    return statistics.median(key(r) for r in runs)


async def main_async(
    total_bytes: int, repeats: int, with_hash: bool, panel_allocator: bool = True
) -> None:
    cancel_on_sigterm()
    root = Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    try:
        t0 = time.perf_counter()
        lesson = make_files(root / "lesson", total_bytes, FILES)
        paths = list(lesson.blob_paths().values())
        lesson_bytes = lesson.total_bytes
        print(
            f"transfer: lesson of {FILES} random video files, {lesson_bytes / MB:.1f} MB, "
            f"made in {time.perf_counter() - t0:.1f} s under {root}"
        )
        print(
            f"chunks of {limits.SEND_CHUNK_BYTES} B sent (kiosk accepts up to "
            f"{limits.CHUNK_SIZE_BYTES} B); {repeats} alternating run(s) per target, "
            f"median shown; servers in child processes; {os.cpu_count()} CPUs; kiosk heap: "
            + ("as classcast-kiosk sets it" if panel_allocator else "glibc's default")
        )
        quota = 2 * lesson_bytes + 64 * 1024 * 1024
        base: list[Timing] = []
        hashed: list[Timing] = []
        tls_hashed: list[Timing] = []
        kiosk: list[KioskTiming] = []
        for _ in range(repeats):
            base.append(timed_baseline(root, paths, hash_bytes=False))
            kiosk.append(await timed_kiosk(root, lesson, quota, panel_allocator))
            if with_hash:
                hashed.append(timed_baseline(root, paths, hash_bytes=True))
                tls_hashed.append(timed_baseline(root, paths, hash_bytes=True, tls=True))

        def mbps(seconds: float) -> float:
            return lesson_bytes / MB / seconds

        lesson_mb = lesson_bytes / MB

        def cpu_figure(name: str, runs: list[Timing], key: Callable[[Timing], float]) -> float:
            """Print a median CPU time and its ms per MB; returns the ms per MB."""
            seconds = median_of(runs, key)
            figure(f"{name} (median)", seconds, "s", f"{seconds / lesson_mb * 1e3:.2f} ms/MB")
            return seconds / lesson_mb * 1e3

        heading("baseline: raw TCP copy (sendfile → recv_into/write, fsync per file)")
        for n, run in enumerate(base, 1):
            figure(f"run {n}", mbps(run.seconds), "MB/s")
        b = median_of(base, lambda r: r.seconds)
        figure("throughput (median)", mbps(b), "MB/s")
        cpu_figure("receiver CPU", base, lambda r: r.server_cpu_s)
        cpu_figure("sender CPU", base, lambda r: r.client_cpu_s)

        h = None
        if hashed:
            heading("baseline + sha256 on the receiver")
            for n, run in enumerate(hashed, 1):
                figure(f"run {n}", mbps(run.seconds), "MB/s")
            h = median_of(hashed, lambda r: r.seconds)
            figure("throughput (median)", mbps(h), "MB/s", f"{b / h:.2f}x raw baseline")
            cpu_figure("receiver CPU", hashed, lambda r: r.server_cpu_s)
            cpu_figure("sender CPU", hashed, lambda r: r.client_cpu_s)

        t = None
        if tls_hashed:
            heading("TLS copy + sha256 on the receiver (diagnostic: what TLS costs)")
            for n, run in enumerate(tls_hashed, 1):
                figure(f"run {n}", mbps(run.seconds), "MB/s")
            t = median_of(tls_hashed, lambda r: r.seconds)
            figure("throughput (median)", mbps(t), "MB/s", f"{b / t:.2f}x raw baseline")
            cpu_figure("receiver CPU", tls_hashed, lambda r: r.server_cpu_s)
            cpu_figure("sender CPU", tls_hashed, lambda r: r.client_cpu_s)

        heading("kiosk: KioskClient.cast until ok (verified, committed with fsync)")
        for n, run in enumerate(kiosk, 1):
            figure(f"run {n}", mbps(run.seconds), "MB/s")
        k = median_of(list(kiosk), lambda r: r.seconds)
        versus = f"{b / k:.2f}x raw" + (f", {h / k:.2f}x raw + sha256" if h is not None else "")
        versus += f", {t / k:.2f}x TLS + sha256" if t is not None else ""
        figure("throughput (median)", mbps(k), "MB/s", versus)
        kiosk_ms_per_mb = cpu_figure("kiosk CPU", list(kiosk), lambda r: r.server_cpu_s)
        faults_per_mb = statistics.median(r.faults for r in kiosk) / lesson_mb
        figure("kiosk minor page faults (median)", faults_per_mb, "/MB")
        controller_ms_per_mb = cpu_figure("controller CPU", list(kiosk), lambda r: r.client_cpu_s)

        heading("re-cast of the same lesson to the kiosk that has it")
        recast_bytes = kiosk[0].recast_bytes_sent
        cast_frame = len(encode(Cast(id=1, lesson=lesson.manifest())).encode())
        recast_ms = statistics.median(r.recast_s for r in kiosk) * 1e3
        figure("media bytes sent", recast_bytes, "B", f"{recast_bytes / lesson_bytes:.4%}")
        figure(
            "cast frame (manifest) bytes",
            cast_frame,
            "B",
            f"{(recast_bytes + cast_frame) / lesson_bytes:.4%} of the lesson with it",
        )
        figure("re-cast time (median)", recast_ms, "ms")

        heading("summary")
        figure("ratio kiosk/raw TCP throughput", b / k, "x")
        if h is not None:
            figure("ratio kiosk/(raw TCP + sha256) throughput", h / k, "x", "aim >= 0.8")
        if t is not None:
            figure("ratio kiosk/(TLS + sha256) throughput", t / k, "x")
        figure("kiosk CPU per MB", kiosk_ms_per_mb, "ms/MB")
        figure("controller CPU per MB", controller_ms_per_mb, "ms/MB")
        figure(
            "re-cast bytes / lesson bytes",
            (recast_bytes + cast_frame) / lesson_bytes * 100,
            "%",
            "aim <= 1 %",
        )
        values: dict[str, float | int | str] = {
            "lesson_mb": lesson_bytes / MB,
            "raw_mbps": mbps(b),
            "kiosk_mbps": mbps(k),
            "ratio": b / k,
            "kiosk_cpu_ms_per_mb": kiosk_ms_per_mb,
            "controller_cpu_ms_per_mb": controller_ms_per_mb,
            "kiosk_faults_per_mb": faults_per_mb,
        }
        if h is not None:
            values["raw_sha256_mbps"] = mbps(h)
            values["ratio_sha256"] = h / k
        if t is not None:
            values["tls_sha256_mbps"] = mbps(t)
            values["ratio_tls_sha256"] = t / k
        values["recast_pct"] = (recast_bytes + cast_frame) / lesson_bytes * 100
        values["recast_ms"] = recast_ms
        result_line("transfer", values)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transfer", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 MB, one run (a smoke run)")
    parser.add_argument("--mb", type=int, help="lesson size in MB (default 200)")
    parser.add_argument("--repeats", type=int, help="runs per target (default 3)")
    parser.add_argument("--no-hash", action="store_true", help="skip the sha256 baseline")
    add_weak_option(parser)
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave the kiosk's heap as glibc sets it (a diagnostic)",
    )
    args = parser.parse_args()
    mb = args.mb or (20 if args.quick else 200)
    repeats = args.repeats or (1 if args.quick else 3)
    try:
        with weak_panel(args.weak):
            asyncio.run(
                main_async(
                    mb * MB,
                    repeats,
                    with_hash=not args.no_hash,
                    panel_allocator=not args.default_allocator,
                )
            )
    except asyncio.CancelledError:  # SIGTERM: children stopped, temp dirs removed
        raise SystemExit(143) from None


if __name__ == "__main__":
    main()
