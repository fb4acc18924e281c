"""The catalogue of actions: every command a person may run, and which of them are jobs.

Shared by the grammar (which parses them), the config (whose roles and approvals name
them) and the workers (which run the job actions).  Names only; no behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum


class Action(StrEnum):
    """An action that becomes a job on a Docker host."""

    PUSH = "push"
    PULL = "pull"
    TAG = "tag"
    LOGIN = "login"


JOB_ACTIONS: tuple[str, ...] = tuple(action.value for action in Action)

TASKS: Mapping[str, str] = {action.value: f"workers.tasks.{action.value}" for action in Action}
"""rq function paths by action: the only functions a regops worker will run."""

SELF_SERVICE: tuple[str, ...] = ("whoami", "can-i", "help")
"""Commands that only describe the bot and the user's own rights: open to every user."""

JOB_COMMANDS: tuple[str, ...] = ("status", "jobs", "cancel")
"""Commands about jobs: everyone may run them on their own jobs."""

ACTIONS: tuple[str, ...] = (*JOB_ACTIONS, *SELF_SERVICE, *JOB_COMMANDS, "hosts")
"""Every command, in the order help lists them; also every action a role may name."""

PROTECTABLE_ACTIONS: tuple[str, ...] = tuple(action for action in ACTIONS if action not in SELF_SERVICE)
"""Actions an approvals rule may protect (the self-service ones are open to everyone)."""

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""What a configured registry or Docker host name looks like."""
