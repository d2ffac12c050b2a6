"""The Celery app (`workers.celery_app:app`): carries "run job X" and nothing else.

No result backend: Postgres holds every job's state. `acks_late` with a prefetch of 1
means a busy slot never reserves a second long job (an early ack would free the prefetch
slot and let one worker hoard messages); a redelivery after the visibility timeout is
harmless because the lease in Postgres makes it a no-op.
"""

import logging
import threading
from typing import ClassVar

from celery import Celery, bootsteps, signals

from config.logs import configure_logging
from config.settings import get_settings
from config.worker_settings import get_worker_settings
from store.broker import redis_transport_options
from workers import routing
from workers.beat import beat_schedule

log = logging.getLogger(__name__)


def make_app() -> Celery:
    settings, ws = get_settings(), get_worker_settings()
    app = Celery("dgpo", broker=settings.broker_url, include=["workers.tasks"])
    transport_options = redis_transport_options(
        settings.broker_url, visibility_timeout=ws.visibility_timeout_s
    )
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        worker_send_task_events=False,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=routing.CPU_QUEUE,
        task_create_missing_queues=True,
        task_routes={routing.RECONCILE_TASK: {"queue": routing.MAINTENANCE_QUEUE}},
        beat_schedule=beat_schedule(ws),
        worker_hijack_root_logger=False,
    )
    return app


app = make_app()


class RegistryStep(bootsteps.StartStopStep):
    """Registers this worker in Postgres and heartbeats it from the worker's own timer.

    The timer runs in the main process's event loop, so no extra thread exists when the
    pool forks a replacement child.
    """

    requires: ClassVar[set[str]] = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.tref = None

    def start(self, worker) -> None:  # type: ignore[no-untyped-def]
        from workers import registry

        worker_id = worker.hostname
        own = routing.member_queue(worker_id)
        consumed = worker.app.amqp.queues.consume_from.values()
        queues = sorted(q.name for q in consumed if q.name != own)
        if not routing.serves_jobs(queues):
            return
        registry.register(worker_id, queues, worker.concurrency)
        self.tref = worker.timer.call_repeatedly(
            get_worker_settings().worker_heartbeat_s,
            _safe_heartbeat,
            (worker_id, queues, worker.concurrency),
        )

    def stop(self, worker) -> None:  # type: ignore[no-untyped-def]
        from workers import registry

        if self.tref is not None:
            self.tref.cancel()
            registry.deregister(worker.hostname)


def _safe_heartbeat(worker_id: str, queues: list[str], slots: int) -> None:
    """A database blip must not stop the timer; the next beat retries."""
    from workers import registry

    try:
        registry.heartbeat(worker_id, queues, slots)
    except Exception:
        log.exception("worker heartbeat failed")


app.steps["worker"].add(RegistryStep)


@signals.worker_shutting_down.connect
def _hand_jobs_back(sender: str, sig: str, how: str, **_: object) -> None:
    """SIGTERM (a warm shutdown: `docker stop`, a spot reclaim) drains this worker with
    `--preempt`: its slots checkpoint their jobs at the next step boundary and put them
    back in the queue, while Celery waits for them; the stop grace period must outlast
    `cancel_grace_s` plus `kill_grace_s`. A thread, not this signal handler, writes it."""
    if how != "Warm":
        return
    from workers import registry

    threading.Thread(target=registry.hand_jobs_back, args=(sender,), name="drain").start()


@signals.setup_logging.connect
def _json_logs(**_: object) -> None:
    """JSON lines on stderr instead of Celery's text logs (connecting this replaces them)."""
    configure_logging()


@signals.worker_process_init.connect
def _init_pool_process(**_: object) -> None:
    """In each forked slot: pin its GPUs, and drop the parent's database connections."""
    from billiard.process import current_process

    from store import db
    from workers.registry import pin_slot

    if db.get_engine.cache_info().currsize:
        db.get_engine().dispose(close=False)
    # `dgpo beat`'s solo pool sends this in the main process, which has no slot index.
    pin_slot(getattr(current_process(), "index", None) or 0)
