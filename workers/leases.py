"""The thread that keeps an attempt's lease (`store.leases`) while its trainer runs."""

import logging
import os
import threading
import time
from pathlib import Path

from store.leases import Lease, LeaseLost, renew

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Background thread renewing a lease while the trainer runs in the foreground.

    `lost` is set when a renewal finds the lease taken over; the reporting callback
    checks it at the next hook and aborts the run. After each renewal that succeeded, the
    heartbeat file (`vouch`) gets the renewal's start as its mtime: the trainer fences
    itself when it goes stale (`trainer.reporting.fence`), even if this process is frozen.
    """

    def __init__(self, lease: Lease, lease_s: float, every_s: float) -> None:
        self.lease, self.lease_s, self.every_s = lease, lease_s, every_s
        self.renewed_at = time.time()  # just after the claim: no later than the lease's start
        self.heartbeat: Path | None = None
        self.lost = threading.Event()
        """Set once this attempt must stop: its lease was taken over, or (a gang member)
        the attempt ended elsewhere."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def fence_timeout_s(self) -> float:
        """How stale the heartbeat may get before the trainer stops: half the lease, so a
        step or checkpoint under way has the other half to finish before it expires."""
        return self.lease_s / 2

    def vouch(self, heartbeat: Path) -> None:
        """Keep `heartbeat` fresh while the lease holds, from its last renewal on."""
        heartbeat.touch()
        os.utime(heartbeat, (self.renewed_at, self.renewed_at))
        self.heartbeat = heartbeat

    def renew(self) -> None:
        """One renewal; raises LeaseLost when the attempt is no longer this one's."""
        renew(self.lease, self.lease_s)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            started = time.time()
            try:
                self.renew()
                self.renewed_at = started
                if self.heartbeat is not None:
                    os.utime(self.heartbeat, (started, started))
            except LeaseLost:
                log.warning("job %s: lease lost, stopping attempt", self.lease.job_id)
                self.lost.set()
                return
            except Exception:  # a database blip must not kill the keeper; retry next tick
                log.exception("job %s: lease renewal failed", self.lease.job_id)
