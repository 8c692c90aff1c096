"""End to end from the CRM: staff move a contact to "Proposal Sent" in the CRM sandbox; its signed webhook
reaches the API, the proposal's workflow runs on the dev server, and the estimate lands in QBO."""

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.settings import Settings
from models.proposals import proposal_workflow_id
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.qbo.admin import list_objects
from sandbox.serve import ServerThread
from worker import build_worker
from workflows.proposal import ProposalWorkflow

ACCOUNT = "acme-austin"


@pytest.fixture
def e2e_settings(settings: Settings, dev_env: WorkflowEnvironment) -> Settings:
    return settings.model_copy(update={"temporal_address": dev_env.client.service_client.config.target_host})


@pytest.fixture
def api(e2e_settings: Settings, engine: Engine) -> Iterator[ServerThread]:
    with ServerThread(create_app(e2e_settings)) as server:
        yield server


@pytest.fixture
def crm_account(e2e_settings: Settings, api: ServerThread) -> str:
    """The franchisee's account in the CRM sandbox (made afresh for each test), its webhooks pointed at this
    test's API and signed with the secret the API expects."""
    account_id = ACCOUNT
    admin = CrmSandboxAdmin(e2e_settings.crm_api_url)
    admin.create_account(account_id, "Acme Home Services of Austin",
                         webhook_url=f"{api.url}/crm/{account_id}",
                         webhook_secret=e2e_settings.crm_webhook_secrets[account_id].get_secret_value())
    return account_id


async def test_moving_a_step_in_the_crm_creates_the_estimate(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, account_realm: str, crm_account: str
) -> None:
    admin = CrmSandboxAdmin(e2e_settings.crm_api_url)
    contact = admin.create_contact(crm_account, firstName="Morgan", lastName=f"Reyes {uuid.uuid4().hex[:4]}",
                                   email="morgan@example.com")
    number = f"Q-{uuid.uuid4().hex[:6]}"
    proposal = admin.create_proposal(crm_account, contact["client_id"], number=number, lines=[
        {"product": "Roof Inspection", "description": "Full roof", "quantity": "1", "unit_price": "149.00"},
        {"product": "Gutter Guard", "description": "Per foot", "quantity": "40", "unit_price": "4.25"}])
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with build_worker(dev_env.client, e2e_settings, executor):
            admin.move_step(crm_account, contact["client_id"], "Contacted")  # not mapped: starts nothing
            admin.move_step(crm_account, contact["client_id"], "Proposal Sent")
            handle = dev_env.client.get_workflow_handle(proposal_workflow_id(crm_account, proposal["proposal_id"]))
            state = None
            for _ in range(300):
                try:
                    state = await handle.query(ProposalWorkflow.state)
                    if state.estimate_id:
                        break
                except RPCError:
                    pass  # the webhook has not arrived yet
                await asyncio.sleep(0.1)
    assert state is not None and state.estimate_id
    [estimate] = [e for e in list_objects(e2e_settings.qbo_api_url, account_realm, "Estimate")
                  if e["DocNumber"] == number]
    assert Decimal(str(estimate["TotalAmt"])) == Decimal("319.00")  # 149.00 + 40 x 4.25
    items = {i["Name"] for i in list_objects(e2e_settings.qbo_api_url, account_realm, "Item")}
    assert {"Roof Inspection", "Gutter Guard"} <= items
    deliveries = [w for w in admin.webhooks() if w["body"]["contact"]["id"] == contact["client_id"]]
    assert sorted((w["body"]["sales_cycle_step"], w["status"]) for w in deliveries) == [
        ("Contacted", 200), ("Proposal Sent", 202)]


async def test_proposal_edits_and_payments_reach_the_proposals_workflow(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, account_realm: str, crm_account: str
) -> None:
    """Until the full lifecycle acts on them (issue 5), the workflow keeps them whole: accepted, never lost."""
    from datetime import date

    from models.proposals import PaymentAdded, ProposalChanged

    admin = CrmSandboxAdmin(e2e_settings.crm_api_url)
    contact = admin.create_contact(crm_account, firstName="Avery", lastName=f"Cole {uuid.uuid4().hex[:4]}")
    lines = [{"product": "Window Cleaning", "description": "All", "quantity": "1", "unit_price": "120.00"}]
    proposal = admin.create_proposal(crm_account, contact["client_id"], lines, f"Q-{uuid.uuid4().hex[:6]}")
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with build_worker(dev_env.client, e2e_settings, executor):
            admin.move_step(crm_account, contact["client_id"], "Proposal Sent")
            admin.edit_proposal(crm_account, proposal["proposal_id"], contact["client_id"],
                                [{**lines[0], "unit_price": "135.00"}])
            admin.add_payment(crm_account, proposal["proposal_id"], Decimal("50.00"), date(2026, 11, 21),
                              tip=Decimal("5.00"))
            handle = dev_env.client.get_workflow_handle(proposal_workflow_id(crm_account, proposal["proposal_id"]))
            state = None
            for _ in range(300):
                try:
                    state = await handle.query(ProposalWorkflow.state)
                    if len(state.events_seen) == 3:
                        break
                except RPCError:
                    pass
                await asyncio.sleep(0.1)
    assert state is not None and state.estimate_id
    kinds = {type(event): event for event in state.deferred_events}
    assert kinds[ProposalChanged].proposal.lines[0].unit_price == Decimal("135.00")  # type: ignore[attr-defined]
    paid = kinds[PaymentAdded].payment  # type: ignore[attr-defined]
    assert (paid.amount, paid.tip, paid.received_on) == (Decimal("50.00"), Decimal("5.00"), date(2026, 11, 21))
    statuses = {w["url"].rsplit("/", 1)[1]: w["status"] for w in admin.webhooks()
                if w["body"]["contact"]["id"] == contact["client_id"]}
    assert statuses == {"sales-cycle": 202, "proposal": 202, "payment": 202}


def test_webhooks_are_retried_until_the_receiver_is_up(settings: Settings) -> None:
    """The CRM keeps delivering a webhook while Ledgerflow is down; it lands once the API answers."""
    import time

    from fastapi import FastAPI, Request

    from sandbox.serve import free_port

    port = free_port()
    admin = CrmSandboxAdmin(settings.crm_api_url)
    account = f"retry-{uuid.uuid4().hex[:6]}"
    admin.create_account(account, "Retry Co", webhook_url=f"http://127.0.0.1:{port}/crm/{account}",
                         webhook_secret="s3cret")
    contact = admin.create_contact(account, firstName="Late")
    admin.move_step(account, contact["client_id"], "Contacted")  # the receiver is not there yet
    received: list[bytes] = []
    receiver = FastAPI()

    @receiver.post("/crm/{account_id}/sales-cycle")
    async def hook(request: Request) -> dict[str, str]:
        received.append(await request.body())
        return {}

    time.sleep(1.0)
    with ServerThread(receiver, port=port):
        for _ in range(200):
            if received:
                break
            time.sleep(0.1)
    assert len(received) == 1
    [delivery] = [w for w in admin.webhooks() if w["body"]["contact"]["id"] == contact["client_id"]
                  and w["body"]["account_id"] == account]
    assert delivery["status"] == 200
