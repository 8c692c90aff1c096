"""The CRM webhook front door: bad input gets a clear 4xx and starts nothing."""

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.settings import Settings
from models.api_keys import create_api_key
from models.crm_webhooks import SIGNATURE_HEADER, sign
from models.lead_keys import LeadChannel, create_lead_key
from models.lead_receipts import receipts
from models.proposals import proposal_workflow_id
from sandbox.serve import ServerThread
from tests import factories

ACCOUNT = "acme-austin"
SECRET = "sandbox-webhook-secret-austin"


@pytest.fixture
def api(settings: Settings, engine: Engine, dev_env: WorkflowEnvironment) -> Iterator[ServerThread]:
    app_settings = settings.model_copy(update={"temporal_address": dev_env.client.service_client.config.target_host})
    with ServerThread(create_app(app_settings)) as server:
        yield server


async def post(api: ServerThread, account: str, body: bytes, secret: str | None = SECRET,
               signature: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature or sign(secret, body)
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        return await http.post(f"/crm/{account}/sales-cycle", content=body, headers=headers)


async def assert_not_started(env: WorkflowEnvironment, proposal_id: str) -> None:
    with pytest.raises(RPCError) as raised:
        await env.client.get_workflow_handle(proposal_workflow_id(ACCOUNT, proposal_id)).describe()
    assert raised.value.status == RPCStatusCode.NOT_FOUND


def change_body(proposal_id: str, **kwargs: str) -> bytes:
    return factories.sales_cycle_change(proposal_id=proposal_id, **kwargs).model_dump_json().encode()


async def test_an_unknown_account_looks_like_a_bad_signature_until_the_post_is_signed(
        settings: Settings, engine: Engine, dev_env: WorkflowEnvironment) -> None:
    body = change_body("P-404", account_id="no-such-account")
    app_settings = settings.model_copy(update={
        "temporal_address": dev_env.client.service_client.config.target_host,
        "crm_webhook_secrets": {**settings.crm_webhook_secrets, "signed-only": SecretStr("signed-only-secret")}})
    with ServerThread(create_app(app_settings)) as server:
        # Unsigned, or signed with a known account's secret: the same 401 as a wrong signature, so an outsider
        # cannot tell which account ids exist.
        for secret in (None, SECRET):
            assert (await post(server, "no-such-account", body, secret=secret)).status_code == 401
        # Signed with a secret configured for an account that is not installed: 404, naming it.
        response = await post(server, "signed-only", change_body("P-404", account_id="signed-only"),
                              secret="signed-only-secret")
    assert response.status_code == 404
    assert "signed-only" in response.json()["detail"]


@pytest.mark.parametrize("secret", [None, "wrong-secret"])
async def test_missing_or_bad_signature_is_401(api: ServerThread, dev_env: WorkflowEnvironment,
                                               secret: str | None) -> None:
    response = await post(api, ACCOUNT, change_body("P-401"), secret=secret)
    assert response.status_code == 401
    await assert_not_started(dev_env, "P-401")


async def test_tampered_body_is_401(api: ServerThread, dev_env: WorkflowEnvironment) -> None:
    body = change_body("P-tamper")
    signature = sign(SECRET, body)
    tampered = body.replace(b"289.00", b"1.00")
    response = await post(api, ACCOUNT, tampered, signature=signature)
    assert response.status_code == 401
    await assert_not_started(dev_env, "P-tamper")


async def test_malformed_body_is_422_with_the_faulty_field(api: ServerThread, dev_env: WorkflowEnvironment) -> None:
    payload = json.loads(change_body("P-422"))
    payload["proposal"]["lines"][0]["quantity"] = "-2"
    del payload["occurred_at"]
    response = await post(api, ACCOUNT, json.dumps(payload).encode())
    assert response.status_code == 422
    faults = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert ("proposal", "lines", 0, "quantity") in faults and ("occurred_at",) in faults
    await assert_not_started(dev_env, "P-422")


async def test_body_for_another_account_is_422(api: ServerThread, dev_env: WorkflowEnvironment) -> None:
    response = await post(api, ACCOUNT, change_body("P-other", account_id="acme-denver"))
    assert response.status_code == 422
    await assert_not_started(dev_env, "P-other")


async def test_unmapped_sales_cycle_step_is_acknowledged_and_ignored(api: ServerThread,
                                                                    dev_env: WorkflowEnvironment) -> None:
    response = await post(api, ACCOUNT, change_body("P-unmapped", step="Left Voicemail"))
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert "Left Voicemail" in response.json()["reason"]
    await assert_not_started(dev_env, "P-unmapped")


async def test_step_names_match_case_insensitively(api: ServerThread, dev_env: WorkflowEnvironment) -> None:
    response = await post(api, ACCOUNT, change_body("P-case", step="  proposal SENT "))
    assert response.status_code == 202
    answer = response.json()
    assert answer == {"status": "accepted", "workflow_id": proposal_workflow_id(ACCOUNT, "P-case"),
                      "run_id": answer["run_id"], "stage": "proposal", "reason": None}
    handle = dev_env.client.get_workflow_handle(answer["workflow_id"])
    assert (await handle.describe()).run_id == answer["run_id"]  # the run that has the event
    await handle.terminate("test over")


@asynccontextmanager
async def api_after_temporal_went_away(settings: Settings) -> AsyncIterator[ServerThread]:
    """An API that connected to a Temporal server which then stopped."""
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=str(settings.temporal_cli),
                                                dev_server_log_level="error")
    app_settings = settings.model_copy(update={"temporal_address": env.client.service_client.config.target_host})
    with ServerThread(create_app(app_settings)) as server:
        await env.shutdown()
        yield server


async def test_temporal_unreachable_is_503_so_the_crm_retries(settings: Settings, engine: Engine) -> None:
    """Nothing is accepted that Temporal did not take: the CRM gets 503 and delivers again later; so does any
    other caller, such as a user enrolling a contact in a plan."""
    key, web_key = create_api_key(engine, ACCOUNT), create_lead_key(engine, ACCOUNT, LeadChannel.WEB_FORM)
    async with api_after_temporal_went_away(settings) as server:
        response = await post(server, ACCOUNT, change_body("P-503"))
        async with httpx.AsyncClient(base_url=server.url, timeout=60, headers={"X-API-Key": key}) as http:
            enrolling = await http.post(f"/accounts/{ACCOUNT}/contacts/C-503/plans",
                                        json={"plan_id": "web-lead-connection"})
            lead = await http.post("/leads/web-form", data={"web_key": web_key, "name": "Dana Reyes",
                                                             "email": "dana.503@example.com"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert enrolling.status_code == 503 and enrolling.headers["Retry-After"] == "30", enrolling.text
    assert enrolling.json()["detail"].startswith("workflow service unavailable")
    assert lead.status_code == 503 and lead.headers["Retry-After"] == "30", lead.text
    [receipt] = receipts(engine, ACCOUNT)  # received, then settled as rejected: the sender posts again
    assert receipt.outcome == "rejected" and "post again" in (receipt.reason or "")


async def test_oversized_body_is_413_and_starts_nothing(api: ServerThread, dev_env: WorkflowEnvironment,
                                                        settings: Settings) -> None:
    payload = json.loads(change_body("P-huge"))
    payload["proposal"]["lines"] = payload["proposal"]["lines"] * 2000
    body = json.dumps(payload).encode()
    assert len(body) > settings.api_max_body_bytes
    response = await post(api, ACCOUNT, body)
    assert response.status_code == 413
    await assert_not_started(dev_env, "P-huge")


async def test_healthz_checks_database_and_temporal(api: ServerThread) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "temporal": "ok"}


async def test_healthz_is_503_when_temporal_is_gone(settings: Settings, engine: Engine) -> None:
    async with api_after_temporal_went_away(settings) as server, httpx.AsyncClient(base_url=server.url,
                                                                                    timeout=60) as http:
        response = await http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "ok" and response.json()["temporal"].startswith("unreachable")


async def test_openapi_documents_the_webhook_body(api: ServerThread) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        spec = (await http.get("/openapi.json")).json()
        docs = await http.get("/docs")
    body = spec["paths"]["/crm/{account_id}/sales-cycle"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SalesCycleChange"}
    assert "proposal" in spec["components"]["schemas"]["SalesCycleChange"]["properties"]
    assert docs.status_code == 200
