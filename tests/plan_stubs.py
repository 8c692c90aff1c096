"""The outside world of an action plan, stubbed for workflow tests: the CRM's contacts, and providers that
record what they were asked to send, once per idempotency key, as the real activities do. Rendering and
the enrollment table are the real activities."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.action_plans import ActionPlanActivities
from config.settings import Settings
from models.enrollments import ContextInput, CrmAssignInput, CrmNote, CrmStepInput, EnrollRequest
from models.messages import (
    ClubReadyProspect,
    EmailMessage,
    Mailing,
    Sent,
    SheetRow,
    TextMessage,
    WebhookCall,
    e164,
)
from models.plan_context import PlanAccount, PlanContact, PlanContext, PlanUser

ACCOUNT = PlanAccount(id="acme-austin", name="Acme Home Services of Austin", time_zone="America/Chicago",
                      phone="5125550100")
OFFICE = PlanUser(id="u-1", first_name="Pat", last_name="Office", email="office@acme-austin.example.com")


def contact(contact_id: str = "C-1", **fields: Any) -> PlanContact:
    values: dict[str, Any] = {"first_name": "Dana", "last_name": "Whitfield", "email": "dana@example.com",
                              "phone": "5125550142", "smsok": True, "city": "Austin", "assigned_user_id": "u-1"}
    return PlanContact(id=contact_id, **{**values, **fields})


@dataclass
class PlanWorld:
    """What the plan's activities saw and did, by kind; `contacts` is the CRM."""

    engine: Engine
    settings: Settings
    contacts: dict[str, PlanContact] = field(default_factory=dict)
    sent: dict[str, list[Any]] = field(default_factory=dict)  # kind -> messages, each key once
    sent_at: dict[str, datetime] = field(default_factory=dict)  # idempotency key -> when (real time)
    keys: set[str] = field(default_factory=set)
    opted_out: set[str] = field(default_factory=set)  # E.164 numbers
    failures: Counter[str] = field(default_factory=Counter)  # kind -> transient failures still to give
    notes: list[CrmNote] = field(default_factory=list)
    steps_set: list[CrmStepInput] = field(default_factory=list)
    assigned: list[CrmAssignInput] = field(default_factory=list)
    enrolled: list[EnrollRequest] = field(default_factory=list)

    def _record(self, kind: str, key: str, message: Any) -> Sent:
        if self.failures[kind] > 0:
            self.failures[kind] -= 1
            raise ApplicationError(f"{kind} partner answered 500", type="PartnerUnavailable")
        duplicate = key in self.keys
        if not duplicate:
            self.keys.add(key)
            self.sent.setdefault(kind, []).append(message)
            self.sent_at[key] = datetime.now(UTC)
        return Sent(kind=kind, idempotency_key=key, provider_id=f"{kind}-{len(self.keys)}",  # type: ignore[arg-type]
                    sent_at=datetime.now(UTC), duplicate=duplicate)

    def of(self, kind: str) -> list[Any]:
        return self.sent.get(kind, [])

    @activity.defn(name="load_plan_context")
    def load_plan_context(self, input: ContextInput) -> PlanContext:
        person = self.contacts[input.contact_id]
        return PlanContext(contact=person, user=OFFICE if person.assigned_user_id else None, account=ACCOUNT)

    @activity.defn(name="send_email")
    def send_email(self, message: EmailMessage) -> Sent:
        return self._record("email", message.idempotency_key, message)

    @activity.defn(name="send_text")
    def send_text(self, message: TextMessage) -> Sent:
        if e164(message.to) in self.opted_out:
            raise ApplicationError(f"{message.to} opted out of texts (21610)", type="ContactOptedOut",
                                   non_retryable=True)
        return self._record("text", message.idempotency_key, message)

    @activity.defn(name="call_webhook")
    def call_webhook(self, call: WebhookCall) -> Sent:
        return self._record("webhook", call.idempotency_key, call)

    @activity.defn(name="append_sheet_row")
    def append_sheet_row(self, row: SheetRow) -> Sent:
        return self._record("sheet_row", row.idempotency_key, row)

    @activity.defn(name="send_mailing")
    def send_mailing(self, mailing: Mailing) -> Sent:
        return self._record("mailing", mailing.idempotency_key, mailing)

    @activity.defn(name="push_clubready")
    def push_clubready(self, prospect: ClubReadyProspect) -> Sent:
        return self._record("clubready", prospect.idempotency_key, prospect)

    @activity.defn(name="add_crm_note")
    def add_crm_note(self, note: CrmNote) -> None:
        if all(n.idempotency_key != note.idempotency_key for n in self.notes):
            self.notes.append(note)

    @activity.defn(name="set_sales_cycle_step")
    def set_sales_cycle_step(self, input: CrmStepInput) -> None:
        self.steps_set.append(input)

    @activity.defn(name="assign_crm_user")
    def assign_crm_user(self, input: CrmAssignInput) -> None:
        self.assigned.append(input)

    @activity.defn(name="enroll_in_plan")
    def enroll_in_plan(self, request: EnrollRequest) -> str:
        self.enrolled.append(request)
        return "accepted"

    def activities(self) -> list[Any]:
        real = ActionPlanActivities(self.settings, self.engine)
        return [self.load_plan_context, self.send_email, self.send_text, self.call_webhook, self.append_sheet_row,
                self.send_mailing, self.push_clubready, self.add_crm_note, self.set_sales_cycle_step,
                self.assign_crm_user, self.enroll_in_plan, real.render_templates, real.record_enrollment_start,
                real.record_enrollment_end]
