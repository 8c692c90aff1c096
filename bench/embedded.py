"""The stack a benchmark runs on, all in a temporary directory: the Temporal dev server on a SQLite file (as
`make run` has it), the QBO sandbox on loopback, and a SQLite ledger with the schema. The QBO sandbox runs in a
process of its own, as `make run` has it, unless the benchmark brings an app to serve in its own process (to
count what the sandbox sees): then the sandbox shares the worker's interpreter, and its CPU."""

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.noop import NoopWorkflow
from config.settings import Settings, get_settings
from config.temporal import DEV_SERVER_ARGS
from config.workflow_bytecode import compile_workflow_modules
from config.workflow_runner import workflow_runner
from models import search_attributes
from models.db import create_tables, get_engine
from sandbox.serve import ServerThread, free_port


@dataclass(frozen=True)
class BenchStack:
    env: WorkflowEnvironment
    settings: Settings
    engine: Engine


NOOP_QUEUE = "bench-noop"


def noop_worker(client: Client, settings: Settings, workflows: Sequence[type],
                activities: Sequence[Callable[..., Any]], **options: Any) -> Worker:
    """The worker for a no-op ceiling, on NOOP_QUEUE: as many activity slots as the shipped worker and its
    workflow runner, so the ceiling differs from the real flow only by what the flow does."""
    return Worker(client, task_queue=NOOP_QUEUE, workflows=list(workflows), activities=list(activities),
                  max_concurrent_activities=settings.activity_slots,
                  workflow_runner=workflow_runner(client.data_converter), **options)


@contextmanager
def serve_process(args: list[str], port: int, env: dict[str, str] | None = None,
                  log: Path | None = None) -> Iterator[str]:
    """`python ARGS` serving HTTP on `port` in a process of its own (as `make run` runs the API and the
    sandboxes, each with an interpreter of its own), its output in `log`: its base URL once `/healthz` answers."""
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, *args], env={**os.environ, **(env or {})},
                               stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(args)} exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{' '.join(args)} did not answer on {url}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        if log is not None:
            output.close()  # type: ignore[union-attr]


@contextmanager
def qbo_sandbox(qbo_app: Any | None) -> Iterator[str]:
    """The QBO sandbox's base URL: `qbo_app` served in this process, or `python -m sandbox.qbo` in its own."""
    if qbo_app is not None:
        with ServerThread(qbo_app) as server:
            yield server.url
        return
    port = free_port()
    with serve_process(["-m", "sandbox.qbo", "--port", str(port)], port) as url:
        yield url


@asynccontextmanager
async def bench_stack(qbo_app: Any | None = None) -> AsyncIterator[BenchStack]:
    base = get_settings()
    compile_workflow_modules([NoopWorkflow])  # the no-op workflows' module, as build_worker does the real ones
    with tempfile.TemporaryDirectory() as tmp, qbo_sandbox(qbo_app) as qbo_url:
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(base.temporal_cli), data_converter=pydantic_data_converter,
            search_attributes=search_attributes.ALL, dev_server_log_level="error",
            dev_server_extra_args=["--db-filename", str(Path(tmp) / "temporal.db"), *DEV_SERVER_ARGS],
        ) as env:
            settings = base.model_copy(update={
                "data_dir": Path(tmp), "database_url": f"sqlite:///{tmp}/ledgerflow.db",
                "task_queue": "bench", "qbo_api_url": f"{qbo_url}/v3",
                "qbo_discovery_url": f"{qbo_url}/.well-known/openid_configuration"})
            engine = get_engine(settings.database_url)
            create_tables(engine)
            yield BenchStack(env, settings, engine)
