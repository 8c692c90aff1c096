"""Fuzzing the front door: whatever arrives, signed or not, well-formed or not, the answer is never a 500."""

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.settings import Settings
from models.crm_webhooks import SIGNATURE_HEADER, sign
from sandbox.serve import ServerThread
from tests import factories

SECRET = "sandbox-webhook-secret-austin"
ALLOWED = {200, 202, 401, 404, 405, 413, 422}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory, qbo_sandbox: ServerThread,
            dev_env: WorkflowEnvironment) -> Iterator[str]:
    """One API for the whole module, on its own database, in front of the session's dev server."""
    from config.network import install_network, load_network
    from models.db import create_tables, get_engine

    path = tmp_path_factory.mktemp("fuzz")
    settings = Settings(data_dir=path, database_url=f"sqlite:///{path / 'fuzz.db'}",
                        qbo_sandbox_port=qbo_sandbox.port,
                        temporal_address=dev_env.client.service_client.config.target_host)
    engine: Engine = get_engine(settings.database_url)
    create_tables(engine)
    install_network(engine, load_network(settings.network_file))
    with ServerThread(create_app(settings)) as server:
        yield server.url


def mutate(base: dict[str, Any], path: list[str | int], value: Any) -> dict[str, Any]:
    """The valid body with one field (at any depth) replaced by an arbitrary JSON value."""
    body = json.loads(json.dumps(base))
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


FIELD_PATHS: list[list[str | int]] = [
    ["event_id"], ["account_id"], ["sales_cycle_step"], ["occurred_at"], ["contact"], ["contact", "id"],
    ["contact", "first_name"], ["contact", "email"], ["proposal"], ["proposal", "id"], ["proposal", "number"],
    ["proposal", "lines"], ["proposal", "lines", 0, "quantity"], ["proposal", "lines", 0, "unit_price"],
    ["proposal", "lines", 0, "description"], ["proposal", "lines", 0, "product"],
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(FIELD_PATHS), value=json_values)
def test_signed_mutated_bodies_never_500(api_url: str, path: list[str | int], value: Any) -> None:
    valid = json.loads(factories.sales_cycle_change(proposal_id="P-fuzz").model_dump_json())
    body = json.dumps(mutate(valid, path, value)).encode()
    response = httpx.post(f"{api_url}/crm/acme-austin/sales-cycle", content=body, timeout=30,
                          headers={SIGNATURE_HEADER: sign(SECRET, body), "Content-Type": "application/json"})
    assert response.status_code in ALLOWED, response.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode()),
       account=st.sampled_from(["acme-austin"]) | st.text(min_size=1, max_size=20), signed=st.booleans(),
       event=st.sampled_from(["sales-cycle", "proposal", "payment"]),
       content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))
def test_arbitrary_requests_never_500(api_url: str, body: bytes, account: str, signed: bool, event: str,
                                      content_type: str) -> None:
    headers = {"Content-Type": content_type}
    if signed:
        headers[SIGNATURE_HEADER] = sign(SECRET, body)
    response = httpx.post(f"{api_url}/crm/{quote(account, safe='')}/{event}", content=body, headers=headers,
                          timeout=30)
    assert response.status_code in ALLOWED, response.text
