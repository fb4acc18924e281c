"""Usage lines and help: the overview of the commands and one command's arguments, options and examples."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from bot.core.errors import CommandError
from bot.core.grammar.spec import ARGUMENT_HELP, OPTION_HELP, OPTION_VALUES, SPECS, Spec
from bot.core.text import Text, bold, code, command, join, lines, markup, t
from workers.kernel.actions import ACTIONS, JOB_COMMANDS, SELF_SERVICE


def did_you_mean(word: str, candidates: Iterable[str], prefix: str = "") -> Text:
    """`` Did you mean `push`?`` for the closest candidate, or nothing."""
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return t(" Did you mean {}?", code(f"{prefix}{match[0]}")) if match else Text()


def option_usage(name: str) -> str:
    value = OPTION_VALUES[name]
    return f"--{name} {value}" if value else f"--{name}"


def usage_line(spec: Spec) -> Text:
    """The command as typed, e.g. ``pull IMAGE TAG [--registry NAME] [--host NAME]``."""
    parts = [spec.action, *spec.arguments]
    if spec.optional_arguments:
        parts.append(f"[{' '.join(spec.optional_arguments)}]")
    parts.extend(f"[{option_usage(name)}]" for name in spec.options)
    return command(" ".join(parts))


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
    return lines([
        t("*regops* drives the Docker registry from chat. Commands:"),
        *(t("• {} — {}", usage_line(spec), markup(spec.summary)) for spec in SPECS.values()
          if spec.action in shown),
        t("Give only the image name and the tag: regops builds `REGISTRY/NAMESPACE/IMAGE:TAG` itself, "
          "e.g. {}.", command("push centos7-elasticsearch latest")),
        t("Credentials are never taken in chat: the workers log in with the configured registry account."),
        t("{} explains one command.", command("help COMMAND")),
    ])


def _command_help(spec: Spec) -> Text:
    parts = [t("{}: {}.", bold(spec.action), markup(spec.summary)), t("Usage: {}", usage_line(spec)),
             *(markup(detail) for detail in spec.details)]
    names = [*spec.arguments, *spec.optional_arguments]
    if names:
        parts.append(t("Arguments:"))
        parts.extend(t("• {}: {}", code(name), markup(ARGUMENT_HELP[name])) for name in names)
    if spec.options:
        parts.append(t("Options:"))
        parts.extend(t("• {}: {}", code(option_usage(name)), markup(OPTION_HELP[name])) for name in spec.options)
    parts.append(t("Examples:"))
    parts.extend(t("• {}", command(example)) for example in spec.examples)
    return lines(parts)


def short_overview() -> Text:
    return join(", ", (code(action) for action in ACTIONS))
