"""The worker's `--log-format json`: every line an object a log shipper can read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_json_log_lines_from_a_worker_that_cannot_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workers", "--host", "build-1", "--config", str(ROOT / "deploy/regops.example.yaml"),
         "--log-format", "json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
             "REGISTRY_PASSWORD": "pw-never-logged"})
    assert result.returncode != 0
    lines = [json.loads(line) for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any("Redis unreachable" in line["message"] for line in lines)
    assert "pw-never-logged" not in result.stdout + result.stderr
