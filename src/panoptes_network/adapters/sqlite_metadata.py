"""The metadata store in one SQLite file (embedded runs): a JSON document per row.

Several processes of the embedded runner share the file, so every write is one short
``BEGIN IMMEDIATE`` transaction (WAL mode, busy timeout) and merges read the current row inside it.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from panoptes_network.adapters.metadata import AlsoMerge, Increments, deep_merge
from panoptes_network.core.errors import TransientError
from panoptes_network.core.geo_point import GeoPoint

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (collection, id)
)
"""
TIME_TAG = "$time"
GEO_TAG = "$geo"


def _encode(value: Any) -> Any:
    if isinstance(value, GeoPoint):
        return {GEO_TAG: [value.latitude, value.longitude]}
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: metadata times must be timezone-aware")
        return {TIME_TAG: value.astimezone(dt.UTC).isoformat()}
    raise TypeError(f"cannot store {type(value).__name__} in metadata")


def _decode(obj: dict[str, Any]) -> Any:
    if obj.keys() == {TIME_TAG}:
        return dt.datetime.fromisoformat(obj[TIME_TAG])
    if obj.keys() == {GEO_TAG}:
        return GeoPoint(*obj[GEO_TAG])
    return obj


def _added(amounts: Mapping[str, float], current: dict[str, Any]) -> dict[str, Any]:
    """``current`` with ``amounts`` added to its fields (a missing field counts as 0)."""
    return {**current, **{k: current.get(k, 0) + v for k, v in amounts.items()}}


class SqliteMetadata:
    """Implements ``MetadataStore`` on a SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._transaction() as db:
            db.execute(SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransientError(f"metadata database {self.path} is busy: {exc}", exc) from exc
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        row = (
            self._connection()
            .execute("SELECT data FROM documents WHERE collection = ? AND id = ?", (collection, doc_id))
            .fetchone()
        )
        return json.loads(row[0], object_hook=_decode) if row else None

    def create(self, collection: str, doc_id: str, fields: Mapping[str, Any]) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO documents (collection, id, data) VALUES (?, ?, ?)",
                (collection, doc_id, json.dumps(fields, default=_encode)),
            )
            return cursor.rowcount == 1

    def merge(self, collection: str, doc_id: str, fields: Mapping[str, Any]) -> None:
        with self._transaction() as db:
            self._merge(db, collection, doc_id, lambda current: deep_merge(current, fields))

    def replace_field(
        self, collection: str, doc_id: str, path: tuple[str, ...], value: Any, also_merge: AlsoMerge | None = None
    ) -> None:
        def change(current: dict[str, Any]) -> dict[str, Any] | None:  # inside the transaction: nobody writes meanwhile
            merged = also_merge(current) if callable(also_merge) else also_merge or {}
            if merged is None:
                return None
            updated = deep_merge(current, merged)
            node = updated
            for key in path[:-1]:
                node[key] = dict(node[key]) if isinstance(node.get(key), dict) else {}
                node = node[key]
            node[path[-1]] = value
            return updated

        with self._transaction() as db:
            self._merge(db, collection, doc_id, change)

    @staticmethod
    def _merge(
        db: sqlite3.Connection, collection: str, doc_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> None:
        """Replace a document by ``change(current)`` inside the caller's transaction (None: leave it)."""
        row = db.execute("SELECT data FROM documents WHERE collection = ? AND id = ?", (collection, doc_id)).fetchone()
        updated = change(json.loads(row[0], object_hook=_decode) if row else {})
        if updated is not None:
            db.execute(
                "INSERT OR REPLACE INTO documents (collection, id, data) VALUES (?, ?, ?)",
                (collection, doc_id, json.dumps(updated, default=_encode)),
            )

    def claim_lease(self, collection: str, doc_id: str, holder: str, now: dt.datetime, expires: dt.datetime) -> bool:
        with self._transaction() as db:
            row = db.execute(
                "SELECT data FROM documents WHERE collection = ? AND id = ?", (collection, doc_id)
            ).fetchone()
            lease = json.loads(row[0], object_hook=_decode) if row else None
            if lease is not None and lease["holder"] != holder and lease["expires"] > now:
                return False
            db.execute(
                "INSERT OR REPLACE INTO documents (collection, id, data) VALUES (?, ?, ?)",
                (collection, doc_id, json.dumps({"holder": holder, "expires": expires}, default=_encode)),
            )
            return True

    def release_lease(self, collection: str, doc_id: str, holder: str) -> None:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM documents WHERE collection = ? AND id = ? AND json_extract(data, '$.holder') = ?",
                (collection, doc_id, holder),
            )

    def create_with_increments(
        self, collection: str, doc_id: str, fields: Mapping[str, Any], increments: Increments
    ) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO documents (collection, id, data) VALUES (?, ?, ?)",
                (collection, doc_id, json.dumps(fields, default=_encode)),
            )
            if cursor.rowcount != 1:
                return False
            for (target, target_id), amounts in increments.items():
                self._merge(db, target, target_id, functools.partial(_added, amounts))
            return True

    def list(
        self, collection: str, where: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        found = []
        rows = self._connection().execute(
            "SELECT id, data FROM documents WHERE collection = ? ORDER BY id", (collection,)
        )
        for doc_id, data in rows:
            doc = json.loads(data, object_hook=_decode)
            if all(doc.get(key) == value for key, value in (where or {}).items()):
                found.append((doc_id, doc))
                if limit is not None and len(found) >= limit:
                    break
        return found
