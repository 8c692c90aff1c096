"""The database: a schema older than the code is a clear error at start, not failing activities later."""

from pathlib import Path

import pytest
from sqlalchemy import text

from models.db import SchemaOutOfDate, create_tables, get_engine


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
