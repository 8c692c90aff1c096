"""The sandbox's books in a SQLite file, when asked: one row per company, so a restarted sandbox keeps them."""

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sandbox.qbo.wire import dumps, loads


class StateFile:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS company (realm_id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS tokens (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT)")
        self._lock = threading.Lock()

    def load(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        with self._lock:
            companies = {realm: loads(data)
                         for realm, data in self._db.execute("SELECT realm_id, data FROM company")}
            row = self._db.execute("SELECT data FROM tokens WHERE id = 1").fetchone()
        return companies, (json.loads(row[0]) if row else {})

    def save_company(self, realm_id: str, snapshot: dict[str, Any]) -> None:
        data = dumps(snapshot)
        with self._lock:
            self._db.execute("INSERT INTO company (realm_id, data) VALUES (?, ?) ON CONFLICT (realm_id) "
                             "DO UPDATE SET data = excluded.data", (realm_id, data))

    def save_tokens(self, snapshot: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT INTO tokens (id, data) VALUES (1, ?) ON CONFLICT (id) "
                             "DO UPDATE SET data = excluded.data", (json.dumps(snapshot),))
