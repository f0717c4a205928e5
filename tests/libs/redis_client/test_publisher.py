"""EventPublisher: events reach a real redis.asyncio subscriber as exact JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import pytest_asyncio
import redis.asyncio
import redis.exceptions
from pydantic import BaseModel

from libs.redis_client import (
    EventPublisher,
    RedisClient,
    RedisConnectionError,
    RedisConnectionParams,
)
from tests.fixtures.redis import closed_port

__all__: list[str] = []

CHANNEL = "price.updated.AAPL"
WAIT = 5.0


class Event(BaseModel):
    symbol: str
    price: Decimal
    timestamp: datetime


class Subscriber:
    """A plain redis-py pub/sub subscriber: what a consumer of our events runs."""

    def __init__(self, pubsub: redis.asyncio.client.PubSub) -> None:
        self.pubsub = pubsub

    async def next_data(self) -> bytes:
        async with asyncio.timeout(WAIT):
            while True:
                message = await self.pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=WAIT
                )
                if message is not None:
                    data: bytes = message["data"]
                    return data


@pytest_asyncio.fixture
async def subscriber(redis_params: RedisConnectionParams) -> AsyncIterator[Subscriber]:
    client = redis.asyncio.Redis(**redis_params.redis_kwargs())
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    # Wait for the confirmation: a PUBLISH before it would not be delivered.
    confirmation = await pubsub.get_message(timeout=5.0)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    try:
        yield Subscriber(pubsub)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


@pytest_asyncio.fixture
async def publisher(redis_params: RedisConnectionParams) -> AsyncIterator[EventPublisher]:
    async with EventPublisher(params=redis_params) as pub:
        yield pub


async def test_dict_with_decimal_reaches_subscriber_as_exact_string(
    publisher: EventPublisher, subscriber: Subscriber
) -> None:
    event = {
        "symbol": "AAPL",
        "price": Decimal("150.050"),
        "tiny": Decimal("0.0000001"),
        "timestamp": datetime(2024, 1, 2, 14, 30, 0, 123456, tzinfo=UTC),
    }
    receivers = await publisher.publish(CHANNEL, event)
    assert receivers == 1
    data = await subscriber.next_data()
    assert b'"price":"150.050"' in data
    decoded = json.loads(data)
    assert decoded["price"] == "150.050"
    assert Decimal(decoded["tiny"]) == Decimal("0.0000001")
    assert decoded["timestamp"] == "2024-01-02T14:30:00.123456Z"


async def test_pydantic_model_is_published_as_its_json(
    publisher: EventPublisher, subscriber: Subscriber
) -> None:
    event = Event(
        symbol="AAPL", price=Decimal("150.05"), timestamp=datetime(2024, 1, 2, tzinfo=UTC)
    )
    assert await publisher.publish(CHANNEL, event) == 1
    assert await subscriber.next_data() == event.model_dump_json().encode()


async def test_model_and_its_model_dump_put_the_same_values_on_the_wire(
    publisher: EventPublisher, subscriber: Subscriber
) -> None:
    event = Event(symbol="AAPL", price=Decimal("150.05"), timestamp=datetime.now(UTC))
    await publisher.publish(CHANNEL, event)
    await publisher.publish(CHANNEL, event.model_dump())
    assert json.loads(await subscriber.next_data()) == json.loads(await subscriber.next_data())


async def test_nested_model_inside_a_dict(
    publisher: EventPublisher, subscriber: Subscriber
) -> None:
    event = Event(symbol="AAPL", price=Decimal("1.5"), timestamp=datetime(2024, 1, 2, tzinfo=UTC))
    await publisher.publish(CHANNEL, {"events": [event]})
    assert json.loads(await subscriber.next_data())["events"][0]["price"] == "1.5"


async def test_text_and_bytes_are_sent_as_is(
    publisher: EventPublisher, subscriber: Subscriber
) -> None:
    await publisher.publish(CHANNEL, "plain text")
    await publisher.publish(CHANNEL, b"\x00raw")
    assert await subscriber.next_data() == b"plain text"
    assert await subscriber.next_data() == b"\x00raw"


async def test_no_subscriber_means_zero_receivers(publisher: EventPublisher) -> None:
    assert await publisher.publish("price.updated.NOBODY", {"x": 1}) == 0


async def test_unserialisable_message_is_a_type_error(publisher: EventPublisher) -> None:
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        await publisher.publish(CHANNEL, {"x": object()})


async def test_spec_constructor_form(
    redis_params: RedisConnectionParams, subscriber: Subscriber
) -> None:
    async with EventPublisher(redis_params.host, redis_params.port) as pub:
        assert await pub.publish(CHANNEL, {"symbol": "AAPL"}) == 1
    assert json.loads(await subscriber.next_data()) == {"symbol": "AAPL"}


async def test_from_url(redis_params: RedisConnectionParams, subscriber: Subscriber) -> None:
    async with EventPublisher.from_url(redis_params.to_url()) as pub:
        assert await pub.publish(CHANNEL, "x") == 1


async def test_shared_client_stays_open(redis_client: RedisClient, subscriber: Subscriber) -> None:
    async with EventPublisher(client=redis_client) as pub:
        assert pub.client is redis_client
        assert await pub.publish(CHANNEL, "shared") == 1
    await redis_client.set("still", "open")
    assert await redis_client.get("still") == b"open"


async def test_client_and_params_together_are_refused(redis_client: RedisClient) -> None:
    with pytest.raises(TypeError):
        EventPublisher(client=redis_client, params=redis_client.params)


async def test_unreachable_redis_raises_connection_error() -> None:
    async with EventPublisher("127.0.0.1", closed_port(), password="hunter2") as pub:
        with pytest.raises(RedisConnectionError) as caught:
            await pub.publish(CHANNEL, {"x": 1})
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    assert "hunter2" not in str(caught.value)
    assert f"PUBLISH {CHANNEL}" in str(caught.value)
