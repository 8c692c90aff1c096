"""One payment collected through the gateway (`collect:{account}:{idempotency key}`): the amount held against
what the proposal owes, the charge (once, by the gateway's idempotency_id), the payment recorded on the CRM
proposal (found again by its transaction before it is recorded), from where the proposal's own workflow takes
it to QBO and the ledger. A decline is an answer that changes no books. A bank debit is then watched by its own
workflow until it settles or comes back."""

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowCancellationType, ChildWorkflowHandle, ParentClosePolicy

from workflows.policies import CRM_RETRY, GATEWAY_RETRY, LEDGER_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from activities.collections import CollectionActivities
    from activities.crm import CrmPaymentActivities
    from activities.gateway import GatewayActivities
    from models import search_attributes as sa
    from models.collections import (
        AchWatch,
        CollectionResult,
        CollectionStatus,
        CollectionUpdate,
        CollectPayment,
        RecordCollectedPayment,
        Reservation,
        ach_workflow_id,
        collection_workflow_id,
    )
    from models.gateway import ChargeMeta, ChargeRequest, GatewayCharge
    from workflows.ach_settlement import AchSettlementWorkflow
    from workflows.errors import cause_message, cause_type

GATEWAY_CALL = timedelta(seconds=90)
CRM_CALL = timedelta(seconds=60)
# Refusals a reservation answers with: the caller is told, nothing was charged.
REFUSALS = ("PaymentRefused", "ProposalUnknown", "CollectionKeyReused", "UnknownAccount")


@workflow.defn
class PaymentCollectionWorkflow:
    @workflow.init
    def __init__(self, input: CollectPayment) -> None:
        self.input = input
        self.result = CollectionResult(status=CollectionStatus.RESERVED, collection_key=input.collection_key)

    @workflow.query
    def state(self) -> CollectionResult:
        return self.result

    @workflow.run
    async def run(self, input: CollectPayment) -> CollectionResult:
        try:
            reservation = await workflow.execute_activity_method(
                CollectionActivities.reserve_collection, input, start_to_close_timeout=LEDGER_TIMEOUT,
                summary=f"Ledger: hold {input.amount} against proposal {input.proposal_id}")
        except ActivityError as error:
            if cause_type(error) not in REFUSALS:
                raise
            return self._end(CollectionStatus.REFUSED, message=cause_message(error))
        self.result = self.result.model_copy(update={
            "amount": reservation.amount, "tip": reservation.tip, "convenience_fee": reservation.convenience_fee})
        if reservation.status not in (CollectionStatus.RESERVED, CollectionStatus.CHARGED) or (
                reservation.status == CollectionStatus.CHARGED and reservation.crm_payment_id is not None):
            # The key's collection ended before (this run is a re-run of it): answer with what it did.
            return self._end(reservation.status, transaction_id=reservation.transaction_id,
                             crm_payment_id=reservation.crm_payment_id, surcharge=reservation.surcharge,
                             message=reservation.message)
        if reservation.amount == 0:
            return self._end(CollectionStatus.NOTHING_DUE, message="nothing is due on the proposal any more")
        charge = await self._charge(reservation)
        if charge is None:
            return self.result
        await self._finish(CollectionStatus.CHARGED, transaction_id=charge.transaction_id, surcharge=charge.surcharge)
        crm_payment_id = await workflow.execute_activity_method(
            CrmPaymentActivities.record_collected_payment,
            RecordCollectedPayment(account_id=input.account_id, proposal_id=input.proposal_id,
                                   amount=reservation.amount, tip=reservation.tip,
                                   convenience_fee=reservation.convenience_fee + charge.surcharge,
                                   method="card" if charge.method == "card" else "ach",
                                   received_on=reservation.received_on, reference=charge.transaction_id),
            start_to_close_timeout=CRM_CALL, retry_policy=CRM_RETRY,
            summary=f"CRM: payment on proposal {reservation.proposal_number}")
        await self._finish(CollectionStatus.CHARGED, crm_payment_id=crm_payment_id)
        self.result = self.result.model_copy(update={
            "status": CollectionStatus.CHARGED, "transaction_id": charge.transaction_id,
            "crm_payment_id": crm_payment_id, "surcharge": charge.surcharge})
        if charge.method == "bank":  # the gateway's word, not the caller's: a bank debit can come back
            await self._watch_debit(charge, crm_payment_id, reservation)
        return self.result

    async def _charge(self, reservation: Reservation) -> GatewayCharge | None:
        """The charge, or None when the bank declined it or the gateway refused it (the collection then ends
        as such, its hold released)."""
        input = self.input
        try:
            return await workflow.execute_activity_method(
                GatewayActivities.charge,
                ChargeRequest(account_id=input.account_id, payment_method_id=input.payment_method_id,
                              total=reservation.total,
                              idempotency_id=f"collect:{input.account_id}:{input.collection_key}",
                              meta=ChargeMeta(payment_note=input.note or f"Proposal {reservation.proposal_number}",
                                              subtotal=reservation.amount,
                                              fee=reservation.convenience_fee or None)),
                start_to_close_timeout=GATEWAY_CALL, retry_policy=GATEWAY_RETRY,
                summary=f"Gateway: charge {reservation.total} ({input.method})")
        except ActivityError as error:
            kind = cause_type(error)
            if kind == "GatewayAmountMismatch":
                raise  # money moved, in another amount: the run fails for an operator, the hold stays
            details = error.cause.details if isinstance(error.cause, ApplicationError) else ()
            transaction_id = details[0].get("transaction_id") if details and isinstance(details[0], dict) else None
            status = CollectionStatus.DECLINED if kind == "GatewayDeclined" else CollectionStatus.REFUSED
            await self._finish(status, transaction_id=transaction_id, message=cause_message(error))
            self._end(status, transaction_id=transaction_id, message=cause_message(error))
            return None

    async def _watch_debit(self, charge: GatewayCharge, crm_payment_id: str, reservation: Reservation) -> None:
        """Hand the debit to its own workflow, which outlives this one: a return can come days later."""
        input = self.input
        with contextlib.suppress(WorkflowAlreadyStartedError):  # a re-run of the key: its watch is on already
            await workflow.start_child_workflow(
                AchSettlementWorkflow.run,
                AchWatch(account_id=input.account_id, collection_key=input.collection_key,
                         transaction_id=charge.transaction_id, crm_payment_id=crm_payment_id,
                         poll_interval_seconds=input.ach_poll_interval_seconds,
                         return_window_seconds=reservation.ach_return_window_days * 86_400.0),
                id=ach_workflow_id(input.account_id, charge.transaction_id),
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=workflow.info().typed_search_attributes,
                static_summary=f"ACH debit {charge.transaction_id} of {charge.total}")

    async def _finish(self, status: CollectionStatus, **fields: object) -> None:
        await workflow.execute_activity_method(
            CollectionActivities.finish_collection,
            CollectionUpdate(account_id=self.input.account_id, collection_key=self.input.collection_key,
                             status=status, **fields),  # type: ignore[arg-type]
            start_to_close_timeout=LEDGER_TIMEOUT, summary=f"Ledger: collection {status.value}")

    def _end(self, status: CollectionStatus, **fields: object) -> CollectionResult:
        self.result = self.result.model_copy(update={"status": status, **fields})
        workflow.upsert_search_attributes([sa.STAGE.value_set(status.value)])
        return self.result


async def start_collection(collect: CollectPayment,
                           summary: str) -> ChildWorkflowHandle[PaymentCollectionWorkflow, CollectionResult]:
    """A collection as the child of a scheduled payment or an autopay cycle. It outlives its parent: a parent
    that fails or is cancelled must never cut it off between its charge and its record."""
    return await workflow.start_child_workflow(
        PaymentCollectionWorkflow.run, collect, id=collection_workflow_id(collect.account_id, collect.collection_key),
        parent_close_policy=ParentClosePolicy.ABANDON, cancellation_type=ChildWorkflowCancellationType.ABANDON,
        search_attributes=workflow.info().typed_search_attributes, static_summary=summary)
