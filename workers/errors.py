"""The workers' errors: a failure a user may be told about (with its reason and retryability), and the
signal to rq that a job has failed and been reported."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.kernel.jobs import FAILURE_MESSAGES, FailureReason


class WorkerError(Exception):
    """A job failure whose ``user_message`` is safe to show in Slack as is.

    ``reason`` is a :class:`~workers.kernel.contracts.FailureReason` value; ``retryable`` says
    whether running the same job again later may succeed (the registry was down, say)
    or not (wrong password, missing image).  The message never holds a credential or
    a raw third-party exception string: those are logged, and chained with ``from``.
    """

    def __init__(
        self,
        reason: FailureReason | str,
        user_message: str | None = None,
        *,
        retryable: bool = False,
    ) -> None:
        self.reason = FailureReason(reason).value
        self.user_message = user_message or FAILURE_MESSAGES[self.reason]
        self.retryable = retryable
        super().__init__(self.user_message)

    def __repr__(self) -> str:
        return f"WorkerError({self.reason!r}, {self.user_message!r}, retryable={self.retryable})"


class CredentialsError(WorkerError):
    """A job needs credentials this worker cannot give: an unknown registry, a password it cannot read,
    or a server the bot sees elsewhere.  (A config that cannot be loaded at all is the kernel's
    :class:`~workers.kernel.errors.ConfigError`, and the worker does not start.)"""

    def __init__(self, user_message: str) -> None:
        super().__init__(FailureReason.INTERNAL, user_message, retryable=False)


class JobFailed(Exception):
    """Raised by a task once it has reported its job failed, so that rq books the job as failed too.

    rq's failed-job registry, ``rq info`` and rq-dashboard then agree with regops' own record; the
    exception text is the reason and the user-safe message (never a raw exception, never a secret).
    ``result`` is the outcome the task reported.
    """

    def __init__(self, result: Mapping[str, Any]) -> None:
        self.result = dict(result)
        super().__init__(f"{self.result.get('reason')}: {self.result.get('message')}")
