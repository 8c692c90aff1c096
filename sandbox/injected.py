"""A fault plan (sandbox/qbo/chaos.py) as the sandboxes' admins set it (`FaultSettings`), played on an HTTP
sandbox's API, each error in the provider's own body shape: latency on every call; before any work a 500, a 429
(Retry-After: 1) or a timeout (held, then 504); or a drop: the work is done and its answer held, then 504, as a
lost answer looks to the client."""

import asyncio
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator

from sandbox.qbo.chaos import Fault, FaultPlan


class FaultSettings(BaseModel):
    """A fault plan (a merchant's, a mailbox's, a partner's): `queued` faults answer its next calls in order (a
    "drop" waits for the next write), then each call fails at `rates`; timeouts and drops hold the client
    `hold_seconds`."""

    queued: list[Fault] = []
    rates: dict[Fault, float] = {}
    hold_seconds: float = Field(default=35.0, ge=0)
    latency_seconds: float = Field(default=0.0, ge=0)
    seed: int | None = None

    @model_validator(mode="after")
    def _rates_sum(self) -> "FaultSettings":
        if sum(self.rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")
        return self


ErrorShape = Callable[[int], Response]  # the provider's error answer for an HTTP status


class Injected(Exception):
    """The call is answered by an injected fault instead of its work."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def install(app: FastAPI) -> None:
    @app.exception_handler(Injected)
    async def _injected(_request: Request, injected: Injected) -> Response:
        return injected.response


async def before_work(plan: FaultPlan, write: bool, error: ErrorShape) -> bool:
    """Latency and the faults that come instead of the work; True when the work's answer is to be dropped."""
    if plan.latency_seconds:
        await asyncio.sleep(plan.latency_seconds)
    fault = plan.next_fault(write)
    if fault == Fault.THROTTLE:
        throttled = error(429)
        throttled.headers["Retry-After"] = "1"
        raise Injected(throttled)
    if fault == Fault.SERVER_ERROR:
        raise Injected(error(500))
    if fault == Fault.TIMEOUT:
        await asyncio.sleep(plan.hold_seconds)
        raise Injected(error(504))
    return fault == Fault.DROP


async def unless_dropped(plan: FaultPlan, drop: bool, answer: Response, error: ErrorShape) -> Response:
    """The answer, or after a drop (the work stands) a long wait and a 504."""
    if drop:
        await asyncio.sleep(plan.hold_seconds)
        return error(504)
    return answer
