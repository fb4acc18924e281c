"""The grammar of the channel subscriptions: ``subscribe``, ``unsubscribe`` and ``subscriptions``.

Syntax only, as everywhere in the grammar: whether a registry exists, and what IMAGE_GLOB names
once its registry server and namespace are taken off, is the service's question
(:mod:`bot.core.subscription_requests`).  Tag globs and events are checked here in full.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from bot.core.errors import CommandError
from bot.core.grammar.arguments import canonical_text, check_count, check_tag_globs, named, word
from bot.core.grammar.help import did_you_mean, usage_line
from bot.core.grammar.spec import IMAGE_GLOB_MAX_LENGTH, SUBSCRIPTION_ID_PATTERN, Command, Spec
from bot.core.text import Text, code, codes, t
from workers.kernel.config.model import EVENT_KINDS

_GLOB_CHARACTERS = re.compile(r"[A-Za-z0-9._/:@*?\[\]!-]+")
"""What IMAGE_GLOB may be written with: image-name and registry-server characters, and the wildcards (``@``
and upper case only so that the service can say what is wrong with them)."""


def parse_subscription_command(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    """One of :data:`~workers.kernel.actions.SUBSCRIPTION_COMMANDS`, its options already split off."""
    return _PARSERS[spec.action](spec, positionals, options)


def check_image_glob(value: str, usage: Text) -> str:
    """IMAGE_GLOB as typed: one glob, of characters an image name, a registry server or a glob may have."""
    glob = value.strip("`")
    if not glob:
        raise CommandError(t("IMAGE_GLOB is empty: give an image name or a glob like `centos7-*`. Usage: {}", usage))
    if len(glob) > IMAGE_GLOB_MAX_LENGTH:
        raise CommandError(t("IMAGE_GLOB is {} characters long; at most {}. Usage: {}", len(glob),
                             IMAGE_GLOB_MAX_LENGTH, usage))
    if "," in glob:
        raise CommandError(t("{}: one IMAGE_GLOB a subscription (subscribe again for another, or write one glob "
                             "that matches both, like `centos7-*`). Usage: {}", word(glob), usage))
    if not _GLOB_CHARACTERS.fullmatch(glob):
        bad = sorted({char for char in glob if not _GLOB_CHARACTERS.fullmatch(char)})
        raise CommandError(t("{}: {} can never be in an image name; image names are lower-case letters, digits, "
                             "`.`, `_`, `-` and `/`, and a glob adds `*`, `?` and classes like `[0-9]`. Usage: {}",
                             word(glob), codes((char if char.strip() else repr(char) for char in bad), " "),
                             usage))
    return glob


def check_events(value: str, usage: Text) -> tuple[str, ...]:
    """``--events push,delete``: a comma-separated list of :data:`EVENT_KINDS`, sorted, each once."""
    kinds = [kind.strip().lower() for kind in value.split(",")]
    if not all(kinds):
        raise CommandError(t("`--events` {} has an empty entry: give {}, separated by commas without spaces, "
                             "e.g. `--events push,delete`. Usage: {}", word(value), codes(EVENT_KINDS), usage))
    for kind in kinds:
        if kind not in EVENT_KINDS:
            raise CommandError(t("`--events` {}: regops announces {} only, not {}.{} Usage: {}", word(value),
                                 codes(EVENT_KINDS), word(kind), did_you_mean(kind, EVENT_KINDS), usage))
    return tuple(sorted(set(kinds)))


def _subscribe(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    usage = usage_line(spec)
    check_count(spec.action, spec.arguments, 0, positionals, usage)
    glob = check_image_glob(positionals[0], usage)
    tags = check_tag_globs(options["tags"], "--tags", usage) if "tags" in options else ()
    events = check_events(options["events"], usage) if "events" in options else ()
    shown = dict(options)
    if tags:
        shown["tags"] = ",".join(tags)
    if events:
        shown["events"] = ",".join(events)
    return Command(action="subscribe", glob=glob, tag_globs=tags, events=events, registry=named(options, "registry"),
                   text=canonical_text("subscribe", [glob], shown))


def _unsubscribe(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    usage = usage_line(spec)
    if not positionals:
        raise CommandError(t("{} is missing ID or IMAGE_GLOB: the subscription to remove, as {} shows it. Usage: {}",
                             code("unsubscribe"), code("subscriptions"), usage))
    check_count(spec.action, spec.arguments, 0, positionals, usage)
    value = positionals[0].strip("`")
    if SUBSCRIPTION_ID_PATTERN.fullmatch(value):
        return Command(action="unsubscribe", subscription_id=value, text=canonical_text("unsubscribe", [value], {}))
    glob = check_image_glob(value, usage)
    return Command(action="unsubscribe", glob=glob, text=canonical_text("unsubscribe", [glob], {}))


def _subscriptions(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    check_count(spec.action, spec.arguments, 0, positionals, usage_line(spec))
    return Command(action="subscriptions", text="subscriptions")


_PARSERS: Mapping[str, Callable[[Spec, list[str], Mapping[str, str]], Command]] = {
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "subscriptions": _subscriptions,
}
