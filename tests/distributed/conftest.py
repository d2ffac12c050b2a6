"""The worker e2e fixtures (real `dgpo worker` processes, tiny job requests), shared."""

from tests.workers.conftest import start_worker, tiny_assets, train_request

__all__ = ["start_worker", "tiny_assets", "train_request"]
