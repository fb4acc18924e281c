"""What the registry commands answer, as structured text: ``tags``, ``inspect``, ``history``, and a promote's summary.

Pure rendering: the answers come from a registry worker (JSON, already sorted and cut there)
and the tag history from Redis, both read by the caller.  No Slack markup, no Redis.  Every
text stays within :data:`TEXT_BUDGET` characters as a front end shows it (Slack's section
holds 3,000): long lists are cut, saying how many were left out.  Values from the registry
are shown as given, never read as markup, and long ones are shortened.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bot.core.text import Kind, Text, code, command, join, lines, t, user
from workers.kernel.history import Change, TagChange
from workers.kernel.times import iso_time

TEXT_BUDGET = 2800
"""The most characters one text may take as shown (Slack's section limit is 3,000; the rest is margin)."""

SHORT_DIGEST = 12
"""Hex digits of a digest shown where the whole one is not needed (as ``docker images`` shows IDs)."""

LABELS_SHOWN = 20
"""Labels ``inspect`` lists at most (then a count of the others)."""

INSPECT_CHANGES = 5
"""The tag's last changes ``inspect`` shows (``history`` shows them all)."""

PLATFORMS_SHOWN = 16
"""Platforms of an index ``inspect`` lists at most."""

_INSPECT_BUDGETS = {"platforms": 800, "history": 1100}
"""The most that ``inspect``'s platforms and changes may take of :data:`TEXT_BUDGET` (the labels take the rest)."""

_REFERENCE_LIMIT = 300
_VALUE_LIMIT = 100
_KEY_LIMIT = 80
_MORE_RESERVE = 120
"""Room kept for the line that says how many were left out."""

_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
"""A Slack user ID (``U…`` or ``W…``): who asked for a change regops made."""

MEDIA_TYPES: Mapping[str, str] = {
    "application/vnd.oci.image.index.v1+json": "OCI index",
    "application/vnd.oci.image.manifest.v1+json": "OCI image manifest",
    "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
    "application/vnd.docker.distribution.manifest.v2+json": "Docker image manifest",
    "application/vnd.docker.distribution.manifest.v1+prettyjws": "Docker schema 1 manifest (deprecated)",
    "application/vnd.docker.distribution.manifest.v1+json": "Docker schema 1 manifest (deprecated)",
}
"""Manifest media types by their plain names."""


# ---- small pieces -----------------------------------------------------------------------------


def short_digest(digest: str | None) -> Text:
    """The first :data:`SHORT_DIGEST` hex digits of ``sha256:…`` as code; "no digest" for None."""
    if not digest:
        return t("no digest")
    return code(digest.partition(":")[2][:SHORT_DIGEST] or digest[:SHORT_DIGEST])


def human_size(size: int) -> str:
    """Bytes in decimal units, as Docker shows sizes: ``512 B``, ``12.3 MB``, ``1.2 GB``."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if round(value, 1) < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} PB"


def media_type_text(media_type: str) -> Text:
    """``OCI index (`application/vnd.oci.image.index.v1+json`)``; an unknown type by its string alone."""
    if not media_type:
        return t("manifest of unknown type")
    name = MEDIA_TYPES.get(media_type)
    shown = code(media_type, _VALUE_LIMIT)
    return t("{} ({})", name, shown) if name else t("manifest of type {}", shown)


def promote_summary(source_ref: str, target_ref: str, digest: str | None = None) -> Text:
    """`` `a:staging` → `b:prod` (`sha256:…`) ``: what a promote copies where."""
    pinned = t(" ({})", code(digest)) if digest else Text()
    return t("{} → {}{}", code(source_ref, _REFERENCE_LIMIT), code(target_ref, _REFERENCE_LIMIT), pinned)


def shown_length(text: Text) -> int:
    """About how many characters ``text`` takes as a front end shows it (Slack's mrkdwn: the most)."""
    total = 0
    for piece in text:
        escapes = 4 * sum(piece.value.count(ch) for ch in "&<>")
        if piece.kind is Kind.BOLD:
            total += shown_length(Text(piece.children)) + 2
        elif piece.kind is Kind.CODE:
            total += len(piece.value) + escapes + 2
        elif piece.kind is Kind.COMMAND:
            total += len(piece.value) + escapes + len("`/registry `")
        elif piece.kind in (Kind.USER, Kind.CHANNEL):
            total += len(piece.value) + 3
        elif piece.kind is Kind.LINK:
            total += 3 * len(piece.value) + len(piece.label) + 3
        elif piece.kind is Kind.ICON:
            total += 16
        else:
            total += len(piece.value) + escapes
    return total


def fit(items: Iterable[Text], budget: int, most: int | None = None) -> list[Text]:
    """The first ``items`` whose lines (with a newline each) take at most ``budget`` characters, at most ``most``."""
    chosen: list[Text] = []
    used = 0
    for item in items:
        cost = shown_length(item) + 1
        if (most is not None and len(chosen) >= most) or used + cost > budget:
            break
        chosen.append(item)
        used += cost
    return chosen


def cut(items: Sequence[Text], budget: int, most: int | None = None, left: int = 0) -> tuple[list[Text], int]:
    """The ``items`` that fit ``budget`` (at most ``most``), and how many are left out (plus ``left`` never given).

    When some are left out, room is kept for the line that says so.
    """
    whole = fit(items, budget, most)
    if len(whole) == len(items) and not left:
        return whole, 0
    shown = fit(items, budget - _MORE_RESERVE, most)
    return shown, len(items) - len(shown) + left


def _listed(items: Sequence[Text], budget: int, more: Callable[[int], Text], most: int | None = None) -> list[Text]:
    """``items`` cut to fit, and a line from ``more`` for those left out."""
    shown, rest = cut(items, budget, most)
    return [*shown, more(rest)] if rest else shown


def _number(value: object, default: int = 0) -> int:
    """A count from a worker's JSON (a bool or anything unreadable is ``default``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return int(value)


def _when(at: object) -> Text | None:
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        return None
    return t("{}", iso_time(float(at)))


def _tail(value: str, limit: int) -> str:
    """``value`` with its start cut, to keep a reference's image and tag: ``…/ns/app:staging``."""
    return value if len(value) <= limit else "…" + value[-(limit - 1):]


# ---- tags -------------------------------------------------------------------------------------


def tags_text(answer: Mapping[str, Any]) -> Text:
    """``tags IMAGE``: one line a tag with its short digest and, where regops knows it, when it last moved."""
    repository = str(answer.get("repository") or answer.get("image") or "")
    entries = [entry for entry in answer.get("tags") or () if isinstance(entry, Mapping)]
    total = _number(answer.get("total"), len(entries))
    matched = _number(answer.get("matched"), total)
    match = answer.get("match") or None
    where = code(_tail(repository, _REFERENCE_LIMIT))
    if total == 0:
        return t("{} has no tags in the registry.", where)
    if not entries:
        if match:
            return t("No tag of {} matches {} ({} tag(s) in all). Try another {}, or leave it out.", where,
                     code(str(match), _VALUE_LIMIT), total, code("--match GLOB"))
        return t("{} has {} tag(s), but the registry listed none of them: try again.", where, total)
    items = [_tag_line(entry) for entry in entries]
    widest = _tags_header(where, matched, total, match, len(entries))
    shown, rest = cut(items, TEXT_BUDGET - shown_length(widest) - 1, left=max(0, matched - len(entries)))
    out = [_tags_header(where, matched, total, match, len(shown)), *shown]
    if rest:
        out.append(t("… and {} more (use {} or {}).", rest, code("--limit N"), code("--match GLOB")))
    return lines(out)


def _tags_header(where: Text, matched: int, total: int, match: object, shown: int) -> Text:
    counted = t("{} of {}", shown, matched) if shown < matched else t("{}", matched)
    matching = t(" matching {} ({} in all)", code(str(match), _VALUE_LIMIT), total) if match else Text()
    return t("*Tags of {}*: {} tag(s){}, newest change first, then by name:", where, counted, matching)


def _tag_line(entry: Mapping[str, Any]) -> Text:
    tag = str(entry.get("tag") or "")
    digest = entry.get("digest")
    when = _when(entry.get("changed_at"))
    changed = t(" · changed {}", when) if when is not None else Text()
    return t("• {} {}{}", code(tag, 130), short_digest(str(digest) if digest else None), changed)


# ---- history ----------------------------------------------------------------------------------


def who_text(change: TagChange) -> Text:
    """The Slack user who asked for a change regops made, or the registry account (as code) for the others."""
    if not change.who:
        return t("an unknown account")
    if change.how != Change.EVENT and _SLACK_USER.fullmatch(change.who):
        return user(change.who)
    return code(change.who, _VALUE_LIMIT)


def change_line(change: TagChange) -> Text:
    """One change: when, how and by whom, the digest (and the one before), where a promote copied from, the job."""
    now = short_digest(change.digest) if change.digest else t("deleted")
    before = t(" (was {})", short_digest(change.previous)) if change.previous else t(" (new)")
    source = t(", from {}", code(_tail(change.source, 120))) if change.source else Text()
    job = t(", job {}", code(change.job_id)) if change.job_id else Text()
    return t("• {} — {} by {}: {}{}{}{}", iso_time(change.at), change.how or "change", who_text(change), now,
             before, source, job)


def _newest_first(changes: Sequence[TagChange]) -> list[TagChange]:
    return sorted(changes, key=lambda change: -change.at)


def history_text(reference: str, changes: Sequence[TagChange]) -> Text:
    """``history IMAGE TAG``: every change of the tag regops knows of, newest first."""
    where = code(_tail(reference, _REFERENCE_LIMIT))
    if not changes:
        return t("regops knows no change of {} yet. Changes it makes (push, promote, rollback, delete) show "
                 "here; changes made outside regops show once the registry's notifications are set up.", where)
    header = t("*History of {}*: {} change(s) regops knows of, newest first:", where, len(changes))
    body = _listed([change_line(change) for change in _newest_first(changes)],
                   TEXT_BUDGET - shown_length(header) - 1,
                   lambda rest: t("… and {} older change(s), not shown.", rest))
    return lines([header, *body])


# ---- inspect ----------------------------------------------------------------------------------


def inspect_text(answer: Mapping[str, Any], history: Sequence[TagChange]) -> Text:
    """``inspect``: the manifest's digest, type, size and layers, its platforms, labels and the tag's last changes.

    The lists share what the head leaves of :data:`TEXT_BUDGET`: the platforms first, then the
    tag's changes, the labels what is left.
    """
    reference = str(answer.get("reference") or "")
    head = _inspect_head(answer, reference)
    left = TEXT_BUDGET - _cost(head)
    platforms = _platforms(answer.get("platforms"), min(_INSPECT_BUDGETS["platforms"], left // 3))
    left -= _cost(platforms)
    changes = _recent_changes(history, min(_INSPECT_BUDGETS["history"], left // 2)) \
        if history or not _by_digest(reference) else []
    left -= _cost(changes)
    labels = _labels(answer.get("labels"), answer.get("config_of"), left)
    return lines([*head, *platforms, *labels, *changes])


def _cost(parts: Sequence[Text]) -> int:
    """What ``parts`` take as lines of a text (a newline each)."""
    return sum(shown_length(part) + 1 for part in parts)


def _by_digest(reference: str) -> bool:
    return "@" in reference


def _inspect_head(answer: Mapping[str, Any], reference: str) -> list[Text]:
    digest = str(answer.get("digest") or "")
    platforms = answer.get("platforms") or ()
    size, layers = _number(answer.get("size")), _number(answer.get("layers"))
    across = t(" across its {} platform(s)", len(platforms)) if platforms else Text()
    head = [t("*Manifest of {}*", code(_tail(reference, _REFERENCE_LIMIT))),
            t("• digest {}", code(digest, _VALUE_LIMIT) if digest else t("unknown")),
            t("• {}", media_type_text(str(answer.get("media_type") or ""))),
            t("• {} compressed, {} layer(s){}", human_size(size), layers, across)]
    created = answer.get("created")
    config_of = answer.get("config_of")
    of = t(" (the config of {})", code(str(config_of), 40)) if config_of else Text()
    if created:
        head.append(t("• created {}{}", str(created)[:40], of))
    return head


def _platforms(value: object, budget: int) -> list[Text]:
    entries = [entry for entry in value or () if isinstance(entry, Mapping)] if isinstance(value, list) else []
    if not entries:
        return []
    title = t("*Platforms* ({}):", len(entries))
    body = _listed([_platform_line(entry) for entry in entries], budget - _cost([title]),
                   lambda rest: t("… and {} more platform(s).", rest), most=PLATFORMS_SHOWN)
    return [title, *body]


def _platform_line(entry: Mapping[str, Any]) -> Text:
    details = []
    if entry.get("size") is not None:
        details.append(t("{}", human_size(_number(entry.get("size")))))
    if entry.get("layers") is not None:
        details.append(t("{} layer(s)", _number(entry.get("layers"))))
    digest = entry.get("digest")
    rest = t(" — {}", join(", ", details)) if details else Text()
    return t("• {} {}{}", code(str(entry.get("platform") or "unknown"), 40),
             short_digest(str(digest) if digest else None), rest)


def _labels(value: object, config_of: object, budget: int) -> list[Text]:
    labels = value if isinstance(value, Mapping) else {}
    of = t(" of {}", code(str(config_of), 40)) if config_of else Text()
    if not labels:
        return [t("*Labels*{}: none", of)]
    items = [t("• {}: {}", code(str(key), _KEY_LIMIT), code(str(labels[key]), _VALUE_LIMIT))
             for key in sorted(labels, key=str)]
    title = t("*Labels*{} ({}):", of, len(labels))
    body = _listed(items, budget - _cost([title]), lambda rest: t("… and {} more label(s).", rest),
                   most=LABELS_SHOWN)
    return [title, *body]


def _recent_changes(history: Sequence[TagChange], budget: int) -> list[Text]:
    if not history:
        return [t("*Last changes of the tag*: regops knows none yet.")]
    title = t("*Last changes of the tag* (newest first):")
    changes = _newest_first(history)
    recent = fit((change_line(change) for change in changes), budget - _cost([title]) - _MORE_RESERVE,
                 INSPECT_CHANGES)
    out = [title, *recent]
    if len(changes) > len(recent):
        out.append(t("… and {} older change(s): {} shows them all.", len(changes) - len(recent),
                     command("history IMAGE TAG")))
    return out
