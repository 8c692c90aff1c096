"""The sandbox's books in a SQLite file, when asked, so a restarted sandbox keeps them: one row per object, so
a write rewrites only the objects it changed (see Company.pending_changes) and its cost does not grow with the
company, plus one small row per company for its settings and counters, one per deleted object (for CDC) and
one per request-id answer.

Files written by earlier versions held each company as one JSON row; they are converted on open, in one
transaction, so nothing in them is lost."""

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandbox.qbo.company import Changes, Key
from sandbox.qbo.wire import dumps, loads

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS company_settings (realm_id TEXT PRIMARY KEY, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS company_object (realm_id TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL, "
    "data TEXT NOT NULL, PRIMARY KEY (realm_id, entity, id))",
    # Read back in rowid order: the order of deletion, which CDC answers keep.
    "CREATE TABLE IF NOT EXISTS company_tombstone (realm_id TEXT NOT NULL, entity TEXT NOT NULL, "
    "id TEXT NOT NULL, deleted_at TEXT NOT NULL, PRIMARY KEY (realm_id, entity, id))",
    "CREATE TABLE IF NOT EXISTS company_response (realm_id TEXT NOT NULL, request_id TEXT NOT NULL, "
    "status INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (realm_id, request_id))",
    "CREATE TABLE IF NOT EXISTS tokens (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT)",
)
PER_COMPANY_TABLES = ("company_settings", "company_object", "company_tombstone", "company_response")
# The earlier format: one row per company, its whole snapshot as JSON.
SINGLE_ROW_TABLE = "company"


class StateFile:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.Lock()
        with self._transaction():
            for statement in SCHEMA:
                self._db.execute(statement)
            self._convert_single_row_companies()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """All of a save or none of it: a crash mid-write never leaves a company half written."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _convert_single_row_companies(self) -> None:
        """Rewrite the companies of an earlier state file one row per object (inside the caller's transaction,
        so the old table is dropped only once all of it is written)."""
        exists = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                  (SINGLE_ROW_TABLE,)).fetchone()
        if not exists:
            return
        for realm_id, data in self._db.execute(f"SELECT realm_id, data FROM {SINGLE_ROW_TABLE}").fetchall():
            self._write_company(realm_id, loads(data))
        self._db.execute(f"DROP TABLE {SINGLE_ROW_TABLE}")

    def load(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """Every company as Company.restore takes it (a snapshot), and the token authority's state."""
        with self._lock:
            companies: dict[str, dict[str, Any]] = {}
            for realm_id, data in self._db.execute("SELECT realm_id, data FROM company_settings"):
                companies[realm_id] = {**loads(data), "realm_id": realm_id, "objects": {}, "deleted": {},
                                       "responses_by_request_id": {}}
            # Ids grow with creation, so this is the order the company held its objects in.
            for realm_id, entity, object_id, data in self._db.execute(
                    "SELECT realm_id, entity, id, data FROM company_object ORDER BY realm_id, entity, "
                    "CAST(id AS INTEGER)"):
                companies[realm_id]["objects"].setdefault(entity, {})[object_id] = loads(data)
            for realm_id, entity, object_id, deleted_at in self._db.execute(
                    "SELECT realm_id, entity, id, deleted_at FROM company_tombstone ORDER BY rowid"):
                companies[realm_id]["deleted"].setdefault(entity, {})[object_id] = deleted_at
            for realm_id, request_id, status, body in self._db.execute(
                    "SELECT realm_id, request_id, status, body FROM company_response ORDER BY rowid"):
                companies[realm_id]["responses_by_request_id"][request_id] = (status, loads(body))
            row = self._db.execute("SELECT data FROM tokens WHERE id = 1").fetchone()
        return companies, (json.loads(row[0]) if row else {})

    def save_changes(self, realm_id: str, changes: Changes) -> None:
        """Write what one company changed since it was last saved."""
        with self._transaction():
            self._write_settings(realm_id, changes.settings)
            self._write_objects(realm_id, changes.objects)
            self._write_tombstones(realm_id, changes.deleted)
            self._write_responses(realm_id, changes.responses)

    def save_company(self, realm_id: str, snapshot: dict[str, Any]) -> None:
        """Write a whole company (a Company.snapshot()), replacing whatever the file held for it."""
        with self._transaction():
            self._write_company(realm_id, snapshot)

    def _write_company(self, realm_id: str, snapshot: dict[str, Any]) -> None:
        for table in PER_COMPANY_TABLES:
            self._db.execute(f"DELETE FROM {table} WHERE realm_id = ?", (realm_id,))
        settings = {k: v for k, v in snapshot.items() if k not in ("objects", "deleted", "responses_by_request_id")}
        self._write_settings(realm_id, settings)
        self._write_objects(realm_id, {(entity, object_id): obj for entity, of_entity in snapshot["objects"].items()
                                       for object_id, obj in of_entity.items()})
        self._write_tombstones(realm_id, [((entity, object_id), at) for entity, of_entity in snapshot["deleted"].items()
                                          for object_id, at in of_entity.items()])
        self._write_responses(realm_id, {k: (v[0], v[1]) for k, v in snapshot["responses_by_request_id"].items()})

    def _write_settings(self, realm_id: str, settings: dict[str, Any]) -> None:
        self._db.execute("INSERT INTO company_settings (realm_id, data) VALUES (?, ?) ON CONFLICT (realm_id) "
                         "DO UPDATE SET data = excluded.data", (realm_id, dumps(settings)))

    def _write_objects(self, realm_id: str, objects: dict[Key, dict[str, Any]]) -> None:
        self._db.executemany(
            "INSERT INTO company_object (realm_id, entity, id, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (realm_id, entity, id) DO UPDATE SET data = excluded.data",
            [(realm_id, entity, object_id, dumps(obj)) for (entity, object_id), obj in objects.items()])

    def _write_tombstones(self, realm_id: str, deleted: list[tuple[Key, str]]) -> None:
        rows = [(realm_id, entity, object_id) for (entity, object_id), _at in deleted]
        self._db.executemany("DELETE FROM company_object WHERE realm_id = ? AND entity = ? AND id = ?", rows)
        self._db.executemany("INSERT INTO company_tombstone (realm_id, entity, id, deleted_at) VALUES (?, ?, ?, ?)",
                             [(*row, at) for row, (_key, at) in zip(rows, deleted, strict=True)])

    def _write_responses(self, realm_id: str, responses: dict[str, tuple[int, dict[str, Any]]]) -> None:
        self._db.executemany(
            "INSERT INTO company_response (realm_id, request_id, status, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (realm_id, request_id) DO UPDATE SET status = excluded.status, body = excluded.body",
            [(realm_id, request_id, status, dumps(body)) for request_id, (status, body) in responses.items()])

    def save_tokens(self, snapshot: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT INTO tokens (id, data) VALUES (1, ?) ON CONFLICT (id) "
                             "DO UPDATE SET data = excluded.data", (json.dumps(snapshot),))
