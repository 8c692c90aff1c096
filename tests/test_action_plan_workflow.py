"""The action plan workflow on the time-skipping test server, its providers stubbed (tests/plan_stubs.py):
weeks of waits in seconds, quiet hours in each contact's own time zone, a reply or an opt-out ending the
plan, branches, a failing partner retried, steps skipped or failed with their reason."""

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from config.settings import Settings
from models.enrollments import (
    CancelEnrollment,
    ContactOptedOut,
    ContactReplied,
    EndReason,
    EnrollmentInput,
    EnrollmentResult,
    SalesCycleChanged,
    StepOutcome,
)
from models.plan_enrollments import PlanEnrollment
from models.plans import Plan
from tests.plan_stubs import PlanWorld, contact
from workflows.action_plan import ActionPlanWorkflow

CHICAGO = ZoneInfo("America/Chicago")


def plan(*steps: dict[str, Any], plan_id: str = "follow-up", **settings: Any) -> Plan:
    return Plan.model_validate({"schema_version": 1, "id": plan_id, "version": 1, "name": "Follow-up",
                                "type": "conversion", "settings": settings, "steps": list(steps)})


class Plans:
    """A worker for the plan workflow over the stubbed world, and enrollments started straight on it."""

    def __init__(self, env: WorkflowEnvironment, world: PlanWorld) -> None:
        self.env, self.world = env, world
        self.task_queue = f"plans-{uuid.uuid4()}"
        self.executor = ThreadPoolExecutor(max_workers=10)

    def worker(self) -> Worker:
        return Worker(self.env.client, task_queue=self.task_queue, workflows=[ActionPlanWorkflow],
                      activities=self.world.activities(), activity_executor=self.executor)

    async def start(self, the_plan: Plan, contact_id: str = "C-1") -> WorkflowHandle[Any, EnrollmentResult]:
        return await self.env.client.start_workflow(
            ActionPlanWorkflow.run, EnrollmentInput(account_id="acme-austin", contact_id=contact_id, plan=the_plan,
                                                    source="test"),
            id=f"plan:acme-austin:{contact_id}:{the_plan.id}:{uuid.uuid4().hex[:6]}", task_queue=self.task_queue)

    async def run(self, the_plan: Plan, contact_id: str = "C-1") -> EnrollmentResult:
        async with self.worker():
            return await (await self.start(the_plan, contact_id)).result()


async def waiting(handle: WorkflowHandle[Any, Any], step_id: str) -> None:
    """Until the enrollment waits in `step_id` (queries do not move the test server's clock)."""
    for _ in range(200):
        state = await handle.query(ActionPlanWorkflow.state)
        if state.current_step == step_id and state.waiting_for:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the enrollment never waited in {step_id}")


@pytest.fixture
def world(engine: Engine, settings: Settings) -> PlanWorld:
    return PlanWorld(engine, settings, contacts={"C-1": contact()})


@pytest.fixture
def plans(time_skipping_env: WorkflowEnvironment, world: PlanWorld) -> Plans:
    return Plans(time_skipping_env, world)


async def test_weeks_of_waits_pass_and_every_message_is_rendered_with_the_contact(plans: Plans) -> None:
    result = await plans.run(plan(
        {"id": "hello", "type": "email", "subject": "Your estimate, {{ contact.first_name }}",
         "body": "<p>Hi {{ contact.first_name }}, from {{ account.name }}</p>"},
        {"id": "two-weeks", "type": "wait", "duration": "2w"},
        {"id": "nudge", "type": "text", "body": "Hi {{ contact.first_name }}, still thinking about it?"},
        {"id": "tell-office", "type": "notify_user", "subject": "{{ contact.first_name }} got the nudge",
         "body": "Call {{ contact.phone | fallback('them') }}"}))

    assert result.ended is EndReason.COMPLETED
    [email] = plans.world.of("email")[:1]
    assert email.to == "dana@example.com" and email.subject == "Your estimate, Dana"
    assert email.html == "<p>Hi Dana, from Acme Home Services of Austin</p>" and "<p>" not in email.text
    [text] = plans.world.of("text")
    assert text.to == "+15125550142" and text.body == "Hi Dana, still thinking about it?"
    assert plans.world.of("email")[1].to == "office@acme-austin.example.com"
    taken = {t.step_id: t for t in result.taken}
    assert taken["nudge"].at - taken["hello"].at >= timedelta(weeks=2)
    assert [n.note.split(": ", 1)[0] for n in plans.world.notes] == [
        "Action plan Follow-up (v1), step hello", "Action plan Follow-up (v1), step nudge",
        "Action plan Follow-up (v1), step tell-office"]


async def test_a_text_due_in_quiet_hours_waits_for_the_morning_in_the_contacts_own_time_zone(
        plans: Plans) -> None:
    plans.world.contacts["C-LA"] = contact("C-LA", phone="2135550142")  # Los Angeles: two hours behind
    evening = plan({"id": "at-930", "type": "wait", "until_time": "21:30"},
                   {"id": "text", "type": "text", "body": "Hi {{ contact.first_name }}"}, time_zone_source="account")
    async with plans.worker():
        chicago = await (await plans.start(evening, "C-1")).result()
        los_angeles = await (await plans.start(evening, "C-LA")).result()

    def sent(result: EnrollmentResult) -> datetime:
        return next(t.at for t in result.taken if t.step_id == "text")

    assert time(8, 0) <= sent(chicago).astimezone(CHICAGO).time() < time(8, 1)  # held from 21:30 to 08:00
    assert sent(chicago) - next(t.at for t in chicago.taken if t.step_id == "at-930") > timedelta(hours=10)
    assert time(21, 30) <= sent(los_angeles).astimezone(CHICAGO).time() < time(21, 31)  # 19:30 there: at once
    assert len(plans.world.of("text")) == 2


async def test_a_reply_ends_the_plan_and_nothing_more_is_sent(plans: Plans) -> None:
    # Email first: a text's quiet hours would hold it (the shared test server's clock is wherever it is).
    drip = plan({"id": "first", "type": "email", "subject": "Hi", "body": "Hi"},
                {"id": "wait", "type": "wait", "duration": "3d"}, {"id": "second", "type": "text", "body": "Hi again"})
    async with plans.worker():
        handle = await plans.start(drip)
        await waiting(handle, "wait")
        reply = ContactReplied(channel="text", message_id="SM1", body="Yes please", received_at=datetime.now(CHICAGO))
        await handle.signal(ActionPlanWorkflow.contact_replied, reply)
        await handle.signal(ActionPlanWorkflow.contact_replied, reply)  # delivered twice, counted once
        result = await handle.result()
    assert result.ended is EndReason.REPLIED
    assert len(plans.world.of("email")) == 1 and plans.world.of("text") == []


async def test_an_opt_out_stops_texts_in_every_plan_of_the_contact(plans: Plans) -> None:
    stopping = plan({"id": "wait", "type": "wait", "duration": "1d"}, {"id": "text", "type": "text", "body": "A"})
    staying = plan({"id": "wait", "type": "wait", "duration": "2d"}, {"id": "text", "type": "text", "body": "B"},
                   {"id": "mail", "type": "email", "subject": "B", "body": "still here"},
                   plan_id="newsletter", exit_on_opt_out=False)
    async with plans.worker():
        first, second = await plans.start(stopping), await plans.start(staying)
        await waiting(first, "wait")
        await waiting(second, "wait")
        plans.world.opted_out.add("+15125550142")  # the front door records STOP for the number...
        stop = ContactOptedOut(message_id="SM2", opted_out=True, keyword="STOP")
        await first.signal(ActionPlanWorkflow.contact_opted_out, stop)  # ...and tells the contact's enrollments
        ended, kept_on = await first.result(), await second.result()
    assert ended.ended is EndReason.OPTED_OUT
    assert kept_on.ended is EndReason.COMPLETED  # this plan goes on without texts
    [skipped] = [t for t in kept_on.taken if t.step_id == "text"]
    assert skipped.outcome is StepOutcome.SKIPPED and "opted out" in skipped.detail
    assert plans.world.of("text") == [] and len(plans.world.of("email")) == 1


async def test_a_goal_step_or_a_cancel_ends_the_plan_from_a_wait(plans: Plans) -> None:
    goal = plan({"id": "wait", "type": "wait", "duration": "30d"}, {"id": "text", "type": "text", "body": "A"},
                exit_on_steps=["Job Complete"])
    async with plans.worker():
        reached, cancelled = await plans.start(goal), await plans.start(goal)
        await waiting(reached, "wait")
        await waiting(cancelled, "wait")
        await reached.signal(ActionPlanWorkflow.sales_cycle_changed, SalesCycleChanged(
            event_id="e1", step="Estimate Sent", occurred_at=datetime.now(CHICAGO)))  # not a goal
        await reached.signal(ActionPlanWorkflow.sales_cycle_changed, SalesCycleChanged(
            event_id="e2", step="job complete", occurred_at=datetime.now(CHICAGO)))
        await cancelled.signal(ActionPlanWorkflow.cancel, CancelEnrollment(reason="staff took over"))
        assert (await reached.result()).ended is EndReason.GOAL
        assert (await cancelled.result()).ended is EndReason.CANCELLED
    assert plans.world.of("text") == []


async def test_a_wait_for_a_reply_goes_on_when_it_comes_or_when_its_timeout_ends(plans: Plans) -> None:
    listen = plan({"id": "ask", "type": "email", "subject": "Book?", "body": "Reply YES to book"},
                  {"id": "listen", "type": "wait", "until_event": "reply", "timeout": "2d"},
                  {"id": "after", "type": "email", "subject": "Thanks", "body": "ok"}, exit_on_reply=False)
    async with plans.worker():
        answered = await plans.start(listen)
        await waiting(answered, "listen")
        await answered.signal(ActionPlanWorkflow.contact_replied, ContactReplied(
            channel="text", message_id="SM3", body="YES", received_at=datetime.now(CHICAGO)))
        came = await answered.result()
        silent = await (await plans.start(listen)).result()
    assert [t.detail for t in came.taken if t.step_id == "listen"] == ["reply came"]
    assert [t.detail for t in silent.taken if t.step_id == "listen"] == ["reply did not come"]
    assert len(plans.world.of("email")) == 4


async def test_a_branch_follows_the_contacts_fields(plans: Plans) -> None:
    plans.world.contacts["C-2"] = contact("C-2", city="Round Rock")
    by_city = plan({"id": "where", "type": "branch", "when": [{"field": "contact.city", "op": "eq", "value": "austin"}],
                    "then": "local", "otherwise": "elsewhere"},
                   {"id": "local", "type": "text", "body": "We are around the corner"},
                   {"id": "done", "type": "end"},
                   {"id": "elsewhere", "type": "text", "body": "We come to {{ contact.city }} too"})
    async with plans.worker():
        here = await (await plans.start(by_city, "C-1")).result()
        there = await (await plans.start(by_city, "C-2")).result()
    assert here.ended is EndReason.END_STEP and there.ended is EndReason.COMPLETED
    assert [t.body for t in plans.world.of("text")] == ["We are around the corner", "We come to Round Rock too"]


async def test_a_failing_webhook_is_retried_until_it_answers_and_called_once(plans: Plans) -> None:
    plans.world.failures["webhook"] = 3
    hook = plan({"id": "hook", "type": "webhook", "url": "https://hooks.example.com/lead",
                 "headers": {"X-Source": "ledgerflow"}, "secret_headers": {"Authorization": "dashboard-token"},
                 "body": {"name": "{{ contact.first_name }} {{ contact.last_name }}", "city": "{{ contact.city }}"}})
    result = await plans.run(hook)
    [call] = plans.world.of("webhook")
    assert call.body == {"name": "Dana Whitfield", "city": "Austin"} and call.headers == {"X-Source": "ledgerflow"}
    assert call.secret_headers == {"Authorization": "dashboard-token"}  # only the name: the value is the activity's
    assert [t.outcome for t in result.taken] == [StepOutcome.DONE]


def test_a_credential_in_a_webhooks_plain_headers_is_refused() -> None:
    with pytest.raises(ValueError, match="secret_headers"):
        plan({"id": "hook", "type": "webhook", "url": "https://hooks.example.com/x",
              "headers": {"Authorization": "Bearer abc"}})


async def test_steps_that_cannot_run_say_why_and_the_plan_goes_on(plans: Plans) -> None:
    plans.world.contacts["C-3"] = contact("C-3", phone=None, smsok=False, email=None)
    sparse = plan({"id": "text", "type": "text", "body": "Hi"},
                  {"id": "mail", "type": "email", "subject": "Hi", "body": "Hi"},
                  {"id": "broken", "type": "notify_user", "subject": "x", "body": "{{ contact.first_name"},
                  {"id": "row", "type": "sheet_row", "spreadsheet_id": "s1", "sheet": "Leads",
                   "columns": {"Name": "{{ contact.first_name }}", "Source": "web"}})
    result = await plans.run(sparse, "C-3")
    outcomes = {t.step_id: (t.outcome, t.detail) for t in result.taken}
    assert outcomes["text"] == (StepOutcome.SKIPPED, "the contact has no phone number")
    assert outcomes["mail"] == (StepOutcome.SKIPPED, "the contact has no email address")
    assert outcomes["broken"][0] is StepOutcome.FAILED and "broken" in outcomes["broken"][1]
    assert outcomes["row"][0] is StepOutcome.DONE and plans.world.of("sheet_row")[0].values == ["Dana", "web"]
    assert result.ended is EndReason.COMPLETED


async def test_the_enrollment_is_recorded_with_the_contacts_phone_and_its_end(plans: Plans, engine: Engine) -> None:
    result = await plans.run(plan({"id": "mail", "type": "email", "subject": "Hi", "body": "Hi"}))
    assert result.ended is EndReason.COMPLETED
    with Session(engine) as session:
        [row] = session.exec(select(PlanEnrollment).where(PlanEnrollment.contact_id == "C-1")).all()
    assert (row.phone, row.email, row.ended, row.plan_version) == ("+15125550142", "dana@example.com", "completed", 1)



async def test_a_cancel_arriving_with_the_start_ends_the_plan_before_its_first_step(plans: Plans) -> None:
    """A signal in the workflow's first task is handled before `run` begins: the input is there already."""
    handle = await plans.start(plan({"id": "hello", "type": "email", "subject": "Hi", "body": "Hi"}))
    await handle.signal(ActionPlanWorkflow.cancel, CancelEnrollment(reason="enrolled by mistake"))
    async with plans.worker():  # the worker starts after both are in: one first task holds the start and the signal
        result = await handle.result()
    assert result.ended is EndReason.CANCELLED and result.taken == [] and plans.world.of("email") == []
