"""The ``limits`` section: how many commands one person may send a minute, and how many open jobs
one person and one Docker host may have.

Absent, the section (and each key in it) takes the defaults of :class:`Limits`; a limit set to
``off`` (or ``false``) is no limit.  ``exempt_roles`` must name roles defined under ``access.roles``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workers.kernel.config.model import Limits
from workers.kernel.config.problems import Problems, did_you_mean, join_names, kind

_COUNTS = {
    "commands_per_minute": "commands",
    "queued_per_user": "jobs",
    "queued_per_host": "jobs",
}
_KEYS = (*_COUNTS, "exempt_roles")
OFF = "off"
"""The word that turns a limit off."""


def parse_limits(problems: Problems, value: object, roles: Sequence[str] | None) -> Limits:
    """The limits; ``roles`` are the role names defined under ``access.roles`` (None if unreadable)."""
    if value is None:
        return Limits()
    data = problems.mapping(value, "limits", required=(), optional=_KEYS)
    if data is None:
        return Limits()
    values: dict[str, Any] = {}
    for key, unit in _COUNTS.items():
        if key in data:
            ok, limit = _limit(problems, data[key], f"limits.{key}", unit)
            if ok:
                values[key] = limit
    if "exempt_roles" in data:
        exempt = _exempt_roles(problems, data["exempt_roles"], roles)
        if exempt is not None:
            values["exempt_roles"] = exempt
    return Limits(**values)


def _limit(problems: Problems, value: object, path: str, unit: str) -> tuple[bool, int | None]:
    """(True, the limit or None for ``off``), or (False, None) after noting the problem."""
    # YAML 1.1 (PyYAML) reads a bare `off` as false: both mean no limit.
    if value is False or value == OFF:
        return True, None
    hint = f"give a whole number of {unit}, at least 1, or `{OFF}` for no limit"
    if isinstance(value, bool) or not isinstance(value, int):
        # A string other than `off` may be a typo of it, or a number in quotes: say which is wanted.
        problems.add(path, f"must be a whole number or `{OFF}`; got {kind(value)}; {hint}")
        return False, None
    if value < 1:
        problems.add(path, f"must be at least 1; got {value}; {hint}")
        return False, None
    return True, value


def _exempt_roles(problems: Problems, value: object, roles: Sequence[str] | None) -> tuple[str, ...] | None:
    path = "limits.exempt_roles"
    if not isinstance(value, list):
        problems.add(path, f"must be a list of role names, like [admin] ([] for nobody); got {kind(value)}")
        return None
    names: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            problems.add(f"{path}[{index}]", f"must be a role name defined under access.roles; got {kind(item)}")
            continue
        if roles is not None and item not in roles:
            problems.add(
                f"{path}[{index}]",
                f"no role `{item}` under access.roles; {did_you_mean(item, roles)}defined roles: {join_names(roles)}",
            )
            continue
        names.append(item)
    return tuple(names) if len(names) == len(value) else None


def defined_roles(access: object) -> list[str] | None:
    """The role names an ``access`` section defines (broken roles too), or None when unreadable."""
    if access is None:
        return []
    if not isinstance(access, Mapping):
        return None
    roles = access.get("roles")
    if roles is None:
        return []
    if not isinstance(roles, Mapping):
        return None
    return [name for name in roles if isinstance(name, str)]
