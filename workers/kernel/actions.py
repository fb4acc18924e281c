"""The catalogue of actions: every command a person may run, and which of them are jobs.

Shared by the grammar (which parses them), the config (whose roles and approvals name
them) and the workers (which run the job actions).  Names only; no behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum


class Action(StrEnum):
    """An action that a worker runs: on a Docker host, or against the registry's API."""

    PUSH = "push"
    PULL = "pull"
    TAG = "tag"
    LOGIN = "login"
    PROMOTE = "promote"
    DELETE = "delete"
    ROLLBACK = "rollback"
    TAGS = "tags"
    INSPECT = "inspect"


HOST_ACTIONS: tuple[str, ...] = ("push", "pull", "tag", "login")
"""Jobs that run on a Docker host, on that host's queue."""

REGISTRY_ACTIONS: tuple[str, ...] = ("promote", "delete", "rollback")
"""Jobs that change the registry over its API, on the registry queue (no Docker engine)."""

QUERY_ACTIONS: tuple[str, ...] = ("tags", "inspect")
"""Questions a registry worker answers (it holds the credentials); the answer goes to the asker alone."""

JOB_ACTIONS: tuple[str, ...] = (*HOST_ACTIONS, *REGISTRY_ACTIONS)
"""Actions that become a job with its own message in the channel."""

WORKER_ACTIONS: tuple[str, ...] = (*JOB_ACTIONS, *QUERY_ACTIONS)
"""Everything a worker runs."""

LOCKED_ACTIONS: frozenset[str] = frozenset({"push", "pull", "tag", *REGISTRY_ACTIONS})
"""Jobs that take the lock on their (target) reference while they run: one at a time per reference."""

TAG_WRITING_ACTIONS: tuple[str, ...] = ("push", "promote", "rollback", "delete")
"""Actions that change what a tag serves: what an approvals rule without ``actions`` protects."""

TASKS: Mapping[str, str] = {action.value: f"workers.tasks.{action.value}" for action in Action}
"""rq function paths by action: the only functions a regops worker will run."""

SELF_SERVICE: tuple[str, ...] = ("whoami", "can-i", "help")
"""Commands that only describe the bot and the user's own rights: open to every user."""

JOB_COMMANDS: tuple[str, ...] = ("status", "jobs", "cancel")
"""Commands about jobs: everyone may run them on their own jobs."""

READ_ACTIONS: tuple[str, ...] = (*QUERY_ACTIONS, "history")
"""Commands that only read the registry (or regops' record of it)."""

SUBSCRIBE = "subscribe"
"""The action that lets a person change what a channel is told of the registry's changes (admins by default:
a role must name it, or ``*``)."""

SUBSCRIPTION_COMMANDS: tuple[str, ...] = (SUBSCRIBE, "unsubscribe", "subscriptions")
"""Commands about the announcements a channel gets: ``subscribe`` and ``unsubscribe`` need the ``subscribe``
action; ``subscriptions`` only lists them."""

FREEZE = "freeze"
"""The action that lets a person start or end a change freeze (admins by default: a role must name it, or ``*``)."""

FREEZE_COMMANDS: tuple[str, ...] = (FREEZE, "unfreeze", "freezes")
"""Commands about change freezes: ``freeze`` and ``unfreeze`` need the ``freeze`` action; ``freezes`` only
lists them (and the config's freeze windows)."""

DECIDED_AS: Mapping[str, str] = {"unsubscribe": SUBSCRIBE, "unfreeze": FREEZE}
"""Commands decided as another action: removing a subscription needs what making one needs; so does ending
a freeze."""

MEMBER_COMMANDS: tuple[str, ...] = ("subscriptions", "freezes")
"""Commands open to everyone who has a role in the channel (any grant applies to them there): they only
read what regops itself keeps and show no secret."""

ACTIONS: tuple[str, ...] = (*JOB_ACTIONS, *READ_ACTIONS, *SELF_SERVICE, *JOB_COMMANDS, "hosts",
                            *SUBSCRIPTION_COMMANDS, *FREEZE_COMMANDS)
"""Every command, in the order help lists them; also every action a role may name."""

PROTECTABLE_ACTIONS: tuple[str, ...] = tuple(
    action for action in ACTIONS
    if action not in SELF_SERVICE and action not in READ_ACTIONS and action not in SUBSCRIPTION_COMMANDS
    and action not in FREEZE_COMMANDS)
"""Actions an approvals rule may protect (the self-service ones are open to everyone; reading the registry
changes nothing, so nothing waits for an approval to read it; a subscription is no job, and there is
nothing for an approval to hold; nor is a freeze, which only stops writes)."""

REGISTRY_QUEUE = "registry"
"""The name the registry queue goes by where a Docker host's name would stand (``hosts``, job records,
the queue ``regops.registry``); reserved, so no Docker host may be called this."""

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""What a configured registry or Docker host name looks like."""


def queue_of(action: str, host: str) -> str:
    """Where a job of ``action`` asked for Docker host ``host`` runs: the host, or the registry queue."""
    return host if action in HOST_ACTIONS else REGISTRY_QUEUE
