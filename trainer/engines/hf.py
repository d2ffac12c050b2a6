"""Rollouts with transformers' `generate` (KV cache, batched): CPU and GPU, no extra deps.

The engine may share its module with the trainer (the loop does that), in which case
`update_weights` has nothing to copy. Sampling is seeded per call inside a forked RNG,
so generating never disturbs the trainer's global RNG stream.
"""

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from trainer.engines.base import Completion, SamplingConfig
from trainer.precision import autocast


class HFEngine:
    def __init__(
        self,
        model: nn.Module,
        *,
        eos_token_id: int,
        pad_token_id: int,
        batch_size: int,
        compute_dtype: torch.dtype | None = None,
    ):
        self.model = model
        self.compute_dtype = compute_dtype
        """Autocast dtype over a model holding fp32 masters (`trainer.precision`), or None."""
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.batch_size = batch_size
        """Prompts per `generate` call (each expanded to n sequences)."""

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig
    ) -> list[Completion]:
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        devices = [device] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), autocast(device, self.compute_dtype):
                if sampling.seed is not None:
                    torch.manual_seed(sampling.seed)
                completions = []
                for start in range(0, len(prompts), self.batch_size):
                    chunk = prompts[start : start + self.batch_size]
                    completions += self._generate_chunk(chunk, start, sampling, device)
                return completions
        finally:
            self.model.train(was_training)

    def _generate_chunk(
        self,
        prompts: Sequence[Sequence[int]],
        first_index: int,
        sampling: SamplingConfig,
        device: torch.device,
    ) -> list[Completion]:
        width = max(len(p) for p in prompts)
        rows = [[self.pad_token_id] * (width - len(p)) + list(p) for p in prompts]
        input_ids = torch.tensor(rows, device=device).repeat_interleave(sampling.n, dim=0)
        lengths = torch.tensor([len(p) for p in prompts], device=device)
        positions = torch.arange(width, device=device)
        attention_mask = (positions >= (width - lengths)[:, None]).long()
        out: Any = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask.repeat_interleave(sampling.n, dim=0),
            do_sample=True,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=0,
            max_new_tokens=sampling.max_tokens,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            remove_invalid_values=True,  # a NaN model must reach the trainer's guard, not crash
            output_logits=True,
            return_dict_in_generate=True,
        )
        tokens = out.sequences[:, width:]
        # Log-probs of the sampled tokens under the (temperature-scaled) model, no top-p.
        logits = torch.stack(out.logits, dim=1).float() / sampling.temperature
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, tokens[..., None]).squeeze(-1)
        return [
            _completion(
                first_index + i // sampling.n,
                tokens[i].tolist(),
                logprobs[i].tolist(),
                self.eos_token_id,
            )
            for i in range(tokens.shape[0])
        ]

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, tensor in named_tensors:
                if params[name].data_ptr() != tensor.data_ptr():
                    params[name].copy_(tensor)

    def sleep(self) -> None:
        """Nothing to release: the HF engine holds no cache between calls."""

    def wake_up(self) -> None:
        """Nothing to re-acquire."""


def _completion(index: int, tokens: list[int], logprobs: list[float], eos: int) -> Completion:
    """Cut after the first EOS (kept); the rest is padding from finished sequences."""
    finish: Literal["stop", "length"] = "length"
    if eos in tokens:
        tokens = tokens[: tokens.index(eos) + 1]
        finish = "stop"
    return Completion(index, tokens, logprobs[: len(tokens)], finish)
