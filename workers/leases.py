"""The thread that keeps an attempt's lease (`store.leases`) while its trainer runs."""

import logging
import threading

from store.leases import Lease, LeaseLost, renew

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Background thread renewing a lease while the trainer runs in the foreground.

    `lost` is set when a renewal finds the lease taken over; the reporting callback
    checks it at the next hook and aborts the run.
    """

    def __init__(self, lease: Lease, lease_s: float, every_s: float) -> None:
        self.lease, self.lease_s, self.every_s = lease, lease_s, every_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                renew(self.lease, self.lease_s)
            except LeaseLost:
                log.warning("job %s: lease lost, stopping attempt", self.lease.job_id)
                self.lost.set()
                return
            except Exception:  # a database blip must not kill the keeper; retry next tick
                log.exception("job %s: lease renewal failed", self.lease.job_id)
