"""The database engine and sessions: a SQLite file by default, PostgreSQL through psycopg when configured."""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, create_engine

# A worker runs up to `worker_activity_threads` (20) activities at once, each holding a connection: the
# default pool (5, and 10 more) made the rest wait for one.
POOL: dict[str, Any] = {"pool_size": 20, "max_overflow": 20}


@lru_cache
def get_engine(url: str) -> Engine:
    """One engine per URL per process. SQLite runs in WAL mode so the API, worker and CLI can share the file."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **POOL)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **POOL)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL never corrupts the file and loses nothing when a process dies; only a power cut can
    # roll back the last commits. FULL's fsync per commit made every limiter and audit write wait on the disk
    # (1.5 ms a commit here, against 0.03 ms), and the API, worker and CLI queue for the one write lock.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class SchemaOutOfDate(Exception):
    """The database has tables from an older Ledgerflow: columns this code needs are missing."""


def check_schema(engine: Engine) -> None:
    """Every column the code declares must exist; create_all adds missing tables but never alters one."""
    inspector = inspect(engine)
    missing = [f"{table.name}.{column.name}" for table in SQLModel.metadata.sorted_tables
               if inspector.has_table(table.name)
               for column in table.columns
               if column.name not in {c["name"] for c in inspector.get_columns(table.name)}]
    if missing:
        raise SchemaOutOfDate(
            f"the database at {engine.url.render_as_string(hide_password=True)} was made by an older Ledgerflow "
            f"and lacks {', '.join(missing)}. For the embedded stack, `make clean` starts afresh.")


MIGRATIONS = Path(__file__).parent / "migrations"


def import_table_modules() -> None:
    """Importing the table modules registers them on the metadata the migrations compare with."""
    from models import (  # noqa: F401
        accounts,
        api_keys,
        audit,
        autopay_configs,
        collection_ledger,
        crm_credentials,
        crm_records,
        gateway_credentials,
        lead_keys,
        lead_receipts,
        ledger,
        opt_outs,
        outbox,
        plan_enrollments,
        qbo_connection,
        qbo_limits,
        royalty_ledger,
    )


def _alembic(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _one_migrator(engine: Engine) -> Iterator[None]:
    """One process migrates at a time (the API, the worker and the CLI start together): an advisory lock on
    PostgreSQL, a file lock beside a SQLite file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(7261001)"))
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(7261001)"))
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def create_tables(engine: Engine) -> None:
    """Bring the database to the current schema with the migrations (models/migrations), on SQLite and
    PostgreSQL alike. A database made before migrations existed is taken as it is when it has every column
    the code needs (and marked current), refused otherwise."""
    from alembic import command

    import_table_modules()
    with _one_migrator(engine):
        inspector = inspect(engine)
        made_before_migrations = (not inspector.has_table("alembic_version")
                                  and any(inspector.has_table(t) for t in SQLModel.metadata.tables))
        if made_before_migrations:
            check_schema(engine)
        with engine.begin() as connection:
            if made_before_migrations:
                command.stamp(_alembic(connection), "head")
            else:
                command.upgrade(_alembic(connection), "head")
    check_schema(engine)


def dialect_insert(dialect: str) -> Any:
    """The dialect's INSERT construct, the one with ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    return pg_insert if dialect == "postgresql" else sqlite_insert


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; every one stored here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise
