"""Evaluation: scores (`scores`), run comparison (`compare`), and the eval runner (`runner`).

Kept empty on purpose: the API imports `compare` (numpy only) lazily, and must not pay
for the runner's torch and grading imports.
"""
