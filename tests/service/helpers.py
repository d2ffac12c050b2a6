"""Request bodies and broker inspection shared by the service tests."""

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import redis

from tests.conftest import free_port


def train_body(**envelope: Any) -> dict[str, Any]:
    """The smallest valid train job (the spec validates; nothing runs in these tests)."""
    return {
        "kind": "train",
        "model": {"path": "tiny-qwen2"},
        "dataset": {"path": f"{os.environ['DGPO_HOME']}/datasets/prompts.jsonl"},
        "total_steps": 3,
        **envelope,
    }


def eval_body(**envelope: Any) -> dict[str, Any]:
    return {
        "kind": "eval",
        "model": {"path": "tiny-qwen2"},
        "benchmarks": ["gsm8k"],
        "k": 2,
        **envelope,
    }


def broker_messages(redis_url: str, queue: str) -> list[tuple[str, list[Any], int | None]]:
    """(task name, args, priority) of every message waiting in `queue` (all priority lists)."""
    r = redis.Redis.from_url(redis_url)
    found = []
    for key in r.scan_iter(match=f"{queue}*"):
        if key.decode().split("\x06\x16")[0] != queue or r.type(key) != b"list":
            continue
        for raw in r.lrange(key, 0, -1):
            message = json.loads(raw)
            args = json.loads(base64.b64decode(message["body"]))[0]
            priority = message["properties"].get("priority")
            found.append((message["headers"]["task"], args, priority))
    return found


@contextmanager
def api_server(*uvicorn_args: str, **popen: Any) -> Iterator[tuple[str, subprocess.Popen]]:
    """`service.app` under uvicorn in a process of its own, up and answering `/healthz`:
    (its base URL, the process); terminated on exit."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "service.app:app", "--port", str(port)]
    server = subprocess.Popen([*argv, *uvicorn_args], **popen)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.2)
        yield base, server
    finally:
        server.terminate()
