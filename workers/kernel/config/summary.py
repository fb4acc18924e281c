"""What ``regops check-config`` prints about a valid config: every setting, where passwords live, no password."""

from __future__ import annotations

from workers.kernel.config.model import (
    ANY_NAME,
    EVENT_KINDS,
    EVERYONE,
    TIMEOUT_KEYS,
    AccessConfig,
    Config,
    Limits,
    NotificationRoute,
    RegistryConfig,
)
from workers.kernel.config.patterns import SEPARATED_KEYS, separator_warning
from workers.kernel.references import reverse_hostname
from workers.kernel.times import format_duration


def summarize(config: Config) -> str:
    lines = ["registries:"]
    lines += [_registry(registry, name == config.default_registry) for name, registry in config.registries.items()]
    hosts = ", ".join(f"{host} (default)" if host == config.default_host else host for host in config.hosts)
    lines.append(f"hosts: {hosts}")
    lines.append(f"notify channel: {config.notify_channel or 'none'}")
    lines.append(f"audit channel: {config.audit_channel or 'none'}")
    lines += _notifications(config)
    timeouts = config.timeouts
    lines.append(
        "timeouts: "
        + ", ".join(
            f"{action} {format_duration(timeouts.for_action(action))}" for action in TIMEOUT_KEYS
        )
    )
    retries = config.retries
    lines.append(
        f"retries: {retries.attempts} attempt(s), backoff {format_duration(retries.backoff)} "
        f"doubling up to {format_duration(retries.max_backoff)}"
    )
    lines.append(
        f"metrics: protected, a bearer token from {config.metrics_token.source}"
        if config.metrics_token
        else "metrics: open to anyone who can reach the port (set metrics_token_env to protect them)"
    )
    lines += _access(config.access)
    lines.append(_limits(config.limits, config.access))
    return "\n".join(lines)


def _registry(registry: RegistryConfig, default: bool) -> str:
    origin = (
        f"{registry.services_hostname} reversed"
        if registry.services_hostname and registry.namespace == reverse_hostname(registry.services_hostname)
        else "explicit"
    )
    return (
        f"  {registry.name}{' (default)' if default else ''}: server {registry.server}, "
        f"namespace {registry.namespace} ({origin}), username {registry.username}, "
        f"password from {registry.password_source}"
    )


def _notifications(config: Config) -> list[str]:
    """Which registries report their pushes and deletes (where their token is, never the token), and the routes."""
    senders = [f"{r.name} (token from {_events_token_source(r)})" for r in config.registries.values()
               if r.events_enabled]
    silent = [r.name for r in config.registries.values() if not r.events_enabled]
    events = ", ".join(senders) if senders else "none"
    if senders and silent:
        events += f"; not {', '.join(silent)}"
    lines = [f"registry events (POST /registry/events): {events}"]
    if not config.routes:
        return [*lines, "notification routes: none"]
    lines.append(f"notification routes: {len(config.routes)}")
    lines += [f"  routes[{index}] {_route(route)}" for index, route in enumerate(config.routes)]
    return lines


def _events_token_source(registry: RegistryConfig) -> str:
    if registry.events_token_env:
        return f"environment variable {registry.events_token_env}"
    return f"file {registry.events_token_file}"


def _route(route: NotificationRoute) -> str:
    events = ", ".join(kind for kind in EVENT_KINDS if kind in route.events)
    return (f"to {route.channel}: {events} of images {', '.join(route.images)}; tags {', '.join(route.tags)}; "
            f"registries {', '.join(route.registries)}")


def _access(access: AccessConfig) -> list[str]:
    counts = f"{len(access.roles)} role(s), {len(access.grants)} grant(s), {len(access.approvals)} approval rule(s)"
    lines = [f"access: {counts}"]
    if not access.grants:
        lines.append("  no grants: nobody may run anything but help, whoami and can-i")
    for role in access.roles.values():
        sources = f"; sources {', '.join(role.sources)}" if role.sources != (ANY_NAME,) else ""
        lines.append(
            f"  role {role.name}: actions {', '.join(role.actions)}; images {', '.join(role.images)}; "
            f"tags {', '.join(role.tags)}; registries {', '.join(role.registries)}; "
            f"hosts {', '.join(role.hosts)}{sources}"
        )
    for grant in access.grants:
        who = [f"user {user}" if user != EVERYONE else "everyone" for user in grant.users]
        who += [f"group {group}" for group in grant.usergroups]
        where = ", ".join(grant.channels) if grant.channels else "any channel"
        lines.append(f"  grants[{grant.index}] role {grant.role}: {', '.join(who)}; in {where}")
    for rule in access.approvals:
        noun = "approval" if rule.required == 1 else "approvals"
        lines.append(
            f"  {rule.name}: {', '.join(rule.actions)} of images {', '.join(rule.images)}, "
            f"tags {', '.join(rule.tags)} needs {rule.required} {noun} from "
            f"{', '.join(rule.approvers)}; expires after {format_duration(rule.expires_in)}"
        )
    return lines


def config_warnings(config: Config) -> list[str]:
    """What ``check-config`` warns about in a valid config, each once: image globs ``*`` narrowed.

    ``*`` and ``?`` used to match a ``/`` too; now they stop at it, as registries' own patterns
    do.  An approvals rule's glob narrowed protects fewer images than it did, so it says so.
    """
    warnings: list[str] = []
    for role in config.access.roles.values():
        for key in SEPARATED_KEYS:
            for index, pattern in enumerate(getattr(role, key)):
                warning = separator_warning(pattern)
                if warning:
                    warnings.append(f"access.roles.{role.name}.{key}[{index}]: {warning}")
    for rule in config.access.approvals:
        for index, pattern in enumerate(rule.images):
            warning = separator_warning(pattern)
            if warning:
                warnings.append(f"access.{rule.name}.images[{index}]: {warning}; this rule now asks no "
                                "approval for the names it no longer matches")
    return warnings


def _limits(limits: Limits, access: AccessConfig) -> str:
    def limit(value: int | None, text: str) -> str:
        return text.format(value) if value is not None else "no limit"

    exempt = ", ".join(limits.exempt_roles) if limits.exempt_roles else "nobody"
    undefined = [role for role in limits.exempt_roles if role not in access.roles]
    if undefined:  # only the default can name an undefined role: the loader refuses one written down
        exempt += f" ({', '.join(undefined)} not defined: exempts nobody)"
    return (
        f"limits: commands {limit(limits.commands_per_minute, '{} a minute per person')}; open jobs "
        f"{limit(limits.queued_per_user, '{} per person')}, {limit(limits.queued_per_host, '{} per host')}; "
        f"exempt roles: {exempt}"
    )
