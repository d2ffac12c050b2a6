"""Bad input never 500s, never stores NaN, never stalls the server (issue 17, 6-8).

Bodies are sent as raw text: NaN, Infinity and lone surrogate escapes are exactly what
a careless or hostile client writes, and what `json=` would not always produce.
"""

import json
import os
import socket
import statistics
import threading
import time

import httpx
import pytest

from tests.conftest import bearer

HOME = os.environ["DGPO_HOME"]
TRAIN = {
    "kind": "train",
    "model": {"path": "dgpo-test/tiny"},
    "dataset": {"path": f"{HOME}/datasets/prompts.jsonl"},
    "total_steps": 3,
}
SCHEDULE = {
    "name": "nightly",
    "cron": "0 3 * * *",
    "eval": {"benchmarks": ["amc23"]},
    "target": {"model_path": "dgpo-test/tiny"},
}


def _with(body: dict, path: str, raw: str) -> str:
    """`body` as JSON with the value at dotted `path` replaced by the raw JSON text `raw`."""
    marker = "__RAW__"
    data = json.loads(json.dumps(body))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = marker
    return json.dumps(data).replace(f'"{marker}"', raw)


BAD = [
    # (method, url, raw body): floats that JSON cannot carry, in valid and invalid requests
    ("POST", "/jobs", _with(TRAIN, "optim.lr", "NaN")),
    ("POST", "/jobs", _with(TRAIN, "rollout.temperature", "Infinity")),
    ("POST", "/jobs", _with(TRAIN, "algorithm.entropy_coef", "-Infinity")),
    ("POST", "/jobs", _with(TRAIN, "optim.betas", "[NaN, 0.999]")),
    (
        "POST",
        "/jobs",
        '{"kind": "eval", "model": {"path": "x"}, "benchmarks": ["gsm8k"], "temperature": NaN}',
    ),
    ("POST", "/jobs", '{"kind": "train", "total_steps": NaN}'),  # invalid for other reasons too
    ("POST", "/jobs", '{"kind": "eval", "k": Infinity, "nonsense": -Infinity}'),
    ("POST", "/schedules", _with(SCHEDULE, "threshold", "NaN")),
    # lone surrogates anywhere
    ("POST", "/jobs", _with(TRAIN, "metadata", '{"team": "\\ud800"}')),
    ("POST", "/jobs", _with(TRAIN, "model.path", '"\\udfff"')),
    ("POST", "/jobs", '{"\\ud800": 1}'),
    ("POST", "/schedules", _with(SCHEDULE, "name", '"nightly \\udc00"')),
    # a cron that parses but never fires
    ("POST", "/schedules", _with(SCHEDULE, "cron", '"0 0 30 2 *"')),
]


BAD_IDS = [
    "lr-nan",
    "temperature-inf",
    "entropy-coef-minus-inf",
    "betas-nan",
    "eval-temperature-nan",
    "invalid-train-with-nan",
    "invalid-eval-with-inf",
    "schedule-threshold-nan",
    "surrogate-in-metadata",
    "surrogate-in-model-path",
    "surrogate-as-key",
    "surrogate-in-schedule-name",
    "cron-30-february",
]


@pytest.mark.parametrize(("method", "url", "raw"), BAD, ids=BAD_IDS)
def test_bad_input_is_4xx_with_a_json_body(client, tokens, method, url, raw) -> None:  # type: ignore[no-untyped-def]
    headers = {**bearer(tokens["admin"]), "content-type": "application/json"}
    r = client.request(method, url, content=raw.encode(), headers=headers)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert "detail" in r.json()
    assert client.get("/jobs", headers=bearer(tokens["read"])).json()["items"] == []


def test_impossible_cron_in_a_patch_is_422(client, tokens) -> None:  # type: ignore[no-untyped-def]
    sid = client.post("/schedules", json=SCHEDULE, headers=bearer(tokens["submit"])).json()["id"]
    r = client.patch(
        f"/schedules/{sid}", json={"cron": "0 0 31 4 *"}, headers=bearer(tokens["submit"])
    )
    assert r.status_code == 422 and "never fires" in r.text


def test_a_422_never_echoes_megabytes(client, tokens) -> None:  # type: ignore[no-untyped-def]
    body = {**TRAIN, "prompt": {"instruction": "x" * 900_000}, "unknown": "y" * 50_000}
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert r.status_code == 422
    assert len(r.content) < 10_000, len(r.content)


def test_a_body_over_the_limit_is_413(client, tokens) -> None:  # type: ignore[no-untyped-def]
    body = {**TRAIN, "metadata": {f"k{i}": "v" * 200 for i in range(32)}, "pad": "z" * 2_000_000}
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert r.status_code == 413 and "DGPO_MAX_BODY_BYTES" in r.json()["detail"]


def test_a_chunked_body_over_the_limit_is_413(client, tokens) -> None:  # type: ignore[no-untyped-def]
    def chunks():  # no Content-Length: the guard counts while it receives
        yield b'{"pad": "'
        for _ in range(40):
            yield b"z" * 65_536
        yield b'"}'

    headers = {**bearer(tokens["submit"]), "content-type": "application/json"}
    r = client.post("/jobs", content=chunks(), headers=headers)
    assert r.status_code == 413


def _send_big_body(base: str, size: int, answers: list[tuple[float, bytes]]) -> None:
    """POST `size` bytes over a raw socket as fast as the server takes them."""
    host, port = base.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = (
            f"POST /jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n"
        )
        sock.sendall(head.encode())
        chunk, sent = b"[" + b"1," * 32_767 + b"1", 0
        try:
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server answered and closed: the rest is never read
            pass
        answers.append((time.monotonic() - start, sock.recv(200)))


def test_healthz_stays_fast_while_four_10mb_bodies_arrive(live_server: str) -> None:
    answers: list[tuple[float, bytes]] = []
    senders = [
        threading.Thread(target=_send_big_body, args=(live_server, 10_000_000, answers))
        for _ in range(4)
    ]
    latencies = []
    with httpx.Client(base_url=live_server) as probe:
        probe.get("/healthz")
        for sender in senders:
            sender.start()
        while any(s.is_alive() for s in senders) or len(latencies) < 20:
            start = time.monotonic()
            assert probe.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - start)
            time.sleep(0.01)
    for sender in senders:
        sender.join()
    assert len(answers) == 4 and all(b" 413 " in head for _, head in answers), answers
    assert max(seconds for seconds, _ in answers) < 2.0, answers
    assert max(latencies) < 0.1, (max(latencies), statistics.median(latencies))
