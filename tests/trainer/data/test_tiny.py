"""The tiny model is built offline, deterministically, and loads like any HF model."""

import subprocess
import sys
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.data.tiny import build_tiny_model


def test_tiny_model_loads_and_its_tokenizer_round_trips(tiny_model_dir: str) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Solve 3x + 1 = 7, é\n  \\boxed{2}"
    assert tok.decode(tok(text)["input_ids"]) == text
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2" and model.config.eos_token_id == tok.eos_token_id


def test_same_seed_builds_identical_weights_via_the_command(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "trainer.data.tiny", str(tmp_path / "a")], check=True)
    build_tiny_model(tmp_path / "b")
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "model.safetensors").read_bytes()
