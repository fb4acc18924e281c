"""A query's answer for the person who asked: the worker's data (``tags``, ``inspect``) in words.

A registry worker writes the answer as JSON beside the query's ``succeeded`` event
(:func:`workers.kernel.keys.answer_key`); the Slack relay and the console both turn it into
text here, so that both front ends say the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from bot.core import registry_views
from bot.core.outcomes import failure_text
from bot.core.text import Icon, Text, code, icon, t
from workers.kernel.history import TagChange
from workers.kernel.jobs import JobRecord, JobState
from workers.kernel.references import split_reference

INSPECT_HISTORY = 5
"""History entries ``inspect`` shows under the manifest."""


def _what(record: JobRecord) -> Text:
    return t("the {} of {}", "tags" if record.action == "tags" else "manifest", code(record.reference))


def query_answer(record: JobRecord, answer: str | bytes | None,
                 history: Callable[[str], list[TagChange]]) -> Text:
    """What to tell the asker once the query has ended (failed, cancelled, or answered)."""
    if record.state == JobState.FAILED:
        return t("{}Could not look up {}: {}", icon(Icon.WARNING), _what(record), failure_text(record))
    if record.state != JobState.SUCCEEDED:
        return t("{}The lookup of {} ended without an answer ({}).", icon(Icon.WARNING), _what(record),
                 record.state)
    try:
        data = json.loads(answer) if answer is not None else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return t("{}The answer about {} is no longer available (answers are kept for an hour); ask again.",
                 icon(Icon.WARNING), _what(record))
    if record.action == "tags":
        return registry_views.tags_text(data)
    reference = record.reference or ""
    tag = split_reference(reference)[2]
    changes = history(reference)[:INSPECT_HISTORY] if tag and not tag.startswith("sha256:") else []
    return registry_views.inspect_text(data, changes)
