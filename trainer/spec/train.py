"""The train job spec: everything a DGPO run needs, validated before it is queued."""

from typing import Annotated, Any, Literal, Self, get_args

from pydantic import Field, model_validator

from trainer.spec.base import NAME_MAX, PATH_MAX, SpecModel
from trainer.spec.eval import BenchmarkRef, check_unique_names
from trainer.spec.loss import PolicyLossConfig
from trainer.spec.prompt import PromptConfig
from trainer.spec.resources import Resources

AdvantageEstimator = Literal["grpo", "dr_grpo", "rloo"]
KLType = Literal["k1", "k2", "k3", "low_var_kl", "k1+", "k3+", "low_var_kl+"]
KL_TYPES: tuple[str, ...] = get_args(KLType)
ADVANTAGE_ESTIMATORS: tuple[str, ...] = get_args(AdvantageEstimator)
RewardName = Literal["math", "contains"]
"""The keys of `trainer.rewards.registry.REWARDS` (a test keeps the two equal)."""
REWARD_NAMES: tuple[str, ...] = get_args(RewardName)

PositiveInt = Annotated[int, Field(ge=1)]
MAX_STEPS = 1_000_000
MAX_PROMPTS = 65_536
"""Per step or mini-batch: far beyond any run that fits a fleet, well below absurd."""
MAX_GROUP_SIZE = 1024
MAX_TOKENS = 1_048_576
"""Longer than any model's context today; catches `1e9` typos before a worker OOMs."""
StepCount = Annotated[int, Field(ge=1, le=MAX_STEPS)]
PromptCount = Annotated[int, Field(ge=1, le=MAX_PROMPTS)]
TokenCount = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
Probability = Annotated[float, Field(gt=0.0, le=1.0)]


class ModelConfig(SpecModel):
    path: str = Field(min_length=1, max_length=PATH_MAX)
    """A Hugging Face model id or a local directory in HF format."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Compute dtype (`auto`: bfloat16 on GPU, float32 on CPU); training keeps fp32 master
    weights of a half-precision model, and checkpoints hold them (this dtype in their
    `config.json`)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, slower steps."""
    cpu_offload: bool = False
    """Multi-GPU jobs (FSDP2): keep the sharded parameters and gradients in CPU memory."""
    max_context_length: TokenCount | None = None
    """Overrides the model config's context length when checking prompt+response fit."""
    revision: str | None = Field(default=None, max_length=NAME_MAX)
    """Pinned hub revision (commit hash or tag) for reproducible runs."""


class DatasetConfig(SpecModel):
    path: str = Field(min_length=1, max_length=PATH_MAX)
    """Local .jsonl/.parquet file, or a Hugging Face dataset id."""
    split: str = Field(default="train", max_length=NAME_MAX)
    """Split of a Hugging Face dataset (ignored for a local file)."""
    prompt_field: str = Field(default="problem", max_length=NAME_MAX)
    """Dotted for nested fields (`extra_info.question`); a list of chat messages
    (`[{role, content}, ...]`, as verl's `prompt` column) is used as the whole prompt."""
    answer_field: str = Field(default="answer", max_length=NAME_MAX)
    """Dotted for nested fields, e.g. verl's `reward_model.ground_truth`."""
    max_samples: PositiveInt | None = None
    """Use only the first N rows of the dataset."""
    shuffle: bool = True
    """Reshuffle the prompts each epoch, seeded by the spec's `seed`."""


class AlgorithmConfig(SpecModel):
    policy_loss: PolicyLossConfig = PolicyLossConfig()
    """Which policy loss and its hyper-parameters."""
    advantage: AdvantageEstimator = "grpo"
    """Group advantage estimator (`trainer.rl.advantages`): `grpo` (r − mean) / std, `dr_grpo`
    r − mean, `rloo` leave-one-out."""
    group_size: Annotated[int, Field(ge=1, le=MAX_GROUP_SIZE)] = 8
    """n: rollouts per prompt."""
    reward: RewardName = "math"
    """Key in the reward registry (`trainer.rewards.registry`): `math` (math-verify against the
    ground truth) or `contains` (the answer string occurs; the built-in toy task's)."""
    answer_format: Literal["boxed", "lenient", "number"] = "boxed"
    """math reward: `boxed` grades only the last \\boxed{} (none scores 0), as the DGPO code's
    MATH reward does; `lenient` lets the grader find an answer anywhere in the text; `number`
    compares the text's last number literal with the answer, no algebra (for numeric tasks
    such as `arith`, where `19 + 15` must not count as 34). Periodic evals grade as `number`
    too when it is set, else leniently."""
    credit_truncated: bool | None = None
    """May a response cut at max_response_tokens earn reward? Unset: the reward decides
    (math: no; the toy `contains` task: yes)."""
    kl_coef: Annotated[float, Field(ge=0.0)] = 0.0
    """Weight of the KL penalty to the reference policy in the loss (0: no KL term)."""
    kl_type: KLType = "low_var_kl"
    """KL estimator, verl's forms (`trainer.rl.kl`): k3 = low_var_kl is clamped to ±10."""
    reference_model: str | None = Field(default=None, max_length=PATH_MAX)
    """Reference policy for the KL term; defaults to the initial model when kl_coef > 0."""
    entropy_coef: float = 0.0
    """Entropy bonus: the loss subtracts this times the mean token entropy (0: none)."""
    dynamic_sampling: bool = False
    """DAPO-style: drop groups whose scores (before any overlong penalty, verl's `acc`) are all
    equal and keep generating until the step
    has `prompts_per_step` groups, for at most 1 + max_resample_rounds generation batches
    (then the step trains on fewer groups and a `dynamic_sampling_short` event says so)."""
    max_resample_rounds: Annotated[int, Field(ge=0, le=100)] = 9
    """Dynamic sampling: extra generation batches allowed per step."""
    overlong_filter: bool = False
    """DAPO: mask truncated responses out of the loss."""
    overlong_buffer_len: Annotated[int, Field(ge=0, le=MAX_TOKENS)] = 0
    """DAPO overlong reward shaping: L_cache, the last tokens before max_response_tokens over
    which a linear penalty grows to -overlong_penalty_factor (0 disables it)."""
    overlong_penalty_factor: Annotated[float, Field(ge=0.0)] = 1.0
    """DAPO: the largest overlong penalty, reached at max_response_tokens."""
    rollout_is_correction: bool = False
    """Multiply the loss by the truncated ratio π_old(train) / π(rollout engine)."""
    rollout_is_cap: Annotated[float, Field(gt=0.0)] = 2.0
    """Upper clamp of that importance ratio."""

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
    """Rollout backend: `hf` (transformers `generate`) or `vllm`."""
    temperature: Annotated[float, Field(gt=0.0)] = 1.0
    """Sampling temperature (also divides the logits when log-probs are computed)."""
    top_p: Probability = 1.0
    """Nucleus sampling: keep the smallest token set with this total probability."""
    max_prompt_tokens: TokenCount = 1024
    """Longer prompts are dropped from the dataset (tokenized, template included)."""
    max_response_tokens: TokenCount = 2048
    """Generation stops here; such a response counts as truncated."""
    gpu_memory_utilization: Probability = 0.5
    """vLLM on GPU: fraction of its memory for weights + KV cache (colocated with training).
    vLLM on CPU sizes a small KV cache itself (`trainer.engines.vllm`)."""
    tensor_parallel_size: Annotated[int, Field(ge=1, le=64)] = 1
    """vLLM: GPUs one model is split across."""
    enable_sleep_mode: bool = False
    """vLLM on GPU: discard KV cache and weights while the update runs (level 2, refilled
    by the weight push, as TRL and verl do). Off until a GPU run has proven it."""
    batch_size: PromptCount = 64
    """HF engine: prompts generated together (memory bound)."""


class OptimConfig(SpecModel):
    lr: Annotated[float, Field(gt=0.0)] = 1e-6
    """Peak AdamW learning rate."""
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    """Shape after warmup: constant, or a linear / cosine decay to 0 at total_steps."""
    warmup_steps: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 0
    """Training steps of linear warmup from lr/warmup_steps to lr."""
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.01
    """AdamW decoupled weight decay, on weight matrices only (not norms or biases)."""
    grad_clip: Annotated[float, Field(gt=0.0)] | None = 1.0
    """Clip the global gradient norm to this value; null: no clipping."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW (β1, β2)."""
    prompts_per_step: PromptCount = 32
    """Prompts sampled per training step (each makes group_size rollouts)."""
    mini_batch_prompts: PromptCount = 32
    """Prompts per optimizer step; must divide prompts_per_step."""
    micro_batch_size: PromptCount = 8
    """Sequences per forward/backward pass (gradient accumulation unit)."""
    epochs_per_batch: Annotated[int, Field(ge=1, le=100)] = 1
    """Passes over each step's rollouts (PPO epochs)."""
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


class HubPushConfig(SpecModel):
    repo_id: str = Field(
        max_length=2 * NAME_MAX, pattern=r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$"
    )
    """`namespace/name` of a Hub model repo, created on the first push. In the service only
    namespaces the operator lists (`DGPO_HUB_PUSH_NAMESPACES`) are accepted."""
    private: bool = True
    """Visibility if the repo has to be created (an existing repo keeps its own)."""


class CheckpointConfig(SpecModel):
    every_steps: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 50
    """0 saves only at the end (and on cancel)."""
    keep_last: Annotated[int, Field(ge=1, le=1000)] = 3
    """Older checkpoints are deleted once a newer one is complete."""
    output_dir: str | None = Field(default=None, max_length=PATH_MAX)
    """Standalone (`dgpo-train`): a local path or fsspec URI. In the service: a relative
    sub-path of the job's own directory, or a URI under an operator storage prefix (see
    `config.spec_policy`); unset, the job's own directory."""
    cancel_grace_s: Annotated[float, Field(ge=0, le=3600)] | None = None
    """After a cancel, how long the run may take to reach a step boundary and write its
    final checkpoint before the worker kills it (default: the worker's
    `DGPO_CANCEL_GRACE_S`, 30 s)."""
    push_to_hub: HubPushConfig | None = None
    """Upload each checkpoint's model and tokenizer files (not the trainer state) to the
    Hugging Face Hub once it is complete, one commit per step; `HF_ENDPOINT` and `HF_TOKEN`
    come from where the job runs. Needs a local output directory."""

    @model_validator(mode="after")
    def _push_from_local_output(self) -> Self:
        if self.push_to_hub and self.output_dir and "://" in self.output_dir:
            raise ValueError(
                "checkpoint.push_to_hub needs a local output directory; "
                f"checkpoint.output_dir is {self.output_dir!r}"
            )
        return self


class PeriodicEvalConfig(SpecModel):
    every_steps: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 0
    """0 disables evaluation during training."""
    benchmarks: list[BenchmarkRef] = Field(default_factory=list, max_length=32)
    """Benchmarks scored at each periodic evaluation: built-in names or `{name, path}` sets."""
    prompt: PromptConfig | None = None
    """How a problem becomes the prompt in these evaluations; unset: the train spec's own
    `prompt`, so the policy is scored as it is trained."""
    k: Annotated[int, Field(ge=1, le=MAX_GROUP_SIZE)] = 4
    """Samples per problem (Avg@k)."""
    max_problems: PositiveInt | None = None
    """Evaluate only the first N problems of each benchmark (fast checks)."""


class TensorBoardConfig(SpecModel):
    enabled: bool = False
    """Metrics as scalars and samples as text under `<output>/tensorboard`
    (`pip install 'dgpo[tensorboard]'`)."""


class WandbConfig(SpecModel):
    enabled: bool = False
    """Metrics and samples (a table) to Weights & Biases (`pip install 'dgpo[wandb]'`); the
    run's files go under `<output>/wandb`. Online mode needs `WANDB_API_KEY` where it runs."""
    project: str = Field(default="dgpo", min_length=1, max_length=NAME_MAX)
    """W&B project of the run."""
    entity: str | None = Field(default=None, max_length=NAME_MAX)
    """W&B team or user (default: the API key's default entity)."""
    mode: Literal["online", "offline"] = "online"
    """`offline`: write the run locally only (`wandb sync` uploads it later)."""
    tags: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=64)
    """Tags on the W&B run."""


class MlflowConfig(SpecModel):
    enabled: bool = False
    """Metrics, the spec as parameters and samples (text artifacts) to MLflow (`pip install
    'dgpo[mlflow]'`). The tracking server and its credentials come from where the job runs:
    `MLFLOW_TRACKING_URI` (a server, `sqlite:///...`, or a local directory), and
    `MLFLOW_TRACKING_USERNAME`/`_PASSWORD` or `MLFLOW_TRACKING_TOKEN` if it needs them."""
    experiment: str = Field(default="dgpo", min_length=1, max_length=NAME_MAX)
    """MLflow experiment of the run (created if missing)."""
    tags: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=256)]] = Field(
        default_factory=dict, max_length=64
    )
    """Tags on the MLflow run (`{team: reasoning}`)."""


class LoggingConfig(SpecModel):
    tensorboard: TensorBoardConfig = TensorBoardConfig()
    """TensorBoard logging."""
    wandb: WandbConfig = WandbConfig()
    """Weights & Biases logging."""
    mlflow: MlflowConfig = MlflowConfig()
    """MLflow logging."""
    sample_every: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 0
    """Every N steps, log a few prompts with their sampled completions, rewards and answers
    as a `samples` event (job events, `dgpo jobs watch`, the dgpo-train console, and the
    enabled trackers' text views); 0: never."""
    num_samples: Annotated[int, Field(ge=1, le=64)] = 2
    """Prompts per `samples` event."""
    max_chars: Annotated[int, Field(ge=16, le=100_000)] = 500
    """Longer prompts and completions are cut to this many characters (the ends kept)."""


DAPO_ALGORITHM_RECIPE: dict[str, Any] = {
    "dynamic_sampling": True,
    "max_resample_rounds": 9,
    "overlong_penalty_factor": 1.0,
}
"""What `policy_loss.name: dapo` turns on besides clip-higher, for the algorithm keys a spec
leaves unset: verl's DAPO recipe (`recipe/dapo/run_dapo_qwen2.5_32b.sh` @ 03150d4f): groups
filtered on accuracy for up to 10 generation batches, overlong penalty factor 1."""
DAPO_BUFFER_FRACTION = 0.2
"""DAPO's L_cache / max response length: 4096 of 20480 tokens in the same script."""


class TrainSpec(SpecModel):
    """A complete DGPO (or baseline) RL fine-tuning run."""

    model: ModelConfig
    """The policy to fine-tune."""
    dataset: DatasetConfig
    """The training prompts and their ground-truth answers."""
    prompt: PromptConfig = PromptConfig()
    """How a dataset row becomes the prompt."""
    algorithm: AlgorithmConfig = AlgorithmConfig()
    """Loss, advantages, reward and their DAPO/KL options."""
    rollout: RolloutConfig = RolloutConfig()
    """How rollouts are generated."""
    optim: OptimConfig = OptimConfig()
    """Optimizer, learning-rate schedule and batch sizes."""
    total_steps: StepCount = 100
    """Training steps (one batch of prompts_per_step prompts each) before the run ends."""
    checkpoint: CheckpointConfig = CheckpointConfig()
    """When and where checkpoints are saved."""
    eval: PeriodicEvalConfig = PeriodicEvalConfig()
    """Benchmark evaluation during training."""
    logging: LoggingConfig = LoggingConfig()
    """Trackers and sample logging."""
    seed: int = 0
    """Seeds Python, NumPy and torch, the prompt order and each step's sampling."""
    resources: Resources = Resources()
    """GPUs the job needs; decides the queue that runs it."""

    @model_validator(mode="before")
    @classmethod
    def _dapo_recipe(cls, data: object) -> object:
        """`dapo` names DAPO, not only its clip-higher: overlong reward shaping (L_cache a
        fifth of rollout.max_response_tokens) and dynamic sampling, unless the spec sets them."""
        if not isinstance(data, dict) or not isinstance(data.get("algorithm"), dict):
            return data
        algorithm = data["algorithm"]
        loss = algorithm.get("policy_loss")
        name = loss.get("name") if isinstance(loss, dict) else getattr(loss, "name", None)
        if name != "dapo":
            return data
        recipe = dict(DAPO_ALGORITHM_RECIPE)
        rollout = data.get("rollout") or {}
        max_len = (
            rollout.get("max_response_tokens", RolloutConfig().max_response_tokens)
            if isinstance(rollout, dict)
            else getattr(rollout, "max_response_tokens", None)
        )
        if isinstance(max_len, int):  # anything else fails the field's own validation
            recipe["overlong_buffer_len"] = int(max_len * DAPO_BUFFER_FRACTION)
        return {**data, "algorithm": {**recipe, **algorithm}}

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
        check_unique_names(self.eval.benchmarks)
        if self.eval.every_steps and not self.eval.benchmarks:
            raise ValueError("eval.benchmarks must name at least one benchmark when enabled")
        if self.algorithm.overlong_buffer_len > self.rollout.max_response_tokens:
            raise ValueError(
                f"algorithm.overlong_buffer_len ({self.algorithm.overlong_buffer_len}) must not "
                f"exceed rollout.max_response_tokens ({self.rollout.max_response_tokens})"
            )
        return self
