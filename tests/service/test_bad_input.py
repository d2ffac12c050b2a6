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
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import bearer
from tests.service.helpers import api_server

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


STALL_FLOOR_S = 0.1
"""`/healthz` under the bad bodies may take this long, or a few times its time on the same
server just before them, idle or answering harmless bodies of the same size (a loaded
2-core host answers slower with or without them); the stalls caught here were 2-120 s."""


def _healthz_baseline(probe: httpx.Client, seconds: float = 1.0) -> list[float]:
    """`/healthz` latencies over `seconds` with nothing else sent: this run's, this load's."""
    latencies, end = [], time.monotonic() + seconds
    while time.monotonic() < end or len(latencies) < 20:
        start = time.monotonic()
        assert probe.get("/healthz").status_code == 200
        latencies.append(time.monotonic() - start)
        time.sleep(0.01)
    return latencies


def _p99(latencies: list[float]) -> float:
    """The 99th percentile; the one sample when a stall left only one."""
    if len(latencies) < 2:
        return max(latencies)
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


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
        baseline = _healthz_baseline(probe)
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
    bound = max(STALL_FLOOR_S, 4 * max(baseline))
    assert max(latencies) < bound, (max(latencies), statistics.median(latencies), max(baseline))


NESTED = "[" * 100 + "]" * 100
DEEP_METADATA = '{"kind": "train", "metadata": [' + ",".join([NESTED] * 4_900) + "]}"
"""984 KB, under the body limit: 490,000 nested lists (issue 24, 1): stalled the loop 10 s."""


@pytest.fixture
def api_process(clean_db: str, redis_url: str) -> Iterator[str]:
    """uvicorn in a process of its own: a server in this process's thread would share its
    GIL with the eight senders, and their work would read as the server's stall."""
    with api_server("--log-level", "warning") as (base, server):
        yield base
    server.wait(timeout=30)


def _healthz_while_eight(base: str, headers: dict[str, str], body: bytes) -> tuple[list, list]:
    """(`/healthz` latencies, (status, size) answers) while eight `body`s are posted at once;
    `/healthz` is timed every 10 ms until all are answered, and for at least a second."""
    answers: list[tuple[int, int]] = []
    clients = [httpx.Client(base_url=base, timeout=120) for _ in range(8)]

    def send(c: httpx.Client) -> None:
        with c:
            r = c.post("/jobs", content=body, headers=headers)
            answers.append((r.status_code, len(r.content)))

    senders = [threading.Thread(target=send, args=(c,)) for c in clients]
    latencies = []
    with httpx.Client(base_url=base, timeout=120) as probe:
        probe.get("/healthz")
        for sender in senders:
            sender.start()
        end = time.monotonic() + 1.0
        while any(s.is_alive() for s in senders) or time.monotonic() < end:
            start = time.monotonic()
            assert probe.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - start)
            time.sleep(0.01)
    for sender in senders:
        sender.join()
    return latencies, answers


def test_healthz_stays_fast_while_eight_deeply_nested_bodies_are_answered(
    api_process: str, tokens: dict[str, str]
) -> None:
    """Eight bodies at once (each stalled the loop 10 s), against a baseline of eight plain
    bodies of the same size sent to the same server just before (parsed, then a 422): what
    a loaded host costs both, not the nesting, is allowed. The stall itself was 10-120 s."""
    headers = {**bearer(tokens["submit"]), "content-type": "application/json"}
    plain = DEEP_METADATA[:30] + '"' + "x" * (len(DEEP_METADATA) - 33) + '"}'
    assert len(plain) == len(DEEP_METADATA)
    baseline, answers = _healthz_while_eight(api_process, headers, plain.encode())
    assert [status for status, _ in answers] == [422] * 8, answers
    latencies, answers = _healthz_while_eight(api_process, headers, DEEP_METADATA.encode())
    assert [status for status, _ in answers] == [413] * 8, answers
    assert all(size < 10_000 for _, size in answers), answers
    p99, bound = _p99(latencies), max(STALL_FLOOR_S, 3 * _p99(baseline))
    assert p99 < bound, (p99, max(latencies), statistics.median(latencies), _p99(baseline))


def test_a_body_with_over_ten_thousand_values_is_413_before_parsing(client, tokens) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/jobs", content=DEEP_METADATA.encode(), headers=bearer(tokens["submit"]))
    assert r.status_code == 413 and "JSON values" in r.json()["detail"]


def test_commas_and_brackets_inside_strings_do_not_count_as_values(client, tokens) -> None:  # type: ignore[no-untyped-def]
    body = {**TRAIN, "prompt": {"instruction": "[{," * 20_000}}
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == [
        "body",
        "train",
        "prompt",
        "instruction",
    ]


def test_a_422_lists_at_most_64_errors(client, tokens) -> None:  # type: ignore[no-untyped-def]
    body = {**TRAIN, **{f"unknown_{i}": 1 for i in range(500)}}
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    detail = r.json()["detail"]
    assert r.status_code == 422 and len(detail) == 65, len(detail)
    assert detail[-1]["msg"].startswith("436 more errors not shown")


def test_an_echo_reads_only_what_it_shows() -> None:
    """A value with no end (it holds itself) echoes its first 1,024 characters: the
    renderer never walks the whole input (it walked 490,000 lists for 10 s, issue 24)."""
    from service.request_guard import ECHO_MAX, safe_errors

    endless: list = []
    endless.append(endless)
    [entry] = safe_errors([{"type": "dict_type", "loc": ("body",), "msg": "no", "input": endless}])
    assert entry["input"] == "[" * ECHO_MAX + "... (cut)"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("model.path", "models/tiny\u0000x"),
        ("metadata", {"team\u0000": "a"}),
        ("metadata", {"team": "a\u0000"}),
        ("logging.wandb.tags", ["ok", "b\u0000d"]),
        ("prompt.instruction", "Solve\u0000"),
    ],
)
def test_a_nul_in_any_spec_string_is_422_naming_the_field(client, tokens, path, value) -> None:  # type: ignore[no-untyped-def]
    body = json.loads(_with(TRAIN, path, json.dumps(value)))
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert "NUL" in error["msg"] and error["loc"][-1] == path.split(".")[-1], error


@pytest.mark.parametrize(
    "sub", ["STOP", "job-spec.yaml", "reports/x", "attempt-1.log", "results.json"]
)
def test_an_output_dir_naming_a_control_file_is_422(client, tokens, sub) -> None:  # type: ignore[no-untyped-def]
    body = {**TRAIN, "checkpoint": {"output_dir": sub}}
    r = client.post("/jobs", json=body, headers=bearer(tokens["submit"]))
    assert r.status_code == 422, r.text
    assert "control files" in r.text and "output_dir" in r.text


def test_a_body_sent_as_plain_text_is_422_with_its_echo_as_text(client, tokens) -> None:  # type: ignore[no-untyped-def]
    """Without a JSON content type FastAPI validates the raw bytes: the echo is their text
    (schemathesis found the bytes made the error handler itself fail with a 500)."""
    headers = {**bearer(tokens["admin"]), "content-type": "text/plain"}
    raw = b'{"name": "0", "scope": "read", "principal": "default"}'
    r = client.post("/tokens", content=raw, headers=headers)
    assert r.status_code == 422, r.text[:300]
    assert r.json()["detail"][0]["input"] == raw.decode()


@pytest.mark.parametrize(
    ("path", "raw"), [("optim.lr", "true"), ("priority", "false"), ("optim.betas", "[0.9, true]")]
)
def test_a_boolean_where_a_number_goes_is_422_naming_the_field(client, tokens, path, raw) -> None:  # type: ignore[no-untyped-def]
    """`lr: true` was 1.0 (issue 24, 9); tests/trainer/spec/test_spec_strict_numbers.py
    covers every number field of both specs."""
    headers = {**bearer(tokens["submit"]), "content-type": "application/json"}
    r = client.post("/jobs", content=_with(TRAIN, path, raw), headers=headers)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"][: 2 + len(path.split("."))] == ["body", "train", *path.split(".")], error
    assert "not a boolean" in error["msg"], error


GROUP_SIZE = "algorithm.group_size"


@pytest.mark.parametrize(
    ("url", "body", "loc", "meant"),
    [
        ("/jobs", {**TRAIN, "lr": 1e-5}, ["body", "train", "lr"], "optim.lr"),
        ("/jobs", {**TRAIN, "optim": {"lrr": 1e-5}}, ["body", "train", "optim", "lrr"], "optim.lr"),
        ("/jobs", {**TRAIN, "group_size": 4}, ["body", "train", "group_size"], GROUP_SIZE),
        ("/schedules", {**SCHEDULE, "crn": "x"}, ["body", "crn"], "cron"),
    ],
)
def test_a_typo_in_a_key_is_422_with_its_close_match(client, tokens, url, body, loc, meant) -> None:  # type: ignore[no-untyped-def]
    """As `dgpo jobs submit` says it (issue 25, 3): the API named only the unknown key."""
    r = client.post(url, json=body, headers=bearer(tokens["admin"]))
    assert r.status_code == 422, r.text
    errors = [e for e in r.json()["detail"] if e["loc"] == loc]
    assert [e["msg"] for e in errors] == [f"Extra inputs are not permitted (did you mean {meant}?)"]
