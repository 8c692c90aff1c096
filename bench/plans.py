"""Action plan enrollments at volume: `--contacts` contacts of one CRM account enrolled in a plan whose first
step is a long wait, through dispatch.enroll_contact and the worker as it ships (CRM sandbox, SQLite ledger,
the Temporal dev server on a SQLite file). Prints enrollments per second (enrolled to waiting on the timer)
and the worker's memory, beside a no-op workflow with the same activities and timer, measured in the same run.

    .venv/bin/python -m bench.plans [--contacts 10000] [--concurrency 50] [--timeout 3600]
"""

import argparse
import asyncio
import resource
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, func
from sqlmodel import Session, select
from temporalio import activity
from temporalio.client import Client

from bench.embedded import NOOP_QUEUE, bench_stack, noop_worker, serve_process
from bench.noop import NoopTimerWorkflow
from bench.result import BenchResult, add_json_option, finish, rate, ratio_of
from config.network import install_network, load_network
from config.settings import Settings
from dispatch import enroll_contact
from models.crm_credentials import save_crm_credentials
from models.plan_enrollments import PlanEnrollment
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.serve import free_port
from worker import build_worker

ACCOUNT = "acme-austin"
# An enrollment's activities before its first timer: the contact from the CRM, the enrollment recorded.
ACTIVITIES_BEFORE_THE_WAIT = 2
PLAN = {"schema_version": 1, "id": "drip", "version": 1, "name": "Drip", "type": "connection", "steps": [
    {"id": "a-week", "type": "wait", "duration": "7d"},
    {"id": "hello", "type": "text", "body": "Hi {{ contact.first_name | fallback('there') }}"}]}


def rss_mib() -> float:
    """This process's resident memory now (the worker runs in it), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def crm_contacts(crm_url: str, engine: Engine, count: int) -> list[str]:
    """The account in the CRM sandbox, its keys stored, and `count` contacts: their ids."""
    crm = CrmSandboxAdmin(crm_url)
    account = crm.create_account(ACCOUNT, "Acme Home Services of Austin")
    save_crm_credentials(engine, ACCOUNT, account["access_token"], account["web_key"])
    return [str(crm.create_contact(ACCOUNT, firstName=f"Lead{n}", email=f"lead{n}@example.com",
                                   phone=f"512555{n % 10_000:04d}", smsok=True)["client_id"]) for n in range(count)]


COUNTED = [0]  # no-op activities run: what the no-op side is timed by


@activity.defn(name="noop_step")
async def counted(n: int) -> int:
    COUNTED[0] += 1
    return n


async def enroll_all(client: Client, settings: Settings, engine: Engine, contacts: list[str], gate: int) -> None:
    limit = asyncio.Semaphore(gate)

    async def one(contact_id: str) -> None:
        async with limit:
            await enroll_contact(client, settings, engine, ACCOUNT, contact_id, "drip", "bench")

    await asyncio.gather(*(one(c) for c in contacts))


async def until(count: Any, expected: int, what: str, deadline: float) -> bool:
    """Wait for `count()` to reach `expected`, saying how far it got every 15 s; False once `deadline`
    (monotonic) passes first, so a stuck run ends the benchmark instead of hanging it."""
    last = time.monotonic()
    while (seen := count()) < expected:
        if time.monotonic() > deadline:
            return False
        if time.monotonic() - last > 15:
            say(f"  {what}: {seen} of {expected}")
            last = time.monotonic()
        await asyncio.sleep(0.2)
    return True


async def run(contacts: int = 10_000, gate: int = 50, patience: float = 3600) -> BenchResult:
    """The benchmark at these sizes: its figures, checks and printed lines (the CLI and `python -m bench` both)."""
    port = free_port()  # the CRM sandbox in a process of its own, as make run has it: the worker's memory alone
    with serve_process(["-m", "sandbox.crm", "serve", "--port", str(port)], port) as crm_url:
        return await measure(crm_url, contacts, gate, time.monotonic() + patience)


async def measure(crm_url: str, contacts: int, gate: int, deadline: float) -> BenchResult:
    COUNTED[0] = 0
    real_seconds = noop_seconds = None
    async with bench_stack() as stack:
        plans_dir = Path(stack.settings.data_dir) / "plans"
        plans_dir.mkdir()
        (plans_dir / "drip.yaml").write_text(yaml.safe_dump(PLAN))
        settings = stack.settings.model_copy(update={"crm_api_url": crm_url, "plans_dir": plans_dir})
        engine, client = stack.engine, stack.env.client
        install_network(engine, load_network(settings.network_file))
        say(f"creating {contacts} contacts in the CRM sandbox ...")
        ids = crm_contacts(crm_url, engine, contacts)

        def recorded() -> int:
            with Session(engine) as session:
                return int(session.exec(select(func.count()).select_from(PlanEnrollment)).one())

        with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
            memory_before = rss_mib()
            async with build_worker(client, settings, executor):
                say(f"enrolling {contacts} contacts, {gate} at a time ...")
                started = time.monotonic()
                await enroll_all(client, settings, engine, ids, gate)
                if await until(recorded, contacts, "enrollments waiting", deadline):
                    real_seconds = time.monotonic() - started
                memory_real, waiting = rss_mib(), recorded()
            async with noop_worker(client, settings, [NoopTimerWorkflow], [counted], activity_executor=executor):
                say(f"no-op: {contacts} workflows, {ACTIVITIES_BEFORE_THE_WAIT} activities and a timer each ...")
                started = time.monotonic()
                limit = asyncio.Semaphore(gate)

                async def start(n: int) -> None:
                    async with limit:
                        await client.start_workflow(NoopTimerWorkflow.run, args=[ACTIVITIES_BEFORE_THE_WAIT, 7],
                                                    id=f"noop-timer-{n}-{uuid.uuid4().hex[:6]}",
                                                    task_queue=NOOP_QUEUE)

                await asyncio.gather(*(start(n) for n in range(contacts)))
                if await until(lambda: COUNTED[0], contacts * ACTIVITIES_BEFORE_THE_WAIT, "no-op activities",
                               deadline):
                    noop_seconds = time.monotonic() - started
                memory_noop = rss_mib()
    memory = {"before": memory_before, "waiting": memory_real, "after_noop": memory_noop}
    return result(contacts, gate, real_seconds, noop_seconds, waiting, memory)


def result(contacts: int, gate: int, real_seconds: float | None, noop_seconds: float | None, waiting: int,
           memory: dict[str, float]) -> BenchResult:
    """The figures and the lines the CLI prints."""
    out = BenchResult(
        name="plans", sizes={"contacts": contacts, "concurrency": gate}, unit="enrollments/s",
        real_rate=rate(contacts, real_seconds), real_seconds=real_seconds, noop_rate=rate(contacts, noop_seconds),
        noop_seconds=noop_seconds, ratio=ratio_of(real_seconds, noop_seconds),
        extra={"worker_rss_mib": memory, "enrollments_waiting": waiting})
    if real_seconds is None:
        out.fail(f"{waiting} of {contacts} enrollments recorded before the timeout")
    if noop_seconds is None:
        out.fail(f"the no-op run did not finish before the timeout ({COUNTED[0]} activities)")
    line = out.text.append
    line(f"Action plan enrollments, {contacts} contacts, {gate} enrollments in flight, each to its first wait "
         f"({ACTIVITIES_BEFORE_THE_WAIT} activities, then a 7-day timer):")
    if real_seconds is None or noop_seconds is None:
        line("  TIMED OUT: " + "; ".join(out.reasons))
    else:
        line(f"  real {contacts / real_seconds:.1f} enrollments/s ({real_seconds:.1f} s)   no-op "
             f"{contacts / noop_seconds:.1f}/s ({noop_seconds:.1f} s)   "
             f"ratio real/no-op {noop_seconds / real_seconds:.2f}")
    line(f"  worker process memory (RSS): {memory['before']:.0f} MiB before, {memory['waiting']:.0f} MiB with "
         f"{waiting} enrollments waiting, {memory['after_noop']:.0f} MiB after the no-op run as well")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50, help="enrollments started at once")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before giving up (exit 1)")
    add_json_option(parser)
    args = parser.parse_args()
    sys.exit(finish(asyncio.run(run(args.contacts, args.concurrency, args.timeout)), args.json))
