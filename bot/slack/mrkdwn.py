"""Structured text → Slack mrkdwn: mentions and links as Slack writes them, every word escaped.

Only this module knows Slack's markup.  Every piece of text is escaped (``&``, ``<``, ``>``),
so neither regops' words nor a person's input can mention, link or break out; the mentions
and links regops means are written by the renderer itself, never escaped.
"""

from __future__ import annotations

from bot.core.text import Icon, Kind, Piece, Text

SLASH_COMMAND = "/registry"
"""The slash command the Slack app defines (the manifest in deploy/ names the same)."""

EMOJI = {
    Icon.QUEUED: ":inbox_tray:",
    Icon.APPROVAL: ":lock:",
    Icon.DENIED: ":no_entry:",
    Icon.WARNING: ":warning:",
    Icon.REPEAT: ":repeat:",
}


def escape(text: str) -> str:
    """Slack's three control characters escaped, so the text cannot mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(value: str) -> str:
    # A backtick would end the span early; Slack has no escape for it inside one.
    return "`" + escape(value.replace("`", "'")) + "`"


def render_piece(piece: Piece) -> str:
    kind = piece.kind
    if kind in (Kind.PLAIN, Kind.INPUT):
        return escape(piece.value)
    if kind is Kind.CODE:
        return _code(piece.value)
    if kind is Kind.COMMAND:
        return _code(f"{SLASH_COMMAND} {piece.value}".rstrip())
    if kind is Kind.BOLD:
        inner = "".join(render_piece(child) for child in piece.children)
        return f"*{inner}*" if inner.strip() else inner
    if kind is Kind.USER:
        return f"<@{escape(piece.value)}>"
    if kind is Kind.CHANNEL:
        return f"<#{escape(piece.value)}>"
    if kind is Kind.LINK:
        url = escape(piece.value).replace("|", "%7C")
        return f"<{url}|{escape(piece.label)}>" if piece.label else f"<{url}>"
    if kind is Kind.ICON:
        emoji = EMOJI.get(Icon(piece.value))
        return f"{emoji} " if emoji else ""
    raise ValueError(f"unknown piece kind {kind!r}")


def mrkdwn(text: Text) -> str:
    """The text as Slack mrkdwn."""
    return "".join(render_piece(piece) for piece in text)
