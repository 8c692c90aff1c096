"""The read side of the API: per-account API keys and the QBO audit log. The rows come from real QuickBooks
activities run against the QBO sandbox; the API is served over HTTP as in production."""

import dataclasses
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.qbo_client import QboConnector
from activities.quickbooks import QuickBooksActivities
from config.settings import Settings
from models.accounts import Franchisor
from models.api_keys import ApiKey, authorize, create_api_key, hash_key, revoke_api_key
from models.audit import QboAuditLog
from models.proposals import EnsureCustomerInput, EnsureEstimateInput
from sandbox.serve import ServerThread
from tests import factories
from tests.conftest import new_realm, point_account_at
from tests.e2e import starter

AUSTIN, DENVER, FRANCHISOR = "acme-austin", "acme-denver", "acme"
AUSTIN_WORKFLOW = "proposal:acme-austin:P-1"
SUMMARY_FIELDS = {"id", "realm_id", "entity", "operation", "request_id", "workflow_id", "activity_attempt",
                  "status", "qbo_id", "sent_at", "finished_at", "error"}


def run_activity(fn: Any, arg: Any, workflow_id: str) -> Any:
    """Run an activity as if a workflow called it, so its audit rows name that workflow."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=workflow_id)
    return env.run(fn, arg)


@pytest.fixture
def denver_realm(settings: Settings, engine: Engine) -> str:
    """acme-denver on a fresh QBO sandbox company of its own."""
    return point_account_at(engine, DENVER, new_realm(settings, engine))


@pytest.fixture
def books(settings: Settings, engine: Engine, account_realm: str, denver_realm: str) -> dict[str, str]:
    """Real QBO writes: in Austin's company three customers, then an estimate QBO refuses (an error row) from
    another workflow; in Denver's, one customer. Returns each account's realm."""
    activities = QuickBooksActivities(QboConnector(settings, engine), engine)
    for contact_id, first in (("C-1", "Dana"), ("C-2", "Lee"), ("C-3", "Ana")):
        run_activity(activities.ensure_customer, EnsureCustomerInput(
            account_id=AUSTIN, realm_id=account_realm, contact=factories.contact(contact_id, first)),
            AUSTIN_WORKFLOW)
    with pytest.raises(ApplicationError):
        run_activity(activities.ensure_estimate, EnsureEstimateInput(
            account_id=AUSTIN, realm_id=account_realm, customer_id="999999", proposal=factories.proposal()),
            "proposal:acme-austin:P-2")
    run_activity(activities.ensure_customer, EnsureCustomerInput(
        account_id=DENVER, realm_id=denver_realm, contact=factories.contact("C-9", "Kim")), "proposal:acme-denver:P-9")
    return {AUSTIN: account_realm, DENVER: denver_realm}


def db_ids(engine: Engine, realm_id: str) -> list[int]:
    with Session(engine) as session:
        return list(session.exec(select(QboAuditLog.id).where(QboAuditLog.realm_id == realm_id)
                                 .order_by(col(QboAuditLog.id).desc())))  # type: ignore[arg-type]


async def get_audit(api: ServerThread, account: str, key: str | None = None, bearer: bool = False,
                    **params: Any) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"} if bearer else {"X-API-Key": key}
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        return await http.get(f"/accounts/{account}/audit", headers=headers, params=params)


@pytest.mark.parametrize("bearer", [False, True])
async def test_a_franchisee_key_reads_its_own_audit_newest_first(api: ServerThread, engine: Engine,
                                                                 books: dict[str, str], bearer: bool) -> None:
    key = create_api_key(engine, AUSTIN, "bookkeeper")

    response = await get_audit(api, AUSTIN, key, bearer=bearer)

    assert response.status_code == 200, response.text
    rows = response.json()
    assert [row["id"] for row in rows] == db_ids(engine, books[AUSTIN])
    oldest = [(r["entity"], r["operation"], r["status"]) for r in reversed(rows)][:3]
    assert oldest == [("Customer", "create", "ok")] * 3
    assert {r["status"] for r in rows} == {"ok", "error"}
    assert all(set(row) == SUMMARY_FIELDS for row in rows)  # no bodies unless asked
    assert all(row["realm_id"] == books[AUSTIN] for row in rows)
    errored = next(r for r in rows if r["status"] == "error")
    assert errored["entity"] == "Estimate" and errored["error"] and errored["finished_at"]


@pytest.mark.parametrize("owner", [AUSTIN, "zenith"])
async def test_a_key_for_another_account_or_franchisor_is_403_and_shows_nothing(
        api: ServerThread, engine: Engine, books: dict[str, str], owner: str) -> None:
    with Session(engine) as session:
        session.add(Franchisor(id="zenith", name="Another network", time_zone="America/Chicago"))
        session.commit()

    response = await get_audit(api, DENVER, create_api_key(engine, owner))

    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    assert books[DENVER] not in response.text and "Customer" not in response.text


async def test_a_franchisor_key_reads_each_franchisee(api: ServerThread, engine: Engine,
                                                      books: dict[str, str]) -> None:
    key = create_api_key(engine, FRANCHISOR, "head office")
    for account in (AUSTIN, DENVER):
        response = await get_audit(api, account, key)
        assert response.status_code == 200, response.text
        assert [row["id"] for row in response.json()] == db_ids(engine, books[account])
    assert len((await get_audit(api, DENVER, key)).json()) == 1


@pytest.mark.parametrize("account", [AUSTIN, "no-such-account"])
@pytest.mark.parametrize("key", [None, "", "lf_not-a-key", "x"])
async def test_no_valid_key_is_401_whether_or_not_the_account_exists(api: ServerThread, engine: Engine,
                                                                     account: str, key: str | None) -> None:
    """An unknown account answers 401 too, so nobody without a key can tell which accounts exist."""
    response = await get_audit(api, account, key)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert set(response.json()) == {"detail"}


async def test_a_revoked_key_is_401(api: ServerThread, engine: Engine, books: dict[str, str]) -> None:
    key = create_api_key(engine, AUSTIN)
    assert (await get_audit(api, AUSTIN, key)).status_code == 200

    revoked = revoke_api_key(engine, key[:8])

    assert revoked is not None and revoked.revoked_at is not None
    response = await get_audit(api, AUSTIN, key, bearer=True)
    assert response.status_code == 401 and "WWW-Authenticate" in response.headers


async def test_an_unknown_account_with_a_valid_key_is_404(api: ServerThread, engine: Engine) -> None:
    response = await get_audit(api, "no-such-account", create_api_key(engine, FRANCHISOR))

    assert response.status_code == 404
    assert "no-such-account" in response.json()["detail"]


async def test_pages_with_before_id_cover_the_log_once(api: ServerThread, engine: Engine,
                                                       books: dict[str, str]) -> None:
    key = create_api_key(engine, AUSTIN)
    seen: list[int] = []
    before: dict[str, int] = {}
    for _ in range(10):
        page = (await get_audit(api, AUSTIN, key, limit=2, **before)).json()
        if not page:
            break
        assert len(page) <= 2
        seen += [row["id"] for row in page]
        before = {"before_id": page[-1]["id"]}
    assert seen == db_ids(engine, books[AUSTIN]) and len(seen) == 4


async def test_bodies_only_when_asked(api: ServerThread, engine: Engine, books: dict[str, str]) -> None:
    key = create_api_key(engine, AUSTIN)

    rows = (await get_audit(api, AUSTIN, key, include_bodies="true", entity="Customer")).json()

    assert len(rows) == 3 and all(set(row) == SUMMARY_FIELDS | {"body", "response"} for row in rows)
    assert {row["body"].split('"DisplayName": "')[1].split('"')[0] for row in rows} == {
        "Dana Whitfield", "Lee Whitfield", "Ana Whitfield"}
    assert all(row["qbo_id"] in row["response"] for row in rows)
    plain = (await get_audit(api, AUSTIN, key, include_bodies="false", entity="Customer")).json()
    assert all("body" not in row and "response" not in row for row in plain)


async def test_filters_by_entity_workflow_and_status(api: ServerThread, engine: Engine,
                                                     books: dict[str, str]) -> None:
    key = create_api_key(engine, AUSTIN)

    errors = (await get_audit(api, AUSTIN, key, status="error")).json()
    estimates = (await get_audit(api, AUSTIN, key, entity="Estimate")).json()
    by_workflow = (await get_audit(api, AUSTIN, key, workflow_id=AUSTIN_WORKFLOW)).json()
    nothing = (await get_audit(api, AUSTIN, key, entity="Customer", status="error")).json()

    assert [r["id"] for r in errors] == [r["id"] for r in estimates] and len(errors) == 1
    assert errors[0]["workflow_id"] == "proposal:acme-austin:P-2"
    assert len(by_workflow) == 3 and {r["entity"] for r in by_workflow} == {"Customer"}
    assert nothing == []


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"before_id": 0},
                                    {"before_id": 2**64}, {"status": "pending"}])
async def test_bad_query_parameters_are_422(api: ServerThread, engine: Engine, params: dict[str, Any]) -> None:
    response = await get_audit(api, AUSTIN, create_api_key(engine, AUSTIN), **params)
    assert response.status_code == 422


async def test_openapi_documents_the_key_schemes(api: ServerThread) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        spec = (await http.get("/openapi.json")).json()
    operation = spec["paths"]["/accounts/{account_id}/audit"]["get"]
    assert {"401", "403", "404"} <= set(operation["responses"])
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                 "description": schemes["ApiKey"]["description"]}
    assert schemes["Bearer"]["scheme"] == "bearer"


def test_only_a_hash_of_the_key_is_stored(engine: Engine) -> None:
    key = create_api_key(engine, AUSTIN, "ci")

    with engine.connect() as connection:
        stored = [tuple(str(v) for v in row) for row in connection.execute(text("SELECT * FROM api_key"))]
    assert key.startswith("lf_") and len(key) > 40
    assert not any(key in value for row in stored for value in row)
    found = authorize(engine, key)
    assert found is not None and found.key_hash == hash_key(key) and found.prefix == key[:8]
    assert found.scope == "franchisee" and found.created_at.tzinfo is not None
    assert authorize(engine, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    with pytest.raises(ValueError, match="no-such"):
        create_api_key(engine, "no-such")
    with Session(engine) as session:
        assert session.exec(select(ApiKey).where(ApiKey.account_id == "no-such")).first() is None


async def test_cli_makes_lists_and_revokes_keys_and_prints_the_audit(settings: Settings, engine: Engine,
                                                                    dev_env: WorkflowEnvironment, api: ServerThread,
                                                                    books: dict[str, str]) -> None:
    made = starter(settings, dev_env, "keys", "create", "--account", AUSTIN, "--label", "bookkeeper")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("lf_") and "not be shown again" in made.stderr
    assert (await get_audit(api, AUSTIN, key)).status_code == 200

    listed = starter(settings, dev_env, "keys", "list", "--account", AUSTIN)
    assert listed.returncode == 0, listed.stderr
    assert key[:8] in listed.stdout and "bookkeeper" in listed.stdout and "franchisee" in listed.stdout
    assert key not in listed.stdout

    audit = starter(settings, dev_env, "audit", "--account", AUSTIN, "--limit", "3")
    assert audit.returncode == 0, audit.stderr
    lines = audit.stdout.splitlines()
    assert books[AUSTIN] in lines[0] and lines[1].split()[:3] == ["ID", "SENT", "ENTITY"]
    assert [line.split()[0] for line in lines[2:]] == [str(i) for i in db_ids(engine, books[AUSTIN])[:3]]
    assert "Estimate" in lines[2] and "error" in lines[2]

    revoked = starter(settings, dev_env, "keys", "revoke", key[:8])
    assert revoked.returncode == 0, revoked.stderr
    assert (await get_audit(api, AUSTIN, key)).status_code == 401
    unknown = starter(settings, dev_env, "keys", "create", "--account", "no-such-account")
    assert unknown.returncode != 0 and "no-such-account" in unknown.stderr
