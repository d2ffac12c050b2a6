"""Tests of optional extras run the real packages (`.ci/run` installs them): in CI a
missing one is a failure, elsewhere a skip."""

import importlib
import os
from types import ModuleType

import pytest


def require(module: str, extra: str) -> ModuleType:
    """`module`, imported; fails (CI) or skips the test when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"{module} is not installed: `pip install -e '.[{extra}]'` (as .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
