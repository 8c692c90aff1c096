"""Action plans end to end through the real parts: a contact in the CRM sandbox, enrolled through the HTTP
API with the account's key, the plan run by the shipped worker on the dev server, its email in the SMTP
sink and its text in the SMS sandbox, rendered with the contact's data; the contact's STOP, texted to the
sandbox, reaching the front door signed like Twilio's, ending the plan and blocking texts in every plan; an
emailed reply ending another; a sales-cycle step in the CRM ending a third as its goal."""

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.crm import crm_client_for
from config.settings import Settings
from models.api_keys import create_api_key
from models.enrollments import EnrollmentResult, plan_workflow_id
from models.opt_outs import is_opted_out
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.messaging.admin import MessagingSandboxAdmin
from sandbox.serve import ServerThread
from tests.e2e import worker


def noon_zone() -> str:
    """A time zone where it is midday now, so the texts are inside quiet hours whenever the suite runs."""
    offset = (12 - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 12 else offset
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}")  # POSIX: the sign is inverted


def plan_file(directory: Path, plan_id: str, steps: list[dict[str, Any]], **settings: Any) -> None:
    (directory / f"{plan_id}.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": plan_id, "version": 1, "name": plan_id.replace("-", " ").title(),
        "type": "conversion", "settings": settings, "steps": steps}))


WELCOME = [
    {"id": "welcome", "type": "email", "subject": "Welcome, {{ contact.first_name | fallback('friend') }}",
     "body": "<p>Hi {{ contact.first_name | fallback('there') }}, {{ account.name }} here. "
             "We serve {{ contact.city | fallback('you') }}.</p>"},
    {"id": "hello-text", "type": "text", "body": "Hi {{ contact.first_name | fallback('there') }}, it's "
                                                  "{{ account.name }}. "
                                                  "Reply STOP to opt out."},
    {"id": "wait-for-them", "type": "wait", "duration": "30d"},
    {"id": "never", "type": "text", "body": "This one is never sent"},
]
LATER_TEXT = [{"id": "wait-a-bit", "type": "wait", "duration": "3s"},
              {"id": "tip", "type": "text", "body": "A tip for {{ contact.first_name | fallback('you') }}"},
              {"id": "tip-email", "type": "email", "subject": "A tip", "body": "<p>by email too</p>"}]


@pytest.fixture
def plans_settings(e2e_settings: Settings, tmp_path: Path) -> Settings:
    directory = tmp_path / "plans"
    directory.mkdir()
    plan_file(directory, "welcome", WELCOME)
    plan_file(directory, "later-tips", LATER_TEXT, exit_on_opt_out=False, exit_on_reply=False)
    plan_file(directory, "restartable", [{"id": "hello", "type": "email", "subject": "Hello", "body": "<p>Hi</p>"},
                                         {"id": "wait", "type": "wait", "duration": "30d"}], reentry="always")
    plan_file(directory, "follow-up", [{"id": "wait", "type": "wait", "duration": "30d"},
                                       {"id": "never", "type": "email", "subject": "x", "body": "never sent"}],
              exit_on_steps=["Job Complete"], exit_on_reply=False)
    return e2e_settings.model_copy(update={"plans_dir": directory})


@pytest.fixture
def plans_api(plans_settings: Settings, engine: Engine) -> Any:
    from api.app import create_app

    with ServerThread(create_app(plans_settings)) as server:
        yield server


async def result(dev_env: WorkflowEnvironment, workflow_id: str, seconds: float = 60) -> EnrollmentResult:
    handle: WorkflowHandle[Any, EnrollmentResult] = dev_env.client.get_workflow_handle(
        workflow_id, result_type=EnrollmentResult)
    return await asyncio.wait_for(handle.result(), seconds)


async def waiting(http: httpx.AsyncClient, path: str, step_id: str) -> dict[str, Any]:
    """The enrollment's state (GET `path`) once it waits in `step_id`."""
    for _ in range(300):
        state: dict[str, Any] = (await http.get(path)).json()
        if state.get("current_step") == step_id and state.get("waiting_for"):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never waited in {step_id}")


async def until(check: Any, seconds: float = 30) -> Any:
    for _ in range(int(seconds * 10)):
        found = check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("timed out waiting")


async def test_a_plan_sends_to_the_contact_and_their_stop_blocks_texts_in_every_plan(
    dev_env: WorkflowEnvironment, plans_settings: Settings, engine: Engine, plans_api: ServerThread, crm_account: str
) -> None:
    settings = plans_settings
    phone = f"512555{uuid.uuid4().int % 10_000:04d}"
    email = f"riley.{uuid.uuid4().hex[:6]}@example.com"
    crm = CrmSandboxAdmin(settings.crm_api_url)
    contact = crm.create_contact(crm_account, firstName="Riley", lastName="Moss", email=email, phone=phone,
                                 smsok=True, city="Pflugerville", time_zone=noon_zone())["client_id"]
    messages = MessagingSandboxAdmin(settings.sms_api_url)
    key = create_api_key(engine, crm_account)
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
        async with worker(dev_env, settings, executor), httpx.AsyncClient(
                base_url=plans_api.url, headers={"X-API-Key": key}, timeout=30) as http:
            enrolled = await http.post(f"/accounts/{crm_account}/contacts/{contact}/plans", json={"plan_id": "welcome"})
            again = await http.post(f"/accounts/{crm_account}/contacts/{contact}/plans", json={"plan_id": "welcome"})
            assert (enrolled.status_code, again.status_code) == (202, 200)  # one_active: the second is ignored
            assert "already running" in again.json()["reason"]
            bad = await http.post(f"/accounts/{crm_account}/contacts/{contact}/plans", json={"plan_id": "nope"})
            assert bad.status_code == 422 and "no plan with id nope" in bad.json()["detail"]

            [text] = await until(lambda: messages.texts(to=f"+1{phone}", direction="outbound-api"))
            assert text["body"] == "Hi Riley, it's Acme Home Services of Austin. Reply STOP to opt out."
            [mail] = messages.emails(to=email)
            assert mail["subject"] == "Welcome, Riley"
            assert "Hi Riley, Acme Home Services of Austin here. We serve Pflugerville." in mail["html"]
            state = await waiting(http, f"/accounts/{crm_account}/contacts/{contact}/plans/welcome", "wait-for-them")
            assert state["waiting_for"].startswith("wait-for-them: until") and state["replies"] == 0

            tips = await http.post(f"/accounts/{crm_account}/contacts/{contact}/plans", json={"plan_id": "later-tips"})
            assert tips.status_code == 202
            stop = messages.inbound_sms(f"+1{phone}", settings.twilio_from_number, "Stop",
                                        url=f"{plans_api.url}/inbound/sms")
            assert messages.wait_delivered(stop["sid"])["status"] == 200
            ended = await result(dev_env, plan_workflow_id(crm_account, contact, "welcome"))
            kept_on = await result(dev_env, plan_workflow_id(crm_account, contact, "later-tips"))

    assert ended.ended.value == "opted_out" and is_opted_out(engine, phone)
    assert [t.outcome.value for t in kept_on.taken if t.step_id == "tip"] == ["skipped"]  # never texted again
    assert len(messages.texts(to=f"+1{phone}", direction="outbound-api")) == 1
    assert len(messages.emails(to=email)) == 2  # the welcome and the tip's email: email is not texting
    with crm_client_for(settings, engine, crm_account) as api_client:
        notes = [n["note"] for n in api_client.history_notes(contact)]
    assert any("step welcome: email sent" in n for n in notes) and any("step hello-text: text sent" in n for n in notes)


async def test_an_emailed_reply_and_a_goal_step_end_their_plans(
    dev_env: WorkflowEnvironment, plans_settings: Settings, engine: Engine, plans_api: ServerThread, crm_account: str
) -> None:
    settings = plans_settings
    email = f"sam.{uuid.uuid4().hex[:6]}@example.com"
    crm = CrmSandboxAdmin(settings.crm_api_url)
    contact = crm.create_contact(crm_account, firstName="Sam", lastName="Lee", email=email,
                                 time_zone=noon_zone())["client_id"]
    messages = MessagingSandboxAdmin(settings.sms_api_url)
    key = create_api_key(engine, crm_account)
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
        async with worker(dev_env, settings, executor), httpx.AsyncClient(
                base_url=plans_api.url, headers={"X-API-Key": key}, timeout=30) as http:
            for plan_id in ("welcome", "follow-up"):
                assert (await http.post(f"/accounts/{crm_account}/contacts/{contact}/plans",
                                        json={"plan_id": plan_id})).status_code == 202
            await waiting(http, f"/accounts/{crm_account}/contacts/{contact}/plans/welcome", "wait-for-them")
            out_of_office = messages.inbound_email(email, "replies@acme.test", "I am away", subject="Automatic reply",
                                                   url=f"{plans_api.url}/inbound/email")
            reply = messages.inbound_email(f"Sam Lee <{email}>", "replies@acme.test", "Tuesday works",
                                           subject="Re: Welcome", url=f"{plans_api.url}/inbound/email")
            for sent in (out_of_office, reply):
                assert messages.wait_delivered(sent["message_id"])["status"] == 200
            crm.move_step(crm_account, contact, "Job Complete")  # the CRM's webhook reaches the follow-up's goal
            welcome = await result(dev_env, plan_workflow_id(crm_account, contact, "welcome"))
            follow_up = await result(dev_env, plan_workflow_id(crm_account, contact, "follow-up"))

    assert welcome.ended.value == "replied" and follow_up.ended.value == "goal"
    assert [t.step_id for t in welcome.taken] == ["welcome", "hello-text"]  # no phone: the text skipped, said why
    assert welcome.taken[1].detail == "the contact has no phone number"


async def test_always_restarts_a_running_enrollment_but_never_for_the_same_trigger(
    dev_env: WorkflowEnvironment, plans_settings: Settings, engine: Engine, plans_api: ServerThread, crm_account: str
) -> None:
    email = f"kai.{uuid.uuid4().hex[:6]}@example.com"
    contact = CrmSandboxAdmin(plans_settings.crm_api_url).create_contact(crm_account, firstName="Kai",
                                                                         email=email)["client_id"]
    messages = MessagingSandboxAdmin(plans_settings.sms_api_url)
    path = f"/accounts/{crm_account}/contacts/{contact}/plans"
    with ThreadPoolExecutor(max_workers=plans_settings.worker_activity_threads) as executor:
        async with worker(dev_env, plans_settings, executor), httpx.AsyncClient(
                base_url=plans_api.url, headers={"X-API-Key": create_api_key(engine, crm_account)}, timeout=30) as http:
            first = (await http.post(path, json={"plan_id": "restartable", "trigger": "estimate-1"})).json()
            await waiting(http, f"{path}/restartable", "wait")
            repeat = await http.post(path, json={"plan_id": "restartable", "trigger": "estimate-1"})
            restart = await http.post(path, json={"plan_id": "restartable", "trigger": "estimate-2"})
            await waiting(http, f"{path}/restartable", "wait")
            runs = [e async for e in dev_env.client.list_workflows(f"WorkflowId = '{first['workflow_id']}'")]

    assert repeat.status_code == 200 and "trigger" in repeat.json()["reason"]
    assert restart.status_code == 202
    assert sorted(r.status.name for r in runs) == ["RUNNING", "TERMINATED"]  # restarted from the top
    assert [m["subject"] for m in messages.emails(to=email)] == ["Hello", "Hello"]  # each run sent its own
