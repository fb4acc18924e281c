"""Guard rails the operators set (``guards:`` in the config): immutable tags, freeze windows, promotion paths.

These are the rules as data, with the questions both sides ask of them: the bot at the
acknowledgement (from what regops knows) and the worker right before it writes (against the
registry, under the reference lock, which is the check that cannot be raced).

Globs are matched with :func:`~workers.kernel.config.patterns.glob_match`: ``images`` against the
image name, ``tags`` against the tag, ``registries`` against the registry's config name.  Freeze
windows recur by a cron expression (croniter, which rq itself depends on) in their time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from workers.kernel.config.patterns import matches_any


def _frozen(values: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise TypeError(f"{name} must be a sequence of strings, not a string")
    return tuple(values)


@dataclass(frozen=True)
class Scope:
    """Which targets a rule covers: every glob list must match."""

    images: tuple[str, ...] = ("**",)
    tags: tuple[str, ...] = ("*",)
    registries: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        for name in ("images", "tags", "registries"):
            object.__setattr__(self, name, _frozen(getattr(self, name), f"Scope.{name}"))

    def covers(self, registry: str, image: str, tag: str) -> bool:
        return (matches_any(registry, self.registries) and matches_any(image, self.images)
                and matches_any(tag, self.tags))


@dataclass(frozen=True)
class ImmutableRule:
    """A tag this covers, once it exists in the registry, never points at another digest through regops."""

    scope: Scope
    index: int = 0
    """Its place under ``guards.immutable`` (how refusals and ``can-i`` name it)."""

    @property
    def name(self) -> str:
        return f"guards.immutable[{self.index}]"


@dataclass(frozen=True)
class FreezeWindow:
    """A recurring freeze: from each time ``cron`` fires (in ``timezone``) for ``duration`` seconds."""

    name: str
    cron: str
    duration: int
    reason: str
    scope: Scope = Scope()
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.cron):
            raise ValueError(f"FreezeWindow.cron: not a cron expression: {self.cron!r}")
        if self.duration <= 0:
            raise ValueError("FreezeWindow.duration must be positive")
        ZoneInfo(self.timezone)  # raises for an unknown zone

    def active(self, now: float) -> tuple[float, float] | None:
        """(start, end) of the window ``now`` is in, or None when none is open."""
        zone = ZoneInfo(self.timezone)
        # From a second past `now`, so a window starting exactly now counts (croniter's start is exclusive).
        moment = datetime.fromtimestamp(now, zone) + timedelta(seconds=1)
        start = croniter(self.cron, moment).get_prev(datetime).timestamp()
        end = start + self.duration
        return (start, end) if start <= now < end else None

    def next_start(self, now: float) -> float:
        """When the window opens next after ``now``."""
        moment = datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        return float(croniter(self.cron, moment).get_next(datetime).timestamp())


@dataclass(frozen=True)
class PromotionPath:
    """Stages in order (``dev``, ``staging``, ``prod``): a stage after the first is written only by a
    ``promote`` from the stage before it."""

    stages: tuple[str, ...]
    scope: Scope = Scope()
    index: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", _frozen(self.stages, "PromotionPath.stages"))
        if len(self.stages) < 2 or len(set(self.stages)) != len(self.stages):
            raise ValueError("PromotionPath.stages: at least two stages, each once")

    @property
    def name(self) -> str:
        return f"guards.promotion_paths[{self.index}]"

    def source_of(self, stage: str) -> str | None:
        """The stage ``stage`` must be promoted from; None when it is the first stage or no stage of this path."""
        if stage not in self.stages:
            return None
        position = self.stages.index(stage)
        return self.stages[position - 1] if position else None


@dataclass(frozen=True)
class Guards:
    """Everything under ``guards:``; empty by default (no rails)."""

    immutable: tuple[ImmutableRule, ...] = ()
    freeze_windows: tuple[FreezeWindow, ...] = ()
    promotion_paths: tuple[PromotionPath, ...] = ()

    def __post_init__(self) -> None:
        for name in ("immutable", "freeze_windows", "promotion_paths"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def immutable_rule(self, registry: str, image: str, tag: str) -> ImmutableRule | None:
        """The first immutable rule covering the tag, or None."""
        return next((rule for rule in self.immutable if rule.scope.covers(registry, image, tag)), None)

    def open_windows(self, now: float, registry: str, image: str, tag: str) -> list[tuple[FreezeWindow, float]]:
        """The windows covering the target that are open at ``now``, each with when it ends."""
        found = []
        for window in self.freeze_windows:
            if window.scope.covers(registry, image, tag):
                span = window.active(now)
                if span is not None:
                    found.append((window, span[1]))
        return found

    def path_for(self, registry: str, image: str, tag: str) -> PromotionPath | None:
        """The first promotion path whose scope covers the image and that has ``tag`` as a later stage."""
        return next((path for path in self.promotion_paths
                     if path.scope.covers(registry, image, tag) and path.source_of(tag) is not None), None)
