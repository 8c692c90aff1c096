"""One long-lived workflow per CRM proposal: it serialises every event about the proposal, so events that
arrive twice or out of order still produce the right books in QuickBooks."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.quickbooks import QuickBooksActivities
    from models import search_attributes as sa
    from models.proposals import (
        EnsureCustomerInput,
        EnsureEstimateInput,
        PaymentAdded,
        ProposalChanged,
        ProposalEvent,
        ProposalInput,
        ProposalState,
        Stage,
    )

CrmEvent = ProposalEvent | ProposalChanged | PaymentAdded

# QBO outages delay the work, they never fail it: retry until QBO answers, except for final faults.
QBO_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    non_retryable_error_types=["QboValidationError", "QboNotConnected", "QboSetupError"],
)
QBO_TIMEOUT = timedelta(minutes=2)
KEEP_DEFERRED_OPEN = "keep-open-while-events-are-deferred"
# Event ids remembered to drop duplicates; older ones are covered by the activities' own idempotency.
EVENTS_REMEMBERED = 500


@workflow.defn
class ProposalWorkflow:
    @workflow.init
    def __init__(self, input: ProposalInput) -> None:
        self._ref = input
        self._state = input.carried or ProposalState()
        self._pending: list[CrmEvent] = []

    @workflow.signal
    def event(self, event: ProposalEvent) -> None:
        """A sales-cycle step change, resolved to a lifecycle stage."""
        self._pending.append(event)

    @workflow.signal
    def proposal_changed(self, event: ProposalChanged) -> None:
        self._pending.append(event)

    @workflow.signal
    def payment_added(self, event: PaymentAdded) -> None:
        self._pending.append(event)

    @workflow.query
    def state(self) -> ProposalState:
        return self._state

    @workflow.run
    async def run(self, input: ProposalInput) -> ProposalState:
        while True:
            # A run holding deferred events stays open until a later version acts on them.
            idle = None if self._state.deferred_events and workflow.patched(KEEP_DEFERRED_OPEN) else input.idle_timeout
            try:
                await workflow.wait_condition(lambda: bool(self._pending), timeout=idle)
            except TimeoutError:
                # Quiet for the idle period: finish. A later event starts a fresh run, and the ledger map
                # keeps it from creating anything twice.
                await workflow.wait_condition(workflow.all_handlers_finished)
                return self._state
            while self._pending:
                await self._handle(self._pending.pop(0))
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(input.model_copy(update={"carried": self._state}))

    async def _handle(self, event: CrmEvent) -> None:
        event_id = event.change.event_id if isinstance(event, ProposalEvent) else event.event_id
        if event_id in self._state.events_seen:
            workflow.logger.info("Duplicate CRM event %s ignored", event_id)
            return
        try:
            if isinstance(event, ProposalEvent) and event.stage == Stage.PROPOSAL:
                await self._proposal_stage(event)
            else:
                # Job completion, lost proposals, edits and payments are the full lifecycle's (issue 5):
                # kept whole in the state until this workflow acts on them.
                self._state.deferred_events.append(event)
                workflow.logger.warning("Event %s (%s) kept for a later version", event_id, type(event).__name__)
        except ActivityError as error:
            # A final QBO fault: the event is kept as failed, visible in the UI, and later events still run.
            self._state.failed_events.append(f"{event_id}: {error.cause or error}")
            workflow.logger.error("Event %s failed: %s", event_id, error.cause or error)
        self._state.events_seen = [*self._state.events_seen, event_id][-EVENTS_REMEMBERED:]
        self._show_details()

    async def _proposal_stage(self, event: ProposalEvent) -> None:
        change = event.change
        if change.proposal is None:  # the front door starts nothing without one; kept as a guard
            self._state.failed_events.append(f"{change.event_id}: no proposal in the event")
            return
        proposal = change.proposal
        self._state.customer_id = await workflow.execute_activity_method(
            QuickBooksActivities.ensure_customer,
            EnsureCustomerInput(account_id=self._ref.account_id, realm_id=self._ref.realm_id,
                                contact=change.contact),
            start_to_close_timeout=QBO_TIMEOUT,
            retry_policy=QBO_RETRY,
            summary=f"QBO customer for contact {change.contact.id}",
        )
        self._state.estimate_id = await workflow.execute_activity_method(
            QuickBooksActivities.ensure_estimate,
            EnsureEstimateInput(account_id=self._ref.account_id, realm_id=self._ref.realm_id,
                                customer_id=self._state.customer_id, proposal=proposal),
            start_to_close_timeout=QBO_TIMEOUT,
            retry_policy=QBO_RETRY,
            summary=f"QBO estimate {proposal.number}",
        )
        self._state.stage = Stage.PROPOSAL
        workflow.upsert_search_attributes([sa.STAGE.value_set(Stage.PROPOSAL.value)])

    def _show_details(self) -> None:
        s = self._state
        workflow.set_current_details(
            f"**Stage:** {s.stage or 'new'}  \n**QBO customer:** {s.customer_id or '-'}  \n"
            f"**QBO estimate:** {s.estimate_id or '-'}  \n**Events:** {len(s.events_seen)} seen, "
            f"{len(s.deferred_events)} deferred to a later stage handler, {len(s.failed_events)} failed"
        )

