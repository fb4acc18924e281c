"""Structured text → terminal text: no Slack markup, bold only where a terminal shows it."""

from __future__ import annotations

from bot.core.text import Kind, Piece, Text

_BOLD, _RESET = "\x1b[1m", "\x1b[0m"


def _piece(piece: Piece, styled: bool) -> str:
    kind = piece.kind
    if kind is Kind.BOLD:
        inner = "".join(_piece(child, styled) for child in piece.children)
        return f"{_BOLD}{inner}{_RESET}" if styled and inner else inner
    if kind is Kind.USER:
        return f"@{piece.value}"
    if kind is Kind.CHANNEL:
        return f"#{piece.value}"
    if kind is Kind.LINK:
        return f"{piece.label} ({piece.value})" if piece.label else piece.value
    if kind is Kind.ICON:
        return ""
    return piece.value


def render(text: Text, *, styled: bool = False) -> str:
    """The text for a terminal; ``styled`` adds ANSI bold (only when writing to a terminal)."""
    return "".join(_piece(piece, styled) for piece in text)
