"""A 2-node job on two real `dgpo worker` processes (`workers.gang`, CPU ranks with gloo)
fails and retries as one: a killed member child, or a killed member worker, fails the
attempt for both members, the event names the member and how, the survivor's ranks are
stopped, and the retry resumes from the last checkpoint; a cancel stops both members.

The bound (docs/distributed.md): a member child's death is recorded within
`report_poll_s` of torchrun's exit, a whole worker's within `lease_s + lease_renew_s`;
the other member stops within `lease_renew_s + kill_grace_s` of that (here 4 s leases
renewed every second, 2 s kill grace). The assertions allow far more, for a loaded host;
the measured times are printed.
"""

import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from config.settings import get_settings
from config.worker_settings import WorkerSettings
from store.leases import Lease
from tests.workers.conftest import Api, WorkerProcess, wait_for
from workers.failures import ChildFailed
from workers.gang import blame
from workers.leases import LeaseKeeper

GANG = {"gpus": 2, "nodes": 2, "gpu_type": "gangf"}
WORKER_ENV = {"DGPO_WORKER_GPUS": "0", "DGPO_STORAGE_SHARED": "true"}
SLACK_S = 60.0
"""What a loaded 2-core host may add to the stated bounds."""


@pytest.fixture
def shared_storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The API's operator declares the storage root shared (both workers are on this host)."""
    monkeypatch.setenv("DGPO_STORAGE_SHARED", "true")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def member_pids(job_id: str, member: int) -> list[int]:
    """The rank processes of `job_id`'s gang member `member` (not its torchrun agent)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"trainer.cli" not in cmdline or b"torch.distributed.run" in cmdline:
            continue
        if any(f"{job_id}/member-{member}/".encode() in arg for arg in cmdline):
            found.append(int(proc.name))
    return found


def agent_pids(job_id: str, member: int) -> list[int]:
    """The torchrun agent of `job_id`'s gang member `member` (the child its slot started)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"torch.distributed.run" not in cmdline:
            continue
        if any(f"{job_id}/member-{member}/".encode() in arg for arg in cmdline):
            found.append(int(proc.name))
    return found


def gang_pids(job_id: str) -> list[int]:
    """Every process of the job's attempt on either member, torchrun agents included."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"trainer.supervised" in cmdline and f"{job_id}/member-".encode() in cmdline:
            found.append(int(proc.name))
    return found


def requeued_event(api: Api, job_id: str, attempt: int) -> dict | None:
    return next(
        (
            e
            for e in api.events(job_id)
            if e["kind"] == "status" and e["data"].get("to") == "queued" and e["attempt"] == attempt
        ),
        None,
    )


def since(t0: float, event: dict) -> float:
    """Seconds from wall-clock `t0` to the event's timestamp."""
    return datetime.fromisoformat(event["ts"]).timestamp() - t0


def start_gang_workers(
    start_worker: Callable[..., WorkerProcess], *names: str
) -> list[WorkerProcess]:
    return [start_worker(name, "gpu.gangf", WORKER_ENV) for name in names]


def run_past_a_checkpoint(api: Api, train_request: Callable[..., dict]) -> str:
    job_id = api.submit(train_request(total_steps=400, every_steps=2, resources=GANG))
    wait_for(lambda: (api.job(job_id)["current_step"] or 0) >= 3, "the gang's step 3", 240)
    wait_for(lambda: member_pids(job_id, 0) and member_pids(job_id, 1), "both members' ranks")
    return job_id


def resumes_and_cancels(api: Api, job_id: str, worker: WorkerProcess) -> None:
    """The retry resumes from a checkpoint of the first attempt; a cancel then stops both
    members after a final checkpoint."""

    def resumed() -> dict | None:
        return next(
            (e for e in api.events(job_id) if e["kind"] == "resumed" and e["attempt"] == 2), None
        )

    event = wait_for(resumed, "the retry to resume", 240)
    step = int(re.search(r"at step (\d+)", event["message"]).group(1))  # type: ignore[union-attr]
    assert step >= 2, event
    wait_for(lambda: (api.job(job_id)["current_step"] or 0) > step, "the retry's next step", 240)
    r = api.client.post(f"/jobs/{job_id}/cancel", headers=api.headers)
    assert r.status_code == 200, r.text
    job = api.wait(job_id, worker, timeout=120)
    assert job["status"] == "cancelled", job["error"]
    wait_for(lambda: not gang_pids(job_id), "both members' processes to exit", SLACK_S)


def test_a_killed_member_child_fails_the_gang_which_retries_from_its_checkpoint(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
    shared_storage: None,
) -> None:
    """The child killed is member 1's torchrun agent (`kill -9`): its rank must not run on
    orphaned (the issue's finding with a bare torchrun), and the gang fails as one."""
    workers = start_gang_workers(start_worker, "gangf-a", "gangf-b")
    job_id = run_past_a_checkpoint(api, train_request)
    (agent,) = agent_pids(job_id, 1)
    orphan = member_pids(job_id, 1)
    survivors = member_pids(job_id, 0)

    t0 = time.time()
    os.kill(agent, signal.SIGKILL)

    event = wait_for(lambda: requeued_event(api, job_id, 1), "the attempt to fail", SLACK_S)
    detected = since(t0, event)
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in survivors), "member 0 to stop")
    stopped = time.time() - t0
    print(
        f"member child killed: failure recorded after {detected:.1f} s, "
        f"member 0 stopped after {stopped:.1f} s"
    )
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in orphan), "member 1's rank")
    error = event["data"]["error"]
    assert error["code"] == "killed", error
    assert re.fullmatch(
        r"gang member 1 on worker gangf-[ab]@test: trainer process was killed by SIGKILL",
        error["message"],
    ), error
    resumes_and_cancels(api, job_id, workers[0])
    for worker in workers:
        worker.stop()


def test_a_killed_member_worker_fails_the_gang_which_retries_on_another(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
    shared_storage: None,
) -> None:
    workers = start_gang_workers(start_worker, "gangw-a", "gangw-b")
    job_id = run_past_a_checkpoint(api, train_request)
    placed = next(e for e in api.events(job_id) if e["kind"] == "gang_placed")
    member1 = placed["data"]["workers"][1]
    victim = next(w for w in workers if w.name == member1)
    survivors = member_pids(job_id, 0)

    t0 = time.time()
    victim.kill9()

    event = wait_for(lambda: requeued_event(api, job_id, 1), "the attempt to fail", SLACK_S)
    detected = since(t0, event)
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in survivors), "member 0 to stop")
    stopped = time.time() - t0
    print(
        f"member worker killed: failure recorded after {detected:.1f} s, "
        f"member 0 stopped after {stopped:.1f} s"
    )
    assert event["data"]["error"] == {
        "code": "node_lost",
        "message": f"GangMemberLost: gang member 1 on worker {member1} lost its lease "
        "(stopped heartbeating)",
        "attempt": 1,
    }
    wait_for(lambda: not member_pids(job_id, 1), "the dead worker's ranks to exit", SLACK_S)
    workers.append(start_worker("gangw-c", "gpu.gangf", WORKER_ENV))
    resumes_and_cancels(api, job_id, workers[0])
    for worker in workers:
        worker.stop()


PEER_GONE = (
    "RuntimeError: [../gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:1234"
)
QUICK = WorkerSettings(lease_s=2.0, lease_renew_s=0.5, report_poll_s=0.05)


def test_a_member_whose_ranks_died_of_a_peers_loss_leaves_the_report_to_the_peer() -> None:
    """Its keeper finds the attempt over (the peer's failure was recorded) while it waits:
    it reports nothing; the same failure with nobody else reporting is its own after a
    lease, named."""
    lease = Lease("j", 1, 1, "a@test", "train", {}, member=0)
    keeper = LeaseKeeper(lease, QUICK.lease_s, QUICK.lease_renew_s)
    failed = ChildFailed("trainer rank 0 exited with code 1: RuntimeError", PEER_GONE, 1)
    threading.Timer(0.3, keeper.lost.set).start()
    assert blame(lease, failed, keeper, QUICK) is None

    alone = LeaseKeeper(lease, QUICK.lease_s, QUICK.lease_renew_s)
    t0 = time.monotonic()
    own = blame(lease, failed, alone, QUICK)
    assert time.monotonic() - t0 >= QUICK.lease_s
    assert isinstance(own, ChildFailed)
    assert (
        own.cause
        == "gang member 0 on worker a@test: trainer rank 0 exited with code 1: RuntimeError"
    )


def test_a_member_whose_own_rank_died_reports_at_once_naming_itself() -> None:
    lease = Lease("j", 1, 1, "b@test", "train", {}, member=1)
    keeper = LeaseKeeper(lease, QUICK.lease_s, QUICK.lease_renew_s)
    killed = ChildFailed("trainer rank 1 was killed by SIGKILL", "Signal 9 (SIGKILL)", -9)
    t0 = time.monotonic()
    own = blame(lease, killed, keeper, QUICK)
    assert time.monotonic() - t0 < QUICK.lease_s
    assert isinstance(own, ChildFailed) and own.returncode == -9
    assert own.cause == "gang member 1 on worker b@test: trainer rank 1 was killed by SIGKILL"
