"""GET /accounts/{account_id}/leads: the API monitor. Every lead and captured email that reached the account,
newest first: its source, what became of it (created, duplicate, rejected and why, noted, unmatched) and the
workflow that handled it, to open in the Temporal UI."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from api.auth import AUTH_RESPONSES, AccountReader
from models.lead_receipts import LeadReceipt, Outcome, receipts

router = APIRouter(prefix="/accounts", tags=["leads"])


class LeadReceived(BaseModel):
    id: int
    channel: str
    lead_id: str | None
    who: str
    received_at: datetime
    outcome: Outcome
    reason: str | None
    contact_id: str | None
    workflow_id: str | None
    run_id: str | None
    settled_at: datetime | None

    @classmethod
    def from_row(cls, row: LeadReceipt) -> "LeadReceived":
        return cls.model_validate(row, from_attributes=True)


@router.get("/{account_id}/leads", responses=AUTH_RESPONSES)
def lead_monitor(account_id: str, request: Request, _caller: AccountReader,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100, outcome: Outcome | None = None,
                 channel: str | None = None) -> list[LeadReceived]:
    rows = receipts(request.app.state.engine, account_id, limit=limit,
                    outcome=outcome.value if outcome else None, channel=channel)
    return [LeadReceived.from_row(row) for row in rows]
