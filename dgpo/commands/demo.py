"""`dgpo demo`: train a tiny model with DGPO, evaluate its last checkpoint, print the scores.

Everything goes through the REST API exactly as a user's tools would: the demo starts
the embedded stack (`dgpo up`) unless an API already answers at DGPO_API_URL, submits
a short train job on the built-in tiny model and toy task (`tiny`, `toy-digits`:
`trainer.data.builtins`), follows it live, then submits an eval job on the train job's latest
checkpoint against `gsm8k_mini` (shipped with the package) and prints the results table.
Nothing outside the repository is needed: no data directory, no hub.
"""

import os
import time
from contextlib import ExitStack
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape

from dgpo.client import DgpoClient
from dgpo.commands._api import api_client, console
from dgpo.commands.embedded import EmbeddedStack, HomeOption, local_token, prepare_home
from dgpo.commands.jobs import follow, print_results

DEMO_METADATA = {"source": "dgpo-demo"}
WORKER_WAIT_S = 120.0


def train_request(steps: int) -> dict[str, Any]:
    """A DGPO run small enough for two CPU cores: 4 prompts x 4 samples per step."""
    return {
        "kind": "train",
        "model": {"path": "tiny"},
        "dataset": {"path": "toy-digits"},
        "prompt": {"instruction": ""},
        "algorithm": {"reward": "contains", "group_size": 4, "policy_loss": {"name": "dgpo"}},
        "rollout": {"max_prompt_tokens": 64, "max_response_tokens": 16, "batch_size": 16},
        "optim": {
            "lr": 1e-3,
            "prompts_per_step": 4,
            "mini_batch_prompts": 4,
            "micro_batch_size": 8,
        },
        "total_steps": steps,
        "checkpoint": {"every_steps": max(1, steps // 2), "keep_last": 2},
        "metadata": DEMO_METADATA,
    }


def eval_request(train_job_id: str, benchmark: str, problems: int) -> dict[str, Any]:
    return {
        "kind": "eval",
        "model": {"checkpoint": {"job_id": train_job_id, "step": "latest"}},
        "benchmarks": [benchmark],
        "k": 2,
        "max_problems": problems,
        "max_tokens": 32,
        "batch_size": 16,
        "metadata": DEMO_METADATA,
    }


def _api_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).is_success
    except httpx.TransportError:
        return False


def _wait_for_worker(api: DgpoClient, queue: str = "cpu") -> None:
    """Say what the demo waits for: the worker imports torch before it registers."""
    with console.status(f"waiting for a worker on queue {queue!r} (it loads torch first) ..."):
        deadline = time.monotonic() + WORKER_WAIT_S
        while not any(queue in w["queues"] for w in api.workers(status="alive")):
            if time.monotonic() > deadline:
                console.print(f"[red]no worker serves queue {queue!r} after {WORKER_WAIT_S:.0f}s")
                raise typer.Exit(1)
            time.sleep(0.5)
    console.print(f"a worker serves queue {queue!r}")


def _run_job(api: DgpoClient, body: dict[str, Any], what: str) -> dict[str, Any]:
    job = api.submit_job(body)
    url = os.environ.get("DGPO_API_URL", "")
    console.print(f"{what}: job {job['id']} submitted (dashboard: {url}/ui/jobs/{job['id']})")
    for warning in job.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    job = follow(api, job["id"])
    if job["status"] != "succeeded":
        error = (job["error"] or {}).get("message") or ""
        console.print(f"[red]{what} job {job['status']}:[/red] {escape(error)}")
        raise typer.Exit(1)
    return job


def demo(
    home: HomeOption = None,
    port: Annotated[int, typer.Option(help="Port for the embedded API")] = 8000,
    steps: Annotated[int, typer.Option(min=1, help="Training steps")] = 8,
    benchmark: Annotated[
        str, typer.Option(help="Benchmark for the eval job (gsm8k_mini ships with dgpo)")
    ] = "gsm8k_mini",
    problems: Annotated[int, typer.Option(min=1, help="Problems evaluated")] = 8,
) -> None:
    """Train the tiny model with DGPO, evaluate its last checkpoint, print the results."""
    with ExitStack() as stack:
        url = os.environ.get("DGPO_API_URL", f"http://127.0.0.1:{port}")
        if _api_answers(url):
            console.print(f"using the API already running at {url}")
            os.environ["DGPO_API_URL"] = url
        else:
            state = prepare_home(home)
            os.environ["DGPO_TOKEN"] = os.environ.get("DGPO_TOKEN") or local_token(state)
            with console.status(f"starting the embedded service (API, worker, beat) in {state}"):
                embedded = stack.enter_context(EmbeddedStack(state, port))
            os.environ["DGPO_API_URL"] = embedded.url
            console.print(f"the API answers at {embedded.url} (logs: {state}/logs)")
        with api_client() as api:
            _wait_for_worker(api)
            train = _run_job(api, train_request(steps), "train")
            evaluation = _run_job(api, eval_request(train["id"], benchmark, problems), "eval")
            print_results(api.job_results(evaluation["id"]))
        console.print(f"train job {train['id']}, eval job {evaluation['id']}")
