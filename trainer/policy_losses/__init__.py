"""Policy-loss families, one module each; `trainer.losses` holds the registry and entry point."""
