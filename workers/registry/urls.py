"""Where a registry is: the base URL of a configured ``host[:port]``."""

from __future__ import annotations

import ipaddress


def _host(server: str) -> str:
    if server.startswith("["):
        return server[1:].partition("]")[0]
    return server.rpartition(":")[0] if server.count(":") == 1 else server


def is_loopback(server: str) -> bool:
    """Whether ``host[:port]`` names this machine: 127.0.0.0/8, ``localhost`` or ``::1``."""
    host = _host(server).lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_base_url(server: str, insecure: bool | None = None) -> str:
    """``https://server``, or ``http://server`` when ``insecure`` is True or, unless it is False, on loopback.

    (The Docker engine trusts loopback registries over plain HTTP the same way.)
    """
    plain = insecure if insecure is not None else is_loopback(server)
    return f"{'http' if plain else 'https'}://{server}"
