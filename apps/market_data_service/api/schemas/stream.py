"""Bodies of the live stream: the ticket (``POST /api/v1/stream/ticket``) and its part of
``/health``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from apps.market_data_service.streaming import HubStats

__all__ = ["StreamingHealth", "TicketResponse"]


class TicketResponse(BaseModel):
    """A one-time ticket opening one stream (``?ticket=...``) without a header."""

    ticket: str = Field(
        description="Random, single use; put it in the stream URL as `ticket`. Never logged.",
        examples=["3n0tD8e1Xc4S0vW7mK2bq9yQf6hJ5rLp1aZsUeGiOwE"],
    )
    expires_in: int = Field(description="Seconds the ticket stays valid.", examples=[30])


class StreamingHealth(BaseModel):
    """The live stream (``/api/v1/stream``, docs/streaming.md) in ``/health``: shown,
    never degrading the status (its reader starts with the first client)."""

    state: Literal["idle", "connecting", "streaming"] = Field(
        description="The hub's Redis reader: `idle` (no client yet), `connecting` (no "
        "snapshot yet, or starting over after Redis was lost), `streaming`.",
        examples=["streaming"],
    )
    clients: dict[str, int] = Field(
        description="Clients connected, by transport (`ws`, `sse`).",
        examples=[{"ws": 2, "sse": 1}],
    )
    coalesced: int = Field(
        description="Updates replaced by newer ones for clients that were behind.", examples=[0]
    )
    slow_clients_closed: int = Field(
        description="Clients closed by the slow-client policy (1008).", examples=[0]
    )

    @classmethod
    def of(cls, stats: HubStats) -> StreamingHealth:
        return cls(
            state=stats.state,
            clients=stats.clients,
            coalesced=stats.coalesced,
            slow_clients_closed=sum(stats.closed_slow.values()),
        )
