"""Response models of what a job owes (``/api/jobs/{key}/carried``); kept
apart from :mod:`runtrack.web.schemas`, which has no room left."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from runtrack.models import Carried, CarryState

__all__ = ["CarriedItemOut", "CarriedOut", "CarriedSliceOut", "ForgetOut"]


class CarriedItemOut(BaseModel):
    """An item that failed and has not succeeded since."""

    id: int
    key: str
    group: str | None
    source: str | None
    data: Any
    first_run: int = Field(description="The run it first failed in.")
    last_run: int = Field(description="The last run that tried it and failed.")
    attempts: int = Field(description="Runs it failed in, the first included.")
    last_error: str | None
    state: CarryState = Field(description="owed: handed to the next runs; given_up: no more.")
    created_at: datetime
    updated_at: datetime


class CarriedSliceOut(BaseModel):
    """A slice ``[start, end)`` of the source a run could not fetch."""

    id: int
    start: datetime
    end: datetime
    first_run: int
    last_run: int
    attempts: int
    reason: str | None
    state: CarryState
    created_at: datetime
    updated_at: datetime


class CarriedOut(BaseModel):
    """What a job owes, oldest first."""

    job: str
    items: list[CarriedItemOut]
    slices: list[CarriedSliceOut]

    @classmethod
    def of(cls, job: str, carried: Carried) -> CarriedOut:
        return cls(
            job=job,
            items=[CarriedItemOut.model_validate(i, from_attributes=True) for i in carried.items],
            slices=[
                CarriedSliceOut.model_validate(s, from_attributes=True) for s in carried.slices
            ],
        )


class ForgetOut(BaseModel):
    job: str
    forgotten: int = Field(description="The id of the entry dropped.")
