"""Proposals as a franchisee (or its franchisor) sees them: their state in the books, the ones that need
attention (stuck on a QBO fault, lost with payments unapplied), and two actions: sync the account from the
CRM now, and retry a stuck proposal once its cause is fixed."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel
from sqlmodel import Session, col, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.auth import AUTH_RESPONSES, AccountReader
from dispatch import start_reconcile
from models.ledger import ProposalRecord
from models.proposals import ProposalState, proposal_workflow_id

router = APIRouter(prefix="/accounts", tags=["proposals"])


class ProposalSummary(BaseModel):
    proposal_id: str
    number: str | None
    contact_id: str | None
    stage: str | None
    customer_id: str | None
    estimate_id: str | None
    invoice_id: str | None
    unapplied_total: Decimal
    stuck: str | None
    updated_at: datetime


class ProposalDetail(BaseModel):
    workflow_id: str
    running: bool
    state: ProposalState


class Started(BaseModel):
    workflow_id: str
    run_id: str | None


def _summary(record: ProposalRecord) -> ProposalSummary:
    return ProposalSummary(**record.model_dump(exclude={"account_id", "realm_id", "state"}))


@router.get("/{account_id}/proposals", responses=AUTH_RESPONSES)
def list_proposals(account_id: str, request: Request, _caller: AccountReader,
                   stage: Annotated[str | None, Query(max_length=20)] = None,
                   stuck: Annotated[bool | None, Query(description="only proposals held by a QBO fault")] = None,
                   unapplied: Annotated[bool | None, Query(description="only those with money unapplied")] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[ProposalSummary]:
    """The account's proposals as last saved by their workflows, most recently changed first."""
    query = select(ProposalRecord).where(ProposalRecord.account_id == account_id)
    if stage is not None:
        query = query.where(ProposalRecord.stage == stage)
    if stuck is not None:
        query = query.where(col(ProposalRecord.stuck).is_not(None) if stuck else col(ProposalRecord.stuck).is_(None))
    with Session(request.app.state.engine) as session:
        records = session.exec(query.order_by(col(ProposalRecord.updated_at).desc())).all()
    if unapplied is not None:
        records = [r for r in records if (r.unapplied_total > 0) == unapplied]
    return [_summary(r) for r in records[:limit]]


@router.get("/{account_id}/proposals/{proposal_id}", responses=AUTH_RESPONSES)
async def get_proposal(account_id: str, proposal_id: str, request: Request, _caller: AccountReader) -> ProposalDetail:
    """The proposal's state: asked of its workflow when it runs, else as its last run saved it."""
    workflow_id = proposal_workflow_id(account_id, proposal_id)
    handle = request.app.state.temporal.get_workflow_handle(workflow_id)
    try:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            state = await handle.query("state", result_type=ProposalState)
            return ProposalDetail(workflow_id=workflow_id, running=True, state=state)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    with Session(request.app.state.engine) as session:
        record = session.get(ProposalRecord, (account_id, proposal_id))
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no proposal {proposal_id!r} in account {account_id!r}")
    return ProposalDetail(workflow_id=workflow_id, running=False,
                          state=ProposalState.model_validate_json(record.state))


@router.post("/{account_id}/proposals/{proposal_id}/retry", status_code=status.HTTP_202_ACCEPTED,
             responses=AUTH_RESPONSES)
async def retry_proposal(account_id: str, proposal_id: str, request: Request, _caller: AccountReader) -> Started:
    """Try a stuck proposal's steps again now (after fixing the item or account QBO refused)."""
    handle = request.app.state.temporal.get_workflow_handle(proposal_workflow_id(account_id, proposal_id))
    try:
        await handle.signal("retry")
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"proposal {proposal_id!r} has no running workflow") from error
    return Started(workflow_id=handle.id, run_id=None)


@router.post("/{account_id}/sync", status_code=status.HTTP_202_ACCEPTED, responses=AUTH_RESPONSES)
async def sync_account(account_id: str, request: Request, _caller: AccountReader,
                       full: Annotated[bool, Query(description="read every proposal, not only recent changes")] = False
                       ) -> Started:
    """Read the account's CRM changes now and feed them to the proposal workflows; a sync already running for
    the account takes the request."""
    handle = await start_reconcile(request.app.state.temporal, request.app.state.settings, account_id, full=full)
    return Started(workflow_id=handle.id, run_id=handle.result_run_id)
