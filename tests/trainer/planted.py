"""What an attacker plants in a run directory: a code-running pickle, a matching manifest."""

import hashlib
import json
import os
from pathlib import Path

from trainer.checkpoints.local import MANIFEST


class Payload:
    """Unpickling it runs `os.system`: what an attacker plants."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def reseal(checkpoint: Path) -> None:
    """Rewrite the manifest so it matches the planted files (the attacker can too)."""
    data = json.loads((checkpoint / MANIFEST).read_text())
    data["files"] = {
        str(p.relative_to(checkpoint)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(checkpoint.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    (checkpoint / MANIFEST).write_text(json.dumps(data))
