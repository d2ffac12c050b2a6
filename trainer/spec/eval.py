"""The eval job spec: which model, which benchmarks, how many samples, which prompt."""

from collections.abc import Sequence
from typing import Annotated, Literal, Self, get_args

from pydantic import AfterValidator, BeforeValidator, Discriminator, Field, Tag, model_validator

from trainer.spec.base import PATH_MAX, SpecModel
from trainer.spec.prompt import PromptConfig
from trainer.spec.resources import Resources

BenchmarkName = Literal[
    "aime24",
    "aime25",
    "amc23",
    "math500",
    "minerva",
    "olympiadbench",
    "gsm8k",
    "gsm8k_mini",
    "arith-test",
]
"""`gsm8k_mini`: the first 30 GSM8K test problems, shipped with the package (no data dir).
`arith-test`: the held-out split of the built-in arithmetic task (`trainer.data.arith`)."""
BENCHMARK_NAMES: tuple[str, ...] = get_args(BenchmarkName)


def _not_builtin(name: str) -> str:
    if name in BENCHMARK_NAMES:
        raise ValueError(f"{name!r} is a built-in benchmark's name; give the set another")
    return name


class EvalSet(SpecModel):
    """A custom eval set: a JSONL file of `{"problem", "answer"}` rows (`"id"` optional).

    In the service the path must be absolute and under the operator's data roots, as a
    train spec's `dataset.path`."""

    name: Annotated[
        str,
        Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
        AfterValidator(_not_builtin),
    ]
    """Reported as the benchmark's name (results, metrics `eval/<name>/...`, comparisons)."""
    path: str = Field(min_length=1, max_length=PATH_MAX, pattern=r"\.jsonl$")
    """The JSONL file; answers are graded by the same math grader as every benchmark."""


def _known_name(value: object) -> object:
    """An unknown name is an error at its own list index, not one per union member."""
    if isinstance(value, str) and value not in BENCHMARK_NAMES:
        raise ValueError(
            f"unknown benchmark {value!r}: give one of {list(BENCHMARK_NAMES)} "
            "or a custom set {name, path}"
        )
    return value


def _ref_kind(value: object) -> str:
    return "EvalSet" if isinstance(value, dict | EvalSet) else "name"


BenchmarkRef = Annotated[
    Annotated[BenchmarkName, Tag("name")] | Annotated[EvalSet, Tag("EvalSet")],
    Discriminator(_ref_kind),
    BeforeValidator(_known_name),
]
"""A built-in benchmark by name, or a custom eval set."""


def benchmark_name(ref: BenchmarkRef) -> str:
    """The name results and metrics carry."""
    return ref.name if isinstance(ref, EvalSet) else ref


def check_unique_names(refs: Sequence[BenchmarkRef]) -> None:
    """Two entries with one name would overwrite each other's results."""
    names = [benchmark_name(ref) for ref in refs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"benchmarks are named more than once: {repeated}")


PositiveInt = Annotated[int, Field(ge=1)]

EVAL_TEMPERATURE = 0.6
"""Sampling temperature of an eval unless its spec sets one (periodic evals always)."""
EVAL_TOP_P = 0.95
"""Nucleus sampling of an eval unless its spec sets it (periodic evals always)."""


def reported_pass_ks(k: int, requested: list[int] | None = None) -> list[int]:
    """The j of every Pass@j an eval of k samples reports: those requested, else 1 and k."""
    return sorted(set(requested or [1, k]))


class CheckpointRef(SpecModel):
    """A checkpoint of a train job known to the service."""

    job_id: str = Field(min_length=1, max_length=64)
    """Id of the train job whose checkpoint to use."""
    step: PositiveInt | Literal["latest"] = "latest"
    """Training step of the checkpoint, or `latest`: the newest one saved."""


class EvalModel(SpecModel):
    """Exactly one of `path` (HF id or directory) or `checkpoint` (a train job's)."""

    path: str | None = Field(default=None, min_length=1, max_length=PATH_MAX)
    """A Hugging Face model id or a local directory in HF format."""
    checkpoint: CheckpointRef | None = None
    """A saved checkpoint of a train job, resolved by the service."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.path is None) == (self.checkpoint is None):
            raise ValueError("give exactly one of model.path or model.checkpoint")
        return self


class EvalSpec(SpecModel):
    """Score one model on math benchmarks with Avg@k and Pass@k."""

    model: EvalModel
    """The model to score."""
    benchmarks: list[BenchmarkRef] = Field(min_length=1, max_length=32)
    """Benchmarks to score, each reported on its own: built-in names or `{name, path}` sets."""
    prompt: PromptConfig = PromptConfig()
    """How a problem becomes the prompt; give a train job's own to score it as trained."""
    answer_format: Literal["lenient", "number"] = "lenient"
    """`lenient`: math-verify finds the answer (the last \\boxed{} if any) and accepts any
    equal expression; `number`: the response's last number literal must equal the answer
    (numeric tasks such as `arith-test`, where an echoed `19 + 15` must not count)."""
    k: Annotated[int, Field(ge=1, le=1024)] = 32
    """Samples per problem (Avg@k averages them)."""
    pass_k: list[PositiveInt] | None = Field(default=None, max_length=64)
    """Pass@k is reported for each of these (default: 1 and k); each must be <= k."""
    temperature: Annotated[float, Field(gt=0.0)] = EVAL_TEMPERATURE
    """Sampling temperature."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = EVAL_TOP_P
    """Nucleus sampling: keep the smallest token set with this total probability."""
    max_tokens: Annotated[int, Field(ge=1, le=1_048_576)] = 8192
    """Longest response per sample, in tokens; generation stops there."""
    max_problems: PositiveInt | None = None
    """Evaluate only the first N problems of each benchmark."""
    engine: Literal["hf", "vllm"] = "hf"
    """Generation backend: `hf` (transformers `generate`) or `vllm`."""
    batch_size: Annotated[int, Field(ge=1, le=65_536)] = 64
    """HF engine: prompts generated together (memory bound)."""
    gpu_memory_utilization: Annotated[float, Field(gt=0.0, le=1.0)] = 0.85
    """vLLM on GPU: fraction of its memory for weights + KV cache."""
    tensor_parallel_size: Annotated[int, Field(ge=1, le=64)] = 1
    """vLLM: GPUs one model is split across."""
    seed: int = 0
    """Sampling seed: the same spec on the same engine draws the same samples."""
    resources: Resources = Resources()
    """GPUs the job needs; decides the queue that runs it."""

    @model_validator(mode="after")
    def _pass_k_fits(self) -> Self:
        check_unique_names(self.benchmarks)
        for k in self.pass_k or []:
            if k > self.k:
                raise ValueError(f"pass_k entry {k} exceeds k ({self.k})")
        return self

    @property
    def pass_ks(self) -> list[int]:
        return reported_pass_ks(self.k, self.pass_k)
