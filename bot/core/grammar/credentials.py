"""Credentials in chat: recognised in any spelling, refused before parsing, redacted for the audit trail.

A message that carries a password or user option is never turned into a command and its
text is never echoed.  :func:`redact` uses the same detection to give the audit trail a
copy of the text without any credential in it.  Also here: undoing what chat clients do
to typed text (curly quotes, long dashes, invisible spaces), which the detection needs first.
"""

from __future__ import annotations

import difflib
import unicodedata

from bot.core.errors import CredentialsInChat
from bot.core.grammar.spec import COMMAND_WORD
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
    # `--source=-pSECRET` hides an option after `=`: every `=`-separated part is looked at,
    # iteratively, so a long chain of `=` cannot exhaust the stack.
    return any(_is_credential_option(part) for part in unicodedata.normalize("NFKC", token).split("="))


def _is_credential_option(text: str) -> bool:
    form = option_form(text.lstrip(_WRAPPERS))
    if form is None:
        return False
    dashes, rest = form
    name = rest.lstrip(_WRAPPERS).lower()
    if not name:
        return False
    if dashes == 1:
        # Short options take their value attached (`-pSECRET`, `-uNAME`), and Go's flag
        # package accepts `-password` too: any -p… or -u… is a credential.
        return name[0] in "pu"
    name = name.strip(_WRAPPERS).replace("_", "-")
    if name in ("p", "u", "pwd") or name.startswith(("pass", "pasw", "pw", "user", "usr")):
        return True
    return bool(difflib.get_close_matches(name, _CREDENTIAL_OPTIONS, n=1, cutoff=0.75))


def refuse_credentials(text: str) -> None:
    # Whitespace splitting, not shlex: this must work even when the quoting is broken.
    if any(_is_credential_token(token) for token in text.split()):
        raise CredentialsInChat()


REDACTED = "[redacted]"

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
        last = index if _has_attached_value(words[index]) else index + 1
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


def _has_attached_value(word: str) -> bool:
    _, equals, value = unicodedata.normalize("NFKC", word).partition("=")
    return bool(equals) and bool(value.strip(_WRAPPERS))


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
