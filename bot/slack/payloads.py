"""The shape of a Slack payload: the fields Bolt and regops' listeners read have the types Slack gives them.

Bolt trusts a payload's shape: a click whose ``actions`` is missing, a ``user`` that is a number,
``authorizations`` that is a string make it raise, log a traceback and answer 500.  What comes
over HTTP (``bot/http/guard.py``) and what comes over Socket Mode (``socket_mode.py``) is checked
here first.  The checks follow what Bolt 1.x reads (its context extraction, listener matchers and
the warning for unhandled requests) and what regops' listeners read; they never name a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 6
"""How deep the context fields Bolt searches (event, message, authorizations…) are checked."""

_ID_FIELDS = ("enterprise", "team", "user", "channel")
"""Each a string, an object (whose ``id``, if any, is a string) or null: Bolt takes IDs from them."""
_STRING_FIELDS = ("type", "callback_id", "action_id", "block_id", "user_id", "channel_id", "team_id",
                  "enterprise_id", "thread_ts", "function_execution_id", "bot_access_token")
"""Strings (or null) where present, at any depth checked: Bolt matches them against listeners' patterns."""
_TOP_STRING_FIELDS = ("command", "text", "response_url", "trigger_id", "api_app_id")
"""Strings (or null) where present in the body itself: what regops' command listener reads."""
_NESTED = ("event", "message", "previous_message", "item", "assistant_thread", "container", "view",
           "function_data")
"""Objects (or null) where present, searched for IDs by Bolt in turn."""
_ACTION_TYPES = ("block_actions", "interactive_message")


class MalformedPayload(ValueError):
    """What is wrong with a payload, by field name (never its value)."""


def check_payload(body: Mapping[str, Any]) -> None:
    """:class:`MalformedPayload` unless the fields Bolt and regops read have the types Slack gives them."""
    problem = _context_problem(body, "body", 0)
    if problem is None and body.get("type") in _ACTION_TYPES:
        problem = _actions_problem(body)
    if problem is not None:
        raise MalformedPayload(problem)


def _context_problem(obj: Mapping[str, Any], where: str, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return None
    for key in (*_STRING_FIELDS, *(_TOP_STRING_FIELDS if depth == 0 else ())):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            return f"{where}.{key} must be a string"
    for key in _ID_FIELDS:
        value = obj.get(key)
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, dict):
            return f"{where}.{key} must be a string or an object"
        if value.get("id") is not None and not isinstance(value["id"], str):
            return f"{where}.{key}.id must be a string"
        problem = _context_problem(value, f"{where}.{key}", depth + 1)
        if problem:
            return problem
    for key in _NESTED:
        value = obj.get(key)
        if key in obj and not isinstance(value, dict) and (value is not None or key in ("event", "view")):
            return f"{where}.{key} must be an object"
        if isinstance(value, dict):
            problem = _context_problem(value, f"{where}.{key}", depth + 1)
            if problem:
                return problem
    for key in ("authorizations", "response_urls"):
        value = obj.get(key)
        if value is None and key == "authorizations":
            continue
        if key not in obj:
            continue
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            return f"{where}.{key} must be a list of objects"
        for index, item in enumerate(value):
            problem = _context_problem(item, f"{where}.{key}[{index}]", depth + 1)
            if problem:
                return problem
    return None


def _actions_problem(body: Mapping[str, Any]) -> str | None:
    for key in ("user", "channel", "container", "team"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            return f"body.{key} must be an object"  # a click's are; regops reads the clicker's ID from it
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions:
        return "body.actions must be a non-empty list"
    for index, action in enumerate(actions):
        if not isinstance(action, dict):
            return f"body.actions[{index}] must be an object"
        problem = _context_problem(action, f"body.actions[{index}]", 1)
        if problem:
            return problem
        if body.get("type") == "block_actions" and not isinstance(action.get("action_id"), str):
            return f"body.actions[{index}].action_id must be a string"
    if body.get("type") == "interactive_message" and not isinstance(body.get("callback_id"), str):
        return "body.callback_id must be a string"
    return None
