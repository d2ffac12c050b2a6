"""`python -m dgpo` runs the `dgpo` command (useful where the console script is not on PATH)."""

from dgpo.cli import app

app(prog_name="dgpo")
