"""The worker's `--log-format json`: every line an object a log shipper can read, no secret in any form.

The masker itself, and both sides' logging set-up, are tested in tests/unit/test_secrets.py and
tests/unit/test_logs.py; this is the worker process as it starts.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.parse
from pathlib import Path

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_json_log_lines_from_a_worker_that_cannot_start() -> None:
    redis_password = "rp/wörd+" + "x" * 8
    redis_url = f"redis://:{urllib.parse.quote(redis_password, safe='')}@127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        [sys.executable, "-m", "workers", "--host", "build-1", "--config", str(ROOT / "deploy/regops.example.yaml"),
         "--log-format", "json", "--log-level", "DEBUG"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url,
             "REGISTRY_PASSWORD": "pw-never-logged"})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any("Redis unreachable" in line["message"] for line in lines)
    for secret in ("pw-never-logged", redis_password):
        for form in (secret, json.dumps(secret)[1:-1], urllib.parse.quote(secret, safe=""),
                     base64.b64encode(secret.encode()).decode()[:8]):
            assert form not in output, form
