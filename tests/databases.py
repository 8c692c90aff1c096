"""The database each test gets: a fresh SQLite file, or, with LEDGERFLOW_TEST_POSTGRES_URL (a PostgreSQL URL
whose role may create databases), a fresh PostgreSQL database. Both are copies of one template migrated once a
session, so a test does not pay for the migrations (a SQLite file is copied, a PostgreSQL database is created
from the template)."""

import os
import shutil
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine

from models.db import create_tables, get_engine

POSTGRES_URL = os.environ.get("LEDGERFLOW_TEST_POSTGRES_URL")


def _psycopg(url: str) -> str:
    return "postgresql+psycopg://" + url.removeprefix("postgresql://").removeprefix("postgresql+psycopg://")


class FreshDatabases:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = uuid.uuid4().hex[:8]
        self._template: str | None = None
        self._admin: Engine | None = None

    @property
    def postgres(self) -> bool:
        return POSTGRES_URL is not None

    def _admin_engine(self) -> Engine:
        assert POSTGRES_URL is not None
        if self._admin is None:
            self._admin = sa.create_engine(_psycopg(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        return self._admin

    def _server_url(self, database: str) -> str:
        assert POSTGRES_URL is not None
        return sa.make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)

    def _made_template(self) -> str:
        if self._template is not None:
            return self._template
        if self.postgres:
            name = f"lf_template_{self.tag}"
            with self._admin_engine().connect() as connection:
                connection.execute(sa.text(f"CREATE DATABASE {name}"))
            engine = sa.create_engine(_psycopg(self._server_url(name)))
            create_tables(engine)
            engine.dispose()  # PostgreSQL copies a template only while nobody is connected to it
            self._template = name
        else:
            path = self.root / "template.db"
            engine = get_engine(f"sqlite:///{path}")
            create_tables(engine)
            with engine.connect() as connection:
                connection.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
            engine.dispose()
            self._template = str(path)
        return self._template

    def fresh(self, directory: Path) -> str:
        """The URL of a new database holding the current schema and nothing else."""
        template = self._made_template()
        if self.postgres:
            name = f"lf_{self.tag}_{uuid.uuid4().hex[:10]}"
            with self._admin_engine().connect() as connection:
                connection.execute(sa.text(f"CREATE DATABASE {name} TEMPLATE {template}"))
            return self._server_url(name)
        path = directory / "ledgerflow.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    def _drop_database(self, name: str) -> None:
        """DROP ... WITH (FORCE), which ends the sessions still on it. An autovacuum worker on the database has
        no role, so a role without pg_signal_backend (.ci/run grants it) may not end it: wait for it instead."""
        for attempt in range(20):
            try:
                with self._admin_engine().connect() as connection:
                    connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                return
            except sa.exc.ProgrammingError:
                if attempt == 19:
                    raise
                time.sleep(0.25)

    def drop(self, url: str) -> None:
        if self.postgres and url.startswith("postgresql"):
            get_engine(url).dispose()
            self._drop_database(sa.make_url(url).database or "")

    def close(self) -> None:
        if self.postgres and self._template is not None:
            self._drop_database(self._template)
        if self._admin is not None:
            self._admin.dispose()
