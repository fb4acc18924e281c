"""Run one cross-registry copy in a process of its own and report its peak memory (for a test).

``python -m tests.support.copy_memory SOURCE_URL SOURCE_USER SOURCE_REPO REF TARGET_URL TARGET_USER
TARGET_REPO TAG``, the passwords in ``SOURCE_PASSWORD`` and ``TARGET_PASSWORD``; prints one JSON
line: the copy's result and ``max_rss_mb``, the process's peak resident set.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from workers.kernel.secrets import Secret
from workers.registry.client import RegistryClient
from workers.registry.copy import copy_image


def peak_rss_kb() -> int:
    """This process's own peak resident set (VmHWM).

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries that across fork and exec, so a child of
    a big parent (pytest after a thousand tests) reports at least the parent's size.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str]) -> int:
    source_url, source_user, source_repo, ref, target_url, target_user, target_repo, tag = argv
    with RegistryClient(source_url, source_user, Secret(os.environ["SOURCE_PASSWORD"])) as source, \
            RegistryClient(target_url, target_user, Secret(os.environ["TARGET_PASSWORD"])) as target:
        result = copy_image(source, source_repo, ref, target, target_repo, tag)
    print(json.dumps({**dataclasses.asdict(result), "max_rss_mb": peak_rss_kb() / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
