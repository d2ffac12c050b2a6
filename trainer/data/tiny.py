"""A tiny Qwen2-architecture model and tokenizer, built offline and deterministically.

Tests, the demo and benchmarks need a real causal LM that loads with
`AutoModelForCausalLM` / `AutoTokenizer` and a chat template, without a model hub.
The tokenizer is Qwen2's own byte-level BPE class with no merges (one token per byte)
plus Qwen's chat special tokens, so any text tokenizes, decoding is lossless, and every
loader (transformers 4/5, vLLM) rebuilds it identically. The toy task (`write_toy_dataset`)
pairs with the `contains` reward: the answer is one digit named in the prompt.

    python -m trainer.data.tiny OUT_DIR [--toy-data FILE] [--seed N]
"""

import argparse
import json
import random
from pathlib import Path

import torch
from tokenizers import pre_tokenizers
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

from trainer.data.builtins import BUILTIN_MODEL_POSITIONS

PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer() -> Qwen2Tokenizer:
    """Byte-level tokenizer (259 ids) with Qwen's chat tokens; EOS is `<|im_end|>`."""
    vocab = {PAD: 0, IM_START: 1, IM_END: 2}
    for byte_symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[byte_symbol] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token=None,
        eos_token=IM_END,
        pad_token=PAD,
        additional_special_tokens=[IM_START],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_config(vocab_size: int, **overrides: int | float | bool) -> Qwen2Config:
    """Two layers, width 64, one attention head, tied embeddings (as Qwen2.5-0.5B).

    The head is 64 wide: vLLM's CPU attention supports head sizes 32, 64, 80, ... (not the
    16 of four heads), and the vLLM engine tests run this model. One head rather than a
    wider model keeps the toy task learning as fast (tests/trainer/rl/test_loop_learning.py).
    """
    dims: dict[str, int | float | bool] = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 1,
        "num_key_value_heads": 1,
        "max_position_embeddings": BUILTIN_MODEL_POSITIONS["tiny"],
        "tie_word_embeddings": True,
        **overrides,
    }
    return Qwen2Config(vocab_size=vocab_size, **dims)


def build_tiny_model(out_dir: str | Path, *, seed: int = 0, **dims: int | bool) -> Path:
    """Write a random-init tiny model and its tokenizer to `out_dir` (HF format); `dims`
    override the tiny shape (bench/gpu_proof.py's vLLM part: a 1.5B body, this vocab)."""
    out = Path(out_dir)
    tokenizer = build_tokenizer()
    config = tiny_config(len(tokenizer), **dims)
    config.bos_token_id = None
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_toy_dataset(path: str | Path, *, num_prompts: int = 64, seed: int = 0) -> Path:
    """JSONL of `{"problem": "Say 7", "answer": "7"}` rows for the `contains` reward."""
    rng = random.Random(seed)
    rows = [str(rng.randrange(10)) for _ in range(num_prompts)]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for digit in rows:
            f.write(json.dumps({"problem": f"Say {digit}", "answer": digit}) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the tiny Qwen2 model offline.")
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--toy-data", help="also write the toy task's JSONL here")
    args = parser.parse_args()
    print(f"model: {build_tiny_model(args.out_dir, seed=args.seed)}")
    if args.toy_data:
        print(f"toy data: {write_toy_dataset(args.toy_data, seed=args.seed)}")


if __name__ == "__main__":
    main()
