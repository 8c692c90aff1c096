"""One contact running one action plan (`plan:{account}:{contact}:{plan}`): the plan's steps in order, each
send idempotent, texts held to quiet hours in the contact's own time zone, waits of weeks as durable timers;
a reply, an opt-out, a goal step or a cancel ends it from wherever it is, as the plan says."""

import re
from collections import Counter
from datetime import datetime, timedelta

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.action_plans import ActionPlanActivities
    from activities.plan_feed import PlanFeedActivities
    from models.enrollments import (
        CancelEnrollment,
        ContactOptedOut,
        ContactReplied,
        ContextInput,
        CrmAssignInput,
        CrmNote,
        CrmStepInput,
        EndReason,
        EnrollmentEnd,
        EnrollmentInput,
        EnrollmentRecord,
        EnrollmentResult,
        EnrollmentState,
        EnrollRequest,
        SalesCycleChanged,
        StepOutcome,
        StepTaken,
        render_input,
    )
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
    from models.plan_branch import branch_holds
    from models.plan_context import PlanContext, contact_time_zone
    from models.plan_time import WaitFault, text_allowed_at, wait_ends_at
    from models.plans import (
        AssignUserStep,
        BranchStep,
        ClubReadyStep,
        EmailStep,
        EndStep,
        MailboxPowerStep,
        NotifyUserStep,
        Plan,
        SetStepStep,
        SheetRowStep,
        StartPlanStep,
        Step,
        TextStep,
        WaitEvent,
        WaitStep,
        WebhookStep,
    )

from workflows.errors import cause_message, cause_type

QUICK = timedelta(seconds=30)  # the ledger, the CRM, rendering
# A provider that keeps failing is retried (a partner, such as a webhook or a sheet, for a day), then the step
# is failed and said so.
SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), backoff_coefficient=2.0,
                         maximum_interval=timedelta(minutes=10),
                         non_retryable_error_types=["ContactOptedOut", "TemplateFault"])
PARTNER_PATIENCE = timedelta(days=1)


@workflow.defn
class ActionPlanWorkflow:
    @workflow.init
    def __init__(self, input: EnrollmentInput) -> None:
        self._input = input  # here, not in run: a signal in the first task is handled before run starts
        self._exit: EndReason | None = None
        self._replies: set[str] = set()
        self._steps_reached: list[str] = []
        self._opted_out = False
        self._taken: list[StepTaken] = []
        self._current: str | None = None
        self._waiting_for: str | None = None
        self._wait_until: datetime | None = None

    @workflow.run
    async def run(self, input: EnrollmentInput) -> EnrollmentResult:
        plan = input.plan
        info = workflow.info()
        context = await self._context()
        await workflow.execute_activity_method(
            ActionPlanActivities.record_enrollment_start, EnrollmentRecord(
                workflow_id=info.workflow_id, run_id=info.run_id, account_id=input.account_id,
                contact_id=input.contact_id, plan_id=plan.id, plan_version=plan.version, source=input.source,
                phone=context.contact.phone, email=context.contact.email),
            start_to_close_timeout=QUICK, summary=f"Ledger: {plan.name} v{plan.version} for {input.contact_id}")
        ended = await self._steps(input, context)
        if ended is EndReason.COMPLETED and plan.settings.next_plan:
            await self._enroll(plan.settings.next_plan, f"next plan of {plan.id}")
        await workflow.execute_activity_method(
            ActionPlanActivities.record_enrollment_end, EnrollmentEnd(
                workflow_id=info.workflow_id, run_id=info.run_id, ended=ended),
            start_to_close_timeout=QUICK, summary=f"Ledger: ended, {ended.value}")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return EnrollmentResult(plan_id=plan.id, plan_version=plan.version, ended=ended, taken=self._taken)

    async def _steps(self, input: EnrollmentInput, context: PlanContext) -> EndReason:
        plan = input.plan
        visits: Counter[str] = Counter()
        position = 0
        while position < len(plan.steps):
            if self._exit is not None:
                return self._exit
            step = plan.steps[position]
            visits[step.id] += 1
            self._current = step.id
            workflow.set_current_details(f"Step {position + 1} of {len(plan.steps)}: {step.id} ({step.type})")
            key = f"{workflow.info().workflow_id}/{workflow.info().run_id}/{step.id}/{visits[step.id]}"
            position += 1
            match step:
                case WaitStep():
                    await self._wait(step, plan, context)
                    if self._exit is None:
                        context = await self._context()  # weeks may have passed: the contact as it is now
                case BranchStep():
                    holds = branch_holds(step, context)
                    target = step.then if holds else step.otherwise
                    position = plan.step_index(target) if target else position
                    self._took(step, StepOutcome.DONE, f"{'then' if holds else 'otherwise'} -> {target or 'next'}")
                case EndStep():
                    self._took(step, StepOutcome.DONE)
                    return EndReason.END_STEP
                case StartPlanStep():
                    await self._enroll(step.plan, f"start_plan step {step.id} of {plan.id}")
                    self._took(step, StepOutcome.DONE, f"enrolled in {step.plan}")
                    return EndReason.STARTED_PLAN
                case _:
                    await self._act(step, plan, context, key)
        return self._exit or EndReason.COMPLETED

    # -- the steps that do something ------------------------------------------------------------------
    async def _act(self, step: Step, plan: Plan, context: PlanContext, key: str) -> None:
        skip = self._skip_reason(step, context)
        if skip is None and isinstance(step, TextStep):
            skip = await self._hold_for_quiet_hours(plan, context)
        if skip is not None:
            self._took(step, StepOutcome.SKIPPED, skip)
            await self._note(step, plan, context, f"skipped: {skip}", key)
            return
        try:
            rendered = await self._render(step, context)
            detail = await self._send(step, context, rendered, key)
        except ValidationError as error:  # rendered into something no provider would take: a bad URL, say
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            self._took(step, StepOutcome.FAILED, detail)
            await self._note(step, plan, context, f"failed: {detail}", key)
            return
        except ActivityError as error:
            if cause_type(error) == "ContactOptedOut":
                self._opted_out = True
                self._took(step, StepOutcome.SKIPPED, f"opted out of texts: {cause_message(error)}")
                return
            detail = cause_message(error)
            self._took(step, StepOutcome.FAILED, detail)
            await self._note(step, plan, context, f"failed: {detail}", key)
            return
        self._took(step, StepOutcome.DONE, detail)
        await self._note(step, plan, context, detail, key)

    def _skip_reason(self, step: Step, context: PlanContext) -> str | None:
        contact = context.contact
        if isinstance(step, TextStep):
            if self._opted_out:
                return "the contact opted out of texts"
            if not contact.phone:
                return "the contact has no phone number"
            if not _textable(contact.phone):
                return f"the contact's phone {contact.phone} is not a textable number"
            if not contact.smsok:
                return "the contact is not OK to text (smsok off)"
        if isinstance(step, EmailStep) and not contact.email:
            return "the contact has no email address"
        if isinstance(step, NotifyUserStep) and (context.user is None or not context.user.email):
            return "nobody with an email address is assigned to the contact"
        if isinstance(step, ClubReadyStep) and not (contact.email or contact.phone):
            return "the contact has neither email nor phone"
        return None

    async def _hold_for_quiet_hours(self, plan: Plan, context: PlanContext) -> str | None:
        """A text due outside quiet hours waits for them to end (in the contact's time zone), never dropped;
        a reason to skip it if the contact opted out (or the plan ended) meanwhile."""
        where = contact_time_zone(context.contact, context.account.time_zone)  # TCPA: the contact's, always
        allowed = text_allowed_at(workflow.now(), where, plan.settings.quiet_hours)
        if allowed > workflow.now():
            await self._sleep_until(allowed, "quiet hours to end")
            if self._exit is not None:
                return f"the plan ended while the text waited for quiet hours ({self._exit.value})"
            if self._opted_out:
                return "the contact opted out of texts"
        return None

    async def _render(self, step: Step, context: PlanContext) -> dict[str, str]:
        request = render_input(step, context)
        if request is None:
            return {}
        rendered: dict[str, str] = await workflow.execute_activity_method(
            ActionPlanActivities.render_templates, request, start_to_close_timeout=QUICK,
            retry_policy=RetryPolicy(non_retryable_error_types=["TemplateFault"]), summary=f"Render {step.id}")
        return rendered

    async def _send(self, step: Step, context: PlanContext, rendered: dict[str, str], key: str) -> str:
        """The step's one outside effect, under its idempotency key; what it did, for the history."""
        account, contact = self._enrollment.account_id, context.contact
        sent: Sent
        match step:
            case EmailStep():
                body = rendered["body"]
                message = EmailMessage(idempotency_key=key, account_id=account, to=str(contact.email),
                                       subject=rendered["subject"], text=_plain(body) if step.html else body,
                                       html=body if step.html else None)
                sent = await self._call("send_email", message, f"Email {step.id} to {contact.email}")
                return f"email sent to {contact.email}: {rendered['subject']}"
            case TextStep():
                text = TextMessage(idempotency_key=key, account_id=account, to=str(contact.phone),
                                   body=rendered["body"])
                sent = await self._call("send_text", text, f"Text {step.id} to {contact.phone}")
                return f"text sent to {contact.phone}"
            case NotifyUserStep():
                assert context.user is not None and context.user.email
                message = EmailMessage(idempotency_key=key, account_id=account, to=context.user.email,
                                       subject=rendered["subject"], text=rendered["body"])
                sent = await self._call("send_email", message, f"Notify {context.user.email}")
                return f"notified {context.user.email}"
            case AssignUserStep():
                await workflow.execute_activity_method(
                    ActionPlanActivities.assign_crm_user,
                    CrmAssignInput(account_id=account, contact_id=contact.id, user_id=step.user_id),
                    start_to_close_timeout=QUICK, summary=f"CRM: assign {step.user_id or 'nobody'}")
                return f"assigned to {step.user_id}" if step.user_id else "unassigned"
            case SetStepStep():
                await workflow.execute_activity_method(
                    ActionPlanActivities.set_sales_cycle_step,
                    CrmStepInput(account_id=account, contact_id=contact.id, step=step.step),
                    start_to_close_timeout=QUICK, retry_policy=RetryPolicy(non_retryable_error_types=["UnknownStep"]),
                    summary=f"CRM: sales-cycle step {step.step}")
                return f"sales-cycle step set to {step.step}"
            case WebhookStep():
                call = WebhookCall(idempotency_key=key, account_id=account, url=rendered["url"], method=step.method,
                                   headers=_under(rendered, "headers"), secret_headers=step.secret_headers,
                                   body=_under(rendered, "body"))
                sent = await self._call("call_webhook", call, f"Webhook {step.method} {step.id}", partner=True)
                return f"webhook {step.method} {_host(rendered['url'])} answered"
            case SheetRowStep():
                columns = _under(rendered, "columns")
                row = SheetRow(idempotency_key=key, account_id=account, spreadsheet_id=step.spreadsheet_id,
                               sheet=step.sheet, values=[columns[name] for name in step.columns])
                sent = await self._call("append_sheet_row", row, f"Sheet row in {step.sheet}", partner=True)
                return f"row appended to {step.sheet}"
            case MailboxPowerStep():
                mailing = Mailing(idempotency_key=key, account_id=account, template_id=step.template_id,
                                  recipient=_recipient(context, _under(rendered, "merge_fields")))
                sent = await self._call("send_mailing", mailing, f"Mailbox Power {step.template_id}", partner=True)
                return f"mailing {step.template_id} ordered ({sent.provider_id})"
            case ClubReadyStep():
                prospect = ClubReadyProspect(idempotency_key=key, account_id=account, club_id=step.club_id,
                                             first_name=contact.first_name, last_name=contact.last_name,
                                             email=contact.email or "", phone=contact.phone or "")
                sent = await self._call("push_clubready", prospect, f"ClubReady {step.club_id}", partner=True)
                return f"pushed to ClubReady club {step.club_id} ({sent.provider_id})"
        raise ApplicationError(f"step type {step.type} has no action", non_retryable=True)

    async def _call(self, activity: str, message: object, summary: str, partner: bool = False) -> Sent:
        return await workflow.execute_activity(
            activity, message, result_type=Sent, start_to_close_timeout=timedelta(minutes=1),
            schedule_to_close_timeout=PARTNER_PATIENCE if partner else timedelta(hours=6), retry_policy=SEND_RETRY,
            summary=summary)

    # -- waits ----------------------------------------------------------------------------------------
    async def _wait(self, step: WaitStep, plan: Plan, context: PlanContext) -> None:
        started = workflow.now()
        try:
            until = wait_ends_at(step, started, self._time_zone(plan, context), context, plan.settings)
        except WaitFault as fault:
            self._took(step, StepOutcome.SKIPPED, str(fault))
            return
        if step.until_event is None:
            assert until is not None
            await self._sleep_until(until, f"{step.id}: until {until.isoformat()}")
            if self._exit is None:
                self._took(step, StepOutcome.WAITED, f"until {until.isoformat()}")
            return
        seen = self._event_count(step.until_event)
        self._waiting_for, self._wait_until = f"{step.id}: {step.until_event.value}", until
        timeout = max(until - workflow.now(), timedelta(0)) if until else None
        try:
            await workflow.wait_condition(lambda: self._exit is not None or self._event_count(step.until_event) > seen,
                                          timeout=timeout, timeout_summary=f"{step.id}: no {step.until_event.value}")
            came = self._exit is None
        except TimeoutError:
            came = False
        finally:
            self._waiting_for = self._wait_until = None
        if self._exit is None:
            self._took(step, StepOutcome.WAITED, f"{step.until_event.value} {'came' if came else 'did not come'}")

    async def _sleep_until(self, until: datetime, what: str) -> None:
        """Sleep till `until`, unless the plan ends first (a reply, an opt-out, a goal, a cancel)."""
        remaining = until - workflow.now()
        if remaining <= timedelta(0):
            return
        self._waiting_for, self._wait_until = what, until
        try:
            await workflow.wait_condition(lambda: self._exit is not None, timeout=remaining, timeout_summary=what)
        except TimeoutError:
            pass
        finally:
            self._waiting_for = self._wait_until = None

    def _event_count(self, event: WaitEvent) -> int:
        return len(self._replies) if event is WaitEvent.REPLY else len(self._steps_reached)

    # -- signals and the query ------------------------------------------------------------------------
    @workflow.signal
    def contact_replied(self, reply: ContactReplied) -> None:
        if reply.message_id in self._replies:
            return
        self._replies.add(reply.message_id)
        if self._enrollment.plan.settings.exit_on_reply and self._exit is None:
            self._exit = EndReason.REPLIED

    @workflow.signal
    def contact_opted_out(self, keyword: ContactOptedOut) -> None:
        self._opted_out = keyword.opted_out
        if keyword.opted_out and self._enrollment.plan.settings.exit_on_opt_out and self._exit is None:
            self._exit = EndReason.OPTED_OUT

    @workflow.signal
    def sales_cycle_changed(self, change: SalesCycleChanged) -> None:
        self._steps_reached.append(change.step)
        goals = {step.casefold() for step in self._enrollment.plan.settings.exit_on_steps}
        if change.step.strip().casefold() in goals and self._exit is None:
            self._exit = EndReason.GOAL

    @workflow.signal
    def cancel(self, cancel: CancelEnrollment) -> None:
        if self._exit is None:
            self._exit = EndReason.CANCELLED

    @workflow.query
    def state(self) -> EnrollmentState:
        plan = self._enrollment.plan
        return EnrollmentState(account_id=self._enrollment.account_id, contact_id=self._enrollment.contact_id,
                               plan_id=plan.id, plan_version=plan.version, current_step=self._current,
                               waiting_for=self._waiting_for, wait_until=self._wait_until,
                               opted_out=self._opted_out, replies=len(self._replies), taken=self._taken,
                               ended=self._exit)

    # -- helpers --------------------------------------------------------------------------------------
    @property
    def _enrollment(self) -> EnrollmentInput:
        return self._input

    async def _context(self) -> PlanContext:
        enrollment = self._enrollment
        context: PlanContext = await workflow.execute_activity_method(
            ActionPlanActivities.load_plan_context,
            ContextInput(account_id=enrollment.account_id, contact_id=enrollment.contact_id),
            start_to_close_timeout=QUICK, summary=f"CRM: contact {enrollment.contact_id}")
        return context

    def _time_zone(self, plan: Plan, context: PlanContext) -> str:
        if plan.settings.time_zone_source == "account":
            return context.account.time_zone
        return contact_time_zone(context.contact, context.account.time_zone)

    def _took(self, step: Step, outcome: StepOutcome, detail: str = "") -> None:
        self._taken.append(StepTaken(step_id=step.id, type=step.type, outcome=outcome, detail=detail,
                                     at=workflow.now()))

    async def _note(self, step: Step, plan: Plan, context: PlanContext, detail: str, key: str) -> None:
        """The step in the contact's CRM history, where staff look first."""
        await workflow.execute_activity_method(
            ActionPlanActivities.add_crm_note,
            CrmNote(account_id=self._enrollment.account_id, contact_id=context.contact.id, idempotency_key=key,
                    note=f"Action plan {plan.name} (v{plan.version}), step {step.id}: {detail}"[:4000]),
            start_to_close_timeout=QUICK, summary=f"CRM: note for {step.id}")

    async def _enroll(self, plan_id: str, source: str) -> None:
        enrollment = self._enrollment
        await workflow.execute_activity_method(
            PlanFeedActivities.enroll_in_plan,
            EnrollRequest(account_id=enrollment.account_id, contact_id=enrollment.contact_id, plan_id=plan_id,
                          source=source),
            start_to_close_timeout=QUICK, summary=f"Enroll in {plan_id}")


def _textable(phone: str) -> bool:
    try:
        e164(phone)
    except ValueError:
        return False
    return True


def _under(rendered: dict[str, str], field: str) -> dict[str, str]:
    """The rendered values of a dict field ("headers.Authorization" -> {"Authorization": ...})."""
    prefix = f"{field}."
    return {path.removeprefix(prefix): value for path, value in rendered.items() if path.startswith(prefix)}


def _plain(html: str) -> str:
    """The text part of an HTML email: the tags dropped (the HTML part carries the formatting)."""
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"<[^>]+>", "", html)).strip()


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def _recipient(context: PlanContext, merge_fields: dict[str, str]) -> dict[str, str]:
    contact = context.contact
    return {"first_name": contact.first_name, "last_name": contact.last_name, "address": contact.address,
            "city": contact.city, "state": contact.state, "zip": contact.zip, **merge_fields}

