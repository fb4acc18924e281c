"""The YAML configuration: registries, Docker hosts, access, approvals, timeouts, retries, limits, notifications.

The whole file is validated up front and every problem is reported at once, each as
``key.path: what is wrong; what would be valid``.  The resulting :class:`Config` is
deeply immutable.  Passwords are never in the config, only where to find them.

model (the values) · problems (the collector) · registries, access, timing, limits, notifications
(the sections) · identities (what IDs look like: the front end's say) · document (the whole
document) · loading (path, file, YAML) · summary (what ``check-config`` prints).
"""

from workers.kernel.config.document import parse_config
from workers.kernel.config.identities import WORDS, IdentityRules
from workers.kernel.config.loading import CONFIG_ENV, DEFAULT_CONFIG_PATH, load_config, resolve_config_path
from workers.kernel.config.model import (
    EVENT_KINDS,
    EVERYONE,
    AccessConfig,
    ApprovalRule,
    Config,
    Grant,
    Limits,
    MetricsToken,
    NotificationRoute,
    RegistryConfig,
    Retries,
    Role,
    Timeouts,
)
from workers.kernel.times import format_duration

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "EVENT_KINDS",
    "EVERYONE",
    "WORDS",
    "AccessConfig",
    "ApprovalRule",
    "Config",
    "Grant",
    "IdentityRules",
    "Limits",
    "MetricsToken",
    "NotificationRoute",
    "RegistryConfig",
    "Retries",
    "Role",
    "Timeouts",
    "format_duration",
    "load_config",
    "parse_config",
    "resolve_config_path",
]
