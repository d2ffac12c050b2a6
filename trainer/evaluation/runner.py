"""Run an eval spec: prompts -> k samples per problem -> grades -> Avg@k / Pass@k.

The same functions serve `dgpo-eval`, eval jobs in workers, and periodic eval inside
train jobs (which pass their own engine and grader, sharing the policy's weights).
"""

import os
from collections.abc import Sequence
from typing import Any

from trainer.benchmarks import Problem, load_problems
from trainer.data.builtins import resolve
from trainer.data.prompts import prompt_text
from trainer.engines import EngineOptions, RolloutEngine, SamplingConfig, build_engine
from trainer.evaluation.scores import benchmark_scores
from trainer.results import BenchmarkResult, ProblemResult
from trainer.rewards.grading import Grader, last_number_verdict
from trainer.spec import PromptConfig
from trainer.spec.eval import BenchmarkRef, EvalSpec, benchmark_name


def run_eval(
    spec: EvalSpec,
    model_path: str,
    *,
    engine: RolloutEngine | None = None,
    benchmark_dir: str | os.PathLike[str] | None = None,
) -> list[BenchmarkResult]:
    """Score the model at `model_path` on every benchmark of `spec`, in spec order.

    `engine` defaults to `spec.engine` built from `model_path`; benchmarks are read from
    the package, except those that do not ship (aime25): from `benchmark_dir` or
    `$DGPO_BENCHMARK_DIR`, else the Hugging Face hub.
    """
    from transformers import AutoTokenizer

    model_path = resolve(model_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if engine is None:
        engine = build_engine(spec.engine, engine_options(spec, model_path, tokenizer))
    sampling = SamplingConfig(
        n=spec.k,
        temperature=spec.temperature,
        top_p=spec.top_p,
        max_tokens=spec.max_tokens,
        seed=spec.seed,
    )
    with Grader() as grader:
        return [
            evaluate_benchmark(
                name,
                sampling,
                engine,
                tokenizer,
                grader,
                pass_ks=spec.pass_ks,
                max_problems=spec.max_problems,
                benchmark_dir=benchmark_dir,
                prompt=spec.prompt,
                answer_format=spec.answer_format,
            )
            for name in spec.benchmarks
        ]


def evaluate_benchmark(
    benchmark: BenchmarkRef,
    sampling: SamplingConfig,
    engine: RolloutEngine,
    tokenizer: Any,
    grader: Grader,
    *,
    pass_ks: Sequence[int],
    max_problems: int | None = None,
    benchmark_dir: str | os.PathLike[str] | None = None,
    prompt: PromptConfig | None = None,
    answer_format: str = "lenient",
) -> BenchmarkResult:
    """One benchmark or custom eval set: `sampling.n` samples for each of its (first
    `max_problems`) problems, prompted as `prompt` says, scored as Avg@n and Pass@j for each
    j in `pass_ks`.

    Takes what it uses rather than an eval spec: eval jobs and the periodic evals of train
    jobs fill these in from their own specs."""
    problems = load_problems(benchmark, benchmark_dir)[:max_problems]
    prompt = prompt or PromptConfig()
    prompt_ids = [
        tokenizer(prompt_text(tokenizer, p.problem, prompt), add_special_tokens=False)["input_ids"]
        for p in problems
    ]
    completions = engine.generate(prompt_ids, sampling)
    responses = tokenizer.batch_decode([c.token_ids for c in completions], skip_special_tokens=True)
    answers = [problems[c.prompt_index].answer for c in completions]
    if answer_format == "number":
        pairs = zip(responses, answers, strict=True)
        verdicts = [last_number_verdict(response, answer) for response, answer in pairs]
    else:
        verdicts = grader.grade(responses, answers)
    per_problem = _per_problem(problems, [c.prompt_index for c in completions], verdicts)
    return BenchmarkResult(
        benchmark=benchmark_name(benchmark),
        k=sampling.n,
        scores=benchmark_scores(per_problem, pass_ks),
        per_problem=per_problem,
    )


def _per_problem(
    problems: Sequence[Problem], prompt_indices: Sequence[int], verdicts: Sequence[Any]
) -> list[ProblemResult]:
    grouped: list[list[Any]] = [[] for _ in problems]
    for index, verdict in zip(prompt_indices, verdicts, strict=True):
        grouped[index].append(verdict)
    return [
        ProblemResult(
            problem_id=p.id,
            num_samples=len(samples),
            num_correct=sum(v.correct for v in samples),
            samples=samples,
        )
        for p, samples in zip(problems, grouped, strict=True)
    ]


MAX_PROMPT_TOKENS = 4096
"""Room reserved for the prompt in vLLM's context (benchmark prompts are far shorter)."""


def engine_options(spec: EvalSpec, model_path: str, tokenizer: Any) -> EngineOptions:
    """How an eval job starts its own engine: it owns its model, so nothing is shared."""
    import torch

    cuda = torch.cuda.is_available() and spec.resources.gpus > 0
    return EngineOptions(
        model_path=model_path,
        device="cuda" if cuda else "cpu",
        max_model_len=MAX_PROMPT_TOKENS + spec.max_tokens,
        gpu_memory_utilization=spec.gpu_memory_utilization,
        tensor_parallel_size=spec.tensor_parallel_size,
        seed=spec.seed,
        batch_size=spec.batch_size,
        tokenizer=tokenizer,
    )
