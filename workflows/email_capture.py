"""One captured email (`email:{account}:{message digest}`): matched to the account's contacts (recipients of
mail the office sent, the sender of mail it received), stored as a history note on each, and the API monitor's
receipt settled: noted, or unmatched with the addresses no contact has (recorded, never dropped)."""

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.leads import LeadActivities
    from models.lead_receipts import Outcome
    from models.leads import (
        EmailCaptured,
        EmailCaptureInput,
        EmailMatch,
        EmailMatchRequest,
        NoteRequest,
        ReceiptSettled,
        email_note,
    )
    from workflows.errors import cause_message
    from workflows.lead_intake import CRM_CALL, CRM_RETRY, settle


@workflow.defn
class EmailCaptureWorkflow:
    @workflow.run
    async def run(self, input: EmailCaptureInput) -> EmailCaptured:
        mail, me = input.mail, workflow.info().workflow_id
        try:
            match: EmailMatch = await workflow.execute_activity_method(
                LeadActivities.match_email_contacts, EmailMatchRequest(account_id=input.account_id, mail=mail),
                start_to_close_timeout=CRM_CALL, retry_policy=CRM_RETRY,
                summary=f"CRM: whose is the email from {mail.sender_address}")
            note_ids = []
            for contact_id in match.contact_ids:
                note_ids.append(await workflow.execute_activity_method(
                    LeadActivities.write_history_note,
                    NoteRequest(account_id=input.account_id, contact_id=contact_id, claimant=me,
                                note_key=f"email:{mail.message_id}", section_key="mail",
                                text=email_note(mail, match.direction)),
                    start_to_close_timeout=CRM_CALL, retry_policy=CRM_RETRY,
                    summary=f"CRM: note on contact {contact_id}"))
        except ActivityError as error:
            await settle(ReceiptSettled(receipt_id=input.receipt_id, outcome=Outcome.FAILED.value,
                                        reason=cause_message(error)))
            raise
        unmatched = f"no contact has {', '.join(match.unmatched)}" if match.unmatched else None
        await settle(ReceiptSettled(
            receipt_id=input.receipt_id, outcome=(Outcome.NOTED if note_ids else Outcome.UNMATCHED).value,
            contact_id=match.contact_ids[0] if match.contact_ids else None,
            reason="; ".join(filter(None, [f"{match.direction}, noted on {len(note_ids)} contact(s)"
                                           if note_ids else None, unmatched]))))
        return EmailCaptured(direction=match.direction, contact_ids=match.contact_ids, note_ids=note_ids,
                             unmatched=match.unmatched)
