"""A worker process killed with SIGKILL in the middle of a burst of proposals: another worker takes over
and every proposal's books end exactly as if nothing had happened."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from sandbox.qbo.admin import dump_company, list_objects, set_faults
from sandbox.serve import ServerThread
from tests.e2e import post_event, settled
from tests.test_lifecycle_e2e import scenario

ROOT = Path(__file__).parent.parent
PROPOSALS = 6


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    """`python worker.py` as operators run it, configured through the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env.update({
        "LEDGERFLOW_DATABASE_URL": settings.database_url,
        "LEDGERFLOW_DATA_DIR": str(settings.data_dir),
        "LEDGERFLOW_TEMPORAL_ADDRESS": settings.temporal_address,
        "LEDGERFLOW_TASK_QUEUE": settings.task_queue,
        "LEDGERFLOW_QBO_SANDBOX_PORT": str(settings.qbo_sandbox_port),
        "LEDGERFLOW_CRM_SANDBOX_PORT": str(settings.crm_sandbox_port),
        "LEDGERFLOW_QBO_THROTTLE_RETRY_SECONDS": str(settings.qbo_throttle_retry_seconds),
        "LEDGERFLOW_QBO_HTTP_TIMEOUT_SECONDS": str(settings.qbo_http_timeout_seconds),
    })
    return subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@pytest.fixture
def e2e_settings(e2e_settings: Settings) -> Settings:
    """A dead worker's activities run again elsewhere after the activity time limit: keep it short here."""
    return e2e_settings.model_copy(update={"qbo_activity_timeout": timedelta(seconds=8),
                                           "qbo_http_timeout_seconds": 5.0})


async def test_a_worker_killed_mid_burst_loses_and_doubles_nothing(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, account_realm: str, api: ServerThread
) -> None:
    settings = e2e_settings
    set_faults(settings.qbo_api_url, account_realm, latency_seconds=0.15)  # keeps work in flight at the kill
    proposal_ids = [f"K-{uuid.uuid4().hex[:6]}" for _ in range(PROPOSALS)]
    first = start_worker(settings)
    try:
        for proposal_id in proposal_ids:
            for event in scenario(proposal_id):
                assert (await post_event(api.url, settings, event)).status_code == 202
        for _ in range(300):  # kill once the books are partly written
            if len(list_objects(settings.qbo_api_url, account_realm, "Payment")) >= 3:
                break
            await asyncio.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        written_at_kill = len(list_objects(settings.qbo_api_url, account_realm, "Payment"))
        second = start_worker(settings)
        try:
            for proposal_id in proposal_ids:
                await settled(dev_env.client, "acme-austin", proposal_id, seconds=120, done=lambda s: s.invoice_id and
                              all(p.applied is not None or p.voided for p in s.payments))
        finally:
            second.terminate()
            second.wait(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
        set_faults(settings.qbo_api_url, account_realm)

    assert written_at_kill < 2 * PROPOSALS + 1  # the kill did land mid-burst
    invoices = list_objects(settings.qbo_api_url, account_realm, "Invoice")
    every_payment = list_objects(settings.qbo_api_url, account_realm, "Payment")
    references = [p["PaymentRefNum"] for p in every_payment]  # the CRM payment's id
    assert len(references) == len(set(references))  # no CRM payment recorded twice (pay-2 is voided, if recorded)
    payments = [p for p in every_payment if Decimal(str(p["TotalAmt"])) > 0]
    assert sorted(p["PaymentRefNum"] for p in payments) == sorted(f"{proposal_id}-{payment}" for proposal_id in
                                                                  proposal_ids for payment in ("pay-1", "pay-3"))
    assert sorted(i["DocNumber"] for i in invoices) == sorted(proposal_ids)  # one invoice each
    assert len(list_objects(settings.qbo_api_url, account_realm, "Estimate")) == PROPOSALS
    assert len(list_objects(settings.qbo_api_url, account_realm, "Customer")) == 1  # one contact, C-1
    assert len(payments) == 2 * PROPOSALS and all(Decimal(str(p["UnappliedAmt"])) == 0 for p in payments)
    assert all(Decimal(str(i["Balance"])) == Decimal("100.00") for i in invoices)  # 289.00 - 89.00 - 100.00
    company = dump_company(settings.qbo_api_url, account_realm)  # the retries kept within QBO's limits
    assert company["throttled"] == 0 and company["peak_in_flight"] <= 10
