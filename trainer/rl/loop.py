"""The DGPO training loop: sample -> reward -> advantage -> update -> report.

`train(spec, output_dir=...)` is the one entry point (CLI and Celery workers alike).
The outside world sees and steers the run only through callbacks; the machinery
(engines, rewards, losses, checkpoints) is one call away in its own module.
"""

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from trainer.checkpoints.local import NonFiniteModelError
from trainer.data.builtins import resolve_train_spec
from trainer.data.prompts import Example
from trainer.engines import Completion, EngineOptions, RolloutEngine, SamplingConfig
from trainer.evaluation.runner import evaluate_benchmark
from trainer.reporting.callbacks import Callback, CheckpointInfo
from trainer.reporting.samples import sample_text
from trainer.rewards.grading import Grader
from trainer.rewards.registry import Reward, apply_truncation, build_reward
from trainer.rl.advantages import compute_advantages
from trainer.rl.batch import make_batch
from trainer.rl.dapo import mask_truncated, overlong_penalty
from trainer.rl.ranks import Solo, open_group
from trainer.rl.run_state import RunState, build_run_state, load_model
from trainer.rl.update import batched_logprobs, old_policy_logprobs, policy_update
from trainer.spec import TrainSpec
from trainer.spec.eval import EVAL_TEMPERATURE, EVAL_TOP_P, reported_pass_ks


@dataclass(frozen=True)
class TrainResult:
    start_step: int
    """0 for a fresh run, else the step of the checkpoint it resumed from."""
    final_step: int
    stopped: bool
    """True when a callback's `should_stop()` ended the run early."""
    checkpoint: CheckpointInfo | None
    """The last checkpoint written (None if none was, e.g. a non-finite model)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """The last step's metrics."""


@dataclass
class Rollouts:
    examples: list[Example]
    completions: list[Completion]
    rewards: list[float]
    """What the advantages see: the scores plus DAPO's overlong penalty, if any."""
    timing: dict[str, float]
    scores: list[float] = field(default_factory=list)
    """The reward's verdicts (after the truncation rule), before any length penalty."""
    gen_batches: int = 0
    """Generation rounds it took (more than 1 only with dynamic sampling)."""


def train(
    spec: TrainSpec, *, output_dir: str, callbacks: Callback | None = None, resume: bool = True
) -> TrainResult:
    """Run `spec` to `total_steps`, checkpointing into `output_dir` (a path or fsspec URI).

    With `resume`, continues from the newest valid checkpoint in `output_dir` (step
    numbering continues). Raises `NonFiniteUpdatesError` after too many skipped updates.
    Under torchrun every rank calls it and the ranks train as one FSDP2 group
    (`trainer.rl.ranks`); only rank 0 calls `callbacks` and returns the real checkpoint.
    """
    spec = resolve_train_spec(spec)
    group = open_group(output_dir)
    cb = group.callbacks(callbacks or Callback())
    state = build_run_state(
        spec, output_dir, resume=resume, callbacks=cb, prepare=group.prepare, device=group.device
    )
    start_step, last_ckpt, metrics, stopped = state.step, None, {}, False
    engine = group.engine(spec.rollout.engine, _engine_options(spec, state))
    reference = _reference_model(spec, state)
    reward = build_reward(spec.algorithm)
    grader = Grader()  # its worker processes start at the first periodic eval, if any
    cb.on_train_start(start_step, spec.total_steps)
    try:
        while state.step < spec.total_steps:
            if group.share(cb.should_stop):
                stopped = True
                break
            state.step += 1
            metrics = train_step(spec, state, engine, reward, reference, group)
            _report_short_batch(spec, metrics, cb)
            eval_due = spec.eval.every_steps and state.step % spec.eval.every_steps == 0
            if eval_due and group.is_main:
                metrics |= periodic_eval(spec, state, engine, grader, cb)
            cb.on_step_end(state.step, metrics)
            log = spec.logging
            if log.sample_every and state.step % log.sample_every == 0 and group.is_main:
                cb.on_event("samples", sample_text(state, log.num_samples, log.max_chars))
            every = spec.checkpoint.every_steps
            if every and state.step % every == 0:
                last_ckpt = _checkpoint(spec, state, output_dir, cb, group) or last_ckpt
        if state.step > start_step and (last_ckpt is None or last_ckpt.step != state.step):
            last_ckpt = _checkpoint(spec, state, output_dir, cb, group) or last_ckpt
    finally:
        reward.close()
        grader.close()
    group.close()
    return TrainResult(start_step, state.step, stopped, last_ckpt, metrics)


def train_step(
    spec: TrainSpec,
    state: RunState,
    engine: RolloutEngine,
    reward: Reward,
    reference: Any,
    group: Solo | None = None,
) -> dict[str, float]:
    """One step: rollouts with rewards, advantages, the policy update, metrics."""
    group = group or Solo()
    t_start = time.perf_counter()
    rollouts = group.share(lambda: collect_rollouts(spec, state, engine, reward))
    state.last_rollouts = rollouts
    group_size = spec.algorithm.group_size
    rewards = torch.tensor(rollouts.rewards, dtype=torch.float32)
    metrics = rollout_metrics(rollouts, rewards, spec)
    if not rollouts.completions:  # dynamic sampling found no group with a signal
        state.scheduler.step()
        return {**metrics, "optim/lr": state.scheduler.get_last_lr()[0]}

    t_update = time.perf_counter()
    advantages = compute_advantages(spec.algorithm.advantage, rewards, group_size)
    prompts = [ex.prompt_ids for ex in rollouts.examples]
    batch = make_batch(
        prompts, rollouts.completions, advantages, state.tokenizer.pad_token_id, state.device
    )
    if spec.algorithm.overlong_filter:
        batch = mask_truncated(batch, rollouts.completions)
    batch = group.shard(batch, spec.optim.mini_batch_prompts * group_size)
    temperature, micro = spec.rollout.temperature, spec.optim.micro_batch_size
    dtype = state.autocast_dtype
    old_logprobs = old_policy_logprobs(state.model, batch, spec, compute_dtype=dtype)
    ref_logprobs = (
        None
        if reference is None
        else batched_logprobs(reference, batch, micro, temperature, compute_dtype=dtype)
    )
    engine.sleep()
    lr = state.scheduler.get_last_lr()[0]
    metrics |= policy_update(
        state.model,
        state.optimizer,
        batch,
        old_logprobs,
        ref_logprobs,
        spec,
        state.guard,
        group.sync,
        compute_dtype=dtype,
    )
    state.scheduler.step()
    group.push_weights(state, engine)
    update_s = time.perf_counter() - t_update

    step_s = time.perf_counter() - t_start
    response_tokens = float(batch.response_mask.sum())
    metrics |= {
        "optim/lr": lr,
        "update/skipped_total": float(state.guard.total),
        "time/update": update_s,
        "time/step": step_s,
        "perf/tokens_per_s": response_tokens / step_s,
        "perf/update_tokens_per_s": float(batch.attention_mask.sum()) / update_s,
    }
    return metrics


def periodic_eval(
    spec: TrainSpec, state: RunState, engine: RolloutEngine, grader: Grader, cb: Callback
) -> dict[str, float]:
    """Score the current policy on `spec.eval.benchmarks` through the rollout engine (which
    holds the just-updated weights) and report it; returns `eval/<benchmark>/<score>`.

    Sampling is seeded by the spec alone and the HF engine forks the RNG, so evaluating
    changes nothing the training run (or its exact resume) depends on.
    """
    t0 = time.perf_counter()
    sampling = SamplingConfig(
        n=spec.eval.k,
        temperature=EVAL_TEMPERATURE,
        top_p=EVAL_TOP_P,
        max_tokens=spec.rollout.max_response_tokens,
        seed=spec.seed,
    )
    results = [
        evaluate_benchmark(
            name,
            sampling,
            engine,
            state.tokenizer,
            grader,
            pass_ks=reported_pass_ks(spec.eval.k),
            max_problems=spec.eval.max_problems,
            prompt=spec.eval.prompt or spec.prompt,
            answer_format="number" if spec.algorithm.answer_format == "number" else "lenient",
        )
        for name in spec.eval.benchmarks
    ]
    cb.on_eval(state.step, results)
    metrics = {name: value for r in results for name, value in r.as_metrics().items()}
    return {**metrics, "time/eval": time.perf_counter() - t0}


def collect_rollouts(
    spec: TrainSpec, state: RunState, engine: RolloutEngine, reward: Reward
) -> Rollouts:
    """`prompts_per_step` groups of n rollouts with rewards. Truncated responses score 0
    unless credited; DAPO's overlong penalty is added when configured. With dynamic
    sampling, groups whose scores (before that penalty, verl's `acc` metric) are all equal
    carry no signal: they are dropped and generation continues until the batch is full, for
    at most `max_resample_rounds` extra rounds; the step may then end with fewer groups."""
    algo, want = spec.algorithm, spec.optim.prompts_per_step
    max_len, factor = spec.rollout.max_response_tokens, algo.overlong_penalty_factor
    kept = Rollouts([], [], [], {"time/rollout": 0.0, "time/reward": 0.0})
    rounds = 1 + (algo.max_resample_rounds if algo.dynamic_sampling else 0)
    for round_index in range(rounds):
        examples = state.stream.take(want - len(kept.examples))
        sampling = SamplingConfig(
            n=algo.group_size,
            temperature=spec.rollout.temperature,
            top_p=spec.rollout.top_p,
            max_tokens=spec.rollout.max_response_tokens,
            seed=_sampling_seed(spec.seed, state.step, round_index),
        )
        t0 = time.perf_counter()
        completions = engine.generate([ex.prompt_ids for ex in examples], sampling)
        t1 = time.perf_counter()
        texts = state.tokenizer.batch_decode(
            [c.token_ids for c in completions], skip_special_tokens=True
        )
        truths = [examples[c.prompt_index].answer for c in completions]
        truncated = [c.finish_reason == "length" for c in completions]
        scores = apply_truncation(reward(texts, truths), truncated, reward, algo)
        shaped = [
            score + overlong_penalty(len(c.token_ids), max_len, algo.overlong_buffer_len, factor)
            for score, c in zip(scores, completions, strict=True)
        ]
        kept.gen_batches += 1
        kept.timing["time/rollout"] += t1 - t0
        kept.timing["time/reward"] += time.perf_counter() - t1
        for i, example in enumerate(examples):
            group = slice(i * algo.group_size, (i + 1) * algo.group_size)
            if algo.dynamic_sampling and len(set(scores[group])) == 1:
                continue
            offset = len(kept.examples)
            kept.examples.append(example)
            kept.completions += [replace(c, prompt_index=offset) for c in completions[group]]
            kept.rewards += shaped[group]
            kept.scores += scores[group]
        if len(kept.examples) == want:
            break
    return kept


def rollout_metrics(rollouts: Rollouts, rewards: torch.Tensor, spec: TrainSpec) -> dict[str, float]:
    lengths = [len(c.token_ids) for c in rollouts.completions] or [0]
    correct = [score >= 1.0 for score in rollouts.scores]
    accuracy = sum(correct) / len(correct) if correct else math.nan
    truncated = [c.finish_reason == "length" for c in rollouts.completions] or [False]
    return {
        "reward/mean": float(rewards.mean()) if len(rewards) else math.nan,
        "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "reward/accuracy": accuracy,
        "response/length_mean": sum(lengths) / len(lengths),
        "response/length_max": float(max(lengths)),
        "response/truncated_frac": sum(truncated) / len(truncated),
        "batch/groups": float(len(rollouts.examples)),
        "batch/gen_batches": float(rollouts.gen_batches),
        "perf/rollout_tokens_per_s": sum(lengths) / max(rollouts.timing["time/rollout"], 1e-9),
        **rollouts.timing,
    }


def _report_short_batch(spec: TrainSpec, metrics: dict[str, float], cb: Callback) -> None:
    """Dynamic sampling ran out of generation rounds: say so, the step trained on less."""
    want, got = spec.optim.prompts_per_step, int(metrics["batch/groups"])
    if spec.algorithm.dynamic_sampling and got < want:
        cb.on_event(
            "dynamic_sampling_short",
            f"only {got} of {want} groups had differing rewards after "
            f"{int(metrics['batch/gen_batches'])} generation batches "
            "(algorithm.max_resample_rounds); the step trained on those",
        )


def _checkpoint(
    spec: TrainSpec, state: RunState, output_dir: str, cb: Callback, group: Solo
) -> CheckpointInfo | None:
    cb.before_checkpoint(state.step)
    try:
        saved = group.checkpoint(output_dir, state, spec.checkpoint.keep_last)
    except NonFiniteModelError as exc:
        cb.on_event("checkpoint_skipped", f"{exc}; not saved")
        return None
    cb.on_checkpoint(saved.info)
    return saved.info


def _engine_options(spec: TrainSpec, state: RunState) -> EngineOptions:
    """The HF engine shares the live policy; vLLM loads the same weights and gets pushes."""
    return EngineOptions(
        model_path=state.model_path,
        revision=None if state.resumed_from else spec.model.revision,
        dtype=str(state.compute_dtype).removeprefix("torch."),
        device=str(state.device),
        max_model_len=spec.rollout.max_prompt_tokens + spec.rollout.max_response_tokens,
        gpu_memory_utilization=spec.rollout.gpu_memory_utilization,
        tensor_parallel_size=spec.rollout.tensor_parallel_size,
        enable_sleep_mode=spec.rollout.enable_sleep_mode,
        seed=spec.seed,
        batch_size=spec.rollout.batch_size,
        model=state.model,
        tokenizer=state.tokenizer,
    )


def _reference_model(spec: TrainSpec, state: RunState) -> Any:
    """Frozen reference policy for the KL term (the initial model unless one is named)."""
    if spec.algorithm.kl_coef <= 0:
        return None
    path = spec.algorithm.reference_model or spec.model.path
    reference = load_model(path, spec, state.device, spec.model.revision).eval()
    return reference.requires_grad_(False)


def _sampling_seed(seed: int, step: int, round_index: int) -> int:
    """Rollout randomness depends on (seed, step, round) only: resuming replays it."""
    return (seed * 1_000_003 + step * 1_009 + round_index) % 2**63
