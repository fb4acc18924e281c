"""The registry commands' grammar: ``promote``, ``delete``, ``rollback``, ``tags``, ``inspect``, ``history``.

They work on the registry over its API, so none takes ``--host``.  A digest is written
``sha256:`` and 64 hex digits (``@`` before it where it stands for a tag); a tag never has a
``:``, so a word is read as one or the other without doubt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bot.core.errors import CommandError
from bot.core.grammar.arguments import (
    canonical_text,
    check_count,
    check_digest,
    check_limit,
    check_match,
    checked,
    looks_like_digest,
    named,
    word,
)
from bot.core.grammar.freezes import override_of
from bot.core.grammar.help import usage_line
from bot.core.grammar.spec import TAGS_DEFAULT_LIMIT, TAGS_MAX_LIMIT, Command, Spec
from bot.core.text import Text, code, markup, t
from workers.kernel.actions import READ_ACTIONS, REGISTRY_ACTIONS
from workers.kernel.references import check_image_name, check_tag

REGISTRY_COMMANDS: tuple[str, ...] = (*REGISTRY_ACTIONS, *READ_ACTIONS)
"""The commands this module parses."""

_NOT_A_DIGEST: Mapping[str, str] = {
    "promote": "TO names the tag to make; a digest names content, not a tag",
    "delete": "give the tag to delete; deleting it deletes the manifest it points at",
    "rollback": "give the tag, and the digest to point it at with `--to`: `rollback IMAGE TAG --to sha256:…`",
    "history": "regops keeps a history per tag: give the tag",
}
"""Why a digest cannot stand where each command wants a tag."""

_OPTION_HINTS: Mapping[tuple[str, str], str] = {
    ("promote", "to"): "TO is the third argument: `promote IMAGE FROM TO`",
    ("promote", "from"): "FROM is the second argument: `promote IMAGE FROM TO`",
    ("promote", "to-tag"): "TO is the third argument: `promote IMAGE FROM TO`",
    ("delete", "force"): "To delete a manifest that other tags point at too (they go with it), give `--shared`",
    ("inspect", "digest"): "Give the digest after the image: `inspect IMAGE@sha256:…`",
    ("rollback", "digest"): "Give the digest with `--to`: `rollback IMAGE TAG --to sha256:…`",
}


def option_hint(action: str, option: str) -> Text:
    """A sentence (with a leading space) for an option ``action`` does not take, or nothing."""
    if option == "host" and action in REGISTRY_COMMANDS:
        return t(" {} needs no Docker host: regops works on the registry over its API.", code(action))
    hint = _OPTION_HINTS.get((action, option))
    return t(" {}.", markup(hint)) if hint else Text()


def parse_registry_command(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    """One of :data:`REGISTRY_COMMANDS`, its options already split off."""
    return _PARSERS[spec.action](spec, positionals, options)


def _tag_or_digest(value: str, label: str, usage: Text, pinned: bool = False) -> tuple[str | None, str | None]:
    """(tag, None) or (None, digest) for a word that may be either (``promote``'s FROM, ``inspect``'s TAG);
    with ``pinned``, also (tag, digest) for ``TAG@DIGEST`` (``promote``'s ``staging@sha256:…``)."""
    tag_part, at, digest_part = value.partition("@")
    if pinned and at and tag_part:
        return checked(check_tag, tag_part), check_digest(digest_part, t("the digest {} is pinned to", label), usage)
    if looks_like_digest(value):
        return None, check_digest(value, t("{}", label), usage)
    return checked(check_tag, value), None


def _tag(action: str, value: str, label: str, usage: Text) -> str:
    """A word that must be a tag; a digest there is refused with what to write instead."""
    if looks_like_digest(value):
        raise CommandError(t("{} of {} is a tag, and {} is a digest: {}. Usage: {}", label, code(action),
                             word(value), markup(_NOT_A_DIGEST[action]), usage))
    return checked(check_tag, value)


def _shown(tag: str | None, digest: str | None) -> str:
    """A tag, a digest or a pinned tag as the canonical text writes it where a tag may stand."""
    return f"{tag or ''}@{digest}" if digest else tag or ""


def _promote(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    usage = usage_line(spec)
    check_count(spec.action, spec.arguments, 0, positionals, usage)
    image = checked(check_image_name, positionals[0])
    tag, digest = _tag_or_digest(positionals[1], "FROM", usage, pinned=True)
    target_tag = _tag("promote", positionals[2], "TO", usage)
    target_image = checked(check_image_name, options["to-image"]) if "to-image" in options else None
    registry, to_registry = named(options, "registry"), named(options, "to-registry")
    if tag == target_tag and target_image in (None, image) and to_registry in (None, registry):
        raise CommandError(t("{} would make {} point at itself: give another TO, or a {} or {}. Usage: {}",
                             code("promote"), code(f"{image}:{tag}"), code("--to-image NAME"),
                             code("--to-registry NAME"), usage))
    return Command(action="promote", image=image, tag=tag, digest=digest, target_image=target_image,
                   target_tag=target_tag, registry=registry, to_registry=to_registry,
                   override=override_of(options, usage),
                   text=canonical_text("promote", [image, _shown(tag, digest), target_tag], options))


def _delete(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    image, tag = _image_and_tag(spec, positionals)
    return Command(action="delete", image=image, tag=tag, shared="shared" in options,
                   registry=named(options, "registry"), override=override_of(options, usage_line(spec)),
                   text=canonical_text("delete", [image, tag], options))


def _rollback(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    image, tag = _image_and_tag(spec, positionals)
    digest = check_digest(options["to"], code("--to"), usage_line(spec)) if "to" in options else None
    shown = {**options, "to": digest} if digest else options
    return Command(action="rollback", image=image, tag=tag, digest=digest, registry=named(options, "registry"),
                   override=override_of(options, usage_line(spec)),
                   text=canonical_text("rollback", [image, tag], shown))


def _history(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    image, tag = _image_and_tag(spec, positionals)
    return Command(action="history", image=image, tag=tag, registry=named(options, "registry"),
                   text=canonical_text("history", [image, tag], options))


def _image_and_tag(spec: Spec, positionals: list[str]) -> tuple[str, str]:
    usage = usage_line(spec)
    check_count(spec.action, spec.arguments, 0, positionals, usage)
    return checked(check_image_name, positionals[0]), _tag(spec.action, positionals[1], "TAG", usage)


def _tags(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    usage = usage_line(spec)
    check_count(spec.action, spec.arguments, 0, positionals, usage)
    image = checked(check_image_name, positionals[0])
    limit = check_limit(options["limit"], TAGS_MAX_LIMIT, usage) if "limit" in options else TAGS_DEFAULT_LIMIT
    return Command(action="tags", image=image, match=check_match(options["match"]) if "match" in options else None,
                   limit=limit, registry=named(options, "registry"),
                   text=canonical_text("tags", [image], options))


def _inspect(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    """``inspect IMAGE TAG``, ``inspect IMAGE@DIGEST`` (or ``inspect IMAGE @DIGEST``, as pasted apart)."""
    usage = usage_line(spec)
    tag: str | None
    digest: str | None
    if len(positionals) == 1 and "@" in positionals[0]:
        name, _, pinned = positionals[0].partition("@")
        image = checked(check_image_name, name)
        tag, digest = None, check_digest(pinned, t("the digest"), usage)
    else:
        check_count(spec.action, spec.arguments, 0, positionals, usage)
        image = checked(check_image_name, positionals[0])
        tag, digest = _tag_or_digest(positionals[1], "TAG", usage)
    shown = [image, tag] if tag is not None else [f"{image}@{digest}"]
    return Command(action="inspect", image=image, tag=tag, digest=digest, registry=named(options, "registry"),
                   text=canonical_text("inspect", shown, options))


_PARSERS: Mapping[str, Callable[[Spec, list[str], Mapping[str, str]], Command]] = {
    "promote": _promote,
    "delete": _delete,
    "rollback": _rollback,
    "tags": _tags,
    "inspect": _inspect,
    "history": _history,
}
