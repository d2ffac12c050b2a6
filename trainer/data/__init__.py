"""Training data: prompt rows and token ids, built-in names, the tiny offline model."""
