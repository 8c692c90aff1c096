"""The action-plan format: what an admin writes in config/plans/*.yaml and what an enrollment runs. A plan is
immutable once loaded and travels whole as the workflow input, so editing a file never changes an enrollment
already running. Intra-plan references (step ids, branch targets) are checked here; templates, tokens and
other plans are checked by config.plans, which knows the token list and every loaded plan."""

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
# A token names one field of the render context: "contact.appointment_at", "client.firstName".
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")]

_SHORT_DURATION = re.compile(r"^(-)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _short_duration(value: Any) -> Any:
    """Admins write "3d", "2h30m", "1w" or "-1d"; ISO 8601 ("P3D") and seconds still work through pydantic."""
    if not isinstance(value, str):
        return value
    match = _SHORT_DURATION.fullmatch(value.replace(" ", ""))
    if not match or not any(match.groups()[1:]):
        return value
    sign, weeks, days, hours, minutes, seconds = match.groups()
    span = timedelta(weeks=int(weeks or 0), days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0),
                     seconds=int(seconds or 0))
    return -span if sign else span


Duration = Annotated[
    timedelta,
    BeforeValidator(_short_duration),
    WithJsonSchema({"type": "string", "description": "a duration: 3d, 2h30m, 1w, -1d, or ISO 8601 (P3D, PT2H30M)"},
                   mode="validation"),
]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


REFERENCE_FAULT = "plan_reference"  # the error type of reference_faults' faults within a ValidationError


def _faults_at(title: str, faults: list[tuple[tuple[str | int, ...], str]], kind: str = "plan") -> ValidationError:
    """Faults found by a validator, each at its own location, so a plan fault names the field it is in."""
    return ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError(kind, message), loc=location, input=None)
        for location, message in faults])


class PlanType(StrEnum):
    CONNECTION = "connection"  # started by a lead source: first contact with a new lead
    CONVERSION = "conversion"  # an estimate out: win the job
    RETENTION = "retention"  # after the job: reviews, referrals, repeat work
    EVENT = "event"
    SEASONAL = "seasonal"


class Reentry(StrEnum):
    ONCE = "once"  # never again for this contact and plan id
    ONE_ACTIVE = "one_active"  # a new enrollment while one runs is ignored; allowed after it ends
    ALWAYS = "always"  # a running enrollment restarts from the top, on the new plan version


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """date.weekday()'s number: Monday is 0."""
        return list(Weekday).index(self)


class QuietHours(_Shape):
    """When texts may go out, in the contact's local time: [start, end). TCPA (47 CFR 64.1200(c)(1)) forbids
    texts before 8 a.m. and after 9 p.m. at the contact's location, so the window may only be narrower."""

    start: time = time(8, 0)
    end: time = time(21, 0)

    @model_validator(mode="after")
    def _within_tcpa(self) -> "QuietHours":
        if self.start >= self.end:
            raise _faults_at("QuietHours", [(("end",), f"{self.end:%H:%M} must be after start {self.start:%H:%M}")])
        outside = [(name, at) for name, at in (("start", self.start), ("end", self.end))
                   if not time(8, 0) <= at <= time(21, 0)]
        if outside:
            raise _faults_at("QuietHours", [((name,), f"{at:%H:%M} is outside 08:00-21:00: TCPA allows texts only "
                                                      "then, at the contact's location") for name, at in outside])
        return self


class BusinessHours(_Shape):
    """The plan's opening hours, local to the time zone the plan uses: waits with business_hours end inside them."""

    days: list[Weekday] = Field(default=[Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI],
                                min_length=1)
    start: time = time(9, 0)
    end: time = time(17, 0)

    @model_validator(mode="after")
    def _opens_before_it_closes(self) -> "BusinessHours":
        if self.start >= self.end:
            raise _faults_at("BusinessHours", [(("end",), f"{self.end:%H:%M} must be after start {self.start:%H:%M}")])
        return self


class PlanSettings(_Shape):
    exit_on_reply: bool = True
    exit_on_opt_out: bool = True
    exit_on_steps: list[str] = []  # sales-cycle step names: reaching one ends the plan (a goal)
    reentry: Reentry = Reentry.ONE_ACTIVE
    quiet_hours: QuietHours = QuietHours()
    business_hours: BusinessHours = BusinessHours()
    holidays: list[date] = []
    time_zone_source: Literal["contact", "account"] = "contact"
    next_plan: Slug | None = None  # enrolled when this plan runs to its end (not when it exits early)


class _Step(_Shape):
    id: Slug


class EmailStep(_Step):
    type: Literal["email"] = "email"
    subject: str = Field(min_length=1, max_length=998)  # RFC 5322's line limit
    body: str = Field(min_length=1)
    html: bool = True


class TextStep(_Step):
    type: Literal["text"] = "text"
    body: str = Field(min_length=1, max_length=1600)  # Twilio refuses longer message bodies


class NotifyUserStep(_Step):
    """A message to the contact's assigned user (or the account's inbox when nobody is assigned)."""

    type: Literal["notify_user"] = "notify_user"
    subject: str = Field(min_length=1, max_length=998)
    body: str = Field(min_length=1)


class AssignUserStep(_Step):
    type: Literal["assign_user"] = "assign_user"
    user_id: str | None = Field(min_length=1)  # None unassigns


class WaitEvent(StrEnum):
    REPLY = "reply"
    SALES_CYCLE_CHANGE = "sales_cycle_change"


class WaitStep(_Step):
    """Waits for exactly one thing: a duration, the next local time of day, a contact date field (plus an
    offset), or an event (with an optional timeout). With business_hours the end moves into the plan's hours."""

    type: Literal["wait"] = "wait"
    duration: Duration | None = None
    until_time: time | None = None
    until_field: Token | None = None
    offset: Duration = timedelta(0)
    until_event: WaitEvent | None = None
    timeout: Duration | None = None
    business_hours: bool = False

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> "WaitStep":
        kinds = [name for name in ("duration", "until_time", "until_field", "until_event")
                 if getattr(self, name) is not None]
        faults: list[tuple[tuple[str | int, ...], str]] = []
        if len(kinds) != 1:
            faults.append((tuple(kinds[1:2]), "a wait takes exactly one of duration, until_time, until_field, "
                                              f"until_event (given: {', '.join(kinds) or 'none'})"))
        if self.duration is not None and self.duration <= timedelta(0):
            faults.append((("duration",), "must be positive"))
        if self.offset and self.until_field is None:
            faults.append((("offset",), "applies only to until_field"))
        if self.timeout is not None and self.until_event is None:
            faults.append((("timeout",), "applies only to until_event"))
        elif self.timeout is not None and self.timeout <= timedelta(0):
            faults.append((("timeout",), "must be positive"))
        if faults:
            raise _faults_at("WaitStep", faults)
        return self


class SetStepStep(_Step):
    type: Literal["set_step"] = "set_step"
    step: str = Field(min_length=1)  # a sales-cycle step name, as the account's CRM spells it


CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-auth-token", "cookie"}


class WebhookStep(_Step):
    type: Literal["webhook"] = "webhook"
    url: Annotated[str, StringConstraints(pattern=r"^https?://.+$")]  # may contain tokens
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = {}  # values are templates; never a credential: see secret_headers
    # Header name -> the name of a secret (settings.plan_secrets): its value is added inside the activity
    # that calls the endpoint, so a credential never enters the plan, the workflow history or the logs.
    secret_headers: dict[str, Slug] = {}
    body: dict[str, str] = {}  # form fields: values are templates

    @field_validator("headers")
    @classmethod
    def _no_credentials(cls, headers: dict[str, str]) -> dict[str, str]:
        named = [h for h in headers if h.strip().lower() in CREDENTIAL_HEADERS]
        if named:
            raise ValueError(f"{', '.join(named)} carries a credential: name it in secret_headers instead, so its "
                             "value stays out of the plan and the workflow history")
        return headers


class SheetRowStep(_Step):
    """A row appended to a Google Sheet: column name -> template (a token, or fixed text)."""

    type: Literal["sheet_row"] = "sheet_row"
    spreadsheet_id: str = Field(min_length=1)
    sheet: str = Field(min_length=1)
    columns: dict[str, str] = Field(min_length=1)


class MailboxPowerStep(_Step):
    """A physical mailing through Mailbox Power (it takes business days to arrive)."""

    type: Literal["mailbox_power"] = "mailbox_power"
    template_id: str = Field(min_length=1)
    merge_fields: dict[str, str] = {}


class ClubReadyStep(_Step):
    type: Literal["clubready_push"] = "clubready_push"
    club_id: str = Field(min_length=1)


class Condition(_Shape):
    field: Token
    op: Literal["eq", "ne", "contains", "empty", "not_empty", "gt", "lt"]
    value: str | None = None

    @model_validator(mode="after")
    def _value_when_compared(self) -> "Condition":
        if self.op in ("empty", "not_empty") and self.value is not None:
            raise _faults_at("Condition", [(("value",), f"op {self.op} takes no value")])
        if self.op not in ("empty", "not_empty") and self.value is None:
            raise _faults_at("Condition", [(("value",), f"op {self.op} needs a value")])
        return self


class BranchStep(_Step):
    type: Literal["branch"] = "branch"
    when: list[Condition] = Field(min_length=1)  # all must hold
    then: Slug  # a step id
    otherwise: Slug | None = None  # a step id; None goes on to the next step


class EndStep(_Step):
    type: Literal["end"] = "end"


class StartPlanStep(_Step):
    """Ends this enrollment and enrolls the contact in another plan."""

    type: Literal["start_plan"] = "start_plan"
    plan: Slug


Step = Annotated[
    EmailStep | TextStep | NotifyUserStep | AssignUserStep | WaitStep | SetStepStep | WebhookStep | SheetRowStep
    | MailboxPowerStep | ClubReadyStep | BranchStep | EndStep | StartPlanStep,
    Field(discriminator="type"),
]

# The fields of each step type that hold templates (a dict field: each of its values). Renderers and
# validators both read this, so a new template field is rendered and checked alike.
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "body"),
    "text": ("body",),
    "notify_user": ("subject", "body"),
    "assign_user": (),
    "wait": (),
    "set_step": (),
    "webhook": ("url", "headers", "body"),
    "sheet_row": ("columns",),
    "mailbox_power": ("merge_fields",),
    "clubready_push": (),
    "branch": (),
    "end": (),
    "start_plan": (),
}


def _written(step: Step | Mapping[str, Any]) -> Mapping[str, Any]:
    return step if isinstance(step, Mapping) else dict(step)


def step_templates(step: Step | Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every template of a step with its path in the step: ("body",), ("headers", "Authorization"). Takes a
    step as written (a mapping) too, so a step with a schema fault still gets its templates checked; values
    that are not text are skipped there (the schema reports them)."""
    fields = _written(step)
    step_type = fields.get("type")
    for name in TEMPLATE_FIELDS.get(step_type, ()) if isinstance(step_type, str) else ():
        value = fields.get(name)
        if isinstance(value, str):
            yield (name,), value
        elif isinstance(value, Mapping):
            yield from (((name, str(key)), text) for key, text in value.items() if isinstance(text, str))


def reference_faults(steps: Sequence[Step | Mapping[str, Any]]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Faults in the references between steps, as (location, message): duplicate ids, branch targets that
    are not step ids, and jumps back with no wait in between (a contact would loop without pause). Takes
    steps as written (mappings) too, so the references of a plan with a faulty step are still checked."""
    written = [_written(step) for step in steps]
    first: dict[str, int] = {}
    for position, fields in enumerate(written):
        step_id = fields.get("id")
        if not isinstance(step_id, str):
            continue
        if step_id in first:
            yield ("steps", position, "id"), f"duplicate step id {step_id} (also step {first[step_id] + 1})"
        else:
            first[step_id] = position
    for position, fields in enumerate(written):
        if fields.get("type") != "branch":
            continue
        for name in ("then", "otherwise"):
            target = fields.get(name)
            if not isinstance(target, str):
                continue
            if target not in first:
                yield ("steps", position, name), f"no step with id {target}"
            elif first[target] <= position and not any(
                    between.get("type") == "wait" for between in written[first[target]:position]):
                yield ("steps", position, name), (f"jumps back to {target} with no wait in between: "
                                                  "the contact would loop without pause")


class Plan(_Shape):
    schema_version: Literal[1]
    id: Slug
    version: int = Field(ge=1)
    name: str = Field(min_length=1)
    type: PlanType
    settings: PlanSettings = PlanSettings()
    steps: list[Step] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _references_hold(cls, steps: list[Step]) -> list[Step]:
        faults = [(location[1:], message) for location, message in reference_faults(steps)]
        if faults:
            raise _faults_at("Plan", faults, kind=REFERENCE_FAULT)
        return steps

    def step_index(self, step_id: str) -> int:
        for position, step in enumerate(self.steps):
            if step.id == step_id:
                return position
        raise KeyError(f"plan {self.id} v{self.version} has no step {step_id}")
