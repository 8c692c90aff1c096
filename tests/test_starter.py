"""The command line: operators send the same CRM events as the webhooks, straight to Temporal."""

import json
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from models.proposals import CrmPayment, PaymentAdded, proposal_workflow_id
from tests import factories

ROOT = Path(__file__).parent.parent


def starter(settings: Settings, dev_env: WorkflowEnvironment, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    env.update({"LEDGERFLOW_DATABASE_URL": settings.database_url, "LEDGERFLOW_TASK_QUEUE": settings.task_queue,
                "LEDGERFLOW_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host})
    return subprocess.run([sys.executable, "starter.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


async def test_network_install_and_a_payment_event_from_the_cli(settings: Settings, engine: Engine,
                                                                dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    installed = starter(settings, dev_env, "network", "install")
    assert installed.returncode == 0 and "2 franchisees" in installed.stdout, installed.stderr
    change = factories.sales_cycle_change()
    event = PaymentAdded(event_id="cli-pay-1", account_id="acme-austin", occurred_at=change.occurred_at,
                         contact=change.contact, proposal_id="P-cli", proposal_number="1001",
                         payment=CrmPayment(id="pay-cli", amount=Decimal("75.00"), received_on=date(2026, 11, 21)))
    path = tmp_path / "payment.json"
    path.write_text(event.model_dump_json())

    sent = starter(settings, dev_env, "event", "payment", "--json", str(path))

    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["workflow_id"] == proposal_workflow_id("acme-austin", "P-cli")
    description = await dev_env.client.get_workflow_handle(proposal_workflow_id("acme-austin", "P-cli")).describe()
    assert description.workflow_type == "ProposalWorkflow"
    bad = starter(settings, dev_env, "event", "sales-cycle", "--account", "acme-austin")
    assert bad.returncode != 0 and "missing" in bad.stderr
