"""The hand-written RESP packer equals hiredis' output and works on a real server."""

from __future__ import annotations

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.redis_client import RedisClient
from libs.redis_client.resp import SetPublishPacker
from libs.redis_client.writer import PipelinedWriter


@given(
    key=st.binary(min_size=1, max_size=64),
    channel=st.binary(min_size=1, max_size=64),
    value=st.binary(max_size=2048),
    message=st.binary(max_size=2048),
    ttl=st.integers(min_value=1, max_value=10**9),
)
def test_same_bytes_as_hiredis(
    key: bytes, channel: bytes, value: bytes, message: bytes, ttl: int
) -> None:
    packer = SetPublishPacker(ttl)
    expected = hiredis.pack_command((b"SET", key, value, b"EX", ttl)) + hiredis.pack_command(
        (b"PUBLISH", channel, message)
    )
    assert packer.pack(packer.heads(key, channel), value, message) == expected


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SetPublishPacker(0)


async def test_real_server_takes_it(redis_client: RedisClient) -> None:
    packer = SetPublishPacker(77)
    heads = packer.heads(b"price:BRK.B", b"price.updated.BRK.B")
    payload = packer.pack(heads, b'{"mid":"1.5"}\r\n\x00binary', b"event")
    writer: PipelinedWriter[None] = PipelinedWriter(redis_client.params)
    await writer.connect()
    try:
        writer.send(payload, 2, None)
        assert await writer.flush(5)
        assert writer.reply_errors == 0
    finally:
        await writer.close()
    assert await redis_client.get("price:BRK.B") == b'{"mid":"1.5"}\r\n\x00binary'
    assert 70 <= await redis_client.ttl("price:BRK.B") <= 77
