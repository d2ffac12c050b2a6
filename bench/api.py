"""POST /jobs throughput and latency vs the same database's raw single-row insert rate.

    python bench/api.py [--clients 64] [--seconds 10] [--workers 2]

Creates a throwaway Postgres database, migrates it, starts a real uvicorn server
(Redis broker, so every request also publishes its Celery message), and drives it with
`--clients` concurrent HTTP clients. The baseline is pgbench with the same number of
clients inserting one job row per transaction into the same `jobs` table. Targets: API
rate >= 30% of the raw insert rate, p99 < 100 ms, and every 201 accounted for by exactly
one stored job, one `submitted` event and one run message.
"""

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import redis
from scratch import REDIS_URL, REPO, scratch_service

sys.path.insert(0, str(REPO))

BODY = {
    "kind": "train",
    "model": {"path": "tiny-qwen2"},
    "dataset": {"path": "toy-digits"},  # a built-in name: the spec policy refuses bare files
    "metadata": {"team": "bench"},
    "total_steps": 3,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_insert_rate(db_url: str, spec_json: str, clients: int, seconds: int) -> float:
    """pgbench: one INSERT of a job row per transaction, `clients` connections."""
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    spec_sql = spec_json.replace("'", "''")
    script = (
        "INSERT INTO jobs (id, kind, status, spec, priority, queue, metadata, request_hash,"
        " attempt, max_attempts, fencing_token, progress, created_at, queued_at, updated_at,"
        " enqueued_at) VALUES (gen_random_uuid()::text,"
        f" 'train', 'queued', '{spec_sql}'::jsonb, 0, 'cpu', '{{\"team\": \"bench\"}}'::jsonb,"
        " md5(random()::text), 0, 3, 0, 0, now(), now(), now(), now());\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        ["pgbench", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f", f.name, dsn],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    return float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its descendants so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:  # exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        todo.extend(int(c) for c in children)
    return total


def accounted_for(db_url: str) -> dict[str, int]:
    """Jobs, `submitted` events and broker messages stored: each must equal the 201s."""
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]  # type: ignore[index]
        events = conn.execute(
            "SELECT count(*) FROM job_events WHERE kind = 'submitted'"
        ).fetchone()[0]  # type: ignore[index]
    broker = redis.Redis.from_url(REDIS_URL)
    messages = sum(broker.llen(key) for key in broker.scan_iter() if broker.type(key) == b"list")
    return {"jobs": jobs, "events": events, "messages": messages}


async def _client_loop(
    host: str, port: int, request: bytes, deadline: float, latencies: list[float]
) -> None:
    """One keep-alive HTTP/1.1 connection posting back to back.

    A hand-rolled client costs ~50 µs per request; httpx would spend more CPU than the
    server on this shared machine and the benchmark would measure the client.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            body = await reader.readexactly(length)
            if status != 201:
                raise RuntimeError(f"POST /jobs answered {status}: {body[:300]!r}")
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


async def drive(port: int, token: str, clients: int, seconds: float) -> list[float]:
    """`clients` concurrent connections posting jobs for `seconds`; per-request latency."""
    payload = json.dumps(BODY).encode()
    request = (
        f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    await asyncio.gather(
        *(_client_loop("127.0.0.1", port, request, deadline, latencies) for _ in range(clients))
    )
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    args = parser.parse_args()

    with scratch_service() as env:
        measure(args, env["DGPO_DATABASE_URL"])


def measure(args: argparse.Namespace, db_url: str) -> None:
    """Drive the API, then pgbench, against the scratch database; print the figures."""
    server = None
    try:
        from store.db import get_sessionmaker
        from store.jobs import JobRequestModel  # noqa: F401  (validates BODY below)
        from store.tokens import create_token
        from trainer.spec.jobs import JOB_REQUEST_ADAPTER

        spec_json = json.dumps(
            JOB_REQUEST_ADAPTER.validate_python(BODY).spec().model_dump(mode="json")
        )
        with get_sessionmaker()() as session:
            token = create_token(session, "bench", "submit")

        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "service.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=REPO,
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        warm_up = asyncio.run(drive(port, token, args.clients, 2))  # pools, caches, JIT paths

        cpu_before = tree_cpu_seconds(server.pid), time.process_time()
        latencies = asyncio.run(drive(port, token, args.clients, args.seconds))
        server_cpu_us = (tree_cpu_seconds(server.pid) - cpu_before[0]) / len(latencies) * 1e6
        client_cpu_us = (time.process_time() - cpu_before[1]) / len(latencies) * 1e6
        api_rate = len(latencies) / args.seconds
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
        server.terminate()
        server.wait(timeout=30)
        server = None
        answered = len(warm_up) + len(latencies)
        stored = accounted_for(db_url)

        raw_rate = raw_insert_rate(db_url, spec_json, args.clients, args.seconds)
        ratio = api_rate / raw_rate
        print(f"clients={args.clients} seconds={args.seconds} uvicorn_workers={args.workers}")
        print(
            f"API POST /jobs:        {api_rate:8.1f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms"
        )
        print(
            f"CPU per request:       {server_cpu_us:8.0f} µs server {client_cpu_us:6.0f} µs client"
        )
        print(
            f"accounted for:         {answered} answered 201; {stored['jobs']} jobs,"
            f" {stored['events']} submitted events, {stored['messages']} run messages stored"
        )
        print(f"raw insert (pgbench):  {raw_rate:8.1f} rows/s")
        print(f"ratio API/raw:         {ratio:8.3f}   (target >= 0.30, p99 < 100 ms)")
        ok = ratio >= 0.30 and p99 < 100 and set(stored.values()) == {answered}
        print("PASS" if ok else "BELOW TARGET")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
