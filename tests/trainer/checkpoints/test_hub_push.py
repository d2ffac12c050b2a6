"""`checkpoint.push_to_hub` against a local HTTP server speaking the Hub's upload protocol
(create repo, preupload, NDJSON commit), reached through `HF_ENDPOINT` by a real
`dgpo-train` process, as a worker's supervised child runs it."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.trainer.loop_specs import toy_spec
from trainer.spec import TrainSpec

REPO = Path(__file__).resolve().parents[3]


class LocalHub(ThreadingHTTPServer):
    """Records repo creations and commits; refuses step 1's commit."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.created: list[dict[str, Any]] = []
        self.commits: list[tuple[str, str, dict[str, bytes]]] = []
        self.refused: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Handler(BaseHTTPRequestHandler):
    server: LocalHub

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._reply(404, {"error": "not here"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hub = self.server
        if self.path == "/api/repos/create":
            hub.created.append(json.loads(body))
            self._reply(200, {"url": f"{hub.url}/org/tiny-dgpo"})
        elif self.path.startswith("/api/models/") and "/preupload/" in self.path:
            files = json.loads(body)["files"]
            self._reply(
                200,
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in files
                    ]
                },
            )
        elif self.path.startswith("/api/models/") and "/commit/" in self.path:
            lines = [json.loads(line) for line in body.splitlines()]
            summary = lines[0]["value"]["summary"]
            if summary.endswith("step 1"):  # as a token without write access would be
                hub.refused.append(summary)
                self._reply(403, {"error": "you may not write to this repo"})
                return
            repo = self.path.removeprefix("/api/models/").split("/commit/")[0]
            files = {
                v["value"]["path"]: base64.b64decode(v["value"]["content"])
                for v in lines
                if v["key"] == "file"
            }
            hub.commits.append((repo, summary, files))
            commit = {"commitUrl": f"{hub.url}/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40}
            self._reply(200, {**commit, "pullRequestUrl": None})
        else:
            self._reply(404, {"error": self.path})

    def _reply(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def local_hub() -> Iterator[LocalHub]:
    hub = LocalHub()
    thread = threading.Thread(target=hub.serve_forever, daemon=True)
    thread.start()
    yield hub
    hub.shutdown()
    thread.join(timeout=5)


def test_each_checkpoint_is_pushed_and_a_failed_push_does_not_fail_the_run(
    tmp_path: Path, local_hub: LocalHub
) -> None:
    spec = toy_spec("tiny", "toy-digits", total_steps=2, checkpoint={"every_steps": 1})
    dump = spec.model_dump()
    dump["checkpoint"]["push_to_hub"] = {"repo_id": "org/tiny-dgpo"}
    spec_file, out = tmp_path / "spec.yaml", tmp_path / "run"
    spec_file.write_text(yaml.safe_dump(TrainSpec.model_validate(dump).model_dump(mode="json")))
    env = {
        **os.environ,
        "HF_ENDPOINT": local_hub.url,
        "HF_TOKEN": "hf_local",
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-m", "trainer.cli", str(spec_file), "--output", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert local_hub.created == [
        {"name": "tiny-dgpo", "organization": "org", "visibility": "private"}
    ]
    assert local_hub.refused == ["dgpo checkpoint step 1"]
    ((repo, summary, files),) = local_hub.commits
    assert (repo, summary) == ("org/tiny-dgpo", "dgpo checkpoint step 2")
    manifest = json.loads((out / "step-00000002" / "manifest.json").read_text())
    expected = {p: h for p, h in manifest["files"].items() if p != "trainer_state.pt"}
    assert "model.safetensors" in expected and "config.json" in expected
    assert {p: hashlib.sha256(b).hexdigest() for p, b in files.items()} == expected
    events = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    pushes = [(e["kind"], e["message"]) for e in events if e["type"] == "event"]
    assert pushes[0][0] == "hub_push_failed" and "step 1 to org/tiny-dgpo: 403" in pushes[0][1]
    assert pushes[1] == (
        "hub_push",
        f"step 2 pushed: {local_hub.url}/org/tiny-dgpo/commit/{'a' * 40}",
    )
