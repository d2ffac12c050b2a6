"""The lease table under many gangs: 1,000 simulated workers claiming in a loop (issue 27).

A throwaway Postgres database (`bench/scratch.py`) gets `--workers` live workers of one
8-GPU slot each on `gpu.h100`. Half the fleet is kept busy by running jobs (so the busy
count that every gang claim reads is not trivially empty). Then, alternating within each
round so both see the same table and load:

- baseline: a 1-node job is claimed by a free worker (`store.leases.place`), its lease
  renewed `--renewals` times (`store.leases.renew`), and it finishes;
- gang: a `--nodes`-node job is claimed by a free worker (K-1 others reserved in the same
  transaction, `store.gangs.claim`), each other member taken up by its worker
  (`place`, which starts the reserved member first), every member renews `--renewals`
  times (`store.gangs.renew`: its own lease, the job's, and the lapse check), and every
  member finishes (`store.attempts.finish`: the last one ends the job).

Printed: medians over `--rounds` rounds of the time one claim holds the claim lock (the
claim is serialised, so 1 / that is the fleet's claim rate), of one renewal, and of the
whole gang placement (claim + K-1 member starts), each with its ratio to the baseline;
and the renewal load a fleet of that size puts on Postgres at `lease_renew_s` = 10 s.

    python bench/gang_leases.py [--workers 1000] [--nodes 8] [--rounds 30]
"""

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scratch import scratch_service

GPUS_PER_WORKER = 8
QUEUE = "gpu.h100"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--renewals", type=int, default=5)
    args = parser.parse_args()
    with scratch_service():
        measure(args)


def measure(args: argparse.Namespace) -> None:
    from sqlalchemy import update

    from store import attempts, gangs
    from store.db import get_sessionmaker
    from store.leases import Lease, place, renew
    from store.models import Job, Worker, utcnow
    from store.placement import Slot

    names = [f"w{i:04d}@bench" for i in range(args.workers)]
    with get_sessionmaker()() as session:
        session.add_all(
            Worker(id=n, host=n, gpu_type="h100", gpu_count=GPUS_PER_WORKER, queues=[QUEUE])
            for n in names
        )
        session.commit()

    def new_job(nodes: int) -> str:
        resources = {"gpus": GPUS_PER_WORKER * nodes, "nodes": nodes, "gpu_type": "h100"}
        with get_sessionmaker()() as session:
            job = Job(kind="train", spec={"resources": resources}, queue=QUEUE)
            session.add(job)
            session.commit()
            return job.id

    busy = set(random.sample(names, args.workers // 2))
    for name in busy:  # half the fleet runs 1-node jobs for the whole run
        lease, _ = place(new_job(1), Slot(name, GPUS_PER_WORKER), 600)
        assert lease is not None
    idle = [n for n in names if n not in busy]

    def timed(fn, *a):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        out = fn(*a)
        return out, time.perf_counter() - t0

    def heartbeat_all() -> None:
        """What the fleet's worker heartbeats keep true: every worker looks alive."""
        with get_sessionmaker()() as session:
            session.execute(update(Worker).values(heartbeat_at=utcnow()))
            session.commit()

    claim_1, claim_k, start_k, renew_1, renew_k = [], [], [], [], []
    for _ in range(args.rounds):
        heartbeat_all()
        host = random.choice(idle)
        (lease, _), seconds = timed(place, new_job(1), Slot(host, GPUS_PER_WORKER), 600)
        assert lease is not None
        claim_1.append(seconds)
        for _ in range(args.renewals):
            renew_1.append(timed(renew, lease, 600)[1])
        attempts.finish(lease, False, "done", {})

        t0 = time.perf_counter()
        job_id = new_job(args.nodes)
        (host_lease, _), seconds = timed(place, job_id, Slot(host, GPUS_PER_WORKER), 600)
        assert host_lease is not None and host_lease.member == 0
        claim_k.append(seconds)
        members: list[Lease] = [host_lease]
        for m in gangs.members(host_lease)[1:]:
            member, _ = place(job_id, Slot(m.worker, GPUS_PER_WORKER), 600)
            assert member is not None and member.member == m.member
            members.append(member)
        start_k.append(time.perf_counter() - t0)
        for _ in range(args.renewals):
            for member in members:
                lapsed, seconds = timed(gangs.renew, member, 600)
                assert lapsed == []
                renew_k.append(seconds)
        for member in members:
            attempts.finish(member, False, "done", {})

    def ms(xs: list[float]) -> float:
        return statistics.median(xs) * 1000

    print(
        f"{args.workers} workers ({len(busy)} busy), gangs of {args.nodes}, "
        f"{args.rounds} rounds, medians:"
    )
    print(f"  claim, 1-node job (baseline):      {ms(claim_1):7.2f} ms")
    print(
        f"  claim, {args.nodes}-node gang:               {ms(claim_k):7.2f} ms  "
        f"(x{ms(claim_k) / ms(claim_1):.2f})"
    )
    print(
        f"  gang placed, {args.nodes} members started:   {ms(start_k):7.2f} ms  "
        f"(x{ms(start_k) / ms(claim_1):.2f} of one 1-node claim)"
    )
    print(f"  renewal, 1-node lease (baseline):  {ms(renew_1):7.2f} ms")
    print(
        f"  renewal, gang member:              {ms(renew_k):7.2f} ms  "
        f"(x{ms(renew_k) / ms(renew_1):.2f})"
    )
    per_s = args.workers / 10
    print(
        f"  at lease_renew_s = 10 s: {per_s:.0f} renewals/s, "
        f"~{per_s * ms(renew_k) / 1000:.2f} connection-seconds per second of Postgres; "
        f"claims serialised at ~{1000 / ms(claim_k):.0f} gangs/s"
    )


if __name__ == "__main__":
    main()
