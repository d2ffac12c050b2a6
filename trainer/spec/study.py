"""The body of `POST /studies`: a base train spec, named arms that override parts of it,
seeds, and the eval each arm's final checkpoint gets; and its expansion into jobs.

The expansion is deterministic (arms in the order given, seeds in the order given), so a
resubmission with the same Idempotency-Key names the same members, and the response
shows exactly which (arm, seed) became which job.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Self

from pydantic import Field, ValidationError, model_validator

from trainer.spec import overrides
from trainer.spec.base import SpecModel
from trainer.spec.jobs import EvalJobRequest, TrainJobRequest
from trainer.spec.schedule import ScheduleEvalSpec
from trainer.spec.train import MAX_STEPS

ArmName = Annotated[str, Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][\w.-]*$")]
ON_POLICY_SECTIONS = ("algorithm.policy_loss",)
"""Override paths under these change only the policy loss: on-policy, every such arm
computes the same gradient (`StudyRequest.on_policy_warning`)."""


class StudyEvalSpec(ScheduleEvalSpec):
    """An eval spec without `model`: each member train job's final checkpoint is scored."""


class StudyRequest(SpecModel):
    """Compare training recipes: every arm is trained once per seed, then evaluated."""

    name: str = Field(min_length=1, max_length=128)
    """Shown in lists and reports."""
    base: dict[str, Any]
    """A train job body (`kind: train` optional; its envelope, such as `priority`, applies
    to every train job) every arm starts from; its `seed` is set per member."""
    arms: dict[ArmName, dict[str, Any]] = Field(min_length=1, max_length=64)
    """Arm name -> partial override of `base`, nested (`{algorithm: {policy_loss: {name:
    grpo}}}`) or dotted (`algorithm.policy_loss.name: grpo`); `{}` runs the base as is."""
    baseline: ArmName
    """The arm every other arm is compared with."""
    seeds: list[int] = Field(min_length=1, max_length=64)
    """Each arm runs once per seed (the train spec's `seed`); paired comparisons match seeds."""
    eval: StudyEvalSpec
    """Scored on each member's final checkpoint (an eval job after its train job succeeds)."""
    eval_every_steps: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 0
    """Also score the same benchmarks every N training steps (periodic evals); 0: only at
    the end."""
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.05
    """Family-wise error rate of the verdicts (Holm's correction over every non-baseline
    arm and benchmark)."""

    @model_validator(mode="after")
    def _baseline_is_an_arm(self) -> Self:
        if self.baseline not in self.arms:
            raise ValueError(f"baseline {self.baseline!r} is not one of the arms {list(self.arms)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct: {self.seeds}")
        return self

    @property
    def size(self) -> int:
        """Jobs the study creates: a train and an eval job per (arm, seed)."""
        return 2 * len(self.arms) * len(self.seeds)


@dataclass(frozen=True)
class Member:
    """One (arm, seed) of a study and its train job request."""

    arm: str
    seed: int
    train: TrainJobRequest


def eval_request(
    study: StudyRequest, study_id: str, arm: str, seed: int, train_job_id: str
) -> EvalJobRequest:
    """The eval of member (arm, seed): the study's eval spec on its train job's final
    checkpoint. Every arm's eval has the same sampling seed, so arms are compared on the
    same problems with the same draws wherever their models agree."""
    body = {
        **study.eval.model_dump(mode="json"),
        "model": {"checkpoint": {"job_id": train_job_id, "step": "latest"}},
    }
    tags = tags_of(study_id, arm, seed, "eval")
    return EvalJobRequest.model_validate({**body, "kind": "eval", "metadata": tags})


class ArmInvalid(ValueError):
    """An arm's override or the spec it makes is invalid: `loc` names the arm and field."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def tags_of(study_id: str, arm: str, seed: int, role: str) -> dict[str, str]:
    """The metadata that makes a job a study member (filterable: `GET /jobs?metadata=...`)."""
    return {"study": study_id, "arm": arm, "seed": str(seed), "role": role}


def expand(study: StudyRequest, study_id: str) -> list[Member]:
    """Every (arm, seed) as a validated train job, arms then seeds in the order given.

    Raises ArmInvalid with one error per bad field, located at `arms.<arm>.<path>` (an
    unknown path) or `arms.<arm>.<field>` (the resulting spec fails validation)."""
    members, errors = [], []
    base = {k: v for k, v in study.base.items() if k != "kind"}
    for arm, override in study.arms.items():
        loc = ("arms", arm)
        try:
            body = overrides.apply(TrainJobRequest, {**base, "kind": "train"}, override)
        except overrides.UnknownPath as exc:
            errors.append({"loc": (*loc, *exc.path), "msg": str(exc), "type": "value_error"})
            continue
        for seed in study.seeds:
            tags = {**body.get("metadata", {}), **tags_of(study_id, arm, seed, "train")}
            try:
                request = TrainJobRequest.model_validate({**body, "seed": seed, "metadata": tags})
            except ValidationError as exc:
                errors += [
                    {"loc": (*loc, *e["loc"]), "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors(include_url=False, include_context=False)
                ]
                break  # the other seeds fail the same way
            members.append(Member(arm, seed, _with_periodic_eval(request, study)))
    if errors:
        raise ArmInvalid(errors)
    return members


def _with_periodic_eval(request: TrainJobRequest, study: StudyRequest) -> TrainJobRequest:
    if not study.eval_every_steps:
        return request
    periodic = {
        "every_steps": study.eval_every_steps,
        "benchmarks": study.eval.model_dump(mode="json")["benchmarks"],
        "k": study.eval.k,
        "max_problems": study.eval.max_problems,
    }
    return TrainJobRequest.model_validate({**request.model_dump(mode="json"), "eval": periodic})


def on_policy_warning(study: StudyRequest, members: list[Member]) -> str | None:
    """Arms that differ only in the policy loss compare identical runs when every step
    is one mini-batch and one epoch: each ratio is exactly 1 at the update, so DGPO, GRPO,
    CISPO and GPPO compute the same gradient."""
    paths = {
        ".".join(path)
        for override in study.arms.values()
        for path in overrides.flatten(TrainJobRequest, override)
    }
    if not paths or not all(p.startswith(ON_POLICY_SECTIONS) for p in paths):
        return None
    optim = members[0].train.optim
    if optim.mini_batch_prompts != optim.prompts_per_step or optim.epochs_per_batch != 1:
        return None
    return (
        "the arms differ only in the policy loss and the base spec is on-policy (one "
        "mini-batch, one epoch per step): every importance ratio is 1 at the update, so the "
        "losses give the same gradient; set optim.mini_batch_prompts below "
        "optim.prompts_per_step (or epochs_per_batch > 1) for the losses to differ"
    )
