"""Announcements as Slack messages: one change, or a burst of them coalesced into one message.

A channel gets at most about one message a second, so what waits is grouped: "12 pushes to
`com.example.namespace/*` in the last 3 s", each reference with its digest.  The fallback
``text`` carries every reference and digest it can (notifications and screen readers show only
that); the blocks stay inside Slack's limits (50 blocks, 3,000 characters a section).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from bot.core.announcements import Announcement
from bot.core.text import Text, code, join, plain, t, user
from bot.slack.mrkdwn import mrkdwn

Blocks = list[dict[str, Any]]

SECTION_LIMIT = 3000
TEXT_LIMIT = 3900
"""Slack truncates a message's text past 40,000 characters and advises under 4,000."""
MAX_BLOCKS = 50
SHORT_DIGEST = 19
"""``sha256:`` and 12 hex digits, then an ellipsis."""

_VERB = {"promote": "promoted", "rollback": "rolled back", "delete": "deleted", "push": "pushed"}
_EMOJI = {"push": ":package:", "delete": ":wastebasket:", "promote": ":arrow_up:", "rollback": ":rewind:"}


def short(digest: str | None) -> str:
    """``sha256:1a2b3c4d5e6f…`` (the whole digest stays in the fallback text)."""
    if not digest:
        return "unknown digest"
    return digest if len(digest) <= SHORT_DIGEST else digest[:SHORT_DIGEST] + "…"


def _who(item: Announcement) -> Text:
    if item.by_slack and item.who:
        how = f"{item.how}, " if item.how and item.how != "push" else ""
        return t("{} ({}job {})", user(item.who), plain(how), code(item.job_id or "?"))
    account = code(item.who) if item.who else plain("an unnamed registry account")
    return t("{} from {}", account, code(item.address)) if item.address else account


def _change(item: Announcement, digest_of: Any = short) -> Text:
    """What happened to the reference(s): "new tag", "moved from A to B", "deleted with tags a, b"."""
    if item.kind == "delete":
        if item.tags:
            return t("deleted {} with its tags {}", code(digest_of(item.digest)),
                     join(", ", (code(tag) for tag in item.tags)))
        return t("deleted {}", code(digest_of(item.digest)))
    tag = item.tags[0] if item.tags else "?"
    if item.previous is None:
        return t("new tag {} at {}", code(tag), code(digest_of(item.digest)))
    return t("{} moved from {} to {}", code(tag), code(digest_of(item.previous)), code(digest_of(item.digest)))


def _reference(item: Announcement) -> str:
    if item.kind == "delete":
        return f"{item.server}/{item.repository}@{item.digest}"
    return item.references()[0]


def _when(at: float) -> str:
    return f"<!date^{int(at)}^{{date_short_pretty}} {{time_secs}}|{int(at)}>"


def _section(text: str) -> dict[str, Any]:
    clipped = text if len(text) <= SECTION_LIMIT else text[: SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": clipped}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}]}


def _clip_text(lines: Sequence[str]) -> str:
    """Join lines up to :data:`TEXT_LIMIT`, ending with how many were left out."""
    out: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        rest = len(lines) - index
        if used + len(line) + 1 > TEXT_LIMIT - 40:
            out.append(f"… and {rest} more")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


def _notice_line(item: Announcement) -> str:
    return mrkdwn(t("{} {}", plain(item.text), t("(by {})", user(item.who)) if item.who else Text()))


def _notice(item: Announcement) -> tuple[str, Blocks]:
    """A plain notice (a freeze started or ended): its text, who and when."""
    line = _notice_line(item)
    return line[:TEXT_LIMIT], [_section(f":snowflake: {line}"), _context(_when(item.at))]


def single(item: Announcement) -> tuple[str, Blocks]:
    """One change: its full reference, what changed (digests), who and when (or one notice)."""
    if item.kind == "notice":
        return _notice(item)
    verb = _VERB.get(item.how or item.kind, "pushed")
    headline = t("*{}* {}", plain(verb.capitalize()), code(_reference(item)))
    text = mrkdwn(t("{} {}: {} — by {}", plain(verb.capitalize()), code(_reference(item)),
                    _change(item, digest_of=lambda d: d or "unknown digest"), _who(item)))
    blocks: Blocks = [
        _section(f"{_EMOJI.get(item.how or item.kind, ':package:')} {mrkdwn(headline)}\n{mrkdwn(_change(item))}"),
        _context(f"{mrkdwn(t('by {}', _who(item)))} · {_when(item.at)} · registry {mrkdwn(code(item.registry))}"),
    ]
    return text, blocks


def _scope(items: Sequence[Announcement]) -> str:
    """Where a burst went: the one repository, or the longest common path with ``/*``."""
    repositories = {f"{item.server}/{item.repository}" for item in items}
    if len(repositories) == 1:
        return next(iter(repositories))
    common = os.path.commonprefix([r.split("/") for r in sorted(repositories)])
    return "/".join(common) + "/*" if common else "several registries"


def _noun(items: Sequence[Announcement]) -> str:
    kinds = {item.kind for item in items}
    word = "pushes" if kinds == {"push"} else "deletes" if kinds == {"delete"} else "changes"
    return f"{len(items)} {word}"


def grouped(items: Sequence[Announcement]) -> tuple[str, Blocks]:
    """A burst in one message, ordered by the registry's times; the blocks cut long lists with a count."""
    ordered = sorted(items, key=lambda item: item.at)
    notices = [item for item in ordered if item.kind == "notice"]
    if notices:
        return _with_notices(notices, [item for item in ordered if item.kind != "notice"])
    span = max(0, round(ordered[-1].at - ordered[0].at))
    title = t("*{}* to {} in the last {} s", plain(_noun(ordered)), code(_scope(ordered)), plain(str(max(1, span))))
    lines = [mrkdwn(t("• {} — {} — by {}", code(_reference(item)), _change(item), _who(item))) for item in ordered]
    full = [mrkdwn(t("{}: {} — by {}", code(_reference(item)),
                     _change(item, digest_of=lambda d: d or "unknown digest"), _who(item))) for item in ordered]
    text = _clip_text([mrkdwn(title).replace("*", ""), *full])
    blocks: Blocks = [_section(f":package: {mrkdwn(title)}")]
    chunk: list[str] = []
    shown = 0
    for line in lines:
        if sum(len(x) + 1 for x in chunk) + len(line) > SECTION_LIMIT:
            if len(blocks) >= MAX_BLOCKS - 2:
                break
            blocks.append(_section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
        shown += 1
    if chunk and len(blocks) < MAX_BLOCKS - 1:
        blocks.append(_section("\n".join(chunk)))
    else:
        shown -= len(chunk)
    if shown < len(lines):
        blocks.append(_context(f"… and {len(lines) - shown} more"))
    else:
        blocks.append(_context(f"{_when(ordered[0].at)} – {_when(ordered[-1].at)}"))
    return text, blocks


def _with_notices(notices: Sequence[Announcement], changes: Sequence[Announcement]) -> tuple[str, Blocks]:
    """Notices first, one section each (within the block limit), then the changes that waited with them."""
    lines = [_notice_line(item) for item in notices]
    blocks: Blocks = [_section(f":snowflake: {line}") for line in lines[:MAX_BLOCKS // 2]]
    if len(lines) > MAX_BLOCKS // 2:
        blocks.append(_context(f"… and {len(lines) - MAX_BLOCKS // 2} more notices"))
    text_lines = lines
    if changes:
        changes_text, change_blocks = grouped(changes) if len(changes) > 1 else single(changes[0])
        blocks += change_blocks[:MAX_BLOCKS - len(blocks)]
        text_lines = [*lines, changes_text]
    return _clip_text(text_lines), blocks


def message(items: Sequence[Announcement]) -> tuple[str, Blocks]:
    """The message for what waits in a channel: one change alone, else the burst grouped."""
    return single(items[0]) if len(items) == 1 else grouped(items)
