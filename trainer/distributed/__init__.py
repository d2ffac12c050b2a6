"""Multi-process training: the torchrun group, per-rank behaviour, the launch command."""
