"""What customers owe and how autopay pays it: a QBO customer's balance and open invoices (from the ledger),
their ordered autopay configurations, an invoice kept out of autopay, and an autopay cycle run now."""

import asyncio
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, select

from api.auth import AUTH_RESPONSES, AccountReader
from dispatch import start_autopay_cycle
from models.accounts import Franchisee
from models.autopay import AutopayConfig, OpenInvoice
from models.autopay_configs import ConfigLocked, load_configs, replace_configs
from models.autopay_cycles import AutopayCycleResult
from models.db import session_scope
from models.ledger import LedgerInvoice
from models.receivables import CustomerBalance, customer_balance, open_invoices
from models.time_zones import local_today

router = APIRouter(prefix="/accounts", tags=["receivables"])


class AutopayConfigs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Who edits: every API key is staff's; a customer portal sends "customer", and then locked rules stand.
    editor: Literal["staff", "customer"] = "staff"
    configs: list[AutopayConfig]


class AutopayExclusion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    excluded: bool


class AutopayRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cycle_date: date | None = None  # the account's local today when not given


def _today(request: Request, account_id: str) -> date:
    with Session(request.app.state.engine) as session:
        franchisee = session.get(Franchisee, account_id)
    assert franchisee is not None  # AccountReader answered 404 otherwise
    return local_today(franchisee.time_zone)


@router.get("/{account_id}/customers/{customer_id}/balance", responses=AUTH_RESPONSES)
def get_customer_balance(account_id: str, customer_id: str, request: Request, _caller: AccountReader,
                         on: Annotated[date | None, Query(description="past due as of this day")] = None
                         ) -> CustomerBalance:
    """Total balance, total past due, the oldest open invoice and how many are open, and the unapplied credit."""
    with Session(request.app.state.engine) as session:
        return customer_balance(session, account_id, customer_id, on or _today(request, account_id))


@router.get("/{account_id}/open-invoices", responses=AUTH_RESPONSES)
def list_open_invoices(account_id: str, request: Request, _caller: AccountReader,
                       customer_id: Annotated[str | None, Query(max_length=64)] = None) -> list[OpenInvoice]:
    """Invoices with something still due, oldest first (one customer's when given)."""
    with Session(request.app.state.engine) as session:
        return open_invoices(session, account_id, customer_id)


@router.get("/{account_id}/customers/{customer_id}/autopay", responses=AUTH_RESPONSES)
def get_autopay(account_id: str, customer_id: str, request: Request, _caller: AccountReader) -> list[AutopayConfig]:
    with Session(request.app.state.engine) as session:
        return load_configs(session, account_id, customer_id)


@router.put("/{account_id}/customers/{customer_id}/autopay", responses={
    **AUTH_RESPONSES, 403: {"description": "the customer tried to change a locked configuration"},
    422: {"description": "a bad criterion, or two configurations share an id or a position"}})
def put_autopay(account_id: str, customer_id: str, body: AutopayConfigs, request: Request,
                _caller: AccountReader) -> list[AutopayConfig]:
    """Replace the customer's ordered configurations (all at once)."""
    try:
        return replace_configs(request.app.state.engine, account_id, customer_id, body.configs, body.editor)
    except ConfigLocked as locked:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(locked)) from locked
    except ValueError as bad:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(bad)) from bad


@router.put("/{account_id}/invoices/{invoice_id}/autopay", responses=AUTH_RESPONSES)
def exclude_from_autopay(account_id: str, invoice_id: str, body: AutopayExclusion, request: Request,
                         _caller: AccountReader) -> AutopayExclusion:
    """Keep an invoice out of autopay (or let it back in); paying it by hand stays possible."""
    with session_scope(request.app.state.engine) as session:
        invoice = session.exec(select(LedgerInvoice).where(LedgerInvoice.account_id == account_id,
                                                           LedgerInvoice.invoice_id == invoice_id)).first()
        if invoice is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no invoice {invoice_id!r} in account {account_id!r}")
        invoice.autopay_excluded = body.excluded
        session.add(invoice)
    return body


class AutopayStarted(BaseModel):
    workflow_id: str
    status: str = "running"


@router.post("/{account_id}/autopay-cycles", responses={
    **AUTH_RESPONSES, 202: {"description": "still running: its workflow id"},
    422: {"description": "a day after today"}})
async def run_autopay(account_id: str, body: AutopayRun, request: Request, response: Response,
                      _caller: AccountReader) -> AutopayCycleResult | AutopayStarted:
    """Run the account's autopay for a day (today or one before) now and answer with what it paid; a day
    already run answers with that run's result and charges nothing more."""
    with Session(request.app.state.engine) as session:
        franchisee = session.get(Franchisee, account_id)
    assert franchisee is not None
    today = _today(request, account_id)
    if body.cycle_date is not None and body.cycle_date > today:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"cycle_date {body.cycle_date} is after today "
                                                                  f"({today}) in {franchisee.time_zone}")
    settings = request.app.state.settings
    handle = await start_autopay_cycle(request.app.state.temporal, settings, franchisee, body.cycle_date or today)
    try:
        return await asyncio.wait_for(handle.result(), timeout=settings.payment_answer_wait_seconds * 3)
    except TimeoutError:
        response.status_code = status.HTTP_202_ACCEPTED
        return AutopayStarted(workflow_id=handle.id)
