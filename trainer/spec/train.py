"""The train job spec: everything a DGPO run needs, validated before it is queued."""

from typing import Annotated, Literal, Self, get_args

from pydantic import Field, model_validator

from trainer.spec.base import SpecModel
from trainer.spec.eval import BenchmarkName
from trainer.spec.loss import PolicyLossConfig
from trainer.spec.resources import Resources

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

AdvantageEstimator = Literal["grpo", "dr_grpo", "rloo"]
ADVANTAGE_ESTIMATORS: tuple[str, ...] = get_args(AdvantageEstimator)

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(gt=0.0, le=1.0)]


class ModelConfig(SpecModel):
    path: str = Field(min_length=1)
    """A Hugging Face model id or a local directory in HF format."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """`auto`: bfloat16 on GPU, float32 on CPU."""
    gradient_checkpointing: bool = False
    cpu_offload: bool = False
    """Multi-GPU jobs (FSDP2): keep the sharded parameters and gradients in CPU memory."""
    max_context_length: PositiveInt | None = None
    """Overrides the model config's context length when checking prompt+response fit."""
    revision: str | None = None
    """Pinned hub revision (commit hash or tag) for reproducible runs."""


class DatasetConfig(SpecModel):
    path: str = Field(min_length=1)
    """Local .jsonl/.parquet file, or a Hugging Face dataset id."""
    split: str = "train"
    prompt_field: str = "problem"
    answer_field: str = "answer"
    max_samples: PositiveInt | None = None
    shuffle: bool = True


class PromptConfig(SpecModel):
    instruction: str = DEFAULT_INSTRUCTION
    """Appended after the problem, as in the paper."""
    use_chat_template: bool = True
    """Wrap the prompt with the tokenizer's chat template when it has one."""
    system_prompt: str | None = None


class AlgorithmConfig(SpecModel):
    policy_loss: PolicyLossConfig = PolicyLossConfig()
    advantage: AdvantageEstimator = "grpo"
    group_size: PositiveInt = 8
    """n: rollouts per prompt."""
    reward: str = "math"
    """Key in the reward registry (`trainer.rewards`)."""
    kl_coef: Annotated[float, Field(ge=0.0)] = 0.0
    reference_model: str | None = None
    """Reference policy for the KL term; defaults to the initial model when kl_coef > 0."""
    entropy_coef: float = 0.0
    dynamic_sampling: bool = False
    """DAPO-style: drop groups whose rewards are all equal and resample to refill."""
    max_resample_rounds: NonNegativeInt = 3
    rollout_is_correction: bool = False
    """Multiply the loss by the truncated ratio π_old(train) / π(rollout engine)."""
    rollout_is_cap: Annotated[float, Field(gt=0.0)] = 2.0

    @model_validator(mode="after")
    def _group_estimators_need_groups(self) -> Self:
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be >= 2 for the group-based advantage "
                f"estimator {self.advantage!r} (got {self.group_size})"
            )
        return self


class RolloutConfig(SpecModel):
    engine: Literal["hf", "vllm"] = "hf"
    temperature: Annotated[float, Field(gt=0.0)] = 1.0
    top_p: Probability = 1.0
    max_prompt_tokens: PositiveInt = 1024
    max_response_tokens: PositiveInt = 2048
    gpu_memory_utilization: Probability = 0.5
    """vLLM: fraction of GPU memory for weights + KV cache (colocated with training)."""
    tensor_parallel_size: PositiveInt = 1
    enable_sleep_mode: bool = True
    """vLLM: release KV cache and weights while the update runs."""
    batch_size: PositiveInt = 64
    """HF engine: prompts generated together (memory bound)."""


class OptimConfig(SpecModel):
    lr: Annotated[float, Field(gt=0.0)] = 1e-6
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: NonNegativeInt = 0
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.01
    grad_clip: Annotated[float, Field(gt=0.0)] | None = 1.0
    betas: tuple[float, float] = (0.9, 0.999)
    prompts_per_step: PositiveInt = 32
    mini_batch_prompts: PositiveInt = 32
    """Prompts per optimizer step; must divide prompts_per_step."""
    micro_batch_size: PositiveInt = 8
    """Sequences per forward/backward pass (gradient accumulation unit)."""
    epochs_per_batch: PositiveInt = 1
    max_consecutive_skips: PositiveInt = 5
    """Abort after this many non-finite updates in a row."""

    @model_validator(mode="after")
    def _mini_batch_divides_batch(self) -> Self:
        if self.prompts_per_step % self.mini_batch_prompts:
            raise ValueError(
                f"mini_batch_prompts ({self.mini_batch_prompts}) must divide "
                f"prompts_per_step ({self.prompts_per_step})"
            )
        return self


class CheckpointConfig(SpecModel):
    every_steps: NonNegativeInt = 50
    """0 saves only at the end (and on cancel)."""
    keep_last: PositiveInt = 3
    output_dir: str | None = None
    """Local path or fsspec URI; the runner chooses one when unset."""
    cancel_grace_s: Annotated[float, Field(ge=0, le=3600)] | None = None
    """After a cancel, how long the run may take to reach a step boundary and write its
    final checkpoint before the worker kills it (default: the worker's
    `DGPO_CANCEL_GRACE_S`, 30 s)."""


class PeriodicEvalConfig(SpecModel):
    every_steps: NonNegativeInt = 0
    """0 disables evaluation during training."""
    benchmarks: list[BenchmarkName] = Field(default_factory=list)
    k: PositiveInt = 4
    max_problems: PositiveInt | None = None
    """Evaluate only the first N problems of each benchmark (fast checks)."""


class TrainSpec(SpecModel):
    """A complete DGPO (or baseline) RL fine-tuning run."""

    model: ModelConfig
    dataset: DatasetConfig
    prompt: PromptConfig = PromptConfig()
    algorithm: AlgorithmConfig = AlgorithmConfig()
    rollout: RolloutConfig = RolloutConfig()
    optim: OptimConfig = OptimConfig()
    total_steps: PositiveInt = 100
    checkpoint: CheckpointConfig = CheckpointConfig()
    eval: PeriodicEvalConfig = PeriodicEvalConfig()
    seed: int = 0
    resources: Resources = Resources()

    @model_validator(mode="after")
    def _cross_field(self) -> Self:
        samples = self.optim.mini_batch_prompts * self.algorithm.group_size
        if samples % self.optim.micro_batch_size:
            raise ValueError(
                f"optim.micro_batch_size ({self.optim.micro_batch_size}) must divide the "
                f"mini-batch's samples (mini_batch_prompts x group_size = {samples})"
            )
        limit = self.model.max_context_length
        needed = self.rollout.max_prompt_tokens + self.rollout.max_response_tokens
        if limit is not None and needed > limit:
            raise ValueError(
                f"rollout.max_prompt_tokens + rollout.max_response_tokens ({needed}) "
                f"exceeds model.max_context_length ({limit})"
            )
        if self.eval.every_steps and not self.eval.benchmarks:
            raise ValueError("eval.benchmarks must name at least one benchmark when enabled")
        if self.rollout.engine == "vllm" and self.resources.gpus == 0:
            raise ValueError("rollout.engine 'vllm' needs resources.gpus >= 1")
        return self
