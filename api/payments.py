"""Taking payments: collect one now against a proposal or its invoice (keyed by the caller's idempotency key,
so a double submit charges once), look at one, and schedule one for a date (reschedule, cancel).

A collection answers with its outcome when the gateway answers within `payment_answer_wait_seconds`: 200
charged, 402 declined, 409 refused (more than is due), 502 when its run failed after the gateway was asked
(the answer says what it got to: do not pay again under a new key); else 202 and the collection goes on (GET
it later). The same key with another payment is a 422, and so is a key Ledgerflow keeps for its own
collections (scheduled-..., autopay-...)."""

import asyncio
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from api.auth import AUTH_RESPONSES, AccountReader
from dispatch import start_collection, start_refund, start_scheduled_payment
from models.accounts import Franchisee
from models.collection_ledger import CollectedPayment
from models.collections import (
    INTERNAL_KEY_PREFIXES,
    KEY,
    CollectionResult,
    CollectionStatus,
    CollectPayment,
    PaymentMethodKind,
    RefundPayment,
    collection_workflow_id,
)
from models.money import Cents, cents
from models.payment_settings import PaymentSettings
from models.receivables import beyond_due, owed_on_proposal, proposal_for_invoice
from models.scheduled_payments import (
    Reschedule,
    ScheduledPaymentState,
    SchedulePayment,
    ScheduleStatus,
    scheduled_workflow_id,
)
from models.time_zones import local_today
from workflows.errors import cause_message

router = APIRouter(prefix="/accounts", tags=["payments"])
ANSWERS = {CollectionStatus.CHARGED: 200, CollectionStatus.DECLINED: 402, CollectionStatus.REFUSED: 409,
           CollectionStatus.NOTHING_DUE: 409}


class _Target(BaseModel):
    """A proposal, or the QBO invoice made from it."""

    model_config = ConfigDict(extra="forbid")

    proposal_id: str | None = Field(default=None, min_length=1, max_length=64)
    invoice_id: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_target(self) -> "_Target":
        if (self.proposal_id is None) == (self.invoice_id is None):
            raise ValueError("give exactly one of proposal_id and invoice_id")
        return self


class PaymentRequest(_Target):
    payment_method_id: str = Field(min_length=1, max_length=64)
    method: PaymentMethodKind
    amount: Cents = Field(gt=0, description="toward what is owed; the tip and any fee come on top")
    tip: Cents = Field(default=cents(0), ge=0)
    note: str | None = Field(default=None, max_length=200)


class ScheduleRequest(_Target):
    schedule_id: str = Field(min_length=1, max_length=80, pattern=KEY.pattern)
    payment_method_id: str = Field(min_length=1, max_length=64)
    method: PaymentMethodKind
    amount: Cents = Field(gt=0, description="at most this; less when less is due on the day")
    pay_on: date


class RescheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pay_on: date
    amount: Cents | None = Field(default=None, gt=0)


class CollectionView(BaseModel):
    workflow_id: str
    result: CollectionResult
    ledger_status: str | None  # where the ledger has it now: an ACH debit goes on to settled or returned


def _franchisee(request: Request, account_id: str) -> Franchisee:
    with Session(request.app.state.engine) as session:
        franchisee = session.get(Franchisee, account_id)
    assert franchisee is not None  # AccountReader answered 404 otherwise
    return franchisee


def _proposal_of(request: Request, account_id: str, target: _Target) -> str:
    """The proposal the payment is for, checked to be in the ledger; 404 otherwise."""
    with Session(request.app.state.engine) as session:
        if target.invoice_id is not None:
            proposal_id = proposal_for_invoice(session, account_id, target.invoice_id)
            if proposal_id is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no invoice {target.invoice_id!r} in account "
                                                               f"{account_id!r}")
            return proposal_id
        assert target.proposal_id is not None
        if owed_on_proposal(session, account_id, target.proposal_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no proposal {target.proposal_id!r} in account "
                                                           f"{account_id!r}")
        return target.proposal_id


async def _answer(handle: WorkflowHandle[object, CollectionResult], wait: float,
                  response: Response) -> CollectionResult:
    """The run's outcome; 202 with where it stands when it takes longer than `wait`, 502 when it failed."""
    try:
        result = await asyncio.wait_for(handle.result(), timeout=wait)
    except TimeoutError:
        response.status_code = status.HTTP_202_ACCEPTED
        return await handle.query("state", result_type=CollectionResult)
    except WorkflowFailureError as failure:
        response.status_code = status.HTTP_502_BAD_GATEWAY
        stood = await handle.query("state", result_type=CollectionResult)
        return stood.model_copy(update={"message": f"the run failed: {cause_message(failure)}"})
    response.status_code = ANSWERS.get(result.status, 200)
    return result


def _check_new_payment(request: Request, account_id: str, key: str, proposal_id: str, body: PaymentRequest) -> None:
    """422 for a key used for another payment or kept for Ledgerflow's own; 409, before anything starts, for
    more than is due (the collection checks again as it holds the amount)."""
    if key.startswith(INTERNAL_KEY_PREFIXES):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"idempotency keys starting with {' or '.join(INTERNAL_KEY_PREFIXES)} are Ledgerflow's own")
    with Session(request.app.state.engine) as session:
        earlier = session.get(CollectedPayment, (account_id, key))
        if earlier is not None:
            asked = (proposal_id, body.payment_method_id, body.method, body.amount, body.tip)
            if asked != (earlier.proposal_id, earlier.payment_method_id, earlier.method, earlier.amount, earlier.tip):
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                    f"idempotency key {key!r} was used for another payment")
            return
        owed = owed_on_proposal(session, account_id, proposal_id)
        franchisee = session.get(Franchisee, account_id)
    assert owed is not None and franchisee is not None
    refusal = beyond_due(owed, body.amount,
                         PaymentSettings.model_validate(franchisee.payments).convenience_fee(body.amount))
    if refusal is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, refusal)


@router.post("/{account_id}/payments", responses={
    **AUTH_RESPONSES, 202: {"description": "the charge is still going: GET it later"},
    402: {"description": "declined by the bank: nothing changed"},
    409: {"description": "refused: more than is due, or the idempotency key was used for another payment"}})
async def collect_payment(account_id: str, body: PaymentRequest, request: Request, response: Response,
                          _caller: AccountReader,
                          idempotency_key: Annotated[str, Header(min_length=1, max_length=100, pattern=KEY.pattern)]
                          ) -> CollectionResult:
    """Charge the customer's payment method now, once per `Idempotency-Key`: the same key again answers with
    the first charge's outcome."""
    proposal_id = _proposal_of(request, account_id, body)
    _check_new_payment(request, account_id, idempotency_key, proposal_id, body)
    collect = CollectPayment(account_id=account_id, collection_key=idempotency_key, proposal_id=proposal_id,
                             payment_method_id=body.payment_method_id, method=body.method, amount=body.amount,
                             tip=body.tip, note=body.note)
    handle = await start_collection(request.app.state.temporal, request.app.state.settings,
                                    _franchisee(request, account_id), collect)
    return await _answer(handle, request.app.state.settings.payment_answer_wait_seconds, response)


@router.get("/{account_id}/payments/{idempotency_key}", responses=AUTH_RESPONSES)
async def get_payment(account_id: str, idempotency_key: str, request: Request, _caller: AccountReader
                      ) -> CollectionView:
    workflow_id = collection_workflow_id(account_id, idempotency_key)
    handle = request.app.state.temporal.get_workflow_handle(workflow_id, result_type=CollectionResult)
    try:
        described = await handle.describe()
        result = (await handle.result() if described.status == WorkflowExecutionStatus.COMPLETED
                  else await handle.query("state", result_type=CollectionResult))
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no payment {idempotency_key!r} in {account_id!r}") from error
    with Session(request.app.state.engine) as session:
        row = session.get(CollectedPayment, (account_id, idempotency_key))
    return CollectionView(workflow_id=workflow_id, result=result, ledger_status=row.status if row else None)


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=200)


@router.post("/{account_id}/payments/{idempotency_key}/refund", responses={
    **AUTH_RESPONSES, 409: {"description": "nothing to give back: declined, refused, returned or never charged"}})
async def refund_payment(account_id: str, idempotency_key: str, body: RefundRequest, request: Request,
                         response: Response, _caller: AccountReader) -> CollectionResult:
    """Give a collected payment back in full (voided before it settles, refunded after), once: the same
    request again answers with the first refund."""
    handle = await start_refund(request.app.state.temporal, request.app.state.settings,
                                _franchisee(request, account_id),
                                RefundPayment(account_id=account_id, collection_key=idempotency_key,
                                              reason=body.reason))
    try:
        return await asyncio.wait_for(handle.result(), timeout=request.app.state.settings.payment_answer_wait_seconds)
    except TimeoutError:
        response.status_code = status.HTTP_202_ACCEPTED
        return CollectionResult(status=CollectionStatus.CHARGED, collection_key=idempotency_key,
                                message="the refund is still going: ask again with the same request")
    except WorkflowFailureError as failure:
        response.status_code = status.HTTP_409_CONFLICT
        return CollectionResult(status=CollectionStatus.REFUSED, collection_key=idempotency_key,
                                message=cause_message(failure))


# -- scheduled payments -----------------------------------------------------------------------------------
def _charge_at(franchisee: Franchisee, pay_on: date) -> Reschedule:
    settings = PaymentSettings.model_validate(franchisee.payments)
    return Reschedule(pay_on=pay_on, charge_at=settings.charge_at(pay_on, franchisee.time_zone))


def _scheduled(request: Request, account_id: str, schedule_id: str) -> WorkflowHandle[object, ScheduledPaymentState]:
    return request.app.state.temporal.get_workflow_handle(scheduled_workflow_id(account_id, schedule_id),
                                                          result_type=ScheduledPaymentState)


async def _current(handle: WorkflowHandle[object, ScheduledPaymentState]) -> ScheduledPaymentState:
    try:
        if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
            return await handle.result()
        return await handle.query("current", result_type=ScheduledPaymentState)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no scheduled payment {handle.id!r}") from error


@router.post("/{account_id}/scheduled-payments", status_code=status.HTTP_201_CREATED, responses=AUTH_RESPONSES)
async def schedule_payment(account_id: str, body: ScheduleRequest, request: Request,
                           _caller: AccountReader) -> ScheduledPaymentState:
    """Pay up to `amount` on `pay_on`, at the account's scheduled-payment time. The same schedule_id again
    answers with the payment already scheduled."""
    proposal_id = _proposal_of(request, account_id, body)
    franchisee = _franchisee(request, account_id)
    _not_past(franchisee, body.pay_on)
    when = _charge_at(franchisee, body.pay_on)
    handle = await start_scheduled_payment(
        request.app.state.temporal, request.app.state.settings, franchisee,
        SchedulePayment(account_id=account_id, schedule_id=body.schedule_id, proposal_id=proposal_id,
                        payment_method_id=body.payment_method_id, method=body.method, amount=body.amount,
                        pay_on=when.pay_on, charge_at=when.charge_at))
    return await _current(handle)


@router.get("/{account_id}/scheduled-payments/{schedule_id}", responses=AUTH_RESPONSES)
async def get_scheduled_payment(account_id: str, schedule_id: str, request: Request,
                                _caller: AccountReader) -> ScheduledPaymentState:
    return await _current(_scheduled(request, account_id, schedule_id))


def _not_past(franchisee: Franchisee, pay_on: date) -> None:
    if pay_on < local_today(franchisee.time_zone):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"pay_on {pay_on} is in the past")


async def _still_waiting(handle: WorkflowHandle[object, ScheduledPaymentState]) -> None:
    """404 for an unknown scheduled payment, 409 for one that is no longer waiting (collecting, paid, cancelled)."""
    current = await _current(handle)
    if current.status != ScheduleStatus.SCHEDULED:
        raise HTTPException(status.HTTP_409_CONFLICT, f"scheduled payment {handle.id!r} is {current.status.value}: "
                                                      f"it can no longer be moved or cancelled")


async def _signal(handle: WorkflowHandle[object, ScheduledPaymentState], signal: str, *args: object) -> None:
    try:
        await handle.signal(signal, *args)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        raise HTTPException(status.HTTP_409_CONFLICT, f"scheduled payment {handle.id!r} is not waiting "
                                                      f"(unknown, paid or cancelled)") from error


@router.patch("/{account_id}/scheduled-payments/{schedule_id}", responses=AUTH_RESPONSES)
async def reschedule_payment(account_id: str, schedule_id: str, body: RescheduleRequest, request: Request,
                             _caller: AccountReader) -> ScheduledPaymentState:
    """Move the day (and the amount) while the payment still waits."""
    handle = _scheduled(request, account_id, schedule_id)
    franchisee = _franchisee(request, account_id)
    _not_past(franchisee, body.pay_on)
    await _still_waiting(handle)
    when = _charge_at(franchisee, body.pay_on)
    await _signal(handle, "reschedule", when.model_copy(update={"amount": body.amount}))
    return await _current(handle)


@router.delete("/{account_id}/scheduled-payments/{schedule_id}", responses=AUTH_RESPONSES)
async def cancel_scheduled_payment(account_id: str, schedule_id: str, request: Request,
                                   _caller: AccountReader) -> ScheduledPaymentState:
    handle = _scheduled(request, account_id, schedule_id)
    await _still_waiting(handle)
    await _signal(handle, "cancel")
    return await handle.result()
