"""Optional py-spy profile of `regops serve` while a benchmark phase runs (``ack.py --profile DIR``).

py-spy samples every gunicorn worker (``--subprocesses``) without pausing them
(``--nonblocking``), only threads that hold the GIL (``--gil``: where the CPU goes in
Python), and writes collapsed stacks (``--format raw``).  :func:`summarize` splits the
samples between the relay thread and request handling and lists the heaviest functions.
Install it with ``.venv/bin/pip install py-spy``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_WRAPPERS = ("(threading.py)", "(concurrent/futures/thread.py)", "ThreadWorker.handle (gunicorn/workers/gthread.py)")
"""Frames every request-handling stack starts with; left out of the listing."""
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*)\)$")


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def start(pid: int, output: Path, duration: float, rate: int = 100) -> subprocess.Popen[bytes] | None:
    executable = py_spy()
    if executable is None:
        print("   (no py-spy: .venv/bin/pip install py-spy; profiling skipped)")
        return None
    argv = [executable, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--gil",
            "--rate", str(rate), "--format", "raw", "--nolineno", "--duration", str(int(duration)),
            "--output", str(output)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    if process is None:
        return
    try:
        _out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        _out, err = process.communicate(timeout=10)
    if process.returncode not in (0, None):
        print(f"   (py-spy exited with {process.returncode}: {err.decode(errors='replace')[-500:]})")


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['func']} ({path})"


def summarize(path: Path, top: int = 18) -> list[str]:
    """Lines describing where the sampled CPU went."""
    if not path.exists():
        return ["(no profile written)"]
    relay = requests = other = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        joined = ";".join(frames)
        if "_run_relay" in joined:
            relay += count
            continue
        if "handle_request" not in joined and "handle (" not in joined:
            other += count
            continue
        requests += count
        names = [name for name in map(_short, frames) if not name.endswith(_WRAPPERS)]
        for name in set(names):
            inclusive[name] += count
        if names:
            own[names[-1]] += count
    total = relay + requests + other
    if total == 0:
        return ["(no samples)"]
    out = [(f"samples holding the GIL: {total}: request handling {requests / total:.0%}, "
            f"relay thread {relay / total:.0%}, other (gunicorn loop, accept, ...) {other / total:.0%}"),
           f"request handling, inclusive share of its samples (top {top}):"]
    for name, count in inclusive.most_common(top):
        out.append(f"  {count / requests:6.1%}  {name}")
    out.append("request handling, self time (top 10):")
    for name, count in own.most_common(10):
        out.append(f"  {count / requests:6.1%}  {name}")
    return out
