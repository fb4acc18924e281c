"""Structured text: what the core says, built from a few kinds of pieces that each front end renders.

The core never writes Slack markup (nor terminal escapes).  It says "this is a code span",
"mention this user", "this came from the user", and the Slack adapter renders mrkdwn
(escaping every piece, so no user input can mention or link), while the console renders
plain terminal text.  Pieces:

* plain text written by regops, and **input**: text a person typed, shown as given;
* a **code** span (names, tags, references, job ids), **bold**, a **link**;
* a **user** or a **channel**, by ID; a **command** a person can type (the front end adds
  its own prefix: ``/registry`` in Slack, nothing in the console);
* an **icon** by neutral name (``denied``, ``warning``…), which a front end may draw or drop.

Texts are built with :func:`t`, a template whose own literal may mark code spans with
backticks and bold with asterisks; the values given for its ``{}`` placeholders are never
read as markup.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    PLAIN = "plain"
    INPUT = "input"
    CODE = "code"
    BOLD = "bold"
    USER = "user"
    CHANNEL = "channel"
    LINK = "link"
    COMMAND = "command"
    ICON = "icon"


class Icon(StrEnum):
    """The icons the core may ask for; front ends map them to what they can show."""

    QUEUED = "queued"
    APPROVAL = "approval"
    DENIED = "denied"
    WARNING = "warning"
    REPEAT = "repeat"


@dataclass(frozen=True)
class Piece:
    """One piece of text. ``children`` only for bold; ``label`` only for links."""

    kind: Kind
    value: str = ""
    children: tuple[Piece, ...] = ()
    label: str = ""


@dataclass(frozen=True)
class Text:
    """An immutable sequence of pieces; ``+`` concatenates (a ``str`` operand is plain text)."""

    pieces: tuple[Piece, ...] = ()

    def __post_init__(self) -> None:
        # Adjacent plain pieces become one, so that equal words make equal texts however they were built.
        merged: list[Piece] = []
        for piece in self.pieces:
            if merged and piece.kind is Kind.PLAIN and merged[-1].kind is Kind.PLAIN:
                merged[-1] = Piece(Kind.PLAIN, merged[-1].value + piece.value)
            elif piece.value or piece.children or piece.kind is Kind.BOLD:
                merged.append(piece)
        if len(merged) != len(self.pieces):
            object.__setattr__(self, "pieces", tuple(merged))

    def __add__(self, other: Text | str) -> Text:
        return Text(self.pieces + as_text(other).pieces)

    def __radd__(self, other: str) -> Text:
        return Text(as_text(other).pieces + self.pieces)

    def __bool__(self) -> bool:
        return any(piece.value or piece.children for piece in self.pieces)

    def __iter__(self) -> Iterator[Piece]:
        return iter(self.pieces)

    def plain(self) -> str:
        """The words only, with no markup at all: for logs, the audit trail and comparisons."""
        return "".join(_plain(piece) for piece in self.pieces)

    __str__ = plain

    def to_json(self) -> str:
        """A compact JSON form, for texts that travel through Redis (e.g. notices)."""
        return json.dumps([_dump(piece) for piece in self.pieces], separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str) -> Text:
        """The text :meth:`to_json` wrote; anything unreadable becomes plain text of itself."""
        try:
            return cls(tuple(_load(item) for item in json.loads(data)))
        except (ValueError, TypeError, KeyError, AttributeError):
            return plain(data)


def _plain(piece: Piece) -> str:
    if piece.kind is Kind.BOLD:
        return "".join(_plain(child) for child in piece.children)
    if piece.kind is Kind.LINK:
        return f"{piece.label} ({piece.value})" if piece.label else piece.value
    if piece.kind is Kind.ICON:
        return ""
    return piece.value


def _dump(piece: Piece) -> dict[str, object]:
    data: dict[str, object] = {"k": piece.kind.value, "v": piece.value}
    if piece.children:
        data["c"] = [_dump(child) for child in piece.children]
    if piece.label:
        data["l"] = piece.label
    return data


def _load(item: dict[str, object]) -> Piece:
    children = item.get("c") or []
    assert isinstance(children, list)
    return Piece(Kind(str(item["k"])), str(item.get("v", "")), tuple(_load(child) for child in children),
                 str(item.get("l", "")))


EMPTY = Text()


def plain(value: str) -> Text:
    """Text written by regops, taken as it is (no markup read)."""
    return Text((Piece(Kind.PLAIN, value),)) if value else EMPTY


def user_input(value: str) -> Text:
    """Text a person typed (or a worker or registry reported): shown as given, never as markup."""
    return Text((Piece(Kind.INPUT, value),)) if value else EMPTY


def code(value: object, limit: int | None = None) -> Text:
    """A code span; ``limit`` cuts a long value (typed input) with an ellipsis."""
    shown = str(value)
    if limit is not None and len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return Text((Piece(Kind.CODE, shown),))


def codes(values: Iterable[object], separator: str = ", ") -> Text:
    """Code spans joined by ``separator``."""
    return join(separator, (code(value) for value in values))


def bold(value: Text | str) -> Text:
    return Text((Piece(Kind.BOLD, children=as_text(value).pieces),))


def user(user_id: str) -> Text:
    """A mention of the person with this ID."""
    return Text((Piece(Kind.USER, user_id),))


def channel(channel_id: str) -> Text:
    """A mention of the channel with this ID."""
    return Text((Piece(Kind.CHANNEL, channel_id),))


def link(url: str, label: str = "") -> Text:
    return Text((Piece(Kind.LINK, url, label=label),))


def command(words: str) -> Text:
    """A command as a person types it, without the front end's prefix (``push IMAGE TAG``)."""
    return Text((Piece(Kind.COMMAND, words),))


def icon(name: Icon) -> Text:
    return Text((Piece(Kind.ICON, name.value),))


def join(separator: Text | str, parts: Iterable[Text | str]) -> Text:
    pieces: list[Piece] = []
    glue = as_text(separator).pieces
    for index, part in enumerate(parts):
        if index:
            pieces.extend(glue)
        pieces.extend(as_text(part).pieces)
    return Text(tuple(pieces))


def lines(parts: Iterable[Text | str]) -> Text:
    """Parts one per line."""
    return join("\n", parts)


def as_text(value: Text | str) -> Text:
    """A Text as it is; a ``str`` as plain text (no markup read)."""
    return value if isinstance(value, Text) else plain(value)


# ---- templates ------------------------------------------------------------------------------

# A code span; or bold: `*` after a space (or at the start) before a word, up to a `*` after a word
# and before a space or punctuation (so `["*"]` and `centos7-*` stay plain); or a placeholder.
_TOKEN = re.compile(r"`[^`]*`|(?<![^\s(])\*(?=[\w{])[^*\n]*?(?<=[\w})])\*(?=$|[\s.,:;!?)\]—])|\{\}")


def t(template: str, *parts: Text | str | float) -> Text:
    """A text from a template written by regops, its ``{}`` filled in order with ``parts``.

    In the template's own literal, a backtick span is a code span and ``*words*`` is bold; a
    ``{}`` inside a code span puts the part's words there.  A ``str`` part is input (shown as
    given, never read as markup); numbers are plain; Text parts are kept as they are.
    """
    filled = iter(parts)
    text = _parse(template, filled)
    left = list(filled)
    if left:
        raise ValueError(f"template has fewer placeholders than parts ({len(left)} left over)")
    return text


def markup(value: str) -> Text:
    """A message written by regops as a plain string with backtick code spans and ``*bold*``."""
    return _parse(value, iter(()))


def _part(value: Text | str | float) -> Text:
    if isinstance(value, Text):
        return value
    if isinstance(value, (int, float)):
        return plain(str(value))
    return user_input(value)


_Token = tuple[str, object]
"""("plain", text) · ("slot", None) · ("code", chunks around its slots) · ("bold", inner tokens)."""


@functools.lru_cache(maxsize=2048)
def _tokens(template: str) -> tuple[_Token, ...]:
    """A template read once: templates are regops' own literals, so there are few, used again and again."""
    tokens: list[_Token] = []
    position = 0
    for match in _TOKEN.finditer(template):
        if match.start() > position:
            tokens.append(("plain", template[position:match.start()]))
        token = match.group()
        if token == "{}":
            tokens.append(("slot", None))
        elif token.startswith("`"):
            tokens.append(("code", tuple(token[1:-1].split("{}"))))
        else:
            tokens.append(("bold", _tokens(token[1:-1])))
        position = match.end()
    if position < len(template):
        tokens.append(("plain", template[position:]))
    return tuple(tokens)


def _parse(template: str, parts: Iterator[Text | str | int | float]) -> Text:
    return Text(_fill(_tokens(template), parts))


def _fill(tokens: tuple[_Token, ...], parts: Iterator[Text | str | int | float]) -> tuple[Piece, ...]:
    pieces: list[Piece] = []
    for kind, value in tokens:
        if kind == "plain":
            pieces.append(Piece(Kind.PLAIN, str(value)))
        elif kind == "slot":
            pieces.extend(_part(_next(parts)).pieces)
        elif kind == "code":
            assert isinstance(value, tuple)
            body = value[0] + "".join(_words(_next(parts)) + chunk for chunk in value[1:])
            pieces.append(Piece(Kind.CODE, body))
        else:
            assert isinstance(value, tuple)
            pieces.append(Piece(Kind.BOLD, children=_fill(value, parts)))
    return tuple(pieces)


def _next(parts: Iterator[Text | str | int | float]) -> Text | str | int | float:
    try:
        return next(parts)
    except StopIteration:
        raise ValueError("template has more placeholders than parts") from None


def _words(value: Text | str | float) -> str:
    return value.plain() if isinstance(value, Text) else str(value)
