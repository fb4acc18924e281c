"""The configuration model: deeply immutable values, valid by construction where it matters.

Passwords are never in the config, only where the workers find them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from workers.kernel.actions import TAG_WRITING_ACTIONS
from workers.kernel.guards import Guards

EVERYONE = "*"
"""In a grant's ``users``: every user."""

ANY_NAME = "**"
"""The glob that matches every image name and every source (``*`` stops at ``/``)."""


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


def _frozen_strings(value: Collection[str], name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        # tuple("push") would silently become ("p", "u", "s", "h").
        raise TypeError(f"{name} must be a sequence of strings, not a string")
    return tuple(value)


@dataclass(frozen=True)
class RegistryConfig:
    """One registry; ``namespace`` is resolved (explicit, or the services hostname reversed)."""

    name: str
    server: str
    services_hostname: str
    namespace: str
    username: str
    password_env: str | None
    password_file: str | None
    api_url: str = ""
    """Where workers reach the registry's HTTP API when that is not ``server`` itself (a container
    network, a proxy); empty: ``http://SERVER`` for a loopback server, else ``https://SERVER``."""
    events_token_env: str | None = None
    """The variable holding the bearer token this registry's notifications carry (``serve`` reads it)."""
    events_token_file: str | None = None
    """Or the file holding it; neither: regops takes no notifications from this registry."""

    @property
    def events_enabled(self) -> bool:
        """Whether this registry reports its pushes and deletes to ``POST /registry/events``."""
        return bool(self.events_token_env or self.events_token_file)

    @property
    def password_source(self) -> str:
        """Where the workers read the password from, for summaries (never the value)."""
        if self.password_env:
            return f"environment variable {self.password_env}"
        return f"file {self.password_file}"


@dataclass(frozen=True)
class Role:
    """What a role allows: every glob list must match (``registries``/``hosts`` are config names).

    ``sources`` are globs for the local image a command starts from when it names one of its
    own (push's ``--source``, tag's SOURCE), matched as written but with an image ID as
    ``sha256:ID`` and a name without tag or digest as ``NAME:latest``.  By default any.
    """

    name: str
    actions: tuple[str, ...]
    images: tuple[str, ...] = (ANY_NAME,)
    tags: tuple[str, ...] = ("*",)
    registries: tuple[str, ...] = ("*",)
    hosts: tuple[str, ...] = ("*",)
    sources: tuple[str, ...] = (ANY_NAME,)

    def __post_init__(self) -> None:
        for name in ("actions", "images", "tags", "registries", "hosts", "sources"):
            object.__setattr__(self, name, _frozen_strings(getattr(self, name), f"Role.{name}"))


@dataclass(frozen=True)
class Grant:
    """Gives ``role`` to ``users`` (IDs or ``"*"``) and members of ``usergroups``, in ``channels``.

    Empty ``channels`` means any channel.  ``index`` is the grant's position in
    ``access.grants``, for messages and the audit trail; it is not part of a grant's
    identity (two grants with the same content are equal).
    """

    role: str
    users: tuple[str, ...] = ()
    usergroups: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    index: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        for name in ("users", "usergroups", "channels"):
            object.__setattr__(self, name, _frozen_strings(getattr(self, name), f"Grant.{name}"))


@dataclass(frozen=True, kw_only=True)
class ApprovalRule:
    """Requests matching ``actions``, ``images`` and ``tags`` wait for ``required`` approvals.

    ``actions`` defaults to every action that changes what a tag serves (push, promote,
    rollback, delete: :data:`~workers.kernel.actions.TAG_WRITING_ACTIONS`); pull and tag only
    change a Docker host, login and the read-only commands change nothing.  ``approvers`` are
    role names defined under ``access.roles`` or user IDs, in file order.  ``expires_in``
    is how many seconds a request stays open.  ``index`` is the rule's position in
    ``access.approvals``.

    ``roles`` are the role names defined where the rule belongs: they split the approvers
    into :attr:`approver_roles` and :attr:`approver_users`.  An :class:`AccessConfig` sets
    them on its rules; a rule rebuilt from stored fields has none until
    :meth:`with_roles` gives them, and meanwhile counts every approver as both.
    """

    index: int = 0
    images: tuple[str, ...] = (ANY_NAME,)
    tags: tuple[str, ...] = ("*",)
    actions: tuple[str, ...] = TAG_WRITING_ACTIONS
    approvers: tuple[str, ...]
    required: int = 1
    expires_in: int = 1800
    roles: frozenset[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("images", "tags", "actions", "approvers"):
            object.__setattr__(self, name, _frozen_strings(getattr(self, name), f"ApprovalRule.{name}"))
        if self.roles is not None:
            object.__setattr__(self, "roles", frozenset(_frozen_strings(self.roles, "ApprovalRule.roles")))
        # A rule nobody can satisfy, or one that needs no approval at all, must not be built by hand either.
        if not self.approvers:
            raise ValueError("ApprovalRule.approvers must name at least one role or user")
        if self.required < 1:
            raise ValueError("ApprovalRule.required must be at least 1")
        if self.expires_in < 1:
            raise ValueError("ApprovalRule.expires_in must be positive")

    @property
    def name(self) -> str:
        return f"approvals[{self.index}]"

    def with_roles(self, roles: Collection[str]) -> ApprovalRule:
        """This rule, its approvers split by ``roles`` (the role names defined under ``access.roles``)."""
        return replace(self, roles=frozenset(_frozen_strings(roles, "ApprovalRule.roles")))

    @property
    def approver_roles(self) -> tuple[str, ...]:
        """The approvers that are defined roles: members of one may approve."""
        return tuple(name for name in self.approvers if self.roles is None or name in self.roles)

    @property
    def approver_users(self) -> tuple[str, ...]:
        """The approvers that are not defined roles, so user IDs: that user may approve."""
        return tuple(name for name in self.approvers if self.roles is None or name not in self.roles)


@dataclass(frozen=True)
class AccessConfig:
    """Roles, the grants that give them, and the approvals rules, in file order.

    Grants and rules are renumbered on construction, so ``index`` always names the
    position in the list, also in an AccessConfig built by hand; each rule's approvers
    are split by the roles defined here.
    """

    roles: Mapping[str, Role] = field(default_factory=dict)
    grants: tuple[Grant, ...] = ()
    approvals: tuple[ApprovalRule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", _frozen_mapping(self.roles))
        object.__setattr__(
            self, "grants", tuple(replace(grant, index=index) for index, grant in enumerate(self.grants))
        )
        defined = frozenset(self.roles)
        object.__setattr__(
            self,
            "approvals",
            tuple(replace(rule, index=index, roles=defined) for index, rule in enumerate(self.approvals)),
        )

    def usergroups(self) -> frozenset[str]:
        """Every user group named in a grant: the memberships the bot must keep loaded."""
        return frozenset(group for grant in self.grants for group in grant.usergroups)


TIMEOUT_KEYS = ("push", "pull", "tag", "login", "promote", "delete", "rollback", "query")
"""The keys of the ``timeouts`` section."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds each action may run on a worker before it is stopped."""

    push: int = 1800
    pull: int = 1800
    tag: int = 120
    login: int = 120
    promote: int = 1800
    delete: int = 120
    rollback: int = 120
    query: int = 60
    """``tags`` and ``inspect``."""

    def for_action(self, action: str) -> int:
        if action in ("tags", "inspect"):
            return self.query
        if action not in TIMEOUT_KEYS:
            raise KeyError(f"no timeout for action {action!r}")
        value: int = getattr(self, action)
        return value


@dataclass(frozen=True)
class Retries:
    """How a worker retries a transient failure: ``attempts`` runs in all (the first included);
    the n-th retry waits ``backoff * 2**(n-1)`` seconds, never more than ``max_backoff``."""

    attempts: int = 3
    backoff: float = 2
    max_backoff: float = 30

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the second attempt)."""
        return float(min(self.max_backoff, self.backoff * 2 ** (retry - 1)))


@dataclass(frozen=True)
class MetricsToken:
    """Where the bearer token of ``GET /metrics`` is: an environment variable or a file (never the token)."""

    env: str | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise ValueError("MetricsToken needs exactly one of env and file")

    @property
    def source(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"


@dataclass(frozen=True)
class Limits:
    """How much one person (and one Docker host) may ask of regops; None means no limit.

    ``commands_per_minute`` counts every command a person sends, in a sliding minute;
    ``queued_per_user`` and ``queued_per_host`` count open jobs (awaiting approval, queued
    or running) of one person, and on one host.  Users with one of ``exempt_roles`` in the
    command's channel are not limited.
    """

    commands_per_minute: int | None = 30
    queued_per_user: int | None = 20
    queued_per_host: int | None = 200
    exempt_roles: tuple[str, ...] = ("admin",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exempt_roles", _frozen_strings(self.exempt_roles, "Limits.exempt_roles"))
        for name in ("commands_per_minute", "queued_per_user", "queued_per_host"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"Limits.{name} must be a whole number of at least 1, or None for no limit")


EVENT_KINDS = ("push", "delete")
"""What a route or subscription can follow (``events:``)."""


@dataclass(frozen=True)
class NotificationRoute:
    """A static route (``notifications.routes``): announcements of matching changes go to ``channel``.

    Globs are matched with :func:`~workers.kernel.config.patterns.glob_match`: ``images`` against the
    image name (the repository path after the registry's namespace, or the whole repository path for
    a repository outside it), ``tags`` against the tag (a delete matches when one of its tags does),
    ``registries`` against the registry's config name.
    """

    channel: str
    images: tuple[str, ...] = ("**",)
    tags: tuple[str, ...] = ("*",)
    events: frozenset[str] = frozenset({"push"})
    registries: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        for name in ("images", "tags", "registries"):
            object.__setattr__(self, name, _frozen_strings(getattr(self, name), f"NotificationRoute.{name}"))
        object.__setattr__(self, "events", frozenset(self.events))
        unknown = set(self.events) - set(EVENT_KINDS)
        if unknown:
            raise ValueError(f"NotificationRoute.events: unknown {sorted(unknown)}")


@dataclass(frozen=True)
class Config:
    registries: Mapping[str, RegistryConfig]
    default_registry: str
    hosts: tuple[str, ...]
    default_host: str
    notify_channel: str | None
    access: AccessConfig
    timeouts: Timeouts
    audit_channel: str | None = None
    retries: Retries = field(default_factory=Retries)
    metrics_token: MetricsToken | None = None
    """Where ``serve`` reads the bearer token ``GET /metrics`` wants; None: /metrics is open."""
    limits: Limits = field(default_factory=Limits)
    guards: Guards = field(default_factory=Guards)
    """``guards``: immutable tags, freeze windows, promotion paths (none by default)."""
    routes: tuple[NotificationRoute, ...] = ()
    """``notifications.routes``; ``notify_channel`` is a route of every push besides these."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "registries", _frozen_mapping(self.registries))
        object.__setattr__(self, "hosts", _frozen_strings(self.hosts, "Config.hosts"))
        object.__setattr__(self, "routes", tuple(self.routes))

    def summary(self) -> str:
        """A human summary for ``regops check-config``; shows where passwords live, never a password."""
        # Imported here: the summary module reads this model, and the model must load first.
        from workers.kernel.config.summary import summarize

        return summarize(self)
