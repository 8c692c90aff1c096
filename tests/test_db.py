"""The database: made by the migrations on SQLite and PostgreSQL, exactly as the models declare it; a schema older
than the code is a clear error at start, not failing activities later."""

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlmodel import SQLModel

from models.db import MIGRATIONS, SchemaOutOfDate, create_tables, get_engine, import_table_modules


def test_an_older_schema_is_refused_with_the_missing_columns(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE qbo_audit_log (id INTEGER PRIMARY KEY, realm_id VARCHAR)"))
    with pytest.raises(SchemaOutOfDate) as raised:
        create_tables(engine)
    assert "qbo_audit_log.body" in str(raised.value) and "make clean" in str(raised.value)


def test_creating_the_tables_twice_is_harmless(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'new.db'}")
    create_tables(engine)
    create_tables(engine)


def _not_a_test_table(_object: object, name: str | None, kind: str, _reflected: bool, _compare_to: object) -> bool:
    """Tests may declare tables of their own (tests/test_money.py): those are no migration's business."""
    return not (kind == "table" and (name or "").startswith("test_"))


def test_the_migrations_make_exactly_the_schema_the_models_declare(database_url: str) -> None:
    """On SQLite and, in CI, PostgreSQL: a table or column added to a model without its migration fails here."""
    engine = get_engine(database_url)
    create_tables(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": _not_a_test_table})
        differences = compare_metadata(context, SQLModel.metadata)
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert differences == []
    assert version == ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_a_database_made_before_migrations_is_taken_as_current_when_it_has_every_column(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'before.db'}")
    import_table_modules()
    SQLModel.metadata.create_all(engine)  # how databases were made before the migrations
    create_tables(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"
