"""A job that asks for GPUs on a worker where CUDA is unavailable fails at once, saying so.

The worker here is a real `dgpo worker` on this CPU-only host serving a GPU queue, without
the stand-in switch the other test workers set (`trainer.devices.CPU_STANDS_IN_ENV`).
Before, `pick_device` chose the CPU and the job "trained" there.
"""

from collections.abc import Callable

from tests.workers.conftest import Api, WorkerProcess
from trainer.devices import CPU_STANDS_IN_ENV


def test_a_gpu_job_where_cuda_is_unavailable_fails_on_its_first_attempt_naming_cuda(
    start_worker: Callable[..., WorkerProcess],
    api: Api,
    train_request: Callable[..., dict],
) -> None:
    worker = start_worker("nocuda", "gpu.nocuda", {CPU_STANDS_IN_ENV: "0"})
    resources = {"gpus": 1, "gpu_type": "nocuda"}
    job = api.wait(api.submit(train_request(total_steps=1, resources=resources)), worker)
    worker.stop()
    assert job["status"] == "failed", job
    assert job["attempt"] == 1, "re-queued although every attempt here fails the same way"
    assert job["error"]["code"] == "gpus_unavailable", job["error"]
    assert "asks for 1 GPU" in job["error"]["message"]
    assert "CUDA is unavailable" in job["error"]["message"]
    assert not [e for e in api.events(job["id"]) if e["data"].get("to") == "queued"][1:]
