"""The worker e2e fixtures (real `dgpo worker` processes, tiny job requests), shared."""

from tests.workers.conftest import cpu_worker, start_worker, tiny_assets, train_request

__all__ = ["cpu_worker", "start_worker", "tiny_assets", "train_request"]
