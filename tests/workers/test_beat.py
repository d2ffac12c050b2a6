"""`dgpo beat` runs the reconciler on its schedule in a real process."""

import os
import signal
import subprocess
import sys
from datetime import timedelta

from sqlalchemy.orm import Session

from store.models import Worker, WorkerStatus, utcnow
from tests.conftest import REPO_ROOT
from tests.workers.conftest import wait_for


def test_dgpo_beat_marks_a_silent_worker_dead_with_a_clean_log(
    session: Session, redis_url: str
) -> None:
    session.add(Worker(id="silent@test", host="h", heartbeat_at=utcnow() - timedelta(hours=1)))
    session.commit()
    env = {**os.environ, "DGPO_RECONCILE_EVERY_S": "1"}
    beat = subprocess.Popen(
        [sys.executable, "-m", "dgpo", "beat", "--loglevel", "WARNING"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:

        def dead() -> bool:
            assert beat.poll() is None, beat.stderr.read().decode() if beat.stderr else ""
            session.expire_all()
            return session.get_one(Worker, "silent@test").status == WorkerStatus.DEAD

        wait_for(dead, "beat's reconciler to mark the worker dead", timeout=60)
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        _, stderr = beat.communicate(timeout=20)
    assert "Traceback" not in stderr.decode(), stderr.decode()  # a clean log, no noise
