"""`features.client.connect`: redis-py's asyncio client with commands packed by hiredis,
the same bytes on the wire, against a real redis-server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from features.client import HiredisPacking, connect
from tests.conftest import Services

SCRIPT_CALL = (
    "EVALSHA",
    "a" * 40,
    2,
    "vigil:p:{P00001}:samples:v2",
    "vigil:p:{P00001}:ids:v2",
    172_800_000,
    0.25,
    "3f2b-é",
    b"\x00\xff packed \r\n",
)


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("redis://localhost:6379/0", Connection),
        ("rediss://localhost:6380/0", SSLConnection),
        ("unix:///run/redis.sock", UnixDomainSocketConnection),
    ],
)
def test_each_scheme_keeps_its_connection_class(url: str, base: type) -> None:
    cls = connect(url).connection_pool.connection_class
    assert issubclass(cls, HiredisPacking) and issubclass(cls, base)


def _wire(parts: list) -> bytes:
    return b"".join(bytes(part) for part in parts)


def test_packs_the_bytes_redis_py_packs() -> None:
    ours = connect("redis://localhost:6379/0").connection_pool.make_connection()
    theirs = Connection()
    assert ours.pack_command(*SCRIPT_CALL) == [_wire(theirs.pack_command(*SCRIPT_CALL))]
    commands = [SCRIPT_CALL, ("CONFIG GET", "maxmemory"), ("SET", "k", memoryview(b"v"))]
    assert _wire(ours.pack_commands(commands)) == _wire(theirs.pack_commands(commands))
    # what hiredis refuses goes to redis-py's packer, which refuses it as it always did
    with pytest.raises(DataError):
        ours.pack_command("SET", "k", True)


def test_round_trips_through_redis(services: Services) -> None:
    async def run() -> None:
        client = connect(services.redis_url)
        key = f"vigil:test-client-{uuid.uuid4().hex[:6]}"
        try:
            value = bytes(range(256)) + "é\r\n".encode()
            async with client.pipeline(transaction=False) as pipe:
                pipe.set(key, value, px=60_000)
                pipe.hset(f"{key}:h", mapping={"n": 7, "x": 0.1, "b": bytearray(b"ba")})
                pipe.expire(f"{key}:h", 60)
                await pipe.execute()
            assert await client.get(key) == value
            assert await client.hgetall(f"{key}:h") == {b"n": b"7", b"x": b"0.1", b"b": b"ba"}
            assert await client.eval("return ARGV[1] .. ARGV[2]", 0, "é", 12) == "é12".encode()
        finally:
            await client.delete(key, f"{key}:h")
            await client.aclose()

    asyncio.run(run())
