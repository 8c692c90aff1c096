"""An action plan's enrollment: one contact running one plan. The shapes that cross the workflow boundary
(the resolved plan travels whole in the input, so editing its file never changes a running enrollment),
the signals it takes, what its query answers, and its activities' inputs."""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.plan_context import PlanContext
from models.plan_templates import DATA_STEP_TYPES
from models.plans import EmailStep, Plan, Step, step_templates


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def plan_workflow_id(account_id: str, contact_id: str, plan_id: str) -> str:
    return f"plan:{account_id}:{contact_id}:{plan_id}"


class EndReason(StrEnum):
    COMPLETED = "completed"  # ran to its last step
    END_STEP = "end_step"
    REPLIED = "replied"  # the contact replied and the plan ends on a reply
    OPTED_OUT = "opted_out"
    GOAL = "goal"  # the contact reached a sales-cycle step the plan exits on
    CANCELLED = "cancelled"
    STARTED_PLAN = "started_plan"  # a start_plan step handed the contact to another plan
    RESTARTED = "restarted"  # re-enrolled under `always`: a new run starts from the top


class EnrollmentInput(_Shape):
    account_id: str
    contact_id: str
    plan: Plan
    source: str = Field(min_length=1, max_length=100)  # who enrolled: "cli", "api", "lead:angi", "step:Job Complete"


class ContactReplied(_Shape):
    channel: Literal["text", "email"]
    message_id: str  # the provider's id: one reply counted once, however often it is delivered
    body: str = Field(max_length=10_000)
    received_at: datetime


class ContactOptedOut(_Shape):
    """A texting keyword from the contact's phone: out (STOP...) or back in (START...)."""

    message_id: str
    opted_out: bool
    keyword: str


class SalesCycleChanged(_Shape):
    event_id: str
    step: str
    occurred_at: datetime


class CancelEnrollment(_Shape):
    reason: str = Field(min_length=1, max_length=500)


class StepOutcome(StrEnum):
    DONE = "done"  # sent, called, set
    SKIPPED = "skipped"  # nothing to do for this contact (no phone, no smsok, opted out...); said why
    FAILED = "failed"  # a template that does not render, a partner that kept refusing: said why
    WAITED = "waited"


class StepTaken(_Shape):
    step_id: str
    type: str
    outcome: StepOutcome
    detail: str = ""
    at: datetime


class EnrollmentState(_Shape):
    """What the workflow's `state` query answers: where the contact is and what it waits for."""

    account_id: str
    contact_id: str
    plan_id: str
    plan_version: int
    current_step: str | None
    waiting_for: str | None = None
    wait_until: datetime | None = None
    opted_out: bool = False
    replies: int = 0
    taken: list[StepTaken] = []
    ended: EndReason | None = None


class EnrollmentResult(_Shape):
    plan_id: str
    plan_version: int
    ended: EndReason
    taken: list[StepTaken]


# -- the activities' inputs ------------------------------------------------------------------------------
class ContextInput(_Shape):
    account_id: str
    contact_id: str


class RenderInput(_Shape):
    step_id: str
    templates: dict[str, str]  # a template's path in the step ("body", "headers.Authorization") -> its text
    html: dict[str, bool] = {}  # which paths are HTML (escaped); the rest are plain text
    blank_missing: bool = False  # data for machines (a webhook, a sheet row): an empty token renders empty
    context: PlanContext


def render_input(step: Step, context: PlanContext) -> RenderInput | None:
    """What rendering a step needs (None for a step with no templates): each template by its path in the step,
    an HTML email's body escaped, a machine's data (webhook, sheet row) with empty tokens left empty."""
    templates = {".".join(path): template for path, template in step_templates(step)}
    if not templates:
        return None
    html = {"body": True} if isinstance(step, EmailStep) and step.html else {}
    return RenderInput(step_id=step.id, templates=templates, html=html, context=context,
                       blank_missing=step.type in DATA_STEP_TYPES)


class EnrollmentRecord(_Shape):
    workflow_id: str
    run_id: str
    account_id: str
    contact_id: str
    plan_id: str
    plan_version: int
    source: str
    phone: str | None
    email: str | None


class EnrollmentEnd(_Shape):
    workflow_id: str
    run_id: str
    ended: EndReason


class CrmNote(_Shape):
    account_id: str
    contact_id: str
    note: str = Field(max_length=4000)
    idempotency_key: str


class CrmStepInput(_Shape):
    account_id: str
    contact_id: str
    step: str  # the sales-cycle step's name


class CrmAssignInput(_Shape):
    account_id: str
    contact_id: str
    user_id: str | None


class EnrollRequest(_Shape):
    """A plan enrolling the contact in another (a start_plan step, or the plan's next_plan)."""

    account_id: str
    contact_id: str
    plan_id: str
    source: str
    trigger: str | None = None  # what enrolled (a lead's workflow id): the same trigger never restarts a run


class PreviewInput(_Shape):
    account_id: str
    contact_id: str
    plan: Plan


class StepPreview(_Shape):
    step_id: str
    type: str
    rendered: dict[str, str] = {}  # a template's path -> its text, as the contact would get it
    fault: str | None = None  # why it would not render


class PlanPreview(_Shape):
    plan_id: str
    plan_version: int
    contact: PlanContext
    steps: list[StepPreview]
