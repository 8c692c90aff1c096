"""Helpers for end-to-end tests: the worker as it ships, starter.py as an operator runs it, waiting for a
proposal's workflow to settle, posting signed CRM events."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from config.temporal import pollers
from models.crm_webhooks import SIGNATURE_HEADER, sign
from models.proposals import ProposalState, proposal_workflow_id
from worker import build_worker
from workflows.proposal import ProposalWorkflow

ROOT = Path(__file__).parent.parent
# The front door's path for each kind of CRM event.
EVENT_PATHS = {"SalesCycleChange": "sales-cycle", "ProposalChanged": "proposal", "PaymentAdded": "payment",
               "PaymentVoided": "payment-voided"}


def worker(dev_env: WorkflowEnvironment, settings: Settings, executor: ThreadPoolExecutor) -> Any:
    """The worker as it ships, replaying every task (a nondeterministic change fails the test at once)."""
    return build_worker(dev_env.client, settings, executor, max_cached_workflows=0,
                        workflow_failure_exception_types=[workflow.NondeterminismError])


# What a worker process of a test needs from the test's settings, passed as operators pass them: the environment.
WORKER_SETTINGS = ("database_url", "data_dir", "temporal_address", "task_queue", "plans_dir", "qbo_sandbox_port",
                   "crm_sandbox_port", "gateway_sandbox_port", "smtp_port", "sms_sandbox_port",
                   "partners_sandbox_port", "qbo_throttle_retry_seconds", "qbo_http_timeout_seconds",
                   "qbo_activity_timeout", "crm_http_timeout_seconds", "lead_settle_time")


def process_env(settings: Settings, names: tuple[str, ...]) -> dict[str, str]:
    """This process's environment with the settings `names` of the test's settings in place of any of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    for name in names:
        value = getattr(settings, name)
        as_text = f"PT{value.total_seconds()}S" if isinstance(value, timedelta) else str(value)
        env[f"LEDGERFLOW_{name.upper()}"] = as_text
    return env


def worker_process(settings: Settings) -> subprocess.Popen[bytes]:
    """`python worker.py` as operators run it, configured through the environment from the test's settings;
    its log appended to `workers.log` in the test's data directory."""
    with (settings.data_dir / "workers.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=process_env(settings, WORKER_SETTINGS),
                                stdout=log, stderr=log)


async def polling(client: Client, task_queue: str, workers: int, seconds: float = 60) -> set[str]:
    """Wait until `workers` workers (by identity) poll the task queue for activities; their identities. A worker
    process takes seconds to start on a busy machine: work posted before it polls all goes to the first."""
    for _ in range(int(seconds * 10)):
        identities = await pollers(client, task_queue, activities=True)
        if len(identities) >= workers:
            return identities
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workers} workers never polled {task_queue}; polling: {identities}")


def starter(settings: Settings, dev_env: WorkflowEnvironment, *args: str,
            stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`starter.py ARGS` in its own process, on this test's database, task queue and dev server."""
    env = process_env(settings, ("database_url", "task_queue"))
    env["LEDGERFLOW_TEMPORAL_ADDRESS"] = dev_env.client.service_client.config.target_host
    return subprocess.run([sys.executable, "starter.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          input=stdin, timeout=120, check=False)


async def settled(client: Client, account_id: str, proposal_id: str,
                  done: Callable[[ProposalState], Any] = lambda _state: True, seconds: float = 60) -> ProposalState:
    """The proposal's state once `done` holds and its workflow has nothing left to do."""
    handle = client.get_workflow_handle(proposal_workflow_id(account_id, proposal_id))
    state = None
    for _ in range(int(seconds * 10)):
        try:
            state = await handle.query(ProposalWorkflow.state)
            if done(state) and not await handle.query(ProposalWorkflow.busy):
                return state
        except RPCError:
            pass  # not started yet: the webhook is still on its way
        await asyncio.sleep(0.1)
    raise AssertionError(f"proposal {proposal_id} never settled: {state}")


async def post_event(api_url: str, settings: Settings, event: BaseModel) -> httpx.Response:
    """POST a CRM event to the front door, signed as the CRM signs it."""
    body = event.model_dump_json().encode()
    account_id = str(getattr(event, "account_id", None) or event.change.account_id)  # type: ignore[attr-defined]
    secret = settings.crm_webhook_secrets[account_id].get_secret_value()
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        return await http.post(f"/crm/{account_id}/{EVENT_PATHS[type(event).__name__]}", content=body,
                               headers={SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"})
