"""One lead (`lead:{account}:{source}:{lead id}`): its contact found or created in the CRM, what the source said
kept as a history note, the lead source's connection plan enrolled, the API monitor's receipt settled. Every
arrival of the lead is a signal to the same run, handled in order, so a lead posted twice at once makes one
contact and one note; the run stays open a short while after the last arrival for exactly that."""

from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.policies import CRM_RETRY as CRM_WRITE_RETRY

with workflow.unsafe.imports_passed_through():
    from activities.leads import LeadActivities
    from activities.plan_feed import PlanFeedActivities
    from models import search_attributes as sa
    from models.enrollments import EnrollRequest
    from models.lead_receipts import Outcome
    from models.leads import (
        ContactMatch,
        ContactRequest,
        LeadDelivery,
        LeadHandled,
        LeadIntakeInput,
        LeadIntakeState,
        NoteRequest,
        ReceiptSettled,
        lead_note_key,
        lead_note_section,
    )
    from workflows.errors import cause_message

CRM_CALL = timedelta(seconds=60)
CRM_RETRY = replace(CRM_WRITE_RETRY, non_retryable_error_types=["CrmRefused", "PlanNotEnrollable"])


@workflow.defn
class LeadIntakeWorkflow:
    @workflow.init
    def __init__(self, input: LeadIntakeInput) -> None:
        self.input = input
        self.pending: list[LeadDelivery] = list(input.carried)
        self.seen: set[int] = {d.receipt_id for d in input.carried}
        self.handled: list[LeadHandled] = []
        self.taken = 0
        self.contact_id: str | None = None

    @workflow.signal
    def lead_received(self, delivery: LeadDelivery) -> None:
        if delivery.receipt_id not in self.seen:
            self.seen.add(delivery.receipt_id)
            self.pending.append(delivery)

    @workflow.query
    def state(self) -> LeadIntakeState:
        return LeadIntakeState(contact_id=self.contact_id, pending=len(self.pending), handled=self.handled)

    @workflow.run
    async def run(self, input: LeadIntakeInput) -> LeadIntakeState:
        while self.taken < input.deliveries_per_run:
            try:
                await workflow.wait_condition(lambda: bool(self.pending), timeout=input.settle_time)
            except TimeoutError:
                return self.state()
            await self._handle(self.pending.pop(0))
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(input.model_copy(update={"carried": self.pending}))

    async def _handle(self, delivery: LeadDelivery) -> None:
        self.taken += 1
        try:
            handled = await self._take(delivery)
        except ActivityError as error:  # the CRM refused: the receipt says why, the run goes on
            await settle(ReceiptSettled(receipt_id=delivery.receipt_id, outcome=Outcome.FAILED.value,
                                        contact_id=self.contact_id, reason=cause_message(error)))
            return
        self.handled.append(handled)

    async def _take(self, delivery: LeadDelivery) -> LeadHandled:
        input, lead, me = self.input, delivery.lead, workflow.info().workflow_id
        match: ContactMatch = await workflow.execute_activity_method(
            LeadActivities.find_or_create_contact,
            ContactRequest(account_id=input.account_id, claimant=me, lead=lead, lead_source=input.lead_source),
            start_to_close_timeout=CRM_CALL, retry_policy=CRM_RETRY,
            summary=f"CRM: find or create {lead.display_name}")
        if self.contact_id is None:
            workflow.upsert_search_attributes([sa.CONTACT_ID.value_set(match.contact_id)])
        self.contact_id = match.contact_id
        note_id: str = await workflow.execute_activity_method(
            LeadActivities.write_history_note,
            NoteRequest(account_id=input.account_id, contact_id=match.contact_id, claimant=me,
                        note_key=lead_note_key(input.lead_source, input.channel), section_key=lead.lead_id,
                        text=lead_note_section(lead, input.lead_source, delivery.received_at)),
            start_to_close_timeout=CRM_CALL, retry_policy=CRM_RETRY,
            summary=f"CRM: note on contact {match.contact_id}")
        enrollment = None
        if input.plan_id is not None:
            enrollment = await workflow.execute_activity_method(
                PlanFeedActivities.enroll_in_plan,
                EnrollRequest(account_id=input.account_id, contact_id=match.contact_id, plan_id=input.plan_id,
                              source=f"lead:{input.channel.value}", trigger=me),
                start_to_close_timeout=CRM_CALL, retry_policy=CRM_RETRY, summary=f"Enroll in {input.plan_id}")
        outcome = Outcome.CREATED if match.created else Outcome.DUPLICATE
        reasons = [f"matched by {match.matched_by}"] if match.matched_by else []
        reasons += [f"the CRM has no lead source {input.lead_source!r}"] if match.lead_source_missing else []
        reasons += [f"plan {input.plan_id}: {enrollment}"] if enrollment else ["no plan for this lead source"]
        await settle(ReceiptSettled(receipt_id=delivery.receipt_id, outcome=outcome.value,
                                    contact_id=match.contact_id, reason="; ".join(reasons)))
        return LeadHandled(receipt_id=delivery.receipt_id, contact_id=match.contact_id, outcome=outcome.value,
                           note_id=note_id, enrollment=enrollment)


async def settle(settled: ReceiptSettled) -> None:
    """The API monitor's receipt: what became of the lead or the email."""
    await workflow.execute_activity_method(
        LeadActivities.settle_lead_receipt, settled, start_to_close_timeout=timedelta(seconds=30),
        summary=f"Monitor: {settled.outcome}")

