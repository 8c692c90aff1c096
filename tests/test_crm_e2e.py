"""End to end from the CRM: staff move a contact to "Proposal Sent" in the CRM sandbox; its signed webhook
reaches the API, the proposal's workflow runs on the dev server, and the estimate lands in QBO."""

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from models.proposals import proposal_workflow_id
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.qbo.admin import list_objects
from sandbox.serve import ServerThread
from worker import build_worker
from workflows.proposal import ProposalWorkflow

ACCOUNT = "acme-austin"


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
