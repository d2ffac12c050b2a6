"""CLI command groups; `dgpo.cli` composes them into one `dgpo` entry point."""
