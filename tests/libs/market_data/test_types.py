"""The spec's model tests (QuoteData, PriceData, PriceUpdateEvent) and the edges around them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from libs.market_data import PriceData, PriceUpdateEvent, QuoteData, RejectReason, check_quote

TS = datetime(2024, 7, 24, 7, 56, 53, 639713, tzinfo=UTC)


def quote(**overrides: object) -> QuoteData:
    fields: dict[str, object] = {
        "symbol": "AAPL",
        "bid_price": Decimal("150.00"),
        "ask_price": Decimal("150.10"),
        "bid_size": 100,
        "ask_size": 200,
        "timestamp": TS,
        "exchange": "Q",
    }
    fields.update(overrides)
    return QuoteData(**fields)  # type: ignore[arg-type]


class TestQuoteData:
    def test_valid_quote(self) -> None:
        q = quote()
        assert q.symbol == "AAPL"
        assert q.bid_price == Decimal("150.00")
        assert q.ask_price == Decimal("150.10")
        assert q.bid_size == 100
        assert q.ask_size == 200
        assert q.exchange == "Q"

    def test_mid_price_is_exact(self) -> None:
        assert quote().mid_price == Decimal("150.05")
        assert quote(bid_price=Decimal("0.1"), ask_price=Decimal("0.2")).mid_price == Decimal(
            "0.15"
        )
        assert quote(bid_price=Decimal("150.01"), ask_price=Decimal("150.02")).mid_price == (
            Decimal("150.015")
        )

    def test_spread_in_dollars_and_bps(self) -> None:
        q = quote()
        assert q.spread == Decimal("0.10")
        assert q.spread_bps == Decimal("0.10") / Decimal("150.05") * 10_000
        assert round(q.spread_bps, 4) == Decimal("6.6644")

    def test_spread_bps_of_zero_mid_is_zero(self) -> None:
        assert quote(bid_price=Decimal(0), ask_price=Decimal(0)).spread_bps == 0

    def test_crossed_market_rejected(self) -> None:
        with pytest.raises(ValidationError, match="Crossed market"):
            quote(bid_price=Decimal("150.10"), ask_price=Decimal("150.00"))

    def test_locked_market_is_valid(self) -> None:
        q = quote(bid_price=Decimal("150.00"), ask_price=Decimal("150.00"))
        assert q.spread == 0
        assert q.mid_price == Decimal("150.00")

    @pytest.mark.parametrize("side", ["bid_price", "ask_price"])
    def test_negative_price_rejected(self, side: str) -> None:
        with pytest.raises(ValidationError, match="negative price"):
            quote(**{side: Decimal("-0.01")})

    @pytest.mark.parametrize("side", ["bid_size", "ask_size"])
    def test_negative_size_rejected(self, side: str) -> None:
        with pytest.raises(ValidationError, match="negative size"):
            quote(**{side: -1})

    def test_float_prices_refused(self) -> None:
        with pytest.raises(ValidationError, match="not float"):
            quote(bid_price=150.0)

    def test_string_prices_parse_exactly(self) -> None:
        q = quote(bid_price="0.1", ask_price="0.3")
        assert q.mid_price == Decimal("0.2")

    def test_nan_refused(self) -> None:
        with pytest.raises(ValidationError):
            quote(bid_price=Decimal("NaN"))


class TestCheckQuote:
    @pytest.mark.parametrize(
        ("bid", "ask", "bid_size", "ask_size", "expected"),
        [
            ("1.00", "1.01", 1, 1, None),
            ("1.00", "1.00", 1, 1, None),
            ("0", "0", 0, 0, None),
            ("1.01", "1.00", 1, 1, RejectReason.CROSSED),
            ("-1", "1", 1, 1, RejectReason.NEGATIVE_PRICE),
            ("1", "-1", 1, 1, RejectReason.NEGATIVE_PRICE),
            ("1", "2", -1, 1, RejectReason.NEGATIVE_SIZE),
            ("1", "2", 1, -5, RejectReason.NEGATIVE_SIZE),
            ("NaN", "2", 1, 1, RejectReason.MALFORMED),
            ("1", "NaN", 1, 1, RejectReason.MALFORMED),
            ("sNaN", "2", 1, 1, RejectReason.MALFORMED),
            ("1", "Infinity", 1, 1, RejectReason.MALFORMED),
            ("-Infinity", "1", 1, 1, RejectReason.NEGATIVE_PRICE),
            ("1", "1E+9", 1, 1, RejectReason.MALFORMED),
            ("1", "999999999.99", 1, 1, None),
            ("1E+400", "1E+401", 1, 1, RejectReason.MALFORMED),
        ],
    )
    def test_rules(
        self, bid: str, ask: str, bid_size: int, ask_size: int, expected: RejectReason | None
    ) -> None:
        assert check_quote(Decimal(bid), Decimal(ask), bid_size, ask_size) is expected


class TestPriceData:
    def test_from_quote(self) -> None:
        price = PriceData.from_quote(quote(bid_exchange="Q", ask_exchange="P"))
        assert price.symbol == "AAPL"
        assert (price.bid, price.ask, price.mid) == (
            Decimal("150.00"),
            Decimal("150.10"),
            Decimal("150.05"),
        )
        assert (price.bid_size, price.ask_size) == (100, 200)
        assert price.timestamp == "2024-07-24T07:56:53.639713Z"
        assert (price.exchange, price.bid_exchange, price.ask_exchange) == ("Q", "Q", "P")

    def test_json_keeps_decimals_as_exact_strings(self) -> None:
        data = json.loads(PriceData.from_quote(quote()).model_dump_json())
        assert data["bid"] == "150.00"
        assert data["ask"] == "150.10"
        assert data["mid"] == "150.05"
        assert PriceData.model_validate_json(json.dumps(data)).mid == Decimal("150.05")

    def test_naive_timestamp_is_taken_as_utc(self) -> None:
        price = PriceData.from_quote(quote(timestamp=datetime(2024, 1, 2, 3, 4, 5)))
        assert price.timestamp == "2024-01-02T03:04:05Z"


class TestPriceUpdateEvent:
    def test_from_quote(self) -> None:
        event = PriceUpdateEvent.from_quote(quote())
        assert event.event_type == "price.updated"
        assert event.symbol == "AAPL"
        assert event.price == Decimal("150.05")
        assert event.timestamp == "2024-07-24T07:56:53.639713Z"

    def test_serialization(self) -> None:
        payload = json.loads(PriceUpdateEvent.from_quote(quote()).model_dump_json())
        assert payload == {
            "event_type": "price.updated",
            "symbol": "AAPL",
            "price": "150.05",
            "bid": "150.00",
            "ask": "150.10",
            "bid_size": 100,
            "ask_size": 200,
            "seq": 0,
            "epoch": "",
            "timestamp": "2024-07-24T07:56:53.639713Z",
        }

    def test_seq_and_epoch_carried_and_timestamp_last(self) -> None:
        raw = PriceUpdateEvent.from_quote(quote(), seq=7, epoch="E").model_dump_json()
        assert json.loads(raw)["seq"] == 7 and json.loads(raw)["epoch"] == "E"
        # The stream's latency sampler slices the timestamp off the end of the JSON.
        assert raw.endswith('"timestamp":"2024-07-24T07:56:53.639713Z"}')

    def test_records_of_earlier_versions_still_read(self) -> None:
        old = {"symbol": "AAPL", "bid": "1", "ask": "2", "mid": "1.5", "bid_size": 1,
               "ask_size": 1, "timestamp": "2024-07-24T07:56:53Z"}  # fmt: skip
        price = PriceData.model_validate_json(json.dumps(old))
        assert (price.seq, price.epoch) == (0, "")
        assert PriceData.from_quote(quote(), seq=3, epoch="E").seq == 3


def test_a_refused_quote_carries_our_error_with_its_reason() -> None:
    from libs.market_data import QuoteValidationError

    with pytest.raises(ValidationError) as caught:
        QuoteData(
            symbol="AAPL", bid_price=Decimal("2"), ask_price=Decimal("1"), bid_size=1,
            ask_size=1, timestamp=datetime.now(UTC),
        )  # fmt: skip
    error = caught.value.errors()[0]["ctx"]["error"]
    assert isinstance(error, QuoteValidationError)
    assert error.reason == "crossed"
