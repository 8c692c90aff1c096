"""A payment scheduled for a date: a timer until the day, which a reschedule moves and a cancel ends; on the
day, one collection of what is still due then (up to the scheduled amount), so an earlier payment lowers it
and a paid invoice is never paid again."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.collections import CollectionSource, CollectPayment
    from models.scheduled_payments import (
        Reschedule,
        ScheduledPaymentState,
        SchedulePayment,
        ScheduleStatus,
        scheduled_collection_key,
    )
    from workflows.payment_collection import start_collection


@workflow.defn
class ScheduledPaymentWorkflow:
    @workflow.init
    def __init__(self, input: SchedulePayment) -> None:
        self.state = ScheduledPaymentState(status=ScheduleStatus.SCHEDULED, pay_on=input.pay_on,
                                           charge_at=input.charge_at, amount=input.amount)
        self.changed = False

    @workflow.signal
    def reschedule(self, change: Reschedule) -> None:
        """Move the day (and the amount); too late once the collection has started."""
        if self.state.status == ScheduleStatus.SCHEDULED:
            self.state = self.state.model_copy(update={
                "pay_on": change.pay_on, "charge_at": change.charge_at,
                "amount": change.amount if change.amount is not None else self.state.amount})
            self.changed = True

    @workflow.signal
    def cancel(self) -> None:
        if self.state.status == ScheduleStatus.SCHEDULED:
            self.state = self.state.model_copy(update={"status": ScheduleStatus.CANCELLED})

    @workflow.query
    def current(self) -> ScheduledPaymentState:
        return self.state

    @workflow.run
    async def run(self, input: SchedulePayment) -> ScheduledPaymentState:
        while self.state.status == ScheduleStatus.SCHEDULED:
            self.changed = False
            wait = self.state.charge_at - workflow.now()
            if wait.total_seconds() <= 0:
                break
            try:
                await workflow.wait_condition(
                    lambda: self.changed or self.state.status != ScheduleStatus.SCHEDULED, timeout=wait,
                    timeout_summary=f"until {self.state.charge_at.isoformat()}")
            except TimeoutError:
                break
        if self.state.status == ScheduleStatus.CANCELLED:
            return self.state
        self.state = self.state.model_copy(update={"status": ScheduleStatus.COLLECTING})
        handle = await start_collection(
            CollectPayment(account_id=input.account_id, collection_key=scheduled_collection_key(input.schedule_id),
                           proposal_id=input.proposal_id, payment_method_id=input.payment_method_id,
                           method=input.method, amount=self.state.amount, up_to_due=True,
                           source=CollectionSource.SCHEDULED,
                           note=f"Scheduled payment for {self.state.pay_on.isoformat()}",
                           ach_poll_interval_seconds=input.ach_poll_interval_seconds),
            f"Scheduled payment {input.schedule_id}")
        result = await handle
        self.state = self.state.model_copy(update={"status": ScheduleStatus.DONE, "result": result})
        return self.state
