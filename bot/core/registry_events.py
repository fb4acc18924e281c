"""A registry event regops takes: a tag pushed, or a manifest or tag deleted, as the registry reported it.

The registry's notification envelope (``{"events": [...]}``) is parsed into these by
:mod:`bot.core.envelopes`; :mod:`bot.core.event_intake` stores them in Redis (one stream entry
each, fields of :meth:`RegistryEvent.to_fields`) before the registry gets its 2xx.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workers.kernel.jobs import flat_values


@dataclass(frozen=True)
class RegistryEvent:
    """One relevant event.  ``registry`` is the config name the envelope's bearer token belongs to.

    * ``action`` ``push``: a manifest pushed under ``tag`` (``digest`` is the manifest's);
    * ``action`` ``delete``: with ``digest`` and no ``tag``, a manifest deleted; with ``tag``, that tag
      deleted (Distribution sends one manifest event plus one tag event per tag).

    ``repository`` is the registry path (``com.example.namespace/centos7-elasticsearch``);
    ``actor`` the registry account, ``address`` the client's address, ``at`` the registry's
    timestamp in epoch seconds.
    """

    registry: str
    id: str
    action: str
    repository: str
    at: float
    tag: str | None = None
    digest: str | None = None
    media_type: str | None = None
    actor: str | None = None
    address: str | None = None

    def to_fields(self) -> dict[str, str]:
        return {k: (repr(v) if isinstance(v, float) else v) for k, v in flat_values(self).items() if v is not None}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> RegistryEvent:
        return cls(
            registry=fields["registry"], id=fields["id"], action=fields["action"],
            repository=fields["repository"], at=float(fields["at"]), tag=fields.get("tag"),
            digest=fields.get("digest"), media_type=fields.get("media_type"), actor=fields.get("actor"),
            address=fields.get("address"),
        )
