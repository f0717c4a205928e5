"""The spec's original design, kept as the benchmark's reference mode.

Per quote: build a pydantic ``QuoteData``, then ``await redis.setex(...)``, then
``await publisher.publish(...)``: two round trips and two models per quote. Everything
else (socket, protocol, decoding, subscriptions) is the service's own code, so the
ratio printed by the benchmark is the cost of that design alone.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from pydantic import ValidationError

from libs.market_data import AlpacaMarketDataStream, PriceData, PriceUpdateEvent, QuoteData
from libs.market_data.stream.protocol import DecodedFrame, decode_frame

__all__ = ["NaiveMarketDataStream"]


class NaiveMarketDataStream(AlpacaMarketDataStream):
    """``AlpacaMarketDataStream`` with the spec's per-quote handling."""

    async def _handle_frame(self, frame: DecodedFrame) -> None:
        subscribed = self.connection.desired
        # The reader parsed a plain frame natively: this design decodes it into structs.
        quotes = frame.quotes if frame.block is None else decode_frame(frame.block.data).quotes
        for q in quotes:
            if q.S not in subscribed:
                continue
            try:
                quote = QuoteData(
                    symbol=q.S,
                    bid_price=q.bp,
                    ask_price=q.ap,
                    bid_size=q.bs,
                    ask_size=q.as_,
                    timestamp=msgspec.convert(q.t, datetime),
                    exchange=q.bx,
                )
            except (ValidationError, msgspec.ValidationError):
                continue
            await self.redis_client.setex(
                f"price:{q.S}", self.price_ttl, PriceData.from_quote(quote).model_dump_json()
            )
            await self.event_publisher.publish(
                f"price.updated.{q.S}", PriceUpdateEvent.from_quote(quote).model_dump()
            )
