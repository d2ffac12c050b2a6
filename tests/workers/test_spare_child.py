"""A slot's spare child takes the next attempt, as the child a fresh start would have made.

Real `dgpo worker` processes, Postgres and Redis, the tiny model; and `start_attempt`
called directly for what needs no worker. What is proven here: the next single-process
attempt runs in the spare (same pid) with the slot's GPUs, thread count and parent; a new
spare follows it; a dead spare is replaced and its attempt starts fresh; a spare started
with another environment is stopped, not used; a cancel while the attempt starts in a
spare lands and leaves no process; the spare dies with its slot; the setting turns it off.
"""

import fcntl
import os
import signal
import struct
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.settings import get_settings
from config.worker_settings import WorkerSettings
from tests.workers.conftest import Api, WorkerProcess, child_pids, wait_for
from tests.workers.test_supervisor import pool_pid, slow_step
from workers import spare_child
from workers.cpus import available_cores

TOOK = "pre-started child {pid} took the attempt"


def spares_of(parent: int) -> list[int]:
    """Live spare children (`trainer.supervised_spare`) whose parent is `parent`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if b"trainer.supervised_spare" not in (proc / "cmdline").read_bytes():
                continue
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if int(fields["PPid"]) == parent and not fields["State"].startswith("Z"):
            found.append(int(proc.name))
    return found


def environ(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in entries if b"=" in e)


def state(pid: int) -> str:
    """The process's state letter (`Z`: exited, not yet reaped), or `gone`."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def alive(pid: int) -> bool:
    return state(pid) not in ("Z", "gone")


def unread_input(pid: int) -> int:
    """Bytes waiting in `pid`'s stdin pipe (opened anew, without blocking or reading)."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(fd)


def attempt_log(job_id: str, attempt: int = 1) -> str:
    return (Path(get_settings().home) / "jobs" / job_id / f"attempt-{attempt}.log").read_text()


@pytest.fixture
def spare_worker(
    start_worker: Callable[..., WorkerProcess],
) -> Iterator[Callable[[str], WorkerProcess]]:
    """A one-slot worker on `gpu.<name>` (two fake GPUs, OMP_NUM_THREADS=7 inherited)."""
    started = []

    def start(name: str) -> WorkerProcess:
        started.append(start_worker(name, f"gpu.{name}", {"OMP_NUM_THREADS": "7"}))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


def request_on(train_request: Callable[..., dict], queue: str, **kwargs: int) -> dict:
    return train_request(**kwargs, resources={"gpus": 1, "gpu_type": queue})


def test_the_next_attempt_runs_in_the_slots_spare_with_the_slots_gpus_and_threads(
    spare_worker: Callable[[str], WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    worker = spare_worker("sparing")
    request = request_on(train_request, "sparing", total_steps=1)
    first = api.wait(api.submit(request), worker)
    assert first["status"] == "succeeded", first["error"]
    slot = pool_pid(worker)
    (spare,) = wait_for(lambda: spares_of(slot), "the slot's spare child")
    env = environ(spare)
    assert env["OMP_NUM_THREADS"] == str(available_cores())  # the slot's share, not 7
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"  # the one slot's GPUs
    assert env["DGPO_PARENT_PID"] == str(slot)

    job_id = api.submit(request)
    job = api.wait(job_id, worker)
    assert job["status"] == "succeeded", job["error"]
    log = attempt_log(job_id)
    assert TOOK.format(pid=spare) in log, log[-2000:]
    assert f"torch uses {available_cores()} CPU threads" in log, log[-2000:]
    assert not alive(spare)
    (following,) = wait_for(lambda: spares_of(slot), "the next spare child")
    assert following != spare


def test_a_dead_spare_is_replaced_and_its_attempt_starts_fresh(
    spare_worker: Callable[[str], WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    worker = spare_worker("respare")
    request = request_on(train_request, "respare", total_steps=1)
    assert api.wait(api.submit(request), worker)["status"] == "succeeded"
    slot = pool_pid(worker)
    (spare,) = wait_for(lambda: spares_of(slot), "the slot's spare child")
    os.kill(spare, signal.SIGKILL)
    # Its main thread exited; its other threads may still be exiting, its stdin open
    # (the hand-over then finds it alive: see the next test).
    wait_for(lambda: state(spare) == "Z", "the spare to die")

    job_id = api.submit(request)
    job = api.wait(job_id, worker)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 1
    assert "pre-started child" not in attempt_log(job_id)
    (following,) = wait_for(lambda: spares_of(slot), "a new spare child")
    assert following != spare


def test_a_spare_that_dies_before_it_takes_its_attempt_costs_no_attempt(
    spare_worker: Callable[[str], WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    """Handed the attempt while alive, dead before it read it (killed while it imports;
    or, as `kill -9` leaves it, its main thread exited while the others still free its
    memory): the attempt never ran there, and starts fresh."""
    worker = spare_worker("handdeath")
    request = request_on(train_request, "handdeath", total_steps=1)
    assert api.wait(api.submit(request), worker)["status"] == "succeeded"
    slot = pool_pid(worker)
    (spare,) = wait_for(lambda: spares_of(slot), "the slot's spare child")
    os.kill(spare, signal.SIGSTOP)  # alive, but reads nothing

    job_id = api.submit(request)
    wait_for(lambda: unread_input(spare), "the attempt to be handed to the spare")
    os.kill(spare, signal.SIGKILL)
    job = api.wait(job_id, worker)
    assert (job["status"], job["attempt"], job["error"]) == ("succeeded", 1, None)
    assert "pre-started child" not in attempt_log(job_id)


def test_a_cancel_while_the_attempt_starts_in_a_spare_lands(
    spare_worker: Callable[[str], WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    """The cancel comes as soon as the job runs: the spare may still be importing (it
    was started when the previous attempt was), the trainer has not loaded its model."""
    worker = spare_worker("cancelspare")
    request = request_on(train_request, "cancelspare", total_steps=1)
    assert api.wait(api.submit(request), worker)["status"] == "succeeded"
    slot = pool_pid(worker)
    (spare,) = wait_for(lambda: spares_of(slot), "the slot's spare child")

    slow = slow_step(request_on(train_request, "cancelspare", total_steps=3))
    slow["checkpoint"] |= {"cancel_grace_s": 2}
    job_id = api.submit(slow)
    api.wait(job_id, worker, {"running"})
    cancelled_at = time.monotonic()
    r = api.client.post(f"/jobs/{job_id}/cancel", headers=api.headers)
    assert r.status_code == 200, r.text
    job = api.wait(job_id, worker)
    took = time.monotonic() - cancelled_at
    assert job["status"] == "cancelled", job["error"]
    assert took < 2 + 10, f"cancel took {took:.1f} s"
    worker.log.flush()
    assert f"the attempt runs in the spare child {spare}" in worker.log_path.read_text()
    wait_for(lambda: not alive(spare), "the attempt's process to be gone", timeout=15)
    assert child_pids(job_id) == []


def test_a_spare_dies_with_its_slot(
    spare_worker: Callable[[str], WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    worker = spare_worker("orphan")
    request = request_on(train_request, "orphan", total_steps=1)
    assert api.wait(api.submit(request), worker)["status"] == "succeeded"
    slot = pool_pid(worker)
    (spare,) = wait_for(lambda: spares_of(slot), "the slot's spare child")
    os.kill(slot, signal.SIGKILL)
    wait_for(lambda: not alive(spare), "the spare to die with its slot", timeout=15)


@pytest.fixture
def no_spare_left() -> Iterator[None]:
    """Stops whatever spare `start_attempt` left in this process."""
    yield
    spare, spare_child._spare = spare_child._spare, None
    if spare is not None:
        spare.child.terminate(0.0)


def test_a_spare_started_with_another_environment_is_stopped_not_used(
    no_spare_left: None, tmp_path: Path
) -> None:
    settings = WorkerSettings()
    first = spare_child.start_attempt(
        ["platform"], tmp_path / "a.log", nproc=1, threads=1, settings=settings
    )
    assert first.proc.wait(timeout=60) == 0
    stale = spare_child._spare
    assert stale is not None
    second = spare_child.start_attempt(
        ["platform"], tmp_path / "b.log", nproc=1, threads=2, settings=settings
    )
    assert second.pid != stale.child.pid
    assert stale.child.poll() is not None
    assert second.proc.wait(timeout=60) == 0
    assert "pre-started child" not in (tmp_path / "b.log").read_text()
    fresh = spare_child._spare
    assert fresh is not None and environ(fresh.child.pid)["OMP_NUM_THREADS"] == "2"


def test_no_spare_is_started_when_the_setting_is_off(no_spare_left: None, tmp_path: Path) -> None:
    settings = WorkerSettings(spare_child=False)
    child = spare_child.start_attempt(
        ["platform"], tmp_path / "a.log", nproc=1, threads=1, settings=settings
    )
    assert child.proc.wait(timeout=60) == 0
    assert spare_child._spare is None
    assert spares_of(os.getpid()) == []
