"""Service settings from the environment (prefix `DGPO_`, unknown names refused:
`config.env`), with embedded-mode defaults.

In the embedded mode (`dgpo up`, which sets `DGPO_EMBEDDED=1`) everything lives under
`DGPO_HOME` (~/.dgpo): a SQLite database and a server-less kombu broker, so it needs no
Postgres or Redis. Every other start must name `DGPO_DATABASE_URL` (Postgres) and
`DGPO_BROKER_URL` (Redis): a service that silently opened an empty SQLite file instead
would answer every request with "no such table".
"""

from functools import lru_cache
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from config.env import DgpoSettings
from config.fleet_policy import GroupPolicy, PreemptionPolicy, PrincipalPolicy, RetryPolicy


class Settings(DgpoSettings):
    home: Path = Path("~/.dgpo")
    embedded: bool = False
    """One machine, no services: default the database and broker to SQLite under `home`."""
    database_url: str = ""
    """SQLAlchemy URL; default `sqlite:///$DGPO_HOME/dgpo.sqlite`."""
    broker_url: str = ""
    """Kombu URL; default a SQLite-backed transport under `DGPO_HOME` (no server)."""
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)
    db_pool_timeout_s: float = Field(default=10.0, gt=0)
    db_pool_pre_ping: bool = True
    """Ping on every checkout: a connection the server dropped (restart, failover,
    `pg_terminate_backend`) is replaced instead of failing the next statement."""
    db_retry_budget_s: float = Field(default=30.0, ge=0)
    """How long a worker retries a write that failed on a lost connection (with backoff)
    before giving up; covers a database restart or failover."""
    db_pool_recycle_s: int = Field(default=1800, ge=-1)
    token_prefix: str = "dgpo_"
    token_bytes: int = Field(default=32, ge=16)
    """Random bytes per API token (URL-safe base64 encoded)."""
    token_cache_s: float = Field(default=5.0, ge=0)
    """How long a verified token is trusted without a database read (0 disables)."""
    broker_publish_timeout_s: float = Field(default=2.0, gt=0)
    """Upper bound on one enqueue; a slow broker must not stall `POST /jobs`."""
    default_max_attempts: int = Field(default=3, ge=1)
    """Attempts of a job whose spec names none; a spec's `max_attempts` may only lower it."""
    max_study_jobs: int = Field(default=64, ge=2)
    """Most jobs one study may create (a train and an eval job per arm and seed); a larger
    one is refused at submit (422 naming `seeds`)."""
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    """`DGPO_RETRY='{"backoff_s": 30, "backoff_factor": 2, "backoff_max_s": 900,
    "fail_fast": [...]}'`: back-off of transient failures, codes that fail at once."""
    principals: dict[str, PrincipalPolicy] = Field(default_factory=dict)
    """`DGPO_PRINCIPALS='{"team-a": {"weight": 2, "nominal_gpus": {"h100": 8}}}'`: quotas
    and fair-share weight per principal; one not named gets `default_principal`."""
    default_principal: PrincipalPolicy = Field(default_factory=PrincipalPolicy)
    groups: dict[str, GroupPolicy] = Field(default_factory=dict)
    """`DGPO_GROUPS='{"research": {"members": ["team-a", "team-b"], "nominal_gpus":
    {"h100": 16}}}'`: limits a group of principals shares, on top of each one's own."""
    fair_share_window_s: float = Field(default=3600.0, gt=0)
    """Recent usage, the fair-share tie-break after current usage, covers this window."""
    preemption: PreemptionPolicy = Field(default_factory=PreemptionPolicy)
    """`DGPO_PREEMPTION='{"enabled": false}'`: whether the reconciler preempts running
    jobs for waiting ones that the claim order puts first (`store.preemption`)."""
    submit_batches_in_flight: int = Field(default=1, ge=1)
    """Concurrent group commits per API process; submissions arriving meanwhile wait and
    share the next one (more means smaller batches and more threads fighting for the GIL)."""
    submit_max_batch: int = Field(default=256, ge=1)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    """Largest request body; bigger ones are refused (413) before they are read."""
    storage_root: Path | None = None
    """Job `<id>` writes only under `<storage_root>/<id>` (default `$DGPO_HOME/jobs`)."""
    storage_shared: bool = False
    """The storage root is one file system mounted at the same path on every worker (NFS,
    Lustre): only then may a job span nodes (`resources.nodes` > 1), whose ranks all write
    their shards of each checkpoint there."""
    storage_prefixes: list[str] = Field(default_factory=list)
    """Remote roots (`s3://bucket/dgpo`) a spec's `checkpoint.output_dir` may name; their
    protocols are the only fsspec protocols a job uses. Empty: local storage only."""
    hub_push_namespaces: list[str] = Field(default_factory=list)
    """Hub namespaces (users or orgs) a spec's `checkpoint.push_to_hub` may push to, with
    the worker's `HF_TOKEN`. Empty: no pushes."""
    outbound_hosts: list[str] = Field(default_factory=lambda: ["*"])
    """Hosts webhooks may reach: exact names or `*.example.com`; `*` is any host whose
    every address is public. Loopback, private, link-local (cloud metadata) and other
    non-public addresses are refused unless listed in `outbound_private_networks`."""
    outbound_private_networks: list[str] = Field(default_factory=list)
    """Non-public networks (CIDR, e.g. `10.1.2.0/24`) webhooks may reach anyway."""
    webhook_tries: int = Field(default=4, ge=1, le=10)
    """POSTs of one regression alert at most: a 5xx, 408, 429 or a network error is
    retried, a refusal or another 4xx is not."""
    webhook_backoff_s: float = Field(default=2.0, ge=0, le=60)
    """Wait before the second try, doubling after each (2, 4, 8 s: with 5 s timeouts a
    failing endpoint holds the settling worker 34 s at most)."""
    data_roots: list[Path] = Field(default_factory=list)
    """Directories model, dataset and reference-model paths may come from (default
    `$DGPO_HOME/models`, `datasets` and `demo`); anything else must be a hub repo id."""

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Self:
        self.home = self.home.expanduser()
        self.storage_root = (self.storage_root or self.home / "jobs").expanduser()
        if not self.data_roots:
            self.data_roots = [self.home / name for name in ("models", "datasets", "demo")]
        self.data_roots = [root.expanduser() for root in self.data_roots]
        missing = [name for name in ("database_url", "broker_url") if not getattr(self, name)]
        if missing and not self.embedded:
            names = " and ".join(f"DGPO_{name.upper()}" for name in missing)
            raise ValueError(
                f"{names} not set: point them at Postgres and Redis "
                "(postgresql+psycopg://..., redis://...), or run `dgpo up` (or set "
                "DGPO_EMBEDDED=1) for the single-machine mode with SQLite under DGPO_HOME"
            )
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'dgpo.sqlite'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.home / 'broker.sqlite'}"
        return self

    @model_validator(mode="after")
    def _one_group_each(self) -> Self:
        seen: dict[str, str] = {}
        for name, group in self.groups.items():
            for member in group.members:
                if member in seen:
                    raise ValueError(
                        f"DGPO_GROUPS: principal {member!r} is a member of both "
                        f"{seen[member]!r} and {name!r}; a principal belongs to one group"
                    )
                seen[member] = name
        return self

    def policy(self, principal: str) -> PrincipalPolicy:
        """The operator's quotas and weight for `principal`."""
        return self.principals.get(principal, self.default_principal)

    def group_of(self, principal: str) -> tuple[str, GroupPolicy] | None:
        """The group `principal` belongs to, with its limits (None: none)."""
        return next(((n, g) for n, g in self.groups.items() if principal in g.members), None)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """Process-wide settings; tests call `get_settings.cache_clear()` after changing env."""
    return Settings()
