"""Lead intake end to end through the real parts: real-shaped Angi, Thumbtack, web-form and Zapier posts to the
front door, the shipped worker on the dev server, the CRM sandbox over HTTP; captured email through the SMTP
sink's relay. The CRM must hold exactly one contact per person, with the right lead source, its notes and its
plan enrollment; the API monitor must say what became of every post."""

import asyncio
import smtplib
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from models.api_keys import create_api_key
from models.captured_emails import capture_address
from models.lead_keys import create_lead_key
from models.lead_receipts import receipts
from models.leads import LeadChannel
from models.plan_enrollments import ever_enrolled
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.messaging.smtp_sink import SmtpSink
from sandbox.serve import ServerThread
from tests.e2e import starter, worker

ACCOUNT = "acme-austin"


def person() -> dict[str, str]:
    """Someone no other test has seen: their own email and a valid 10-digit phone."""
    tag = uuid.uuid4().hex[:8]
    return {"first": "Dana", "last": f"Reyes{tag}", "email": f"Dana.Reyes.{tag}@Example.com",
            "phone": f"(512) 55{int(tag, 16) % 10**5:05d}", "tag": tag}


def angi_lead(who: dict[str, str], lead_id: str | None = None) -> dict[str, Any]:
    """Angi Leads' JSON as its integration doc has it."""
    return {"name": f"{who['first']} {who['last']}", "firstName": who["first"], "lastName": who["last"],
            "address": "1200 Barton Springs Rd", "city": "Austin", "stateProvince": "TX", "postalCode": "78704",
            "primaryPhone": who["phone"], "email": who["email"], "leadOid": lead_id or f"A-{who['tag']}",
            "srOid": f"SR-{who['tag']}", "taskName": "Gutter Cleaning", "comments": "Two-story house, back gate",
            "leadSource": "Angi Leads", "fee": "24.50",
            "interview": [{"question": "How many stories?", "answer": "2"},
                          {"question": "When do you need this?", "answer": "Within a week"}]}


def thumbtack_lead(who: dict[str, str], business_id: str = "tt-acme-austin") -> dict[str, Any]:
    return {"leadID": f"T-{who['tag']}", "createTimestamp": "1764600000",
            "request": {"requestID": f"R-{who['tag']}", "category": "Gutter Cleaning", "categoryID": "123",
                        "title": "Gutter cleaning for a 2-story home", "description": "Leaves everywhere",
                        "schedule": "Flexible", "location": {"address1": "1200 Barton Springs Rd", "city": "Austin",
                                                             "state": "TX", "zipCode": "78704"},
                        "travelPreferences": "Professional must travel to my address",
                        "details": [{"question": "Home size", "answer": "2,000 sq ft"}], "attachments": []},
            "customer": {"customerID": f"C-{who['tag']}", "name": f"{who['first']} {who['last']}",
                         "phone": who["phone"]},
            "business": {"businessID": business_id, "name": "Acme Home Services"},
            "leadType": "ESTIMATION", "leadPrice": "15.00", "chargeState": "Charged"}


async def until_settled(engine: Engine, receipt_ids: list[int], seconds: float = 60) -> dict[int, Any]:
    """The API monitor's receipts once their workflows have settled them."""
    for _ in range(int(seconds * 10)):
        rows = {r.id: r for r in receipts(engine, ACCOUNT, limit=500) if r.id in receipt_ids}
        if len(rows) == len(receipt_ids) and all(r.outcome != "received" for r in rows.values()):
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"receipts {receipt_ids} never settled: {rows}")


async def until_enrolled(engine: Engine, contact_id: str, plan_id: str = "web-lead-connection") -> None:
    for _ in range(300):
        if ever_enrolled(engine, ACCOUNT, contact_id, plan_id):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"contact {contact_id} never enrolled in {plan_id}")


def contacts_with(crm: CrmSandboxAdmin, email: str | None = None, last_name: str | None = None) -> list[dict]:
    return [c for c in crm.contacts(ACCOUNT) if (email and c["email"].lower() == email.lower())
            or (last_name and c["lastName"] == last_name)]


def ledgerflow_notes(crm: CrmSandboxAdmin, contact_id: str, about: str) -> list[str]:
    """The contact's notes lead intake or email capture keep (the plan's step notes left out)."""
    return sorted(n["note"] for n in crm.notes(ACCOUNT, contact_id) if f"[ledgerflow {about}" in n["note"])


def lead_source_name(crm: CrmSandboxAdmin, contact: dict[str, Any]) -> str | None:
    return next((s["lead_source_name"] for s in crm.lead_sources(ACCOUNT)
                 if s["lead_source_id"] == contact.get("lead_source_id")), None)


@pytest.fixture
async def front_door(api: ServerThread, crm_account: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        yield client


async def test_an_angi_lead_becomes_one_contact_with_its_answers_and_its_plan_even_posted_twice_at_once(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, front_door: httpx.AsyncClient,
    executor: ThreadPoolExecutor
) -> None:
    crm = CrmSandboxAdmin(e2e_settings.crm_api_url)
    key = create_lead_key(engine, ACCOUNT, LeadChannel.ANGI, api_key="angi-shared-secret")
    who = person()
    async with worker(dev_env, e2e_settings, executor):
        answers = await asyncio.gather(*[
            front_door.post(f"/leads/angi/{key}", json=angi_lead(who), headers={"x-api-key": "angi-shared-secret"})
            for _ in range(2)])
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        assert len({a.json()["workflow_id"] for a in answers}) == 1
        rows = await until_settled(engine, [a.json()["receipt"] for a in answers])
        assert sorted(r.outcome for r in rows.values()) == ["created", "duplicate"]
        [contact] = contacts_with(crm, email=who["email"])
        await until_enrolled(engine, contact["client_id"])
    assert (contact["firstName"], contact["lastName"]) == (who["first"], who["last"])
    assert contact["email"] == who["email"].lower() and contact["phone"].isdigit() and len(contact["phone"]) == 10
    assert (contact["city"], contact["state"], contact["zip"]) == ("Austin", "TX", "78704")
    assert lead_source_name(crm, contact) == "Angi"
    [note] = ledgerflow_notes(crm, contact["client_id"], "lead-source:")
    assert note.count(f"Lead A-{who['tag']} from Angi") == 1
    assert "How many stories?: 2" in note and "Request: Gutter Cleaning" in note
    assert {r.contact_id for r in rows.values()} == {contact["client_id"]}


async def test_angis_test_lead_for_an_existing_contact_and_a_thumbtack_lead_of_the_same_person_make_no_new_contact(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, front_door: httpx.AsyncClient,
    executor: ThreadPoolExecutor
) -> None:
    """The office typed the person in already; Angi's connection test duplicates them; Thumbtack (through the
    franchisor's shared key, routed by business id) sends the same person by phone: one contact, two notes."""
    crm = CrmSandboxAdmin(e2e_settings.crm_api_url)
    who = person()
    typed = crm.create_contact(ACCOUNT, firstName=who["first"], lastName=who["last"], email=who["email"],
                               phone="".join(c for c in who["phone"] if c.isdigit()))
    angi = create_lead_key(engine, ACCOUNT, LeadChannel.ANGI)
    thumbtack = create_lead_key(engine, "acme", LeadChannel.THUMBTACK)
    async with worker(dev_env, e2e_settings, executor):
        first = await front_door.post(f"/leads/angi/{angi}", json=angi_lead(who, lead_id=f"TEST-{who['tag']}"))
        second = await front_door.post(f"/leads/thumbtack/{thumbtack}", json=thumbtack_lead(who))
        assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
        assert second.json()["account_id"] == ACCOUNT
        rows = await until_settled(engine, [first.json()["receipt"], second.json()["receipt"]])
    assert [r.outcome for r in rows.values()] == ["duplicate", "duplicate"]
    assert {r.contact_id for r in rows.values()} == {typed["client_id"]}
    assert len(contacts_with(crm, last_name=who["last"])) == 1
    notes = ledgerflow_notes(crm, typed["client_id"], "lead-source:")
    assert len(notes) == 2
    [angi_note] = [n for n in notes if "from Angi (angi)" in n]
    [thumbtack_note] = [n for n in notes if "from Thumbtack (thumbtack)" in n]
    assert "How many stories?: 2" in angi_note and "Home size: 2,000 sq ft" in thumbtack_note


async def test_web_forms_and_zapier_posts_land_with_their_lead_source_and_plan(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, front_door: httpx.AsyncClient,
    executor: ThreadPoolExecutor
) -> None:
    crm = CrmSandboxAdmin(e2e_settings.crm_api_url)
    website = create_lead_key(engine, ACCOUNT, LeadChannel.WEB_FORM, lead_source="Website")
    account_key = create_lead_key(engine, ACCOUNT, LeadChannel.WEB_FORM)
    zapier = create_lead_key(engine, ACCOUNT, LeadChannel.ZAPIER)
    form, joined, zap = person(), person(), person()
    async with worker(dev_env, e2e_settings, executor):
        posted = [
            await front_door.post("/leads/web-form", data={
                "web_key": website, "firstName": form["first"], "lastName": form["last"], "email": form["email"],
                "phone": form["phone"], "smsok": "yes", "Project": "Gutter guards"}),
            await front_door.post("/leads/web-form", json={
                "web_key": account_key, "name": f"{joined['last']}, {joined['first']}", "email": joined["email"]}),
            await front_door.post(f"/leads/zapier/{zapier}", json={
                "lead_id": f"Z-{zap['tag']}", "firstName": zap["first"], "lastName": zap["last"],
                "email": zap["email"], "comments": "From a Facebook lead ad"}),
        ]
        assert [p.status_code for p in posted] == [200, 200, 200], [p.text for p in posted]
        rows = await until_settled(engine, [p.json()["receipt"] for p in posted])
        assert [r.outcome for r in rows.values()] == ["created"] * 3
        contacts = [contacts_with(crm, email=w["email"]) for w in (form, joined, zap)]
        for [contact] in contacts:
            await until_enrolled(engine, contact["client_id"])
    [[by_form], [by_account], [by_zap]] = contacts
    assert by_form["smsok"] is True and lead_source_name(crm, by_form) == "Website"
    assert (by_account["firstName"], by_account["lastName"]) == (joined["first"], joined["last"])
    assert lead_source_name(crm, by_account) is None and by_account["smsok"] is False
    assert lead_source_name(crm, by_zap) == "Zapier"
    assert "Project: Gutter guards" in ledgerflow_notes(crm, by_form["client_id"], "lead-source:website")[0]
    assert "From a Facebook lead ad" in ledgerflow_notes(crm, by_zap["client_id"], "lead-source:zapier")[0]


async def test_bad_posts_are_refused_whole_and_the_monitor_says_why(
    e2e_settings: Settings, engine: Engine, front_door: httpx.AsyncClient
) -> None:
    """No worker runs: nothing may even be started for a refused post, and the CRM is untouched."""
    crm = CrmSandboxAdmin(e2e_settings.crm_api_url)
    angi = create_lead_key(engine, ACCOUNT, LeadChannel.ANGI, api_key="right")
    thumbtack = create_lead_key(engine, "acme", LeadChannel.THUMBTACK)
    who = person()
    before = len(crm.contacts(ACCOUNT))
    missing_id = {k: v for k, v in angi_lead(who).items() if k != "leadOid"}
    answers = {
        "unknown endpoint": await front_door.post("/leads/angi/lk_nope", json=angi_lead(who)),
        "wrong api key": await front_door.post(f"/leads/angi/{angi}", json=angi_lead(who),
                                               headers={"x-api-key": "wrong"}),
        "no lead id": await front_door.post(f"/leads/angi/{angi}", json=missing_id, headers={"x-api-key": "right"}),
        "not json": await front_door.post(f"/leads/angi/{angi}", content=b"{", headers={"x-api-key": "right"}),
        "bad email": await front_door.post(f"/leads/angi/{angi}", json={**angi_lead(who), "email": "dana@"},
                                           headers={"x-api-key": "right"}),
        "unrouted business": await front_door.post(f"/leads/thumbtack/{thumbtack}",
                                                   json=thumbtack_lead(who, business_id="tt-nobody")),
        "unknown web key": await front_door.post("/leads/web-form", data={"web_key": "nope", "name": "Dana"}),
        "no name": await front_door.post("/leads/web-form", data={
            "web_key": create_lead_key(engine, ACCOUNT, LeadChannel.WEB_FORM), "email": who["email"]}),
    }
    assert {what: a.status_code for what, a in answers.items()} == {
        "unknown endpoint": 404, "wrong api key": 401, "no lead id": 422, "not json": 422, "bad email": 422,
        "unrouted business": 422, "unknown web key": 401, "no name": 422}
    assert "leadOid" in answers["no lead id"].json()["detail"]
    assert "tt-nobody" in answers["unrouted business"].json()["detail"]
    assert len(crm.contacts(ACCOUNT)) == before
    rejected = [r for r in receipts(engine, ACCOUNT, outcome="rejected") if who["last"] in r.who]
    assert {r.reason.split(":")[0] for r in rejected if r.reason} >= {"leadOid", "email"}
    key = create_api_key(engine, ACCOUNT)
    monitor = await front_door.get(f"/accounts/{ACCOUNT}/leads", params={"outcome": "rejected"},
                                   headers={"X-API-Key": key})
    assert monitor.status_code == 200
    assert {row["id"] for row in monitor.json()} >= {r.id for r in rejected}
    assert (await front_door.get(f"/accounts/{ACCOUNT}/leads")).status_code == 401


async def test_captured_email_becomes_a_note_on_its_contact_and_unmatched_mail_is_kept(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, api: ServerThread, crm_account: str,
    executor: ThreadPoolExecutor
) -> None:
    """Staff BCC the account's capture address on an email to a customer; a customer writes to it; a stranger
    does too. The sandbox's SMTP sink relays each, signed, to the front door."""
    crm = CrmSandboxAdmin(e2e_settings.crm_api_url)
    who = person()
    contact = crm.create_contact(ACCOUNT, firstName=who["first"], lastName=who["last"], email=who["email"].lower())
    capture = capture_address(ACCOUNT, e2e_settings.email_capture_domain)
    with SmtpSink(capture_domain=e2e_settings.email_capture_domain, capture_url=f"{api.url}/inbound/email-capture",
                  capture_secret=e2e_settings.inbound_email_secret.get_secret_value()) as sink:
        def send(sender: str, to: str, subject: str, message_id: str) -> None:
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = sender, to, subject
            message["Message-ID"] = message_id
            message.set_content(f"{subject}: the details")
            with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
                smtp.send_message(message, to_addrs=[to, capture])

        tag = who["tag"]
        async with worker(dev_env, e2e_settings, executor):
            send(f"Acme Office <office@{ACCOUNT}.example.com>", who["email"], "Your estimate", f"<out-{tag}@acme>")
            send(f"{who['first']} <{who['email']}>", f"office@{ACCOUNT}.example.com", "Question", f"<in-{tag}@x>")
            send(f"stranger-{tag}@example.org", f"office@{ACCOUNT}.example.com", "Hello", f"<odd-{tag}@x>")
            ids = await until_captured(engine, [f"<out-{tag}@acme>", f"<in-{tag}@x>", f"<odd-{tag}@x>"])
            rows = await until_settled(engine, ids)
    outcomes = [rows[i].outcome for i in ids]
    assert outcomes == ["noted", "noted", "unmatched"]
    assert f"stranger-{tag}@example.org" in (rows[ids[2]].reason or "")
    notes = ledgerflow_notes(crm, contact["client_id"], "email:")
    assert len(notes) == 2
    assert notes[0].startswith(f"Email received from {who['email'].lower()}") and "Question" in notes[0]
    assert notes[1].startswith(f"Email sent by office@{ACCOUNT}.example.com") and "Your estimate" in notes[1]


async def until_captured(engine: Engine, message_ids: list[str]) -> list[int]:
    """The receipt ids of these captured emails, in the order given, once the front door has them all."""
    for _ in range(300):
        by_message = {r.lead_id: r.id for r in receipts(engine, ACCOUNT, limit=500, channel="email-capture")}
        if all(m in by_message for m in message_ids):
            return [int(by_message[m]) for m in message_ids]  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
    raise AssertionError(f"not all of {message_ids} were captured")



async def test_the_same_person_from_three_sources_at_once_is_one_contact_with_a_note_per_source(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, front_door: httpx.AsyncClient,
    executor: ThreadPoolExecutor
) -> None:
    """Three workflows race to create the same person (Thumbtack knows only the phone): one claims the contact,
    the others wait for it."""
    crm = CrmSandboxAdmin(e2e_settings.crm_api_url)
    angi = create_lead_key(engine, ACCOUNT, LeadChannel.ANGI)
    thumbtack = create_lead_key(engine, ACCOUNT, LeadChannel.THUMBTACK)
    zapier = create_lead_key(engine, ACCOUNT, LeadChannel.ZAPIER)
    who = person()
    async with worker(dev_env, e2e_settings, executor):
        posted = await asyncio.gather(
            front_door.post(f"/leads/angi/{angi}", json=angi_lead(who)),
            front_door.post(f"/leads/thumbtack/{thumbtack}", json=thumbtack_lead(who)),
            front_door.post(f"/leads/zapier/{zapier}", json={"firstName": who["first"], "lastName": who["last"],
                                                             "email": who["email"], "phone": who["phone"]}))
        assert [p.status_code for p in posted] == [200, 200, 200], [p.text for p in posted]
        rows = await until_settled(engine, [p.json()["receipt"] for p in posted])
    assert sorted(r.outcome for r in rows.values()) == ["created", "duplicate", "duplicate"]
    [contact] = contacts_with(crm, last_name=who["last"])
    assert {r.contact_id for r in rows.values()} == {contact["client_id"]}
    notes = ledgerflow_notes(crm, contact["client_id"], "lead-source:")
    assert sorted(n.rsplit("[ledgerflow lead-source:", 1)[1] for n in notes) == ["angi]", "thumbtack]", "zapier]"]


async def test_an_operator_makes_a_key_from_the_command_line_and_sees_the_lead_in_the_monitor(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, front_door: httpx.AsyncClient,
    executor: ThreadPoolExecutor
) -> None:
    made = starter(e2e_settings, dev_env, "leads", "key", "--account", ACCOUNT, "--channel", "web-form",
                   "--lead-source", "Website")
    assert made.returncode == 0 and "POST /leads/web-form" in made.stderr, made.stderr
    key = made.stdout.strip()
    who = person()
    async with worker(dev_env, e2e_settings, executor):
        posted = await front_door.post("/leads/web-form", data={"web_key": key, "name": f"{who['first']} {who['last']}",
                                                                "email": who["email"]})
        assert posted.status_code == 200, posted.text
        await until_settled(engine, [posted.json()["receipt"]])
    monitor = starter(e2e_settings, dev_env, "leads", "monitor", "--account", ACCOUNT, "--outcome", "created")
    assert monitor.returncode == 0, monitor.stderr
    [line] = [row for row in monitor.stdout.splitlines() if who["last"] in row]
    assert "web-form" in line and posted.json()["workflow_id"][:20] in line
    revoked = starter(e2e_settings, dev_env, "leads", "revoke", key[:8])
    assert revoked.returncode == 0, revoked.stderr
    again = await front_door.post("/leads/web-form", data={"web_key": key, "name": "Dana Reyes"})
    assert again.status_code == 401
