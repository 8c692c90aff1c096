"""Temporal away is "not now", on every endpoint: a 503 with Retry-After, so the CRM, a lead source, the gateway
or a user's client sends again later. Nothing was started, since Temporal did not take the call."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError

from dispatch import transient

RETRY_AFTER_SECONDS = 30


async def _temporal_error(request: Request, error: Exception) -> JSONResponse:
    if not transient(error):
        raise error  # a fault of ours: the 500 it is
    assert isinstance(error, RPCError)
    return JSONResponse({"detail": f"workflow service unavailable: {error.message}"}, status_code=503,
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RPCError, _temporal_error)
