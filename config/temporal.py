"""How every process reaches Temporal: one client factory with the pydantic data converter; and how the
embedded dev server keeps its SQLite file."""

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from config.settings import Settings


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
