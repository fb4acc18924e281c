"""The guard rails at the acknowledgement: a write a freeze, an immutable tag or a promotion path forbids is
refused at once, before anything is queued.

This is the early answer, from what regops knows: its freezes, the config's windows and its own tag
history (which may be stale).  The worker checks again against the registry right before it writes,
under the reference lock (:mod:`workers.guard_checks` and the registry jobs), which is the check that
cannot be raced; so where this side cannot know (a promote whose source digest regops has never seen),
it lets the command queue.

The rails, in the order they are asked: a freeze (from Slack or a window of the config) of the target;
an immutable rule covering a tag regops knows exists (unless the write puts back the digest it already
has); a promotion path that makes the target a later stage (a push there is refused; a promote must come
from the stage before it, in the same image and registry).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from bot.core.text import Text, code, join, plain, t, user, user_input
from workers.kernel.config import Config
from workers.kernel.freezes import Frozen, frozen, read_freezes
from workers.kernel.guards import PromotionPath
from workers.kernel.history import TagChange, current_digest
from workers.kernel.times import iso_time

HistoryReader = Callable[[str], list[TagChange]]
"""A tag's known changes, newest first, by full reference."""

FREEZE_RAIL = "freeze"
IMMUTABLE_RAIL = "immutable"
PATH_RAIL = "promotion_path"


@dataclass(frozen=True)
class Write:
    """What a command would write: ``tag`` of ``image`` (the name within the registry's namespace) in the
    configured registry ``registry``, whose full reference is ``reference``; ``tag`` is "" for a write by digest.

    ``digest`` is what the tag would point at afterwards, when it is known before the job runs (a rollback's
    digest, a pinned promote's, or the source tag's digest as regops' history knows it); ``source_*`` name a
    promote's FROM (``source_tag`` None when FROM is a bare digest).
    """

    action: str
    registry: str
    image: str
    tag: str
    reference: str
    digest: str | None = None
    source_registry: str | None = None
    source_image: str | None = None
    source_tag: str | None = None


@dataclass(frozen=True)
class GuardRefusal:
    """Why a rail refuses a write: ``rail`` (:data:`FREEZE_RAIL`, …), ``rule`` as the audit trail names it
    (``freeze F3``, ``window weekend``, ``guards.immutable[0]``, ``guards.promotion_paths[0]``), the text."""

    rail: str
    rule: str
    text: Text


def until(at: float) -> str:
    """An end as refusals and lists show it: ``2026-12-24T18:00Z`` (UTC, to the minute)."""
    return iso_time(at)[:16] + "Z"


def frozen_text(found: list[Frozen]) -> Text:
    """``frozen by freeze F3 (@ann): release week; until 2026-12-24T18:00Z``, each freeze named, joined."""
    parts = []
    for item in found:
        by = t(" ({})", user(item.who)) if item.who else Text()
        parts.append(t("frozen by {}{}: {}; until {}", plain(item.name), by, user_input(item.reason),
                       code(until(item.ends))))
    return join("; and ", parts)


def path_text(path: PromotionPath) -> Text:
    return plain(" → ".join(path.stages))


class GuardRails:
    def __init__(self, config: Config, connection: redis.Redis, history: HistoryReader,
                 clock: Callable[[], float] = time.time) -> None:
        self._guards = config.guards
        self._redis = connection
        self._history = history
        self._clock = clock

    def check(self, write: Write) -> GuardRefusal | None:
        """The first rail that refuses ``write``, or None when none does (as far as regops knows)."""
        return self.freeze(write) or self.immutable(write) or self.path(write)

    def every(self, write: Write) -> list[GuardRefusal]:
        """Every rail that refuses ``write`` (what a break-glass override must name, or cannot pass)."""
        return [refusal for refusal in (self.freeze(write), self.immutable(write), self.path(write))
                if refusal is not None]

    def freeze(self, write: Write) -> GuardRefusal | None:
        found = frozen(self._guards, read_freezes(self._redis), self._clock(), write.registry, write.image,
                       write.tag)
        if not found:
            return None
        return GuardRefusal(FREEZE_RAIL, ", ".join(item.name for item in found), frozen_text(found))

    def immutable(self, write: Write) -> GuardRefusal | None:
        if not write.tag:
            return None
        rule = self._guards.immutable_rule(write.registry, write.image, write.tag)
        if rule is None:
            return None
        current = current_digest(self._history(write.reference))
        if current is None:
            return None  # not known to exist: the worker checks against the registry
        if write.action in ("promote", "rollback") and write.digest in (None, current):
            return None  # the same digest again is a no-op; an unknown one is the worker's to check
        return GuardRefusal(IMMUTABLE_RAIL, rule.name, t("tag {} is immutable ({}): it points at {} and stays there",
                                                         code(write.tag), plain(rule.name), code(current)))

    def path(self, write: Write) -> GuardRefusal | None:
        if not write.tag or write.action not in ("push", "promote"):
            return None
        path = self._guards.path_for(write.registry, write.image, write.tag)
        if path is None:
            return None
        source = path.source_of(write.tag) or ""
        reached = t("{} is reached only from {}: {} ({})", code(write.tag), code(source), path_text(path),
                    plain(path.name))
        if write.action == "push":
            return GuardRefusal(PATH_RAIL, path.name, t("{}; promote it instead: {}", reached,
                                                        code(f"promote {write.image} {source} {write.tag}")))
        same_place = write.source_registry == write.registry and write.source_image == write.image
        if same_place and write.source_tag == source:
            return None
        return GuardRefusal(PATH_RAIL, path.name, t("{}; promote from there: {}", reached,
                                                    code(f"promote {write.image} {source} {write.tag}")))
