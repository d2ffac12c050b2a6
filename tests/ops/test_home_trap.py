"""The DGPO_HOME trap: a token must land in the database of the API that checks it, the
hints must say so, and `dgpo up` on a busy port fails before claiming to be up."""

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

EMBEDDED = ("DGPO_DATABASE_URL", "DGPO_BROKER_URL", "DGPO_TOKEN")


def dgpo(
    home: Path, *args: str, module: str = "dgpo", **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in EMBEDDED}
    return subprocess.run(
        [sys.executable, *(["-m", module] if module else []), *args],
        env={**base, "DGPO_HOME": str(home), "COLUMNS": "200", **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_token_create_refuses_a_home_with_no_database(tmp_path: Path) -> None:
    out = dgpo(tmp_path / "not-the-servers-home", "token", "create", "me")
    assert out.returncode == 1
    assert "no DGPO database at" in out.stderr and "DGPO_HOME" in out.stderr
    assert not (tmp_path / "not-the-servers-home" / "dgpo.sqlite").exists()


def test_token_create_says_which_database_holds_the_token(tmp_path: Path) -> None:
    home = tmp_path / "home"
    migrate = "from pathlib import Path; from dgpo.commands.embedded import prepare_home; "
    out = dgpo(home, "-c", migrate + f"prepare_home(Path({str(home)!r}))", module="")
    assert out.returncode == 0, out.stderr  # an embedded home as `dgpo up` leaves it
    out = dgpo(home, "token", "create", "me", "--scope", "submit")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("dgpo_")
    assert f"stored in DGPO_HOME={home}" in out.stderr


def test_a_401_hint_points_at_the_servers_home(live_server: str, tmp_path: Path) -> None:
    out = dgpo(tmp_path, "jobs", "list", DGPO_API_URL=live_server, DGPO_TOKEN="dgpo_unknown")
    assert out.returncode == 1 and "401" in out.stderr
    assert "does not know this token" in out.stderr and "same DGPO_HOME" in out.stderr
    out = dgpo(tmp_path, "jobs", "list", DGPO_API_URL=live_server)
    assert "no token" in out.stderr


def test_second_up_on_a_busy_port_fails_before_saying_it_is_up(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = dgpo(tmp_path, "up", "--port", str(port))
    assert out.returncode == 1
    assert "DGPO is up" not in out.stdout and "DGPO_TOKEN" not in out.stdout
    assert f"port {port} is already in use" in out.stdout
