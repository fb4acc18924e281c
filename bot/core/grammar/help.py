"""Usage lines and help: the overview of the commands and one command's arguments, options and examples."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from bot.core.errors import CommandError
from bot.core.grammar.spec import ARGUMENT_HELP, OPTION_HELP, OPTION_VALUES, SPECS, Spec
from bot.core.text import Text, bold, code, command, join, lines, markup, t
from workers.kernel.actions import (
    ACTIONS,
    FREEZE_COMMANDS,
    HOST_ACTIONS,
    JOB_COMMANDS,
    READ_ACTIONS,
    REGISTRY_ACTIONS,
    SELF_SERVICE,
    SUBSCRIPTION_COMMANDS,
)

GROUPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("On a Docker host", HOST_ACTIONS, ("push", "pull")),
    ("In the registry (no Docker host needed)", (*REGISTRY_ACTIONS, *READ_ACTIONS), ("promote", "tags")),
    ("About you", SELF_SERVICE, ("whoami", "can-i")),
    ("Jobs and hosts", (*JOB_COMMANDS, "hosts"), ("jobs", "status")),
    ("Announcements in this channel", SUBSCRIPTION_COMMANDS, ("subscribe", "unsubscribe")),
    ("Change freezes", FREEZE_COMMANDS, ("freeze", "unfreeze")),
)
"""The overview's groups, in the order of :data:`~workers.kernel.actions.ACTIONS` (each command in one): a
title, the commands, and those whose first example the title shows (the first ones shown, if hidden)."""

_GROUP_EXAMPLES = 2
"""How many examples a group's title shows."""


def did_you_mean(word: str, candidates: Iterable[str], prefix: str = "") -> Text:
    """`` Did you mean `push`?`` for the closest candidate, or nothing."""
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return t(" Did you mean {}?", code(f"{prefix}{match[0]}")) if match else Text()


def option_usage(name: str) -> str:
    value = OPTION_VALUES[name]
    return f"--{name} {value}" if value else f"--{name}"


def usage_line(spec: Spec) -> Text:
    """The command as typed, e.g. ``pull IMAGE TAG [--registry NAME] [--host NAME]``; each form, joined by "or"."""
    options = [f"[{option_usage(name)}]" for name in spec.options]
    if spec.forms:
        return join(" or ", (command(" ".join([spec.action, form, *options])) for form in spec.forms))
    parts = [spec.action, *spec.arguments]
    if spec.optional_arguments:
        parts.append(f"[{' '.join(spec.optional_arguments)}]")
    return command(" ".join([*parts, *options]))


def argument_names(spec: Spec) -> list[str]:
    """The argument placeholders of a command, in order, each once (``IMAGE``, ``TAG``, ``DIGEST``)."""
    if not spec.forms:
        return [*spec.arguments, *spec.optional_arguments]
    names = (name for form in spec.forms for name in re.split(r"[\s@]+", form))
    return list(dict.fromkeys(names))


def unknown_command(word: str) -> CommandError:
    return CommandError(t("unknown command {}.{} See {}.", code(word, 64), did_you_mean(word.lower(), SPECS),
                          command("help")))


def spec_of(action: str) -> Spec:
    spec = SPECS.get(action)
    if spec is None:
        raise unknown_command(action)
    return spec


def usage(action: str) -> Text:
    """The usage line of one command."""
    return usage_line(spec_of(action))


def help_text(topic: str | None = None, actions: Iterable[str] | None = None) -> Text:
    """The overall help (only ``actions`` when given) or one command's help.

    The self-service commands (``whoami``, ``can-i``, ``help``) and the job commands
    (``status``, ``jobs``, ``cancel``: everyone may use them on their own jobs) are always
    listed.  ``actions`` filters the overview only: explaining a named command is never
    refused here.
    """
    if topic is not None:
        return _command_help(spec_of(topic.lower()))
    shown = set(ACTIONS if actions is None else actions) | set(SELF_SERVICE) | set(JOB_COMMANDS)
    groups = [_group_text(title, [SPECS[action] for action in members if action in shown], featured)
              for title, members, featured in GROUPS]
    return join("\n\n", [
        t("*regops* drives the Docker registry from chat. Commands:"),
        *(group for group in groups if group),
        lines([
            t("Give only the image name and the tag: regops builds `REGISTRY/NAMESPACE/IMAGE:TAG` itself, "
              "e.g. {}.", command("push centos7-elasticsearch latest")),
            t("Credentials are never taken in chat: the workers log in with the configured registry account."),
            t("{} explains one command.", command("help COMMAND")),
        ]),
    ])


def _group_text(title: str, specs: list[Spec], featured: tuple[str, ...]) -> Text:
    """One group of the overview: its title with an example or two, then a line a command; empty if none."""
    if not specs:
        return Text()
    chosen = sorted(specs, key=lambda spec: spec.action not in featured)[:_GROUP_EXAMPLES]
    examples = join(", ", (command(spec.examples[0]) for spec in specs if spec in chosen))
    return lines([t("{} — e.g. {}", bold(title), examples),
                  *(t("• {} — {}", usage_line(spec), markup(spec.summary)) for spec in specs)])


def _command_help(spec: Spec) -> Text:
    parts = [t("{}: {}.", bold(spec.action), markup(spec.summary)), t("Usage: {}", usage_line(spec)),
             *(markup(detail) for detail in spec.details)]
    names = argument_names(spec)
    if names:
        parts.append(t("Arguments:"))
        parts.extend(t("• {}: {}", code(name), markup(ARGUMENT_HELP[name])) for name in names)
    if spec.options:
        parts.append(t("Options:"))
        parts.extend(t("• {}: {}", code(option_usage(name)), markup(spec.option_help.get(name, OPTION_HELP[name])))
                     for name in spec.options)
    parts.append(t("Examples:"))
    parts.extend(t("• {}", command(example)) for example in spec.examples)
    return lines(parts)


def short_overview() -> Text:
    return join(", ", (code(action) for action in ACTIONS))
