"""Policy losses: the registry (`registry`), one module per family, and loss aggregation."""
