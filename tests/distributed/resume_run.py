"""`train` as a torchrun group, optionally stopped at a step boundary; for the resume test.

    python -m torch.distributed.run --nproc_per_node N -m tests.distributed.resume_run \
        SPEC OUT {straight,stop-after-K,resume}

Each rank calls `train`; rank 0's `StopAfter` decides for the group, as a supervisor's stop
file does.
"""

import argparse
from pathlib import Path

from tests.trainer.loop_specs import StopAfter
from trainer.cli import load_train_spec
from trainer.reporting.callbacks import Callback
from trainer.rl.loop import train

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", type=Path)
    parser.add_argument("out")
    parser.add_argument("mode", help="`straight`, `stop-after-K` or `resume`")
    args = parser.parse_args()
    stop = args.mode.removeprefix("stop-after-")
    callbacks = StopAfter(int(stop)) if stop.isdigit() else Callback()
    train(
        load_train_spec(args.spec),
        output_dir=args.out,
        callbacks=callbacks,
        resume=args.mode == "resume",
    )
