"""What regops announces in a channel: one change of a registry, whoever made it.

Made from a registry event (:mod:`bot.core.registry_changes`) or, for a registry that sends no
events, from a regops job's own tag changes (the relay); put in each routed channel's outbox
(:mod:`bot.core.outbox`) and posted, coalesced when they come fast, by :mod:`bot.slack.announcer`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Announcement:
    """A push (``tags`` is one tag; ``previous`` None: a new tag) or a delete (``digest`` and the tags that went);
    or (``kind="notice"``) a plain ``text`` for the channel.

    ``who`` is the Slack user ID when a regops job made the change (``job_id`` set, ``by_slack``
    True), else the registry account (empty when the registry named none); ``address`` the client
    address the registry saw; ``at`` the registry's time of the change (epoch seconds), by which
    a channel's announcements are ordered.  ``server`` and ``repository`` make the full reference
    ``server/repository:tag``.
    """

    kind: str
    registry: str
    server: str
    repository: str
    tags: tuple[str, ...]
    digest: str | None
    at: float
    previous: str | None = None
    who: str = ""
    by_slack: bool = False
    job_id: str | None = None
    address: str | None = None
    how: str = ""
    """For a regops job: its action (push, promote, rollback, delete); empty for a change made outside."""
    text: str = ""
    """For a ``notice`` (a freeze started or ended, a guard overridden): the message itself, as mrkdwn-free plain
    text; ``who`` is then the Slack user it is about.  Empty for every other kind."""

    @classmethod
    def notice(cls, text: str, at: float, who: str = "") -> Announcement:
        """A plain notice for a channel (no registry change): ``text`` as it is to be read."""
        return cls(kind="notice", registry="", server="", repository="", tags=(), digest=None, at=at, who=who,
                   by_slack=bool(who), text=text)

    def references(self) -> list[str]:
        """The full references this announcement names (``server/repository:tag``), or the digest reference."""
        if not self.tags:
            return [f"{self.server}/{self.repository}@{self.digest}"]
        return [f"{self.server}/{self.repository}:{tag}" for tag in self.tags]

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in (None, "", False)}
        data["tags"] = list(self.tags)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, value: str | bytes) -> Announcement:
        data: dict[str, Any] = json.loads(value)
        return cls(
            kind=str(data["kind"]), registry=str(data.get("registry", "")), server=str(data.get("server", "")),
            repository=str(data.get("repository", "")), tags=tuple(str(t) for t in data.get("tags", ())),
            digest=data.get("digest"), at=float(data["at"]), previous=data.get("previous"),
            who=str(data.get("who", "")), by_slack=bool(data.get("by_slack", False)), job_id=data.get("job_id"),
            address=data.get("address"), how=str(data.get("how", "")), text=str(data.get("text", "")),
        )
