"""What each lead source posts (`specs/crm-and-partners.md`, "Lead sources"), and how each becomes a `Lead`.
Field names are the sources' own and case-sensitive; a payload missing what identifies the lead or the person
is refused whole (422), never half-created."""

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.leads import Lead, LeadChannel, LeadDetail, person_digest, phone_digits, split_name


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, coerce_numbers_to_str=True)


def _as_given(phone: str | None) -> list[LeadDetail]:
    """A phone we cannot read as 10 digits is kept, as the person typed it, rather than dropped."""
    return [LeadDetail(question="Phone as given", answer=phone)] if phone and phone_digits(phone) is None else []


def _names(name: str | None, first: str | None, last: str | None) -> tuple[str, str]:
    if (first or "").strip() or (last or "").strip():
        return (first or "").strip(), (last or "").strip()
    return split_name(name or "")


class QuestionAnswer(_Payload):
    """Angi's interview and Thumbtack's request details: what the source asked and what the person said."""

    question: str = ""
    answer: str = ""


def _details(answers: list[QuestionAnswer], extra: list[tuple[str, str | None]], phone: str | None) -> list[LeadDetail]:
    """The source's answers, its other fields that were given, and a phone we could not read."""
    return ([LeadDetail(question=a.question, answer=a.answer) for a in answers]
            + [LeadDetail(question=q, answer=a) for q, a in extra if a] + _as_given(phone))


# -- Angi Leads ---------------------------------------------------------------------------------------------
class AngiLead(_Payload):
    name: str = Field(min_length=1, max_length=200)
    firstName: str | None = None
    lastName: str | None = None
    address: str | None = None
    city: str | None = None
    stateProvince: str | None = None
    postalCode: str | None = None
    primaryPhone: str | None = None
    email: str | None = None
    leadOid: str = Field(min_length=1, max_length=100)
    srOid: str | None = None
    taskName: str | None = None
    comments: str | None = None
    leadSource: str | None = None
    interview: list[QuestionAnswer] = Field(default=[], max_length=200)
    fee: str | None = None

    def to_lead(self) -> Lead:
        first, last = _names(self.name, self.firstName, self.lastName)
        extra = [("Service request", self.srOid), ("Angi lead source", self.leadSource), ("Lead fee", self.fee)]
        return Lead(channel=LeadChannel.ANGI, lead_id=self.leadOid, first_name=first, last_name=last,
                    email=self.email, phone=self.primaryPhone, address=self.address or "", city=self.city or "",
                    state=self.stateProvince or "", zip=self.postalCode or "", smsok=True,
                    summary=self.taskName or "", comments=self.comments or "",
                    details=_details(self.interview, extra, self.primaryPhone))


# -- Thumbtack (the legacy lead JSON) ------------------------------------------------------------------------
class ThumbtackLocation(_Payload):
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    state: str | None = None
    zipCode: str | None = None


class ThumbtackRequest(_Payload):
    requestID: str | None = None
    category: str | None = None
    categoryID: str | None = None
    title: str | None = None
    description: str | None = None
    schedule: str | None = None
    location: ThumbtackLocation = ThumbtackLocation()
    travelPreferences: str | None = None
    details: list[QuestionAnswer] = Field(default=[], max_length=200)


class ThumbtackCustomer(_Payload):
    customerID: str | None = None
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = None


class ThumbtackBusiness(_Payload):
    businessID: str = Field(min_length=1, max_length=100)
    name: str | None = None


class ThumbtackLead(_Payload):
    leadID: str = Field(min_length=1, max_length=100)
    createTimestamp: str | None = None  # unix seconds, as a string
    request: ThumbtackRequest = ThumbtackRequest()
    customer: ThumbtackCustomer
    business: ThumbtackBusiness
    leadType: str | None = None  # "INSTANT_BOOK" | "ESTIMATION"
    leadPrice: str | None = None
    chargeState: str | None = None

    def to_lead(self) -> Lead:
        first, last = split_name(self.customer.name)
        request, where = self.request, self.request.location
        created = (datetime.fromtimestamp(int(self.createTimestamp), UTC).isoformat(timespec="seconds")
                   if (self.createTimestamp or "").isdigit() else self.createTimestamp)
        extra = [("Category", request.category), ("When", request.schedule), ("Travel", request.travelPreferences),
                 ("Lead type", self.leadType), ("Lead price", self.leadPrice), ("Charge", self.chargeState),
                 ("Requested at", created)]
        return Lead(channel=LeadChannel.THUMBTACK, lead_id=self.leadID, first_name=first, last_name=last,
                    phone=self.customer.phone, smsok=True,
                    address=" ".join(p for p in (where.address1, where.address2) if p), city=where.city or "",
                    state=where.state or "", zip=where.zipCode or "", summary=request.title or "",
                    comments=request.description or "",
                    details=_details(request.details, extra, self.customer.phone))


# -- web forms and Zapier -----------------------------------------------------------------------------------
# The CRM's contact fields a form or a Zap may fill; anything else it posts is kept as a detail of the lead.
_CONTACT_FIELDS = {"web_key", "lead_id", "name", "firstName", "lastName", "email", "phone", "address", "city", "state",
                   "zip", "compName", "smsok", "comments", "message", "lead_source"}
_TRUE = {"1", "true", "yes", "on", "y"}


class ContactFormLead(_Payload):
    """A web-form post (`web_key` required, `name` or `firstName`+`lastName`) or a Zapier-style post (the same
    fields, the key in the URL). Any other field becomes a detail of the lead."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)

    web_key: str | None = Field(default=None, max_length=200)
    lead_id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    firstName: str | None = Field(default=None, max_length=100)
    lastName: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    compName: str | None = None
    smsok: str | None = None
    comments: str | None = Field(default=None, max_length=10_000)
    message: str | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _named(self) -> "ContactFormLead":
        if not ((self.name or "").strip() or ((self.firstName or "").strip() and (self.lastName or "").strip())):
            raise ValueError("name, or firstName and lastName, is required")
        return self

    def to_lead(self, channel: LeadChannel) -> Lead:
        first, last = _names(self.name, self.firstName, self.lastName)
        extra: dict[str, Any] = {k: v for k, v in (self.model_extra or {}).items()
                                 if k not in _CONTACT_FIELDS and v not in (None, "")}
        lead_id = self.lead_id or person_digest(self.email, phone_digits(self.phone) or self.phone, first, last)
        return Lead(channel=channel, lead_id=lead_id, first_name=first, last_name=last, email=self.email,
                    phone=self.phone, address=self.address or "", city=self.city or "", state=self.state or "",
                    zip=self.zip or "", company_name=self.compName or "",
                    smsok=(self.smsok or "").strip().lower() in _TRUE,
                    comments="\n".join(c for c in (self.comments, self.message) if c),
                    details=[LeadDetail(question=str(k), answer=str(v)[:5000]) for k, v in list(extra.items())[:100]]
                    + _as_given(self.phone))
