"""GET /healthz: the API is healthy when it can reach both the database and Temporal."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlmodel import Session

router = APIRouter(tags=["health"])


@router.get("/healthz", responses={503: {"description": "the database or Temporal cannot be reached"}})
async def healthz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with Session(request.app.state.engine) as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        checks["database"] = "ok"
    except Exception as error:  # any failure to reach it is the answer, not a crash
        checks["database"] = f"unreachable: {error.__class__.__name__}"
    try:
        await request.app.state.temporal.service_client.check_health()
        checks["temporal"] = "ok"
    except Exception as error:
        checks["temporal"] = f"unreachable: {error.__class__.__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if healthy else "unhealthy", **checks}, status_code=200 if healthy else 503)
