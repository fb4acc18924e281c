"""What a front end hands the core (a :class:`Request`, a :class:`Click`) and gets back (a :class:`Reply`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.core.text import Text
from workers.kernel.jobs import JobRecord


class ReplyKind(StrEnum):
    QUEUED = "queued"
    LOOKING = "looking"
    """A query (tags, inspect) is on the registry queue; its answer follows for the asker alone."""
    APPROVAL = "approval"
    HELP = "help"
    ANSWER = "answer"
    DUPLICATE = "duplicate"
    USAGE_ERROR = "usage_error"
    CREDENTIALS = "credentials"
    DENIED = "denied"
    LIMITED = "limited"
    ERROR = "error"


@dataclass(frozen=True)
class Request:
    """One command as a front end received it. ``user_id`` is who typed it."""

    user_id: str
    text: str
    channel_id: str | None = None
    frontend: str = "slack"
    response_url: str | None = None
    idempotency_key: str | None = None
    """Identifies one request across redeliveries (Slack's ``trigger_id``): a repeat makes no second job."""
    sent_through: str | None = None
    """The service the text crossed on its way here (``Slack``), named when a credential must be rotated."""


class ClickAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Click:
    """A button pressed on a job's message: who pressed it, where, on which job."""

    action: ClickAction
    job_id: str
    user_id: str
    channel_id: str | None = None
    frontend: str = "slack"


@dataclass(frozen=True)
class Reply:
    """What the front end shows the person right away (ephemerally in Slack).

    ``shown_in_message``: the outcome is visible in the job's own message, so a click needs no
    separate answer.
    """

    kind: ReplyKind
    text: Text
    job: JobRecord | None = None
    shown_in_message: bool = False
