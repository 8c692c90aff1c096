"""How every process reaches Temporal: one client factory with the pydantic data converter; and how the
embedded dev server keeps its SQLite file."""

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from config.settings import Settings


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


# The dev server's SQLite file in WAL mode, synced at checkpoints rather than on every commit: its default (a
# rollback journal, an fsync per commit) made every workflow and activity transition wait on the disk. A
# process dying loses nothing; only a power cut can roll back the last transitions. Production runs on
# PostgreSQL (docker-compose.temporal.yml).
DEV_SERVER_SQLITE_ARGS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
