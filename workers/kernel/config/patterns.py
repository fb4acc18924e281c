"""The one glob matcher of access rules, and the checks of the globs: each must be able to match something.

Globs read as registries' own repository patterns do (Harbor's name filters,
https://goharbor.io/docs/2.5.0/administration/configuring-replication/create-replication-rules/):

* ``*`` matches any run of characters except ``/``, so ``centos7-*`` is ``centos7-elasticsearch``
  but not ``centos7-x/other-team/app``;
* ``**`` matches any run of characters, ``/`` included (``web/**`` is everything under ``web/``);
  ``**/`` standing as a whole path component also matches no component at all (``web/**/app``
  is ``web/app`` too).  Harbor takes ``**`` only as a whole component and reads ``path**`` as
  ``path*``; here ``**`` crosses ``/`` wherever it stands, since that is what anyone writing it means;
* ``?`` matches one character except ``/``; ``[abc]``, ``[a-z]`` and ``[!abc]`` one character of (or
  not of) the class, never ``/``;
* everything else matches itself, case-sensitively.

Every glob in the config (roles, approvals rules, their checks here) is matched by :func:`glob_match`.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workers.kernel.actions import ACTIONS
from workers.kernel.config.problems import Problems, did_you_mean, join_names

_ONE, _STAR, _GLOBSTAR, _DIRECTORIES = "one", "star", "globstar", "directories"


@dataclass(frozen=True)
class _Piece:
    """One element of a glob: a character (``regex`` says which), ``*``, ``**``, or ``**/`` as a component."""

    kind: str
    regex: str = ""


_REGEX = {_STAR: "[^/]*", _GLOBSTAR: ".*", _DIRECTORIES: "(?:.*/)?"}
_SLASH = _Piece(_ONE, "/")


def _class_end(pattern: str, start: int) -> int:
    """The index of the ``]`` closing the class opened at ``start``, or -1 (then ``[`` is itself)."""
    body = start + 1
    if pattern[body : body + 1] == "!":
        body += 1
    if pattern[body : body + 1] == "]":
        body += 1  # a `]` first in the class is a member, as in fnmatch
    return pattern.find("]", body)


def _class(members: str) -> str:
    negate = members.startswith("!")
    if negate:
        members = members[1:]
    # `-` stays a range; everything else is itself.  A class never matches `/`.
    escaped = "".join("\\" + ch if ch in "\\^[]&~|" else ch for ch in members)
    return f"(?!/)[^{escaped}]" if negate else f"(?!/)[{escaped}]"


def _compiles(members: str) -> bool:
    try:
        re.compile(_class(members))
    except re.error:
        return False
    return True


def _stars_end(pattern: str, index: int) -> int:
    """Where the run of ``*`` starting at ``index`` ends (one ``*`` or a ``**``)."""
    end = index
    while end < len(pattern) and pattern[end] == "*":
        end += 1
    return end


def _pieces(pattern: str) -> list[_Piece]:
    pieces: list[_Piece] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            end = _stars_end(pattern, index)
            whole_component = (index == 0 or pattern[index - 1] == "/") and pattern[end : end + 1] == "/"
            if end - index >= 2 and whole_component:
                if not pieces or pieces[-1].kind != _DIRECTORIES:  # `**/**/` is `**/`
                    pieces.append(_Piece(_DIRECTORIES))
                end += 1
            else:
                pieces.append(_Piece(_GLOBSTAR if end - index >= 2 else _STAR))
            index = end
        elif char == "?":
            pieces.append(_Piece(_ONE, "[^/]"))
            index += 1
        elif char == "[" and (close := _class_end(pattern, index)) != -1 and _compiles(pattern[index + 1 : close]):
            pieces.append(_Piece(_ONE, _class(pattern[index + 1 : close])))
            index = close + 1
        else:
            # A `[` that opens no valid class is itself (the config check reports it: never here).
            pieces.append(_Piece(_ONE, re.escape(char)))
            index += 1
    return pieces


def _as_regex(pieces: list[_Piece]) -> re.Pattern[str] | None:
    """The pieces as an anchored regex that matches in linear time, or None when there is none.

    The text between two stars is matched as fnmatch does: the leftmost place it fits is taken
    for good (an atomic group), so the regex never backtracks into it.  That is only right where
    no later place could do better: when the next star is ``**`` (it takes whatever is left), or
    when this star is ``*`` and the text has no ``/`` (a later place would only leave the next
    ``*`` less).  A pattern with other stars (``**-*-x``) or a ``**/`` component gets None.
    """
    stars = [index for index, piece in enumerate(pieces) if piece.kind != _ONE]
    if any(pieces[index].kind == _DIRECTORIES for index in stars):
        return None
    out = ["".join(piece.regex for piece in pieces[: stars[0] if stars else len(pieces)])]
    for number, position in enumerate(stars):
        star = pieces[position].kind
        end = stars[number + 1] if number + 1 < len(stars) else len(pieces)
        text = "".join(piece.regex for piece in pieces[position + 1 : end])
        if end == len(pieces):
            out.append(_REGEX[star] + text)  # the last star backtracks alone: linear too
        elif pieces[end].kind == _GLOBSTAR or (star == _STAR and _SLASH not in pieces[position + 1 : end]):
            out.append(f"(?>{_REGEX[star]}?{text})")
        else:
            return None
    return re.compile("".join(out) + r"\Z", re.DOTALL)


class _Automaton:
    """The glob as a bit-parallel automaton: one bit a state, a few integer operations a character.

    State ``i`` is "the pieces before ``i`` have matched"; the last state accepts.  A
    character moves every character-piece state that takes it one on (``<< 1``) and leaves
    every star state that takes it where it is; stars may then be skipped (the closure).
    Time is linear in the value's length whatever the pattern, unlike a backtracking regex.
    """

    def __init__(self, pieces: list[_Piece]) -> None:
        kinds: list[str] = []
        self._tests: list[tuple[int, Callable[[str], object]]] = []
        for piece in pieces:
            # `**/` is an entry that takes no character and skips `.*/` altogether or goes into it:
            # into `.*` (a `**`) and then `/`.  Once in, the only way out is that `/`.
            parts = (piece, _Piece(_GLOBSTAR), _SLASH) if piece.kind == _DIRECTORIES else (piece,)
            for part in parts:
                if part.kind == _ONE:
                    self._tests.append((1 << len(kinds), re.compile(part.regex, re.DOTALL).fullmatch))
                kinds.append(part.kind)
        self._star = sum(1 << i for i, kind in enumerate(kinds) if kind == _STAR)
        self._loops = sum(1 << i for i, kind in enumerate(kinds) if kind == _GLOBSTAR)
        self._skip_over = sum(1 << i for i, kind in enumerate(kinds) if kind == _DIRECTORIES)
        self._skip_one = self._star | self._loops | self._skip_over
        self._accept = 1 << len(kinds)
        self._masks: dict[str, tuple[int, int]] = {}
        self._start = self._closure(1)

    def _closure(self, states: int) -> int:
        while True:
            more = states | ((states & self._skip_one) << 1) | ((states & self._skip_over) << 3)
            if more == states:
                return states
            states = more

    def _mask(self, char: str) -> tuple[int, int]:
        """(the character-piece states that take ``char``, the star states that take it)."""
        mask = self._masks.get(char)
        if mask is None:
            steps = sum(bit for bit, test in self._tests if test(char))
            stays = self._loops | (self._star if char != "/" else 0)
            mask = self._masks[char] = (steps, stays)
        return mask

    def match(self, value: str) -> bool:
        states = self._start
        for char in value:
            steps, stays = self._mask(char)
            states = ((states & steps) << 1) | (states & stays)
            if not states:
                return False
            states = self._closure(states)
        return bool(states & self._accept)


@functools.lru_cache(maxsize=4096)
def _matcher(pattern: str) -> Callable[[str], bool]:
    pieces = _pieces(pattern)
    regex = _as_regex(pieces)
    if regex is not None:
        match = regex.match
        return lambda value: match(value) is not None
    return _Automaton(pieces).match


def glob_match(value: str, pattern: str) -> bool:
    """Whether ``value`` matches the glob ``pattern`` (the rules are in this module's text), in linear time."""
    return _matcher(pattern)(value)


def matches_any(value: str, patterns: Iterable[str]) -> bool:
    """Whether ``value`` matches one of ``patterns``."""
    return any(glob_match(value, pattern) for pattern in patterns)


def crosses_separator(pattern: str) -> bool:
    """Whether ``pattern`` has a wildcard that matched a ``/`` before ``*`` stopped at it.

    A ``*`` (not ``**``), a ``?`` and a class like ``[!a]`` did (they were fnmatch's): such a
    pattern now matches fewer image names than it did.
    """
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            end = _stars_end(pattern, index)
            if end - index == 1:
                return True
            index = end
        elif char == "?":
            return True
        elif char == "[" and (close := _class_end(pattern, index)) != -1:
            if fnmatch.fnmatchcase("/", pattern[index : close + 1]):
                return True
            index = close + 1
        else:
            index += 1
    return False


GLOB_KEYS = (
    ("images", "image name globs, like [centos7-*, web/**]"),
    ("tags", 'tag globs, like ["*"]'),
    ("registries", 'registry name globs, like ["*"]'),
    ("hosts", "Docker host name globs, like [build-*]"),
    ("sources", 'local image globs, like ["centos7-*", "sha256:*"]'),
)
"""The glob lists of a role, with what each holds; approvals rules take the first two."""

SEPARATED_KEYS = ("images",)
"""The glob lists whose names have ``/`` in them and that had globs before ``*`` stopped at ``/``."""


def check_action_patterns(
    problems: Problems, patterns: Sequence[str], path: str, actions: Sequence[str] = ACTIONS
) -> None:
    for index, pattern in enumerate(patterns):
        if not any(glob_match(action, pattern) for action in actions):
            problems.add(
                f"{path}[{index}]",
                f"`{pattern}` matches no action; {did_you_mean(pattern, actions)}actions are "
                f"{join_names(actions)}, or a glob like `*`",
            )


def unclosed_bracket(pattern: str) -> bool:
    """True when a ``[`` opens a character class that never closes (it would match a ``[`` itself)."""
    position = pattern.find("[")
    while position != -1:
        close = _class_end(pattern, position)
        if close == -1:
            return True
        position = pattern.find("[", close + 1)
    return False


def invalid_class(pattern: str) -> str | None:
    """The first class that cannot be compiled (a range like ``[z-a]``), or None."""
    position = pattern.find("[")
    while position != -1:
        close = _class_end(pattern, position)
        if close == -1:
            return None
        if not _compiles(pattern[position + 1 : close]):
            return pattern[position : close + 1]
        position = pattern.find("[", close + 1)
    return None


def check_globs(problems: Problems, patterns: Sequence[str], path: str, kind: str) -> None:
    """Globs that can never match what they are matched against are mistakes, reported here."""
    for index, pattern in enumerate(patterns):
        where = f"{path}[{index}]"
        if unclosed_bracket(pattern):
            problems.add(where, f"`{pattern}`: a `[` is never closed; close it with `]`, or drop it")
        elif (bad := invalid_class(pattern)) is not None:
            problems.add(where, f"`{pattern}`: `{bad}` is not a valid class: give ranges low to high, like `[a-z]`")
        elif kind == "images" and pattern != pattern.lower():
            problems.add(
                where, f"`{pattern}` can never match: image names are lower-case; use `{pattern.lower()}`"
            )
        elif kind == "images" and (":" in pattern or "@" in pattern):
            problems.add(
                where,
                f"`{pattern}` can never match: give the image name only, and the tag under `tags`",
            )
        elif kind == "tags" and ("/" in pattern or ":" in pattern):
            problems.add(where, f"`{pattern}` can never match: a tag has no `/` or `:`")


def separator_warning(pattern: str) -> str | None:
    """What to tell the operator about an image glob that ``*`` stopping at ``/`` narrowed, or None."""
    if not crosses_separator(pattern):
        return None
    return (
        f"`{pattern}`: `*` and `?` no longer match a `/` (as in Harbor's patterns), so this matches fewer "
        "image names than before (`centos7-*` is `centos7-x` but not `centos7-x/y`); "
        "where names with a `/` are meant, write `**`, which does (`web/**`, `**`)"
    )


def check_named_globs(
    problems: Problems, patterns: Sequence[str], path: str, names: Sequence[str] | None, noun: str
) -> None:
    """Registry and host globs must each match a configured name (unknown names: nothing to check)."""
    if names is None:
        return
    for index, pattern in enumerate(patterns):
        if not any(glob_match(name, pattern) for name in names):
            problems.add(
                f"{path}[{index}]",
                f"`{pattern}` matches no configured {noun}; {did_you_mean(pattern, names)}"
                f"defined: {join_names(names)}",
            )


def read_globs(
    problems: Problems, data: Mapping[str, Any], path: str, keys: Sequence[tuple[str, str]]
) -> dict[str, tuple[str, ...]]:
    """The glob lists among ``keys`` that ``data`` gives, each checked."""
    globs: dict[str, tuple[str, ...]] = {}
    for key, what in keys:
        if key in data:
            patterns = problems.strings(data[key], f"{path}.{key}", what)
            if patterns is not None:
                check_globs(problems, patterns, f"{path}.{key}", key)
                globs[key] = patterns
    return globs
