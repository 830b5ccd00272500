"""The coverage table (``docs/coverage.md``) is generated from the package and the installed SDKs: in step."""

import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "docs" / "coverage.py"


def test_coverage_table_is_up_to_date():
    done = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
