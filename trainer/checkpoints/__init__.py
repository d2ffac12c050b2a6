"""Checkpoints: local and sharded files, remote URIs, safe loading, hub pushes."""

DISK_FULL = "no space left on device writing checkpoint"
"""Starts the error of a checkpoint that did not fit: the supervisor fails the job on it
at once (the same steps would fill the same disk again), without importing torch."""
