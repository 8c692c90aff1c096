"""The worker's Prometheus endpoint and its JSON logs, end to end: the worker as it ships (worker.build_worker) on
a client of its own metrics runtime, a proposal's whole lifecycle through the API, the dev server and the QBO
sandbox with one 429 injected; then /metrics scraped over HTTP. The SDK's own metrics are there, and
Ledgerflow's counters equal what QBO holds, what the audit log recorded and what Temporal's history shows."""

import asyncio
import dataclasses
import io
import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity, workflow
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities import metrics
from activities.leads import LeadActivities
from activities.quickbooks import QuickBooksActivities
from activities.royalty_ledger import RoyaltyLedgerActivities
from config.log_format import business_context, configure_logging, redact
from config.settings import Settings
from config.temporal import connect, metrics_runtime
from models.audit import QboAuditLog
from models.lead_receipts import Outcome, record_receipt
from models.leads import ReceiptSettled
from models.ledger import LedgerPayment
from models.proposals import proposal_workflow_id
from models.royalty import CheckWritten, ClaimInput
from sandbox.qbo.admin import dump_company, set_faults
from sandbox.serve import ServerThread, free_port
from tests.e2e import post_event, settled
from tests.test_lifecycle_e2e import scenario
from worker import build_worker

ACCOUNT = "acme-austin"
QBO_ACTIVITIES = {name for name, fn in vars(QuickBooksActivities).items()
                  if hasattr(fn, "__temporal_activity_definition")}
SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclasses.dataclass
class Scrape:
    """One read of /metrics: (name, labels, value) per sample."""

    samples: list[tuple[str, dict[str, str], float]]

    @classmethod
    def read(cls, port: int) -> "Scrape":
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).raise_for_status().text
        samples = []
        for line in text.splitlines():
            match = SAMPLE.match(line)
            if match and not line.startswith("#"):
                name, labels, value = match.groups()
                samples.append((name, dict(LABEL.findall(labels or "")), float(value)))
        return cls(samples)

    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}

    def total(self, name: str, **labels: str) -> float:
        return sum(value for n, have, value in self.samples
                   if n == name and all(have.get(k) == v for k, v in labels.items()))

    def by(self, name: str, *keys: str, **labels: str) -> dict[tuple[str, ...], float]:
        found: Counter[tuple[str, ...]] = Counter()
        for n, have, value in self.samples:
            if n == name and all(have.get(k) == v for k, v in labels.items()) and value:
                found[tuple(have.get(k, "") for k in keys)] += value  # type: ignore[assignment]
        return dict(found)


async def scrape_until(port: int, ready: Callable[[Scrape], bool], seconds: float = 15) -> Scrape:
    """The endpoint once `ready` holds (the SDK records a task's metrics as it completes it)."""
    for _ in range(int(seconds * 10)):
        scrape = Scrape.read(port)
        if ready(scrape):
            return scrape
        await asyncio.sleep(0.1)
    return scrape


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The process's logs as the worker configures them (JSON, INFO and above) while the test runs; pytest's
    own handlers and the SDK loggers' settings back after."""
    out, root = io.StringIO(), logging.getLogger()
    saved = (root.handlers[:], root.level, activity.logger.activity_info_on_message,
             workflow.logger.workflow_info_on_message)
    configure_logging("json", "INFO", stream=out)
    yield out
    (root.handlers[:], root.level, activity.logger.activity_info_on_message,
     workflow.logger.workflow_info_on_message) = saved


@pytest.fixture
def e2e_settings(e2e_settings: Settings) -> Settings:
    """A quiet proposal's workflow finishes after a few seconds, so the SDK counts it completed."""
    return e2e_settings.model_copy(update={"proposal_idle_timeout": timedelta(seconds=5)})


async def test_the_worker_serves_the_sdks_metrics_and_counters_that_match_the_books(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, account_realm: str, api: ServerThread,
    json_logs: io.StringIO,
) -> None:
    settings, port = e2e_settings, free_port()
    # A runtime and a client of the test's own: the endpoint belongs to a runtime, and dev_env's is the default.
    client = await connect(settings, runtime=metrics_runtime(f"127.0.0.1:{port}"))
    proposal_id = f"M-{uuid.uuid4().hex[:8]}"
    workflow_id = proposal_workflow_id(ACCOUNT, proposal_id)
    before = dump_company(settings.qbo_api_url, account_realm)["objects"]
    set_faults(settings.qbo_api_url, account_realm, queued=["429"])  # the company's next QBO call is throttled
    try:
        with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
            async with build_worker(client, settings, executor, max_cached_workflows=0,
                                    workflow_failure_exception_types=[workflow.NondeterminismError]):
                for event in scenario(proposal_id):
                    assert (await post_event(api.url, settings, event)).status_code == 202
                await settled(client, ACCOUNT, proposal_id, seconds=90, done=lambda s: s.invoice_id and all(
                    p.applied is not None or p.voided for p in s.payments))
                handle = client.get_workflow_handle(workflow_id)
                await asyncio.wait_for(handle.result(), timeout=60)  # idle: the run ends
                scrape = await scrape_until(port, lambda s: s.total(
                    "temporal_workflow_completed", workflow_type="ProposalWorkflow", task_queue=settings.task_queue))
    finally:
        set_faults(settings.qbo_api_url, account_realm)
    queue = {"task_queue": settings.task_queue}

    # The SDK's own metrics, as it names them (no _total suffix, latencies in milliseconds).
    assert scrape.total("temporal_workflow_completed", workflow_type="ProposalWorkflow", **queue) == 1
    assert scrape.total("temporal_activity_execution_latency_count", activity_type="ensure_estimate", **queue) >= 1
    assert scrape.total("temporal_workflow_task_execution_latency_count", workflow_type="ProposalWorkflow",
                        **queue) >= 1
    assert {"temporal_activity_schedule_to_start_latency_count", "temporal_worker_task_slots_available",
            "temporal_request", "temporal_num_pollers"} <= scrape.names()

    # Every object the lifecycle made in the QBO company was counted as one create, and nothing else was.
    after = dump_company(settings.qbo_api_url, account_realm)["objects"]
    made = {(entity,): len(after[entity]) - len(before.get(entity, [])) for entity in after}
    assert scrape.by(metrics.QBO_WRITES, "entity", operation="create", outcome="ok", **queue) == {
        k: v for k, v in made.items() if v}
    assert {k for k, v in made.items() if v} >= {("Customer",), ("Estimate",), ("Invoice",), ("Payment",)}
    # Every write (creates, updates, the void) counted as the audit log recorded it, by outcome.
    with Session(engine) as session:
        audit = Counter((row.entity, row.operation, row.status) for row in session.exec(
            select(QboAuditLog).where(QboAuditLog.realm_id == account_realm)))
    assert scrape.by(metrics.QBO_WRITES, "entity", "operation", "outcome", **queue) == dict(audit)
    applied = [p for p in after["Payment"] if p.get("Line")]  # pay-1 and pay-3, each applied by an update
    assert len(applied) == 2 and audit[("Payment", "update", "ok")] >= 2

    # The 429 was counted once; every retried QBO attempt was counted, as many as Temporal's history shows:
    # the SDK counted the throttled ones failed, and left out the limiter's refusals (benign).
    assert scrape.total(metrics.QBO_THROTTLED, **queue) == 1
    retried = sum(max(0, e.activity_task_started_event_attributes.attempt - 1)
                  for e in await _qbo_task_events(handle))
    failed = sum(scrape.total("temporal_activity_execution_failed", activity_type=name, **queue)
                 for name in QBO_ACTIVITIES)
    busy = scrape.total(metrics.QBO_REALM_BUSY, **queue)
    assert retried >= 1
    assert scrape.total(metrics.QBO_RETRIES, **queue) == retried == failed + busy
    assert scrape.total(metrics.QBO_THROTTLED, **queue) + busy == retried

    # The logs: one JSON object a line; the throttled attempt's line names its workflow, run and account.
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    [throttled] = [line for line in lines if line["message"] == "Completing activity as failed"
                   and "ThrottleExceeded" in line.get("exception", "")]
    assert throttled["workflow_id"] == workflow_id and throttled["account_id"] == ACCOUNT
    assert throttled["run_id"] and throttled["activity_type"] in QBO_ACTIVITIES and throttled["attempt"] == 1
    assert throttled["level"] == "WARNING" and throttled["logger"] == "temporalio.activity"
    text = json_logs.getvalue()
    for secret in (settings.qbo_client_secret, settings.secret_key, *settings.crm_webhook_secrets.values()):
        assert secret.get_secret_value() not in text


async def _qbo_task_events(handle) -> list:  # type: ignore[no-untyped-def, type-arg]
    """The ActivityTaskStarted events of QBO activities: each carries the attempt that finished."""
    history = await handle.fetch_history()
    kinds = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
             if e.HasField("activity_task_scheduled_event_attributes")}
    return [e for e in history.events if e.HasField("activity_task_started_event_attributes")
            and kinds[e.activity_task_started_event_attributes.scheduled_event_id] in QBO_ACTIVITIES]


async def test_royalty_counters_count_each_check_once_with_its_fees_in_cents(engine: Engine,
                                                                            franchisor_id: str) -> None:
    """Through the SDK's ActivityEnvironment on a metrics runtime's meter: a charge claimed, its check recorded
    twice (a retried activity); counted once, with the amounts the charge holds."""
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")  # held: the endpoint goes with its runtime
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    env.info = dataclasses.replace(env.info, workflow_id=f"royalty:{franchisor_id}:2026-11-20:{ACCOUNT}")
    with Session(engine) as session:
        for n, amount in enumerate(("1234.55", "99.99")):
            session.add(LedgerPayment(account_id=ACCOUNT, crm_payment_id=f"R-{uuid.uuid4().hex[:6]}-{n}",
                                      proposal_id="P-1", amount=Decimal(amount), tip=Decimal(0),
                                      convenience_fee=Decimal(0), received_on=date(2026, 11, 1), method="card"))
        session.commit()
    ledger = RoyaltyLedgerActivities(engine)
    plan = env.run(ledger.load_royalty_plan, franchisor_id)
    [franchisee] = [f for f in plan.franchisees if f.account_id == ACCOUNT]
    claimed = env.run(ledger.claim_royalty_charge, ClaimInput(
        run_id=f"royalty:{franchisor_id}:2026-11-20", business_date=date(2026, 11, 20),
        eligible_through=date(2026, 11, 10), terms=plan.terms, franchisee=franchisee))
    charge = claimed.charge
    assert charge.royalty_due > 0 and charge.marketing_due > 0
    written = CheckWritten(charge_id=charge.charge_id, check_id="77", check_number=str(charge.check_number))
    env.run(ledger.record_royalty_check, written)
    env.run(ledger.record_royalty_check, written)  # already written: not counted again

    scrape = Scrape.read(port)
    assert scrape.total(metrics.ROYALTY_CHECKS, franchisor=franchisor_id) == 1
    assert scrape.by(metrics.ROYALTY_CENTS, "fee", franchisor=franchisor_id) == {
        ("royalty",): float(charge.royalty_due * 100), ("marketing",): float(charge.marketing_due * 100)}


def test_lead_receipts_are_counted_by_outcome(settings: Settings, engine: Engine) -> None:
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    leads = LeadActivities(settings, engine)
    for outcome in (Outcome.CREATED, Outcome.DUPLICATE, Outcome.DUPLICATE):
        receipt = record_receipt(engine, ACCOUNT, "angi", f"L-{uuid.uuid4().hex[:6]}", "Sam")
        assert receipt.id is not None
        env.run(leads.settle_lead_receipt, ReceiptSettled(receipt_id=receipt.id, outcome=outcome.value))
    assert Scrape.read(port).by(metrics.LEAD_RECEIPTS, "outcome") == {("created",): 1, ("duplicate",): 2}


def test_counters_outside_an_activity_record_nothing_and_never_fail() -> None:
    assert not activity.in_activity()
    metrics.qbo_write("Customer", "create", "ok")
    metrics.qbo_attempt()
    metrics.royalty_check_written("acme", Decimal("1.00"), Decimal("0.50"))
    ActivityEnvironment().run(metrics.qbo_throttled)  # the SDK's no-op meter


def test_a_log_line_from_inside_an_activity_is_one_json_object_with_its_workflow_and_account(
        json_logs: io.StringIO) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=f"proposal:{ACCOUNT}:P-9", workflow_run_id="run-1",
                                   activity_type="ensure_estimate", workflow_type="ProposalWorkflow")

    def work() -> None:
        activity.logger.info("estimate %s written", "E-1")
        logging.getLogger("ledgerflow.somewhere").warning("plain logger, token=abc123 and Bearer xyz")

    env.run(work)
    logging.getLogger("ledgerflow.outside").info("no activity here")
    out = json_logs
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "estimate E-1 written"  # the context in fields, not appended to the message
    for line in (first, second):
        assert line["workflow_id"] == f"proposal:{ACCOUNT}:P-9" and line["account_id"] == ACCOUNT
        assert line["run_id"] == "run-1" and line["activity_type"] == "ensure_estimate" and line["attempt"] == 1
    assert second["message"] == "plain logger, token=*** and Bearer ***" and second["level"] == "WARNING"
    assert third == {"time": third["time"], "level": "INFO", "logger": "ledgerflow.outside",
                     "message": "no activity here"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", third["time"])


def test_business_keys_name_their_account_and_franchisor() -> None:
    assert business_context("lead:acme-austin:angi:L-1") == {"account_id": "acme-austin"}
    assert business_context("plan:acme-denver:C-1:estimate-follow-up") == {"account_id": "acme-denver"}
    assert business_context("reconcile:acme-austin-2026-11-18T06:00:00Z") == {"account_id": "acme-austin"}
    assert business_context("royalty:acme:2026-11-18") == {"franchisor_id": "acme"}
    assert business_context("royalty:acme:2026-11-18:acme-austin") == {"franchisor_id": "acme",
                                                                         "account_id": "acme-austin"}
    assert business_context("royalty-nightly:acme-2026-11-18T04:00:00Z") == {"franchisor_id": "acme"}
    assert business_context("something-else") == {}
    assert redact('{"access_token": "eyJabc", "refresh_token":"r1"} ?api_key=k1&x=1') == \
        '{"access_token": "***", "refresh_token":"***"} ?api_key=***&x=1'


@workflow.defn(sandboxed=False)
class LoggingWorkflow:
    @workflow.run
    async def run(self, note: str) -> None:
        workflow.logger.info("noting %s", note)


async def test_a_log_line_from_a_workflow_carries_its_workflow_run_and_account(
        dev_env: WorkflowEnvironment, json_logs: io.StringIO) -> None:
    task_queue, workflow_id = f"tq-{uuid.uuid4()}", f"plan:acme-denver:C-{uuid.uuid4().hex[:6]}:web-lead-connection"
    async with Worker(dev_env.client, task_queue=task_queue, workflows=[LoggingWorkflow]):
        handle = await dev_env.client.start_workflow(LoggingWorkflow.run, "E-1", id=workflow_id, task_queue=task_queue)
        await handle.result()
    [line] = [json.loads(line) for line in json_logs.getvalue().splitlines() if '"noting E-1"' in line]
    assert line["logger"] == "temporalio.workflow" and line["message"] == "noting E-1"  # nothing appended
    assert line["workflow_id"] == workflow_id and line["run_id"] == handle.result_run_id
    assert line["workflow_type"] == "LoggingWorkflow" and line["account_id"] == "acme-denver"
