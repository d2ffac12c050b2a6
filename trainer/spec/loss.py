"""Policy-loss configuration (the knobs of every loss in `trainer.losses.registry`)."""

from typing import Annotated, Any, Literal, Self, get_args

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

RECIPES: dict[str, dict[str, Any]] = {
    "dgpo": {},  # DGPO-RL's run script: ε 0.2/0.2, n=1, m=2, token-mean
    "grpo": {},  # verl's defaults: ε 0.2/0.2, c=3, token-mean
    "dapo": {"clip_ratio_high": 0.28},  # DAPO: clip-higher (its algorithm keys: TrainSpec)
    "cispo": {"clip_ratio_low": 10.0, "clip_ratio_high": 0.2},  # no lower bound (verl example)
    "gppo": {"clip_ratio_c": 10.0},  # Klear/CE-GPPO recipe scripts: c = 10
    # CE-GPPO's 7B script; its 1.5B script uses beta1 0.5 (docs/losses.md)
    "ce_gppo": {"clip_ratio_c": 10.0, "ce_gppo_beta1": 0.75, "ce_gppo_beta2": 1.0},
    "aspo": {"clip_ratio_c": 3.0},  # Archer2.0 math script: ε 0.2/0.2, c = 3, token-mean
    "sapo": {"sapo_tau_pos": 1.0, "sapo_tau_neg": 1.05, "loss_agg_mode": "seq-mean-token-mean"},
    "gspo": {
        "clip_ratio_low": 3e-4,
        "clip_ratio_high": 4e-4,
        "loss_agg_mode": "seq-mean-token-mean",
    },
}
"""Each loss's paper recipe: values for the keys a spec leaves unset (docs/losses.md)."""


class PolicyLossConfig(SpecModel):
    """Which policy loss to use and its hyper-parameters.

    Defaults follow the DGPO paper (n=1, m=2, ε=0.2); each baseline's own recipe (`RECIPES`)
    replaces them for the keys the spec leaves unset.
    """

    name: PolicyLossName = "dgpo"
    """The policy loss (docs/losses.md); its recipe fills the keys left unset."""
    clip_ratio_low: Annotated[float, Field(gt=0.0)] = 0.2
    """ε_low: lower trust-region bound is 1-ε_low; below 1 except for cispo (≥ 1: no bound)."""
    clip_ratio_high: ClipRatio = 0.2
    """ε_high: upper bound is 1+ε_high (the `dapo` preset defaults it to 0.28)."""
    clip_ratio_c: Annotated[float, Field(gt=1.0)] = 3.0
    """Dual-clip constant c for negative advantages (grpo, dapo; soft form in aspo)."""
    dgpo_n: PositiveInt = 1
    """DGPO decay exponent on the LN side (r < 1-ε_low, A < 0)."""
    dgpo_m: PositiveInt = 2
    """DGPO decay root on the HP side (r > 1+ε_high, A > 0)."""
    ce_gppo_beta1: Annotated[float, Field(ge=0.0)] = 0.75
    """CE-GPPO gradient scale outside the bound on the LN side (0.75: the official 7B
    script; its 1.5B script uses 0.5)."""
    ce_gppo_beta2: Annotated[float, Field(ge=0.0)] = 1.0
    """CE-GPPO gradient scale outside the bound on the HP side."""
    sapo_tau_pos: Annotated[float, Field(gt=0.0)] = 1.0
    """SAPO gate temperature for positive advantages."""
    sapo_tau_neg: Annotated[float, Field(gt=0.0)] = 1.05
    """SAPO gate temperature for negative advantages."""
    loss_agg_mode: LossAggMode = "token-mean"
    """How token losses become one number (`trainer.losses.aggregation`): `token-mean` over all
    tokens of the mini-batch, or per sequence then the mean over sequences."""
    loss_scale_factor: Annotated[float, Field(gt=0.0)] | None = None
    """Fixed divisor for `seq-mean-token-sum-norm` (default: rollout.max_response_tokens)."""

    @model_validator(mode="before")
    @classmethod
    def _recipe(cls, data: object) -> object:
        """The chosen loss's recipe fills the keys the user did not set (`dapo`: ε_high 0.28)."""
        if isinstance(data, dict):
            data = {**RECIPES.get(str(data.get("name", "dgpo")), {}), **data}
        return data

    @model_validator(mode="after")
    def _lower_bound(self) -> Self:
        if self.clip_ratio_low >= 1.0 and self.name != "cispo":
            raise ValueError(
                f"clip_ratio_low must be < 1 for {self.name!r} (got {self.clip_ratio_low}); "
                "only cispo accepts >= 1, meaning no lower bound"
            )
        return self
