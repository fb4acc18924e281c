"""Values read back from Redis: clients made for rq return bytes, the others str; both read the same."""

from __future__ import annotations


def as_str(value: bytes | str | float | None) -> str:
    """``value`` as text: bytes decoded as UTF-8, None as ""."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
