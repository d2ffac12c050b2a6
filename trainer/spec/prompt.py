"""How a problem becomes a prompt: shared by train specs and eval specs, so a model is
scored with the prompt it was trained with."""

from pydantic import Field

from trainer.spec.base import TEXT_MAX, SpecModel

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


class PromptConfig(SpecModel):
    instruction: str = Field(default=DEFAULT_INSTRUCTION, max_length=TEXT_MAX)
    """Appended after the problem, as in the paper."""
    use_chat_template: bool = True
    """Wrap the prompt with the tokenizer's chat template when it has one."""
    system_prompt: str | None = Field(default=None, max_length=TEXT_MAX)
    """System message before the problem (not added to prompts given as chat messages)."""
