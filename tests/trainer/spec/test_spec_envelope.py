"""The job envelope (what a request holds beside its spec) is named once, by its model."""

from trainer.spec import EvalJobRequest, EvalSpec, TrainJobRequest, TrainSpec
from trainer.spec.jobs import ENVELOPE_FIELDS, without_envelope


def test_envelope_fields_are_what_a_request_adds_to_its_spec():
    assert set(TrainJobRequest.model_fields) - set(TrainSpec.model_fields) == ENVELOPE_FIELDS
    assert set(EvalJobRequest.model_fields) - set(EvalSpec.model_fields) == ENVELOPE_FIELDS


def test_without_envelope_keeps_only_spec_fields():
    body = {"kind": "train", "priority": 3, "metadata": {"a": "b"}, "total_steps": 2}
    assert without_envelope(body) == {"total_steps": 2}
