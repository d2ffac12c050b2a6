"""Checkpoints under an fsspec URI: uploaded manifest-last, resumed from the newest valid."""

import shutil
import uuid
from pathlib import Path

import fsspec

from tests.trainer.loop_specs import toy_spec
from trainer.checkpoints.local import MANIFEST
from trainer.checkpoints.remote import staging_dir
from trainer.reporting.callbacks import Callback
from trainer.rl.loop import train


class Events(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def on_event(self, kind: str, message: str) -> None:
        self.events.append((kind, message))


def test_uri_checkpoints_upload_prune_and_resume_past_an_interrupted_upload(
    tiny_model_dir: str, toy_dataset: str
) -> None:
    uri = f"memory://runs/{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    root = uri.removeprefix("memory://")
    spec = toy_spec(tiny_model_dir, toy_dataset, total_steps=2, checkpoint={"keep_last": 1})

    first = train(spec, output_dir=uri, resume=False)
    assert first.checkpoint is not None and first.checkpoint.uri == f"{uri}/step-00000002"
    listed = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"/{root}", detail=False))
    assert listed == ["step-00000002"]  # step 1 pruned remotely
    uploaded = {p.split("step-00000002/", 1)[1] for p in fs.find(f"/{root}/step-00000002")}
    assert uploaded == {*first.checkpoint.files, MANIFEST}

    # An upload cut short before its manifest: files present, manifest missing.
    partial = f"/{root}/step-00000003"
    fs.put_file(str(Path(tiny_model_dir) / "config.json"), f"{partial}/config.json")
    shutil.rmtree(staging_dir(uri))  # resume must download, not reuse the local copy

    events = Events()
    longer = spec.model_copy(update={"total_steps": 3})
    second = train(longer, output_dir=uri, callbacks=events, resume=True)
    assert (second.start_step, second.final_step) == (2, 3)
    assert ("checkpoint_rejected", f"{uri}/step-00000003 fails its manifest; not resumed") in (
        events.events
    )
    assert second.checkpoint is not None and second.checkpoint.uri == f"{uri}/step-00000003"
    assert fs.exists(f"{partial}/{MANIFEST}") and fs.exists(f"{partial}/model.safetensors")
    shutil.rmtree(staging_dir(uri))
