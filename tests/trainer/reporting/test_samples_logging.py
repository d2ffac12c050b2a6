"""`logging.sample_every` shows what the policy writes; built-in names run standalone."""

import os
from pathlib import Path

from tests.trainer.loop_specs import toy_spec
from trainer.data.builtins import builtin_root
from trainer.reporting.callbacks import Callback
from trainer.rl.loop import train
from trainer.spec import TrainSpec


class Events(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def on_event(self, kind: str, message: str) -> None:
        self.seen.append((kind, message))


def test_samples_event_every_n_steps_on_the_built_in_tiny_model(tmp_path: Path) -> None:
    toy = toy_spec("tiny", "toy-digits", total_steps=2)
    spec = TrainSpec.model_validate(
        {**toy.model_dump(), "logging": {"sample_every": 1, "num_samples": 2}}
    )
    events = Events()
    result = train(spec, output_dir=str(tmp_path / "run"), callbacks=events)
    assert result.final_step == 2
    samples = [message for kind, message in events.seen if kind == "samples"]
    assert [s.split(":")[0] for s in samples] == ["step 1", "step 2"]
    for text in samples:
        assert "2 of 32 completions" in text
        assert text.count("prompt: Say ") == 2 and text.count("completion: ") == 2
        assert "reward " in text and "answer '" in text
    # The built-in names resolved to assets built under $DGPO_HOME/builtin.
    assert builtin_root() == Path(os.environ["DGPO_HOME"]) / "builtin"
    assert (builtin_root() / "tiny-model" / "config.json").is_file()
    assert (builtin_root() / "toy-digits.jsonl").is_file()
