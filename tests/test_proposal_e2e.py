"""End to end through the real parts: signed HTTP webhooks to the API (uvicorn), the Temporal dev server,
the worker as it ships, python-quickbooks over HTTP to the QBO sandbox, and the SQLite ledger."""

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from config.settings import Settings
from models.audit import QboAuditLog
from models.ledger import QboObjectMap
from models.proposals import proposal_workflow_id
from sandbox.qbo.admin import inject_faults, list_objects
from sandbox.serve import ServerThread
from tests import factories
from tests.e2e import post_event, settled
from worker import WORKFLOWS, build_worker

ACCOUNT = "acme-austin"


async def replay(client: Client, workflow_id: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(history)


async def test_proposal_event_lands_in_quickbooks_exactly_once(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, account_realm: str, api: ServerThread
) -> None:
    proposal_id = f"P-{uuid.uuid4().hex[:8]}"
    deliveries = [factories.sales_cycle_change(event_id=e, proposal_id=proposal_id, number=proposal_id)
                  for e in ("evt-1", "evt-1", "evt-2")]  # a duplicate, and a re-send under a new event id
    client = dev_env.client
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with build_worker(client, e2e_settings, executor, max_cached_workflows=0,
                                workflow_failure_exception_types=[workflow.NondeterminismError]):
            responses = [await post_event(api.url, e2e_settings, change) for change in deliveries]
            handle = client.get_workflow_handle(proposal_workflow_id(ACCOUNT, proposal_id))
            state = await settled(client, ACCOUNT, proposal_id, lambda s: {"evt-1", "evt-2"} <= set(s.events_seen))

    assert [r.status_code for r in responses] == [202, 202, 202]
    customers = list_objects(e2e_settings.qbo_api_url, account_realm, "Customer")
    estimates = list_objects(e2e_settings.qbo_api_url, account_realm, "Estimate")
    assert [c["Id"] for c in customers] == [state.customer_id]
    assert [e["Id"] for e in estimates] == [state.estimate_id]
    assert estimates[0]["DocNumber"] == proposal_id
    assert Decimal(str(estimates[0]["TotalAmt"])) == Decimal("339.00")
    with Session(engine) as session:
        mapped = session.exec(select(QboObjectMap.qbo_entity, QboObjectMap.qbo_id)
                              .where(QboObjectMap.realm_id == account_realm)).all()
        audited = session.exec(select(QboAuditLog.entity, QboAuditLog.status, QboAuditLog.workflow_id)
                               .where(QboAuditLog.realm_id == account_realm)).all()
    services = next(i["Id"] for i in list_objects(e2e_settings.qbo_api_url, account_realm, "Item")
                    if i["Name"] == "Services")
    assert sorted(mapped) == sorted([("Customer", state.customer_id), ("Estimate", state.estimate_id),
                                     ("Item", services)])
    assert sorted(audited) == [("Customer", "ok", handle.id), ("Estimate", "ok", handle.id)]
    await replay(client, handle.id)


async def test_search_attributes_let_operators_find_the_run(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, account_realm: str, api: ServerThread
) -> None:
    proposal_id = f"P-{uuid.uuid4().hex[:8]}"
    client = dev_env.client
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with build_worker(client, e2e_settings, executor):
            assert (await post_event(api.url, e2e_settings, factories.sales_cycle_change(
                proposal_id=proposal_id, number=proposal_id))).status_code == 202
            await settled(client, ACCOUNT, proposal_id, lambda s: s.estimate_id)
            query = (f'ProposalId = "{proposal_id}" AND AccountId = "{ACCOUNT}" AND ContactId = "C-1" '
                     f'AND Franchisor = "acme" AND Stage = "proposal"')
            found: list[str] = []
            for _ in range(100):  # visibility is eventually consistent
                found = [w.id async for w in client.list_workflows(query)]
                if found:
                    break
                await asyncio.sleep(0.1)
    assert found == [proposal_workflow_id(ACCOUNT, proposal_id)]


async def test_quickbooks_outage_delays_but_does_not_fail_or_double(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, account_realm: str, api: ServerThread
) -> None:
    proposal_id = f"P-{uuid.uuid4().hex[:8]}"
    inject_faults(e2e_settings.qbo_api_url, account_realm, "500", count=4)
    client = dev_env.client
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with build_worker(client, e2e_settings, executor):
            await post_event(api.url, e2e_settings, factories.sales_cycle_change(proposal_id=proposal_id,
                                                                                 number=proposal_id))
            state = await settled(client, ACCOUNT, proposal_id, lambda s: s.estimate_id)

    assert state.stuck == []
    assert len(list_objects(e2e_settings.qbo_api_url, account_realm, "Customer")) == 1
    assert [e["Id"] for e in list_objects(e2e_settings.qbo_api_url, account_realm, "Estimate")] == [
        state.estimate_id]
