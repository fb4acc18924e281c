"""What a regops job is about to change in a registry, so the registry's event for it names the job.

A worker sets an expectation right before it writes a tag (push, promote, rollback) or deletes a
digest; the bot's consumer of registry events (:mod:`bot.slack.registry_consumer`) finds it when the
registry's event comes and announces the change as the Slack user's, with the job id, instead of the
shared registry account.  Stdlib only, shared by the bot and the workers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from workers.kernel.keys import EXPECTATION_TTL_SECONDS, expectation_key


@dataclass(frozen=True)
class Expectation:
    """The job ``job_id`` of Slack user ``user`` doing ``action``; ``digest`` when the job knows it beforehand."""

    job_id: str
    user: str
    action: str
    digest: str | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, value: str | bytes) -> Expectation:
        data: dict[str, Any] = json.loads(value)
        return cls(job_id=str(data["job_id"]), user=str(data.get("user", "")), action=str(data.get("action", "")),
                   digest=data.get("digest"))

    def matches(self, digest: str | None) -> bool:
        """Whether an event of ``digest`` can be this job's (a job that did not know its digest matches any)."""
        return self.digest is None or digest is None or self.digest == digest


class _Sets(Protocol):
    def set(self, name: str, value: str, ex: int | None = ...) -> Any: ...


def expect(connection: _Sets, registry: str, repository: str, name: str, expectation: Expectation) -> None:
    """Say that ``expectation``'s job is about to write tag (or delete digest) ``name`` of ``repository``."""
    connection.set(expectation_key(registry, repository, name), expectation.to_json(), ex=EXPECTATION_TTL_SECONDS)
