"""How a secret could show up in text: raw, URL-encoded, or inside base64 at any alignment."""

from __future__ import annotations

import base64
import urllib.parse


def base64_forms(secret: str) -> set[str]:
    """The base64 characters that depend on ``secret`` alone, at each byte alignment, in both alphabets."""
    forms = set()
    data = secret.encode()
    for before in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"x" * before + data).decode()
            forms.add(encoded[(4 * before + 2) // 3: 4 * (before + len(data)) // 3])
    return forms


def leaked_forms(text: str, secret: str) -> list[str]:
    forms = {secret, urllib.parse.quote(secret, safe=""), *base64_forms(secret)}
    return sorted(form for form in forms if form in text)
