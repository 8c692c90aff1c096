"""How every process reaches Temporal: one client factory with the pydantic data converter; and how the
embedded dev server keeps its SQLite file."""

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RetryConfig

from config.settings import Settings

# How long a worker keeps offering a result to a Temporal server that has gone away: the SDK's default gives up
# after about 5 s of outage and drops the result, so a server restart cost every activity in flight its whole
# start-to-close timeout (2 min for QBO) before its retry. Two minutes covers a restart; past that the server
# has timed the attempt out and runs it again anyway. The API keeps the default: a webhook's sender retries.
WORKER_RETRY = RetryConfig(max_elapsed_time_millis=120_000, max_retries=1_000)


async def connect(settings: Settings, runtime: Runtime | None = None, retry: RetryConfig | None = None) -> Client:
    """A client on `runtime` (the SDK's default runtime when None): a worker's client on a metrics runtime
    makes its worker report through that runtime's Prometheus endpoint. `retry`: how its calls are retried
    (the SDK's default when None)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        retry_config=retry,
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
