"""The whole document: its top-level keys, each section in turn, and the :class:`Config` they make.

Unknown keys are errors, because a typo must never silently drop a setting; every
problem of every section is collected before one ConfigError lists them all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from workers.kernel.config.access import Names, parse_access
from workers.kernel.config.identities import WORDS, IdentityRules
from workers.kernel.config.limits import defined_roles, parse_limits
from workers.kernel.config.model import Config, MetricsToken, RegistryConfig
from workers.kernel.config.notifications import parse_notifications
from workers.kernel.config.problems import Problems
from workers.kernel.config.registries import parse_hosts, parse_registries, pick_default
from workers.kernel.config.timing import parse_retries, parse_timeouts
from workers.kernel.errors import ConfigError

_TOP_LEVEL_REQUIRED = ("registries", "hosts")
_TOP_LEVEL_OPTIONAL = (
    "default_registry",
    "default_host",
    "notify_channel",
    "audit_channel",
    "timeouts",
    "retries",
    "access",
    "metrics_token_env",
    "metrics_token_file",
    "limits",
    "notifications",
)


def parse_config(data: object, identities: IdentityRules = WORDS) -> Config:
    """Validate a loaded YAML document and build the Config; ConfigError lists every problem.

    ``identities`` say what user, user-group and channel IDs look like (the bot gives
    Slack's); by default any one word will do.
    """
    problems = Problems()
    if data is None:
        raise ConfigError(
            ["(top level): the configuration is empty; it needs at least `registries` and `hosts`"]
        )
    top = problems.mapping(data, "", required=_TOP_LEVEL_REQUIRED, optional=_TOP_LEVEL_OPTIONAL)
    if top is None:
        raise ConfigError(problems.items)
    registries, default_registry, registry_names = _registries(problems, top)
    hosts = parse_hosts(problems, top["hosts"]) if "hosts" in top else None
    host_names = list(dict.fromkeys(hosts)) if hosts is not None else None
    default_host = pick_default(problems, top, "default_host", host_names, "host", "hosts")
    notify_channel = _channel(problems, top, "notify_channel", "C0DEPLOYS", identities)
    audit_channel = _channel(problems, top, "audit_channel", "C0AUDIT", identities)
    timeouts = parse_timeouts(problems, top.get("timeouts"))
    retries = parse_retries(problems, top.get("retries"))
    # Broken registries and hosts still count as defined, so one mistake is not reported twice.
    access = parse_access(problems, top.get("access"), Names(registry_names, host_names), identities)
    metrics_token = _metrics_token(problems, top)
    limits = parse_limits(problems, top.get("limits"), defined_roles(top.get("access")))
    routes = parse_notifications(problems, top.get("notifications"), registry_names, identities)
    if problems.items:
        raise ConfigError(problems.items)
    return Config(
        registries=registries,
        default_registry=default_registry,
        hosts=hosts or (),
        default_host=default_host,
        notify_channel=notify_channel,
        access=access,
        timeouts=timeouts,
        audit_channel=audit_channel,
        retries=retries,
        metrics_token=metrics_token,
        limits=limits,
        routes=routes,
    )


def _registries(
    problems: Problems, top: Mapping[str, Any]
) -> tuple[dict[str, RegistryConfig], str, list[str] | None]:
    """The registries that parsed, the default one, and every name defined (None if unreadable)."""
    registries = parse_registries(problems, top["registries"]) if "registries" in top else {}
    value = top.get("registries")
    # Names of broken registries still count as defined, so one mistake is not reported twice.
    names = [name for name in value if isinstance(name, str)] if isinstance(value, Mapping) else None
    default = pick_default(problems, top, "default_registry", names, "registry", "registries")
    return registries, default, names


def _channel(
    problems: Problems, top: Mapping[str, Any], key: str, example: str, identities: IdentityRules
) -> str | None:
    if top.get(key) is None:
        return None
    channel = problems.string(top[key], key, f"a Slack channel ID like {example}")
    if channel is None:
        return None
    problem = identities.channel(channel, example)
    if problem is not None:
        problems.add(key, problem)
        return None
    return channel


def _metrics_token(problems: Problems, top: Mapping[str, Any]) -> MetricsToken | None:
    """``metrics_token_env`` or ``metrics_token_file`` (one at most); a value that is no variable name is not echoed."""
    env = file = None
    if "metrics_token_env" in top:
        env = problems.string(top["metrics_token_env"], "metrics_token_env", "an environment variable name")
        if env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
            # Not echoed: a token pasted here by mistake must not reach a terminal or log.
            problems.add("metrics_token_env", "is not an environment variable name (value not shown): letters, "
                         "digits and `_`, not starting with a digit, e.g. `REGOPS_METRICS_TOKEN`")
            env = None
    if "metrics_token_file" in top:
        file = problems.string(top["metrics_token_file"], "metrics_token_file", "a file path")
    if "metrics_token_env" in top and "metrics_token_file" in top:
        problems.add("metrics_token_env", "give one of `metrics_token_env` and `metrics_token_file`, not both")
        return None
    return MetricsToken(env=env) if env else MetricsToken(file=file) if file else None
