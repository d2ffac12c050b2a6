"""Verifiable rewards: the registry, math grading, and magnitude-aware equality."""
