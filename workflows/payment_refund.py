"""A collected payment given back in full (`refund:{account}:{collection key}`): voided at the gateway before
it settles, refunded after (once, by the gateway's idempotency_id), then voided on the CRM proposal as a void
or a refund, from where the proposal's workflow voids the QBO payment and marks the ledger (and the royalty
run credits a fee it had charged)."""

from datetime import timedelta

from temporalio import workflow

from workflows.policies import CRM_RETRY, GATEWAY_RETRY, LEDGER_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from activities.collections import CollectionActivities
    from activities.crm import CrmPaymentActivities
    from activities.gateway import GatewayActivities
    from models.collections import (
        CollectionResult,
        CollectionStatus,
        CollectionUpdate,
        RefundPayment,
        VoidCollectedPayment,
    )
    from models.gateway import VoidOrRefundRequest

GATEWAY_CALL = timedelta(seconds=90)
CRM_CALL = timedelta(seconds=60)


@workflow.defn
class PaymentRefundWorkflow:
    @workflow.run
    async def run(self, input: RefundPayment) -> CollectionResult:
        collected = await workflow.execute_activity_method(
            CollectionActivities.load_collected_charge, input, start_to_close_timeout=LEDGER_TIMEOUT,
            summary=f"Ledger: payment {input.collection_key}")
        charge = await workflow.execute_activity_method(
            GatewayActivities.void_or_refund,
            VoidOrRefundRequest(account_id=input.account_id, transaction_id=collected.transaction_id,
                                idempotency_id=f"refund:{input.account_id}:{input.collection_key}"),
            start_to_close_timeout=GATEWAY_CALL, retry_policy=GATEWAY_RETRY,
            summary=f"Gateway: void or refund {collected.transaction_id}")
        kind = "void" if charge.voided else "refund"
        if collected.crm_payment_id is not None:
            await workflow.execute_activity_method(
                CrmPaymentActivities.void_collected_payment,
                VoidCollectedPayment(account_id=input.account_id, crm_payment_id=collected.crm_payment_id, kind=kind),
                start_to_close_timeout=CRM_CALL, retry_policy=CRM_RETRY,
                summary=f"CRM: {kind} payment {collected.crm_payment_id}")
        message = f"{kind}ed at the merchant's request" + (f": {input.reason}" if input.reason else "")
        await workflow.execute_activity_method(
            CollectionActivities.finish_collection,
            CollectionUpdate(account_id=input.account_id, collection_key=input.collection_key,
                             status=CollectionStatus.REFUNDED, message=message),
            start_to_close_timeout=LEDGER_TIMEOUT, summary="Ledger: collection refunded")
        return CollectionResult(status=CollectionStatus.REFUNDED, collection_key=input.collection_key,
                                transaction_id=collected.transaction_id, crm_payment_id=collected.crm_payment_id,
                                message=message)
