"""This worker's member of a multi-node job (`store.gangs`): meeting the others, keeping
its own lease, and telling its failure from one it only suffered.

- Member 0 (the claimer) wakes the workers holding the other members (a run message on
  each one's own queue, `workers.routing.member_queue`), picks a free port and publishes
  `host:port` as the c10d endpoint; the others wait for it (at most `gang_start_s`).
- Every member renews its own lease and the job's (`GangKeeper`); a renewal that finds
  another member's lease lapsed fails the attempt for the gang (`node_lost`, naming it).
  Once the attempt is over, every other member's next renewal finds it so and its
  supervisor terminates its torchrun at once: the others stop within `lease_renew_s` of
  the failure being recorded (plus `kill_grace_s` for SIGKILL).
- A member whose ranks died of a peer's loss (a closed connection, a closed rendezvous)
  waits, renewing, for the member that caused it to say so; only if none does within a
  lease does it fail the attempt with its own cause (`blame`).
"""

import logging
import re
import socket
import time
from collections.abc import Callable

from config.worker_settings import WorkerSettings
from store import broker, gangs
from store.broker import RunMessage
from store.leases import Lease, LeaseLost
from trainer.distributed.launch import Rendezvous
from workers.failures import ChildFailed, GangMemberLost
from workers.leases import LeaseKeeper
from workers.routing import member_queue

log = logging.getLogger(__name__)

PEER_LOST = re.compile(
    r"Connection closed by peer|Connection reset by peer|Broken pipe|RendezvousClosedError|"
    r"RendezvousConnectionError|Connection refused|NCCL communicator was aborted|"
    r"remote process exited|ProcessGroupGloo.*(?:timed out|Timeout)"
)
"""What a rank's or agent's output says when another node went away, not this one."""


def rendezvous(lease: Lease, keeper: LeaseKeeper, settings: WorkerSettings) -> Rendezvous:
    """Where this member's torchrun meets the others (member 0: after waking them)."""
    assert lease.member is not None
    host = lease.member == gangs.RENDEZVOUS_HOST
    if host:
        _wake_others(lease)
        endpoint = f"{settings.worker_address or socket.gethostname()}:{_free_port()}"
        gangs.publish_endpoint(lease, endpoint)
    else:
        endpoint = _wait_for_endpoint(lease, keeper, settings)
    return Rendezvous(
        nodes=int(lease.spec["resources"]["nodes"]),
        endpoint=endpoint,
        run_id=f"{lease.job_id}-{lease.attempt}",
        is_host=host,
        join_timeout_s=settings.gang_start_s,
    )


def _wake_others(lease: Lease) -> None:
    """A run message on the own queue of each worker holding another member: its next free
    slot starts that member (`store.gangs.take_pending`)."""
    others = [m.worker for m in gangs.members(lease) if m.member != gangs.RENDEZVOUS_HOST]
    broker.enqueue([RunMessage(lease.job_id, member_queue(worker), 9) for worker in others])


def _free_port() -> int:
    """A port free now, for member 0's c10d store (torchrun binds it a moment later: a
    race with another process taking it fails the rendezvous, and the attempt retries)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _wait_for_endpoint(lease: Lease, keeper: LeaseKeeper, settings: WorkerSettings) -> str:
    deadline = time.monotonic() + settings.gang_start_s
    while time.monotonic() < deadline:
        if keeper.lost.is_set():
            raise LeaseLost(f"job {lease.job_id}: attempt {lease.attempt} ended before it met")
        host = gangs.members(lease)[0]
        if host.endpoint:
            return host.endpoint
        time.sleep(settings.report_poll_s)
    raise TimeoutError(
        f"gang member 0 of job {lease.job_id} published no rendezvous endpoint within "
        f"{settings.gang_start_s:g} s (DGPO_GANG_START_S)"
    )


class GangKeeper(LeaseKeeper):
    """A member's lease keeper: renews its own lease and the job's, and fails the attempt
    (through `fail`, the slot's usual failure path) when another member's lapsed."""

    def __init__(
        self, lease: Lease, settings: WorkerSettings, fail: Callable[[Lease, Exception], None]
    ) -> None:
        super().__init__(lease, settings.lease_s, settings.lease_renew_s)
        self.fail = fail

    def renew(self) -> None:
        lapsed = gangs.renew(self.lease, self.lease_s)
        if lapsed is None:
            raise LeaseLost(f"job {self.lease.job_id}: attempt {self.lease.attempt} is over")
        if lapsed:
            error = gangs.lapsed_error(lapsed, self.lease.attempt)
            log.warning("job %s: %s; failing the attempt", self.lease.job_id, error.message)
            self.fail(self.lease, GangMemberLost(error.message))
            raise LeaseLost(f"job {self.lease.job_id}: {error.message}")


def blame(
    lease: Lease, exc: Exception, keeper: LeaseKeeper, settings: WorkerSettings
) -> Exception | None:
    """The failure this member reports, naming it; None when the attempt ended elsewhere
    while it waited: its ranks died of another member's loss, which that one reports."""
    if isinstance(exc, ChildFailed) and PEER_LOST.search(exc.tail):
        deadline = time.monotonic() + settings.lease_s + 2 * settings.lease_renew_s
        while time.monotonic() < deadline and not keeper.lost.is_set():
            time.sleep(settings.report_poll_s)
        if keeper.lost.is_set():
            log.info("job %s: member %s stopped after another member", lease.job_id, lease.member)
            return None
    if isinstance(exc, ChildFailed):
        who = f"gang member {lease.member} on worker {lease.owner}: {exc.cause}"
        return type(exc)(who, exc.tail, exc.returncode)
    return exc
