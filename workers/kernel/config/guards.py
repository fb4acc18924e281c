"""The ``guards`` section: immutable tags, recurring freeze windows and promotion paths.

```yaml
guards:
  immutable:
    - {images: ["*"], tags: ["v[0-9]*"]}
  freeze_windows:
    - {name: weekend, cron: "0 18 * * FRI", duration: 62h, reason: "no weekend deploys", timezone: Europe/Paris}
  promotion_paths:
    - {images: ["*"], stages: [dev, staging, prod]}
```

Each entry may narrow what it covers with ``images``, ``tags`` and ``registries`` globs (all by
default; ``registries`` must match configured names).  Cron expressions are checked with croniter,
time zones against the zone database; every problem names its key path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from workers.kernel.config.patterns import check_named_globs, read_globs
from workers.kernel.config.problems import Problems, kind, name_problem
from workers.kernel.errors import UsageError
from workers.kernel.guards import FreezeWindow, Guards, ImmutableRule, PromotionPath, Scope
from workers.kernel.references import check_tag

_SCOPE_KEYS = (("images", "image globs"), ("tags", "tag globs"), ("registries", "registry names or globs"))
_SECTIONS = ("immutable", "freeze_windows", "promotion_paths")
CRON_HINT = ("five fields, minute hour day-of-month month day-of-week, like `0 18 * * FRI` "
             "(Fridays at 18:00), or `@daily`")


def parse_guards(problems: Problems, value: object, registries: Sequence[str] | None) -> Guards:
    """The guard rails; ``registries`` are the configured registry names (None if unreadable)."""
    if value is None:
        return Guards()
    data = problems.mapping(value, "guards", required=(), optional=_SECTIONS)
    if data is None:
        return Guards()
    immutable = [_immutable(problems, item, f"guards.immutable[{index}]", registries, index)
                 for index, item in enumerate(_entries(problems, data, "immutable"))]
    windows = [_window(problems, item, f"guards.freeze_windows[{index}]", registries)
               for index, item in enumerate(_entries(problems, data, "freeze_windows"))]
    paths = [_path(problems, item, f"guards.promotion_paths[{index}]", registries, index)
             for index, item in enumerate(_entries(problems, data, "promotion_paths"))]
    names = [window.name for window in windows if window is not None]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.add("guards.freeze_windows", f"two windows are named `{name}`; give each its own name")
    return Guards(immutable=tuple(r for r in immutable if r is not None),
                  freeze_windows=tuple(w for w in windows if w is not None),
                  promotion_paths=tuple(p for p in paths if p is not None))


def _entries(problems: Problems, data: Mapping[str, Any], key: str) -> list[object]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(f"guards.{key}", f"must be a list of mappings; got {kind(value)}")
        return []
    return value


def _scope(problems: Problems, data: Mapping[str, Any], path: str, registries: Sequence[str] | None) -> Scope:
    globs = read_globs(problems, data, path, _SCOPE_KEYS)
    if "registries" in globs:
        check_named_globs(problems, globs["registries"], f"{path}.registries", registries, "registry")
    return Scope(**globs)


def _immutable(problems: Problems, value: object, path: str, registries: Sequence[str] | None,
               index: int) -> ImmutableRule | None:
    data = problems.mapping(value, path, required=("tags",), optional=("images", "registries"))
    if data is None:
        return None
    before = len(problems.items)
    scope = _scope(problems, data, path, registries)
    return ImmutableRule(scope=scope, index=index) if len(problems.items) == before else None


def _window(problems: Problems, value: object, path: str, registries: Sequence[str] | None) -> FreezeWindow | None:
    data = problems.mapping(value, path, required=("name", "cron", "duration", "reason"),
                            optional=("images", "tags", "registries", "timezone"))
    if data is None:
        return None
    before = len(problems.items)
    name = problems.string(data.get("name"), f"{path}.name", "a name for the window, like `weekend`") \
        if "name" in data else None
    if name is not None and (problem := name_problem(name)) is not None:
        problems.add(f"{path}.name", problem)
    cron = problems.string(data.get("cron"), f"{path}.cron", CRON_HINT) if "cron" in data else None
    if cron is not None and not croniter.is_valid(cron):
        problems.add(f"{path}.cron", f"`{cron}` is not a cron expression; give {CRON_HINT}")
    duration = problems.duration(data["duration"], f"{path}.duration") if "duration" in data else None
    reason = problems.string(data.get("reason"), f"{path}.reason", "why nothing ships then") \
        if "reason" in data else None
    zone = "UTC"
    if "timezone" in data:
        zone = problems.string(data["timezone"], f"{path}.timezone", "a zone like `UTC` or `Europe/Paris`") or "UTC"
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.add(f"{path}.timezone", f"`{zone}` is not a known time zone; give one like `UTC`, "
                         "`Europe/Paris` or `America/New_York`")
    scope = _scope(problems, data, path, registries)
    if len(problems.items) != before or None in (name, cron, duration, reason):
        return None
    assert name is not None and cron is not None and duration is not None and reason is not None
    return FreezeWindow(name=name, cron=cron, duration=duration, reason=reason, scope=scope, timezone=zone)


def _path(problems: Problems, value: object, path: str, registries: Sequence[str] | None,
          index: int) -> PromotionPath | None:
    data = problems.mapping(value, path, required=("stages",), optional=("images", "registries"))
    if data is None:
        return None
    before = len(problems.items)
    stages = problems.strings(data["stages"], f"{path}.stages", "tags, in order, like [dev, staging, prod]") \
        if "stages" in data else None
    if stages is not None:
        for position, stage in enumerate(stages):
            try:
                check_tag(stage)
            except UsageError as exc:
                problems.add(f"{path}.stages[{position}]", exc.user_message)
        if len(stages) < 2:
            problems.add(f"{path}.stages", "needs at least two stages, like [staging, prod]")
        for stage in sorted({s for s in stages if stages.count(s) > 1}):
            problems.add(f"{path}.stages", f"`{stage}` is given twice; each stage comes once")
    if "tags" in data:  # not allowed by the mapping check; the stages are the tags
        return None
    scope = _scope(problems, data, path, registries)
    if stages is None or len(problems.items) != before:
        return None
    return PromotionPath(stages=stages, scope=Scope(images=scope.images, tags=stages, registries=scope.registries),
                         index=index)
