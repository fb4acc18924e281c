"""Everything stored in a Redis database as one blob, for tests that prove a secret is nowhere in it."""

from __future__ import annotations

import zlib

import redis


def all_redis_values(connection: redis.Redis) -> bytes:
    """Every key and value in the database, whatever its type, as one blob to search."""
    chunks: list[bytes] = []
    for key in connection.scan_iter():
        chunks.append(key)
        kind = connection.type(key)
        if kind == b"string":
            chunks.append(connection.get(key) or b"")
        elif kind == b"hash":
            for field, value in connection.hgetall(key).items():
                chunks += [field, value]
        elif kind == b"list":
            chunks += connection.lrange(key, 0, -1)
        elif kind == b"set":
            chunks += list(connection.smembers(key))
        elif kind == b"zset":
            chunks += [member for member, _ in connection.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            for _, fields in connection.xrange(key):
                for field, value in fields.items():
                    chunks += [field, value]
    # rq stores job payloads zlib-compressed; look inside those too.
    inflated = []
    for chunk in chunks:
        try:
            inflated.append(zlib.decompress(chunk))
        except zlib.error:
            inflated.append(chunk)
    return b"\n".join(inflated)
