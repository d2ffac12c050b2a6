"""A checkpoint is data: a planted pickle in a run's own directory never executes.

The manifest only proves the files are the ones listed, and whoever plants files can
write a matching manifest; so loading must refuse any object that is not plain data.
"""

import pickle
import shutil
from pathlib import Path

import pytest
import torch

from tests.trainer.loop_specs import toy_spec
from tests.trainer.planted import Payload, reseal
from trainer.checkpoints.local import TRAINER_STATE, list_checkpoints
from trainer.checkpoints.sharded import OPTIMIZER_DIR
from trainer.rl.loop import train


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir: str, toy_dataset: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    spec = toy_spec(tiny_model_dir, toy_dataset, total_steps=1, checkpoint={"keep_last": 1})
    out = tmp_path_factory.mktemp("run")
    train(spec, output_dir=str(out), resume=False)
    return spec, out


def _copy(run: Path, tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out, list_checkpoints(out)[-1]


def test_planted_trainer_state_pickle_is_refused_and_never_runs(
    finished_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    spec, run = finished_run
    out, checkpoint = _copy(run, tmp_path)
    marker = tmp_path / "pwned"
    torch.save({"step": 1, "evil": Payload(marker)}, checkpoint / TRAINER_STATE)
    reseal(checkpoint)
    with pytest.raises(pickle.UnpicklingError, match="other than plain data"):
        train(spec, output_dir=str(out), resume=True)
    assert not marker.exists()


def test_planted_optimizer_metadata_pickle_is_refused_and_never_runs(
    finished_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    spec, run = finished_run
    out, checkpoint = _copy(run, tmp_path)
    marker = tmp_path / "pwned"
    (checkpoint / OPTIMIZER_DIR).mkdir()
    (checkpoint / OPTIMIZER_DIR / ".metadata").write_bytes(pickle.dumps(Payload(marker)))
    reseal(checkpoint)
    with pytest.raises(RuntimeError, match="other than plain data"):
        train(spec, output_dir=str(out), resume=True)
    assert not marker.exists()
