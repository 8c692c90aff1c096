"""Stand-ins for lead intake's activities, to test the workflows' logic alone and record their histories: a
CRM of contacts by email and phone, notes by key, the receipts settled and the plans enrolled."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.captured_emails import CapturedMail
from models.enrollments import EnrollRequest
from models.leads import (
    ContactMatch,
    ContactRequest,
    EmailMatch,
    EmailMatchRequest,
    Lead,
    LeadChannel,
    LeadDelivery,
    LeadIntakeInput,
    NoteRequest,
    ReceiptSettled,
)


@dataclass
class LeadWorld:
    contacts: dict[str, str] = field(default_factory=dict)  # identity ("email:...", "lead:...") -> contact id
    notes: dict[str, dict[str, str]] = field(default_factory=dict)  # "contact/note key" -> section -> text
    settled: list[ReceiptSettled] = field(default_factory=list)
    enrolled: list[EnrollRequest] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # lead ids the CRM refuses
    users: set[str] = field(default_factory=lambda: {"office@acme-austin.example.com"})

    def activities(self) -> list[Callable[..., Any]]:
        world = self

        @activity.defn(name="find_or_create_contact")
        def find_or_create_contact(request: ContactRequest) -> ContactMatch:
            if request.lead.lead_id in world.refuse:
                raise ApplicationError("CRM create_client: CT_525 Insert failed", type="CrmRefused",
                                       non_retryable=True)
            keys = request.lead.identities
            found = next(((world.contacts[k], k) for k in keys if k in world.contacts), None)
            contact_id = found[0] if found else f"C-{len(set(world.contacts.values())) + 1}"
            for key in keys:
                world.contacts.setdefault(key, contact_id)
            return ContactMatch(contact_id=contact_id, created=found is None, matched_by=found[1] if found else None)

        @activity.defn(name="write_history_note")
        def write_history_note(request: NoteRequest) -> str:
            key = f"{request.contact_id}/{request.note_key}"
            world.notes.setdefault(key, {})[request.section_key] = request.text
            return f"N-{sorted(world.notes).index(key) + 1}"

        @activity.defn(name="match_email_contacts")
        def match_email_contacts(request: EmailMatchRequest) -> EmailMatch:
            mail = request.mail
            outgoing = mail.sender_address in world.users
            candidates = [a for a in mail.to + mail.cc if a not in world.users] if outgoing else [mail.sender_address]
            matched = [world.contacts[f"email:{a}"] for a in candidates if f"email:{a}" in world.contacts]
            return EmailMatch(direction="outgoing" if outgoing else "incoming", contact_ids=matched,
                              unmatched=[a for a in candidates if f"email:{a}" not in world.contacts])

        @activity.defn(name="settle_lead_receipt")
        def settle_lead_receipt(settled: ReceiptSettled) -> None:
            world.settled.append(settled)

        @activity.defn(name="enroll_in_plan")
        def enroll_in_plan(request: EnrollRequest) -> str:
            first = request.trigger not in {e.trigger for e in world.enrolled}
            world.enrolled.append(request)
            return "accepted" if first else "ignored: web-lead-connection is already running for the contact"

        return [find_or_create_contact, write_history_note, match_email_contacts, settle_lead_receipt,
                enroll_in_plan]


def angi(lead_id: str = "A-1", email: str | None = "dana@example.com", phone: str | None = "5125550142") -> Lead:
    return Lead(channel=LeadChannel.ANGI, lead_id=lead_id, first_name="Dana", last_name="Reyes", email=email,
                phone=phone, summary="Gutter Cleaning")


def intake(lead: Lead, plan_id: str | None = "web-lead-connection", **fields: Any) -> LeadIntakeInput:
    return LeadIntakeInput(account_id="acme-austin", channel=lead.channel, lead_id=lead.lead_id, lead_source="Angi",
                           plan_id=plan_id, **fields)


def delivery(receipt_id: int, lead: Lead) -> LeadDelivery:
    return LeadDelivery(receipt_id=receipt_id, received_at=datetime(2026, 12, 1, 15, 0, tzinfo=UTC), lead=lead)


def mail(sender: str, to: list[str], message_id: str = "<m-1@example.com>") -> CapturedMail:
    return CapturedMail.model_validate({"message_id": message_id, "from": sender, "to": to,
                                        "recipients": [*to, "capture+acme-austin@capture.ledgerflow.test"],
                                        "subject": "Your estimate", "text": "See attached."})
