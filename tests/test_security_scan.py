"""Secrets stay secret, and a franchisee stays in its own account (issue 10's security review).

- End to end on the dev server with the shipped worker: a proposal lifecycle from the CRM, card and bank payments
  (the gateway's webhook included) and a refund, an Angi lead and a web-form lead, a plan calling a partner's
  webhook with a secret header, inbound email and text, a royalty run with an ACH debit, the report and the CLI.
  Every log record of the process (every logger at DEBUG, the API's access log included), every history of every
  run on the test's task queue (payloads decoded), every row of the database and every API answer are then
  searched for every secret the run knew: the QBO tokens the sandbox issued, the CRM keys, the gateway keys and
  webhook tokens, the API and lead keys, the plan secret, and every SecretStr of the settings.
- Stored tokens are encrypted at rest; API and lead keys are stored as digests only.
- The recorded histories in tests/histories/ carry none of the test settings' fixed secrets, nor anything shaped
  like a sandbox-issued token or key.
- A key of one franchisee used on another's path gets 403 (no key or a bad one 401) and starts or changes nothing;
  signed webhooks of one account do not reach another.
"""

import asyncio
import base64
import hashlib
import json
import logging
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine, inspect, make_url, text
from sqlmodel import Session
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.qbo_client import QboConnector
from api.app import create_app
from config.log_format import quiet_libraries
from config.settings import Settings, get_settings
from models.api_keys import create_api_key, hash_key, revoke_api_key
from models.autopay_configs import load_configs
from models.collections import ach_workflow_id, collection_workflow_id, refund_workflow_id
from models.crm_credentials import load_crm_credentials, save_crm_credentials
from models.crm_webhooks import SIGNATURE_HEADER, sign
from models.enrollments import plan_workflow_id
from models.gateway_credentials import save_gateway_credentials
from models.gateway_webhooks import EVENT_HEADER, webhook_path, webhook_token
from models.lead_keys import create_lead_key
from models.leads import LeadChannel
from models.proposals import proposal_workflow_id
from models.qbo_connection import QboConnection
from models.scheduled_payments import scheduled_workflow_id
from models.twilio_signature import SIGNATURE_HEADER as TWILIO_SIGNATURE_HEADER
from models.twilio_signature import twilio_signature
from sandbox.gateway.admin import GatewaySandboxAdmin
from sandbox.partners.admin import PartnersSandboxAdmin
from sandbox.serve import ServerThread
from tests import factories
from tests.conftest import connect_crm_account, install_franchisor
from tests.e2e import settled, starter, worker
from tests.test_lead_e2e import angi_lead, person, until_settled
from tests.test_payments_e2e import Shop, austin_today
from tests.test_plan_e2e import plan_file, result
from tests.test_royalty_e2e import NIGHT, run_night
from tests.test_royalty_workflow import pay

ACCOUNT = "acme-austin"
OTHER = "acme-denver"
ROOT = Path(__file__).parent.parent
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
PLAN_SECRET_NAME = "partner-hook-token"
# The shapes of what the sandboxes issue (sandbox/qbo/auth.py, sandbox/crm/store.py, sandbox/gateway/store.py) and
# of Ledgerflow's own keys (models/api_keys.py, models/lead_keys.py): a recorded history must hold none of them.
ISSUED_SHAPES = {
    "QBO refresh token": r"RT-[A-Za-z0-9_-]{32}(?![A-Za-z0-9_-])",
    "QBO access token": r"AT-[A-Za-z0-9_-]{32}(?![A-Za-z0-9_-])",
    "CRM access token": r"CT-[A-Za-z0-9_-]{24}(?![A-Za-z0-9_-])",
    "CRM web key": r"WK-[A-Za-z0-9_-]{16}(?![A-Za-z0-9_-])",
    "gateway API key": r"stax_[A-Za-z0-9_-]{32}(?![A-Za-z0-9_-])",
    "API key": r"lf_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])",
    "lead key": r"lk_[A-Za-z0-9_-]{32}(?![A-Za-z0-9_-])",
}


# -- where secrets could show up, and how to look ------------------------------------------------------------
def settings_secrets(settings: Settings) -> dict[str, str]:
    """Every SecretStr of the settings (those inside dicts too), and the database password as a URL carries it."""
    found: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found[f"settings.{name}"] = value.get_secret_value()
        elif isinstance(value, dict):
            found.update({f"settings.{name}[{key}]": item.get_secret_value() for key, item in value.items()
                          if isinstance(item, SecretStr)})
    password = make_url(settings.database_url).password
    if password:  # a bare password may be a common word ("ledgerflow"): look for it as a URL holds it
        found["database password"] = f":{password}@"
    return {name: value for name, value in found.items() if value}


def _decoded(value: str) -> str | None:
    """A base64 string's text (Temporal's JSON carries every payload that way), else None."""
    if len(value) < 8 or len(value) % 4:
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError both are
        return None


def readable(node: Any) -> Iterator[str]:
    """Every string in a JSON tree, keys included, each base64 one also decoded."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from readable(key)
            yield from readable(value)
    elif isinstance(node, list):
        for item in node:
            yield from readable(item)
    elif isinstance(node, str):
        yield node
        decoded = _decoded(node)
        if decoded is not None:
            yield decoded


def redacted(excerpt: str, secrets: dict[str, str]) -> str:
    """An excerpt fit for a failure message: every secret in it named instead, and what is left of one cut at
    the excerpt's edge masked."""
    for name, value in secrets.items():
        excerpt = excerpt.replace(value, f"<{name}>")
    return re.sub(r"\b(RT-|AT-|CT-|WK-|stax_|lf_|lk_)[A-Za-z0-9_-]+", r"\1...", excerpt)


def leaks(places: Iterable[tuple[str, str]], secrets: dict[str, str]) -> list[str]:
    """One line per place and secret found there ("where: which secret, how often, an excerpt"); the secret
    itself is never repeated. A place is named "kind | detail": lines are grouped by kind (a log's logger and
    level, a table, a run), the detail (a thread) of the first is kept."""
    seen: dict[tuple[str, str], list[Any]] = {}
    for where, content in places:
        for name, value in secrets.items():
            at = content.find(value)
            if at >= 0:
                kind, _, detail = where.partition(" | ")
                excerpt = redacted(content[max(at - 60, 0):at + len(value) + 30], secrets)
                entry = seen.setdefault((kind, name), [0, detail, excerpt])
                entry[0] += 1
    return [f"{kind}: {name} ({count}x, first in {detail or '-'}) in ...{excerpt!r}..."
            for (kind, name), (count, detail, excerpt) in seen.items()]


async def history_texts(client: Client, task_queue: str) -> tuple[dict[str, str], set[str]]:
    """The text of every run on the task queue (every string of its history, payloads decoded), and the workflow
    types seen."""
    texts, kinds = {}, set()
    async for run in client.list_workflows(f"TaskQueue = '{task_queue}'"):
        kinds.add(run.workflow_type)
        history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
        texts[f"history of a {run.workflow_type} | {run.id}"] = "\n".join(readable(json.loads(history.to_json())))
    return texts, kinds


def database_rows(engine: Engine) -> Iterator[tuple[str, str]]:
    """Every row of every table the database holds, raw (plain SQL: no column type decrypts anything on the way
    out)."""
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                yield f"table {table}", ", ".join(map(str, row))


class LogTap:
    """Every log record of the process at DEBUG, as Ledgerflow's logging lets them through, kept by caplog's
    handler. Until `close`, every logger there is is set to DEBUG (but those `quiet_libraries` holds at WARNING,
    as the worker's logging configuration does at any level), handled by caplog's handler alone and kept from
    propagating, so that the flood (and the secrets it is searched for) stays out of pytest's report and stderr;
    uvicorn's access log is one of them, at DEBUG where the server would log it at INFO. A logger made later
    propagates to the root logger, which caplog also handles, at DEBUG."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        caplog.set_level(logging.DEBUG)
        logging.root.addHandler(caplog.handler)
        self._saved: list[tuple[logging.Logger, int, bool, list[logging.Handler]]] = []
        for logger in list(logging.root.manager.loggerDict.values()):
            if isinstance(logger, logging.Logger):
                self._saved.append((logger, logger.level, logger.propagate, list(logger.handlers)))
                logger.handlers = [caplog.handler]
                logger.propagate = False
                logger.setLevel(logging.DEBUG)
        quiet_libraries()

    def close(self) -> None:
        for logger, level, propagate, handlers in self._saved:
            logger.handlers = handlers
            logger.propagate = propagate
            logger.setLevel(level)
        logging.root.removeHandler(self.caplog.handler)

    def places(self, api_url: str) -> Iterator[tuple[str, str]]:
        """Each record as "logger [LEVEL] thread" and its text (with its traceback). Left out: HTTP clients'
        lines about requests *to* the front door, which the callers (this test, and the sandboxes standing in
        for the CRM, Angi and the gateway) log, not Ledgerflow; the API's own access log stays in."""
        formatter = logging.Formatter()
        for record in self.caplog.records:
            try:
                message = record.getMessage()
            except Exception as error:  # a record that cannot format is looked at as it came
                message = f"{record.msg!r} {record.args!r} ({error})"
            if record.name.split(".")[0] in ("httpx", "httpcore", "urllib3") and api_url in message:
                continue
            if record.exc_info:
                message += "\n" + formatter.formatException(record.exc_info)
            yield f"log {record.name} [{record.levelname}] | thread {record.threadName}", message


def record_qbo_tokens(qbo_sandbox: ServerThread, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token the QBO sandbox issues from now on (its refresh tokens rotate, so the database keeps only the
    newest). The sandbox is served in this process: its token authority is reached through the server."""
    authority = qbo_sandbox._server.config.app.state.sandbox.tokens  # the test's own server
    issued: list[str] = []
    connect, refresh = authority.connect, authority.refresh

    def recording_connect(realm_id: str) -> str:
        issued.append(token := connect(realm_id))
        return token

    def recording_refresh(refresh_token: str) -> dict[str, object] | None:
        answer = refresh(refresh_token)
        if answer is not None:
            issued.extend([str(answer["access_token"]), str(answer["refresh_token"])])
        return answer

    monkeypatch.setattr(authority, "connect", recording_connect)
    monkeypatch.setattr(authority, "refresh", recording_refresh)
    return issued


async def woken_by_the_gateway(client: Client, workflow_id: str, seconds: float = 60) -> None:
    """Wait until the gateway's webhook has reached the debit's watch (its `gateway_event` signal)."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(int(seconds * 10)):
        events = (await handle.fetch_history()).events
        if any(e.workflow_execution_signaled_event_attributes.signal_name == "gateway_event" for e in events):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the gateway's webhook never reached {workflow_id}")


# -- the end-to-end scan ------------------------------------------------------------------------------------
@pytest.fixture
def scan_settings(e2e_settings: Settings, tmp_path: Path) -> Settings:
    """The shipped plans plus one calling a partner's webhook with a secret header; that secret in the settings."""
    directory = tmp_path / "plans"
    directory.mkdir()
    for shipped in (ROOT / "config" / "plans").glob("*.yaml"):
        shutil.copy(shipped, directory / shipped.name)
    plan_file(directory, "partner-hook", [
        {"id": "tell-partner", "type": "webhook", "url": f"{e2e_settings.sheets_api_url}/hooks/security-scan",
         "secret_headers": {"X-Partner-Token": PLAN_SECRET_NAME}, "body": {"contact": "{{ contact.first_name }}"}}])
    return e2e_settings.model_copy(update={
        "plans_dir": directory, "plan_secrets": {PLAN_SECRET_NAME: SecretStr(f"phk-{uuid.uuid4().hex}")}})


@pytest.fixture
def scan_api(scan_settings: Settings, engine: Engine) -> Iterator[ServerThread]:
    with ServerThread(create_app(scan_settings)) as server:
        yield server


async def test_no_secret_reaches_a_log_a_workflow_history_the_database_or_an_api_answer(
    dev_env: WorkflowEnvironment, scan_settings: Settings, scan_api: ServerThread, engine: Engine,
    account_realm: str, qbo_sandbox: ServerThread, executor: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, client = scan_settings, dev_env.client
    with Session(engine) as session:
        first = session.get(QboConnection, account_realm)
    assert first is not None
    issued = record_qbo_tokens(qbo_sandbox, monkeypatch)  # keeps filling as the sandbox issues more
    issued.insert(0, first.refresh_token)  # issued when the fixture connected the company
    connect_crm_account(settings, scan_api.url, engine, ACCOUNT, "Acme Home Services of Austin")
    answers: list[tuple[str, str]] = []

    async def keep_answer(response: httpx.Response) -> None:
        await response.aread()
        answers.append((f"API answer {response.request.method} {response.status_code}", response.text))

    shop = Shop(settings, engine, scan_api, ACCOUNT)
    api_key = shop.http.headers["X-API-Key"]
    shop.http.event_hooks = {"response": [keep_answer]}
    door = httpx.AsyncClient(base_url=scan_api.url, timeout=60, event_hooks={"response": [keep_answer]})
    angi_api_key = f"angi-{uuid.uuid4().hex}"
    angi_key = create_lead_key(engine, ACCOUNT, LeadChannel.ANGI, api_key=angi_api_key)
    web_key = create_lead_key(engine, ACCOUNT, LeadChannel.WEB_FORM)
    franchisor_gateway = GatewaySandboxAdmin(settings.gateway_api_url).create_merchant(
        "Acme Franchising LLC", f"acme-{uuid.uuid4().hex[:8]}")
    tag = uuid.uuid4().hex[:8]
    tap = LogTap(caplog)  # after every server started: each uvicorn.Config sets its loggers up again
    try:
        async with worker(dev_env, settings, executor):
            # A proposal's lifecycle through the CRM's signed webhooks, to its QBO invoice.
            proposal_id, state = await shop.invoiced(client)
            # A card payment and a bank debit; the gateway's nightly batch and its webhook; the card refunded.
            card, bank = shop.method("card"), shop.method("bank")
            for key, method, pm in ((f"card-{tag}", "card", card), (f"bank-{tag}", "bank", bank)):
                paid = await shop.pay(key, proposal_id=proposal_id, payment_method_id=pm, method=method,
                                      amount="10.00")
                assert paid.status_code == 200 and paid.json()["status"] == "charged", paid.text
            debit = shop.collection(f"bank-{tag}").transaction_id
            assert debit is not None
            shop.gateway.settle(shop.merchant)
            await woken_by_the_gateway(client, ach_workflow_id(ACCOUNT, debit))
            refund = await shop.http.post(f"/accounts/{ACCOUNT}/payments/card-{tag}/refund", json={})
            assert refund.status_code == 200, refund.text
            await settled(client, ACCOUNT, proposal_id,
                          lambda s: len(s.payments) == 2 and any(p.voided_in_qbo for p in s.payments))
            assert (await shop.balance(state.customer_id or ""))["total_balance"]
            # Leads: Angi on its own endpoint with its x-api-key, a web form with the account's web key.
            angi_who, form_who = person(), person()
            posted = [
                await door.post(f"/leads/angi/{angi_key}", json=angi_lead(angi_who),
                                headers={"x-api-key": angi_api_key}),
                await door.post("/leads/web-form", data={"web_key": web_key, "name": "Sam Ortiz",
                                                         "email": form_who["email"], "phone": form_who["phone"]}),
            ]
            assert [p.status_code for p in posted] == [200, 200], [p.text for p in posted]
            await until_settled(engine, [p.json()["receipt"] for p in posted])
            # A plan enrolled through the API: its webhook step carries the secret header to the partner.
            contact = shop.crm.create_contact(ACCOUNT, firstName="Robin", lastName=f"Hale{tag}",
                                              email=f"robin.{tag}@example.com")["client_id"]
            enrolled = await shop.http.post(f"/accounts/{ACCOUNT}/contacts/{contact}/plans",
                                            json={"plan_id": "partner-hook"})
            assert enrolled.status_code == 202, enrolled.text
            assert [t.step_id for t in (await result(dev_env, plan_workflow_id(
                ACCOUNT, contact, "partner-hook"))).taken] == ["tell-partner"]
            [hook] = PartnersSandboxAdmin(settings.sheets_api_url).requests(kind="hook", name="security-scan")[-1:]
            plan_secret = settings.plan_secrets[PLAN_SECRET_NAME].get_secret_value()
            assert hook["headers"]["x-partner-token"] == plan_secret  # the secret was used, so the scan means it
            # Inbound email and text, signed as the relay and Twilio sign them.
            mail = json.dumps({"message_id": f"<{tag}@example.com>", "from": f"robin.{tag}@example.com",
                               "subject": "Re: hello", "text": "Call me"}).encode()
            inbound = await door.post("/inbound/email", content=mail, headers={
                SIGNATURE_HEADER: sign(settings.inbound_email_secret.get_secret_value(), mail)})
            assert inbound.status_code == 200, inbound.text
            text_params = {"From": f"+1512555{int(tag, 16) % 10**4:04d}", "To": settings.twilio_from_number,
                           "Body": "Thanks", "MessageSid": f"SM{tag}"}
            text_signature = twilio_signature(f"{scan_api.url}/inbound/sms", text_params,
                                              settings.twilio_auth_token.get_secret_value())
            texted = await door.post("/inbound/sms", data=text_params,
                                     headers={TWILIO_SIGNATURE_HEADER: text_signature})
            assert texted.status_code == 200, texted.text
            # The night's royalty with an ACH debit through the franchisor's gateway account, and its report.
            gateway = GatewaySandboxAdmin(settings.gateway_api_url)
            banks = {account: gateway.add_payment_method(franchisor_gateway["id"], "bank", account)["id"]
                     for account in (ACCOUNT, OTHER)}
            franchisor_id = install_franchisor(settings, engine, payment_methods=banks, ach_debit=True)
            save_gateway_credentials(engine, franchisor_id, franchisor_gateway["api_key"])
            pay(engine, ACCOUNT, f"sec-{tag}", "412.50", date(2026, 11, 14))
            outcomes = await run_night(dev_env, settings, franchisor_id, NIGHT)
            assert outcomes[ACCOUNT].status == "check_written" and outcomes[ACCOUNT].debits, outcomes
            franchisor_key = create_api_key(engine, franchisor_id)
            report = await door.get(f"/franchisors/{franchisor_id}/royalty.json", headers={"X-API-Key": franchisor_key})
            assert report.status_code == 200, report.text
            audit = await shop.http.get(f"/accounts/{ACCOUNT}/audit", params={"include_bodies": "true"})
            assert audit.status_code == 200 and audit.json(), audit.text
        cli = [starter(settings, dev_env, "audit", "--account", ACCOUNT),
               starter(settings, dev_env, "royalty", "report", "--franchisor", franchisor_id)]
        assert [c.returncode for c in cli] == [0, 0], [c.stderr for c in cli]
    finally:
        tap.close()
        await door.aclose()
        await shop.http.aclose()

    crm = load_crm_credentials(engine, ACCOUNT)
    with Session(engine) as session:
        last = session.get(QboConnection, account_realm)
    assert crm is not None and last is not None and last.access_token is not None
    assert len(issued) >= 3  # the first refresh token, and at least one refresh's pair
    secrets = {
        **{f"QBO token #{n} the sandbox issued": token for n, token in enumerate(issued)},
        "QBO access token stored": last.access_token, "QBO refresh token stored": last.refresh_token,
        "CRM access token": crm.access_token, "CRM web key": crm.web_key,
        "gateway API key (franchisee)": shop.api_key, "gateway API key (franchisor)": franchisor_gateway["api_key"],
        "gateway webhook token (franchisee)": webhook_token(settings, ACCOUNT),
        "gateway webhook token (franchisor)": webhook_token(settings, franchisor_id),
        "API key (franchisee)": api_key, "API key (franchisor)": franchisor_key,
        "Angi lead key": angi_key, "Angi x-api-key": angi_api_key, "web-form lead key": web_key,
        **settings_secrets(settings),
    }
    histories, kinds = await history_texts(client, settings.task_queue)
    expected = {"ProposalWorkflow", "PaymentCollectionWorkflow", "AchSettlementWorkflow", "PaymentRefundWorkflow",
                "LeadIntakeWorkflow", "ActionPlanWorkflow", "RoyaltyRunWorkflow", "FranchiseeRoyaltyWorkflow"}
    assert expected <= kinds, f"the scan missed runs: {expected - kinds}"
    found = {
        "workflow histories": leaks(histories.items(), secrets),
        "logs": leaks(tap.places(scan_api.url), secrets),
        "database rows": leaks(database_rows(engine), secrets),
        "API answers": leaks(answers, secrets),
        "CLI output": leaks([(f"starter.py {' '.join(c.args[2:4])}", c.stdout + c.stderr) for c in cli], secrets),
    }
    assert len(caplog.records) > 100 and len(histories) > 10 and answers  # the scan looked at something
    assert not any(found.values()), "secrets leaked:\n" + "\n".join(
        f"== {place}\n" + "\n".join(items) for place, items in found.items() if items)


# -- at rest -------------------------------------------------------------------------------------------------
def test_stored_tokens_are_encrypted_and_keys_are_stored_as_digests_only(
    settings: Settings, engine: Engine, realm_id: str
) -> None:
    connector = QboConnector(settings, engine)
    connector.client(realm_id)  # the first use refreshes: the access token and the rotated refresh token stored
    with Session(engine) as session:
        connection = session.get(QboConnection, realm_id)
    assert connection is not None and connection.access_token and connection.refresh_token
    crm_token, crm_web_key = f"CT-{uuid.uuid4().hex}", f"WK-{uuid.uuid4().hex}"
    save_crm_credentials(engine, ACCOUNT, crm_token, crm_web_key)
    gateway_key = f"stax_{uuid.uuid4().hex}"
    save_gateway_credentials(engine, ACCOUNT, gateway_key)
    api_key = create_api_key(engine, ACCOUNT)
    angi_api_key = f"angi-{uuid.uuid4().hex}"
    lead_key = create_lead_key(engine, ACCOUNT, LeadChannel.ANGI, api_key=angi_api_key)
    plaintexts = {"QBO access token": connection.access_token, "QBO refresh token": connection.refresh_token,
                  "CRM access token": crm_token, "CRM web key": crm_web_key, "gateway API key": gateway_key,
                  "API key": api_key, "lead key": lead_key, "Angi x-api-key": angi_api_key}

    assert leaks(database_rows(engine), plaintexts) == []
    fernet = Fernet(get_settings().secret_key.get_secret_value().encode())  # what models/encrypted.py uses
    with engine.connect() as db:
        stored = db.execute(text("SELECT access_token, refresh_token FROM qbo_connection WHERE realm_id = :r"),
                            {"r": realm_id}).one()
        crm = db.execute(text("SELECT access_token, web_key FROM crm_credential WHERE account_id = :a"),
                         {"a": ACCOUNT}).one()
        gateway = db.execute(text("SELECT api_key FROM gateway_credential WHERE account_id = :a"),
                             {"a": ACCOUNT}).one()
        digests = {row[0] for row in db.execute(text("SELECT key_hash FROM api_key"))}
        lead_digests = db.execute(text("SELECT key_hash, api_key_hash FROM lead_key")).all()
    # Encrypted, not merely missing: each stored value decrypts to the token.
    assert [fernet.decrypt(v.encode()).decode() for v in (*stored, *crm, *gateway)] == [
        connection.access_token, connection.refresh_token, crm_token, crm_web_key, gateway_key]
    assert hash_key(api_key) in digests
    assert (hash_key(lead_key), hashlib.sha256(angi_api_key.encode()).hexdigest()) in [tuple(r) for r in lead_digests]


# -- recorded histories --------------------------------------------------------------------------------------
def test_recorded_histories_hold_no_secret_of_the_test_settings_nor_anything_shaped_like_an_issued_one(
    settings: Settings
) -> None:
    assert HISTORIES
    secrets = {**settings_secrets(settings),
               **{f"gateway webhook token of {a}": webhook_token(settings, a) for a in (ACCOUNT, OTHER, "acme")}}
    shapes = {name: re.compile(shape) for name, shape in ISSUED_SHAPES.items()}
    found = []
    for path in HISTORIES:
        content = path.read_text()
        texts = "\n".join([content, *readable(json.loads(content))])
        found += leaks([(path.name, texts)], secrets)
        found += [f"{path.name}: something shaped like a {name}" for name, shape in shapes.items()
                  if shape.search(texts)]
    assert found == []


# -- one franchisee, another's path -------------------------------------------------------------------------
async def not_started(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        return error.status == RPCStatusCode.NOT_FOUND
    return False


async def test_a_franchisee_can_neither_read_nor_write_another_franchisees_account(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, api: ServerThread
) -> None:
    austin, denver, franchisor = (create_api_key(engine, a) for a in (ACCOUNT, OTHER, "acme"))
    tag = uuid.uuid4().hex[:8]
    pay_key, contact, customer, proposal = f"iso-{tag}", f"C-{tag}", f"CU-{tag}", f"P-{tag}"
    payment = {"proposal_id": proposal, "payment_method_id": "pm-1", "method": "card", "amount": "10.00"}
    later = (austin_today() + timedelta(days=7)).isoformat()
    writes = [
        ("POST", f"/accounts/{OTHER}/payments", payment, {"Idempotency-Key": pay_key}),
        ("POST", f"/accounts/{OTHER}/payments/{pay_key}/refund", {}, {}),
        ("POST", f"/accounts/{OTHER}/scheduled-payments",
         {**payment, "schedule_id": pay_key, "pay_on": later}, {}),
        ("PATCH", f"/accounts/{OTHER}/scheduled-payments/{pay_key}", {"pay_on": later}, {}),
        ("DELETE", f"/accounts/{OTHER}/scheduled-payments/{pay_key}", None, {}),
        ("POST", f"/accounts/{OTHER}/contacts/{contact}/plans", {"plan_id": "web-lead-connection"}, {}),
        ("POST", f"/accounts/{OTHER}/contacts/{contact}/plans/web-lead-connection/cancel", {"reason": "x"}, {}),
        ("PUT", f"/accounts/{OTHER}/customers/{customer}/autopay", {"configs": []}, {}),
        ("PUT", f"/accounts/{OTHER}/invoices/INV-{tag}/autopay", {"excluded": True}, {}),
        ("POST", f"/accounts/{OTHER}/autopay-cycles", {}, {}),
        ("POST", f"/accounts/{OTHER}/proposals/{proposal}/retry", None, {}),
        ("POST", f"/accounts/{OTHER}/sync", None, {}),
    ]
    reads = [("GET", f"/accounts/{OTHER}{path}", None, {}) for path in (
        "/proposals", f"/proposals/{proposal}", "/audit", "/leads", "/royalty", "/royalty.json", "/royalty.csv",
        "/royalty/charges/1.json", f"/customers/{customer}/balance", "/open-invoices", f"/customers/{customer}/autopay",
        f"/payments/{pay_key}", f"/scheduled-payments/{pay_key}", f"/contacts/{contact}/plans/web-lead-connection")]
    revoked = create_api_key(engine, ACCOUNT)
    revoke_api_key(engine, revoked[:8])
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        async def answer(method: str, path: str, body: Any, headers: dict[str, str], key: str | None) -> int:
            sent = {**headers, **({"X-API-Key": key} if key else {})}
            return (await http.request(method, path, json=body, headers=sent)).status_code

        for method, path, body, headers in writes + reads:
            got = {who: await answer(method, path, body, headers, key) for who, key in (
                ("austin's key", austin), ("no key", None), ("an unknown key", "lf_" + uuid.uuid4().hex),
                ("austin's key, altered", austin[:-1] + ("A" if austin[-1] != "A" else "B")),
                ("austin's revoked key", revoked))}
            assert got == {"austin's key": 403, "no key": 401, "an unknown key": 401,
                           "austin's key, altered": 401, "austin's revoked key": 401}, (method, path, got)

        # Its own account and its franchisor's reach are kept: the refusals above are about the account.
        assert await answer("GET", f"/accounts/{OTHER}/proposals", None, {}, denver) == 200
        assert await answer("GET", f"/accounts/{OTHER}/proposals", None,
                            {"Authorization": f"Bearer {franchisor}"}, None) == 200
        assert await answer("GET", "/franchisors/acme/royalty.json", None, {}, austin) == 403
        assert await answer("GET", "/accounts/no-such-account/proposals", None, {}, austin) == 404
        assert await answer("GET", "/accounts/no-such-account/proposals", None, {}, None) == 401

        # Austin's webhook secret signs nothing for Denver; a body for Denver is not taken on Austin's path.
        secret = e2e_settings.crm_webhook_secrets[ACCOUNT].get_secret_value()
        event = factories.sales_cycle_change(event_id=f"evt-{tag}", account_id=OTHER, proposal_id=proposal)
        body = event.model_dump_json().encode()
        signed = {SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"}
        assert (await http.post(f"/crm/{OTHER}/sales-cycle", content=body, headers=signed)).status_code == 401
        assert (await http.post(f"/crm/{ACCOUNT}/sales-cycle", content=body, headers=signed)).status_code == 422
        # Austin's gateway webhook address does not open Denver's.
        token = webhook_path(e2e_settings, ACCOUNT).rsplit("/", 1)[1]
        nudge = await http.post(f"/webhooks/gateway/{OTHER}/{token}", json={"id": "txn-1"},
                                headers={EVENT_HEADER: "update_transaction_settled"})
        assert nudge.status_code == 404
        # A lead key opens only its own channel.
        angi = create_lead_key(engine, ACCOUNT, LeadChannel.ANGI)
        assert (await http.post(f"/leads/zapier/{angi}", json={"name": "Dana Reyes"})).status_code == 404

    client = dev_env.client
    for workflow_id in (collection_workflow_id(OTHER, pay_key), refund_workflow_id(OTHER, pay_key),
                        scheduled_workflow_id(OTHER, pay_key), plan_workflow_id(OTHER, contact, "web-lead-connection"),
                        proposal_workflow_id(OTHER, proposal), proposal_workflow_id(ACCOUNT, proposal)):
        assert await not_started(client, workflow_id), f"{workflow_id} was started"
    with Session(engine) as session:
        assert load_configs(session, OTHER, customer) == []


# -- behind a proxy ------------------------------------------------------------------------------------------
async def test_behind_a_proxy_a_text_is_taken_when_signed_over_the_public_url_and_not_over_the_served_one(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine
) -> None:
    public = "https://hooks.example.com"
    settings = e2e_settings.model_copy(update={"api_public_url": public})
    params = {"From": "+15125550187", "To": settings.twilio_from_number, "Body": "Thanks",
              "MessageSid": f"SM{uuid.uuid4().hex}"}
    token = settings.twilio_auth_token.get_secret_value()
    with ServerThread(create_app(settings)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async def texted(signed_url: str) -> int:
                signature = twilio_signature(signed_url, params, token)
                return (await http.post("/inbound/sms", data=params,
                                        headers={TWILIO_SIGNATURE_HEADER: signature})).status_code

            assert await texted(f"{server.url}/inbound/sms") == 403  # what the proxy's Host header made of it
            assert await texted(f"{public}/inbound/sms") == 200  # what Twilio called, and signed
