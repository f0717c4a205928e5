"""Body of the stream ticket (``POST /api/v1/stream/ticket``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["TicketResponse"]


class TicketResponse(BaseModel):
    """A one-time ticket opening one stream (``?ticket=...``) without a header."""

    ticket: str = Field(
        description="Random, single use; put it in the stream URL as `ticket`. Never logged.",
        examples=["3n0tD8e1Xc4S0vW7mK2bq9yQf6hJ5rLp1aZsUeGiOwE"],
    )
    expires_in: int = Field(description="Seconds the ticket stays valid.", examples=[30])
