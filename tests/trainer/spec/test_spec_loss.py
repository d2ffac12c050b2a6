"""PolicyLossConfig rejects bad values with messages that name the field; the spec is torch-free."""

import subprocess
import sys

import pytest
from pydantic import ValidationError

from trainer.spec import AlgorithmConfig, PolicyLossConfig


@pytest.mark.parametrize(
    "field,value",
    [
        ("dgpo_n", 0),
        ("dgpo_m", 1.5),
        ("dgpo_m", -2),
        ("clip_ratio_low", 0.0),
        ("clip_ratio_high", 1.0),
        ("clip_ratio_c", 1.0),
        ("loss_agg_mode", "sum"),
    ],
)
def test_invalid_value_names_the_field(field, value):
    with pytest.raises(ValidationError) as raised:
        PolicyLossConfig(**{field: value})
    assert field in str(raised.value)


def test_unknown_loss_name_lists_the_known_ones():
    with pytest.raises(ValidationError) as raised:
        PolicyLossConfig(name="ppo")
    message = str(raised.value)
    assert "name" in message and "'dgpo'" in message and "'gspo'" in message


@pytest.mark.parametrize(
    "name,recipe",
    [
        ("gspo", {"clip_ratio_low": 3e-4, "clip_ratio_high": 4e-4}),
        ("gspo", {"loss_agg_mode": "seq-mean-token-mean"}),
        ("sapo", {"loss_agg_mode": "seq-mean-token-mean", "sapo_tau_neg": 1.05}),
        ("gppo", {"clip_ratio_c": 10.0}),
        ("ce_gppo", {"clip_ratio_c": 10.0, "ce_gppo_beta1": 0.75}),
        ("cispo", {"clip_ratio_low": 10.0}),
        ("grpo", {"clip_ratio_c": 3.0, "loss_agg_mode": "token-mean"}),
    ],
)
def test_each_loss_gets_its_recipe_for_unset_keys_and_user_values_win(name, recipe):
    cfg = PolicyLossConfig.model_validate({"name": name})
    assert {key: getattr(cfg, key) for key in recipe} == recipe
    key, value = next(iter(recipe.items()))
    changed = {"loss_agg_mode": "token-mean"} if key == "loss_agg_mode" else {key: value / 2}
    user = PolicyLossConfig.model_validate({"name": name, **changed})
    assert getattr(user, key) == changed[key]


def test_only_cispo_may_drop_the_lower_bound():
    assert PolicyLossConfig(name="cispo", clip_ratio_low=10.0).clip_ratio_low == 10.0
    with pytest.raises(ValidationError, match="only cispo"):
        PolicyLossConfig(name="dgpo", clip_ratio_low=1.0)


def test_dapo_defaults_to_clip_higher_unless_set():
    assert PolicyLossConfig(name="dapo").clip_ratio_high == 0.28
    assert PolicyLossConfig(name="dapo", clip_ratio_high=0.3).clip_ratio_high == 0.3
    assert PolicyLossConfig(name="grpo").clip_ratio_high == 0.2


def test_the_dapo_recipe_is_dapo_overlong_shaping_and_dynamic_sampling_unless_set():
    """verl's DAPO recipe: L_cache 4096 of 20480 response tokens (a fifth), penalty factor
    1, groups filtered on accuracy for up to 10 generation batches."""
    from trainer.spec import TrainSpec

    def algorithm(loss: str, **overrides: object) -> AlgorithmConfig:
        return TrainSpec.model_validate(
            {
                "model": {"path": "m"},
                "dataset": {"path": "d.jsonl"},
                "algorithm": {"policy_loss": {"name": loss}, **overrides},
                "rollout": {"max_response_tokens": 1000},
            }
        ).algorithm

    dapo = algorithm("dapo")
    assert (dapo.dynamic_sampling, dapo.max_resample_rounds) == (True, 9)
    assert (dapo.overlong_buffer_len, dapo.overlong_penalty_factor) == (200, 1.0)
    assert not dapo.overlong_filter
    assert dapo.policy_loss.clip_ratio_high == 0.28
    mine = algorithm("dapo", dynamic_sampling=False, overlong_buffer_len=0)
    assert (mine.dynamic_sampling, mine.overlong_buffer_len) == (False, 0)
    grpo = algorithm("grpo")
    assert (grpo.dynamic_sampling, grpo.overlong_buffer_len) == (False, 0)


def test_overlong_buffer_must_fit_the_response_length():
    from trainer.spec import TrainSpec

    spec = {
        "model": {"path": "m"},
        "dataset": {"path": "d.jsonl"},
        "algorithm": {"overlong_buffer_len": 65},
        "rollout": {"max_response_tokens": 64},
    }
    with pytest.raises(ValidationError, match="overlong_buffer_len"):
        TrainSpec.model_validate(spec)


def test_group_of_one_is_rejected_for_group_estimators():
    with pytest.raises(ValidationError, match="group_size"):
        AlgorithmConfig(group_size=1)


def test_importing_the_spec_does_not_import_torch():
    code = "import sys, trainer.spec; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
