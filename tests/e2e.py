"""Helpers for end-to-end tests: wait for a proposal's workflow to settle, post signed CRM events."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.service import RPCError

from config.settings import Settings
from models.crm_webhooks import SIGNATURE_HEADER, sign
from models.proposals import ProposalState, proposal_workflow_id
from workflows.proposal import ProposalWorkflow

# The front door's path for each kind of CRM event.
EVENT_PATHS = {"SalesCycleChange": "sales-cycle", "ProposalChanged": "proposal", "PaymentAdded": "payment",
               "PaymentVoided": "payment-voided"}


async def settled(client: Client, account_id: str, proposal_id: str,
                  done: Callable[[ProposalState], Any] = lambda _state: True, seconds: float = 60) -> ProposalState:
    """The proposal's state once `done` holds and its workflow has nothing left to do."""
    handle = client.get_workflow_handle(proposal_workflow_id(account_id, proposal_id))
    state = None
    for _ in range(int(seconds * 10)):
        try:
            state = await handle.query(ProposalWorkflow.state)
            if done(state) and not await handle.query(ProposalWorkflow.busy):
                return state
        except RPCError:
            pass  # not started yet: the webhook is still on its way
        await asyncio.sleep(0.1)
    raise AssertionError(f"proposal {proposal_id} never settled: {state}")


async def post_event(api_url: str, settings: Settings, event: BaseModel) -> httpx.Response:
    """POST a CRM event to the front door, signed as the CRM signs it."""
    body = event.model_dump_json().encode()
    account_id = str(getattr(event, "account_id", None) or event.change.account_id)  # type: ignore[attr-defined]
    secret = settings.crm_webhook_secrets[account_id].get_secret_value()
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        return await http.post(f"/crm/{account_id}/{EVENT_PATHS[type(event).__name__]}", content=body,
                               headers={SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"})
