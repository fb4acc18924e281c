"""Credentials in chat: recognised in any spelling, refused before parsing, redacted for the audit trail.

A message that carries a password or user option, or anything shaped like a credential
(an option named like one, known to regops or not; ``NAME=VALUE`` with such a NAME; a
password in a reference or URL), is never turned into a command and its text is never
echoed.  :func:`redact` uses the same detection to give the audit trail a copy of the text
without any credential in it, and :func:`audit_text` bounds that copy.  Every function here
takes time linear in the text (``tests/benchmarks/grammar.py`` measures them at the limit).
Also here: undoing what chat clients do to typed text (curly quotes, long dashes, invisible
spaces), which the detection needs first.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata

from bot.core.errors import CredentialsInChat
from bot.core.grammar.spec import COMMAND_WORD, MAX_TEXT_LENGTH
from workers.kernel.actions import NAME_PATTERN

_QUOTE_MAP = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2039\u203a", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("\u00a0\u202f\u2007", " "),
    # Zero-width characters sneak in from copy and paste and would split or glue words invisibly.
    **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff", None),
}
_NORMALIZE = str.maketrans(_QUOTE_MAP)

_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
# Chat clients turn a typed "--" into one of these, so one of them means a long option.
_LONG_DASHES = "\u2013\u2014\u2015"
_WRAPPERS = "'\"`\\"

_CREDENTIAL_OPTIONS = ("password", "password-stdin", "passwd", "username", "user")

_CLOSE_CUTOFF = 0.75
# ratio = 2·matches / (len(a) + len(b)) ≤ 2·min / (len(a) + len(b)): at least 0.75 only when the
# lengths are within a factor of 5/3 of an option's (4 to 14 characters).
_CLOSE_LENGTHS = (3, 23)

CREDENTIAL_WORDS = ("pass", "pwd", "token", "secret", "key", "cred", "auth")
"""Parts of a name that make an option (``--registry-password``, ``--api-key``, ``-token``) or a
``NAME=VALUE`` (``REGISTRY_PASSWORD=…``) a credential.  Only names count: an image, tag or host
called ``keycloak``, ``auth-service`` or ``token-1`` is a value, and values are never looked at."""

_DIGEST = re.compile(r"sha(?:256|384|512):[A-Za-z0-9=_-]*")
"""What follows the ``@`` of an image reference pinned by digest (``name@sha256:…``)."""


def normalize(text: str) -> str:
    """Undo what chat clients do to typed text: curly quotes, non-breaking and zero-width spaces."""
    return text.translate(_NORMALIZE).strip()


def option_form(token: str) -> tuple[int, str] | None:
    """(1 or 2 dashes, the rest) when ``token`` is written as an option, else None."""
    run = len(token) - len(token.lstrip(_DASHES))
    if run == 0:
        return None
    dashes = token[:run]
    long = run >= 2 or any(ch in _LONG_DASHES for ch in dashes)
    return (2 if long else 1), token[run:]


def _is_credential_token(token: str) -> bool:
    """Whether one whitespace-separated word is shaped like a credential.

    An option whose name is a credential's (``-p``, ``--password``, ``--api-key``), a
    ``NAME=VALUE`` whose NAME is one (``REGISTRY_PASSWORD=x``), or a reference or URL with a
    password in it (``user:pw@host/x``).  ``--source=-pSECRET`` hides an option after ``=``:
    every ``=``-separated part is looked at, iteratively, so a long chain of ``=`` cannot
    exhaust the stack.
    """
    word = unicodedata.normalize("NFKC", token)
    parts = word.split("=")
    if any(_is_credential_option(part) for part in parts):
        return True
    # Every part followed by `=` is a NAME (the last one is only a value).
    if any(_is_credential_name(part.strip(_WRAPPERS)) for part in parts[:-1]):
        return True
    return _has_userinfo(word)


@functools.lru_cache(maxsize=1024)
def _is_credential_name(name: str) -> bool:
    """Whether an option's name, or the NAME of ``NAME=VALUE``, names a credential."""
    name = name.strip(_WRAPPERS).lower().replace("_", "-")
    if not name:
        return False
    if name in ("p", "u") or name.startswith(("pass", "pasw", "pw", "user", "usr")):
        return True
    if any(word in name for word in CREDENTIAL_WORDS):
        return True
    # A typo of one (`--pasword`): difflib's ratio cannot reach the cutoff outside these lengths.
    return _CLOSE_LENGTHS[0] <= len(name) <= _CLOSE_LENGTHS[1] and bool(
        difflib.get_close_matches(name, _CREDENTIAL_OPTIONS, n=1, cutoff=_CLOSE_CUTOFF))


def _is_credential_option(text: str) -> bool:
    form = option_form(text.lstrip(_WRAPPERS))
    if form is None:
        return False
    dashes, rest = form
    name = rest.lstrip(_WRAPPERS).lower()
    if not name:
        return False
    if dashes == 1 and name[0] in "pu":
        # Short options take their value attached (`-pSECRET`, `-uNAME`), and Go's flag
        # package accepts `-password` too: any -p… or -u… is a credential.
        return True
    # Go's flags take one dash too (`-token X`, `-api-key X`): the name decides either way.
    return _is_credential_name(name)


def _has_userinfo(word: str) -> bool:
    """Whether ``word`` carries ``user:password@`` (a reference or URL with credentials in it).

    The text after the last ``@`` must not be a digest: ``name:tag@sha256:…`` is a reference
    pinned by digest, its ``:`` a tag's.  Slack's ``<URL|label>`` link markup is looked into;
    ``<@U123>`` mentions and ``mailto:`` links have no password.
    """
    link = word.strip(_WRAPPERS)
    if link.startswith("<") and link.endswith(">"):
        link = link[1:-1].partition("|")[0]
    before, at, after = link.rpartition("@")
    if not at or not before or _DIGEST.fullmatch(after):
        return False
    if before.lower().startswith("mailto:"):
        return False
    # `user:pw`, `https://user:pw`, `--source=user:pw`: a `:` before the `@` that is not the scheme's.
    userinfo = before.rpartition("//")[2] if "://" in before else before
    return ":" in userinfo


def refuse_credentials(text: str) -> None:
    # Whitespace splitting, not shlex: this must work even when the quoting is broken.
    if any(_is_credential_token(token) for token in text.split()):
        raise CredentialsInChat()


REDACTED = "[redacted]"

AUDIT_TEXT_LIMIT = 300
"""How much of a refused or invalid command's text the audit trail keeps (then its length)."""

_LAST_SPACE = re.compile(r"\s\S*\Z")


def readable_part(text: str) -> str:
    """The words of ``text`` within :data:`MAX_TEXT_LENGTH` characters; a word cut there is left out.

    Half a word could be half a credential (``user:pw`` without its ``@host``): it goes too.
    """
    if len(text) <= MAX_TEXT_LENGTH:
        return text
    head = text[:MAX_TEXT_LENGTH]
    if not text[MAX_TEXT_LENGTH].isspace():
        last = _LAST_SPACE.search(head)
        head = head[: last.start()] if last else ""
    return head


def audit_text(text: str, limit: int | None = AUDIT_TEXT_LIMIT) -> str:
    """``text`` redacted for the audit trail; past ``limit`` characters cut, with the original length.

    ``push x`` stays ``push x``; a 1 MB word becomes ``… [1048576 characters]``.  Only the
    readable part is redacted (:func:`readable_part`), so this is quick on any text.  With
    ``limit`` None nothing is cut but what is not readable.
    """
    readable = readable_part(text)
    shown = redact(readable)
    if readable == text and (limit is None or len(shown) <= limit):
        return shown
    if limit is not None and len(shown) > limit:
        head = shown[:limit]
        # Cut at a space, so no `[redacted]` is left half-written.
        shown = head[: head.rfind(" ")] if " " in head else head
    return f"{shown}… [{len(text)} characters]"

_VALUE_OPTIONS = frozenset({"--registry", "--host"})


def redact(text: str) -> str:
    """``text`` with every credential option and its value replaced by ``[redacted]``, for the audit trail.

    Uses the detection that refuses credentials, on whitespace-split words so broken
    quoting cannot hide a secret.  An option and the word after it go together (unless
    the value is attached with ``=``); a quote opened in them runs until it closes, or to
    the end of the text.  Everything after ``login`` except ``--registry``/``--host NAME``
    is redacted too, since ``login`` takes no arguments but a user name and a password.
    When unsure it redacts more; it never raises.
    """
    words = normalize(text).split()
    hidden = [False] * len(words)
    index = 0
    while index < len(words):
        if not _is_credential_token(words[index]):
            index += 1
            continue
        last = index + 1 if _takes_next_word(words[index]) else index
        last = _quoted_span_end(words, index, min(last, len(words) - 1))
        for position in range(index, last + 1):
            hidden[position] = True
        index = last + 1
    start = _login_arguments_start(words)
    if start is not None:
        for position, keep in enumerate(_login_options(words[start:]), start):
            hidden[position] = hidden[position] or not keep
    shown: list[str] = []
    for word, secret in zip(words, hidden, strict=False):
        if not secret:
            shown.append(word)
        elif not shown or shown[-1] != REDACTED:
            shown.append(REDACTED)
    return " ".join(shown)


def _takes_next_word(word: str) -> bool:
    """Whether the credential in ``word`` may have its value in the next word.

    ``user:pw@host`` carries all of it; ``--password=x`` and ``TOKEN=x`` too.  ``--password``,
    ``-pSECRET`` (Go's ``-password VALUE``), ``TOKEN=`` and ``--source=-p`` may not.
    """
    word = unicodedata.normalize("NFKC", word)
    parts = word.split("=")
    credential_named = any(_is_credential_option(part) for part in parts) or any(
        _is_credential_name(part) for part in parts[:-1])
    if not credential_named:
        return False  # only a password in a reference or URL: it is all in this word
    value = parts[-1].strip(_WRAPPERS)
    if len(parts) == 1 or not value:
        return True
    form = option_form(value)
    return form is not None and _is_credential_name(form[1])


def _quoted_span_end(words: list[str], first: int, last: int) -> int:
    """The last word of the span starting at ``first``, stretched over any quote it leaves open."""
    open_quote: str | None = None
    position = first
    while True:
        word = words[position]
        for char in word:
            if open_quote is None and char in "'\"":
                open_quote = char
            elif char == open_quote:
                open_quote = None
        # A trailing backslash escapes the space: the value goes on in the next word.
        continues = open_quote is not None or word.endswith("\\")
        if position >= last and not continues:
            return position
        if position == len(words) - 1:
            return position
        position += 1


def _login_arguments_start(words: list[str]) -> int | None:
    """Where the arguments of a ``login`` (or ``can-i login``) start, or None for other commands."""
    plain = [word.strip(_WRAPPERS).lower() for word in words]
    position = 1 if plain[:1] == [COMMAND_WORD] else 0
    if plain[position : position + 1] == ["login"]:
        return position + 1
    if plain[position : position + 1] == ["can-i"] and "login" in plain[position + 1 :]:
        # Options may come before ACTION; any later `login` word counts, since redacting more is safe.
        return plain.index("login", position + 1) + 1
    return None


def _login_options(words: list[str]) -> list[bool]:
    """Which words after ``login`` are kept: only ``--registry``/``--host`` with a plain name."""
    keep = [False] * len(words)
    position = 0
    while position < len(words):
        option, equals, value = ascii_dashes(unicodedata.normalize("NFKC", words[position])).partition("=")
        option = option.lower()
        if option in ("--help", "-h") and not equals:
            keep[position] = True
        elif option in _VALUE_OPTIONS:
            if equals:
                keep[position] = bool(NAME_PATTERN.fullmatch(value))
            elif position + 1 < len(words) and NAME_PATTERN.fullmatch(words[position + 1]):
                keep[position] = keep[position + 1] = True
                position += 1
        position += 1
    return keep


def ascii_dashes(token: str) -> str:
    """``—source`` → ``--source``: what the user typed before the chat client replaced it."""
    form = option_form(token)
    if form is None:
        return token
    dashes, rest = form
    return "-" * dashes + rest
