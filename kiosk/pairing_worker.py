"""Where the kiosk's SPAKE2 work runs: on a worker thread of the kiosk's own process.

One kiosk-side exchange (:func:`protocol.pairing.compute_offer`) takes under a
millisecond of libsodium arithmetic (:mod:`protocol.spake`), with the GIL released
while libsodium computes. The service never calls a worker itself: it emits
:class:`~kiosk.service.ComputeOffer`, and the websocket adapter calls
:meth:`PairingWorker.compute` on a worker thread (``asyncio.to_thread``), outside the
service lock and off the network loop, then hands the result back
(:meth:`~kiosk.service.KioskService.offer_computed`). The pairing guard's budgets
(:class:`protocol.pairing.PairingGuard`) bound how often that happens: at most 2
exchanges a second per role, one at a time, whatever a flood sends.

(A child process once ran this work, when SPAKE2 was 10–30 ms of pure Python holding
the GIL; it cost a panel about 20 MB from its first pairing on and is gone.)
"""

from __future__ import annotations

from typing import Protocol

from protocol.pairing import OfferJob, OfferKeys, compute_offer


class PairingWorker(Protocol):
    """Where the kiosk's SPAKE2 work runs."""

    def compute(self, job: OfferJob) -> OfferKeys:
        """Run :func:`~protocol.pairing.compute_offer`; blocks (call on a worker thread).

        Raises:
            PairingError: the controller's SPAKE2 message is invalid.
        """
        ...


class InlinePairingWorker:
    """Computes in the calling thread: the kiosk's worker (see module)."""

    def compute(self, job: OfferJob) -> OfferKeys:
        return compute_offer(job)
