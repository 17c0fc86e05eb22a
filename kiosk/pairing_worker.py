"""The pairing worker: the kiosk's SPAKE2 work, in a child process, off the network loop.

One kiosk-side exchange (:func:`protocol.pairing.compute_offer`) takes under a
millisecond of libsodium arithmetic (:mod:`protocol.spake`); it took 10–30 ms of pure
Python holding the GIL when the child was introduced, which stalled the network loop
from a worker *thread*.

:class:`ProcessPairingWorker` keeps one child, ``python -m kiosk.pairing_worker``,
started at the first pairing and shared by every kiosk of the process; jobs go to it
as JSON lines on its stdin, one at a time, answers come back on its stdout. If the
child dies it is started again; if no child can be started, or one does not answer
within :data:`ANSWER_TIMEOUT_S`, the job is computed in the calling thread (logged
once), so pairing keeps working. The child exits when the kiosk closes its stdin (or
exits). :class:`InlinePairingWorker` computes in the calling thread (tests).

The service never calls a worker itself: it emits
:class:`~kiosk.service.ComputeOffer`, and the websocket adapter calls
:meth:`PairingWorker.compute` on a worker thread, outside the service lock, then
hands the result back (:meth:`~kiosk.service.KioskService.offer_computed`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import select
import signal
import subprocess
import sys
import threading
from typing import IO, Any, Final, Protocol

from protocol.pairing import OfferJob, OfferKeys, PairingError, compute_offer

logger = logging.getLogger(__name__)

ANSWER_TIMEOUT_S: Final = 5.0
"""How long the child may take over one job (it needs ~1 ms) before it is replaced."""


class PairingWorker(Protocol):
    """Where the kiosk's SPAKE2 work runs."""

    def compute(self, job: OfferJob) -> OfferKeys:
        """Run :func:`~protocol.pairing.compute_offer`; blocks (call on a worker thread).

        Raises:
            PairingError: the controller's SPAKE2 message is invalid.
        """
        ...


class InlinePairingWorker:
    """Computes in the calling thread (tests, and the fallback of the process worker)."""

    def compute(self, job: OfferJob) -> OfferKeys:
        return compute_offer(job)


class ProcessPairingWorker:
    """Computes in a child process shared by every kiosk of this process (see module).

    Thread-safe: jobs are sent one at a time; a second caller waits for the first.
    """

    _lock = threading.Lock()
    _child: subprocess.Popen[str] | None = None
    _disabled = False

    def compute(self, job: OfferJob) -> OfferKeys:
        with self._lock:
            for _ in range(2):  # a child that died is replaced once
                child = self._running_child()
                if child is None:
                    break
                try:
                    return _answer_keys(_ask(child, job))
                except (OSError, ValueError, KeyError, TimeoutError) as exc:
                    logger.warning("the pairing worker failed (%s): starting a new one", exc)
                    _stop(child, graceful=False)
                    type(self)._child = None
        return compute_offer(job)

    @classmethod
    def _running_child(cls) -> subprocess.Popen[str] | None:
        if cls._disabled:
            return None
        if cls._child is not None and cls._child.poll() is None:
            return cls._child
        try:
            cls._child = subprocess.Popen(
                [sys.executable, "-m", "kiosk.pairing_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
            )
        except OSError as exc:
            cls._disabled = True
            logger.warning(
                "cannot start the pairing worker (%s): pairing computes on the network "
                "thread's worker instead",
                exc,
            )
            return None
        return cls._child

    @classmethod
    def stop(cls) -> None:
        """Stop the child (it is started again by the next job)."""
        with cls._lock:
            if cls._child is not None:
                _stop(cls._child)
                cls._child = None


def _ask(child: subprocess.Popen[str], job: OfferJob) -> dict[str, Any]:
    stdin, stdout = child.stdin, child.stdout
    assert stdin is not None
    assert stdout is not None
    stdin.write(json.dumps(_job_json(job)) + "\n")
    stdin.flush()
    line = _read_line(stdout, ANSWER_TIMEOUT_S)
    answer = json.loads(line)
    if not isinstance(answer, dict):
        raise ValueError(f"unexpected answer from the pairing worker: {line[:100]!r}")
    return answer


def _read_line(stream: IO[str], timeout_s: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout_s)
    if not ready:
        raise TimeoutError(f"no answer in {timeout_s} s")
    line = stream.readline()
    if not line:
        raise OSError("the pairing worker exited")
    return line


def _stop(child: subprocess.Popen[str], *, graceful: bool = True) -> None:
    """End ``child``: close its stdin and let it exit, or kill it (a failed one)."""
    if not graceful:
        child.kill()
    if child.stdin is not None:
        with contextlib.suppress(OSError):
            child.stdin.close()
    try:
        child.wait(1.0)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    if child.stdout is not None:
        child.stdout.close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _job_json(job: OfferJob) -> dict[str, str]:
    return {
        "secret": job.secret,
        "controller_id": job.controller_id,
        "kiosk_id": job.kiosk_id,
        "fingerprint": job.fingerprint,
        "msg_a": _b64(job.msg_a),
    }


def _answer_keys(answer: dict[str, Any]) -> OfferKeys:
    if "error" in answer:
        raise PairingError(str(answer["error"]))
    return OfferKeys(
        base64.b64decode(answer["msg_b"]),
        base64.b64decode(answer["key"]),
        base64.b64decode(answer["transcript"]),
    )


def serve(lines: IO[str], out: IO[str]) -> None:
    """The child's loop: one JSON job a line in, one JSON answer a line out."""
    for line in lines:
        request = json.loads(line)
        job = OfferJob(
            request["secret"],
            request["controller_id"],
            request["kiosk_id"],
            request["fingerprint"],
            base64.b64decode(request["msg_a"]),
        )
        try:
            keys = compute_offer(job)
        except PairingError as exc:
            answer = {"error": str(exc)}
        else:
            answer = {
                "msg_b": _b64(keys.msg_b),
                "key": _b64(keys.key),
                "transcript": _b64(keys.transcript),
            }
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kiosk decides when this child ends
    serve(sys.stdin, sys.stdout)
