"""Checks of the words a command is made of, shared by every parser: counts, names, limits, digests, globs.

Each check returns the value as regops uses it (a digest lower-cased) or raises a CommandError
that names what was wrong and what would be right.  Syntax only: whether a registry or a digest
exists is the service's (and the registry's) question.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping

from bot.core.errors import CommandError, CredentialsInChat
from bot.core.grammar.spec import MATCH_MAX_LENGTH, OPTION_VALUES
from bot.core.text import Text, code, codes, markup, t
from workers.kernel.actions import NAME_PATTERN
from workers.kernel.config.patterns import check_globs, invalid_class
from workers.kernel.config.problems import Problems
from workers.kernel.errors import UsageError
from workers.kernel.references import check_image_name

INPUT_LIMIT = 64
"""How much of a typed word an error message shows."""

DIGEST_RULE = "a digest is `sha256:` and 64 hex digits, as `inspect` and `history` show it"

_HEX_DIGITS = frozenset("0123456789abcdef")
_DIGEST_LENGTH = 64
_SHORT_DIGEST = 12
"""The digest length ``tags`` shows: a person may paste that where a whole digest is needed."""

_TAG_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]")
_GLOB_RULE = ("a glob over tag characters: letters, digits, `_`, `.` and `-`, with `*` (any run), `?` (one "
              "character) and classes like `[0-9]` or `[!a-c]`, e.g. `v1.*`")


def word(value: str) -> Text:
    """A typed word for an error message, cut to :data:`INPUT_LIMIT` characters."""
    return code(value, INPUT_LIMIT)


def checked(check: Callable[[str], str], value: str) -> str:
    """``check(value)``, its plain UsageError (from the reference grammar) made a CommandError."""
    try:
        return check(value)
    except CommandError:
        raise
    except UsageError as exc:
        raise CommandError(markup(exc.user_message)) from None


def check_count(label: str, arguments: tuple[str, ...], optional: int, positionals: list[str],
                usage: Text) -> None:
    """Raise unless ``positionals`` fills ``arguments`` (plus at most ``optional`` more)."""
    wanted = len(arguments) + optional
    if len(positionals) < len(arguments):
        given = len(positionals)
        if "IMAGE" in arguments[:given]:
            image = positionals[arguments.index("IMAGE")]
            if ":" in image:
                # `push centos7:latest` is the commonest slip: explain the split instead of "missing TAG".
                try:
                    check_image_name(image)
                except UsageError as exc:
                    raise CommandError(t("{}. Usage: {}", markup(exc.user_message), usage)) from None
        missing = " and ".join(arguments[given:])
        raise CommandError(t("{} is missing {}. Usage: {}", code(label), missing, usage))
    if len(positionals) > wanted:
        if label.split()[-1] == "login":
            # The only words someone adds to `login` are a user name and a password.
            raise CredentialsInChat(login_arguments=True)
        extra = codes((value[:INPUT_LIMIT - 1] + "…" if len(value) > INPUT_LIMIT else value
                       for value in positionals[wanted:]), " ")
        raise CommandError(t("unexpected extra argument(s) {} for {}. Usage: {}", extra, code(label), usage))


def check_name(option: str, value: str) -> str:
    """A registry or host name given with ``--option``."""
    if not NAME_PATTERN.fullmatch(value):
        raise CommandError(t("{} {} is not a valid name: names are letters, digits, `_`, `.` and `-`, "
                             "starting with a letter or digit", code(f"--{option}"), word(value)))
    return value


def named(options: Mapping[str, str], option: str) -> str | None:
    """The ``--registry``/``--host``/``--to-registry`` name given, checked, or None."""
    return check_name(option, options[option]) if option in options else None


def check_limit(value: str, maximum: int, usage: Text) -> int:
    """``--limit N``: a whole number from 1 to ``maximum``."""
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise CommandError(t("`--limit` {} is not a number from 1 to {}. Usage: {}", word(value), maximum, usage))
    return int(value)


def canonical_text(action: str, positionals: list[str], options: Mapping[str, str]) -> str:
    """The command as regops writes it: the action, the arguments, then the options in one fixed order."""
    words = [action, *positionals]
    for name in OPTION_VALUES:
        if name in options:
            words += [f"--{name}", options[name]] if OPTION_VALUES[name] else [f"--{name}"]
    return shlex.join(words)


# ---- digests ----------------------------------------------------------------------------------


def looks_like_digest(value: str) -> bool:
    """Whether a word is meant as a digest: ``@…`` or ``ALGORITHM:…`` (a tag never has a ``:``)."""
    return value.startswith("@") or ":" in value


def check_digest(value: str, what: Text, usage: Text) -> str:
    """``sha256:`` and 64 lower-case hex digits, from ``value`` as typed (``what`` names where it was).

    A leading ``@`` (``IMAGE@DIGEST`` pasted apart) and upper-case letters are accepted; any
    other algorithm, length or character is refused, naming the rule.
    """
    if not value.removeprefix("@"):
        raise CommandError(t("{} is missing: {}. Usage: {}", what, DIGEST_RULE, usage))
    problem = _digest_problem(value.removeprefix("@"))
    if problem is not None:
        raise CommandError(t("{} {} {}: {}. Usage: {}", what, word(value), problem, DIGEST_RULE, usage))
    return "sha256:" + value.rpartition(":")[2].lower()


def _digest_problem(digest: str) -> Text | None:
    """What is wrong with a digest (without ``@``), as the end of a sentence about it; None if nothing."""
    algorithm, colon, hex_part = digest.partition(":")
    if not colon or not algorithm:
        return t("is not a digest")
    if algorithm.lower() != "sha256":
        return t("is not a `sha256` digest: regops takes only those (the ones the registry uses), not {}",
                 word(algorithm))
    hex_lower = hex_part.lower()
    bad = sorted(set(hex_lower) - _HEX_DIGITS)
    if bad:
        return t("has {}: not hex digit(s)", codes(bad, " "))
    if len(hex_lower) != _DIGEST_LENGTH:
        short = t(" (`tags` shows only the first {}; {} shows the whole digest)", _SHORT_DIGEST,
                  code("inspect IMAGE TAG")) if len(hex_lower) < _DIGEST_LENGTH else Text()
        return t("has {} hex digits where a `sha256` digest has {}{}", len(hex_lower), _DIGEST_LENGTH, short)
    return None


# ---- globs ------------------------------------------------------------------------------------


def check_match(glob: str) -> str:
    """``--match GLOB``: non-empty, at most :data:`MATCH_MAX_LENGTH` characters, tag characters and wildcards."""
    if not glob:
        raise CommandError(t("`--match` is empty: {}.", _GLOB_RULE))
    if len(glob) > MATCH_MAX_LENGTH:
        raise CommandError(t("`--match` is {} characters long; at most {}: {}.", len(glob), MATCH_MAX_LENGTH,
                             _GLOB_RULE))
    problem = _glob_problem(glob)
    if problem is not None:
        raise CommandError(t("`--match` {}: {}; {}.", word(glob), problem, _GLOB_RULE))
    return glob


def check_tag_globs(value: str, option: str, usage: Text) -> tuple[str, ...]:
    """``--tags latest,v*``: comma-separated tag globs, each one that can match a tag, each once, in order.

    The checks of ``--match`` come first (tag characters, closed and valid classes), then the config's own
    checks of tag globs (:func:`~workers.kernel.config.patterns.check_globs`): a glob that can match no tag is
    a mistake, refused with why.
    """
    globs = list(dict.fromkeys(glob.strip() for glob in value.split(",")))
    if not all(globs):
        raise CommandError(t("{} {} has an empty entry: give tag globs separated by commas without spaces, "
                             "e.g. {}. Usage: {}", code(option), word(value), code(f"{option} latest,v*"), usage))
    for glob in globs:
        if len(glob) > MATCH_MAX_LENGTH:
            raise CommandError(t("{}: a glob of {} characters; at most {}. Usage: {}", code(option), len(glob),
                                 MATCH_MAX_LENGTH, usage))
        problem = _glob_problem(glob)
        if problem is not None:
            raise CommandError(t("{} {}: {}; {}. Usage: {}", code(option), word(glob), problem, _GLOB_RULE, usage))
        # Past the character check, a glob has no backtick: the config's message may quote it as markup.
        problems = Problems()
        check_globs(problems, [glob], option, "tags")
        if problems.items:
            raise CommandError(t("{}: {}. Usage: {}", code(option), markup(problems.items[0].partition(": ")[2]),
                                 usage))
    return tuple(globs)


def _glob_problem(glob: str) -> Text | None:
    """What makes ``glob`` unable to match a tag, or None."""
    bad = sorted({ch for ch in glob if not _TAG_CHARACTERS.fullmatch(ch) and ch not in "*?[]!"})
    if bad:
        return t("{} can never be in a tag", codes((ch if ch.strip() else repr(ch) for ch in bad), " "))
    index = 0
    while index < len(glob):
        char = glob[index]
        if char == "[":
            close = glob.find("]", index + 1)
            if close == -1:
                return t("a `[` is never closed (close it with `]`, e.g. `[0-9]`)")
            members = glob[index + 1 : close].removeprefix("!")
            if not members or not all(_TAG_CHARACTERS.fullmatch(ch) for ch in members):
                return t("{} is not a class of tag characters", code(glob[index : close + 1]))
            index = close + 1
        elif char in "]!":
            return t("a {} outside a class (`[…]`, `[!…]` for every character but these)", code(char))
        else:
            index += 1
    bad_class = invalid_class(glob)
    if bad_class is not None:
        return t("{} is not a valid class: give ranges low to high, like `[a-z]`", code(bad_class))
    return None
