"""GET /accounts/{account_id}/audit: what Ledgerflow sent to the account's QuickBooks company and what came
back, so a franchisee (or its franchisor) can check its books' history without asking an operator. Newest
first, paged by id; the bodies only on request, since they are large and most look-ups need the summary."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.auth import AUTH_RESPONSES, AccountReader
from models.accounts import Franchisee
from models.audit import QboAuditLog

router = APIRouter(prefix="/accounts", tags=["audit"])
AuditStatus = Literal["sent", "ok", "error"]
MAX_LIMIT = 500
MAX_ID = 2**63 - 1  # the widest id a database holds: a larger cursor is a 422, not a driver overflow


class AuditEntry(BaseModel):
    """One body sent to QBO. `status` is `sent` while the call is in flight (or its worker died mid-call)."""

    id: int
    realm_id: str
    entity: str
    operation: str
    request_id: str
    workflow_id: str | None
    activity_attempt: int | None
    status: str
    qbo_id: str | None
    sent_at: datetime
    finished_at: datetime | None
    error: str | None
    body: str | None = Field(default=None, description="the JSON sent, verbatim; only with include_bodies=true")
    response: str | None = Field(default=None, description="QBO's answer, verbatim; only with include_bodies=true")

    @classmethod
    def from_row(cls, row: QboAuditLog, include_bodies: bool) -> "AuditEntry":
        """Bodies are set only when asked for, so the response leaves them out (exclude_unset) otherwise."""
        summary = {name: getattr(row, name) for name in cls.model_fields if name not in {"body", "response"}}
        bodies = {"body": row.body, "response": row.response} if include_bodies else {}
        return cls(**summary, **bodies)


def audit_page(engine: Engine, realm_id: str, limit: int = 100, before_id: int | None = None,
               entity: str | None = None, workflow_id: str | None = None,
               status: str | None = None) -> list[QboAuditLog]:
    """One page of a company's audit log, newest first. Shared with `starter.py audit`, which reads the
    database directly."""
    query = select(QboAuditLog).where(QboAuditLog.realm_id == realm_id)
    if before_id is not None:
        query = query.where(col(QboAuditLog.id) < before_id)
    if entity is not None:
        query = query.where(QboAuditLog.entity == entity)
    if workflow_id is not None:
        query = query.where(QboAuditLog.workflow_id == workflow_id)
    if status is not None:
        query = query.where(QboAuditLog.status == status)
    with Session(engine) as session:
        return list(session.exec(query.order_by(col(QboAuditLog.id).desc()).limit(limit)))


@router.get("/{account_id}/audit", response_model_exclude_unset=True, responses=AUTH_RESPONSES)
def account_audit(
    account_id: str,
    request: Request,
    _reader: AccountReader,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="the next page: the smallest id seen")] = None,
    entity: Annotated[str | None, Query(description="a QBO entity, e.g. Customer, Estimate")] = None,
    workflow_id: Annotated[str | None, Query(description="the workflow that made the call")] = None,
    status_: Annotated[AuditStatus | None, Query(alias="status")] = None,
    include_bodies: Annotated[bool, Query(description="add the body sent and QBO's answer")] = False,
) -> list[AuditEntry]:
    """The QBO audit log of the account's QuickBooks company, newest first. Needs an API key for the account
    or its franchisor."""
    with Session(request.app.state.engine) as session:
        franchisee = session.get(Franchisee, account_id)
    if franchisee is None:  # removed since the key was checked
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown account {account_id!r}")
    rows = audit_page(request.app.state.engine, franchisee.qbo_realm_id, limit, before_id, entity, workflow_id,
                      status_)
    return [AuditEntry.from_row(row, include_bodies) for row in rows]
