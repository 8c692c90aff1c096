"""LeadIntakeWorkflow and EmailCaptureWorkflow alone, their activities stubbed (tests/lead_stubs.py), on the
time-skipping test server: deliveries handled in order by one run, a refusal settled and survived, a long
stream of deliveries continued as new without losing one, captured mail noted or kept as unmatched."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.leads import EmailCaptureInput, LeadIntakeInput, LeadIntakeState, lead_workflow_id
from tests.lead_stubs import LeadWorld, angi, delivery, intake, mail
from workflows.email_capture import EmailCaptureWorkflow
from workflows.lead_intake import LeadIntakeWorkflow


async def run_lead(client: Client, world: LeadWorld, input: LeadIntakeInput, receipts: list[int],
                   leads: list | None = None) -> LeadIntakeState:
    """Start the lead's run with the first delivery, signal the others at once, and wait for it to settle."""
    task_queue = f"leads-{uuid.uuid4().hex[:8]}"
    leads = leads or [angi(input.lead_id)] * len(receipts)
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(client, task_queue=task_queue, workflows=[LeadIntakeWorkflow, EmailCaptureWorkflow],
                          activities=world.activities(), activity_executor=executor):
            handle = await client.start_workflow(
                LeadIntakeWorkflow.run, input, id=f"{lead_workflow_id('acme-austin', input.channel, input.lead_id)}"
                f"-{uuid.uuid4().hex[:6]}", task_queue=task_queue, start_signal="lead_received",
                start_signal_args=[delivery(receipts[0], leads[0])])
            for receipt, lead in zip(receipts[1:], leads[1:], strict=True):
                await handle.signal(LeadIntakeWorkflow.lead_received, delivery(receipt, lead))
            return await handle.result()


async def test_a_lead_delivered_twice_makes_one_contact_one_note_section_and_one_enrollment_trigger(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = LeadWorld()
    state = await run_lead(time_skipping_env.client, world, intake(angi("A-7")), [1, 2, 2])
    assert [(h.receipt_id, h.outcome) for h in state.handled] == [(1, "created"), (2, "duplicate")]
    assert [s.outcome for s in world.settled] == ["created", "duplicate"]  # the repeated signal counted once
    assert set(world.contacts.values()) == {"C-1"} and state.contact_id == "C-1"
    assert list(world.notes) == ["C-1/lead-source:angi"] and list(world.notes["C-1/lead-source:angi"]) == ["A-7"]
    assert len({e.trigger for e in world.enrolled}) == 1 and world.enrolled[0].source == "lead:angi"
    assert "matched by lead:angi:A-7" in (world.settled[1].reason or "")


async def test_a_refused_lead_is_settled_failed_with_the_crms_words_and_the_run_ends_cleanly(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = LeadWorld(refuse={"A-bad"})
    state = await run_lead(time_skipping_env.client, world, intake(angi("A-bad")), [5])
    assert state.handled == [] and world.enrolled == []
    [settled] = world.settled
    assert settled.outcome == "failed" and "CT_525 Insert failed" in (settled.reason or "")


async def test_without_a_plan_the_lead_is_still_made_and_the_receipt_says_no_plan(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = LeadWorld()
    await run_lead(time_skipping_env.client, world, intake(angi("A-9"), plan_id=None), [3])
    assert world.enrolled == [] and world.settled[0].outcome == "created"
    assert "no plan for this lead source" in (world.settled[0].reason or "")


async def test_a_stream_of_deliveries_continues_as_new_and_loses_none(time_skipping_env: WorkflowEnvironment) -> None:
    world = LeadWorld()
    lead = angi("A-many")
    state = await run_lead(time_skipping_env.client, world,
                           intake(lead, deliveries_per_run=2, settle_time=timedelta(seconds=5)), [1, 2, 3, 4, 5])
    assert sorted(s.receipt_id for s in world.settled) == [1, 2, 3, 4, 5]
    assert [s.outcome for s in world.settled] == ["created"] + ["duplicate"] * 4
    assert len(state.handled) == 1  # the last run handled the fifth


async def test_captured_mail_is_noted_on_the_contacts_it_is_about_or_kept_as_unmatched(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = LeadWorld(contacts={"email:dana@example.com": "C-1"})
    task_queue = f"email-{uuid.uuid4().hex[:8]}"
    results = []
    async with Worker(time_skipping_env.client, task_queue=task_queue, workflows=[EmailCaptureWorkflow],
                      activities=world.activities(), activity_executor=ThreadPoolExecutor(max_workers=2)):
        for receipt, captured in enumerate([mail("Office <office@acme-austin.example.com>", ["Dana@Example.com"]),
                                            mail("someone@example.org", ["office@acme-austin.example.com"],
                                                 message_id="<m-2@example.org>")], start=1):
            results.append(await time_skipping_env.client.execute_workflow(
                EmailCaptureWorkflow.run, EmailCaptureInput(account_id="acme-austin", receipt_id=receipt,
                                                            mail=captured),
                id=f"email-{uuid.uuid4().hex}", task_queue=task_queue))
    sent, stranger = results
    assert (sent.direction, sent.contact_ids, len(sent.note_ids)) == ("outgoing", ["C-1"], 1)
    assert (stranger.direction, stranger.contact_ids, stranger.unmatched) == ("incoming", [], ["someone@example.org"])
    assert [s.outcome for s in world.settled] == ["noted", "unmatched"]
    assert "someone@example.org" in (world.settled[1].reason or "")
    [note] = world.notes["C-1/email:<m-1@example.com>"].values()
    assert note.startswith("Email sent by office@acme-austin.example.com to dana@example.com")
