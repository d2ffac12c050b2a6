"""Policy-loss configuration (the knobs of every loss in `trainer.losses`)."""

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from trainer.spec.base import SpecModel

PolicyLossName = Literal["dgpo", "grpo", "dapo", "cispo", "gppo", "ce_gppo", "aspo", "sapo", "gspo"]
POLICY_LOSS_NAMES: tuple[str, ...] = get_args(PolicyLossName)

LossAggMode = Literal[
    "token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"
]
LOSS_AGG_MODES: tuple[str, ...] = get_args(LossAggMode)

ClipRatio = Annotated[float, Field(gt=0.0, lt=1.0)]
PositiveInt = Annotated[int, Field(ge=1, strict=True)]

DAPO_CLIP_RATIO_HIGH = 0.28


class PolicyLossConfig(SpecModel):
    """Which policy loss to use and its hyper-parameters.

    Defaults follow the DGPO paper (n=1, m=2, ε=0.2) and each baseline's own paper.
    """

    name: PolicyLossName = "dgpo"
    clip_ratio_low: ClipRatio = 0.2
    """ε_low: lower trust-region bound is 1-ε_low."""
    clip_ratio_high: ClipRatio = 0.2
    """ε_high: upper bound is 1+ε_high (the `dapo` preset defaults it to 0.28)."""
    clip_ratio_c: Annotated[float, Field(gt=1.0)] = 3.0
    """Dual-clip constant c for negative advantages (grpo, dapo; soft form in aspo)."""
    dgpo_n: PositiveInt = 1
    """DGPO decay exponent on the LN side (r < 1-ε_low, A < 0)."""
    dgpo_m: PositiveInt = 2
    """DGPO decay root on the HP side (r > 1+ε_high, A > 0)."""
    ce_gppo_beta1: Annotated[float, Field(ge=0.0)] = 0.75
    """CE-GPPO gradient scale outside the bound on the LN side."""
    ce_gppo_beta2: Annotated[float, Field(ge=0.0)] = 1.0
    """CE-GPPO gradient scale outside the bound on the HP side."""
    sapo_tau_pos: Annotated[float, Field(gt=0.0)] = 1.0
    """SAPO gate temperature for positive advantages."""
    sapo_tau_neg: Annotated[float, Field(gt=0.0)] = 1.05
    """SAPO gate temperature for negative advantages."""
    loss_agg_mode: LossAggMode = "token-mean"
    loss_scale_factor: Annotated[float, Field(gt=0.0)] | None = None
    """Fixed divisor for `seq-mean-token-sum-norm` (default: the max response length)."""

    @model_validator(mode="before")
    @classmethod
    def _dapo_preset(cls, data: object) -> object:
        """`dapo` is GRPO with clip-higher: ε_high defaults to 0.28 unless set."""
        if isinstance(data, dict) and data.get("name") == "dapo":
            data = {"clip_ratio_high": DAPO_CLIP_RATIO_HIGH, **data}
        return data
