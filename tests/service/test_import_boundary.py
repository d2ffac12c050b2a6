"""The API process must start small: importing the app never imports torch."""

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_importing_service_app_does_not_import_torch():
    code = "import service.app, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
