"""Topics: one channel of one symbol as one string; the wildcard; options refused."""

from __future__ import annotations

import pytest

from libs.market_data import InvalidSymbolError
from libs.market_data.stream.feeds import Feeds, crypto_feed_url
from libs.market_data.stream.protocol import encode_subscription
from libs.market_data.topics import Channel, channel_topics, normalize_topics, parse_topic


def test_topics_of_symbols_on_channels() -> None:
    assert normalize_topics([" aapl", "btc/usd", "*"], ["quotes", "trades"]) == [
        "AAPL", "trades:AAPL", "BTC/USD", "trades:BTC/USD", "*", "trades:*",
    ]  # fmt: skip
    assert parse_topic("bars:BTC/USD") == (Channel.BARS, "BTC/USD")
    assert parse_topic("AAPL") == (Channel.QUOTES, "AAPL")
    assert channel_topics(["aapl", "trades:msft", "*"]) == ["AAPL", "trades:MSFT", "*"]


@pytest.mark.parametrize(
    "symbol", ["AAPL240621C00190000", "SPY250117P00400000", "f260116c00012500"]
)
def test_option_symbols_are_out_of_scope(symbol: str) -> None:
    with pytest.raises(InvalidSymbolError, match="options are out of scope"):
        normalize_topics([symbol])


@pytest.mark.parametrize("bad", ["price:AAPL", "trades:", "**", "trades:A B"])
def test_bad_topics_are_refused(bad: str) -> None:
    with pytest.raises(InvalidSymbolError):
        channel_topics([bad])


def test_pairs_route_to_the_crypto_feed_and_the_rest_to_stocks() -> None:
    assert Feeds.split(["AAPL", "bars:ETH/USD", "*", "BTC/USD"]) == (
        ["AAPL", "*"], ["bars:ETH/USD", "BTC/USD"]
    )  # fmt: skip
    assert crypto_feed_url() == "wss://stream.data.alpaca.markets/v1beta3/crypto/us"


def test_the_subscribe_message_lists_each_channel_and_updated_bars_with_bars() -> None:
    message = encode_subscription("subscribe", ["AAPL", "trades:AAPL", "bars:*"])
    assert message == (
        b'{"action":"subscribe","quotes":["AAPL"],"trades":["AAPL"],"bars":["*"],'
        b'"updatedBars":["*"]}'
    )
    assert encode_subscription("unsubscribe", ["*"]) == b'{"action":"unsubscribe","quotes":["*"]}'
