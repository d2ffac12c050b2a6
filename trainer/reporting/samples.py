"""Sample completions as text: what the policy actually writes, every N steps.

Curves say a run is learning; reading a few completions says *what* it learns (format
hacking, truncation, repetition). `logging.sample_every` sends this as a `samples` event.
"""

from typing import Any


def _clip(text: str, max_chars: int) -> str:
    """Keep both ends: the start shows the prompt, the end shows the answer."""
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return f"{text[:half]} [...] {text[-half:]}"


def sample_text(state: Any, count: int, max_chars: int) -> str:
    """The first `count` completions of the latest step: prompt, completion, reward, answer."""
    rollouts = state.last_rollouts
    if rollouts is None or not rollouts.completions:
        return "no completions this step (dynamic sampling kept no group)"
    picked = rollouts.completions[:count]
    texts = state.tokenizer.batch_decode([c.token_ids for c in picked], skip_special_tokens=True)
    blocks = []
    for i, (completion, text) in enumerate(zip(picked, texts, strict=True)):
        example = rollouts.examples[completion.prompt_index]
        blocks.append(
            f"[{i + 1}] reward {rollouts.rewards[i]:g} (answer {example.answer!r}, "
            f"{completion.finish_reason})\n"
            f"prompt: {_clip(example.problem, max_chars)}\n"
            f"completion: {_clip(text, max_chars)}"
        )
    return f"step {state.step}: {len(picked)} of {len(rollouts.completions)} completions\n" + (
        "\n".join(blocks)
    )
