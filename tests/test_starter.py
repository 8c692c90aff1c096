"""The command line: operators send the same CRM events as the webhooks, straight to Temporal."""

import json
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from models.gateway_credentials import load_gateway_credentials
from models.proposals import CrmPayment, PaymentAdded, proposal_workflow_id
from tests import factories
from tests.e2e import starter


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


def test_a_gateway_key_is_read_from_stdin_and_stored_without_being_printed(
        settings: Settings, engine: Engine, dev_env: WorkflowEnvironment) -> None:
    key = "stax_" + uuid.uuid4().hex
    stored = starter(settings, dev_env, "gateway", "connect", "--account", "acme-austin", stdin=f"{key}\n")
    assert stored.returncode == 0, stored.stderr
    assert "webhook URL: http" in stored.stdout and key not in stored.stdout + stored.stderr
    assert getattr(load_gateway_credentials(engine, "acme-austin"), "api_key", None) == key
    empty = starter(settings, dev_env, "gateway", "connect", "--account", "acme-austin")
    assert empty.returncode != 0 and "no gateway API key on stdin" in empty.stderr
    assert getattr(load_gateway_credentials(engine, "acme-austin"), "api_key", None) == key  # nothing replaced
