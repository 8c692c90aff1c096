"""The stack a benchmark runs on, all in a temporary directory: the Temporal dev server on a SQLite file (as
`make run` has it), the QBO sandbox serving `qbo_app` on loopback, and a SQLite ledger with the schema."""

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings, get_settings
from config.temporal import DEV_SERVER_SQLITE_ARGS
from models import search_attributes
from models.db import create_tables, get_engine
from sandbox.serve import ServerThread


@dataclass(frozen=True)
class BenchStack:
    env: WorkflowEnvironment
    settings: Settings
    engine: Engine


@asynccontextmanager
async def bench_stack(qbo_app: Any) -> AsyncIterator[BenchStack]:
    base = get_settings()
    with tempfile.TemporaryDirectory() as tmp, ServerThread(qbo_app) as qbo:
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(base.temporal_cli), data_converter=pydantic_data_converter,
            search_attributes=search_attributes.ALL, dev_server_log_level="error",
            dev_server_extra_args=["--db-filename", str(Path(tmp) / "temporal.db"), *DEV_SERVER_SQLITE_ARGS],
        ) as env:
            settings = base.model_copy(update={
                "data_dir": Path(tmp), "database_url": f"sqlite:///{tmp}/ledgerflow.db",
                "task_queue": "bench", "qbo_api_url": f"{qbo.url}/v3",
                "qbo_discovery_url": f"{qbo.url}/.well-known/openid_configuration"})
            engine = get_engine(settings.database_url)
            create_tables(engine)
            yield BenchStack(env, settings, engine)
