"""One autopay cycle of an account: the plan (each eligible open invoice and the first configuration that
matches it), then one collection per invoice, a few at a time. Each collection takes what is still due when it
charges, so an invoice paid by another cycle, a scheduled payment or a person meanwhile is not paid again."""

from datetime import date

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowHandle

from workflows.policies import LEDGER_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from activities.autopay import AutopayActivities
    from models.autopay import AutopayChoice
    from models.autopay_cycles import (
        AutopayCycleInput,
        AutopayCycleResult,
        AutopayOutcome,
        autopay_collection_key,
    )
    from models.collections import (
        CollectionResult,
        CollectionSource,
        CollectionStatus,
        CollectPayment,
    )
    from workflows.errors import cause_message
    from workflows.payment_collection import PaymentCollectionWorkflow, start_collection


@workflow.defn
class AutopayCycleWorkflow:
    @workflow.run
    async def run(self, input: AutopayCycleInput) -> AutopayCycleResult:
        plan = await workflow.execute_activity_method(
            AutopayActivities.plan_autopay, input, start_to_close_timeout=LEDGER_TIMEOUT,
            summary="Ledger: open invoices and autopay configurations")
        outcomes: list[AutopayOutcome] = []
        for start in range(0, len(plan.choices), input.concurrency):
            batch = plan.choices[start:start + input.concurrency]
            handles = [await self._start(input, plan.cycle_date, choice) for choice in batch]
            for choice, handle in zip(batch, handles, strict=True):
                key = autopay_collection_key(plan.cycle_date, choice.invoice.proposal_id)
                result = await _outcome(handle, key)
                outcomes.append(AutopayOutcome(invoice_number=choice.invoice.number,
                                               proposal_id=choice.invoice.proposal_id, config_id=choice.config.id,
                                               result=result))
        workflow.set_current_details(f"**Cycle:** {plan.cycle_date}  \n**Invoices charged:** "
                                     f"{sum(o.result.status == 'charged' for o in outcomes)} of {len(outcomes)}")
        return AutopayCycleResult(account_id=input.account_id, cycle_date=plan.cycle_date, outcomes=outcomes)

    async def _start(self, input: AutopayCycleInput, cycle_date: date, choice: AutopayChoice
                     ) -> ChildWorkflowHandle[PaymentCollectionWorkflow, CollectionResult] | None:
        """The invoice's collection for the day; None when another run of the same day (the schedule's and an
        operator's) is collecting it right now. One that ended runs again harmlessly: same key, same charge."""
        key = autopay_collection_key(cycle_date, choice.invoice.proposal_id)
        try:
            return await start_collection(
                CollectPayment(account_id=input.account_id, collection_key=key, proposal_id=choice.invoice.proposal_id,
                               payment_method_id=choice.config.payment_method_id, method=choice.config.method,
                               amount=choice.amount, up_to_due=True, source=CollectionSource.AUTOPAY,
                               note=f"Autopay ({choice.config.name}) for invoice {choice.invoice.number}",
                               ach_poll_interval_seconds=input.ach_poll_interval_seconds),
                f"Autopay of invoice {choice.invoice.number} by {choice.config.name}")
        except WorkflowAlreadyStartedError:
            return None


async def _outcome(handle: ChildWorkflowHandle[PaymentCollectionWorkflow, CollectionResult] | None,
                   key: str) -> CollectionResult:
    """One invoice's outcome; a collection that failed is reported, and the cycle goes on with the others."""
    if handle is None:
        return CollectionResult(status=CollectionStatus.RESERVED, collection_key=key,
                                message="being collected by another run of this cycle")
    try:
        return await handle
    except ChildWorkflowError as error:
        return CollectionResult(status=CollectionStatus.FAILED, collection_key=key, message=cause_message(error))
