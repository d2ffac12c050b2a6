"""Response models of `/studies` (the request is `trainer.spec.study.StudyRequest`)."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

MemberRole = Literal["train", "eval"]
"""What a member job does in its study."""


class StudyStatus(StrEnum):
    QUEUED = "queued"
    """No member has started."""
    RUNNING = "running"
    """Some member is running, or some finished while others wait."""
    SUCCEEDED = "succeeded"
    """Every train and eval job succeeded."""
    INCOMPLETE = "incomplete"
    """Everything that will run has ended, and some member failed or was cancelled: the
    report compares what it can and says what it could not."""
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


SETTLED_STUDY_STATUSES = frozenset(
    {StudyStatus.SUCCEEDED, StudyStatus.INCOMPLETE, StudyStatus.CANCELLED}
)
"""A study in one of these changes no more."""


class PendingStatus(StrEnum):
    """The status of an eval that is not a job yet."""

    PENDING = "pending"
    """Submitted once its train job succeeds."""
    SKIPPED = "skipped"
    """Its train job failed or was cancelled (or the study was): it will not run."""


class _Doc(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)


class StudyMemberOut(_Doc):
    arm: str
    """The arm (a key of the request's `arms`)."""
    seed: int
    """The train spec's `seed` of this member."""
    role: MemberRole
    """The (arm, seed)'s train job, or the eval of its final checkpoint."""
    job_id: str | None
    """None for an eval not submitted yet (see `status`)."""
    status: str
    """The job's status, or `pending`/`skipped` for an eval not submitted."""
    progress: float
    """0-1; a finished job is 1."""
    error_code: str | None = None
    """The failure code of a member that failed (docs/operations.md)."""


class StudyOut(_Doc):
    id: str
    """The study's id (its members carry it as metadata `study`)."""
    name: str
    """As submitted."""
    owner: str
    """The principal whose token submitted it."""
    status: StudyStatus
    """Folded from the members: queued, running, succeeded, incomplete, cancelling or cancelled."""
    progress: float
    """0-1 over every planned member (train and eval jobs)."""
    arms: list[str]
    """In the order given; members expand arms, then seeds."""
    baseline: str
    """The arm every other arm is compared with."""
    seeds: list[int]
    """In the order given."""
    incomplete_arms: list[str]
    """Arms with a member that failed or was cancelled (retries exhausted)."""
    members: list[StudyMemberOut]
    """One train and one eval per (arm, seed), arms then seeds: the deterministic expansion."""
    warnings: list[str]
    """Said at submit, e.g. arms that differ only in the policy loss on an on-policy base."""
    spec: dict[str, Any]
    """The validated study request."""
    created_at: datetime
    """When it was submitted."""
    cancelled_at: datetime | None
    """When a cancel was asked for; None if never."""


class StudyPage(_Doc):
    items: list[StudyOut]
    """Newest first."""


REPORT_METRICS = (
    "reward/mean",
    "reward/accuracy",
    "response/length_mean",
    "entropy/mean",
    "kl/ref",
    "kl/approx_k3",
    "clip/ln_frac",
    "clip/hp_frac",
    "weight/mean",
    "weight/max",
    "weight/p99",
    "weight/outside_max",
)
"""The trainer's metric names (`trainer.losses.metrics`, `trainer.rl`) a report averages
across seeds: reward, accuracy, response length, entropy, KL to the reference (`kl/ref`,
with a KL term) and to the rollout policy (`kl/approx_k3`), the LN/HP clip fractions and
the probability-gradient weight W (over all tokens, and its maximum outside the trust
region)."""

StudyVerdict = Literal["better", "worse", "no detectable difference"]


class CurvePoint(_Doc):
    arm: str
    """The arm."""
    metric: str
    """One of the trainer's metric names (`REPORT_METRICS`), or a periodic eval's score
    `eval/<benchmark>/<score>` (a fraction, at the steps the eval ran: `eval_every_steps`)."""
    step: int
    """The training step."""
    mean: float
    """Across the seeds that reported this step."""
    ci_low: float | None
    """95 % Student-t interval across seeds; None from a single seed."""
    ci_high: float | None
    """Upper end of the same interval."""
    n: int
    """Seeds that reported this step."""


class EvalScore(_Doc):
    arm: str
    """The arm."""
    benchmark: str
    """The benchmark's name."""
    score: str
    """`avg@k` or `pass@j`, as the eval reports them."""
    mean: float
    """Across the seeds whose eval succeeded."""
    ci_low: float | None
    """95 % Student-t interval across seeds; None from a single seed."""
    ci_high: float | None
    """Upper end of the same interval."""
    by_seed: dict[str, float]
    """Each seed's score (seed -> value)."""


class ArmComparison(_Doc):
    arm: str
    """The arm compared with the baseline."""
    benchmark: str
    """The benchmark's name."""
    seeds: list[int]
    """The seeds both this arm and the baseline were evaluated on (the pairing)."""
    num_problems: int
    """Problems every paired seed of both arms answered."""
    baseline_accuracy: float
    """Mean per-problem accuracy (Avg@k) of the baseline, pooled over the paired seeds."""
    accuracy: float
    """The same for this arm."""
    difference: float
    """accuracy - baseline_accuracy."""
    ci_low: float
    """Paired bootstrap over problems (as `/evals/compare`), uncorrected 95 % interval."""
    ci_high: float
    """Upper end of the same interval."""
    ci_low_adjusted: float
    """The same bootstrap's interval at level `confidence_adjusted` (Bonferroni): the
    report's adjusted intervals cover every difference at once with probability at least
    1 - alpha. One that excludes 0 has p <= alpha/m (to within a resample), so its
    verdict is `better`/`worse`; Holm may also reject where it touches 0."""
    ci_high_adjusted: float
    """Upper end of the same interval."""
    confidence_adjusted: float
    """1 - alpha/m, m the number of comparisons in the report (the family Holm corrects)."""
    p_value: float
    """Two-sided bootstrap p-value of no difference."""
    p_adjusted: float
    """Holm-adjusted over every comparison in the report."""
    verdict: StudyVerdict
    """`better`/`worse` when p_adjusted <= the study's alpha, else `no detectable difference`."""


class ArmSummary(_Doc):
    arm: str
    """The arm."""
    seeds_trained: list[int]
    """Seeds whose train job succeeded."""
    seeds_evaluated: list[int]
    """Seeds whose eval succeeded."""
    attempts: int
    """Ended attempts of the arm's jobs (train and eval), retries included."""
    wall_seconds: float
    """Slot time of those attempts (`GET /usage`'s accounting)."""
    gpu_seconds: float
    """Wall seconds times GPUs held; 0 for jobs run on CPU (the accounting has no
    CPU-seconds: on CPU, wall_seconds is the compute)."""
    outside_trust_region: float | None
    """Mean over seeds and steps of clip/ln_frac + clip/hp_frac: the share of tokens whose
    ratio left the trust region where the loss acts. Near 0, the losses could not differ."""
    weight_max: float | None
    """The largest W (`weight/max`) any step of any seed reported."""
    weight_outside_max: float | None
    """The largest W outside the trust region (`weight/outside_max`): where the losses
    differ (inside, W = 1/π_old for every loss)."""


class NotCompared(_Doc):
    arm: str
    """The arm left (partly) out."""
    benchmark: str | None
    """None when nothing of the arm could be compared."""
    reason: str
    """Why: which member failed, was cancelled or is still pending."""


class StudyReport(_Doc):
    study_id: str
    """The study."""
    name: str
    """The study's name."""
    status: StudyStatus
    """The study's status when the report was made."""
    baseline: str
    """The arm the others are compared with."""
    alpha: float
    """The family-wise error rate of the verdicts."""
    correction: str
    """How the verdicts are corrected for multiple comparisons."""
    warnings: list[str]
    """Said at submit (e.g. on-policy arms that cannot differ)."""
    arms: list[ArmSummary]
    """Per arm: what ran, its compute, and its trust-region share."""
    curves: list[CurvePoint]
    """Per arm, metric and step: mean and CI across seeds; periodic eval scores included."""
    evals: list[EvalScore]
    """Per arm, benchmark and score: the final checkpoints' mean and CI across seeds."""
    comparisons: list[ArmComparison]
    """Each non-baseline arm against the baseline, per benchmark."""
    not_compared: list[NotCompared]
    """What could not be compared, and why."""
