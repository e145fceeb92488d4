"""The layering the project promises: the API process never loads Scrapy or Twisted."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_api_app_loads_without_scrapy(sqlite_url):
    code = (
        "import sys\n"
        "from api.app import create_app\n"
        "from api.config import Config\n"
        "create_app(Config.from_env())\n"
        "loaded = sorted(m for m in ('scrapy', 'twisted') if m in sys.modules)\n"
        "print(','.join(loaded) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                         env={"DATABASE_URL": sqlite_url, "PATH": "/usr/bin:/bin", "API_RUN_DISPATCHER": "0"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "none"
