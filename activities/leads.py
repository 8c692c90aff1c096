"""What lead intake and email capture do in the CRM: find the lead's contact or create it (once, however many
workflows race for the same person), keep a history note per contact and subject (created once, then updated),
match captured mail to contacts, and settle the API monitor's receipt. Each call checks Ledgerflow's record
map, then the CRM, then writes, then records (models/crm_records.py)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from activities.crm import CrmClient, crm_for_writes
from config.settings import Settings
from models.crm_records import claim, known, replace_data, settle
from models.lead_receipts import Outcome, settle_receipt
from models.leads import (
    ContactMatch,
    ContactRequest,
    EmailMatch,
    EmailMatchRequest,
    Lead,
    NoteRequest,
    ReceiptSettled,
)

BUSY_RETRY = timedelta(seconds=1)


class RecordBeingMade(Exception):
    """Another workflow is making the record under one of these keys: wait for it, then use it."""


@contextmanager
def _crm(settings: Settings, engine: Engine, account_id: str) -> Iterator[CrmClient]:
    """The account's CRM client; the CRM's answers as errors a workflow can act on."""
    try:
        with crm_for_writes(settings, engine, account_id) as crm:
            yield crm
    except RecordBeingMade as busy:
        raise ApplicationError(str(busy), type="RecordBeingMade", next_retry_delay=BUSY_RETRY) from busy


def _contact_fields(lead: Lead, lead_source_id: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"firstName": lead.first_name, "lastName": lead.last_name, "email": lead.email or "",
                              "phone": lead.phone or "", "address": lead.address, "city": lead.city,
                              "state": lead.state, "zip": lead.zip, "compName": lead.company_name,
                              "smsok": lead.smsok}
    return {**fields, "lead_source_id": lead_source_id} if lead_source_id else fields


def _blanks_filled(contact: dict[str, Any], lead: Lead) -> dict[str, Any]:
    """What the lead knows that the existing contact lacks; nothing the office typed is overwritten."""
    return {k: v for k, v in _contact_fields(lead, None).items()
            if k != "smsok" and v and not (contact.get(k) or "")}


def note_text(sections: dict[str, str], note_key: str) -> str:
    """The note as the CRM shows it; its last line lets a retry find a note it made but did not record."""
    return "\n\n".join(sections.values()) + f"\n\n[ledgerflow {note_key}]"


class LeadActivities:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    @activity.defn
    def find_or_create_contact(self, request: ContactRequest) -> ContactMatch:
        """The lead's contact: found by its lead id, email or phone (Ledgerflow's map, then the CRM's own
        look-ups), or created with its lead source."""
        lead, account = request.lead, request.account_id
        keys = lead.identities
        with _crm(self.settings, self.engine, account) as crm:
            rows = known(self.engine, account, keys)
            match = next(((str(rows[k].record_id), k) for k in keys if k in rows and rows[k].record_id), None)
            made_by_us = None  # the contact an earlier attempt of ours created, its answer lost
            if match is None:
                match = self._crm_contact(crm, lead)
                if match is not None and any(row.claimed_by == request.claimant for row in rows.values()):
                    made_by_us, match = match[0], None
            if match is not None:
                contact_id, matched_by = match
                filled = _blanks_filled(crm.contact(contact_id), lead)
                if filled:
                    crm.update_contact(contact_id, filled)
                settle(self.engine, account, keys, contact_id, request.claimant)
                return ContactMatch(contact_id=contact_id, created=False, matched_by=matched_by)
            if made_by_us is None:
                rows = claim(self.engine, account, keys, request.claimant)
                settled = next((rows[k] for k in keys if rows[k].record_id is not None), None)
                if settled is not None:  # made by someone else between our look-up and our claim
                    settle(self.engine, account, keys, str(settled.record_id), request.claimant)
                    return ContactMatch(contact_id=str(settled.record_id), created=False, matched_by=settled.key)
                others = [k for k in keys if rows[k].claimed_by != request.claimant]
                if others:
                    raise RecordBeingMade(f"the contact for {', '.join(others)} is being created by "
                                          f"{rows[others[0]].claimed_by}")
            source_id = self._lead_source_id(crm, request.lead_source)
            contact_id = made_by_us or str(crm.create_contact(_contact_fields(lead, source_id))["client_id"])
            settle(self.engine, account, keys, contact_id, request.claimant)
            metrics.lead_contact_created()
            activity.logger.info("lead %s: created contact %s", lead.lead_id, contact_id)
            return ContactMatch(contact_id=contact_id, created=True,
                                lead_source_missing=request.lead_source is not None and source_id is None)

    @staticmethod
    def _crm_contact(crm: CrmClient, lead: Lead) -> tuple[str, str] | None:
        """The CRM's own look-ups: a contact the office made by hand, or one an earlier attempt made."""
        for field, value in (("email", lead.email), ("phone", lead.phone)):
            if value:
                found = crm.find_contact(**{field: value})
                if found is not None:
                    return str(found["client_id"]), f"crm:{field}"
        return None

    @staticmethod
    def _lead_source_id(crm: CrmClient, name: str | None) -> str | None:
        if name is None:
            return None
        wanted = name.casefold()
        return next((str(s["lead_source_id"]) for s in crm.lead_sources()
                     if str(s.get("lead_source_name", "")).casefold() == wanted), None)

    @activity.defn
    def write_history_note(self, request: NoteRequest) -> str:
        """Write one section of the contact's note about `note_key`; the note's id. The note is created once;
        writing a section again (a repeat of the same lead, another lead of the same source) updates it."""
        account, key = request.account_id, f"note:{request.contact_id}:{request.note_key}"
        with _crm(self.settings, self.engine, account) as crm:
            for _ in range(5):
                row = claim(self.engine, account, [key], request.claimant)[key]
                if row.record_id is None and row.claimed_by != request.claimant:
                    raise RecordBeingMade(f"the note {request.note_key} is being made by {row.claimed_by}")
                sections = dict(row.data.get("sections", {}))
                if row.record_id is not None and sections.get(request.section_key) == request.text:
                    return str(row.record_id)
                sections[request.section_key] = request.text
                text = note_text(sections, request.note_key)
                note_id = row.record_id or self._unrecorded_note(crm, request)
                if note_id is None:
                    note_id = str(crm.create_history_note(request.contact_id, text)["note_id"])
                else:
                    crm.update_history_note(note_id, text)
                if row.record_id is None:
                    settle(self.engine, account, [key], note_id, request.claimant, data={"sections": sections})
                    return note_id
                if replace_data(self.engine, account, key, row.version, {"sections": sections}):
                    return note_id
                # another section was written meanwhile: write ours on top of it
            raise ApplicationError(f"the note {request.note_key} keeps changing under us", type="NoteContended")

    @staticmethod
    def _unrecorded_note(crm: CrmClient, request: NoteRequest) -> str | None:
        marker = f"[ledgerflow {request.note_key}]"
        return next((str(n["note_id"]) for n in crm.history_notes(request.contact_id)
                     if str(n.get("note", "")).endswith(marker)), None)

    @activity.defn
    def match_email_contacts(self, request: EmailMatchRequest) -> EmailMatch:
        """Mail one of the account's users sent is about its recipients; any other mail is about its sender."""
        mail = request.mail
        domain = "@" + self.settings.email_capture_domain.lower()
        with _crm(self.settings, self.engine, request.account_id) as crm:
            users = {str(u.get("email", "")).lower() for u in crm.users()}
            outgoing = mail.sender_address in users
            candidates = ([a for a in dict.fromkeys([*mail.to, *mail.cc, *mail.recipients])
                           if a not in users and not a.endswith(domain)] if outgoing else [mail.sender_address])
            matched: dict[str, str] = {}
            for address in candidates:
                found = crm.find_contact(email=address)
                if found is not None:
                    matched[address] = str(found["client_id"])
        return EmailMatch(direction="outgoing" if outgoing else "incoming",
                          contact_ids=list(dict.fromkeys(matched.values())),
                          unmatched=[a for a in candidates if a not in matched])

    @activity.defn
    def settle_lead_receipt(self, settled: ReceiptSettled) -> None:
        settle_receipt(self.engine, settled.receipt_id, Outcome(settled.outcome), settled.contact_id, settled.reason)
        metrics.lead_settled(settled.outcome)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.find_or_create_contact, self.write_history_note, self.match_email_contacts,
                self.settle_lead_receipt]
