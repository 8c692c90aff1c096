"""A lead as Ledgerflow handles it, whatever sent it: normalised once at the front door (names split or joined,
phone to 10 digits, email lower-cased), then carried by its intake workflow. The shapes that cross the
workflow boundary, and the history note a lead leaves on its contact."""

import hashlib
import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.captured_emails import CapturedMail


class LeadChannel(StrEnum):
    """How the lead reached us; part of its workflow id."""

    ANGI = "angi"
    THUMBTACK = "thumbtack"
    WEB_FORM = "web-form"
    ZAPIER = "zapier"


# The CRM lead source a channel's leads get when its key names none (a web form's account key names none).
CHANNEL_LEAD_SOURCE = {LeadChannel.ANGI: "Angi", LeadChannel.THUMBTACK: "Thumbtack", LeadChannel.ZAPIER: "Zapier",
                       LeadChannel.WEB_FORM: None}


def lead_workflow_id(account_id: str, channel: LeadChannel, lead_id: str) -> str:
    return f"lead:{account_id}:{channel.value}:{lead_id}"


def phone_digits(value: str | None) -> str | None:
    """A North American number as its 10 digits ("+1 (512) 555-0142" -> "5125550142"); None when it is not one."""
    digits = re.sub(r"\D", "", value or "")
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) == 10 and digits[0] not in "01" else None


def split_name(name: str) -> tuple[str, str]:
    """"Dana  Reyes-Lopez" -> ("Dana", "Reyes-Lopez"); "Reyes, Dana" -> ("Dana", "Reyes"); one word is a first name."""
    name = " ".join(name.split())
    if "," in name:
        last, _, first = name.partition(",")
        return first.strip(), last.strip()
    first, _, last = name.partition(" ")
    return first, last


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeadDetail(_Shape):
    """A question the source asked and its answer (Angi's interview, Thumbtack's request details), or a field
    of a form that has no CRM field."""

    question: str = Field(max_length=500)
    answer: str = Field(max_length=5000)


class Lead(_Shape):
    """One lead, normalised. `lead_id` is the source's own id, or for a form without one a digest of who sent
    it, so the same person posting twice is the same lead."""

    channel: LeadChannel
    lead_id: str = Field(min_length=1, max_length=200)
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)
    company_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = None
    address: str = Field(default="", max_length=300)
    city: str = Field(default="", max_length=100)
    state: str = Field(default="", max_length=50)
    zip: str = Field(default="", max_length=20)
    smsok: bool = False  # the person agreed to texts
    summary: str = Field(default="", max_length=500)  # what they want: Angi's task, Thumbtack's request title
    comments: str = Field(default="", max_length=10_000)
    details: list[LeadDetail] = Field(default=[], max_length=200)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        value = (value or "").strip().lower()
        if not value:
            return None
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("phone", mode="before")
    @classmethod
    def _phone(cls, value: object) -> str | None:
        return phone_digits(str(value)) if value not in (None, "") else None

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.company_name or "(no name)"

    @property
    def identities(self) -> list[str]:
        """What the lead is known by, strongest first: its id at the source, then the person's email and phone."""
        keys = [f"lead:{self.channel.value}:{self.lead_id}"]
        keys += [f"email:{self.email}"] if self.email else []
        keys += [f"phone:{self.phone}"] if self.phone else []
        return keys


def person_digest(*parts: str | None) -> str:
    """A stable id for a lead whose source gives none: the same person's details give the same id."""
    joined = "|".join((p or "").strip().lower() for p in parts)
    return "h-" + hashlib.sha256(joined.encode()).hexdigest()[:20]


class LeadDelivery(_Shape):
    """One arrival of a lead at the front door: the receipt the API monitor shows, and the lead."""

    receipt_id: int
    received_at: datetime
    lead: Lead


class LeadIntakeInput(_Shape):
    """Resolved at the front door from the account's config: where the lead goes and which plan it starts."""

    account_id: str
    channel: LeadChannel
    lead_id: str
    lead_source: str | None  # the CRM lead source's name; None for the account's own web key
    plan_id: str | None  # the lead source's connection plan (or the account's default); None starts none
    settle_time: timedelta = timedelta(seconds=30)
    carried: list[LeadDelivery] = []  # deliveries not yet handled when the run continued as new
    # A lead posted again and again starts a fresh run after this many, rather than grow its history.
    deliveries_per_run: int = Field(default=200, ge=1)


class ContactRequest(_Shape):
    account_id: str
    claimant: str  # the workflow id: who may create the contact for these identities
    lead: Lead
    lead_source: str | None


class ContactMatch(_Shape):
    contact_id: str
    created: bool
    matched_by: str | None = None  # "lead:angi:123", "email:...", "phone:...", or "crm:email" when the CRM had it
    lead_source_missing: bool = False  # the CRM account has no lead source of that name: created without one


class NoteRequest(_Shape):
    """One section of a history note Ledgerflow keeps on a contact: the note is known by `note_key`, and writing
    a section again replaces it, so the note is created once and then updated."""

    account_id: str
    contact_id: str
    claimant: str  # the workflow id
    note_key: str = Field(max_length=300)
    section_key: str = Field(max_length=300)
    text: str = Field(max_length=20_000)


class EmailMatchRequest(_Shape):
    account_id: str
    mail: CapturedMail


class EmailMatch(_Shape):
    """Outgoing mail (sent by one of the account's users) matches its recipients; incoming mail its sender."""

    direction: Literal["incoming", "outgoing"]
    contact_ids: list[str]
    unmatched: list[str]  # the addresses no contact has


class EmailCaptureInput(_Shape):
    account_id: str
    receipt_id: int
    mail: CapturedMail


class EmailCaptured(_Shape):
    direction: Literal["incoming", "outgoing"]
    contact_ids: list[str]
    note_ids: list[str]
    unmatched: list[str]


def email_workflow_id(account_id: str, message_id: str) -> str:
    return f"email:{account_id}:{hashlib.sha256(message_id.encode()).hexdigest()[:24]}"


def email_note(mail: CapturedMail, direction: str) -> str:
    who = (f"Email sent by {mail.sender_address} to {', '.join(mail.to + mail.cc)}" if direction == "outgoing"
           else f"Email received from {mail.sender_address}")
    when = f" on {mail.sent_at:%Y-%m-%d %H:%M %Z}".rstrip() if mail.sent_at else ""
    return f"{who}{when}\nSubject: {mail.subject or '(none)'}\n\n{mail.text[:5000]}"


class ReceiptSettled(_Shape):
    receipt_id: int
    outcome: str  # models.lead_receipts.Outcome
    contact_id: str | None = None
    reason: str | None = None


class LeadHandled(_Shape):
    receipt_id: int
    contact_id: str
    outcome: str
    note_id: str
    enrollment: str | None


class LeadIntakeState(_Shape):
    contact_id: str | None
    pending: int
    handled: list[LeadHandled]


def lead_note_key(lead_source: str | None, channel: LeadChannel) -> str:
    """One note per contact and lead source: the same person from two sources is one contact with two notes."""
    return f"lead-source:{(lead_source or channel.value).casefold()}"


def lead_note_section(lead: Lead, lead_source: str | None, received_at: datetime) -> str:
    """What the lead said, for the contact's history: a repeat of the same lead replaces its own section."""
    lines = [f"Lead {lead.lead_id} from {lead_source or lead.channel.value} ({lead.channel.value}), "
             f"received {received_at:%Y-%m-%d %H:%M} UTC"]
    lines += [f"Request: {lead.summary}"] if lead.summary else []
    lines += [f"Comments: {lead.comments}"] if lead.comments else []
    lines += [f"- {d.question}: {d.answer}" for d in lead.details]
    return "\n".join(lines)
