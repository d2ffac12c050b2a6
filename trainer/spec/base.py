"""Base model for every spec section: unknown keys are errors, not silently dropped."""

from pydantic import BaseModel, ConfigDict


class SpecModel(BaseModel):
    """A typo in a spec key must fail loudly (422 naming the key), never be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
