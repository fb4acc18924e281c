"""The grammar of change freezes: ``freeze``, ``unfreeze`` and ``freezes``.

Syntax only: what IMAGE_GLOB names once a registry's server and namespace are taken off is the
service's question (as for subscriptions).  ``--until`` is checked here and read against the
service's clock by :func:`until_time`: ``2026-12-24T18:00Z`` is that moment (UTC), ``18:00`` is
today at that time (UTC); a time already past today is refused, naming the date to give instead,
rather than quietly taken for tomorrow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from bot.core.errors import CommandError
from bot.core.grammar.arguments import canonical_text, check_count, check_tag_globs, named, word
from bot.core.grammar.help import usage, usage_line
from bot.core.grammar.spec import (
    FREEZE_ID_PATTERN,
    FREEZE_MAX_SECONDS,
    REASON_MAX_LENGTH,
    TAG_GLOBS_MAX,
    Command,
    Spec,
)
from bot.core.grammar.subscriptions import check_image_glob
from bot.core.text import Text, code, markup, t
from workers.kernel.times import format_duration, parse_duration

_MOMENT = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})Z?", re.IGNORECASE)
_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})")
_TIME_RULE = "a time in UTC: `2026-12-24T18:00Z`, or `18:00` for today"


def parse_freeze_command(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    """One of :data:`~workers.kernel.actions.FREEZE_COMMANDS`, its options already split off."""
    return _PARSERS[spec.action](spec, positionals, options)


def check_reason(value: str, usage_: Text, option: str = "--reason") -> str:
    """``--reason TEXT`` (or ``--override REASON``): one line of printable text, at most
    :data:`REASON_MAX_LENGTH` characters, its runs of white space made one space."""
    reason = " ".join(value.split())
    if not reason:
        raise CommandError(t("{} is empty: say why, in quotes, e.g. {}. Usage: {}", code(option),
                             code(f'{option} "release week"'), usage_))
    if len(reason) > REASON_MAX_LENGTH:
        raise CommandError(t("{} is {} characters long; at most {}: a sentence, not a document. Usage: {}",
                             code(option), len(reason), REASON_MAX_LENGTH, usage_))
    if any(not char.isprintable() for char in reason):
        raise CommandError(t("{} has characters that cannot be shown: plain text only. Usage: {}", code(option),
                             usage_))
    return reason


def override_of(options: Mapping[str, str], usage_: Text) -> str | None:
    """The break-glass reason of ``--override``, checked, or None."""
    return check_reason(options["override"], usage_, "--override") if "override" in options else None


def check_until(value: str, usage_: Text) -> str:
    """``--until TIME`` as typed, checked for form and range (not yet against the clock)."""
    moment = _MOMENT.fullmatch(value)
    of_day = _TIME_OF_DAY.fullmatch(value)
    try:
        if moment:
            year, month, day, hour, minute = (int(part) for part in moment.groups())
            datetime(year, month, day, hour, minute, tzinfo=UTC)
            return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}Z"
        if of_day:
            hour, minute = int(of_day.group(1)), int(of_day.group(2))
            if hour < 24 and minute < 60:
                return f"{hour:02d}:{minute:02d}"
    except ValueError:
        pass
    raise CommandError(t("`--until` {} is not {}. Usage: {}", word(value), markup(_TIME_RULE), usage_))


def until_time(value: str, now: float) -> float:
    """The end a checked ``--until`` names, as epoch seconds; CommandError when it is not in the future."""
    current = datetime.fromtimestamp(now, UTC)
    if "T" in value:
        end = datetime.strptime(value, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
        if end.timestamp() <= now:
            raise CommandError(t("{} has already passed (it is {} UTC now): give a time to come. Usage: {}",
                                 code(f"--until {value}"), current.strftime("%Y-%m-%d %H:%M"), usage("freeze")))
    else:
        hour, minute = (int(part) for part in value.split(":"))
        end = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if end.timestamp() <= now:
            tomorrow = (end + timedelta(days=1)).strftime("%Y-%m-%dT%H:%MZ")
            raise CommandError(t("{} is today in UTC, and {} UTC has already passed (it is {} now): for "
                                 "tomorrow, give the date: {}. Usage: {}", code(f"--until {value}"), value,
                                 current.strftime("%H:%M"), code(f"--until {tomorrow}"), usage("freeze")))
    seconds = end.timestamp() - now
    if seconds > FREEZE_MAX_SECONDS:
        raise CommandError(t("{} is more than {} away: a freeze lasts at most that long (a longer one is a "
                             "freeze window of the config). Usage: {}", code(f"--until {value}"),
                             format_duration(FREEZE_MAX_SECONDS), usage("freeze")))
    return end.timestamp()


def _duration(value: str, usage_: Text) -> int:
    try:
        seconds = parse_duration(value, bare_seconds=False)
    except ValueError:
        raise CommandError(t("`--for` {} is not a duration: a number and a unit, like `90m`, `2h` or `1d`. "
                             "Usage: {}", word(value), usage_)) from None
    if not 60 <= seconds <= FREEZE_MAX_SECONDS:
        raise CommandError(t("`--for` {}: a freeze lasts from 1 minute to 90 days. Usage: {}", word(value), usage_))
    return seconds


def _freeze(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    usage_ = usage_line(spec)
    if len(positionals) > 1 and "reason" in options:
        raise CommandError(t("`--reason` takes one value: put the reason in quotes, e.g. `--reason \"release "
                             "week\"`. Usage: {}", usage_))
    check_count(spec.action, spec.arguments, 0, positionals, usage_)
    glob = check_image_glob(positionals[0], usage_)
    if ("for" in options) == ("until" in options):
        raise CommandError(t("{} needs how long: give `--for DURATION` (like `2h`) or `--until TIME` (like "
                             "`18:00`, UTC), one of them. Usage: {}", code("freeze"), usage_))
    if "reason" not in options:
        raise CommandError(t("{} needs `--reason TEXT`: every refusal the freeze causes says why. Usage: {}",
                             code("freeze"), usage_))
    tags = check_tag_globs(options["tags"], "--tags", usage_) if "tags" in options else ()
    if len(tags) > TAG_GLOBS_MAX:
        raise CommandError(t("`--tags` gives {} globs; at most {}. Usage: {}", len(tags), TAG_GLOBS_MAX, usage_))
    reason = check_reason(options["reason"], usage_)
    duration = _duration(options["for"], usage_) if "for" in options else None
    until = check_until(options["until"], usage_) if "until" in options else None
    shown = {**options, "reason": reason}
    if tags:
        shown["tags"] = ",".join(tags)
    if until is not None:
        shown["until"] = until
    return Command(action="freeze", glob=glob, tag_globs=tags, registry=named(options, "registry"),
                   duration=duration, until=until, reason=reason, text=canonical_text("freeze", [glob], shown))


def _unfreeze(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    usage_ = usage_line(spec)
    check_count(spec.action, spec.arguments, 0, positionals, usage_)
    value = positionals[0].strip("`").upper()
    if not FREEZE_ID_PATTERN.fullmatch(value):
        raise CommandError(t("{} is not a freeze id: a freeze id is `F` and a number, such as `F3`, as {} shows it. "
                             "Usage: {}", word(positionals[0]), code("freezes"), usage_))
    return Command(action="unfreeze", freeze_id=value, text=canonical_text("unfreeze", [value], {}))


def _freezes(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    check_count(spec.action, spec.arguments, 0, positionals, usage_line(spec))
    return Command(action="freezes", text="freezes")


_PARSERS: Mapping[str, Callable[[Spec, list[str], Mapping[str, str]], Command]] = {
    "freeze": _freeze,
    "unfreeze": _unfreeze,
    "freezes": _freezes,
}
