"""The example specs shipped with the README validate against the one shared schema."""

from pathlib import Path

import pytest

from trainer.spec import EvalJobRequest, TrainJobRequest, load_job_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("train-dgpo.yaml", TrainJobRequest), ("eval-aime.yaml", EvalJobRequest)],
)
def test_example_spec_validates(name: str, kind: type) -> None:
    assert isinstance(load_job_file(EXAMPLES / name), kind)
