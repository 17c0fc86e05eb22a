"""Ending the child processes tests start: politely first, then for sure."""

from __future__ import annotations

import subprocess


def stop_process(
    proc: subprocess.Popen[str], *, timeout_s: float = 10.0, terminate: bool = True
) -> None:
    """End ``proc`` and close its pipes.

    With ``terminate`` it gets SIGTERM if still running; without, it is expected to exit
    by itself (its stdin was closed). Either way it is killed after ``timeout_s``.
    """
    if terminate and proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
