"""The asyncio Redis client every Vigil process uses: redis-py's, packing commands in C.

redis-py's synchronous connections pack commands with hiredis when it is installed; its
asyncio connections always pack in Python. A worker's batch sends one feature-script call
and one score-script call per patient: for 200 patients the Python packer took 3.8 ms of
the worker's only thread per pipeline, hiredis 0.7 ms for identical bytes (BENCHMARKS.md,
"Records handed over without a task each; commands packed by hiredis"). Here the asyncio
connection class of the URL's scheme (TCP, TLS or a Unix socket) gets redis-py's own
hiredis packing.
"""

from __future__ import annotations

from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection


class HiredisPacking:
    """Mixed in before one of redis-py's asyncio connection classes."""

    def pack_command(self, *args: Any) -> list[bytes]:
        # As redis-py's HiredisRespSerializer: a command name may carry its subcommand.
        if isinstance(args[0], str):
            args = tuple(args[0].encode().split()) + args[1:]
        elif b" " in args[0]:
            args = tuple(args[0].split()) + args[1:]
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            # memoryview, bytearray or a type Redis can't take: redis-py's own packer,
            # which copies the first two and raises its DataError for the last.
            return super().pack_command(*args)  # type: ignore[misc]


_PACKING: dict[type, type] = {}


def connect(url: str, **options: Any) -> aioredis.Redis:
    """`redis.asyncio.Redis.from_url(url, **options)`, commands packed by hiredis."""
    client = aioredis.Redis.from_url(url, **options)
    pool = client.connection_pool
    base = pool.connection_class
    assert issubclass(base, AbstractConnection)
    if base not in _PACKING:
        _PACKING[base] = type(f"Hiredis{base.__name__}", (HiredisPacking, base), {})
    pool.connection_class = _PACKING[base]
    return client
