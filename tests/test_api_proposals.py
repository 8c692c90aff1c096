"""The proposals API behind per-account keys: list and read proposals as their workflows saved them, retry a
stuck one, sync an account from the CRM now. End to end: CRM sandbox, API, worker, QBO sandbox."""

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal

import httpx
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from models.api_keys import create_api_key
from sandbox.serve import ServerThread
from tests.e2e import settled
from tests.test_lifecycle_e2e import crm_proposal
from worker import build_worker


async def test_a_franchisee_reads_its_proposals_and_syncs_its_account(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, account_realm: str, crm_account: str,
    api: ServerThread
) -> None:
    crm, contact_id, proposal_id = crm_proposal(e2e_settings, crm_account, "Sasha", "Ito")
    key = {"X-API-Key": create_api_key(engine, crm_account)}
    other = {"X-API-Key": create_api_key(engine, "acme-denver")}
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
            async with build_worker(dev_env.client, e2e_settings, executor):
                crm.move_step(crm_account, contact_id, "Lost")
                crm.add_payment(crm_account, proposal_id, Decimal("40.00"), date(2026, 11, 21))
                await settled(dev_env.client, crm_account, proposal_id,
                              lambda s: s.estimate_status == "Rejected" and s.payments and s.payments[0].qbo_id)

                detail = await http.get(f"/accounts/{crm_account}/proposals/{proposal_id}", headers=key)
                listed = await http.get(f"/accounts/{crm_account}/proposals",
                                        params={"stage": "lost", "unapplied": "true"}, headers=key)
                forbidden = await http.get(f"/accounts/{crm_account}/proposals", headers=other)
                synced = await http.post(f"/accounts/{crm_account}/sync", headers=key)
                result = await dev_env.client.get_workflow_handle(synced.json()["workflow_id"]).result()
                retry_unknown = await http.post(f"/accounts/{crm_account}/proposals/nope/retry", headers=key)

    assert detail.status_code == 200 and detail.json()["running"] is True
    assert detail.json()["state"]["estimate_status"] == "Rejected"
    assert [(p["proposal_id"], p["stage"], p["unapplied_total"]) for p in listed.json()] == [
        (proposal_id, "lost", "40.00")]
    assert forbidden.status_code == 403 and "proposal_id" not in forbidden.text
    assert synced.status_code == 202 and result["proposals_fed"] >= 1
    assert retry_unknown.status_code == 404
