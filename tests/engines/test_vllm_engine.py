"""The vLLM engine (real CPU build, tiny model) samples with the trainer's log-probs and
takes weight pushes; a train run and an eval job both run on it.

One engine serves the module (starting one takes ~15-40 s); it is built exactly as an
eval job builds its own.
"""

import itertools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.engines.conftest import require_vllm
from tests.trainer.loop_specs import toy_spec
from trainer.engines import Completion, RolloutEngine, SamplingConfig, build_engine
from trainer.engines.vllm_logging import RELOAD_LOGGER
from trainer.evaluation.runner import engine_options, run_eval
from trainer.rl.batch import make_batch
from trainer.rl.update import batched_logprobs
from trainer.spec.eval import EvalSpec

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = [[1, 53, 67, 80], [1, 87, 85, 71, 84, 201], [1, 60]]
SAMPLING = SamplingConfig(n=3, temperature=0.7, top_p=1.0, max_tokens=12, seed=3)


def eval_spec(model: str) -> EvalSpec:
    return EvalSpec.model_validate(
        {
            "model": {"path": model},
            "benchmarks": ["amc23"],
            "k": 2,
            "max_tokens": 8,
            "max_problems": 2,
            "engine": "vllm",
        }
    )


@pytest.fixture(scope="module")
def engine(tiny_model_dir: str) -> Iterator[RolloutEngine]:
    require_vllm()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    spec = eval_spec(tiny_model_dir)
    yield build_engine(spec.engine, engine_options(spec, tiny_model_dir, tokenizer))


def max_logprob_error(model: torch.nn.Module, completions: list[Completion]) -> float:
    """Largest |engine − trainer| over all sampled tokens, the trainer's log-probs
    recomputed by the update's own path at the sampling temperature."""
    batch = make_batch(PROMPTS, completions, torch.zeros(len(completions)), 0, torch.device("cpu"))
    trainer = batched_logprobs(model, batch, 16, SAMPLING.temperature)
    return float((trainer - batch.rollout_logprobs)[batch.response_mask].abs().max())


def test_logprobs_at_temperature_07_equal_the_trainers(
    engine: RolloutEngine, tiny_model_dir: str
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    completions = engine.generate(PROMPTS, SAMPLING)
    assert [c.prompt_index for c in completions] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sum(len(c.token_ids) for c in completions) > 20
    assert max_logprob_error(model, completions) < 1e-3


def test_pushed_weights_are_the_ones_sampled_from(
    engine: RolloutEngine, tiny_model_dir: str
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    original = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    assert max_logprob_error(model, engine.generate(PROMPTS, SAMPLING)) > 0.1  # not pushed yet
    try:
        engine.update_weights(model.named_parameters())
        assert max_logprob_error(model, engine.generate(PROMPTS, SAMPLING)) < 1e-3
    finally:
        engine.update_weights(original.items())


def coincidence(completions: list[Completion], n: int, *, same_index: bool) -> float:
    """Fraction of token positions equal between sample i of one prompt and sample j of
    another, with j == i (`same_index`) or j != i (independent draws: the chance level)."""
    samples = [completions[k : k + n] for k in range(0, len(completions), n)]
    equal = total = 0
    for p, q in itertools.combinations(range(len(samples)), 2):
        for i, j in itertools.product(range(n), repeat=2):
            if (i == j) == same_index:
                a, b = samples[p][i].token_ids, samples[q][j].token_ids
                equal += sum(x == y for x, y in zip(a, b, strict=False))
                total += min(len(a), len(b))
    return equal / total


def test_prompts_of_one_call_sample_independently_and_reproducibly(
    engine: RolloutEngine,
) -> None:
    """vLLM seeds sample i of a request `seed + i`: one seed for a whole call made sample i
    of every prompt follow the same noise (80% of positions equal on the tiny model)."""
    prompts = [[1, 40 + 7 * k, 90 + k] for k in range(8)]
    sampling = SamplingConfig(n=4, temperature=1.0, top_p=1.0, max_tokens=16, seed=11)
    completions = engine.generate(prompts, sampling)
    same = coincidence(completions, sampling.n, same_index=True)
    chance = coincidence(completions, sampling.n, same_index=False)
    assert same < chance + 0.02, (
        f"sample i of different prompts: {same:.1%} equal (chance {chance:.1%})"
    )
    assert engine.generate(prompts, sampling) == completions  # same seed, same samples


def test_a_push_warns_only_about_layers_that_really_got_no_weights(
    engine: RolloutEngine, tiny_model_dir: str
) -> None:
    """RotaryEmbedding's cos/sin cache is derived from the config, in no checkpoint: vLLM
    put it back and warned "Failed to load weights" on every push. Other layers still warn."""
    layerwise = logging.getLogger(RELOAD_LOGGER)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    layerwise.addHandler(handler)
    try:
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        engine.update_weights(model.named_parameters())
        assert [r.getMessage() for r in records] == []
        layerwise.warning("%s: Failed to load weights", "QKVParallelLinear")
        assert [r.getMessage() for r in records] == ["QKVParallelLinear: Failed to load weights"]
    finally:
        layerwise.removeHandler(handler)


def test_eval_job_scores_on_the_vllm_engine(engine: RolloutEngine, tiny_model_dir: str) -> None:
    (result,) = run_eval(eval_spec(tiny_model_dir), tiny_model_dir, engine=engine)
    assert result.benchmark == "amc23" and result.num_problems == 2
    assert {"avg@2", "pass@1", "pass@2"} <= set(result.scores)
    assert all(len(p.samples) == 2 for p in result.per_problem)


def test_three_step_train_run_on_vllm_matches_the_trainer_every_step(
    tiny_model_dir: str, toy_dataset: str, tmp_path: Path
) -> None:
    """lr 2e-2 moves the policy a lot each step: only a push that took effect keeps the
    engine's log-probs equal to the trainer's at steps 2 and 3. Equal within vLLM's
    rounding, not exactly: π_old is the trainer's own, so each update starts at r = 1."""
    require_vllm()
    spec = toy_spec(tiny_model_dir, toy_dataset, rollout={"engine": "vllm", "temperature": 0.7})
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    out = tmp_path / "run"
    subprocess.run(
        [sys.executable, "-m", "trainer.cli", str(spec_file), "--output", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        timeout=400,
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["metrics"] for r in rows if r["type"] == "metrics"]
    diffs = [m["rollout/logprob_abs_diff"] for m in steps]
    assert len(diffs) == 3 and all(0 < d < 1e-3 for d in diffs), diffs
    assert all(m["ratio/max"] == 1.0 for m in steps), [m["ratio/max"] for m in steps]
