"""Checkpoints: local and sharded files, remote URIs, safe loading, hub pushes."""
