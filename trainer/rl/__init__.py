"""The RL loop and its pieces: rollouts -> rewards -> advantages -> policy update."""
