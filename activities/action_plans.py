"""The action plan's side effects that are not messages: the contact as the CRM has it now (the context
templates render from), rendering, the CRM's history notes, step and assignee, and the enrollment table."""

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.crm import crm_client_for
from config.settings import Settings
from models.accounts import Franchisee
from models.db import session_scope
from models.enrollments import (
    ContextInput,
    CrmAssignInput,
    CrmNote,
    CrmStepInput,
    EnrollmentEnd,
    EnrollmentRecord,
    RenderInput,
)
from models.messages import e164
from models.plan_context import PlanAccount, PlanContact, PlanContext, PlanUser
from models.plan_enrollments import PlanEnrollment
from models.plan_templates import TemplateFault, render


def _parsed_time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _name_parts(user_name: str) -> tuple[str, str]:
    first, _, last = user_name.strip().partition(" ")
    return first, last


def plan_context(franchisee: Franchisee, row: dict[str, Any], users: list[dict[str, Any]],
                 steps: list[dict[str, Any]]) -> PlanContext:
    """The CRM's contact row, its assigned user and the account, as templates, waits and branches see them."""
    step_names = {str(s["sales_cycle_id"]): str(s["sales_cycle_name"]) for s in steps}
    assigned = str(row["assigned_user"]) if row.get("assigned_user") else None
    user_row = next((u for u in users if str(u["user_id"]) == assigned), None)
    user = None
    if user_row is not None:
        first, last = _name_parts(str(user_row.get("user_name") or ""))
        user = PlanUser(id=str(user_row["user_id"]), first_name=first, last_name=last,
                        email=user_row.get("email") or None, phone=user_row.get("phone") or None)
    contact = PlanContact(
        id=str(row["client_id"]), first_name=row.get("firstName") or "", last_name=row.get("lastName") or "",
        email=(row.get("email") or "").strip().lower() or None, phone=row.get("phone") or None,
        smsok=str(row.get("smsok")).lower() in ("true", "1", "yes"), address=row.get("address") or "",
        city=row.get("city") or "", state=row.get("state") or "", zip=row.get("zip") or "",
        time_zone=row.get("time_zone") or None, lead_source=str(row.get("clients_lead_source") or ""),
        sales_cycle_step=step_names.get(str(row.get("clients_sales_cycle")), ""), assigned_user_id=assigned,
        created_at=_parsed_time(row.get("created")), appointment_at=_parsed_time(row.get("appointment_at")))
    account = PlanAccount(id=franchisee.account_id, name=franchisee.name, time_zone=franchisee.time_zone)
    return PlanContext(contact=contact, user=user, account=account)


def note_marker(idempotency_key: str) -> str:
    """A short tag ending each note we write, so a retried activity can see the note is there already."""
    return f"[lf:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]}]"


class ActionPlanActivities:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    def _franchisee(self, account_id: str) -> Franchisee:
        with Session(self.engine) as session:
            franchisee = session.get(Franchisee, account_id)
        if franchisee is None:
            raise ApplicationError(f"unknown account {account_id}", type="UnknownAccount", non_retryable=True)
        return franchisee

    @activity.defn
    def load_plan_context(self, input: ContextInput) -> PlanContext:
        franchisee = self._franchisee(input.account_id)
        with crm_client_for(self.settings, self.engine, input.account_id) as crm:
            row = crm.contact(input.contact_id)
            return plan_context(franchisee, row, crm.users(), crm.sales_cycle())

    @activity.defn
    def render_templates(self, input: RenderInput) -> dict[str, str]:
        """Every template of a step, rendered against the contact; a fault names the step and the field."""
        rendered = {}
        for path, template in input.templates.items():
            try:
                rendered[path] = render(template, input.context, html=input.html.get(path, False),
                                        blank_missing=input.blank_missing)
            except TemplateFault as fault:
                raise ApplicationError(f"step {input.step_id}, {path}: {fault}", type="TemplateFault",
                                       non_retryable=True) from None
        return rendered

    @activity.defn
    def add_crm_note(self, input: CrmNote) -> None:
        """The step in the contact's CRM history; written once, however often the activity runs."""
        marker = note_marker(input.idempotency_key)
        with crm_client_for(self.settings, self.engine, input.account_id) as crm:
            if any(str(n.get("note", "")).endswith(marker) for n in crm.history_notes(input.contact_id)):
                return
            crm.create_history_note(input.contact_id, f"{input.note} {marker}")

    @activity.defn
    def set_sales_cycle_step(self, input: CrmStepInput) -> None:
        with crm_client_for(self.settings, self.engine, input.account_id) as crm:
            step = next((s for s in crm.sales_cycle()
                         if str(s["sales_cycle_name"]).casefold() == input.step.strip().casefold()), None)
            if step is None:
                raise ApplicationError(f"account {input.account_id} has no sales-cycle step {input.step!r}",
                                       type="UnknownStep", non_retryable=True)
            if crm.current_step(input.contact_id) != step:  # moving again would send the CRM's webhook again
                crm.move_step(input.contact_id, str(step["sales_cycle_id"]))

    @activity.defn
    def assign_crm_user(self, input: CrmAssignInput) -> None:
        with crm_client_for(self.settings, self.engine, input.account_id) as crm:
            crm.update_contact(input.contact_id, {"assigned_user": input.user_id or ""})

    @activity.defn
    def record_enrollment_start(self, record: EnrollmentRecord) -> None:
        with session_scope(self.engine) as session:
            if session.exec(select(PlanEnrollment).where(PlanEnrollment.workflow_id == record.workflow_id,
                                                         PlanEnrollment.run_id == record.run_id)).first():
                return
            phone = None
            if record.phone:
                try:
                    phone = e164(record.phone)
                except ValueError:
                    phone = None
            session.add(PlanEnrollment(**record.model_dump(exclude={"phone", "email"}), phone=phone,
                                       email=record.email.lower() if record.email else None))

    @activity.defn
    def record_enrollment_end(self, end: EnrollmentEnd) -> None:
        with session_scope(self.engine) as session:
            row = session.exec(select(PlanEnrollment).where(PlanEnrollment.workflow_id == end.workflow_id,
                                                            PlanEnrollment.run_id == end.run_id)).first()
            if row is not None and row.ended_at is None:
                row.ended_at, row.ended = datetime.now(UTC), end.ended.value
                session.add(row)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.load_plan_context, self.render_templates, self.add_crm_note, self.set_sales_cycle_step,
                self.assign_crm_user, self.record_enrollment_start, self.record_enrollment_end]
