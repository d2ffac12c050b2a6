"""The Postgres truth: models, engine, job lifecycle, every query, the hand-off to the broker."""
