"""How every process reaches Temporal: one client factory with the pydantic data converter; and how the
embedded dev server keeps its SQLite file."""

from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from config.settings import Settings
from models import search_attributes


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client on `runtime` (the SDK's default runtime when None): a worker's client on a metrics runtime
    makes its worker report through that runtime's Prometheus endpoint."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )


def metrics_runtime(bind_address: str) -> Runtime:
    """A runtime serving Prometheus metrics at http://{bind_address}/metrics: the SDK's own (temporal_*) and
    those recorded on its metric meter (Ledgerflow's counters, activities/metrics.py). Each runtime is one
    endpoint with its own threads: make one per process. A busy address raises ValueError."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


def worker_runtime(settings: Settings) -> Runtime | None:
    """The worker's runtime: with the metrics endpoint when `metrics_bind_address` is set, else the default."""
    return metrics_runtime(settings.metrics_bind_address) if settings.metrics_bind_address else None


# The dev server's SQLite file in WAL mode, synced at checkpoints rather than on every commit: its default (a
# rollback journal, an fsync per commit) made every workflow and activity transition wait on the disk. A
# process dying loses nothing; only a power cut can roll back the last transitions. Production runs on
# PostgreSQL (docker-compose.temporal.yml).
DEV_SERVER_SQLITE_ARGS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
# The dev server reads the search attributes from its database on every use unless told otherwise (so a test
# that adds one sees it at once): ~20 reads a proposal lifecycle. Ours are all registered as it starts; the
# production server caches them too (deploy/temporal-dynamicconfig.yaml).
DEV_SERVER_SEARCH_ATTRIBUTE_CACHE = ["--dynamic-config-value", "system.forceSearchAttributesCacheRefreshOnRead=false"]
DEV_SERVER_ARGS = [*DEV_SERVER_SQLITE_ARGS, *DEV_SERVER_SEARCH_ATTRIBUTE_CACHE]


def dev_server_command(cli: Path, host: str, port: int, db_file: Path, namespace: str,
                       ui_port: int | None = None) -> list[str]:
    """`temporal server start-dev` as the embedded stack runs it: on its SQLite file (the pragmas above), with
    Ledgerflow's search attributes; its Web UI on `ui_port`, or headless without one."""
    attributes = [arg for key in search_attributes.ALL for arg in ("--search-attribute", f"{key.name}=Keyword")]
    ui = ["--ui-port", str(ui_port)] if ui_port is not None else ["--headless"]
    return [str(cli), "server", "start-dev", "--ip", host, "--port", str(port), *ui, "--db-filename", str(db_file),
            "--namespace", namespace, "--log-level", "warn", *DEV_SERVER_ARGS, *attributes]


async def pollers(client: Client, task_queue: str, activities: bool = False) -> set[str]:
    """The identities of the workers polling `task_queue` for workflow tasks (or activity tasks)."""
    kind = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY if activities else TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
    described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind))
    return {poller.identity for poller in described.pollers}
