"""Alembic's entry: migrations run on the connection models/db.py hands over (never from a URL of their own),
against every table the models declare."""

from alembic import context
from sqlmodel import SQLModel

from models.db import import_table_modules

import_table_modules()
connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True,
                  compare_type=False)
with context.begin_transaction():
    context.run_migrations()
