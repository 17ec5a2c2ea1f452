"""The real `bosun` CLI in a subprocess, with its own $BOSUN_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def bosun(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOSUN_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "bosun.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
