"""One ACH debit a collection made (`ach:{account}:{transaction}`), watched until it settles and its return
window passes, or the bank sends it back (or the merchant gives it back). The gateway's webhooks only wake it
(Stax signs none, so their bodies are not believed): every look is the gateway's own answer, and a look on a
timer covers a lost webhook. A webhook about a debit whose watch has ended (a late return) starts a watch
again, with no window: it looks once.

A returned debit voids the payment on the CRM proposal (kind "return"); from there the proposal's workflow
voids the QBO payment and marks the ledger, and the royalty run credits the fee if it had charged one."""

import contextlib
from datetime import timedelta

from temporalio import workflow

from workflows.policies import CRM_RETRY, GATEWAY_RETRY, LEDGER_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from activities.collections import CollectionActivities
    from activities.crm import CrmPaymentActivities
    from activities.gateway import GatewayActivities
    from models.collections import AchWatch, CollectionStatus, CollectionUpdate, GatewayNews, VoidCollectedPayment
    from models.gateway import GatewayCharge, TransactionRef

GATEWAY_CALL = timedelta(seconds=60)
CRM_CALL = timedelta(seconds=60)
NEWS_KEPT = 20


@workflow.defn
class AchSettlementWorkflow:
    def __init__(self) -> None:
        self.woken = False
        self.news: list[GatewayNews] = []
        self.last: GatewayCharge | None = None

    @workflow.signal
    def gateway_event(self, news: GatewayNews) -> None:
        self.news = [*self.news, news][-NEWS_KEPT:]
        self.woken = True

    @workflow.query
    def status(self) -> GatewayCharge | None:
        return self.last

    @workflow.run
    async def run(self, input: AchWatch) -> CollectionStatus:
        poll = timedelta(seconds=input.poll_interval_seconds)
        wait = timedelta(0)  # the first look at once: the debit may already be back
        while True:
            if wait > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self.woken, timeout=wait)
            self.woken = False
            self.last = charge = await workflow.execute_activity_method(
                GatewayActivities.transaction_status,
                TransactionRef(account_id=input.account_id, transaction_id=input.transaction_id),
                start_to_close_timeout=GATEWAY_CALL, retry_policy=GATEWAY_RETRY,
                summary=f"Gateway: has debit {input.transaction_id} settled?")
            if charge.returned or charge.voided or charge.total_refunded >= charge.total:
                return await self._reverse(input, charge)
            if not charge.settled or charge.settled_at is None:
                wait = poll
                continue
            window_ends = charge.settled_at + timedelta(seconds=input.return_window_seconds)
            if workflow.now() >= window_ends:
                await self._finish(input, CollectionStatus.SETTLED, None)
                return CollectionStatus.SETTLED
            wait = min(poll, window_ends - workflow.now())

    async def _reverse(self, input: AchWatch, charge: GatewayCharge) -> CollectionStatus:
        kind = "return" if charge.returned else "void" if charge.voided else "refund"
        await workflow.execute_activity_method(
            CrmPaymentActivities.void_collected_payment,
            VoidCollectedPayment(account_id=input.account_id, crm_payment_id=input.crm_payment_id, kind=kind),
            start_to_close_timeout=CRM_CALL, retry_policy=CRM_RETRY,
            summary=f"CRM: {kind} payment {input.crm_payment_id}")
        # A void before settlement, or a refund after, is the merchant's; a void after settlement, the bank's return.
        status = CollectionStatus.RETURNED if charge.returned else CollectionStatus.REFUNDED
        await self._finish(input, status, charge.message or f"the debit was {kind}ed")
        return status

    async def _finish(self, input: AchWatch, status: CollectionStatus, message: str | None) -> None:
        await workflow.execute_activity_method(
            CollectionActivities.finish_collection,
            CollectionUpdate(account_id=input.account_id, collection_key=input.collection_key, status=status,
                             message=message),
            start_to_close_timeout=LEDGER_TIMEOUT, summary=f"Ledger: debit {status.value}")
