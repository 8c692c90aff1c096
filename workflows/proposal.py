"""One long-lived workflow per CRM proposal: it serialises every event about the proposal, so events that
arrive twice or out of order still produce the right books in QuickBooks.

Events only update what the workflow knows of the proposal (the newest lines, stage and contact by the
CRM's own times, the lines frozen as they stood when the job was complete; every payment and void); then one
pass brings QuickBooks in line with that knowledge, doing only what is still missing. Order and repeats
therefore cannot change the books."""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.policies import LEDGER_TIMEOUT, QBO_RETRY

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from activities.quickbooks import QuickBooksActivities
    from models import search_attributes as sa
    from models.proposal_knowledge import EVENTS_REMEMBERED, absorb, event_id, notice
    from models.proposals import (
        ApplyPaymentInput,
        CrmEvent,
        EnsureCustomerInput,
        EnsureEstimateInput,
        EstimateStatusInput,
        InvoiceFromEstimateInput,
        PaymentAdded,
        PaymentVoided,
        ProposalChanged,
        ProposalEvent,
        ProposalInput,
        ProposalRef,
        ProposalState,
        ProposalSynced,
        RecordPaymentInput,
        SaveProposalInput,
        Stage,
        StuckStep,
        UpdateEstimateInput,
        VoidPaymentInput,
    )

T = TypeVar("T")

# Versions: runs started before the lifecycle keep their first-version code; see _run_first_version.
LIFECYCLE = "proposal-lifecycle"
UPGRADE_ON_WAKE = "proposal-lifecycle-upgrade"
KEEP_DEFERRED_OPEN = "keep-open-while-events-are-deferred"
BILL_AS_COMPLETED = "bill-the-proposal-as-completed"
TIES_TO_COMPLETION = "completion-lines-win-ties"
FOLD_FROM_REPORTS = "stage-and-lines-from-reports"


@workflow.defn
class ProposalWorkflow:
    @workflow.init
    def __init__(self, input: ProposalInput) -> None:
        self._ref = input
        self._state = input.carried or ProposalState()
        self._pending: list[CrmEvent] = []
        self._retry_requested = False
        self._saved: str | None = None
        self._previously_stuck: dict[str, StuckStep] = {}
        self._busy = False

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

    @workflow.signal
    def payment_voided(self, event: PaymentVoided) -> None:
        self._pending.append(event)

    @workflow.signal
    def synced(self, event: ProposalSynced) -> None:
        """What reconciliation read from the CRM about this proposal."""
        self._pending.append(event)

    @workflow.signal
    def retry(self) -> None:
        """Try the steps a final QBO fault stopped now, once the cause is fixed (an item, an account)."""
        self._retry_requested = True

    @workflow.query
    def state(self) -> ProposalState:
        return self._state

    @workflow.query
    def busy(self) -> bool:
        """True while events wait or the books are being brought in line with them."""
        return self._busy or bool(self._pending)

    @workflow.run
    async def run(self, input: ProposalInput) -> ProposalState:
        if workflow.patched(LIFECYCLE):
            return await self._run_lifecycle(input)
        return await self._run_first_version(input)

    # -- the lifecycle ---------------------------------------------------------------------------------
    async def _run_lifecycle(self, input: ProposalInput) -> ProposalState:
        if input.carried is None:  # a new run: continue from what the last one saved, if any
            saved = await workflow.execute_activity_method(
                LedgerActivities.load_proposal_record, self._proposal_ref(), start_to_close_timeout=LEDGER_TIMEOUT,
                summary="Ledger: the proposal's saved state")
            if saved is not None:
                self._state = saved
                self._saved = saved.model_dump_json()
        # Events an earlier version kept aside are facts like any other.
        self._pending[:0] = self._state.deferred_events
        self._state.deferred_events = []
        while True:
            if self._pending or self._retry_requested:
                await self._sync_books()
                if workflow.info().is_continue_as_new_suggested():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    self._state.deferred_events = self._pending
                    workflow.continue_as_new(input.model_copy(update={"carried": self._state}))
                continue
            # Stuck steps are tried again on a timer; otherwise a quiet proposal finishes after the idle period
            # and the next event starts a new run from the ledger.
            wait = input.stuck_retry_interval if self._state.stuck else input.idle_timeout
            try:
                await workflow.wait_condition(lambda: bool(self._pending) or self._retry_requested, timeout=wait)
            except TimeoutError:
                if self._state.stuck:
                    self._retry_requested = True
                    continue
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._pending:
                    return self._state

    async def _sync_books(self) -> None:
        """Take in every pending event, then make the books match."""
        self._retry_requested, self._busy = False, True
        payments_before = [p.model_dump_json() for p in self._state.payments]
        while self._pending:
            moved = absorb(self._state, self._pending.pop(0), workflow.patched(BILL_AS_COMPLETED),
                           workflow.patched(TIES_TO_COMPLETION), workflow.patched(FOLD_FROM_REPORTS))
            if moved is not None:
                workflow.upsert_search_attributes([sa.STAGE.value_set(moved.value)])
        if [p.model_dump_json() for p in self._state.payments] != payments_before:
            await self._save()  # payments reach the ledger (and royalty) whatever QBO's state
        await self._bring_books_in_line()
        await self._save()
        self._show()
        self._busy = False

    # -- the books -------------------------------------------------------------------------------------
    async def _bring_books_in_line(self) -> None:
        """Every write still missing, in dependency order. A step a final fault stops is listed as stuck;
        the steps that do not depend on it still run."""
        s = self._state
        self._previously_stuck = {stuck.step: stuck for stuck in s.stuck}
        s.stuck = []
        try:
            if s.contact is None:
                return
            if s.customer_id is None:
                s.customer_id = await self._step("customer", self._qbo(
                    QuickBooksActivities.ensure_customer,
                    EnsureCustomerInput(account_id=self._ref.account_id, realm_id=self._ref.realm_id,
                                        contact=s.contact),
                    f"QBO customer for contact {s.contact.id}"))
                if s.customer_id is None:
                    return
            await self._estimate()
            await self._payments()
            await self._invoice()
            if s.invoice_id is not None:
                await self._apply_payments()
            await self._estimate_status()
        finally:
            self._update_status_attribute(bool(self._previously_stuck))

    async def _estimate(self) -> None:
        s = self._state
        if s.proposal is None or s.stage is None or s.customer_id is None:
            return  # a payment can come before the proposal stage: the estimate waits for it
        proposal = s.proposal
        if s.estimate_id is None:
            s.estimate_id = await self._step("estimate", self._qbo(
                QuickBooksActivities.ensure_estimate,
                EnsureEstimateInput(account_id=self._ref.account_id, realm_id=self._ref.realm_id,
                                    customer_id=s.customer_id, proposal=proposal),
                f"QBO estimate {proposal.number}"))
            if s.estimate_id is not None:
                s.estimate_version = s.proposal_version
        elif s.estimate_version != s.proposal_version and s.invoice_id is None:
            outcome = await self._step("estimate update", self._qbo(
                QuickBooksActivities.update_estimate,
                UpdateEstimateInput(account_id=self._ref.account_id, realm_id=self._ref.realm_id,
                                    estimate_id=s.estimate_id, proposal=proposal),
                f"Update QBO estimate {s.estimate_id} to proposal {proposal.number}"))
            if outcome is not None:
                s.estimate_version = s.proposal_version
                if outcome == "closed":
                    notice(self._state, f"estimate {s.estimate_id} is closed in QBO: proposal changes not applied")

    async def _payments(self) -> None:
        """Record each payment as an unapplied payment; void the ones the CRM voided or refunded."""
        s = self._state
        assert s.customer_id is not None
        for held in s.payments:
            paid = held.payment
            if held.voided:
                if held.qbo_id is not None and not held.voided_in_qbo:
                    done = await self._step(f"void payment {paid.id}", self._qbo(
                        QuickBooksActivities.void_payment,
                        VoidPaymentInput(realm_id=self._ref.realm_id, payment_id=held.qbo_id),
                        f"Void QBO payment {held.qbo_id} ({held.voided} of CRM payment {paid.id})"), done=True)
                    held.voided_in_qbo = bool(done)
                continue
            if held.qbo_id is None:
                held.qbo_id = await self._step(f"payment {paid.id}", self._qbo(
                    QuickBooksActivities.record_unapplied_payment,
                    RecordPaymentInput(account_id=self._ref.account_id, realm_id=self._ref.realm_id,
                                       customer_id=s.customer_id, payment=paid),
                    f"QBO payment for CRM payment {paid.id} ({paid.total})"))

    async def _invoice(self) -> None:
        s = self._state
        if s.stage != Stage.JOB_COMPLETE or s.invoice_id is not None or s.estimate_id is None:
            return
        if s.estimate_version != s.proposal_version or s.proposal is None or s.customer_id is None:
            return  # the estimate must carry the proposal's current lines first
        s.invoice_id = await self._step("invoice", self._qbo(
            QuickBooksActivities.create_invoice_from_estimate,
            InvoiceFromEstimateInput(account_id=self._ref.account_id, realm_id=self._ref.realm_id,
                                     customer_id=s.customer_id, estimate_id=s.estimate_id, proposal=s.proposal),
            f"QBO invoice {s.proposal.number} from estimate {s.estimate_id}"))

    async def _apply_payments(self) -> None:
        s = self._state
        assert s.invoice_id is not None
        for held in s.payments:
            if held.voided or held.qbo_id is None or held.applied is not None:
                continue
            held.applied = await self._step(f"apply payment {held.payment.id}", self._qbo(
                QuickBooksActivities.apply_payment,
                ApplyPaymentInput(account_id=self._ref.account_id, realm_id=self._ref.realm_id,
                                  payment_id=held.qbo_id, invoice_id=s.invoice_id),
                f"Apply QBO payment {held.qbo_id} to invoice {s.invoice_id}"))
            if held.applied is not None and held.applied < held.payment.total:
                notice(self._state, f"payment {held.payment.id}: {held.payment.total - held.applied} stays unapplied "
                             f"(more than the invoice's balance)")

    async def _estimate_status(self) -> None:
        """A lost proposal's estimate is Rejected; reopened, it is Pending again. Its payments stay as they are."""
        s = self._state
        if s.estimate_id is None or s.invoice_id is not None:
            return
        wanted = "Rejected" if s.stage == Stage.LOST else "Pending" if s.estimate_status == "Rejected" else None
        if wanted is None or wanted == s.estimate_status:
            return
        status = await self._step("estimate status", self._qbo(
            QuickBooksActivities.set_estimate_status,
            EstimateStatusInput(realm_id=self._ref.realm_id, estimate_id=s.estimate_id, status=wanted),
            f"Mark QBO estimate {s.estimate_id} {wanted}"))
        if status is not None:
            s.estimate_status = wanted
        if s.stage == Stage.LOST and s.unapplied_total > 0:
            notice(self._state, f"proposal lost with {s.unapplied_total} of payments unapplied in QBO")

    # -- plumbing --------------------------------------------------------------------------------------
    def _qbo(self, activity: Callable[..., T], arg: Any, summary: str) -> Callable[[], Awaitable[T]]:
        return lambda: workflow.execute_activity_method(
            activity, arg, start_to_close_timeout=self._ref.qbo_timeout, retry_policy=QBO_RETRY, summary=summary)

    async def _step(self, name: str, run: Callable[[], Awaitable[T]], done: T | None = None) -> T | None:
        """Run one write; a final fault lists the step as stuck (None) instead of failing the proposal."""
        try:
            result = await run()
            return done if done is not None else result
        except ActivityError as error:
            cause = error.cause or error
            before = self._previously_stuck.get(name)
            self._state.stuck.append(StuckStep(
                step=name, error=str(cause), since=before.since if before else workflow.now(),
                attempts=before.attempts + 1 if before else 1))
            workflow.logger.error("Proposal %s: %s is stuck: %s", self._ref.proposal_id, name, cause)
            return None

    def _update_status_attribute(self, was_stuck: bool) -> None:
        if bool(self._state.stuck) != was_stuck:
            workflow.upsert_search_attributes([sa.SYNC_STATUS.value_set("stuck" if self._state.stuck else "ok")])

    def _proposal_ref(self) -> ProposalRef:
        return ProposalRef(account_id=self._ref.account_id, proposal_id=self._ref.proposal_id,
                           realm_id=self._ref.realm_id)

    async def _save(self) -> None:
        snapshot = self._state.model_dump_json()
        if snapshot == self._saved:
            return
        await workflow.execute_activity_method(
            LedgerActivities.save_proposal_record, SaveProposalInput(ref=self._proposal_ref(), state=self._state),
            start_to_close_timeout=LEDGER_TIMEOUT, summary="Ledger: save the proposal and its payments")
        self._saved = snapshot

    def _show(self) -> None:
        s = self._state
        stuck = "; ".join(f"{x.step}: {x.error}" for x in s.stuck) or "nothing"
        workflow.set_current_details(
            f"**Stage:** {s.stage or 'new'}  \n**QBO customer:** {s.customer_id or '-'}  \n"
            f"**QBO estimate:** {s.estimate_id or '-'} ({s.estimate_status or 'open'})  \n"
            f"**QBO invoice:** {s.invoice_id or '-'}  \n"
            f"**Payments:** {len(s.payments)}, unapplied {s.unapplied_total}  \n**Stuck:** {stuck}  \n"
            f"**Notices:** {' | '.join(s.notices[-3:]) or '-'}"
        )

    # -- the first version -----------------------------------------------------------------------------
    async def _run_first_version(self, input: ProposalInput) -> ProposalState:
        """Runs started before the lifecycle existed replay through this code unchanged. When one wakes on
        today's workers it continues as new, carrying its state and events, into the lifecycle."""
        wakes = 0
        while True:
            # A run holding deferred events stays open until a later version acts on them.
            idle = None if self._state.deferred_events and workflow.patched(KEEP_DEFERRED_OPEN) else input.idle_timeout
            try:
                await workflow.wait_condition(lambda: bool(self._pending), timeout=idle)
            except TimeoutError:
                await workflow.wait_condition(workflow.all_handlers_finished)
                return self._state
            wakes += 1
            if workflow.patched(f"{UPGRADE_ON_WAKE}-{wakes}"):  # distinct ids: patched is memoized per run
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._state.deferred_events = [*self._state.deferred_events, *self._pending]
                workflow.continue_as_new(input.model_copy(update={"carried": self._state}))
            while self._pending:
                await self._first_version_handle(self._pending.pop(0))
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(input.model_copy(update={"carried": self._state}))

    async def _first_version_handle(self, event: CrmEvent) -> None:
        seen = event_id(event)
        if seen in self._state.events_seen:
            workflow.logger.info("Duplicate CRM event %s ignored", seen)
            return
        try:
            if isinstance(event, ProposalEvent) and event.stage == Stage.PROPOSAL:
                await self._first_version_proposal_stage(event)
            else:
                self._state.deferred_events.append(event)
                workflow.logger.warning("Event %s (%s) kept for a later version", seen, type(event).__name__)
        except ActivityError as error:
            self._state.failed_events.append(f"{seen}: {error.cause or error}")
            workflow.logger.error("Event %s failed: %s", seen, error.cause or error)
        self._state.events_seen = [*self._state.events_seen, seen][-EVENTS_REMEMBERED:]

    async def _first_version_proposal_stage(self, event: ProposalEvent) -> None:
        change = event.change
        if change.proposal is None:
            self._state.failed_events.append(f"{change.event_id}: no proposal in the event")
            return
        proposal = change.proposal
        self._state.customer_id = await self._qbo(
            QuickBooksActivities.ensure_customer,
            EnsureCustomerInput(account_id=self._ref.account_id, realm_id=self._ref.realm_id, contact=change.contact),
            f"QBO customer for contact {change.contact.id}")()
        self._state.estimate_id = await self._qbo(
            QuickBooksActivities.ensure_estimate,
            EnsureEstimateInput(account_id=self._ref.account_id, realm_id=self._ref.realm_id,
                                customer_id=self._state.customer_id, proposal=proposal),
            f"QBO estimate {proposal.number}")()
        self._state.stage = Stage.PROPOSAL
        workflow.upsert_search_attributes([sa.STAGE.value_set(Stage.PROPOSAL.value)])
