"""`checkpoint.push_to_hub`: each complete checkpoint's model goes to a Hugging Face Hub repo.

One commit per checkpoint at the repo's root, so the repo loads with `from_pretrained`
and its history holds every pushed step. The trainer state and the manifest stay local
(they are for resuming, and the state is the size of the optimizer). A failed push is an
event, not a failed run: the checkpoint is safe on disk and the next one pushes again.
`huggingface_hub` (a transformers dependency) reads `HF_ENDPOINT` and `HF_TOKEN`.
"""

from huggingface_hub import HfApi
from huggingface_hub.errors import HTTPError

from trainer.checkpoints.local import MANIFEST, TRAINER_STATE
from trainer.reporting.callbacks import Callback, CheckpointInfo
from trainer.spec.train import HubPushConfig


class HubPush(Callback):
    """Uploads on `on_checkpoint` (rank 0 only), reporting each push to `events`."""

    def __init__(self, cfg: HubPushConfig, events: Callback) -> None:
        self.cfg = cfg
        self.events = events
        self.created = False

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        api = HfApi()
        try:
            if not self.created:
                api.create_repo(self.cfg.repo_id, private=self.cfg.private, exist_ok=True)
                self.created = True
            commit = api.upload_folder(
                repo_id=self.cfg.repo_id,
                folder_path=info.uri,
                commit_message=f"dgpo checkpoint step {info.step}",
                ignore_patterns=[TRAINER_STATE, MANIFEST],
            )
        except (HTTPError, OSError) as exc:  # HfHubHTTPError is both
            self.events.on_event(
                "hub_push_failed", f"step {info.step} to {self.cfg.repo_id}: {exc}"
            )
            return
        self.events.on_event("hub_push", f"step {info.step} pushed: {commit.commit_url}")
