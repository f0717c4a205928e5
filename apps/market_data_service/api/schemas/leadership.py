"""The election's part of ``/health`` (docs/leadership.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from apps.market_data_service.election import LeadershipView

__all__ = ["LeadershipHealth"]


class LeadershipHealth(BaseModel):
    """This instance's role in the group, and the leader it knows."""

    role: Literal["leader", "standby", "single"] = Field(
        description="`leader` streams and writes; `standby` serves the API and takes over; "
        "`single`: LEADER_ELECTION=off.",
        examples=["leader"],
    )
    instance_id: str = Field(description="INSTANCE_ID of this instance.", examples=["web-1-4242"])
    leader_id: str | None = Field(
        default=None, description="The leader's INSTANCE_ID, as last seen.", examples=["web-1-4242"]
    )
    epoch: int | None = Field(
        default=None,
        description="The leader's epoch: the `epoch` of the events it writes.",
        examples=[7],
    )
    lease_remaining_seconds: float | None = Field(
        default=None,
        description="Seconds left of the leader's lease, as this instance knows it.",
        examples=[1.21],
    )
    leader_live: bool = Field(description="A leader holds an unexpired lease, as far as known.")

    @classmethod
    def of(cls, view: LeadershipView) -> LeadershipHealth:
        return cls.model_validate(view, from_attributes=True)
